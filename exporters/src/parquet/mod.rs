//! `type = "parquet"`: telemetry as query-ready Parquet files in object storage (S3, GCS, Azure,
//! a local directory). One table per signal ([schema]), one open file per signal, rolled by
//! size, age or UTC hour, uploaded whole under a name derived from its content.
//!
//! Flow of one batch: [`Exporter::export`] → (blocking pool) decode and convert to Arrow
//! ([convert]) → append the OTLP bytes to the open file's staging log and fsync ([wal]) → write
//! the rows into the Parquet file being built ([writer]) → `Ok`. A background *roller* finishes
//! files that are due (age, hour) and an *uploader* sends finished files from the outbox to the
//! store ([store]), retrying with backoff until they are there, then deletes them locally.
//!
//! Delivery is at least once: `Ok` means the batch is in an fsynced staging log, which survives
//! a crash and is rebuilt into the same file (same name) on start. A batch delivered twice to
//! the same or the previous open file (an export call that timed out after it had written) is
//! recognised by its hash and kept once; a batch replayed by an upstream buffer after a crash
//! lands in a new file and may appear twice.
//!
//! Never here: retrying a *batch* (the export worker does that) or unbounded growth (local disk
//! is capped by `max_staged_size`; past it exports are refused as retryable).

pub mod convert;
pub mod naming;
pub mod schema;
pub mod store;
pub mod testdata;
pub mod wal;
pub mod writer;

use sonde_config::{ParquetConfig, UploadConfig};
use sonde_core::backoff::Backoff;
use sonde_core::metrics::{Counter, Gauge, Registry};
use sonde_core::Signal;
use sonde_core::{Batch, BoxFuture, ExportError, ExportOutcome, Exporter};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use wal::AppendError;
use writer::{Finished, OpenFile, Recovery, Settings};

pub use schema::SCHEMA_VERSION;

/// How often the roller looks for files due by age or hour.
const ROLL_TICK: Duration = Duration::from_millis(500);

struct Counters {
    files: [Counter; 3],
    rows: [Counter; 3],
    bytes_written: Counter,
    uploaded_files: Counter,
    uploaded_bytes: Counter,
    refused_staging_full: Counter,
    refused_decode: Counter,
    duplicates: Counter,
    recovered: Counter,
    recovery_dropped_bytes: Counter,
    staged_bytes: Gauge,
    pending_uploads: Gauge,
    metrics: Registry,
    name: String,
}

impl Counters {
    fn new(t: Registry, name: &str) -> Counters {
        let per_signal = |metric, help| {
            Signal::ALL
                .map(|s| t.counter(metric, help, &[("exporter", name), ("signal", s.as_str())]))
        };
        let c = |metric, help| t.counter(metric, help, &[("exporter", name)]);
        let refused = |reason| {
            t.counter(
                "sonde_parquet_refused_batches_total",
                "Batches the Parquet exporter refused, by reason.",
                &[("exporter", name), ("reason", reason)],
            )
        };
        Counters {
            files: per_signal("sonde_parquet_files_total", "Parquet files finished."),
            rows: per_signal(
                "sonde_parquet_rows_total",
                "Rows in finished Parquet files.",
            ),
            bytes_written: c(
                "sonde_parquet_written_bytes_total",
                "Bytes of finished Parquet files.",
            ),
            uploaded_files: c(
                "sonde_parquet_uploaded_files_total",
                "Parquet files uploaded.",
            ),
            uploaded_bytes: c(
                "sonde_parquet_uploaded_bytes_total",
                "Bytes of Parquet files uploaded.",
            ),
            refused_staging_full: refused("staging_full"),
            refused_decode: refused("decode"),
            duplicates: t.counter(
                "sonde_parquet_dropped_batches_total",
                "Batches the Parquet exporter did not write again, by reason.",
                &[("exporter", name), ("reason", "duplicate")],
            ),
            recovered: c(
                "sonde_parquet_recovered_files_total",
                "Files rebuilt from staging logs left by a previous run.",
            ),
            recovery_dropped_bytes: c(
                "sonde_parquet_recovery_dropped_bytes_total",
                "Bytes of torn or damaged staging log tails dropped at recovery.",
            ),
            staged_bytes: t.gauge(
                "sonde_parquet_staged_bytes",
                "Local bytes used by open and finished-but-not-uploaded files.",
                &[("exporter", name)],
            ),
            pending_uploads: t.gauge(
                "sonde_parquet_pending_uploads",
                "Finished files waiting for upload.",
                &[("exporter", name)],
            ),
            metrics: t.clone(),
            name: name.to_string(),
        }
    }

