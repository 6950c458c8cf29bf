//! `type = "file"`: tails log files and emits one OTLP log record per line (or per multi-line
//! record), with no loss and no duplicates across rotation, truncation and restarts.
//!
//! The model: a dedicated [`tailer`] thread does all file I/O (discovery, identity, reading,
//! line splitting, encoding) and hands batches to this module's async loop through a channel
//! of two. The loop sends each batch with `router.send(.., Wait::Forever)`, attaching an
//! [`Ack`] that fires when every buffer that took the batch has finished with it (exported, or
//! given up on and counted). Only then do the batch's file positions advance in the
//! [`checkpoint::Tracker`], in send order; the checkpoint file is written every
//! `checkpoint_interval` on the blocking pool. After a crash, reading resumes at the last
//! persisted positions: lines whose export was not finished are read again (at-least-once),
//! none is skipped.
//!
//! Backpressure: while the router waits for buffer space, the loop takes nothing from the
//! channel, the tailer blocks handing over its next batch, and no file is read.
//!
//! Modules: [`discover`] (globbing), [`fingerprint`] (identity), [`reader`] (lines, encodings,
//! multi-line), [`formats`] (records by `format`, partial lines of container runtimes joined),
//! [`parse`] (JSON), [`k8s`] (pod attributes from paths), [`encode`] (OTLP encoding),
//! [`checkpoint`] (positions and their atomic persistence), [`watch`] (inotify wake-ups and the
//! stop signal), [`settings`] (the config, resolved for the thread), [`tailer`] (the thread:
//! scanning, opening, reading, closing, handing over), [`tracked`] (one followed file's
//! identity, positions and line state), [`records`] (the bytes of a read → lines → records →
//! the encoded batch).

pub mod checkpoint;
pub mod discover;
pub mod encode;
pub mod fingerprint;
pub mod formats;
pub mod k8s;
pub mod parse;
pub mod reader;
mod records;
pub mod settings;
pub mod tailer;
mod tracked;
pub mod watch;

use super::{SourceContext, SourceTask};
use crate::host::HostFacts;
use crate::pipeline::buffer::Wait;
use checkpoint::{Store, StoreError, Tracker};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use settings::Settings;
use sonde_config::{FileSourceConfig, StartAt};
use sonde_core::metrics::{Counter, Gauge, Registry};
use sonde_core::{Ack, Batch, BuildError, Signal};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tailer::{Outgoing, Tailer};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tracing::{info, warn};
use watch::Stop;

/// How long a stopping source waits for the acknowledgements of what it already sent, so a
/// graceful stop leaves nothing to read again.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(5);
/// Record bytes / records per batch handed to the pipeline.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_ITEMS: u64 = 8192;

/// The source's counters, registered once.
#[derive(Clone)]
pub struct Counters {
    pub records: Counter,
    pub read_bytes: Counter,
    pub open_files: Gauge,
    pub tracked_files: Gauge,
    pub truncations: Counter,
    pub finished_files: Counter,
    pub long_split: Counter,
    pub long_truncated: Counter,
    pub invalid_utf8: Counter,
    pub parse_errors: Counter,
    pub discarded_truncated: Counter,
    pub deferred_opens: Counter,
    pub read_errors_open: Counter,
    pub read_errors_read: Counter,
    pub read_errors_walk: Counter,
    pub checkpoint_writes: Counter,
    pub checkpoint_errors: Counter,
    registry: Registry,
    source: Arc<str>,
}

