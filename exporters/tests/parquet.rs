//! The Parquet exporter end to end inside one process: OTLP batches in, Parquet objects out
//! through a `file://` store (and an unreachable S3 endpoint for the retry path), read back with
//! the `parquet` crate's Arrow reader. Readers no one here wrote (DuckDB, pyarrow) and a real
//! S3-compatible server are exercised by tests/test_parquet.py.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use prost::Message;
use sonde_config::{ByteSize, Duration as CfgDuration, ParquetConfig};
use sonde_core::metrics::Registry;
use sonde_core::{Batch, ExportError, Exporter, Signal};
use sonde_exporters::parquet::{testdata, ParquetExporter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(root: &Path) -> ParquetConfig {
    ParquetConfig {
        url: format!("file://{}", root.display()),
        host: Some("test-host".into()),
        ..Default::default()
    }
}

fn exporter(cfg: &ParquetConfig, data: &Path) -> (ParquetExporter, Registry) {
    let t = Registry::default();
    let e = ParquetExporter::new("lake", cfg, data, Duration::from_secs(20), t.clone()).unwrap();
    (e, t)
}

fn batch(signal: Signal, payload: Vec<u8>) -> Batch {
    Batch::new(signal, payload.into(), Arc::from("test")).unwrap()
}

/// Every `.parquet` object under `root`, sorted, as paths relative to it.
fn objects(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn read(path: &Path) -> (Vec<RecordBatch>, Vec<(String, String)>) {
    let file = std::fs::File::open(path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let meta = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let batches = builder.build().unwrap().map(|b| b.unwrap()).collect();
    (batches, meta)
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signal_lands_in_its_partition_with_schema_version_metadata() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (e, t) = exporter(&config(store.path()), data.path());
    e.export(&batch(Signal::Traces, testdata::traces().encode_to_vec()))
        .await
        .unwrap();
    e.export(&batch(Signal::Metrics, testdata::metrics().encode_to_vec()))
        .await
        .unwrap();
    e.export(&batch(Signal::Logs, testdata::logs().encode_to_vec()))
        .await
        .unwrap();
    e.shutdown().await.unwrap();
    let objs = objects(store.path());
    assert_eq!(objs.len(), 3, "{objs:?}");
    let re = |signal: &str, name: &str| {
        let parts: Vec<&str> = name.split('/').collect();
        parts.len() == 4
            && parts[0] == signal
            && parts[1].starts_with("date=")
            && parts[1].len() == "date=2024-01-02".len()
            && parts[2].starts_with("hour=")
            && parts[2].len() == "hour=03".len()
            && parts[3].starts_with("test-host-")
            && parts[3].ends_with(".parquet")
            && parts[3].len() == "test-host-".len() + 32 + ".parquet".len()
    };
    for (signal, expected_rows) in [("traces", 2), ("metrics", 7), ("logs", 5)] {
        let name = objs.iter().find(|o| o.starts_with(signal)).unwrap();
        assert!(re(signal, name), "bad object name {name}");
        let (batches, meta) = read(&store.path().join(name));
        assert_eq!(rows(&batches), expected_rows, "{signal}");
        let get = |k: &str| meta.iter().find(|(mk, _)| mk == k).map(|(_, v)| v.as_str());
        assert_eq!(get("sonde.schema.version"), Some("1"));
        assert_eq!(get("sonde.signal"), Some(signal));
        let id = get("sonde.file.id").unwrap();
        assert!(name.contains(id), "{name} does not carry the file id {id}");
    }
    assert_eq!(t.counter_sum("sonde_parquet_uploaded_files_total", &[]), 3);
    assert_eq!(t.counter_sum("sonde_parquet_rows_total", &[]), 14);
    // Nothing is left staged locally.
    let left: Vec<_> = objects(data.path())
        .into_iter()
        .filter(|p| p.ends_with(".parquet") || p.ends_with(".wal") || p.ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_keep_ids_times_attributes_and_nested_events() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (e, _) = exporter(&config(store.path()), data.path());
    e.export(&batch(Signal::Traces, testdata::traces().encode_to_vec()))
        .await
        .unwrap();
    e.shutdown().await.unwrap();
    let obj = objects(store.path()).pop().unwrap();
    let (batches, _) = read(&store.path().join(obj));
    let b = &batches[0];
    let col = |n: &str| b.column_by_name(n).unwrap().clone();
    let trace = col("trace_id");
    let trace = trace
        .as_any()
        .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
        .unwrap();
    assert_eq!(trace.value(0), testdata::TRACE_ID);
    let parent = col("parent_span_id");
    assert!(
        parent.is_valid(0) && parent.is_null(1),
        "root span has no parent"
    );
    let dur = col("duration_ns");
    assert_eq!(
        dur.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
        1_500_000
    );
    let kind = col("kind");
    let kind = kind.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!((kind.value(0), kind.value(1)), ("server", "internal"));
    let svc = col("service_name");
    assert_eq!(
        svc.as_any().downcast_ref::<StringArray>().unwrap().value(0),
        "checkout"
    );
    let events = col("events");
    let events = events
        .as_any()
        .downcast_ref::<arrow_array::ListArray>()
        .unwrap();
    assert_eq!(events.value_length(0), 2);
    assert_eq!(events.value_length(1), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_roll_by_size_measured_on_the_written_file() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cfg = ParquetConfig {
        max_file_size: ByteSize::mib(1),
        row_group_size: ByteSize::kib(256),
        // Uncompressed: fewer spans make several files, and the test stays quick.
        compression: sonde_config::ParquetCompression::None,
        ..config(store.path())
    };
    let (e, t) = exporter(&cfg, data.path());
    let mut spans = 0;
    for seed in 1..=10 {
        let req = testdata::bulk_traces(4096, seed, testdata::T0);
        spans += 4096;
        e.export(&batch(Signal::Traces, req.encode_to_vec()))
            .await
            .unwrap();
    }
    e.shutdown().await.unwrap();
    let objs = objects(store.path());
    assert!(objs.len() >= 3, "expected several files, got {objs:?}");
    let mut total = 0;
    for o in &objs {
        let size = std::fs::metadata(store.path().join(o)).unwrap().len();
        // A file rolls once it reaches the limit: it passes it by at most one batch's rows.
        assert!(size < 2 * 1024 * 1024, "{o} is {size} bytes");
        total += rows(&read(&store.path().join(o)).0);
    }
    assert_eq!(total, spans);
    assert_eq!(t.counter_sum("sonde_parquet_rows_total", &[]), spans as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_exporter_writes_one_file_per_max_file_age() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cfg = ParquetConfig {
        max_file_age: CfgDuration::from_secs(1),
        ..config(store.path())
    };
    let (e, _) = exporter(&cfg, data.path());
    let started = Instant::now();
    // Several small batches within one age window go into one file...
    for i in 0..5u64 {
        let req = testdata::bulk_logs(10, i + 1, testdata::T0);
        e.export(&batch(Signal::Logs, req.encode_to_vec()))
            .await
            .unwrap();
    }
    // ... which appears without any further export or a shutdown.
    let root = store.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        wait_for("the age-rolled file", Duration::from_secs(10), || {
            !objects(&root).is_empty()
        })
    })
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    let objs = objects(store.path());
    assert_eq!(objs.len(), 1, "{objs:?}");
    assert_eq!(rows(&read(&store.path().join(&objs[0])).0), 50);
    e.shutdown().await.unwrap();
    assert_eq!(
        objects(store.path()).len(),
        1,
        "shutdown had nothing left to write"
    );
}

/// Copies a directory tree (the staging area as a crash would leave it).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_upload_is_rebuilt_under_the_same_name() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let cfg = config(store.path());
    let (e, _) = exporter(&cfg, data.path());
    let mut spans = 0;
    for seed in 1..=3 {
        e.export(&batch(
            Signal::Traces,
            testdata::bulk_traces(500, seed, testdata::T0).encode_to_vec(),
        ))
        .await
        .unwrap();
        spans += 500;
    }
    // Every acknowledged batch is in the staging log now: this copy is what a crash (kill -9)
    // at this instant would leave on disk. The first agent goes on and uploads normally.
    copy_tree(data.path(), crashed.path());
    e.shutdown().await.unwrap();
    drop(e);
    let first = objects(store.path());
    assert_eq!(first.len(), 1);

    // Restart on the crashed state: the log is rebuilt into the same file, same object name.
    let (e2, t2) = exporter(&cfg, crashed.path());
    e2.shutdown().await.unwrap();
    assert_eq!(
        t2.counter_sum("sonde_parquet_recovered_files_total", &[]),
        1
    );
    let second = objects(store.path());
    assert_eq!(
        second, first,
        "a replay after a crash must overwrite, not duplicate"
    );
    assert_eq!(rows(&read(&store.path().join(&second[0])).0), spans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_with_a_torn_log_tail_keeps_every_acknowledged_batch() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cfg = config(store.path());
    let (e, _) = exporter(&cfg, data.path());
    e.export(&batch(
        Signal::Logs,
        testdata::bulk_logs(300, 9, testdata::T0).encode_to_vec(),
    ))
    .await
    .unwrap();
    drop(e); // crash: no shutdown, background tasks gone
    let log: PathBuf = std::fs::read_dir(data.path().join("parquet/lake/open"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wal"))
        .unwrap();
    // A write that was in progress when the power went: half a record at the end.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, &[200, 1, 0, 0, 9, 9]).unwrap();
    drop(f);
    let (e2, t2) = exporter(&cfg, data.path());
    e2.shutdown().await.unwrap();
    assert_eq!(
        t2.counter_sum("sonde_parquet_recovery_dropped_bytes_total", &[]),
        6
    );
    let objs = objects(store.path());
    assert_eq!(objs.len(), 1);
    assert_eq!(rows(&read(&store.path().join(&objs[0])).0), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_written_twice_is_kept_once() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (e, t) = exporter(&config(store.path()), data.path());
    let b = batch(Signal::Logs, testdata::logs().encode_to_vec());
    e.export(&b).await.unwrap();
    e.export(&b).await.unwrap(); // the worker retried after a timeout that came too late
    e.shutdown().await.unwrap();
    assert_eq!(
        t.counter_sum(
            "sonde_parquet_dropped_batches_total",
            &[("reason", "duplicate")]
        ),
        1
    );
    let objs = objects(store.path());
    assert_eq!(rows(&read(&store.path().join(&objs[0])).0), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_payloads_are_refused_for_good() {
    let store = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (e, t) = exporter(&config(store.path()), data.path());
    // Well-formed protobuf (the wire walker accepts it) whose span name is not UTF-8.
    let mut req = testdata::traces();
    req.resource_spans[0].scope_spans[0].spans[0].name = "x".into();
    let mut bytes = req.encode_to_vec();
    let pos = bytes
        .windows(2)
        .position(|w| w == [0x2a, 0x01])
        .map(|p| p + 2);
    if let Some(p) = pos.filter(|p| bytes[*p] == b'x') {
        bytes[p] = 0xff;
    }
    let b = Batch::from_trusted(Signal::Traces, bytes.into(), 2, Arc::from("t"));
    match e.export(&b).await {
        Err(ExportError::Permanent { .. }) => {}
        other => panic!("expected a permanent refusal, got {other:?}"),
    }
    assert_eq!(
        t.counter_sum(
            "sonde_parquet_refused_batches_total",
            &[("reason", "decode")]
        ),
        1
    );
    e.shutdown().await.unwrap();
    assert!(objects(store.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_is_retried_and_the_file_stays_staged() {
    // A port nothing listens on: every upload attempt fails to connect.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let data = tempfile::tempdir().unwrap();
    let cfg = ParquetConfig {
        url: "s3://bucket/prefix".into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        allow_http: true,
        region: Some("us-east-1".into()),
        access_key_id: Some(sonde_config::Secret::new("k")),
        secret_access_key: Some(sonde_config::Secret::new("s")),
        host: Some("h".into()),
        upload: sonde_config::UploadConfig {
            initial_backoff: CfgDuration::from_millis(50),
            max_backoff: CfgDuration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    };
    let t = Registry::default();
    let e =
        ParquetExporter::new("lake", &cfg, data.path(), Duration::from_secs(2), t.clone()).unwrap();
    e.export(&batch(Signal::Logs, testdata::logs().encode_to_vec()))
        .await
        .unwrap();
    e.shutdown().await.unwrap();
    assert!(
        t.counter_sum(
            "sonde_parquet_upload_retries_total",
            &[("reason", "store_error")]
        ) >= 2,
        "uploads were not retried"
    );
    // Nothing is lost: the finished file waits in the outbox for the next start.
    let staged = objects(&data.path().join("parquet/lake/outbox"));
    assert_eq!(staged.len(), 2, "{staged:?}");
    assert!(staged.iter().any(|p| p.ends_with(".parquet")));
}
