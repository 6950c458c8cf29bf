//! Benchmarks of the disk spool (figures in BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p sonde --example spool_bench -- <scratch dir> [big backlog GiB, default 10]
//! ```
//!
//! 1. append throughput per `fsync` mode (8 concurrent producers, 16 KiB batches);
//! 2. drain throughput (read + ack) of what was appended;
//! 3. the pipeline end to end (router → buffer → export worker → a null destination), disk
//!    buffer (fsync batch and never) versus memory buffer, same batches, same run;
//! 4. start-up time with a 1 GiB and a 10 GiB backlog, and the drain rate of the big one.

#![allow(clippy::unwrap_used)] // tests and benchmarks may unwrap

use bytes::Bytes;
use sonde::pipeline::buffer::spool::{self, SpoolConfig};
use sonde::pipeline::buffer::{self, Wait};
use sonde::pipeline::router::{Route, Router};
use sonde::pipeline::worker::{self, WorkerConfig};
use sonde_config::{
    BatchConfig, BufferConfig, BufferKind, ByteSize, Duration as D, Fsync, RetryConfig,
    SpoolCompression, WhenFull,
};
use sonde_core::metrics::Registry;
use sonde_core::{Batch, BoxFuture, ExportError, ExportOutcome, Exporter, Signal};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const MIB: f64 = 1024.0 * 1024.0;

fn batch(size: usize) -> Batch {
    // Payload bytes need not be OTLP here: the spool stores them verbatim.
    Batch::from_trusted(
        Signal::Logs,
        Bytes::from(vec![7u8; size]),
        10,
        Arc::from("bench"),
    )
}

fn cfg(dir: &Path, fsync: Fsync) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        name: Arc::from("bench"),
        max_size: 64 << 30,
        when_full: WhenFull::Block,
        fsync,
        // The payloads here are constant bytes: compressed they would measure nothing.
        compression: SpoolCompression::None,
        segment_size: 64 << 20,
    }
}

/// Appends `total` bytes in `size`-byte batches from `producers` tasks; returns seconds.
async fn append(tx: &spool::SpoolSender, total: u64, size: usize, producers: usize) -> f64 {
    let n = total / size as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers as u64 {
        let tx = tx.clone();
        let b = batch(size);
        let count = n / producers as u64 + u64::from(p < n % producers as u64);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                tx.push(b.clone(), Wait::Forever).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed().as_secs_f64()
}

async fn drain(rx: &mut spool::SpoolReceiver) -> (u64, u64, f64) {
    let started = Instant::now();
    let (mut n, mut bytes) = (0, 0);
    while let Some((b, t)) = rx.try_recv().await {
        n += 1;
        bytes += b.payload.len() as u64;
        t.ack();
    }
    (n, bytes, started.elapsed().as_secs_f64())
}

struct Null(AtomicU64);

impl Exporter for Null {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        self.0.fetch_add(batch.items, Ordering::Relaxed);
        Box::pin(async { Ok(ExportOutcome::default()) })
    }
}