    fn upload_retry(&self, reason: &'static str) {
        self.metrics
            .counter(
                "sonde_parquet_upload_retries_total",
                "Failed upload attempts (retried), by reason.",
                &[("exporter", &self.name), ("reason", reason)],
            )
            .inc();
    }
}

fn slot(s: Signal) -> usize {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

#[derive(Default)]
struct Slot {
    file: Option<OpenFile>,
    /// Batch hashes of the file finished last, so a late duplicate is still recognised.
    previous: HashSet<u128>,
}

struct Shared {
    settings: Settings,
    store: Store,
    upload: UploadConfig,
    max_staged: u64,
    slots: [Mutex<Slot>; 3],
    /// Local bytes of each open file, kept current by the writer.
    open_bytes: [AtomicU64; 3],
    /// Bytes of finished files waiting in the outbox.
    outbox_bytes: AtomicU64,
    /// Logs of a previous run still to recover, and logs a failed finish left behind.
    stranded: Mutex<Vec<PathBuf>>,
    counters: Counters,
    wake_uploader: Notify,
    /// Set at shutdown: the uploader empties the outbox and stops.
    draining: AtomicBool,
    stop: Notify,
    stopped: AtomicBool,
    /// Held while the roller or shutdown recovers logs and finishes files, so shutdown never
    /// misses a file the roller is still finishing.
    maintenance: Mutex<()>,
    last_warn: Mutex<Option<std::time::Instant>>,
}

/// The `parquet` exporter.
pub struct ParquetExporter {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shutdown_timeout: Duration,
}

impl Drop for ParquetExporter {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.stop.notify_waiters();
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

/// Why a Parquet exporter could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("unsupported URL `{0}` (s3://, gs://, az://, abfs://, file://)")]
    UnsupportedUrl(String),
    #[error("option `{key}`: {source}")]
    Option {
        key: String,
        source: object_store::Error,
    },
    #[error("store for `{url}`: {source}")]
    Store {
        url: String,
        source: object_store::Error,
    },
    #[error("cannot use the directory {}: {reason}", path.display())]
    Directory { path: PathBuf, reason: String },
    #[error("compression: {0}")]
    Compression(#[from] parquet::errors::ParquetError),
    #[error("the parquet exporter needs a Tokio runtime")]
    NoRuntime,
}

impl ParquetExporter {
    /// Builds the exporter: the store client, the staging directory under `data_dir`, and its
    /// two background tasks (needs a Tokio runtime). Logs left by a previous run are recovered
    /// in the background.
    pub fn new(
        name: &str,
        cfg: &ParquetConfig,
        data_dir: &Path,
        shutdown_timeout: Duration,
        metrics: Registry,
    ) -> Result<ParquetExporter, BuildError> {
        let root = data_dir.join("parquet").join(naming::sanitize(name));
        let settings = Settings::new(name, cfg, &root)?;
        let store = Store::from_config(cfg)?;
        let stale = writer::prepare(&settings).map_err(|e| BuildError::Directory {
            path: root.clone(),
            reason: e.to_string(),
        })?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let counters = Counters::new(metrics, name);
        let outbox_bytes = writer::outbox_bytes(&settings);
        let shared = Arc::new(Shared {
            settings,
            store,
            upload: cfg.upload.clone(),
            max_staged: cfg.max_staged_size.get(),
            slots: Default::default(),
            open_bytes: Default::default(),
            outbox_bytes: AtomicU64::new(outbox_bytes),
            stranded: Mutex::new(stale),
            counters,
            wake_uploader: Notify::new(),
            draining: AtomicBool::new(false),
            stop: Notify::new(),
            stopped: AtomicBool::new(false),
            maintenance: Mutex::new(()),
            last_warn: Mutex::new(None),
        });
        info!(exporter = %name, url = %shared.store.url, staging = %root.display(), "parquet exporter ready");
        let tasks = vec![
            runtime.spawn(roller(shared.clone())),
            runtime.spawn(uploader(shared.clone())),
        ];
        Ok(ParquetExporter {
            shared,
            tasks: Mutex::new(tasks),
            shutdown_timeout,
        })
    }
}

impl Exporter for ParquetExporter {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        let shared = self.shared.clone();
        let batch = batch.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || shared.write(&batch)).await {
                Ok(r) => r,
                Err(e) => Err(ExportError::retryable(format!(
                    "parquet writer task failed: {e}"
                ))),
            }
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async move {
            let shared = self.shared.clone();
            let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
            // The roller stops (a run in progress finishes first: see `maintenance`); every
            // open file is finished; then the uploader empties the outbox until the deadline.
            let uploader = {
                let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(roller) = tasks.first() {
                    roller.abort();
                }
                tasks.pop()
            };
            let finished = tokio::task::spawn_blocking({
                let shared = shared.clone();
                move || {
                    let _one_at_a_time =
                        shared.maintenance.lock().unwrap_or_else(|p| p.into_inner());
                    shared.recover_stranded();
                    shared.finish_all(None)
                }
            })
            .await
            .unwrap_or(0);
            debug!(exporter = %shared.settings.exporter, files = finished, "open files finished at shutdown");
            shared.draining.store(true, Ordering::SeqCst);
            shared.wake_uploader.notify_one();
            if let Some(mut uploader) = uploader {
                if tokio::time::timeout_at(deadline, &mut uploader)
                    .await
                    .is_err()
                {
                    shared.stopped.store(true, Ordering::SeqCst);
                    shared.stop.notify_waiters();
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut uploader).await;
                    uploader.abort();
                }
            }
            let left = writer::outbox(&shared.settings)
                .map(|v| v.len())
                .unwrap_or(0);
            if left > 0 {
                warn!(exporter = %shared.settings.exporter, files = left, "files not uploaded before shutdown; they stay staged and are uploaded at the next start");
            }
            Ok(())
        })
    }
}

