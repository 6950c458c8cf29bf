//! `type = "journald"`: reads the systemd journal's own files — no journalctl, no libsystemd —
//! and emits one OTLP log record per entry, following the journal live, across rotation,
//! archiving and vacuum, and resuming after a restart right after the last delivered entry.
//!
//! The model is the file source's: a dedicated thread ([`thread`]) does all file I/O — scanning
//! the directory, reading the files ([`reader`] over [`header`] and [`object`]), merging them in
//! time order ([`merge`]), filtering and encoding ([`map`]) — and hands batches to this
//! module's async loop through a channel of two. The loop pushes each batch into the buffers
//! with an [`Ack`]; only when every exporter that took it has finished with it do its file
//! positions advance in the [`checkpoint::Tracker`], and the checkpoint file is written every
//! `checkpoint_interval`. Backpressure: while the router waits for room, nothing is taken from
//! the channel and the thread stops reading.
//!
//! Why a reader of our own rather than libsystemd: see ARCHITECTURE.md (it runs where
//! libsystemd is absent, e.g. the FROM-scratch container, and keeps the agent one static-ish
//! binary).

pub mod checkpoint;
pub mod header;
pub mod map;
pub mod merge;
pub mod object;
pub mod reader;
#[cfg(test)]
mod tests;
mod thread;

use super::file::encode;
use super::file::watch::Stop;
use super::file::AbandonOnDrop;
use super::{SourceContext, SourceTask};
use crate::host::HostFacts;
use crate::pipeline::buffer::Wait;
use checkpoint::{Position, Store, StoreError, Tracker};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use sonde_config::{FieldSet, JournaldSourceConfig, StartAt};
use sonde_core::metrics::{Counter, Gauge, Registry};
use sonde_core::{Ack, Batch, BuildError, Signal};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tracing::{info, warn};

/// How long a stopping source waits for the acknowledgements of what it already sent.
const SHUTDOWN_ACK_WAIT: Duration = Duration::from_secs(5);
/// Record bytes / records per batch handed to the pipeline.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_ITEMS: u64 = 4096;

/// The source's counters, registered once.
#[derive(Clone)]
pub struct Counters {
    pub entries: Counter,
    pub records: Counter,
    pub filtered: Counter,
    pub bytes: Counter,
    pub corrupt_files: Counter,
    pub corrupt_fields: Counter,
    pub large_fields: Counter,
    pub open_files: Gauge,
    pub checkpoint_lag: Gauge,
    pub checkpoint_writes: Counter,
    pub checkpoint_errors: Counter,
}

impl Counters {
    pub fn new(r: &Registry, source: &str) -> Self {
        let l = [("source", source)];
        let c = |name, help| r.counter(name, help, &l);
        let dropped = |reason| {
            r.counter(
                "sonde_journald_skipped_fields_total",
                "Fields of journal entries left out, by reason.",
                &[("source", source), ("reason", reason)],
            )
        };
        Counters {
            entries: c(
                "sonde_journald_entries_total",
                "Journal entries read (kept or filtered out).",
            ),
            records: c(
                "sonde_source_received_items_total",
                "Items a source produced or received.",
            ),
            filtered: c(
                "sonde_journald_filtered_entries_total",
                "Journal entries left out by the units and priority filters.",
            ),
            bytes: c(
                "sonde_journald_read_bytes_total",
                "Bytes of journal fields read (decompressed).",
            ),
            corrupt_files: c(
                "sonde_journald_corrupt_files_total",
                "Journal files found damaged (read up to the damage, then skipped).",
            ),
            corrupt_fields: dropped("corrupt"),
            large_fields: dropped("too_large"),
            open_files: r.gauge(
                "sonde_journald_open_files",
                "Journal files held open by the reader.",
                &l,
            ),
            checkpoint_lag: r.gauge(
                "sonde_journald_checkpoint_lag_seconds",
                "Realtime of the newest entry read minus that of the newest delivered one.",
                &l,
            ),
            checkpoint_writes: c(
                "sonde_journald_checkpoint_writes_total",
                "Checkpoint files written.",
            ),
            checkpoint_errors: c(
                "sonde_journald_checkpoint_errors_total",
                "Checkpoint writes that failed (retried).",
            ),
        }
    }
}

