//! File source throughput and steady-state cost, through the real pipeline (router, buffer,
//! export worker) to a null exporter that accepts everything.
//!
//! `cargo bench -p sonde --bench file_source -- [throughput|steady] [--size-mib N] [--rate N]`
//!
//! - throughput: a pre-written file of 200-byte lines (1 GiB by default) is read from the
//!   beginning; prints lines/s and MB/s, and MB/s per core (bytes / CPU seconds of the process).
//! - steady: a writer in a child process appends 200-byte lines at `--rate` lines/s (default
//!   10k) for 10 s; prints the agent's CPU per 10k lines/s.
//! - formats: the same lines as plain text and as containerd's CRI lines (`<time> stdout F
//!   <line>`, with 1 in 10 lines cut into a `P` and an `F` piece), `--size-mib` each (default
//!   256), read in the same run; prints lines per CPU-second of each.

#![allow(clippy::unwrap_used)] // a benchmark: failing loudly is right

use sonde::pipeline::{buffer, router, worker};
use sonde::sources::{self, file};
use sonde_config::{BufferConfig, ByteSize, FileFormat, FileSourceConfig, RetryConfig, StartAt};
use sonde_core::metrics::Registry;
use sonde_core::process::process_cpu_seconds;
use sonde_core::{Batch, BoxFuture, ExportError, ExportOutcome, Exporter};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const LINE: usize = 200;

struct Null;

impl Exporter for Null {
    fn export<'a>(&'a self, _b: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(async { Ok(ExportOutcome::default()) })
    }
}

/// CPU seconds (user + system) of this process, or of `pid` (0 once it is gone).
fn cpu_seconds(pid: Option<u32>) -> f64 {
    process_cpu_seconds(pid).unwrap_or(0.0)
}

fn line(i: u64) -> Vec<u8> {
    let mut l =
        format!("{i:012} 2024-05-01T12:00:00.000Z INFO service=checkout msg=\"request handled\" ")
            .into_bytes();
    l.resize(LINE - 1, b'x');
    l.push(b'\n');
    l
}

fn write_file(path: &Path, bytes: u64) -> u64 {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let n = bytes / LINE as u64;
    for i in 0..n {
        f.write_all(&line(i)).unwrap();
    }
    f.flush().unwrap();
    n
}

/// The lines of [`write_file`] as containerd writes them: the same text behind the CRI prefix;
/// every tenth line cut in two pieces (`P`, then `F`). Returns the records they make.
fn write_cri_file(path: &Path, bytes: u64) -> u64 {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let n = bytes / LINE as u64;
    for i in 0..n {
        let l = line(i);
        let text = &l[..l.len() - 1];
        let stamp = format!("2026-12-07T10:{:02}:{:02}.{:09}Z", i / 60 % 60, i % 60, i);
        if i % 10 == 0 {
            let (a, b) = text.split_at(text.len() / 2);
            f.write_all(format!("{stamp} stdout P ").as_bytes())
                .unwrap();
            f.write_all(a).unwrap();
            f.write_all(format!("\n{stamp} stdout F ").as_bytes())
                .unwrap();
            f.write_all(b).unwrap();
        } else {
            f.write_all(format!("{stamp} stdout F ").as_bytes())
                .unwrap();
            f.write_all(text).unwrap();
        }
        f.write_all(b"\n").unwrap();
    }
    f.flush().unwrap();
    n
}

/// Starts the pipeline and the file source on `dir/*.log`; returns the registry to watch.
async fn start(
    dir: &Path,
    data: &Path,
    shutdown: CancellationToken,
    format: FileFormat,
) -> Registry {
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
    let cfg = FileSourceConfig {
        include: vec![format!("{}/*.log", dir.display())],
        start_at: StartAt::Beginning,
        poll_interval: sonde_config::Duration::from_millis(50),
        format,
        ..Default::default()
    };
    let cx = sources::context(
        "bench",
        router,
        metrics.clone(),
        shutdown,
        data.to_path_buf(),
    );
    tokio::spawn(file::build(&cfg, cx).await.unwrap());
    metrics
}

fn sent(m: &Registry) -> u64 {
    m.counter_sum("sonde_exporter_sent_items_total", &[])
}

fn throughput(size_mib: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let n = write_file(&logs.join("big.log"), size_mib << 20);
    // Warm the page cache, as a tailer reading recently written logs finds it.
    let _ = std::fs::read(logs.join("big.log")).map(|v| v.len());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stop = CancellationToken::new();
        let cpu0 = cpu_seconds(None);
        let t0 = Instant::now();
        let m = start(&logs, &tmp.path().join("data"), stop.clone(), FileFormat::Text).await;
        while sent(&m) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(None) - cpu0;
        let bytes = (n * LINE as u64) as f64;
        println!(
            "throughput: {n} lines ({:.0} MiB) in {wall:.2} s: {:.0} lines/s, {:.0} MB/s; CPU {cpu:.2} s ({:.2} cores): {:.0} MB/s per core, {:.0} lines/s per core",
            bytes / (1 << 20) as f64,
            n as f64 / wall,
            bytes / 1e6 / wall,
            cpu / wall,
            bytes / 1e6 / cpu,
            n as f64 / cpu,
        );
        stop.cancel();
    });
}