impl Shared {
    fn staged_bytes(&self) -> u64 {
        self.open_bytes
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.outbox_bytes.load(Ordering::Relaxed)
    }

    fn update_gauges(&self) {
        self.counters
            .staged_bytes
            .set(self.staged_bytes().min(i64::MAX as u64) as i64);
    }

    /// One export, on the blocking pool.
    fn write(&self, batch: &Batch) -> Result<ExportOutcome, ExportError> {
        let signal = batch.signal;
        if self.staged_bytes() >= self.max_staged {
            self.counters.refused_staging_full.inc();
            if self.should_warn() {
                warn!(exporter = %self.settings.exporter, staged = self.staged_bytes(), limit = self.max_staged, "staging is full (uploads are behind); refusing batches until they catch up");
            }
            return Err(ExportError::Retryable {
                reason: "parquet staging full: uploads are behind".into(),
                retry_after: Some(Duration::from_secs(1)),
            });
        }
        let hash = xxhash_rust::xxh3::xxh3_128(&batch.payload);
        let rows = match convert::convert(signal, &batch.payload) {
            Ok(r) => r,
            Err(e) => {
                self.counters.refused_decode.inc();
                return Err(ExportError::permanent(e.to_string()));
            }
        };
        let i = slot(signal);
        let mut guard = self.slots[i].lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut *guard;
        if slot.previous.contains(&hash)
            || slot.file.as_ref().is_some_and(|f| f.seen.contains(&hash))
        {
            self.counters.duplicates.inc();
            debug!(exporter = %self.settings.exporter, "batch already staged; not written again");
            return Ok(ExportOutcome::default());
        }
        if slot.file.is_none() {
            let f = OpenFile::create(&self.settings, signal)
                .map_err(|e| ExportError::retryable(format!("cannot open a staging file: {e}")))?;
            slot.file = Some(f);
        }
        let Some(file) = slot.file.as_mut() else {
            return Err(ExportError::retryable("no open file"));
        };
        match file.append(&self.settings, &batch.payload, &rows) {
            Ok(()) => {}
            Err(AppendError::Retry(e)) => {
                return Err(ExportError::retryable(format!("staging log: {e}")));
            }
            Err(e @ AppendError::Broken(_)) => {
                // Keep what the log holds; the batch is retried into a new file.
                error!(exporter = %self.settings.exporter, error = %e, "staging log damaged; finishing the file");
                if let Some(f) = slot.file.take() {
                    slot.previous = f.seen.clone();
                    drop(guard);
                    self.open_bytes[i].store(0, Ordering::Relaxed);
                    self.finish(f);
                }
                return Err(ExportError::retryable(format!("staging log: {e}")));
            }
        }
        file.seen.insert(hash);
        self.open_bytes[i].store(file.staged_bytes(), Ordering::Relaxed);
        let due = file.roll_reason(&self.settings, writer::now_unix_nanos());
        let taken = match due {
            Some("size") | Some("staging_size") | Some("writer_failed") => {
                slot.file.take().map(|f| (f, due))
            }
            _ => None,
        };
        if let Some((f, reason)) = taken {
            slot.previous = f.seen.clone();
            drop(guard);
            self.open_bytes[i].store(0, Ordering::Relaxed);
            debug!(exporter = %self.settings.exporter, signal = %signal, reason, "rolling file");
            self.finish(f);
        } else {
            drop(guard);
        }
        self.update_gauges();
        Ok(ExportOutcome::default())
    }