impl Counters {
    /// `parse_reason`: the `reason` label of parse errors, the format's name.
    pub fn new(r: &Registry, source: &str, parse_reason: &'static str) -> Self {
        let l = [("source", source)];
        let c = |name, help| r.counter(name, help, &l);
        let reason =
            |name, help, reason| r.counter(name, help, &[("source", source), ("reason", reason)]);
        Counters {
            records: c(
                "sonde_source_received_items_total",
                "Items a source produced or received.",
            ),
            read_bytes: c(
                "sonde_file_read_bytes_total",
                "Bytes read from tailed files.",
            ),
            open_files: r.gauge(
                "sonde_file_open_files",
                "Files held open by the tailer.",
                &l,
            ),
            tracked_files: r.gauge(
                "sonde_file_tracked_files",
                "Files the tailer knows (open, or closed with a checkpoint).",
                &l,
            ),
            truncations: c(
                "sonde_file_truncations_total",
                "Files found truncated or rewritten (read again from the start).",
            ),
            finished_files: c(
                "sonde_file_finished_files_total",
                "Rotated or deleted files read to their end and closed.",
            ),
            long_split: reason(
                "sonde_file_long_lines_total",
                "Records longer than max_line_length, by action.",
                "split",
            ),
            long_truncated: reason(
                "sonde_file_long_lines_total",
                "Records longer than max_line_length, by action.",
                "truncated",
            ),
            invalid_utf8: c(
                "sonde_file_invalid_text_records_total",
                "Records with bytes invalid in the file's encoding (replaced by U+FFFD).",
            ),
            parse_errors: reason(
                "sonde_file_parse_errors_total",
                "Records that did not parse in the configured format (kept as text).",
                parse_reason,
            ),
            discarded_truncated: reason(
                "sonde_file_discarded_bytes_total",
                "Bytes read but not delivered, by reason.",
                "file_truncated",
            ),
            deferred_opens: c(
                "sonde_file_deferred_opens_total",
                "Files left closed for a scan because max_open_files was reached.",
            ),
            read_errors_open: reason(
                "sonde_file_read_errors_total",
                "Failures to list, open or read a file, by reason.",
                "open",
            ),
            read_errors_read: reason(
                "sonde_file_read_errors_total",
                "Failures to list, open or read a file, by reason.",
                "read",
            ),
            read_errors_walk: reason(
                "sonde_file_read_errors_total",
                "Failures to list, open or read a file, by reason.",
                "list",
            ),
            checkpoint_writes: c(
                "sonde_file_checkpoint_writes_total",
                "Checkpoint files written.",
            ),
            checkpoint_errors: c(
                "sonde_file_checkpoint_errors_total",
                "Checkpoint writes that failed (retried).",
            ),
            registry: r.clone(),
            source: Arc::from(source),
        }
    }

    /// `sonde_file_skipped_paths_total{reason}`: matching paths not tailed.
    pub fn skipped(&self, reason: &'static str) -> Counter {
        self.registry.counter(
            "sonde_file_skipped_paths_total",
            "Matching paths not tailed (directory, fifo, compressed, …), each counted once.",
            &[("source", &self.source), ("reason", reason)],
        )
    }
}

