//! The load generators' span requests: realistic HTTP server spans (about ten attributes each,
//! ids, times, a status) under a resource with `service.name` and four more attributes. Shared by
//! the `otlp_load` generator and the `processors` bench, so both measure the same data.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// An encoded export request, and where its first span's id is.
pub struct Body {
    pub bytes: Bytes,
    pub first_span_id: usize,
}

impl Body {
    /// A copy whose first span id is `k + 1` (never the invalid all-zero id).
    pub fn stamped(&self, k: u64) -> Bytes {
        let mut b = BytesMut::from(&self.bytes[..]);
        b[self.first_span_id..self.first_span_id + 8].copy_from_slice(&(k + 1).to_be_bytes());
        b.freeze()
    }
}

/// One export request of `batch` spans; `seed` makes ids and some values differ.
pub fn request(batch: usize, seed: u64) -> Body {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let routes = [
        "/api/v1/items/{id}",
        "/api/v1/cart",
        "/checkout",
        "/health",
        "/api/v1/users/{id}",
    ];
    let start = 1_700_000_000_000_000_000u64 + seed * 1_000_000;
    let spans = (0..batch)
        .map(|i| {
            let r = next();
            let route = routes[(r % routes.len() as u64) as usize];
            let mut trace_id = next().to_be_bytes().to_vec();
            trace_id.extend_from_slice(&next().to_be_bytes());
            let status = if r % 50 == 0 { 500 } else { 200 };
            Span {
                trace_id,
                span_id: next().to_be_bytes().to_vec(),
                parent_span_id: if i % 3 == 0 {
                    vec![]
                } else {
                    next().to_be_bytes().to_vec()
                },
                name: format!("GET {route}"),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: start + i as u64 * 1000,
                end_time_unix_nano: start + i as u64 * 1000 + (r % 5_000_000),
                attributes: vec![
                    kv("http.request.method", s("GET")),
                    kv("http.route", s(route)),
                    kv(
                        "http.response.status_code",
                        any_value::Value::IntValue(status),
                    ),
                    kv(
                        "url.path",
                        s(&route.replace("{id}", &(r % 10_000).to_string())),
                    ),
                    kv("url.scheme", s("https")),
                    kv("server.address", s("shop.example.com")),
                    kv(
                        "client.address",
                        s(&format!("10.0.{}.{}", r % 256, (r >> 8) % 256)),
                    ),
                    kv(
                        "user_agent.original",
                        s("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
                    ),
                    kv("network.protocol.version", s("1.1")),
                    kv(
                        "app.request.bytes",
                        any_value::Value::IntValue((r % 4096) as i64),
                    ),
                ],
                status: Some(Status {
                    code: if status == 500 {
                        status::StatusCode::Error as i32
                    } else {
                        status::StatusCode::Unset as i32
                    },
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect::<Vec<Span>>();
    let first_id = spans[0].span_id.clone();
    let bytes = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("shop-frontend")),
                    kv("service.version", s("2.14.1")),
                    kv("service.instance.id", s(&format!("instance-{}", seed % 4))),
                    kv("host.name", s("node-17")),
                    kv("telemetry.sdk.language", s("rust")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "shop.http".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    // The first span's `span_id` field: tag 2 (LEN), length 8, the id.
    let first_span_id = bytes
        .windows(10)
        .position(|w| w[..2] == [0x12, 8] && w[2..] == first_id[..])
        .expect("the first span id is in the request")
        + 2;
    Body {
        bytes: bytes.into(),
        first_span_id,
    }
}