    /// Finishes a file into the outbox; on failure its log stays and is retried by the roller.
    fn finish(&self, f: OpenFile) {
        let signal = f.signal;
        let log = f.wal_path().to_path_buf();
        match f.finish(&self.settings) {
            Ok(done) => self.finished(&done),
            Err(e) => {
                error!(exporter = %self.settings.exporter, signal = %signal, error = %e, "cannot finish a Parquet file; its staging log is kept and retried");
                self.stranded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(log);
            }
        }
    }

    fn finished(&self, f: &Finished) {
        let s = slot(f.signal);
        self.counters.files[s].inc();
        self.counters.rows[s].add(f.rows);
        self.counters.bytes_written.add(f.bytes);
        self.outbox_bytes.fetch_add(f.bytes, Ordering::Relaxed);
        self.update_gauges();
        info!(exporter = %self.settings.exporter, signal = %f.signal, rows = f.rows, bytes = f.bytes, key = %f.key, "parquet file finished");
        self.wake_uploader.notify_one();
    }

    /// Finishes open files that are due (`None`: every open file). Returns how many.
    fn finish_all(&self, now: Option<i64>) -> usize {
        let mut n = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            let taken = {
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                let due = match (&slot.file, now) {
                    (Some(_), None) => true,
                    (Some(f), Some(now)) => f.roll_reason(&self.settings, now).is_some(),
                    (None, _) => false,
                };
                if due {
                    let f = slot.file.take();
                    if let Some(f) = &f {
                        slot.previous = f.seen.clone();
                    }
                    f
                } else {
                    None
                }
            };
            if let Some(f) = taken {
                self.open_bytes[i].store(0, Ordering::Relaxed);
                n += 1;
                self.finish(f);
            }
        }
        n
    }

    /// Rebuilds logs left by a previous run (or by a failed finish) into finished files.
    fn recover_stranded(&self) {
        let logs: Vec<PathBuf> =
            std::mem::take(&mut *self.stranded.lock().unwrap_or_else(|p| p.into_inner()));
        if logs.is_empty() {
            return;
        }
        let mut report = Recovery::default();
        let mut failed = Vec::new();
        for log in logs {
            match writer::recover(&self.settings, &log, &mut report) {
                Ok(Some(f)) => self.finished(&f),
                Ok(None) => {}
                Err(e) => {
                    error!(exporter = %self.settings.exporter, path = %log.display(), error = %e, "cannot rebuild a staged file; will retry");
                    failed.push(log);
                }
            }
        }
        self.counters.recovered.add(report.rebuilt);
        self.counters
            .recovery_dropped_bytes
            .add(report.dropped_bytes);
        if report != Recovery::default() {
            info!(exporter = %self.settings.exporter, rebuilt = report.rebuilt, already_finished = report.already_finished, dropped_bytes = report.dropped_bytes, unreadable = report.unreadable, "recovered staged files from a previous run");
        }
        self.stranded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(failed);
    }

    /// One warning per 10 s at most.
    fn should_warn(&self) -> bool {
        let mut last = self.last_warn.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(std::time::Instant::now());
            true
        } else {
            false
        }
    }
}

