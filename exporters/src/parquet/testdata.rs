//! Deterministic OTLP requests for tests, benchmarks and the `parquet_fixture` example: one set
//! that fills every field of every signal (every metric point type, every attribute value type),
//! and generators of realistic spans and log records in bulk.
//!
//! The end-to-end tests (tests/test_parquet.py) assert on these exact values, so change them
//! together.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};

/// 2024-01-02T03:04:05.123456789Z
pub const T0: u64 = 1_704_164_645_123_456_789;
pub const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
pub const SPAN_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
pub const PARENT_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73];

pub fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(v.into())),
    }
}

pub fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(v),
        ..Default::default()
    }
}

fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(Value::IntValue(i)),
    }
}

fn double(d: f64) -> AnyValue {
    AnyValue {
        value: Some(Value::DoubleValue(d)),
    }
}

fn boolean(b: bool) -> AnyValue {
    AnyValue {
        value: Some(Value::BoolValue(b)),
    }
}

/// Attributes of every value type: `str`, `int`, `dbl`, `flag`, `raw` (bytes), `list`, `map`.
pub fn every_type_attributes() -> Vec<KeyValue> {
    vec![
        kv("http.route", s("/api/v1/orders/{id}")),
        kv("http.response.status_code", int(503)),
        kv("sampling.ratio", double(0.25)),
        kv("cache.hit", boolean(true)),
        kv(
            "raw",
            AnyValue {
                value: Some(Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
            },
        ),
        kv(
            "list",
            AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![s("a"), int(1), boolean(false)],
                })),
            },
        ),
        kv(
            "map",
            AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", s("x")), kv("n", int(2))],
                })),
            },
        ),
    ]
}

pub fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", s(service)),
            kv("host.name", s("fixture-host")),
            kv("process.pid", int(4242)),
        ],
        dropped_attributes_count: 1,
        ..Default::default()
    }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "io.sonde.fixture".into(),
        version: "1.2.3".into(),
        attributes: vec![kv("scope.attr", s("yes"))],
        dropped_attributes_count: 2,
    }
}

/// Two spans: a server span with every field, events and links, and a minimal child.
pub fn traces() -> ExportTraceServiceRequest {
    let full = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: SPAN_ID.to_vec(),
        parent_span_id: PARENT_ID.to_vec(),
        trace_state: "vendor=abc".into(),
        flags: 0x301,
        name: "GET /api/v1/orders/{id}".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + 1_500_000,
        attributes: every_type_attributes(),
        dropped_attributes_count: 3,
        events: vec![
            span::Event {
                time_unix_nano: T0 + 1000,
                name: "exception".into(),
                attributes: vec![kv("exception.type", s("TimeoutError")), kv("retry", int(2))],
                dropped_attributes_count: 4,
            },
            span::Event {
                time_unix_nano: T0 + 2000,
                name: "done".into(),
                ..Default::default()
            },
        ],
        dropped_events_count: 5,
        links: vec![span::Link {
            trace_id: [7u8; 16].to_vec(),
            span_id: [8u8; 8].to_vec(),
            trace_state: "l=1".into(),
            attributes: vec![kv("link.kind", s("follows"))],
            dropped_attributes_count: 6,
            flags: 1,
        }],
        dropped_links_count: 7,
        status: Some(Status {
            message: "upstream timed out".into(),
            code: 2,
        }),
    };
    let minimal = Span {
        trace_id: TRACE_ID.to_vec(),
        span_id: PARENT_ID.to_vec(),
        name: "root".into(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: T0 - 10,
        end_time_unix_nano: T0 + 2_000_000,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource("checkout")),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans: vec![full, minimal],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.25.0".into(),
        }],
    }
}

/// Five log records: string, key-value list, int, bytes and missing bodies.
pub fn logs() -> ExportLogsServiceRequest {
    let record = |i: u64, body: Option<AnyValue>| LogRecord {
        time_unix_nano: T0 + i,
        observed_time_unix_nano: T0 + 100 + i,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body,
        attributes: if i == 0 {
            every_type_attributes()
        } else {
            vec![kv("i", int(i as i64))]
        },
        dropped_attributes_count: i as u32,
        flags: 1,
        trace_id: if i == 0 { TRACE_ID.to_vec() } else { vec![] },
        span_id: if i == 0 { SPAN_ID.to_vec() } else { vec![] },
        event_name: if i == 0 {
            "order.failed".into()
        } else {
            String::new()
        },
    };
    let records = vec![
        record(0, Some(s("payment declined for order 42"))),
        record(
            1,
            Some(AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("msg", s("structured")), kv("code", int(7))],
                })),
            }),
        ),
        record(2, Some(int(12))),
        record(
            3,
            Some(AnyValue {
                value: Some(Value::BytesValue(b"hi".to_vec())),
            }),
        ),
        LogRecord {
            observed_time_unix_nano: T0 + 104,
            ..record(4, None)
        },
    ];
    let mut r4 = records;
    r4[4].time_unix_nano = 0;
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource("billing")),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: r4,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn exemplar() -> Exemplar {
    Exemplar {
        filtered_attributes: vec![kv("user", s("u1"))],
        time_unix_nano: T0 + 5,
        span_id: SPAN_ID.to_vec(),
        trace_id: TRACE_ID.to_vec(),
        value: Some(exemplar::Value::AsDouble(0.75)),
    }
}

