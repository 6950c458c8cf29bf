//! The export worker of one exporter: takes batches from its buffer, merges them per signal
//! (`batch.max_items`, `batch.max_bytes`, `batch.max_age`), and exports each merged batch with a
//! per-call timeout and retries (exponential backoff, full jitter, the destination's hints).
//!
//! Decisions per failure: retryable → wait and try the same batch again until `retry.max_elapsed`,
//! then drop and count (`reason="retries_exhausted"`); permanent → drop and count at once
//! (`reason="rejected"`) so one poisonous batch never blocks the queue. When the agent's shutdown
//! deadline passes (`abort`), whatever is still unsent is dropped and counted
//! (`reason="shutdown"`) — unless the buffer is on disk: then it is simply not acknowledged and
//! stays in the spool for the next start.

use super::buffer::{BufferReceiver, Queued};
use crate::health::ExporterHealth;
use bytes::BytesMut;
use sonde_config::{BatchConfig, RetryConfig};
use sonde_core::backoff::Backoff;
use sonde_core::log_limit::LogLimit;
use sonde_core::metrics::{Counter, Histogram, Registry, EXPORT_SECONDS_BUCKETS};
use sonde_core::{wire, Batch, DynExporter, ExportError, Signal};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn, Instrument};

pub struct WorkerConfig {
    pub name: Arc<str>,
    pub batch: BatchConfig,
    pub timeout: Duration,
    pub retry: RetryConfig,
    /// Export calls in flight at once (1 keeps batches in order).
    pub concurrency: usize,
    /// Where the worker reports continuous failure (read by `/health/ready`).
    pub health: Arc<ExporterHealth>,
}

struct Counters {
    sent_items: Counter,
    sent_batches: Counter,
    rejected_items: Counter,
    retries: Counter,
    dropped_rejected: Counter,
    dropped_exhausted: Counter,
    dropped_shutdown: Counter,
    failed_calls: Counter,
    /// Duration of each export call, by outcome.
    call_ok: Histogram,
    call_failed: Histogram,
}

impl Counters {
    fn new(r: &Registry, name: &str) -> Self {
        let dropped = |reason| {
            r.counter(
                "sonde_exporter_dropped_items_total",
                "Items an exporter gave up on, by reason.",
                &[("exporter", name), ("reason", reason)],
            )
        };
        let c = |n, h| r.counter(n, h, &[("exporter", name)]);
        let duration = |outcome| {
            r.histogram(
                "sonde_exporter_call_duration_seconds",
                "Duration of export calls (one per attempt), by outcome; a timed-out call counts its timeout.",
                &[("exporter", name), ("outcome", outcome)],
                EXPORT_SECONDS_BUCKETS,
            )
        };
        Counters {
            sent_items: c(
                "sonde_exporter_sent_items_total",
                "Items exported successfully.",
            ),
            sent_batches: c(
                "sonde_exporter_sent_batches_total",
                "Export calls that succeeded.",
            ),
            rejected_items: c(
                "sonde_exporter_rejected_items_total",
                "Items the destination reported as rejected in a partial success.",
            ),
            retries: c("sonde_exporter_retries_total", "Export calls retried."),
            dropped_rejected: dropped("rejected"),
            dropped_exhausted: dropped("retries_exhausted"),
            dropped_shutdown: dropped("shutdown"),
            failed_calls: c(
                "sonde_exporter_failed_calls_total",
                "Export calls that failed.",
            ),
            call_ok: duration("success"),
            call_failed: duration("failure"),
        }
    }
}

/// Batches of one signal waiting to be merged.
#[derive(Default)]
struct Pending {
    queued: Vec<Queued>,
    items: u64,
    bytes: usize,
    since: Option<Instant>,
}

impl Pending {
    fn take(&mut self) -> Pending {
        std::mem::take(self)
    }
}

