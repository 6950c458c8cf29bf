//! Writes the fixture data (every field of every signal, see `parquet::testdata`) through the
//! real Parquet exporter and uploads it, for the end-to-end tests that read the files back with
//! DuckDB and pyarrow.
//!
//! Usage: `parquet_fixture CONFIG.toml DATA_DIR [BULK_SPANS [PAD_BYTES]]`, where CONFIG.toml
//! holds the exporter's own settings (`url = "…"`, …). Exports the fixture traces, metrics and
//! logs (and BULK_SPANS generated spans in batches of 4096, each with PAD_BYTES random bytes of
//! padding, to make a large file), shuts the exporter down (finish + upload, within 60 s) and
//! prints one JSON line with its counters, and the wall and CPU seconds of the exporter's work:
//! from the first export to the end of the shutdown, the requests being generated before.

use prost::Message;
use sonde_core::metrics::Registry;
use sonde_core::process::process_cpu_seconds;
use sonde_core::{Batch, Exporter, Signal};
use sonde_exporters::parquet::{testdata, ParquetExporter};
use std::sync::Arc;
use std::time::Duration;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("SONDE_LOG").unwrap_or_else(|_| "info".into()),
        ))
        .init();
    let args: Vec<String> = std::env::args().collect();
    let (Some(config), Some(data_dir)) = (args.get(1), args.get(2)) else {
        return Err("usage: parquet_fixture CONFIG.toml DATA_DIR [BULK_SPANS]".into());
    };
    let bulk: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let pad: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let cfg: sonde_config::ParquetConfig = toml::from_str(&std::fs::read_to_string(config)?)?;
    let problems = cfg.problems();
    if !problems.is_empty() {
        return Err(format!("invalid config: {problems:?}").into());
    }
    let telemetry = Registry::default();
    let exporter = ParquetExporter::new(
        "fixture",
        &cfg,
        std::path::Path::new(data_dir),
        Duration::from_secs(60),
        telemetry.clone(),
    )?;
    let source: Arc<str> = Arc::from("fixture");
    let mut batches = vec![
        (Signal::Traces, testdata::traces().encode_to_vec()),
        (Signal::Metrics, testdata::metrics().encode_to_vec()),
        (Signal::Logs, testdata::logs().encode_to_vec()),
    ];
    let mut left = bulk;
    let mut seed = 1;
    while left > 0 {
        let n = left.min(4096);
        batches.push((
            Signal::Traces,
            testdata::bulk_traces_padded(n, seed, testdata::T0, pad).encode_to_vec(),
        ));
        left -= n;
        seed += 1;
    }
    let started = std::time::Instant::now();
    let cpu0 = process_cpu_seconds(None);
    for (signal, payload) in batches {
        let batch = Batch::new(signal, payload.into(), source.clone())?;
        exporter.export(&batch).await?;
    }
    exporter.shutdown().await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = cpu0
        .zip(process_cpu_seconds(None))
        .map_or(-1.0, |(a, b)| b - a);
    let c = |name: &str| telemetry.counter_sum(name, &[]);
    println!(
        "{{\"files\": {}, \"uploaded\": {}, \"upload_retries\": {}, \"rows\": {}, \"seconds\": {seconds:.3}, \"cpu_seconds\": {cpu_seconds:.2}}}",
        c("sonde_parquet_files_total"),
        c("sonde_parquet_uploaded_files_total"),
        c("sonde_parquet_upload_retries_total"),
        c("sonde_parquet_rows_total"),
    );
    Ok(())
}
