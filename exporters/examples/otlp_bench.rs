//! Export throughput of the OTLP exporter per CPU-second, against a counting sink on loopback.
//! Driven by `exporters/benches/otlp_export.sh`, which also runs rotel forwarding the same load.
//!
//! - `otlp_bench sink PORT`: an OTLP/gRPC (h2c) and OTLP/HTTP sink that decompresses, counts
//!   the spans of every request (wire walker) and answers OK; prints `spans=N` to stderr every
//!   second.
//! - `otlp_bench send PROTOCOL ENDPOINT BATCH COMPRESSION TOTAL`: exports TOTAL spans in batches
//!   of BATCH (~500-byte spans) with 4 calls in flight, then prints one line:
//!   `spans=… wall_s=… cpu_s=… spans_per_cpu_s=…` (CPU of this process from /proc/self/stat).

#![allow(clippy::unwrap_used)] // a benchmark tool: failing loudly is the point

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use sonde_core::metrics::Registry;
use sonde_core::process::process_cpu_seconds;
use sonde_core::{wire, Batch, Signal};
use sonde_exporters::parquet::testdata;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cpu_seconds() -> f64 {
    process_cpu_seconds(None).expect("/proc/self/stat")
}

/// A string attribute, from the shared test data.
fn kv(k: &str, v: &str) -> KeyValue {
    testdata::kv(k, testdata::s(v))
}

fn batch(n: usize) -> Batch {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "bench"), kv("host.name", "h1")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        trace_id: [(i % 251) as u8; 16].to_vec(),
                        span_id: ((i as u64) + 1).to_be_bytes().to_vec(),
                        name: format!("GET /api/v1/items/{i}"),
                        kind: 2,
                        start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                        end_time_unix_nano: 1_700_000_000_100_000_000 + i as u64,
                        attributes: vec![
                            kv("http.method", "GET"),
                            kv("http.route", "/api/v1/items/{id}"),
                            kv("http.url", &format!("https://shop.example.com/api/v1/items/{i}?ref=home&lang=en")),
                            kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"),
                            kv("net.peer.name", "10.1.2.3"),
                            kv("db.statement", "SELECT id, name, price FROM items WHERE id = ? AND visible = true"),
                        ],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Batch::new(
        Signal::Traces,
        req.encode_to_vec().into(),
        Arc::from("bench"),
    )
    .unwrap()
}

async fn send(protocol: &str, endpoint: &str, size: usize, compression: &str, total: u64) {
    let text = format!(
        "[sources.h]\ntype = \"host_metrics\"\n[exporters.x]\ntype = \"otlp\"\nprotocol = \"{protocol}\"\nendpoint = \"{endpoint}\"\ncompression = \"{compression}\"\n"
    );
    let cfg = sonde_config::load_str(&text, "bench").unwrap();
    let cx = sonde_exporters::context("x", &cfg.agent, Registry::default());
    let exporter = sonde_exporters::build(&cfg.exporters["x"], &cx).unwrap();
    let b = batch(size);
    eprintln!("span bytes ≈ {}", b.payload.len() / size);
    let sent = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (e, b, sent) = (exporter.clone(), b.clone(), sent.clone());
        tasks.spawn(async move {
            while sent.fetch_add(b.items, Ordering::Relaxed) < total {
                tokio::time::timeout(Duration::from_secs(10), e.export(&b))
                    .await
                    .unwrap()
                    .unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "spans={total} wall_s={wall:.2} cpu_s={cpu:.2} spans_per_s={:.0} spans_per_cpu_s={:.0}",
        total as f64 / wall,
        total as f64 / cpu
    );
}

async fn sink(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let spans = Arc::new(AtomicU64::new(0));
    let s2 = spans.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            eprintln!("spans={}", s2.load(Ordering::Relaxed));
        }
    });
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        let spans = spans.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let spans = spans.clone();
                    async move {
                        let grpc = req
                            .headers()
                            .get("content-type")
                            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                        let enc = req
                            .headers()
                            .get(if grpc {
                                "grpc-encoding"
                            } else {
                                "content-encoding"
                            })
                            .map(|v| v.to_str().unwrap_or("").to_string());
                        let mut body = req.into_body().collect().await.unwrap().to_bytes();
                        let compressed = if grpc {
                            let flag = body.get_u8();
                            let _len = body.get_u32();
                            flag == 1
                        } else {
                            enc.is_some()
                        };
                        let data: Bytes = match (compressed, enc.as_deref()) {
                            (true, Some("gzip")) => {
                                let mut out = Vec::new();
                                flate2::read::GzDecoder::new(&body[..])
                                    .read_to_end(&mut out)
                                    .unwrap();
                                out.into()
                            }
                            (true, Some("zstd")) => zstd::decode_all(&body[..]).unwrap().into(),
                            _ => body,
                        };
                        spans.fetch_add(
                            wire::validate(Signal::Traces, &data).unwrap_or(0),
                            Ordering::Relaxed,
                        );
                        let resp = if grpc {
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                            let frames = vec![
                                Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(
                                    &[0, 0, 0, 0, 0],
                                ))),
                                Ok(Frame::trailers(trailers)),
                            ];
                            hyper::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(
                                    http_body_util::StreamBody::new(futures_util::stream::iter(
                                        frames,
                                    ))
                                    .boxed(),
                                )
                                .unwrap()
                        } else {
                            hyper::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()).boxed())
                                .unwrap()
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.get(1).map(String::as_str) {
        Some("sink") => rt.block_on(sink(args[2].parse().unwrap())),
        Some("send") => rt.block_on(send(
            &args[2],
            &args[3],
            args[4].parse().unwrap(),
            &args[5],
            args[6].parse().unwrap(),
        )),
        _ => eprintln!(
            "usage: otlp_bench sink PORT | send PROTOCOL ENDPOINT BATCH COMPRESSION TOTAL"
        ),
    }
}
