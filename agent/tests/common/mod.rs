//! Helpers shared by the spool's integration tests (and `examples/spool_tool.rs`): batches that
//! carry an id, spools opened in a temp dir, export workers, and a destination that can be down.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // tests and benchmarks may unwrap

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use sonde::pipeline::buffer::spool::{self, Recovered, SpoolConfig, SpoolReceiver, SpoolSender};
use sonde::pipeline::buffer::Wait;
use sonde::pipeline::worker::WorkerConfig;
use sonde_config::{
    BatchConfig, ByteSize, Duration as D, Fsync, RetryConfig, SpoolCompression, WhenFull,
};
use sonde_core::metrics::Registry;
use sonde_core::{Batch, BoxFuture, ExportError, ExportOutcome, Exporter, Signal};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A logs batch with one record whose body is `id-<id>`, padded to about `pad` bytes.
pub fn log_batch(id: u64, pad: usize) -> Batch {
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(format!(
                            "id-{id} {}",
                            "x".repeat(pad)
                        ))),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Batch::new(Signal::Logs, req.encode_to_vec().into(), Arc::from("test")).unwrap()
}

/// The ids in a (possibly merged) logs batch, in order.
pub fn ids(batch: &Batch) -> Vec<u64> {
    let req = ExportLogsServiceRequest::decode(&batch.payload[..]).unwrap();
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                if let Some(AnyValue {
                    value: Some(any_value::Value::StringValue(s)),
                }) = &r.body
                {
                    let n = s.trim_start_matches("id-").split(' ').next().unwrap();
                    out.push(n.parse().unwrap());
                }
            }
        }
    }
    out
}

pub fn config(dir: &Path, max_size: u64, segment_size: u64, when_full: WhenFull) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        name: Arc::from("t"),
        max_size,
        when_full,
        fsync: Fsync::Batch,
        // Stored as is (the default), so that tests can size a spool in records; the compressed
        // format is tested where `compression` is set.
        compression: SpoolCompression::None,
        segment_size,
    }
}

/// An export worker `t` that merges up to `max_items` items (flushing every 5 ms), retries for
/// 10 minutes with a backoff from 5 ms to `max_backoff_ms`, with `concurrency` calls in flight.
pub fn worker_config(max_items: usize, max_backoff_ms: u64, concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        name: "t".into(),
        batch: BatchConfig {
            max_items,
            max_bytes: ByteSize::mib(1),
            max_age: D::from_millis(5),
        },
        timeout: std::time::Duration::from_secs(5),
        retry: RetryConfig {
            initial_backoff: D::from_millis(5),
            max_backoff: D::from_millis(max_backoff_ms),
            max_elapsed: D::from_secs(600),
        },
        concurrency,
        health: Default::default(),
    }
}

pub async fn open(cfg: &SpoolConfig, r: &Registry) -> (SpoolSender, SpoolReceiver, Recovered) {
    spool::open(cfg.clone(), r).await.unwrap()
}

/// Appends records `0..n` (padded to `pad` bytes) to the spool of `cfg`, exports and
/// acknowledges the first `acked`, and closes the spool: the rest stays on disk.
pub async fn leave_a_backlog(cfg: &SpoolConfig, n: u64, pad: usize, acked: usize) {
    let (tx, mut rx, _) = open(cfg, &Registry::default()).await;
    for i in 0..n {
        tx.push(log_batch(i, pad), Wait::No).await.unwrap();
    }
    for _ in 0..acked {
        rx.recv().await.unwrap().1.ack();
    }
    drop(tx);
    rx.close().await;
}

/// Reads everything ready now, acknowledging it; returns the ids in order.
pub async fn drain(rx: &mut SpoolReceiver) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some((b, t)) = rx.try_recv().await {
        out.extend(ids(&b));
        t.ack();
    }
    out
}

pub fn seg_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// A destination that records the ids it receives and refuses everything while `down`.
#[derive(Default)]
pub struct Sink {
    pub down: AtomicBool,
    pub got: Mutex<Vec<u64>>,
}

impl Exporter for Sink {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(ExportError::retryable("sink down"));
            }
            self.got.lock().unwrap().extend(ids(batch));
            Ok(ExportOutcome::default())
        })
    }
}

/// Waits (at most 10 s) until `cond` holds; fails the test naming `what` otherwise.
pub async fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_for(what, 10, cond).await
}

/// Waits (at most `secs` seconds) until `cond` holds; fails the test naming `what` otherwise.
pub async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Appends records `0..n` (padded to `pad` bytes), exports and acknowledges them all, and waits
/// until the cursor thread has kept an exported segment file as the spare in `dir`; returns
/// its path.
pub async fn keep_a_spare(
    tx: &SpoolSender,
    rx: &mut SpoolReceiver,
    dir: &Path,
    n: u64,
    pad: usize,
) -> std::path::PathBuf {
    for i in 0..n {
        tx.push(log_batch(i, pad), Wait::No).await.unwrap();
    }
    assert_eq!(drain(rx).await, (0..n).collect::<Vec<_>>());
    let spare = dir.join(spool::SPARE);
    wait_until("an exported segment kept as the spare", || spare.exists()).await;
    spare
}
