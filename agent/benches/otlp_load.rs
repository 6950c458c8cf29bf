//! A load generator for OTLP receivers (Sonde's, or any peer's): sends realistic spans over
//! OTLP/gRPC or OTLP/HTTP (protobuf, uncompressed) as fast as the receiver acknowledges them, from
//! a few connections at once, and prints one JSON line with what was acknowledged and how fast.
//!
//! Requests are encoded before the clock starts (a handful of distinct ones, sent round-robin),
//! so the generator spends its CPU on the network, not on encoding. With `--unique 1`, each
//! request sent is a copy with its own first span id, so no two are byte for byte the same, as
//! an application's are not (the Parquet exporter keeps byte-identical batches once). A throttled request
//! (gRPC UNAVAILABLE/RESOURCE_EXHAUSTED, HTTP 429/503) waits for the retry hint (at most 1 s) and
//! is sent again: every span counted was acknowledged exactly once.
//!
//! ```text
//! cargo bench -p sonde --bench otlp_load -- --target grpc://127.0.0.1:4317 --batch 1000 \
//!     --spans 1000000 [--connections 4] [--distinct 16] [--unique 0|1] [--timeout 120]
//! ```
//!
//! Each span: ~10 attributes (HTTP server semantic conventions plus a few app ones), ids, times,
//! a status; the resource has `service.name` and four more attributes.

#[path = "support/requests.rs"]
mod requests;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use requests::{request, Body};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const TRACE_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

struct Args {
    grpc: bool,
    addr: String,
    batch: usize,
    spans: u64,
    connections: usize,
    distinct: usize,
    unique: bool,
    timeout: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: otlp_load --target grpc://HOST:PORT|http://HOST:PORT --batch N --spans TOTAL \
         [--connections 4] [--distinct 16] [--unique 0|1] [--timeout 120]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        grpc: true,
        addr: String::new(),
        batch: 1000,
        spans: 1_000_000,
        connections: 4,
        distinct: 16,
        unique: false,
        timeout: Duration::from_secs(120),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        // `cargo bench` passes `--bench`; ignore it.
        if k == "--bench" {
            continue;
        }
        let Some(v) = it.next() else { usage() };
        let num = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage());
        match k.as_str() {
            "--target" => {
                if let Some(rest) = v.strip_prefix("grpc://") {
                    a.grpc = true;
                    a.addr = rest.to_string();
                } else if let Some(rest) = v.strip_prefix("http://") {
                    a.grpc = false;
                    a.addr = rest.to_string();
                } else {
                    usage()
                }
            }
            "--batch" => a.batch = num(&v) as usize,
            "--spans" => a.spans = num(&v),
            "--connections" => a.connections = num(&v).max(1) as usize,
            "--distinct" => a.distinct = num(&v).max(1) as usize,
            "--unique" => a.unique = num(&v) != 0,
            "--timeout" => a.timeout = Duration::from_secs(num(&v)),
            _ => usage(),
        }
    }
    if a.addr.is_empty() || a.batch == 0 {
        usage()
    }
    a
}

fn grpc_frame(msg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(msg.len() + 5);
    b.put_u8(0);
    b.put_u32(msg.len() as u32);
    b.put_slice(msg);
    b.freeze()
}

/// What an answer means for the sender.
enum Answer {
    Ok,
    /// Throttled: retry after this long.
    Retry(Duration),
    Fail(String),
}

async fn worker(
    args: Arc<Args>,
    bodies: Arc<Vec<Body>>,
    sent: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
    id: usize,
) -> Result<(), String> {
    let io = TokioIo::new(
        TcpStream::connect(&args.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", args.addr))?,
    );
    let _ = io.inner().set_nodelay(true);
    let uri = format!("http://{}", args.addr);
    let mut n = id;
    enum Client {
        H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
        H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    }
    let mut client = if args.grpc {
        let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Client::H2(s)
    } else {
        let (s, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Client::H1(s)
    };
    loop {
        // Claim a batch's worth of the total before sending it.
        let before = sent.fetch_add(args.batch as u64, Ordering::Relaxed);
        if before >= args.spans {
            return Ok(());
        }
        let template = &bodies[n % bodies.len()];
        let body = if args.unique {
            template.stamped(before / args.batch as u64)
        } else {
            template.bytes.clone()
        };
        n += args.connections;
        loop {
            let answer = match &mut client {
                Client::H2(s) => {
                    let req = http::Request::post(format!("{uri}{TRACE_PATH}"))
                        .header("content-type", "application/grpc")
                        .header("te", "trailers")
                        .body(Full::new(grpc_frame(&body)))
                        .map_err(|e| e.to_string())?;
                    let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
                    let mut meta = resp.headers().clone();
                    let collected = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    if let Some(t) = collected.trailers() {
                        meta.extend(t.clone());
                    }
                    match meta.get("grpc-status").and_then(|v| v.to_str().ok()) {
                        Some("0") => Answer::Ok,
                        Some("14") | Some("8") => Answer::Retry(Duration::from_millis(200)),
                        other => Answer::Fail(format!("grpc-status {other:?}: {meta:?}")),
                    }
                }
                Client::H1(s) => {
                    s.ready().await.map_err(|e| e.to_string())?;
                    let req = http::Request::post(format!("{uri}/v1/traces"))
                        .header("host", &args.addr)
                        .header("content-type", "application/x-protobuf")
                        .body(Full::new(body.clone()))
                        .map_err(|e| e.to_string())?;
                    let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
                    let status = resp.status().as_u16();
                    let retry = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let _ = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?;
                    match status {
                        200 => Answer::Ok,
                        429 | 503 => Answer::Retry(Duration::from_secs(retry.unwrap_or(1).min(1))),
                        s => Answer::Fail(format!("HTTP {s}")),
                    }
                }
            };
            match answer {
                Answer::Ok => {
                    acked.fetch_add(args.batch as u64, Ordering::Relaxed);
                    break;
                }
                Answer::Retry(d) => {
                    throttled.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(d).await;
                }
                Answer::Fail(e) => return Err(e),
            }
        }
    }
}

fn main() {
    let args = Arc::new(parse_args());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("runtime: {e}");
            std::process::exit(1)
        });
    let bodies: Arc<Vec<Body>> = Arc::new(
        (0..args.distinct)
            .map(|i| request(args.batch, i as u64 + 1))
            .collect(),
    );
    let request_bytes = bodies.iter().map(|b| b.bytes.len()).sum::<usize>() / bodies.len();
    let sent = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let throttled = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let result = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for id in 0..args.connections {
            tasks.spawn(worker(
                args.clone(),
                bodies.clone(),
                sent.clone(),
                acked.clone(),
                throttled.clone(),
                id,
            ));
        }
        let all = async {
            let mut errors = Vec::new();
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => errors.push(e),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            errors
        };
        tokio::time::timeout(args.timeout, all).await
    });
    let secs = started.elapsed().as_secs_f64();
    let errors = match result {
        Ok(e) => e,
        Err(_) => vec![format!("timed out after {:?}", args.timeout)],
    };
    let acked = acked.load(Ordering::Relaxed);
    println!(
        "{{\"transport\":\"{}\",\"batch\":{},\"spans\":{},\"seconds\":{:.3},\"spans_per_sec\":{:.0},\"request_bytes\":{},\"throttled\":{},\"errors\":{:?}}}",
        if args.grpc { "grpc" } else { "http" },
        args.batch,
        acked,
        secs,
        acked as f64 / secs,
        request_bytes,
        throttled.load(Ordering::Relaxed),
        errors
    );
    if !errors.is_empty() {
        std::process::exit(1);
    }
}