/// One metric of each type, one point each (gauge: two, int and double).
pub fn metrics() -> ExportMetricsServiceRequest {
    let attrs = || vec![kv("cpu", int(0)), kv("state", s("user"))];
    let number = |v: number_data_point::Value| NumberDataPoint {
        attributes: attrs(),
        start_time_unix_nano: T0 - 1_000_000_000,
        time_unix_nano: T0,
        exemplars: vec![],
        flags: 0,
        value: Some(v),
    };
    let metric = |name: &str, unit: &str, data: Data| Metric {
        name: name.into(),
        description: format!("{name} description"),
        unit: unit.into(),
        metadata: vec![],
        data: Some(data),
    };
    let mut gauge = metric(
        "system.memory.utilization",
        "1",
        Data::Gauge(Gauge {
            data_points: vec![
                number(number_data_point::Value::AsDouble(0.5)),
                NumberDataPoint {
                    exemplars: vec![exemplar()],
                    flags: 1,
                    ..number(number_data_point::Value::AsInt(-3))
                },
            ],
        }),
    );
    gauge.metadata = vec![kv("origin", s("fixture"))];
    let sum = metric(
        "system.cpu.time",
        "s",
        Data::Sum(Sum {
            data_points: vec![number(number_data_point::Value::AsInt(123_456_789_012))],
            aggregation_temporality: 2,
            is_monotonic: true,
        }),
    );
    let delta = metric(
        "queue.delta",
        "{item}",
        Data::Sum(Sum {
            data_points: vec![number(number_data_point::Value::AsDouble(-1.5))],
            aggregation_temporality: 1,
            is_monotonic: false,
        }),
    );
    let hist = metric(
        "http.server.request.duration",
        "s",
        Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: attrs(),
                start_time_unix_nano: T0 - 1_000_000_000,
                time_unix_nano: T0,
                count: 10,
                sum: Some(3.5),
                bucket_counts: vec![1, 2, 3, 4],
                explicit_bounds: vec![0.1, 0.5, 1.0],
                exemplars: vec![exemplar()],
                flags: 0,
                min: Some(0.05),
                max: Some(2.5),
            }],
            aggregation_temporality: 1,
        }),
    );
    let exp = metric(
        "rpc.latency",
        "ms",
        Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                attributes: attrs(),
                start_time_unix_nano: T0 - 1_000_000_000,
                time_unix_nano: T0,
                count: 9,
                sum: Some(42.0),
                scale: 3,
                zero_count: 1,
                positive: Some(Buckets {
                    offset: -2,
                    bucket_counts: vec![1, 2, 3],
                }),
                negative: Some(Buckets {
                    offset: 1,
                    bucket_counts: vec![2],
                }),
                flags: 0,
                exemplars: vec![],
                min: Some(-4.0),
                max: Some(17.0),
                zero_threshold: 0.001,
            }],
            aggregation_temporality: 2,
        }),
    );
    let summary = metric(
        "db.query.time",
        "ms",
        Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                attributes: attrs(),
                start_time_unix_nano: T0 - 1_000_000_000,
                time_unix_nano: T0,
                count: 100,
                sum: 250.5,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.5,
                        value: 2.0,
                    },
                    ValueAtQuantile {
                        quantile: 0.99,
                        value: 9.5,
                    },
                ],
                flags: 0,
            }],
        }),
    );
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource("node")),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics: vec![gauge, sum, delta, hist, exp, summary],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A small deterministic generator (xorshift), so bulk data is the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const SERVICES: [&str; 4] = ["checkout", "cart", "payments", "catalog"];
const ROUTES: [&str; 8] = [
    "/api/v1/orders/{id}",
    "/api/v1/cart",
    "/api/v1/items",
    "/api/v1/items/{id}",
    "/health",
    "/api/v1/pay",
    "/api/v1/users/{id}",
    "/api/v1/search",
];

