//! Wire walker throughput: items/s and bytes/s per core validating realistic export requests,
//! alone and with the UTF-8 check of their strings that the OTLP receiver adds.
//!
//! `cargo bench -p sonde-exporters --bench wire`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use sonde_core::{wire, Signal};
use sonde_exporters::parquet::testdata;

/// A string attribute, from the shared test data.
fn kv(k: &str, v: &str) -> KeyValue {
    testdata::kv(k, testdata::s(v))
}

/// Spans like a web service emits: ~10 attributes, a resource with service.name.
fn spans(n: usize) -> Vec<u8> {
    let attrs: Vec<KeyValue> = [
        ("http.request.method", "GET"),
        ("http.route", "/api/v1/orders/{id}"),
        ("url.path", "/api/v1/orders/12345"),
        ("server.address", "orders.internal"),
        ("server.port", "8080"),
        ("network.protocol.version", "1.1"),
        ("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("http.response.status_code", "200"),
        ("client.address", "10.1.2.3"),
        ("deployment.environment", "production"),
    ]
    .iter()
    .map(|(k, v)| kv(k, v))
    .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "orders"), kv("host.name", "web-1")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        trace_id: (i as u128).to_be_bytes().to_vec(),
                        span_id: (i as u64).to_be_bytes().to_vec(),
                        parent_span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        name: "GET /api/v1/orders/{id}".into(),
                        kind: 2,
                        start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                        end_time_unix_nano: 1_700_000_000_001_000_000 + i as u64,
                        attributes: attrs.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn logs(n: usize) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "orders")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (0..n)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                        severity_number: 9,
                        severity_text: "INFO".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!(
                                "order {i} accepted for customer 42 in 3.2 ms"
                            ))),
                        }),
                        attributes: vec![
                            kv("code.function", "accept"),
                            kv("thread.name", "worker-3"),
                        ],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn bench(c: &mut Criterion) {
    for (label, signal, payload, n) in [
        ("spans", Signal::Traces, spans(1000), 1000u64),
        ("spans", Signal::Traces, spans(100), 100),
        ("logs", Signal::Logs, logs(1000), 1000),
    ] {
        let mut g = c.benchmark_group(format!("wire_validate_{label}"));
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("items", n), &payload, |b, p| {
            b.iter(|| wire::validate(signal, std::hint::black_box(p)).unwrap_or(0))
        });
        g.throughput(Throughput::Bytes(payload.len() as u64));
        g.bench_with_input(BenchmarkId::new("bytes", n), &payload, |b, p| {
            b.iter(|| wire::validate(signal, std::hint::black_box(p)).unwrap_or(0))
        });
        // What the receiver does to every protobuf request: the walk, then the UTF-8 check.
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("items_and_utf8", n), &payload, |b, p| {
            b.iter(|| {
                let p = std::hint::black_box(p);
                wire::validate(signal, p).unwrap_or(0)
                    + u64::from(wire::utf8::check(signal, p).is_ok())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
