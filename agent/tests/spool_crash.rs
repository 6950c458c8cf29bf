//! The crash test: a child process runs router → disk buffer → export worker under load,
//! printing the id of every batch the moment the router acknowledged it; it is killed with
//! SIGKILL at a random point, several times, first with the destination down, then up. Finally
//! the spool is drained in this process. Every acknowledged id must have reached the
//! destination; duplicates are counted and reported.
//!
//! The child is this same test binary, re-run with `CHILD` set (see `child_process_mode`).

#![allow(clippy::unwrap_used)] // tests and benchmarks may unwrap

mod common;

use common::*;
use rand::Rng;
use sonde::pipeline::buffer::{self, Wait};
use sonde::pipeline::router::{Route, Router};
use sonde::pipeline::worker;
use sonde_config::{BufferConfig, BufferKind, ByteSize};
use sonde_core::metrics::Registry;
use sonde_core::{Batch, BoxFuture, ExportError, ExportOutcome, Exporter, Signal};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CHILD: &str = "SONDE_SPOOL_CRASH_CHILD";

/// Appends the ids it receives to a file, one per line, one `write` per batch (a process kill
/// cannot tear it), or fails every call while down.
struct FileSink {
    file: Mutex<std::fs::File>,
    up: bool,
}

impl Exporter for FileSink {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async move {
            if !self.up {
                return Err(ExportError::retryable("sink down"));
            }
            let text: String = ids(batch).iter().map(|i| format!("{i}\n")).collect();
            self.file
                .lock()
                .unwrap()
                .write_all(text.as_bytes())
                .map_err(|e| ExportError::retryable(e.to_string()))?;
            Ok(ExportOutcome::default())
        })
    }
}

fn buffer_cfg() -> BufferConfig {
    BufferConfig {
        kind: BufferKind::Disk,
        // Segments of 512 KiB: with the destination up, exported segment files are reused as
        // new segments under the load, so some kills land in a reused file.
        max_size: ByteSize::mib(4),
        ..BufferConfig::default()
    }
}

async fn pipeline(data: &Path, sink: &Path, up: bool) -> (Router, tokio::task::JoinHandle<()>) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(sink)
        .unwrap();
    let exporter = Arc::new(FileSink {
        file: Mutex::new(file),
        up,
    });
    let r = Registry::default();
    let (tx, rx) = buffer::open("t", &buffer_cfg(), data, &r).await.unwrap();
    let w = tokio::spawn(worker::run(
        worker_config(20, 20, 2),
        exporter,
        rx,
        r,
        CancellationToken::new(),
    ));
    let router = Router::new(vec![Route {
        exporter: "t".into(),
        inputs: None,
        signals: Signal::ALL.to_vec(),
        buffer: tx,
        bulkhead: None,
    }]);
    (router, w)
}

/// The child: `CHILD=<data dir>|<sink file>|<first id>|<up>`. Sends batches as fast as the
/// buffer takes them (bounded: 20 s or 200k batches) until it is killed.
#[test]
fn child_process_mode() {
    let Ok(spec) = std::env::var(CHILD) else {
        return; // not a child: nothing to do
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let (data, sink, first, up) = (
        PathBuf::from(parts[0]),
        PathBuf::from(parts[1]),
        parts[2].parse::<u64>().unwrap(),
        parts[3] == "1",
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (router, _w) = pipeline(&data, &sink, up).await;
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY").unwrap();
        out.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        for id in first..first + 200_000 {
            if Instant::now() > deadline {
                break;
            }
            router
                .send(log_batch(id, 200), Wait::Forever)
                .await
                .unwrap();
            writeln!(out, "ACK {id}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn kill_dash_nine_loses_no_acknowledged_batch() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let sink = d.path().join("sink.txt");
    let mut acked: Vec<u64> = Vec::new();
    let mut rng = rand::rng();
    let mut kills_with_spare = 0;
    for round in 0..6u64 {
        let up = round >= 3;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_mode",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD,
                format!(
                    "{}|{}|{}|{}",
                    data.display(),
                    sink.display(),
                    round * 1_000_000,
                    if up { 1 } else { 0 }
                ),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ready = Arc::new(Mutex::new(false));
        let reader = {
            let (seen, ready) = (seen.clone(), ready.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.ends_with("READY") {
                        *ready.lock().unwrap() = true;
                    } else if let Some(id) = line.strip_prefix("ACK ") {
                        seen.lock().unwrap().push(id.parse::<u64>().unwrap());
                    }
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !*ready.lock().unwrap() {
            assert!(Instant::now() < deadline, "child never became ready");
            std::thread::sleep(Duration::from_millis(5));
        }
        // A random point under load (once the load has begun).
        while seen.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "child never acknowledged a batch"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(50..600)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if data.join("buffers").join("t").join("spare").exists() {
            kills_with_spare += 1;
        }
        reader.join().unwrap();
        let seen = seen.lock().unwrap().clone();
        assert!(!seen.is_empty(), "round {round}: nothing was acknowledged");
        acked.extend(seen);
    }

    // Restart with the destination up and drain everything.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let want: HashSet<u64> = acked.iter().copied().collect();
    rt.block_on(async {
        let (router, w) = pipeline(&data, &sink, true).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got: HashSet<u64> = read_ids(&sink).into_iter().collect();
            if want.is_subset(&got) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} acknowledged batches never arrived, e.g. {:?}",
                want.difference(&got).count(),
                want.difference(&got).take(5).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(router);
        w.await.unwrap();
    });
    let delivered = read_ids(&sink);
    let mut counts: HashMap<u64, u32> = HashMap::new();
    for id in &delivered {
        *counts.entry(*id).or_default() += 1;
    }
    let dups: u32 = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "crash test: {} batches acknowledged over 6 kills ({} with a segment file kept for reuse), {} delivered, {} duplicates, {} delivered without an acknowledgement (in flight at the kill)",
        want.len(),
        kills_with_spare,
        delivered.len(),
        dups,
        counts.keys().filter(|k| !want.contains(k)).count()
    );
    for id in &want {
        assert!(counts.contains_key(id), "acknowledged batch {id} lost");
    }
}

fn read_ids(p: &Path) -> Vec<u64> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}