/// `n` realistic server and client spans (HTTP semantic conventions, ~10 attributes each), in
/// traces of 8 spans, spread over 4 services, starting at `t0`.
pub fn bulk_traces(n: usize, seed: u64, t0: u64) -> ExportTraceServiceRequest {
    let mut rng = Rng::new(seed);
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut trace_id = [0u8; 16];
    for i in 0..n {
        if i % 8 == 0 {
            trace_id[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            trace_id[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let svc = rng.below(SERVICES.len() as u64) as usize;
        let route = ROUTES[rng.below(ROUTES.len() as u64) as usize];
        let status = [200i64, 200, 200, 201, 404, 500][rng.below(6) as usize];
        let start = t0 + (i as u64) * 1_000_000 + rng.below(1000);
        let dur = 200_000 + rng.below(50_000_000);
        let server = i % 2 == 0;
        by_service[svc].push(Span {
            trace_id: trace_id.to_vec(),
            span_id: rng.next_u64().to_le_bytes().to_vec(),
            parent_span_id: if i % 8 == 0 {
                vec![]
            } else {
                rng.next_u64().to_le_bytes().to_vec()
            },
            name: format!("{} {route}", if server { "GET" } else { "POST" }),
            kind: if server {
                span::SpanKind::Server
            } else {
                span::SpanKind::Client
            } as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur,
            attributes: vec![
                kv(
                    "http.request.method",
                    s(if server { "GET" } else { "POST" }),
                ),
                kv("http.route", s(route)),
                kv("http.response.status_code", int(status)),
                kv("url.scheme", s("https")),
                kv("server.address", s("api.example.com")),
                kv("server.port", int(443)),
                kv("network.protocol.version", s("1.1")),
                kv("user_agent.original", s("Mozilla/5.0 (X11; Linux x86_64)")),
                kv(
                    "client.address",
                    s(&format!("10.0.{}.{}", rng.below(4), rng.below(250))),
                ),
                kv("app.order.id", int(rng.below(1_000_000) as i64)),
            ],
            status: Some(Status {
                message: String::new(),
                code: if status >= 500 { 2 } else { 0 },
            }),
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s(SERVICES[i])),
                        kv("service.version", s("2.4.1")),
                        kv("deployment.environment.name", s("production")),
                        kv("host.name", s("web-7")),
                        kv("telemetry.sdk.language", s("rust")),
                        kv("telemetry.sdk.name", s("opentelemetry")),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "opentelemetry-http".into(),
                        version: "0.27.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// [`bulk_traces`] with an extra `padding` attribute of `pad` random bytes (hex) per span: big,
/// incompressible files from few spans (multipart upload tests).
pub fn bulk_traces_padded(n: usize, seed: u64, t0: u64, pad: usize) -> ExportTraceServiceRequest {
    let mut req = bulk_traces(n, seed, t0);
    let mut rng = Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            for span in &mut ss.spans {
                let bytes: Vec<u8> = (0..pad).map(|_| rng.next_u64() as u8).collect();
                span.attributes.push(kv("padding", s(&hex::encode(bytes))));
            }
        }
    }
    req
}

/// `n` realistic log records (a few message templates, severities, trace context).
pub fn bulk_logs(n: usize, seed: u64, t0: u64) -> ExportLogsServiceRequest {
    let mut rng = Rng::new(seed);
    let templates = [
        "request completed in {} ms",
        "cache miss for key user:{}",
        "retrying upstream call, attempt {}",
        "order {} shipped",
    ];
    let records = (0..n)
        .map(|i| {
            let t = templates[rng.below(4) as usize];
            let sev = [9, 9, 9, 13, 17][rng.below(5) as usize];
            LogRecord {
                time_unix_nano: t0 + i as u64 * 100_000,
                observed_time_unix_nano: t0 + i as u64 * 100_000 + 5_000,
                severity_number: sev,
                severity_text: match sev {
                    9 => "INFO",
                    13 => "WARN",
                    _ => "ERROR",
                }
                .into(),
                body: Some(s(&t.replace("{}", &rng.below(10_000).to_string()))),
                attributes: vec![
                    kv("code.function", s("handle_request")),
                    kv("thread.id", int(rng.below(16) as i64)),
                    kv("log.logger", s("app::http")),
                ],
                trace_id: rng.next_u64().to_le_bytes().repeat(2),
                span_id: rng.next_u64().to_le_bytes().to_vec(),
                flags: 1,
                ..Default::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("checkout")),
                    kv("host.name", s("web-7")),
                    kv("deployment.environment.name", s("production")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app".into(),
                    ..Default::default()
                }),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
