//! OTLP bytes → zstd Parquet bytes: the Parquet exporter's conversion and encoding, per core.
//!
//! `cargo bench -p sonde-exporters --bench parquet`. Each iteration decodes one 4096-span (or
//! 4096-record) export request, converts it to Arrow and writes it through a zstd Parquet
//! writer into memory, as the exporter does for each batch (staging-log fsync excluded: that is
//! disk, not CPU). Also prints bytes per span in Parquet against the OTLP protobuf, gzip'd and
//! zstd'd, for the same data.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parquet::arrow::ArrowWriter;
use prost::Message;
use sonde_config::ParquetConfig;
use sonde_core::process::process_cpu_seconds;
use sonde_core::Signal;
use sonde_exporters::parquet::{convert, schema, testdata, writer::Settings};
use std::io::Write;

const N: usize = 4096;

fn parquet_bytes(settings: &Settings, signal: Signal, payloads: &[Vec<u8>]) -> usize {
    let mut w = ArrowWriter::try_new(
        Vec::new(),
        schema::schema(signal),
        Some(settings.properties(signal)),
    )
    .unwrap();
    for p in payloads {
        w.write(&convert::convert(signal, p).unwrap()).unwrap();
    }
    w.into_inner().unwrap().len()
}

fn sizes(settings: &Settings, signal: Signal, payloads: &[Vec<u8>], items: usize) {
    let raw: Vec<u8> = payloads.concat();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap().len();
    let zs = zstd::bulk::compress(&raw, 3).unwrap().len();
    // Each request compressed on its own, as an OTLP exporter sends it.
    let zs_each: usize = payloads
        .iter()
        .map(|p| zstd::bulk::compress(p, 3).unwrap().len())
        .sum();
    let pq = parquet_bytes(settings, signal, payloads);
    let per = |b: usize| b as f64 / items as f64;
    println!(
        "{signal}: {items} items in {} requests; bytes/item: otlp {:.1}, otlp+gzip {:.1}, otlp+zstd(3) {:.1} ({:.1} per request), parquet+zstd {:.1}; zstd-otlp/parquet = {:.2}x ({:.2}x per request)",
        payloads.len(),
        per(raw.len()),
        per(gz),
        per(zs),
        per(zs_each),
        per(pq),
        zs as f64 / pq as f64,
        zs_each as f64 / pq as f64,
    );
}

fn cpu_seconds() -> f64 {
    process_cpu_seconds(None).expect("/proc/self/stat")
}

/// Items converted per CPU-second (not per wall-second: the figure holds on a busy machine).
fn per_cpu_second(settings: &Settings, signal: Signal, payloads: &[Vec<u8>], items: usize) {
    let rounds = 4;
    let (cpu0, wall0) = (cpu_seconds(), std::time::Instant::now());
    for _ in 0..rounds {
        parquet_bytes(settings, signal, payloads);
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    // The share of that spent decoding OTLP and building Arrow arrays (the rest is Parquet
    // encoding: dictionaries, levels, zstd).
    let cpu1 = cpu_seconds();
    for _ in 0..rounds {
        for p in payloads {
            std::hint::black_box(convert::convert(signal, p).unwrap());
        }
    }
    let convert_cpu = cpu_seconds() - cpu1;
    // For comparison: prost decoding into the opentelemetry-proto structs (what the converter
    // did before it read the wire directly).
    let cpu2 = cpu_seconds();
    for _ in 0..rounds {
        for p in payloads {
            match signal {
                Signal::Traces => {
                    std::hint::black_box(ExportTraceServiceRequest::decode(&p[..]).unwrap());
                }
                Signal::Logs => {
                    std::hint::black_box(ExportLogsServiceRequest::decode(&p[..]).unwrap());
                }
                Signal::Metrics => {}
            }
        }
    }
    let decode_cpu = cpu_seconds() - cpu2;
    println!(
        "{signal}: OTLP -> Arrow alone {:.0} items per CPU-second ({:.0}% of the whole; a prost decode alone would be {:.0}%)",
        (rounds * items) as f64 / convert_cpu,
        100.0 * convert_cpu / cpu,
        100.0 * decode_cpu / cpu
    );
    println!(
        "{signal}: {:.0} items per CPU-second ({:.0} per wall-second; {:.1} CPU-s for {} items)",
        (rounds * items) as f64 / cpu,
        (rounds * items) as f64 / wall,
        cpu,
        rounds * items
    );
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir();
    let settings = Settings::new("bench", &ParquetConfig::default(), &dir).unwrap();
    let traces: Vec<Vec<u8>> = (0..25)
        .map(|s| testdata::bulk_traces(N, s + 1, testdata::T0 + s * 10_000_000_000).encode_to_vec())
        .collect();
    let logs: Vec<Vec<u8>> = (0..25)
        .map(|s| testdata::bulk_logs(N, s + 1, testdata::T0 + s * 10_000_000_000).encode_to_vec())
        .collect();
    // Under `--profile-time` (a profiler attached), only the criterion loop runs, so the
    // profile is the OTLP -> Parquet path and nothing else.
    if !std::env::args().any(|a| a == "--profile-time") {
        sizes(&settings, Signal::Traces, &traces, 25 * N);
        sizes(&settings, Signal::Logs, &logs, 25 * N);
        // The same number of spans in requests of 512, the OpenTelemetry SDKs' default batch.
        let sdk_sized: Vec<Vec<u8>> = (0..200)
            .map(|s| {
                testdata::bulk_traces(512, s + 1, testdata::T0 + s * 10_000_000_000).encode_to_vec()
            })
            .collect();
        sizes(&settings, Signal::Traces, &sdk_sized, 200 * 512);
        per_cpu_second(&settings, Signal::Traces, &traces, 25 * N);
        per_cpu_second(&settings, Signal::Logs, &logs, 25 * N);
    }

    let mut g = c.benchmark_group("otlp_to_parquet_zstd");
    g.throughput(Throughput::Elements(N as u64 * 8));
    g.sample_size(10);
    g.bench_function("spans", |b| {
        b.iter(|| parquet_bytes(&settings, Signal::Traces, &traces[..8]))
    });
    g.bench_function("log_records", |b| {
        b.iter(|| parquet_bytes(&settings, Signal::Logs, &logs[..8]))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
