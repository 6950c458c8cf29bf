//! The receiver in process, against hand-rolled HTTP/1.1 and HTTP/2 (gRPC) clients, with a real
//! router and buffer behind it: what reaches the buffer, byte for byte, and what each kind of
//! bad or unlucky request is answered.

use super::*;
use crate::pipeline::buffer::{self, BufferReceiver};
use crate::pipeline::router::Route;
use bytes::{BufMut, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use sonde_config::{BufferConfig, BufferKind, ByteSize, Listen, WhenFull};
use sonde_core::otlp::status::{RetryInfo, RpcStatus};
use std::io::Write as _;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Harness {
    grpc: SocketAddr,
    http: SocketAddr,
    buffer: BufferReceiver,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    metrics: Registry,
}

fn config() -> OtlpSourceConfig {
    OtlpSourceConfig {
        grpc: Listen::At(([127, 0, 0, 1], 0).into()),
        http: Listen::At(([127, 0, 0, 1], 0).into()),
        max_request_size: ByteSize::kib(64),
        block_timeout: sonde_config::Duration::from_millis(100),
        ..OtlpSourceConfig::default()
    }
}

fn buffer_config(max: u64, when_full: WhenFull) -> BufferConfig {
    BufferConfig {
        kind: BufferKind::Memory,
        max_size: ByteSize(max),
        when_full,
        ..BufferConfig::default()
    }
}

async fn start(cfg: OtlpSourceConfig, buf: BufferConfig) -> Harness {
    let metrics = Registry::default();
    let (tx, rx) = buffer::channel("out", &buf, &metrics);
    let router = Router::new(vec![Route {
        exporter: "out".into(),
        inputs: None,
        signals: Signal::ALL.to_vec(),
        buffer: tx,
        bulkhead: None,
    }]);
    let shutdown = CancellationToken::new();
    let cx = crate::sources::context(
        "otlp",
        router,
        metrics.clone(),
        shutdown.clone(),
        std::env::temp_dir(),
    );
    let bound = Bound::bind(&cfg, cx).await.unwrap();
    let grpc = bound.local_addr(Transport::Grpc).unwrap();
    let http = bound.local_addr(Transport::Http).unwrap();
    let task = tokio::spawn(bound.task());
    Harness {
        grpc,
        http,
        buffer: rx,
        shutdown,
        task,
        metrics,
    }
}

/// An export request of `n` spans with a few attributes each.
fn traces(n: usize) -> Bytes {
    let attr = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let spans = (0..n)
        .map(|i| Span {
            trace_id: vec![1; 16],
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: format!("span-{i}"),
            attributes: vec![attr("http.route", "/cart"), attr("peer", "db")],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr("service.name", "checkout")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
    .into()
}

fn gzip(data: &[u8]) -> Bytes {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap().into()
}

fn zstd(data: &[u8]) -> Bytes {
    zstd::encode_all(data, 1).unwrap().into()
}

/// One HTTP/1.1 request; returns status, headers and body.
async fn http1(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u16, ::http::HeaderMap, Bytes) {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut req = ::http::Request::post(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

async fn post(
    addr: SocketAddr,
    path: &str,
    ct: &str,
    body: Bytes,
) -> (u16, ::http::HeaderMap, Bytes) {
    http1(addr, path, &[("content-type", ct)], body).await
}

/// A gRPC frame: compressed flag, big-endian length, message.
fn frame(compressed: bool, msg: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(u8::from(compressed));
    b.put_u32(msg.len() as u32);
    b.put_slice(msg);
    b.freeze()
}

struct GrpcReply {
    http_status: u16,
    code: Option<i32>,
    message: String,
    /// Headers and trailers together.
    meta: ::http::HeaderMap,
}

const TRACE_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

async fn grpc_raw(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> GrpcReply {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = ::http::Request::post(format!("http://{addr}{path}")).header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let http_status = resp.status().as_u16();
    let mut meta = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    if let Some(t) = collected.trailers() {
        meta.extend(t.clone());
    }
    let code = meta
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let message = meta
        .get("grpc-message")
        .map(|v| percent_decode(v.to_str().unwrap()))
        .unwrap_or_default();
    GrpcReply {
        http_status,
        code,
        message,
        meta,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn grpc_export(addr: SocketAddr, encoding: Option<&str>, msg: &[u8]) -> GrpcReply {
    let mut headers = vec![("content-type", "application/grpc")];
    let body = match encoding {
        None => frame(false, msg),
        Some("gzip") => {
            headers.push(("grpc-encoding", "gzip"));
            frame(true, &gzip(msg))
        }
        Some(e) => {
            headers.push(("grpc-encoding", e));
            frame(true, &zstd(msg))
        }
    };
    grpc_raw(addr, TRACE_PATH, &headers, body).await
}

async fn next_payload(h: &mut Harness) -> Bytes {
    let q = tokio::time::timeout(Duration::from_secs(5), h.buffer.recv())
        .await
        .unwrap()
        .unwrap();
    let p = q.batch.payload.clone();
    q.ack();
    p
}

fn refused(h: &Harness, transport: &str, reason: &str) -> u64 {
    h.metrics.counter_sum(
        "sonde_source_refused_requests_total",
        &[("transport", transport), ("reason", reason)],
    )
}

#[tokio::test]
async fn protobuf_passes_through_byte_for_byte_in_every_encoding() {
    let mut h = start(config(), BufferConfig::default()).await;
    let msg = traces(20);
    for enc in [None, Some("gzip"), Some("zstd")] {
        let r = grpc_export(h.grpc, enc, &msg).await;
        assert_eq!(
            (r.http_status, r.code),
            (200, Some(0)),
            "{enc:?}: {}",
            r.message
        );
        assert_eq!(next_payload(&mut h).await, msg, "gRPC {enc:?}");

        let mut headers = vec![("content-type", "application/x-protobuf")];
        let body = match enc {
            None => msg.clone(),
            Some("gzip") => gzip(&msg),
            _ => zstd(&msg),
        };
        if let Some(e) = enc {
            headers.push(("content-encoding", e));
        }
        let (status, hdrs, body) = http1(h.http, "/v1/traces", &headers, body).await;
        assert_eq!(status, 200, "HTTP {enc:?}: {body:?}");
        assert_eq!(hdrs["content-type"], "application/x-protobuf");
        assert!(body.is_empty(), "full success is an empty response message");
        assert_eq!(next_payload(&mut h).await, msg, "HTTP {enc:?}");
    }
    assert_eq!(
        h.metrics
            .counter_sum("sonde_source_received_items_total", &[("signal", "traces")]),
        120
    );
}

#[tokio::test]
async fn grpc_refusals_get_the_codes_otlp_prescribes() {
    let mut h = start(config(), BufferConfig::default()).await;
    let msg = traces(5);
    let grpc_ct = [("content-type", "application/grpc")];

    // Malformed protobuf: a truncated message.
    let r = grpc_export(h.grpc, None, &msg[..msg.len() - 3]).await;
    assert_eq!(r.code, Some(3), "{}", r.message);
    assert!(
        r.message.contains("invalid OTLP traces export request"),
        "{}",
        r.message
    );
    // Bad framing: the frame says more bytes than the stream has.
    let mut short = frame(false, &msg).to_vec();
    short.truncate(20);
    let r = grpc_raw(h.grpc, TRACE_PATH, &grpc_ct, short.into()).await;
    assert_eq!(r.code, Some(3), "{}", r.message);
    // A compressed frame without grpc-encoding.
    let r = grpc_raw(h.grpc, TRACE_PATH, &grpc_ct, frame(true, &gzip(&msg))).await;
    assert_eq!(r.code, Some(3), "{}", r.message);
    // Corrupt gzip.
    let r = grpc_raw(
        h.grpc,
        TRACE_PATH,
        &[
            ("content-type", "application/grpc"),
            ("grpc-encoding", "gzip"),
        ],
        frame(true, b"\x1f\x8bnot really gzip"),
    )
    .await;
    assert_eq!(r.code, Some(3), "{}", r.message);
    // An encoding we do not take.
    let r = grpc_raw(
        h.grpc,
        TRACE_PATH,
        &[
            ("content-type", "application/grpc"),
            ("grpc-encoding", "br"),
        ],
        frame(true, b"x"),
    )
    .await;
    assert_eq!(r.code, Some(12), "{}", r.message);
    assert!(r.meta.contains_key("grpc-accept-encoding"));
    // Too large as sent (64 KiB limit), and as a zstd bomb.
    let r = grpc_export(h.grpc, None, &vec![0u8; 100 * 1024]).await;
    assert_eq!(r.code, Some(8), "{}", r.message);
    assert!(
        r.meta.get("grpc-status-details-bin").is_none(),
        "too large is not retryable"
    );
    let r = grpc_export(h.grpc, Some("zstd"), &vec![0u8; 8 << 20]).await;
    assert_eq!(r.code, Some(8), "{}", r.message);
    let r = grpc_export(h.grpc, Some("gzip"), &vec![0u8; 8 << 20]).await;
    assert_eq!(r.code, Some(8), "{}", r.message);
    // Not gRPC at all.
    let r = grpc_raw(
        h.grpc,
        TRACE_PATH,
        &[("content-type", "application/json")],
        msg.clone(),
    )
    .await;
    assert_eq!(r.http_status, 415);
    // An unknown method.
    let r = grpc_raw(h.grpc, "/foo.Bar/Baz", &grpc_ct, frame(false, &msg)).await;
    assert_eq!(r.code, Some(12), "{}", r.message);
    // An empty request is a valid, empty export request.
    let r = grpc_export(h.grpc, None, b"").await;
    assert_eq!(r.code, Some(0), "{}", r.message);

    assert_eq!(refused(&h, "grpc", "malformed"), 4);
    assert_eq!(refused(&h, "grpc", "too_large"), 3);
    assert_eq!(refused(&h, "grpc", "unsupported_encoding"), 1);
    assert_eq!(refused(&h, "grpc", "unsupported_media_type"), 1);
    assert_eq!(refused(&h, "grpc", "not_found"), 1);
    // Nothing bad reached the buffer, and the receiver still serves.
    let r = grpc_export(h.grpc, None, &msg).await;
    assert_eq!(r.code, Some(0));
    assert_eq!(next_payload(&mut h).await, msg);
}

#[tokio::test]
async fn http_refusals_say_what_is_wrong() {
    let h = start(config(), BufferConfig::default()).await;
    let msg = traces(5);
    let pb = "application/x-protobuf";
    let (s, hd, b) = post(h.http, "/v1/traces", pb, msg.slice(..msg.len() - 3)).await;
    assert_eq!(s, 400);
    assert_eq!(hd["content-type"], pb);
    let st = RpcStatus::decode(b).unwrap();
    assert_eq!(st.code, 3);
    assert!(
        st.message.contains("invalid OTLP traces export request"),
        "{}",
        st.message
    );

    // A span name that is not UTF-8: refused at the door, naming the field, never buffered.
    let mut bad = msg.to_vec();
    let at = bad.windows(6).position(|w| w == b"span-0").unwrap();
    bad[at] = 0xff;
    let (s, _, b) = post(h.http, "/v1/traces", pb, bad.into()).await;
    assert_eq!(s, 400);
    let st = RpcStatus::decode(b).unwrap();
    assert!(
        st.message.contains("string field 5 is not valid UTF-8"),
        "{}",
        st.message
    );

    let (s, _, _) = post(h.http, "/v1/traces", "text/plain", msg.clone()).await;
    assert_eq!(s, 415);
    let (s, _, b) = http1(
        h.http,
        "/v1/traces",
        &[("content-type", pb), ("content-encoding", "zstd")],
        zstd(&vec![0u8; 8 << 20]),
    )
    .await;
    assert_eq!(s, 413);
    assert!(RpcStatus::decode(b)
        .unwrap()
        .message
        .contains("max_request_size"));
    let (s, _, _) = post(h.http, "/v1/traces", pb, vec![0u8; 100 * 1024].into()).await;
    assert_eq!(s, 413);
    let (s, _, b) = post(
        h.http,
        "/v1/traces",
        "application/json",
        Bytes::from_static(b"{\"resourceSpans\":"),
    )
    .await;
    assert_eq!(s, 400);
    let j: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert!(j["message"].as_str().unwrap().contains("OTLP/JSON"), "{j}");
    let (s, _, _) = post(h.http, "/v1/spans", pb, msg.clone()).await;
    assert_eq!(s, 404);
    let (s, _, b) = post(h.http, "/v1/logs", pb, Bytes::new()).await;
    assert_eq!(
        (s, b.len()),
        (200, 0),
        "an empty request is an empty export request"
    );
    assert_eq!(refused(&h, "http", "malformed"), 3);
    assert_eq!(refused(&h, "http", "too_large"), 2);
}

#[tokio::test]
async fn a_full_buffer_throttles_with_a_retry_hint_until_space_returns() {
    let mut h = start(config(), buffer_config(2048, WhenFull::Block)).await;
    let msg = traces(40); // > 2 KiB: takes the whole buffer
    assert!(msg.len() > 2048);
    assert_eq!(grpc_export(h.grpc, None, &msg).await.code, Some(0));

    let r = grpc_export(h.grpc, None, &msg).await;
    assert_eq!(r.code, Some(14), "{}", r.message);
    let details = r.meta["grpc-status-details-bin"].to_str().unwrap();
    let details = base64_decode(details);
    let st = RpcStatus::decode(&details[..]).unwrap();
    assert_eq!(st.code, 14);
    let info = RetryInfo::decode(&st.details[0].value[..]).unwrap();
    assert_eq!(info.retry_delay.unwrap().seconds, 1);
    assert!(r.meta.contains_key("google.rpc.retryinfo-bin"));

    let (s, hd, b) = post(
        h.http,
        "/v1/traces",
        "application/json",
        Bytes::from_static(
            b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"x\"}]}]}]}",
        ),
    )
    .await;
    assert_eq!(s, 503);
    assert_eq!(hd["retry-after"], "1");
    let j: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(j["details"][0]["retryDelay"], "1s");
    assert_eq!(
        refused(&h, "grpc", "buffer_full") + refused(&h, "http", "buffer_full"),
        2
    );
    assert_eq!(
        h.metrics.counter_sum(
            "sonde_source_refused_items_total",
            &[("reason", "buffer_full")]
        ),
        41
    );

    // The export finishes: space returns, and the next request is accepted.
    assert_eq!(next_payload(&mut h).await, msg);
    assert_eq!(grpc_export(h.grpc, None, &msg).await.code, Some(0));
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | A.iter().position(|a| *a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[tokio::test]
async fn drop_newest_answers_success_and_the_buffer_counts_the_drop() {
    let h = start(config(), buffer_config(2048, WhenFull::DropNewest)).await;
    let msg = traces(20);
    assert_eq!(grpc_export(h.grpc, None, &msg).await.code, Some(0));
    assert_eq!(grpc_export(h.grpc, None, &msg).await.code, Some(0));
    let (s, _, _) = post(h.http, "/v1/traces", "application/x-protobuf", msg.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(
        h.metrics
            .counter_sum("sonde_buffer_dropped_items_total", &[("exporter", "out")]),
        40
    );
}

/// Opens an HTTP/1.1 request whose body is still on its way, holding an in-flight slot.
async fn half_sent_request(addr: SocketAddr, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..body.len() / 2]).await.unwrap();
    s
}

#[tokio::test]
async fn requests_over_max_in_flight_are_told_to_retry() {
    let cfg = OtlpSourceConfig {
        max_in_flight: 1,
        ..config()
    };
    let h = start(cfg, BufferConfig::default()).await;
    let msg = traces(3);
    let _held = half_sent_request(h.http, &msg).await;
    // Let the held request take its slot.
    let deadline = Instant::now() + Duration::from_secs(5);
    while h
        .metrics
        .gauge("sonde_source_in_flight_requests", "", &[("source", "otlp")])
        .get()
        == 0
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = grpc_export(h.grpc, None, &msg).await;
    assert_eq!(r.code, Some(8), "{}", r.message);
    assert!(
        r.meta.contains_key("grpc-status-details-bin"),
        "throttling carries RetryInfo"
    );
    let (s, hd, _) = post(h.http, "/v1/traces", "application/x-protobuf", msg.clone()).await;
    assert_eq!(s, 429);
    assert_eq!(hd["retry-after"], "1");
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let cfg = OtlpSourceConfig {
        max_connections: 1,
        ..config()
    };
    let h = start(cfg, BufferConfig::default()).await;
    let _first = TcpStream::connect(h.http).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while h
        .metrics
        .gauge(
            "sonde_source_connections",
            "",
            &[("source", "otlp"), ("transport", "http")],
        )
        .get()
        == 0
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut second = TcpStream::connect(h.http).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "the second connection is closed"
    );
    assert_eq!(
        h.metrics.counter_sum(
            "sonde_source_refused_connections_total",
            &[("reason", "limit")]
        ),
        1
    );
}

#[tokio::test]
async fn stopping_lets_a_request_in_flight_finish() {
    let mut h = start(config(), BufferConfig::default()).await;
    let msg = traces(3);
    let mut held = half_sent_request(h.http, &msg).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while h
        .metrics
        .gauge("sonde_source_in_flight_requests", "", &[("source", "otlp")])
        .get()
        == 0
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.shutdown.cancel();
    // New connections are no longer taken…
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!h.task.is_finished(), "waits for the request in flight");
    // …but the one in flight completes.
    held.write_all(&msg[msg.len() / 2..]).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), held.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    assert_eq!(next_payload(&mut h).await, msg);
    tokio::time::timeout(Duration::from_secs(5), h.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(h.http).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn the_bearer_token_is_required_on_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let cfg = OtlpSourceConfig {
        auth: Some(sonde_config::ServerAuthConfig {
            bearer_token_file: token,
        }),
        ..config()
    };
    let h = start(cfg, BufferConfig::default()).await;
    let msg = traces(1);
    let r = grpc_export(h.grpc, None, &msg).await;
    assert_eq!(r.code, Some(16));
    let ok = grpc_raw(
        h.grpc,
        TRACE_PATH,
        &[
            ("content-type", "application/grpc"),
            ("authorization", "Bearer t0ken"),
        ],
        frame(false, &msg),
    )
    .await;
    assert_eq!(ok.code, Some(0), "{}", ok.message);
    let (s, hd, _) = http1(
        h.http,
        "/v1/traces",
        &[
            ("content-type", "application/x-protobuf"),
            ("authorization", "Bearer nope"),
        ],
        msg.clone(),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(hd["www-authenticate"], "Bearer");
    let (s, _, _) = http1(
        h.http,
        "/v1/traces",
        &[
            ("content-type", "application/x-protobuf"),
            ("authorization", "Bearer t0ken"),
        ],
        msg.clone(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        refused(&h, "grpc", "unauthenticated") + refused(&h, "http", "unauthenticated"),
        2
    );
}

#[tokio::test]
async fn a_taken_port_fails_the_start_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = OtlpSourceConfig {
        http: Listen::At(addr),
        ..config()
    };
    let (tx, _rx) = buffer::channel("out", &BufferConfig::default(), &Registry::default());
    let router = Router::new(vec![Route {
        exporter: "out".into(),
        inputs: None,
        signals: Signal::ALL.to_vec(),
        buffer: tx,
        bulkhead: None,
    }]);
    let cx = crate::sources::context(
        "otlp",
        router,
        Registry::default(),
        CancellationToken::new(),
        std::env::temp_dir(),
    );
    let e = Bound::bind(&cfg, cx).await.err().unwrap().to_string();
    assert!(
        e.contains(&format!("cannot listen for OTLP/HTTP on {addr}")),
        "{e}"
    );
}

#[tokio::test]
async fn a_silent_connection_does_not_hold_up_the_stop() {
    let h = start(config(), BufferConfig::default()).await;
    let _silent = TcpStream::connect(h.grpc).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while h
        .metrics
        .gauge(
            "sonde_source_connections",
            "",
            &[("source", "otlp"), ("transport", "grpc")],
        )
        .get()
        == 0
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), h.task)
        .await
        .expect("the source stops at once, not after request_timeout")
        .unwrap();
}

#[test]
fn payloads_are_kept_in_allocations_of_their_own_size() {
    // A slice of a large shared buffer is copied out…
    let big = Bytes::from(vec![7u8; 64 * 1024]);
    let small = own_allocation(big.slice(..1024));
    assert_eq!(small.len(), 1024);
    assert_ne!(small.as_ptr(), big.as_ptr());
    // …a sole owner with a snug allocation is not.
    let snug = Bytes::from(vec![1u8; 4096]);
    let ptr = snug.as_ptr();
    assert_eq!(own_allocation(snug).as_ptr(), ptr);
    // A sole owner of a much larger allocation is copied into a snug one.
    let mut v = Vec::with_capacity(64 * 1024);
    v.extend_from_slice(&[2u8; 100]);
    let loose = Bytes::from(v);
    let ptr = loose.as_ptr();
    let out = own_allocation(loose);
    assert_eq!(&out[..], &[2u8; 100][..]);
    assert_ne!(out.as_ptr(), ptr);
}
