//! journald source throughput: journal files written by systemd-journal-remote are read from the
//! beginning through the real pipeline (router, buffer, export worker) into an exporter that
//! accepts everything; then `journalctl -o export` reads the same files into /dev/null.
//!
//! `cargo bench -p sonde --bench journald_source -- [--entries N]` (default 1,000,000)

#![allow(clippy::unwrap_used)] // a benchmark: failing loudly is right

use sonde::pipeline::{buffer, router, worker};
use sonde::sources::{self, journald};
use sonde_config::{BufferConfig, ByteSize, JournaldSourceConfig, RetryConfig, StartAt};
use sonde_core::metrics::Registry;
use sonde_core::process::process_cpu_seconds;
use sonde_core::{Batch, BoxFuture, ExportError, ExportOutcome, Exporter};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

struct Null;

impl Exporter for Null {
    fn export<'a>(&'a self, _b: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async { Ok(ExportOutcome::default()) })
    }
}

/// Entries shaped like a busy host's: 20 units, unique messages, the usual trusted fields.
fn write_journal(dir: &Path, n: u64) {
    let base: u64 = 1_700_000_000_000_000;
    let chunk = 100_000;
    let mut i = 0;
    while i < n {
        let mut child = Command::new(JOURNAL_REMOTE)
            .arg(format!("--output={}", dir.join("system.journal").display()))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
        for k in i..(i + chunk).min(n) {
            let unit = k % 20;
            write!(
                w,
                "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n\
                 MESSAGE=request {k} handled in {} ms for client 10.0.{}.{} path=/api/v1/items/{}\n\
                 PRIORITY={}\n_PID={}\n_COMM=svc{unit}\n_EXE=/usr/bin/svc{unit}\n_SYSTEMD_UNIT=svc{unit}.service\n\
                 _HOSTNAME=bench-host\nSYSLOG_IDENTIFIER=svc{unit}\n_TRANSPORT=journal\n\
                 CODE_FILE=src/handler.rs\nCODE_LINE={}\n_UID=1000\n\n",
                base + k * 10,
                k + 1,
                k % 997,
                k % 256,
                k % 251,
                k % 100_003,
                k % 7,
                1000 + unit,
                k % 500
            )
            .unwrap();
        }
        w.flush().unwrap();
        drop(w);
        assert!(child.wait().unwrap().success());
        i += chunk;
    }
}

async fn start(dir: &Path, data: &Path, shutdown: CancellationToken) -> Registry {
    let metrics = Registry::default();
    let bcfg = BufferConfig {
        max_size: ByteSize::mib(64),
        ..Default::default()
    };
    let (tx, rx) = buffer::channel("null", &bcfg, &metrics);
    let wcfg = worker::WorkerConfig {
        name: "null".into(),
        batch: Default::default(),
        timeout: Duration::from_secs(10),
        retry: RetryConfig::default(),
        concurrency: 1,
        health: Default::default(),
    };
    tokio::spawn(worker::run(
        wcfg,
        Arc::new(Null),
        rx,
        metrics.clone(),
        CancellationToken::new(),
    ));
    let router = router::Router::new(vec![router::Route {
        exporter: "null".into(),
        inputs: None,
        signals: vec![sonde_core::Signal::Logs],
        buffer: tx,
        bulkhead: None,
    }]);
    let cfg = JournaldSourceConfig {
        directory: Some(dir.display().to_string()),
        start_at: StartAt::Beginning,
        ..Default::default()
    };
    let cx = sources::context(
        "bench",
        router,
        metrics.clone(),
        shutdown,
        data.to_path_buf(),
    );
    tokio::spawn(journald::build(&cfg, cx).await.unwrap());
    metrics
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .iter()
        .position(|a| a == "--entries")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1_000_000);
    if !Path::new(JOURNAL_REMOTE).exists() {
        eprintln!("{JOURNAL_REMOTE} is absent: apt-get install systemd-journal-remote");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    let t = Instant::now();
    write_journal(&dir, n);
    let mut bytes = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        bytes += std::fs::read(&p).unwrap().len(); // also warms the page cache
    }
    println!(
        "wrote {n} entries ({:.0} MiB of journal files) in {:.1} s",
        bytes as f64 / (1 << 20) as f64,
        t.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stop = CancellationToken::new();
        let cpu0 = process_cpu_seconds(None).unwrap_or(0.0);
        let t0 = Instant::now();
        let m = start(&dir, &tmp.path().join("data"), stop.clone()).await;
        while m.counter_sum("sonde_exporter_sent_items_total", &[]) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds(None).unwrap_or(0.0) - cpu0;
        println!(
            "sonde journald -> null: {n} entries in {wall:.2} s: {:.0} entries/s; CPU {cpu:.2} s: {:.0} entries/s per core",
            n as f64 / wall,
            n as f64 / cpu
        );
        stop.cancel();
    });
    let t0 = Instant::now();
    let st = Command::new("journalctl")
        .args(["-o", "export", "--no-pager", "--directory"])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "journalctl -o export --directory DIR > /dev/null: {n} entries in {wall:.2} s: {:.0} entries/s (one thread)",
        n as f64 / wall
    );
}