/// Why a journald source could not start.
#[derive(Debug, thiserror::Error)]
pub enum JournaldError {
    #[error("cannot keep journal checkpoints: {0}")]
    Checkpoints(#[from] StoreError),
}

/// A batch from the reader thread: the encoded records (if any entry was kept) and the file
/// positions they bring the journal to.
pub struct Outgoing {
    pub payload: Option<(bytes::Bytes, u64)>,
    pub positions: Vec<Position>,
}

/// The journal directory: the configured one, else `/var/log/journal` when it exists, else
/// `/run/log/journal`.
pub fn directory(cfg: &JournaldSourceConfig) -> PathBuf {
    match &cfg.directory {
        Some(d) => PathBuf::from(d),
        None if std::path::Path::new("/var/log/journal").is_dir() => "/var/log/journal".into(),
        None => "/run/log/journal".into(),
    }
}

/// Opens the checkpoint store and returns the source's task. Fails when the checkpoint
/// directory cannot be written.
pub async fn build(
    cfg: &JournaldSourceConfig,
    cx: SourceContext,
) -> Result<SourceTask, BuildError> {
    let name: &str = &cx.name;
    let store = Store::open(&cx.data_dir, name).map_err(|e| cx.error(JournaldError::from(e)))?;
    let (positions, first_start) = match store.load() {
        Ok(Some(p)) => (p, false),
        Ok(None) => (vec![], true),
        Err(e) => {
            warn!(source = name, error = %e, "journal checkpoints unreadable; files are read from their beginning");
            (vec![], false)
        }
    };
    let dir = directory(cfg);
    info!(source = name, directory = %dir.display(), checkpoints = positions.len(), store = %store.path().display(), "journald source starting");
    let tracker = Arc::new(Mutex::new(Tracker::new(positions)));
    let counters = Counters::new(&cx.metrics, name);
    let stop = Stop::default();
    let reader = thread::Reader {
        dir,
        start_at_end: first_start && cfg.start_at == StartAt::End,
        poll: cfg.poll_interval.get(),
        filter: map::Filter {
            units: cfg.units.clone(),
            exclude_units: cfg.exclude_units.clone(),
            max_priority: cfg.priority.level(),
        },
        mapper: map::Mapper::new(cfg.fields == FieldSet::Default),
        encoder: encode::Encoder::new(&resource(cfg), &scope(), BATCH_BYTES),
        tracker: tracker.clone(),
        counters: counters.clone(),
        stop: stop.clone(),
        batch_items: BATCH_ITEMS,
        batch_bytes: BATCH_BYTES,
    };
    let parts = Parts {
        reader,
        tracker,
        store: Arc::new(store),
        counters,
        stop,
    };
    Ok(Box::pin(run(cx, parts, cfg.checkpoint_interval.get())))
}

fn resource(cfg: &JournaldSourceConfig) -> Resource {
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
        name: "sonde.journald".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

pub(crate) fn lock(t: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

struct Parts {
    reader: thread::Reader,
    tracker: Arc<Mutex<Tracker>>,
    store: Arc<Store>,
    counters: Counters,
    stop: Stop,
}

type Sending = Pin<Box<dyn Future<Output = bool> + Send>>;

async fn run(cx: SourceContext, parts: Parts, checkpoint_interval: Duration) {
    let Parts {
        reader,
        tracker,
        store,
        counters,
        stop,
    } = parts;
    let name: &str = &cx.name;
    let (tx, mut rx) = mpsc::channel::<Outgoing>(2);
    let thread = match std::thread::Builder::new()
        .name(format!("sonde-journald-{name}"))
        .spawn(move || reader.run(tx))
    {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(source = name, error = %e, "cannot start the journal reader thread; source stopped");
            return;
        }
    };
    let acked = Arc::new(Notify::new());
    let mut tick = tokio::time::interval(checkpoint_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut persist = Persist {
        store,
        tracker: tracker.clone(),
        counters: counters.clone(),
        last_warn: None,
        source: cx.name.clone(),
    };
    let mut sending: Option<Sending> = None;
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
                    tracing::error!(source = name, "the journal reader thread stopped unexpectedly; no more entries are read");
                    break;
                };
                sending = start_send(&cx, &tracker, &acked, out);
            }
            _ = tick.tick() => persist.run().await,
        }
    }
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
        warn!(source = name, "journal reader thread did not stop in time");
    }
    info!(
        source = name,
        entries = counters.entries.get(),
        records = counters.records.get(),
        corrupt_files = counters.corrupt_files.get(),
        unacknowledged_batches = lock(&tracker).pending(),
        "journald source stopped"
    );
}

/// Registers a batch with the tracker and returns the future that pushes it into the buffers
/// (`None` when there is nothing to push: a position-only update is complete at once).
fn start_send(
    cx: &SourceContext,
    tracker: &Arc<Mutex<Tracker>>,
    acked: &Arc<Notify>,
    out: Outgoing,
) -> Option<Sending> {
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
    let guard = AbandonOnDrop(Some(ack));
    Some(Box::pin(async move {
        let sent = router.send(batch, Wait::Forever).await.is_ok();
        if sent {
            guard.disarm();
        }
        sent
    }))
}

/// Writes the checkpoint file when positions changed.
struct Persist {
    store: Arc<Store>,
    tracker: Arc<Mutex<Tracker>>,
    counters: Counters,
    last_warn: Option<Instant>,
    source: Arc<str>,
}

impl Persist {
    async fn run(&mut self) {
        let Some(positions) = lock(&self.tracker).take_dirty() else {
            return;
        };
        let store = self.store.clone();
        let err = match tokio::task::spawn_blocking(move || store.save(positions)).await {
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
            warn!(source = %self.source, error = %err, "cannot write journal checkpoints; retrying (a restart would read entries again)");
        }
    }
}