/// Finishes files due by age or hour, and recovers stranded logs.
async fn roller(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(ROLL_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = s.maintenance.lock().unwrap_or_else(|p| p.into_inner());
            s.recover_stranded();
            s.finish_all(Some(writer::now_unix_nanos()));
        })
        .await;
    }
}

/// Uploads finished files, oldest first, each until it is in the store.
async fn uploader(shared: Arc<Shared>) {
    loop {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let pending = {
            let s = shared.clone();
            tokio::task::spawn_blocking(move || writer::outbox(&s.settings))
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default()
        };
        shared.counters.pending_uploads.set(pending.len() as i64);
        if pending.is_empty() {
            // At shutdown, stop once every finished file is out.
            if shared.draining.load(Ordering::SeqCst) {
                return;
            }
            tokio::select! {
                _ = shared.wake_uploader.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = shared.stop.notified() => return,
            }
            continue;
        }
        for f in pending {
            if !upload_one(&shared, &f).await {
                return;
            }
        }
    }
}

/// Uploads one finished file, retrying with backoff. False when stopped before it was done.
async fn upload_one(shared: &Shared, f: &Finished) -> bool {
    let s = &shared.settings;
    let local = f.parquet_path(&s.outbox_dir);
    let key = shared.store.key(&f.key);
    let part = shared.upload.part_size.as_usize();
    let conc = shared.upload.concurrency.max(1);
    // A whole attempt: every part, each request under the client's own timeout.
    let parts = f.bytes.div_ceil(part.max(1) as u64).max(1);
    let limit = shared.upload.timeout.get() * (1 + parts.div_ceil(conc as u64)).min(1000) as u32;
    let mut backoff = Backoff::new(
        shared.upload.initial_backoff.get(),
        shared.upload.max_backoff.get(),
    );
    let mut warned = false;
    loop {
        let attempt = tokio::select! {
            r = tokio::time::timeout(limit, shared.store.upload(&local, &key, part, conc)) => {
                r.unwrap_or(Err(store::UploadError::Timeout(limit)))
            }
            _ = shared.stop.notified() => return false,
        };
        match attempt {
            Ok(bytes) => {
                shared.counters.uploaded_files.inc();
                shared.counters.uploaded_bytes.add(bytes);
                info!(exporter = %s.exporter, key = %key, bytes, "parquet file uploaded");
                if let Err(e) = writer::remove_uploaded(s, f) {
                    warn!(exporter = %s.exporter, error = %e, "cannot remove an uploaded file from the outbox");
                }
                shared.outbox_bytes.fetch_sub(
                    f.bytes.min(shared.outbox_bytes.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                shared.update_gauges();
                return true;
            }
            Err(e) => {
                shared.counters.upload_retry(e.reason());
                let wait = backoff.next(None);
                if !warned || shared.should_warn() {
                    warned = true;
                    warn!(exporter = %s.exporter, key = %key, error = %e, retry_in = ?wait, "upload failed, retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.stop.notified() => return false,
                }
            }
        }
    }
}
