//! A scriptable OTLP server on loopback for fault injection: speaks OTLP/gRPC (h2c) and
//! OTLP/HTTP (HTTP/1.1) on one port, records every request it receives (decompressed), and
//! answers each one with the next scripted [`Reply`] (then `Ok` once the script is used up).
//! It can be started late (to refuse connections for a while) and killed (listener and every
//! open connection closed) mid-run.

#![allow(dead_code, clippy::unwrap_used)] // test support: a failure here is a test failure

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use sonde::pipeline::buffer;
use sonde::pipeline::worker::{self, WorkerConfig};
use sonde_core::metrics::Registry;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Ok,
    /// Accept, reporting `n` items rejected.
    Partial(i64, &'static str),
    /// HTTP status (on either protocol) with an optional `Retry-After` in seconds.
    Http(u16, Option<u64>),
    /// gRPC status code and an optional `RetryInfo` delay in milliseconds.
    Grpc(i32, Option<u64>),
    /// Never answer.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    /// The export request, decompressed.
    pub body: Bytes,
    pub grpc: bool,
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    received: Vec<Received>,
}

pub struct FaultServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: Option<JoinSet<()>>,
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn grpc_frame(msg: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(5 + msg.len());
    v.push(0);
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v.into()
}

fn decompress(encoding: Option<&str>, data: &[u8]) -> Vec<u8> {
    match encoding {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Some("zstd") => zstd::decode_all(data).unwrap(),
        _ => data.to_vec(),
    }
}