fn steady(rate: u64, secs: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let path = logs.join("app.log");
    std::fs::write(&path, line(0)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stop = CancellationToken::new();
        let m = start(&logs, &tmp.path().join("data"), stop.clone(), FileFormat::Text).await;
        while sent(&m) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe)
            .args(["writer", &path.display().to_string(), &rate.to_string(), &secs.to_string()])
            .spawn()
            .unwrap();
        // Skip the first second, then measure.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (cpu0, n0, t0) = (cpu_seconds(None), sent(&m), Instant::now());
        tokio::time::sleep(Duration::from_secs(secs - 2)).await;
        let (cpu, n, wall) = (cpu_seconds(None) - cpu0, sent(&m) - n0, t0.elapsed().as_secs_f64());
        let _ = child.wait();
        let rate_seen = n as f64 / wall;
        println!(
            "steady: {rate_seen:.0} lines/s delivered; agent CPU {:.2}% of a core; {:.3}% of a core per 10k lines/s",
            cpu / wall * 100.0,
            cpu / wall * 100.0 / (rate_seen / 10_000.0)
        );
        stop.cancel();
    });
}

/// Reads `records` records of `file` (in `logs`) to the null exporter; returns (wall s, CPU s).
fn read_all(logs: &Path, data: &Path, records: u64, format: FileFormat) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(async {
        let stop = CancellationToken::new();
        let cpu0 = cpu_seconds(None);
        let t0 = Instant::now();
        let m = start(logs, data, stop.clone(), format).await;
        while sent(&m) < records {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let out = (t0.elapsed().as_secs_f64(), cpu_seconds(None) - cpu0);
        stop.cancel();
        out
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    out
}

/// Plain text lines against the same lines in the CRI format, one after the other in this run.
fn formats(size_mib: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = vec![];
    for (name, format) in [("text", FileFormat::Text), ("cri", FileFormat::Cri)] {
        let logs = tmp.path().join(name);
        std::fs::create_dir(&logs).unwrap();
        let path = logs.join("0.log");
        let n = match format {
            FileFormat::Cri => write_cri_file(&path, size_mib << 20),
            _ => write_file(&path, size_mib << 20),
        };
        let bytes = std::fs::read(&path).unwrap().len() as f64;
        let (wall, cpu) = read_all(&logs, &tmp.path().join(format!("data-{name}")), n, format);
        println!(
            "formats {name}: {n} records ({:.0} MiB of file) in {wall:.2} s, CPU {cpu:.2} s: {:.0} records per CPU-second, {:.0} MB per CPU-second",
            bytes / (1 << 20) as f64,
            n as f64 / cpu,
            bytes / 1e6 / cpu,
        );
        rows.push(n as f64 / cpu);
    }
    println!(
        "formats: cri / text records per CPU-second = {:.2}",
        rows[1] / rows[0]
    );
}

/// The child: appends `rate` lines/s to `path` for `secs` s, in 10 ms steps.
fn writer(path: &str, rate: u64, secs: u64) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let per_step = (rate / 100).max(1);
    let start = Instant::now();
    let mut i = 1;
    let mut step = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let mut buf = Vec::with_capacity(per_step as usize * LINE);
        for _ in 0..per_step {
            buf.extend_from_slice(&line(i));
            i += 1;
        }
        f.write_all(&buf).unwrap();
        step += 1;
        let next = start + Duration::from_millis(step * 10);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Hand-encoding versus building prost structs, for the same text records.
fn encode() {
    use file::encode::{encode_attribute, kv_str, Encoder};
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let lines: Vec<String> = (0..100_000)
        .map(|i| String::from_utf8(line(i)).unwrap().trim_end().to_string())
        .collect();
    let attrs = encode_attribute("log.file.name", "app.log");
    let res = Resource::default();
    let scope = InstrumentationScope::default();
    for (name, prost) in [("hand", false), ("prost", true)] {
        let mut enc = Encoder::new(&res, &scope, 1 << 20);
        let t0 = Instant::now();
        let mut total = 0usize;
        for _ in 0..20 {
            for l in &lines {
                if prost {
                    enc.push_record(&LogRecord {
                        observed_time_unix_nano: 1,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(l.clone())),
                        }),
                        attributes: vec![kv_str("log.file.name", "app.log")],
                        ..Default::default()
                    });
                } else {
                    enc.push_text(0, 1, l, &attrs);
                }
                if enc.len() >= 1 << 20 {
                    total += enc.finish().map(|(b, _)| b.len()).unwrap_or(0);
                }
            }
        }
        total += enc.finish().map(|(b, _)| b.len()).unwrap_or(0);
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "encode {name}: {:.0} records/s, {:.0} MB/s of output",
            2_000_000.0 / secs,
            total as f64 / 1e6 / secs
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("writer") => writer(&args[1], args[2].parse().unwrap(), args[3].parse().unwrap()),
        Some("encode") => encode(),
        Some("steady") => steady(flag("--rate", 10_000), 10),
        Some("throughput") => throughput(flag("--size-mib", 1024)),
        Some("formats") => formats(flag("--size-mib", 256)),
        _ => {
            throughput(flag("--size-mib", 1024));
            steady(flag("--rate", 10_000), 10);
        }
    }
}