fn slot(s: Signal) -> usize {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

/// Runs until the buffer is closed and drained. `abort` fires when the shutdown deadline has
/// passed: then nothing more is attempted and what is left is counted as dropped.
pub async fn run(
    cfg: WorkerConfig,
    exporter: DynExporter,
    mut rx: BufferReceiver,
    metrics: Registry,
    abort: CancellationToken,
) {
    let counters = Counters::new(&metrics, &cfg.name);
    let max_bytes = cfg.batch.max_bytes.as_usize();
    let max_age = cfg.batch.max_age.get();
    let max_items = cfg.batch.max_items as u64;
    let slots = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let shared = Arc::new(Shared {
        persistent: rx.persistent(),
        cfg,
        exporter,
        counters,
        abort,
        retry_log: LogLimit::default(),
        drop_log: LogLimit::default(),
    });
    let mut inflight = JoinSet::new();
    let mut pending: [Pending; 3] = Default::default();
    loop {
        let next_due = pending
            .iter()
            .filter_map(|p| p.since)
            .min()
            .map(|t| t + max_age);
        let mut due = Vec::new();
        tokio::select! {
            q = rx.recv() => {
                let Some(q) = q else { break };
                let p = &mut pending[slot(q.batch.signal)];
                if !p.queued.is_empty() && p.bytes + q.batch.payload.len() > max_bytes {
                    due.push(p.take());
                }
                p.items += q.batch.items;
                p.bytes += q.batch.payload.len();
                p.since.get_or_insert_with(Instant::now);
                p.queued.push(q);
                if p.items >= max_items || p.bytes >= max_bytes {
                    due.push(p.take());
                }
            }
            _ = sleep_until_opt(next_due) => {
                let now = Instant::now();
                for p in pending.iter_mut() {
                    if p.since.is_some_and(|t| t + max_age <= now) {
                        due.push(p.take());
                    }
                }
            }
        }
        for p in due {
            start_flush(&shared, &slots, &mut inflight, p).await;
        }
    }
    for p in pending.iter_mut() {
        let rest = p.take();
        start_flush(&shared, &slots, &mut inflight, rest).await;
    }
    while inflight.join_next().await.is_some() {}
    rx.close().await;
    if let Err(e) = shared.exporter.shutdown().await {
        warn!(exporter = %shared.cfg.name, error = %e, "exporter did not shut down cleanly");
    }
}

/// Starts exporting `p` once one of the `concurrency` slots is free (waiting here is what
/// makes a slow destination push back on the buffer).
async fn start_flush(
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    inflight: &mut JoinSet<()>,
    p: Pending,
) {
    if p.queued.is_empty() {
        return;
    }
    let Ok(permit) = slots.clone().acquire_owned().await else {
        return;
    };
    while inflight.try_join_next().is_some() {}
    let shared = shared.clone();
    inflight.spawn(async move {
        shared.flush(p).await;
        drop(permit);
    });
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// How an export attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    /// Sent, or given up on for good (counted): the batch is finished with.
    Finished,
    /// Stopped by the shutdown deadline: not acknowledged, so a disk buffer keeps it.
    Aborted,
}

struct Shared {
    /// The buffer keeps what is not acknowledged (disk): nothing is lost at shutdown.
    persistent: bool,
    cfg: WorkerConfig,
    exporter: DynExporter,
    counters: Counters,
    abort: CancellationToken,
    /// Warnings of failed attempts (retried).
    retry_log: LogLimit,
    /// Errors of dropped batches (refused for good, or retried too long); the counters count
    /// every one.
    drop_log: LogLimit,
}

impl Shared {
    /// Merges the pending batches (concatenation) and exports the result, split at top-level
    /// boundaries when a single batch alone is larger than `max_bytes`. Acknowledges the
    /// buffered batches once every piece is finished with.
    async fn flush(&self, p: Pending) {
        let Some(first) = p.queued.first() else {
            return;
        };
        let signal = first.batch.signal;
        let source = first.batch.source.clone();
        let merged = if p.queued.len() == 1 {
            first.batch.clone()
        } else {
            let mut buf = BytesMut::with_capacity(p.bytes);
            for q in &p.queued {
                buf.extend_from_slice(&q.batch.payload);
            }
            Batch::from_trusted(signal, buf.freeze(), p.items, source.clone())
        };
        let max_bytes = self.cfg.batch.max_bytes.as_usize();
        let mut done = Done::Finished;
        let pieces = match wire::split(&merged.payload, max_bytes) {
            Ok(pieces) if merged.payload.len() > max_bytes && pieces.len() > 1 => pieces,
            _ => vec![merged.payload.clone()],
        };
        if pieces.len() == 1 {
            done = self.export(merged).await;
        } else {
            for piece in pieces {
                let items = wire::validate(signal, &piece).unwrap_or(0);
                let piece = Batch::from_trusted(signal, piece, items, source.clone());
                if self.export(piece).await == Done::Aborted {
                    done = Done::Aborted;
                }
            }
        }
        // Space in the buffer returns only now that the export is over.
        for q in p.queued {
            if done == Done::Finished {
                q.ack();
            }
        }
    }

    /// Exports one batch until it is finished with, inside an `export` span (the agent's own
    /// traces, when `agent.telemetry` is on) whose events record each retry.
    async fn export(&self, batch: Batch) -> Done {
        let span = tracing::info_span!(
            "export",
            exporter = %self.cfg.name,
            signal = %batch.signal,
            items = batch.items,
            bytes = batch.payload.len()
        );
        self.export_attempts(batch).instrument(span).await
    }

    async fn export_attempts(&self, batch: Batch) -> Done {
        let started = Instant::now();
        let mut backoff = Backoff::new(
            self.cfg.retry.initial_backoff.get(),
            self.cfg.retry.max_backoff.get(),
        );
        loop {
            if self.abort.is_cancelled() {
                if !self.persistent {
                    self.counters.dropped_shutdown.add(batch.items);
                }
                return Done::Aborted;
            }
            let call_started = Instant::now();
            let attempt = tokio::select! {
                r = tokio::time::timeout(self.cfg.timeout, self.exporter.export(&batch)) => r,
                _ = self.abort.cancelled() => continue,
            };
            let took = call_started.elapsed().as_secs_f64();
            match &attempt {
                Ok(Ok(_)) => self.counters.call_ok.observe(took),
                _ => self.counters.call_failed.observe(took),
            }
            let err = match attempt {
                Ok(Ok(outcome)) => {
                    self.cfg.health.success();
                    let accepted = batch.items.saturating_sub(outcome.rejected_items);
                    self.counters.sent_items.add(accepted);
                    self.counters.sent_batches.inc();
                    if outcome.rejected_items > 0 {
                        self.counters.rejected_items.add(outcome.rejected_items);
                        warn!(exporter = %self.cfg.name, rejected = outcome.rejected_items, "destination rejected part of a batch");
                    }
                    debug!(exporter = %self.cfg.name, items = batch.items, bytes = batch.payload.len(), "exported");
                    return Done::Finished;
                }
                Ok(Err(e)) => e,
                Err(_) => ExportError::retryable(format!("timed out after {:?}", self.cfg.timeout)),
            };
            self.counters.failed_calls.inc();
            self.cfg.health.failure(&err.to_string());
            match err {
                ExportError::Permanent { reason } => {
                    self.counters.dropped_rejected.add(batch.items);
                    if let Some(suppressed) = self.drop_log.check() {
                        error!(exporter = %self.cfg.name, items = batch.items, error = %reason, suppressed, "export refused for good; batch dropped");
                    }
                    return Done::Finished;
                }
                ExportError::Retryable {
                    reason,
                    retry_after,
                } => {
                    // A zero `max_elapsed` ("unlimited") never gives up: the data waits.
                    let max_elapsed = self.cfg.retry.max_elapsed.get();
                    if !max_elapsed.is_zero() && started.elapsed() >= max_elapsed {
                        self.counters.dropped_exhausted.add(batch.items);
                        if let Some(suppressed) = self.drop_log.check() {
                            error!(exporter = %self.cfg.name, items = batch.items, error = %reason, suppressed, "giving up on a batch after retrying for {:?}", self.cfg.retry.max_elapsed.get());
                        }
                        return Done::Finished;
                    }
                    let wait = backoff.next(retry_after);
                    debug!(error = %reason, retry_in = ?wait, "retrying");
                    self.counters.retries.inc();
                    if let Some(suppressed) = self.retry_log.check() {
                        warn!(exporter = %self.cfg.name, error = %reason, retry_in = ?wait, suppressed, "export failed, retrying");
                    }
                    // Without a hint from the destination, a success of another call ends the
                    // wait: when it comes back, the oldest batches go first, so a disk buffer's
                    // cursor (which moves over finished records in order) follows the exports.
                    let hinted = retry_after.is_some();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.cfg.health.recovered(), if !hinted => {}
                        _ = self.abort.cancelled() => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::buffer::{channel, BufferSender, Wait};
    use sonde_config::{BufferConfig, ByteSize, Duration as CfgDuration};
    use sonde_core::{BoxFuture, ExportOutcome, Exporter};
    use std::sync::Mutex;

    /// Records what it is sent; fails the first `fail` calls with `error`.
    struct Recorder {
        got: Mutex<Vec<Batch>>,
        fail: Mutex<u32>,
        error: ExportError,
    }

    impl Exporter for Recorder {
        fn export<'a>(
            &'a self,
            batch: &'a Batch,
        ) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
            Box::pin(async move {
                let mut fail = self.fail.lock().unwrap();
                if *fail > 0 {
                    *fail -= 1;
                    return Err(self.error.clone());
                }
                self.got.lock().unwrap().push(batch.clone());
                Ok(ExportOutcome::default())
            })
        }
    }

    fn recorder(fail: u32, error: ExportError) -> Arc<Recorder> {
        Arc::new(Recorder {
            got: Mutex::new(vec![]),
            fail: Mutex::new(fail),
            error,
        })
    }

    fn span_batch(n: usize) -> Batch {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        use prost::Message;
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..n)
                        .map(|i| Span {
                            name: format!("s{i}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Batch::new(Signal::Traces, req.encode_to_vec().into(), Arc::from("src")).unwrap()
    }

    fn cfg(max_items: usize, max_age_ms: u64) -> WorkerConfig {
        WorkerConfig {
            name: "t".into(),
            batch: BatchConfig {
                max_items,
                max_bytes: ByteSize::mib(1),
                max_age: CfgDuration::from_millis(max_age_ms),
            },
            timeout: Duration::from_secs(1),
            retry: RetryConfig {
                initial_backoff: CfgDuration::from_millis(1),
                max_backoff: CfgDuration::from_millis(5),
                max_elapsed: CfgDuration::from_secs(2),
            },
            concurrency: 1,
            health: Default::default(),
        }
    }

    /// A worker running `cfg` against `exporter`, fed by a memory buffer, until the buffer is
    /// closed (dropping `tx`) or `abort` fires.
    struct Running {
        tx: BufferSender,
        task: tokio::task::JoinHandle<()>,
        metrics: Registry,
    }

    fn start(cfg: WorkerConfig, exporter: DynExporter, abort: CancellationToken) -> Running {
        let metrics = Registry::default();
        let (tx, rx) = channel("t", &BufferConfig::default(), &metrics);
        let task = tokio::spawn(run(cfg, exporter, rx, metrics.clone(), abort));
        Running { tx, task, metrics }
    }

    /// Runs a worker on `batches` until it has finished with them all (the buffer closed after
    /// the last); returns its metrics.
    async fn run_all(cfg: WorkerConfig, exporter: DynExporter, batches: Vec<Batch>) -> Registry {
        let Running { tx, task, metrics } = start(cfg, exporter, CancellationToken::new());
        for b in batches {
            tx.push(b, Wait::Forever).await.unwrap();
        }
        drop(tx);
        task.await.unwrap();
        metrics
    }

    #[tokio::test]
    async fn merges_batches_by_concatenation_up_to_max_items() {
        let rec = recorder(0, ExportError::permanent("x"));
        let r = run_all(
            cfg(10, 60_000),
            rec.clone(),
            (0..5).map(|_| span_batch(4)).collect(),
        )
        .await;
        let got = rec.got.lock().unwrap();
        let sizes: Vec<u64> = got.iter().map(|b| b.items).collect();
        // 4+4+4 reaches 10 → flush 12; then 4+4 flushed at close.
        assert_eq!(sizes, [12, 8]);
        for b in got.iter() {
            assert_eq!(wire::validate(Signal::Traces, &b.payload).unwrap(), b.items);
        }
        assert_eq!(r.counter_sum("sonde_exporter_sent_items_total", &[]), 20);
    }

    #[tokio::test]
    async fn flushes_on_max_age() {
        let rec = recorder(0, ExportError::permanent("x"));
        let Running { tx, .. } = start(cfg(1000, 20), rec.clone(), CancellationToken::new());
        tx.push(span_batch(3), Wait::Forever).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while rec.got.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "max_age flush never happened");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(rec.got.lock().unwrap()[0].items, 3);
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_until_success() {
        let rec = recorder(3, ExportError::retryable("503"));
        let r = run_all(cfg(1, 10), rec.clone(), vec![span_batch(2)]).await;
        assert_eq!(rec.got.lock().unwrap().len(), 1);
        assert_eq!(r.counter_sum("sonde_exporter_retries_total", &[]), 3);
        assert_eq!(r.counter_sum("sonde_exporter_dropped_items_total", &[]), 0);
    }

    #[tokio::test]
    async fn permanent_failures_drop_and_count_without_blocking() {
        let rec = recorder(1, ExportError::permanent("400 bad request"));
        let r = run_all(cfg(1, 10), rec.clone(), vec![span_batch(2), span_batch(5)]).await;
        assert_eq!(
            r.counter_sum(
                "sonde_exporter_dropped_items_total",
                &[("reason", "rejected")]
            ),
            2
        );
        assert_eq!(rec.got.lock().unwrap()[0].items, 5);
    }

    #[tokio::test]
    async fn abort_drops_and_counts_what_is_left() {
        let rec = recorder(u32::MAX, ExportError::retryable("down"));
        let abort = CancellationToken::new();
        let Running {
            tx,
            task,
            metrics: r,
        } = start(cfg(1, 10), rec.clone(), abort.clone());
        tx.push(span_batch(2), Wait::Forever).await.unwrap();
        tx.push(span_batch(3), Wait::Forever).await.unwrap();
        drop(tx);
        tokio::time::sleep(Duration::from_millis(30)).await;
        abort.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("worker stops after abort")
            .unwrap();
        assert_eq!(
            r.counter_sum(
                "sonde_exporter_dropped_items_total",
                &[("reason", "shutdown")]
            ),
            5
        );
    }

    #[tokio::test]
    async fn oversized_batch_is_split_at_resource_boundaries() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;
        let rec = recorder(0, ExportError::permanent("x"));
        let mut c = cfg(1_000_000, 10);
        let one = span_batch(50);
        c.batch.max_bytes = ByteSize(one.payload.len() as u64 + 10);
        // Three resources in one request, each ~max_bytes: must go out as three calls.
        let mut payload = Vec::new();
        for _ in 0..3 {
            payload.extend_from_slice(&one.payload);
        }
        let big = Batch::new(Signal::Traces, payload.into(), Arc::from("src")).unwrap();
        run_all(c, rec.clone(), vec![big]).await;
        let got = rec.got.lock().unwrap();
        assert_eq!(got.len(), 3);
        for b in got.iter() {
            assert_eq!(
                ExportTraceServiceRequest::decode(&b.payload[..])
                    .unwrap()
                    .resource_spans[0]
                    .scope_spans[0]
                    .spans
                    .len(),
                50
            );
        }
    }

    /// Sleeps per call and records the most calls seen in flight at once.
    struct Slow {
        now: std::sync::atomic::AtomicUsize,
        max: std::sync::atomic::AtomicUsize,
    }

    impl Exporter for Slow {
        fn export<'a>(
            &'a self,
            _batch: &'a Batch,
        ) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
            use std::sync::atomic::Ordering::SeqCst;
            Box::pin(async move {
                let n = self.now.fetch_add(1, SeqCst) + 1;
                self.max.fetch_max(n, SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.now.fetch_sub(1, SeqCst);
                Ok(ExportOutcome::default())
            })
        }
    }

    #[tokio::test]
    async fn concurrency_bounds_the_calls_in_flight() {
        let slow = Arc::new(Slow {
            now: 0.into(),
            max: 0.into(),
        });
        let mut c = cfg(1, 10);
        c.concurrency = 3;
        let r = run_all(c, slow.clone(), (0..12).map(|_| span_batch(1)).collect()).await;
        assert_eq!(slow.max.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(r.counter_sum("sonde_exporter_sent_items_total", &[]), 12);
    }
}