/// `google.rpc.Status` with a `RetryInfo` detail, encoded by hand (fields 1, 2, 3).
fn status_with_retry_info(code: i32, delay_ms: u64) -> Vec<u8> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Dur {
        #[prost(int64, tag = "1")]
        seconds: i64,
        #[prost(int32, tag = "2")]
        nanos: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct RetryInfo {
        #[prost(message, optional, tag = "1")]
        retry_delay: Option<Dur>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Any {
        #[prost(string, tag = "1")]
        type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        value: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
        #[prost(message, repeated, tag = "3")]
        details: Vec<Any>,
    }
    Status {
        code,
        message: "try later".into(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: RetryInfo {
                retry_delay: Some(Dur {
                    seconds: (delay_ms / 1000) as i64,
                    nanos: ((delay_ms % 1000) * 1_000_000) as i32,
                }),
            }
            .encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

fn partial_response(n: i64, msg: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: n,
            error_message: msg.into(),
        }),
    }
    .encode_to_vec()
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Response<Body> {
    let grpc = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let raw = req.into_body().collect().await.unwrap().to_bytes();
    let body = if grpc {
        let mut b = raw.clone();
        let compressed = b.get_u8() == 1;
        let len = b.get_u32() as usize;
        let enc = headers.get("grpc-encoding").and_then(|v| v.to_str().ok());
        decompress(if compressed { enc } else { None }, &b[..len])
    } else {
        let enc = headers
            .get("content-encoding")
            .and_then(|v| v.to_str().ok());
        decompress(enc, &raw)
    };
    let reply = {
        let mut s = state.lock().unwrap();
        s.received.push(Received {
            at: Instant::now(),
            path,
            headers,
            body: body.into(),
            grpc,
        });
        s.script.pop_front().unwrap_or(Reply::Ok)
    };
    let ok_body = |msg: Vec<u8>| -> Response<Body> {
        if grpc {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            let frames = vec![
                Ok::<_, Infallible>(Frame::data(grpc_frame(&msg))),
                Ok(Frame::trailers(trailers)),
            ];
            Response::builder()
                .header("content-type", "application/grpc")
                .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
                .unwrap()
        } else {
            Response::builder()
                .header("content-type", "application/x-protobuf")
                .body(full(msg))
                .unwrap()
        }
    };
    match reply {
        Reply::Ok => ok_body(vec![]),
        Reply::Partial(n, m) => ok_body(partial_response(n, m)),
        Reply::Http(code, retry_after) => {
            let mut r = Response::builder().status(StatusCode::from_u16(code).unwrap());
            if let Some(s) = retry_after {
                r = r.header("retry-after", s.to_string());
            }
            r.body(full("refused by the test server")).unwrap()
        }
        Reply::Grpc(code, retry_ms) => {
            // Trailers-only response.
            let mut r = Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", code.to_string())
                .header("grpc-message", "scripted%20failure");
            if let Some(ms) = retry_ms {
                use base64::Engine;
                let details = base64::engine::general_purpose::STANDARD_NO_PAD
                    .encode(status_with_retry_info(code, ms));
                r = r.header("grpc-status-details-bin", details);
            }
            r.body(full(Bytes::new())).unwrap()
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

impl FaultServer {
    /// Listens on `port` (0: any) with `script`.
    pub async fn start(port: u16, script: Vec<Reply>) -> FaultServer {
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            received: vec![],
        }));
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        let st = state.clone();
        // Connections are tasks of the accept loop's own set, so killing the server closes them.
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        FaultServer {
            addr,
            state,
            tasks: Some(tasks),
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn push_script(&self, r: Reply) {
        self.state.lock().unwrap().script.push_back(r);
    }

    /// Stops listening and closes every connection.
    pub async fn kill(&mut self) {
        if let Some(mut t) = self.tasks.take() {
            t.abort_all();
            while t.join_next().await.is_some() {}
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Some(t) = self.tasks.as_mut() {
            t.abort_all();
        }
    }
}

/// Spans in the export requests received, as (trace id, span name).
pub fn spans(received: &[Received]) -> Vec<(Vec<u8>, String)> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    received
        .iter()
        .flat_map(|r| {
            let req = ExportTraceServiceRequest::decode(&r.body[..]).unwrap();
            req.resource_spans
                .into_iter()
                .flat_map(|rs| rs.scope_spans)
                .flat_map(|ss| ss.spans)
                .map(|s| (s.trace_id, s.name))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A batch of `n` spans named `{prefix}-{i}`, `traces` distinct trace IDs spread over them.
pub fn span_batch(prefix: &str, n: usize, traces: usize) -> sonde_core::Batch {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| {
                        let t = (i % traces.max(1)) as u64;
                        let mut tid = [0u8; 16];
                        tid[..8].copy_from_slice(&t.to_be_bytes());
                        tid[8..].copy_from_slice(&(prefix.len() as u64 + 1).to_be_bytes());
                        Span {
                            trace_id: tid.to_vec(),
                            span_id: ((i as u64) + 1).to_be_bytes().to_vec(),
                            name: format!("{prefix}-{i}"),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    sonde_core::Batch::new(
        sonde_core::Signal::Traces,
        req.encode_to_vec().into(),
        std::sync::Arc::from("test"),
    )
    .unwrap()
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub async fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// --- The OTLP exporter behind the real export worker

/// The exporter `x` of a config whose `[exporters.x]` has `type = "otlp"` plus `body`.
pub fn exporter_config(body: &str) -> sonde_config::ExporterConfig {
    let text =
        format!("[sources.h]\ntype = \"host_metrics\"\n[exporters.x]\ntype = \"otlp\"\n{body}\n");
    let mut c = sonde_config::load_str(&text, "test").unwrap();
    c.exporters.remove("x").unwrap()
}

pub struct Pipe {
    pub tx: sonde::pipeline::buffer::BufferSender,
    pub task: tokio::task::JoinHandle<()>,
    pub metrics: sonde_core::metrics::Registry,
}

pub fn pipe(cfg: &sonde_config::ExporterConfig) -> Pipe {
    let metrics = Registry::default();
    let exporter = sonde_exporters::build(
        cfg,
        &sonde_exporters::context("x", &Default::default(), metrics.clone()),
    )
    .unwrap();
    let (tx, rx) = buffer::channel("x", &cfg.common.buffer, &metrics);
    let wcfg = WorkerConfig {
        name: Arc::from("x"),
        batch: cfg.common.batch.clone(),
        timeout: cfg.common.timeout.get(),
        retry: cfg.common.retry.clone(),
        concurrency: cfg.common.concurrency.unwrap_or(4),
        health: Default::default(),
    };
    let task = tokio::spawn(worker::run(
        wcfg,
        exporter,
        rx,
        metrics.clone(),
        CancellationToken::new(),
    ));
    Pipe { tx, task, metrics }
}

impl Pipe {
    /// Closes the buffer and waits (bounded) until everything is exported or given up on.
    pub async fn drain(self) -> Registry {
        drop(self.tx);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the worker drains within 30s")
            .unwrap();
        self.metrics
    }
}
