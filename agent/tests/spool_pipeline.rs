//! The disk buffer inside the pipeline: router → disk buffer → export worker → a destination
//! that can be down.

#![allow(clippy::unwrap_used)] // tests and benchmarks may unwrap

mod common;

use common::*;
use sonde::pipeline::buffer::{self, Wait};
use sonde::pipeline::router::{Route, Router};
use sonde::pipeline::worker;
use sonde_config::{BufferConfig, BufferKind, ByteSize, SpoolCompression};
use sonde_core::metrics::Registry;
use sonde_core::Signal;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn disk(max: u64) -> BufferConfig {
    BufferConfig {
        kind: BufferKind::Disk,
        max_size: ByteSize(max),
        // As is (the default), so that sizes here count in records.
        compression: SpoolCompression::None,
        ..BufferConfig::default()
    }
}

struct Pipeline {
    router: Router,
    worker: tokio::task::JoinHandle<()>,
    abort: CancellationToken,
}

async fn start(data: &Path, cfg: &BufferConfig, sink: Arc<Sink>, r: &Registry) -> Pipeline {
    let (tx, rx) = buffer::open("t", cfg, data, r).await.unwrap();
    let abort = CancellationToken::new();
    let worker = tokio::spawn(worker::run(
        worker_config(50, 40, 1),
        sink,
        rx,
        r.clone(),
        abort.clone(),
    ));
    let router = Router::new(vec![Route {
        exporter: "t".into(),
        inputs: None,
        signals: Signal::ALL.to_vec(),
        buffer: tx,
        bulkhead: None,
    }]);
    Pipeline {
        router,
        worker,
        abort,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fills_the_spool_and_everything_arrives_in_order_after() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let sink = Arc::new(Sink::default());
    sink.down.store(true, Ordering::SeqCst);
    let p = start(d.path(), &disk(2 << 20), sink.clone(), &r).await;
    let n = 2000;
    for i in 0..n {
        p.router
            .send(log_batch(i, 300), Wait::Forever)
            .await
            .unwrap();
    }
    let spool = d.path().join("buffers/t");
    assert!(
        seg_files(&spool).len() > 2,
        "the backlog spans several segments"
    );
    assert!(sink.got.lock().unwrap().is_empty());
    sink.down.store(false, Ordering::SeqCst);
    wait_for("the backlog to arrive", 60, || {
        sink.got.lock().unwrap().len() >= n as usize
    })
    .await;
    assert_eq!(*sink.got.lock().unwrap(), (0..n).collect::<Vec<_>>());
    wait_for("exported segments to be deleted", 10, || {
        seg_files(&spool).len() == 1
    })
    .await;
    assert_eq!(r.counter_sum("sonde_exporter_dropped_items_total", &[]), 0);
    drop(p.router);
    p.worker.await.unwrap();
}

/// After an outage, export calls sleeping out long backoffs do not hold the cursor back: once the
/// destination answers again, the first success wakes every retry waiting without a hint, so the
/// oldest batch (where the cursor waits) goes at once and the disk buffer's space is freed right
/// after (each call waiting out its own backoff, up to `max_backoff` = 20 s here, kept the space
/// taken for seconds after the data was delivered, and a crash in that window re-sent it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_cursor_follows_the_deliveries() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let sink = Arc::new(Sink::default());
    sink.down.store(true, Ordering::SeqCst);
    let (tx, rx) = buffer::open("t", &disk(8 << 20), d.path(), &r)
        .await
        .unwrap();
    let abort = CancellationToken::new();
    let worker = tokio::spawn(worker::run(
        worker_config(50, 20_000, 4),
        sink.clone(),
        rx,
        r.clone(),
        abort.clone(),
    ));
    let router = Router::new(vec![Route {
        exporter: "t".into(),
        inputs: None,
        signals: Signal::ALL.to_vec(),
        buffer: tx,
        bulkhead: None,
    }]);
    let n = 1000;
    for i in 0..n {
        router.send(log_batch(i, 200), Wait::Forever).await.unwrap();
    }
    // Long enough for the in-flight calls' backoffs to grow to seconds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(sink.got.lock().unwrap().is_empty());
    sink.down.store(false, Ordering::SeqCst);
    // The first success comes when the shortest of the calls' backoffs ends; from then on the
    // other retries must not wait out theirs.
    wait_for("a first delivery", 30, || {
        !sink.got.lock().unwrap().is_empty()
    })
    .await;
    let first = std::time::Instant::now();
    wait_for("the buffer to be empty", 30, || {
        r.gauge_value("sonde_buffer_bytes", &[("exporter", "t")]) == Some(0)
    })
    .await;
    assert!(
        first.elapsed() < Duration::from_secs(2),
        "the buffer emptied {:?} after the first delivery",
        first.elapsed()
    );
    let mut got = sink.got.lock().unwrap().clone();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    drop(router);
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_an_outage_keeps_everything_for_the_next_start() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let sink = Arc::new(Sink::default());
    sink.down.store(true, Ordering::SeqCst);
    let p = start(d.path(), &disk(4 << 20), sink.clone(), &r).await;
    for i in 0..300 {
        p.router
            .send(log_batch(i, 100), Wait::Forever)
            .await
            .unwrap();
    }
    // Stop as the topology does: close the buffer, then the shutdown deadline passes.
    drop(p.router);
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.abort.cancel();
    tokio::time::timeout(Duration::from_secs(10), p.worker)
        .await
        .expect("the worker stops at the deadline")
        .unwrap();
    assert_eq!(
        r.counter_sum(
            "sonde_exporter_dropped_items_total",
            &[("reason", "shutdown")]
        ),
        0,
        "nothing is lost with a disk buffer"
    );
    // Next start, destination up: all of it arrives, in order.
    sink.down.store(false, Ordering::SeqCst);
    let r2 = Registry::default();
    let p = start(d.path(), &disk(4 << 20), sink.clone(), &r2).await;
    wait_for("the kept backlog", 30, || {
        sink.got.lock().unwrap().len() >= 300
    })
    .await;
    assert_eq!(*sink.got.lock().unwrap(), (0..300).collect::<Vec<_>>());
    drop(p.router);
    p.worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exports_ack_out_of_order_and_lose_nothing_across_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let r = Registry::default();
    let sink = Arc::new(Sink::default());
    let (tx, rx) = buffer::open("t", &disk(8 << 20), d.path(), &r)
        .await
        .unwrap();
    let abort = CancellationToken::new();
    let mut wc = worker_config(50, 40, 1);
    wc.concurrency = 4;
    wc.batch.max_items = 3;
    let worker = tokio::spawn(worker::run(wc, sink.clone(), rx, r.clone(), abort.clone()));
    for i in 0..500 {
        tx.push(log_batch(i, 50), Wait::Forever).await.unwrap();
    }
    wait_for("the exports", 30, || sink.got.lock().unwrap().len() >= 500).await;
    drop(tx);
    worker.await.unwrap();
    let mut got = sink.got.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
    // Everything was acknowledged: nothing comes back.
    let (_tx, mut rx) = buffer::open("t", &disk(8 << 20), d.path(), &Registry::default())
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
    assert!(next.is_err(), "an exported record came back");
}