/// Router → buffer → worker → null; returns batches/s for `n` batches of `size` bytes sent by
/// `producers` concurrent tasks.
async fn pipeline(
    data: &Path,
    kind: BufferKind,
    fsync: Fsync,
    n: u64,
    size: usize,
    producers: u64,
) -> f64 {
    let r = Registry::default();
    let bcfg = BufferConfig {
        kind,
        max_size: ByteSize::mib(256),
        fsync,
        compression: SpoolCompression::None,
        ..BufferConfig::default()
    };
    let (tx, rx) = buffer::open("e2e", &bcfg, data, &r).await.unwrap();
    let null = Arc::new(Null(AtomicU64::new(0)));
    let wcfg = WorkerConfig {
        name: "e2e".into(),
        batch: BatchConfig {
            max_items: 8192,
            max_bytes: ByteSize::mib(4),
            max_age: D::from_millis(200),
        },
        timeout: Duration::from_secs(10),
        retry: RetryConfig::default(),
        concurrency: 1,
        health: Default::default(),
    };
    let w = tokio::spawn(worker::run(
        wcfg,
        null.clone(),
        rx,
        r,
        CancellationToken::new(),
    ));
    let router = Router::new(vec![Route {
        exporter: "e2e".into(),
        inputs: None,
        signals: Signal::ALL.to_vec(),
        buffer: tx,
        bulkhead: None,
    }]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let router = router.clone();
        let b = batch(size);
        tasks.push(tokio::spawn(async move {
            for _ in 0..n / producers {
                router.send(b.clone(), Wait::Forever).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let want = (n / producers) * producers * 10;
    while null.0.load(Ordering::Relaxed) < want {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(router);
    w.await.unwrap();
    ((n / producers) * producers) as f64 / secs
}

fn fresh(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn drop_caches() -> bool {
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n").is_ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| "/tmp/spool-bench".into()),
    );
    let big_gib: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    std::fs::create_dir_all(&root).unwrap();
    let size = 16 << 10;

    println!("## append and drain, 8 producers, 16 KiB batches");
    println!(
        "| fsync | appended | append MB/s | append batches/s | drain MB/s | drain batches/s |"
    );
    println!("|---|---|---|---|---|---|");
    for (fsync, total) in [
        (Fsync::Never, 512u64 << 20),
        (Fsync::Batch, 512 << 20),
        (Fsync::Always, 32 << 20),
    ] {
        let dir = fresh(&root, "append");
        let (tx, mut rx, _) = spool::open(cfg(&dir, fsync), &Registry::default())
            .await
            .unwrap();
        let secs = append(&tx, total, size, 8).await;
        let n = total / size as u64;
        let (dn, dbytes, dsecs) = drain(&mut rx).await;
        assert_eq!(dn, n);
        println!(
            "| {fsync:?} | {} MiB | {:.0} | {:.0} | {:.0} | {:.0} |",
            total >> 20,
            total as f64 / MIB / secs,
            n as f64 / secs,
            dbytes as f64 / MIB / dsecs,
            dn as f64 / dsecs
        );
        drop(tx);
        rx.close().await;
    }

    println!(
        "\n## pipeline end to end (router → buffer → worker → null destination), medians of 3"
    );
    println!("| batch | producers | memory batches/s | disk batch batches/s (MB/s) | disk/memory | disk never batches/s | never/memory |");
    println!("|---|---|---|---|---|---|---|");
    for (size, producers, total) in [
        (4096usize, 8u64, 256u64 << 20),
        (64 << 10, 16, 1 << 30),
        (256 << 10, 16, 1 << 30),
    ] {
        let n = total / size as u64;
        let (mut mem, mut disk, mut never) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            let d = fresh(&root, "e2e");
            mem.push(pipeline(&d, BufferKind::Memory, Fsync::Batch, n, size, producers).await);
            let d = fresh(&root, "e2e");
            disk.push(pipeline(&d, BufferKind::Disk, Fsync::Batch, n, size, producers).await);
            let d = fresh(&root, "e2e");
            never.push(pipeline(&d, BufferKind::Disk, Fsync::Never, n, size, producers).await);
        }
        for v in [&mut mem, &mut disk, &mut never] {
            v.sort_by(f64::total_cmp);
        }
        println!(
            "| {} KiB | {producers} | {:.0} | {:.0} ({:.0}) | {:.2} | {:.0} | {:.2} |",
            size >> 10,
            mem[1],
            disk[1],
            disk[1] * size as f64 / MIB,
            disk[1] / mem[1],
            never[1],
            never[1] / mem[1]
        );
    }

    println!("\n## start-up with a backlog, and its drain (64 KiB batches, fsync = batch)");
    let dir = fresh(&root, "backlog");
    let big = 64 << 10;
    let mut written = 0u64;
    let mut write_secs = 0.0;
    for target in [1u64, big_gib] {
        let (tx, rx, _) = spool::open(cfg(&dir, Fsync::Batch), &Registry::default())
            .await
            .unwrap();
        let add = (target << 30) - written;
        write_secs += append(&tx, add, big, 8).await;
        written += add;
        drop(tx);
        rx.close().await;
        let cold = drop_caches();
        let started = Instant::now();
        let (tx, rx, rec) = spool::open(cfg(&dir, Fsync::Batch), &Registry::default())
            .await
            .unwrap();
        let open_secs = started.elapsed().as_secs_f64();
        println!(
            "backlog {} GiB ({} segments): open took {:.3} s ({} page cache)",
            rec.backlog_bytes >> 30,
            rec.segments,
            open_secs,
            if cold { "cold" } else { "warm" }
        );
        drop(tx);
        rx.close().await;
    }
    let write_rate = written as f64 / MIB / write_secs;
    let cold = drop_caches();
    let (tx, mut rx, _) = spool::open(cfg(&dir, Fsync::Batch), &Registry::default())
        .await
        .unwrap();
    let (_, bytes, secs) = drain(&mut rx).await;
    println!(
        "drain of the {big_gib} GiB backlog: {:.0} MB/s ({} page cache); it was written at {:.0} MB/s; drain/write = {:.2}",
        bytes as f64 / MIB / secs,
        if cold { "cold" } else { "warm" },
        write_rate,
        (bytes as f64 / MIB / secs) / write_rate
    );
    drop(tx);
    rx.close().await;
    let _ = std::fs::remove_dir_all(&root);
}