/// Why a file source could not start.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("cannot keep file checkpoints: {0}")]
    Checkpoints(#[from] StoreError),
    #[error("invalid include/exclude pattern: {0}")]
    Pattern(#[from] globset::Error),
    #[error("unknown encoding `{0}`")]
    Encoding(String),
    #[error("invalid multiline.start: {0}")]
    Multiline(#[from] regex::Error),
    #[error("invalid regex.pattern: {0}")]
    RegexFormat(regex::Error),
}

/// Resolves the config, opens the checkpoint store, and returns the source's task. Fails when
/// the checkpoint directory cannot be written: the source would not be able to keep its promise.
pub async fn build(cfg: &FileSourceConfig, cx: SourceContext) -> Result<SourceTask, BuildError> {
    let parts = prepare(cfg, &cx).map_err(|e| cx.error(e))?;
    Ok(Box::pin(run(cx, parts, cfg.checkpoint_interval.get())))
}

/// What the running source is made of.
struct Parts {
    tailer: Tailer,
    tracker: Arc<Mutex<Tracker>>,
    store: Arc<Store>,
    counters: Counters,
    stop: Stop,
}

fn prepare(cfg: &FileSourceConfig, cx: &SourceContext) -> Result<Parts, FileSourceError> {
    let name: &str = &cx.name;
    let store = Store::open(&cx.data_dir, name)?;
    let (entries, first_start) = match store.load() {
        Ok(Some(e)) => (e, false),
        Ok(None) => (vec![], true),
        Err(e) => {
            let aside = store.set_aside();
            warn!(source = name, error = %e, moved_to = %aside.display(), "checkpoints unreadable; set aside, files are read from their beginning");
            (vec![], false)
        }
    };
    let known = entries.len();
    let tracker = Arc::new(Mutex::new(Tracker::with_entries(entries)));
    let discover = discover::Discover::new(&cfg.include, &cfg.exclude)?;
    let resource = resource(cfg);
    let formats =
        formats::Formats::new(cfg, resource.clone()).map_err(FileSourceError::RegexFormat)?;
    let counters = Counters::new(&cx.metrics, name, formats.reason());
    let settings = settings(cfg, first_start, formats)?;
    let encoder = encode::Encoder::new(&resource, &scope(), BATCH_BYTES);
    let stop = Stop::default();
    let tailer = Tailer::new(
        settings,
        discover,
        encoder,
        tracker.clone(),
        counters.clone(),
        stop.clone(),
    );
    info!(source = name, checkpoints = known, store = %store.path().display(), "file source starting");
    Ok(Parts {
        tailer,
        tracker,
        store: Arc::new(store),
        counters,
        stop,
    })
}

fn settings(
    cfg: &FileSourceConfig,
    first_start: bool,
    formats: formats::Formats,
) -> Result<Settings, FileSourceError> {
    let utf16_auto = cfg.encoding.eq_ignore_ascii_case("utf-16");
    let encoding = if utf16_auto {
        encoding_rs::UTF_16LE
    } else {
        encoding_rs::Encoding::for_label(cfg.encoding.as_bytes())
            .ok_or_else(|| FileSourceError::Encoding(cfg.encoding.clone()))?
    };
    let newline = if encoding == encoding_rs::UTF_16LE {
        reader::Newline::Utf16Le
    } else if encoding == encoding_rs::UTF_16BE {
        reader::Newline::Utf16Be
    } else {
        reader::Newline::Byte
    };
    let max = cfg.max_line_length.as_usize();
    let multiline = match &cfg.multiline {
        Some(m) => Some(reader::MultilineConfig {
            start: regex::Regex::new(&m.start)?,
            timeout: m.timeout.get(),
            max,
        }),
        None => None,
    };
    Ok(Settings {
        fingerprint_bytes: cfg.fingerprint_bytes,
        max_open_files: cfg.max_open_files,
        start_first_at_end: first_start && cfg.start_at == StartAt::End,
        scan_interval: cfg.scan_interval.get(),
        poll_interval: cfg.poll_interval.get(),
        rotate_wait: cfg.rotate_wait.get(),
        read_buffer: cfg.read_buffer_size.as_usize(),
        lines: reader::LineConfig::new(max, cfg.on_long_line, newline),
        decoder: reader::Decoder::new(encoding),
        utf16_auto,
        multiline,
        formats,
        include_file_name: cfg.include_file_name,
        include_file_path: cfg.include_file_path,
        fs_events: cfg.fs_events,
        batch_bytes: BATCH_BYTES,
        batch_items: BATCH_ITEMS,
    })
}

fn resource(cfg: &FileSourceConfig) -> Resource {
    let mut attributes = vec![];
    if let Some(host) = HostFacts::local().name {
        attributes.push(encode::kv_str("host.name", &host));
    }
    attributes.push(encode::kv_str("os.type", "linux"));
    for (k, v) in &cfg.resource {
        attributes.retain(|a| &a.key != k);
        attributes.push(encode::kv_str(k, v));
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "sonde.file".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

fn lock(t: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

async fn run(cx: SourceContext, parts: Parts, checkpoint_interval: Duration) {
    let Parts {
        tailer,
        tracker,
        store,
        counters,
        stop,
    } = parts;
    let name: &str = &cx.name;
    let (tx, mut rx) = mpsc::channel::<Outgoing>(2);
    let thread = match std::thread::Builder::new()
        .name(format!("sonde-file-{name}"))
        .spawn(move || tailer.run(tx))
    {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(source = name, error = %e, "cannot start the tailer thread; source stopped");
            return;
        }
    };
    let acked = Arc::new(Notify::new());
    let mut tick = tokio::time::interval(checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let persist = Persist {
        store,
        tracker: tracker.clone(),
        counters: counters.clone(),
        last_warn: None,
    };
    let mut persist = persist;
    // The batch being pushed into the buffers, if any: while it waits, nothing more is taken
    // from the tailer (so the tailer stops reading), but checkpoints still get written.
    let mut sending: Option<std::pin::Pin<Box<dyn Future<Output = bool> + Send>>> = None;
    loop {
        tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => break,
            ok = async { sending.as_mut().expect("guarded by the branch condition").await }, if sending.is_some() => {
                sending = None;
                if !ok {
                    break;
                }
            }
            msg = rx.recv(), if sending.is_none() => {
                let Some(out) = msg else {
                    tracing::error!(source = name, "the tailer thread stopped unexpectedly; no more lines are read");
                    break;
                };
                sending = start_send(&cx, &tracker, &acked, out);
            }
            _ = tick.tick() => persist.run().await,
        }
    }
    // Stop reading; whatever is still waiting to be pushed is abandoned (read again next time).
    stop.stop();
    drop(sending);
    drop(rx);
    let deadline = Instant::now() + SHUTDOWN_ACK_WAIT;
    while lock(&tracker).pending() > 0 && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(100), acked.notified()).await;
    }
    persist.run().await;
    let joined = tokio::task::spawn_blocking(move || thread.join());
    if tokio::time::timeout(Duration::from_secs(2), joined)
        .await
        .is_err()
    {
        warn!(
            source = name,
            "tailer thread did not stop in time (a read is hanging)"
        );
    }
    info!(
        source = name,
        records = counters.records.get(),
        bytes = counters.read_bytes.get(),
        truncations = counters.truncations.get(),
        long_lines_split = counters.long_split.get(),
        long_lines_truncated = counters.long_truncated.get(),
        invalid_text_records = counters.invalid_utf8.get(),
        parse_errors = counters.parse_errors.get(),
        read_errors = counters.read_errors_open.get()
            + counters.read_errors_read.get()
            + counters.read_errors_walk.get(),
        unacknowledged_batches = lock(&tracker).pending(),
        "file source stopped"
    );
}

/// Registers a batch with the tracker and returns the future that pushes it into the buffers
/// (`None` when there is nothing to push: a position-only update is complete at once).
fn start_send(
    cx: &SourceContext,
    tracker: &Arc<Mutex<Tracker>>,
    acked: &Arc<Notify>,
    out: Outgoing,
) -> Option<std::pin::Pin<Box<dyn Future<Output = bool> + Send>>> {
    let seq = lock(tracker).begin(out.positions);
    let Some((payload, items)) = out.payload else {
        lock(tracker).complete(seq, true);
        return None;
    };
    let t = tracker.clone();
    let n = acked.clone();
    let ack = Ack::new(move |delivered| {
        lock(&t).complete(seq, delivered);
        n.notify_one();
    });
    let batch =
        Batch::from_trusted(Signal::Logs, payload, items, cx.name.clone()).with_ack(ack.clone());
    let router = cx.output.clone();
    // Dropped before every buffer took the batch (a stop): the batch is not delivered.
    let guard = AbandonOnDrop(Some(ack));
    Some(Box::pin(async move {
        let sent = router.send(batch, Wait::Forever).await.is_ok();
        if sent {
            guard.disarm();
        }
        sent
    }))
}

/// Abandons an acknowledgement unless disarmed (a batch dropped before every buffer took it).
pub(crate) struct AbandonOnDrop(pub(crate) Option<Ack>);

impl AbandonOnDrop {
    pub(crate) fn disarm(mut self) {
        // Let the token go without abandoning it.
        self.0 = None;
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            a.abandon();
        }
    }
}

/// Writes the checkpoint file when positions changed.
struct Persist {
    store: Arc<Store>,
    tracker: Arc<Mutex<Tracker>>,
    counters: Counters,
    last_warn: Option<Instant>,
}

impl Persist {
    async fn run(&mut self) {
        let Some(entries) = lock(&self.tracker).take_dirty() else {
            return;
        };
        let store = self.store.clone();
        let res = tokio::task::spawn_blocking(move || store.save(entries)).await;
        let err = match res {
            Ok(Ok(())) => {
                self.counters.checkpoint_writes.inc();
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        self.counters.checkpoint_errors.inc();
        lock(&self.tracker).mark_dirty();
        if self
            .last_warn
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_warn = Some(Instant::now());
            warn!(source = %self.counters.source, error = %err, "cannot write checkpoints; retrying (a restart would read lines again)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::buffer::{channel, BufferReceiver};
    use crate::pipeline::router::{Route, Router};
    use sonde_config::BufferConfig;
    use std::path::Path;
    use tokio_util::sync::CancellationToken;

    async fn start(
        logs: &Path,
        data: &Path,
    ) -> (
        BufferReceiver,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        start_with(logs, data, sonde_config::FileFormat::Text).await
    }

    async fn start_with(
        logs: &Path,
        data: &Path,
        format: sonde_config::FileFormat,
    ) -> (
        BufferReceiver,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let metrics = Registry::default();
        let (tx, rx) = channel("e", &BufferConfig::default(), &metrics);
        let router = Router::new(vec![Route {
            exporter: "e".into(),
            inputs: None,
            signals: vec![Signal::Logs],
            buffer: tx,
            bulkhead: None,
        }]);
        let shutdown = CancellationToken::new();
        let cx =
            crate::sources::context("f", router, metrics, shutdown.clone(), data.to_path_buf());
        let cfg = FileSourceConfig {
            include: vec![format!("{}/*.log", logs.display())],
            start_at: StartAt::Beginning,
            scan_interval: sonde_config::Duration::from_millis(20),
            poll_interval: sonde_config::Duration::from_millis(10),
            checkpoint_interval: sonde_config::Duration::from_millis(10),
            format,
            ..Default::default()
        };
        let task = tokio::spawn(build(&cfg, cx).await.unwrap());
        (rx, shutdown, task)
    }

    fn offsets(data: &Path) -> Vec<u64> {
        match Store::open(data, "f").unwrap().load().unwrap() {
            Some(e) => e.iter().map(|e| e.offset).collect(),
            None => vec![],
        }
    }

    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpoint_advances_only_when_the_export_has_finished() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, data) = (dir.path().join("logs"), dir.path().join("data"));
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("a.log"), "one\ntwo\n").unwrap();
        let (mut rx, shutdown, task) = start(&logs, &data).await;
        let q = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(q.batch.items, 2);
        // Accepted by the buffer but not exported: the position stays at the start.
        eventually("the file to be registered", || offsets(&data) == [0]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(offsets(&data), [0]);
        q.ack();
        eventually("the checkpoint to advance", || offsets(&data) == [8]).await;
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_dropped_at_shutdown_is_read_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, data) = (dir.path().join("logs"), dir.path().join("data"));
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("a.log"), "one\n").unwrap();
        let (mut rx, shutdown, task) = start(&logs, &data).await;
        let q = rx.recv().await.unwrap();
        drop(q); // interrupted: never exported
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(offsets(&data), [0]);
        std::fs::write(logs.join("a.log"), "one\ntwo\n").unwrap();
        let (mut rx, shutdown, task) = start(&logs, &data).await;
        let q = rx.recv().await.unwrap();
        assert_eq!(q.batch.items, 2, "both lines, from the checkpoint");
        q.ack();
        eventually("the checkpoint to advance", || offsets(&data) == [8]).await;
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_partial_line_holds_the_checkpoint_where_it_began() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use prost::Message;
        let dir = tempfile::tempdir().unwrap();
        let (logs, data) = (dir.path().join("logs"), dir.path().join("data"));
        std::fs::create_dir(&logs).unwrap();
        let first = "2026-12-07T10:10:10Z stdout F one\n";
        let partial = "2026-12-07T10:10:11Z stdout P two \n";
        std::fs::write(logs.join("0.log"), format!("{first}{partial}")).unwrap();
        let (mut rx, shutdown, task) =
            start_with(&logs, &data, sonde_config::FileFormat::Cri).await;
        let q = rx.recv().await.unwrap();
        assert_eq!(q.batch.items, 1);
        q.ack();
        let at = first.len() as u64;
        eventually("the checkpoint to reach the partial line", || {
            offsets(&data) == [at]
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(offsets(&data), [at], "not past the waiting piece");
        let last = "2026-12-07T10:10:12Z stdout F three\n";
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(logs.join("0.log"))
            .unwrap();
        std::io::Write::write_all(&mut f, last.as_bytes()).unwrap();
        let q = rx.recv().await.unwrap();
        assert_eq!(q.batch.items, 1);
        let req = ExportLogsServiceRequest::decode(&q.batch.payload[..]).unwrap();
        let r = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(
            r.body.as_ref().unwrap().value,
            Some(
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    "two three".into()
                )
            )
        );
        assert_eq!(
            r.time_unix_nano, 1_796_638_211_000_000_000,
            "the first piece's time"
        );
        q.ack();
        let end = (first.len() + partial.len() + last.len()) as u64;
        eventually("the checkpoint to pass the joined line", || {
            offsets(&data) == [end]
        })
        .await;
        shutdown.cancel();
        task.await.unwrap();
    }
}
