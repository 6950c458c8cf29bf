//! Strategies for OTLP export requests as prost messages: small, with values drawn from pools
//! the test conditions, patterns and attribute edits refer to, and with the empty shapes
//! (no resource, no scope, a scope without items) that real senders produce.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, ExponentialHistogram, ExponentialHistogramDataPoint,
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Attribute keys: those the conditions, `keys` and resource edits name, and others.
pub const KEYS: &[&str] = &[
    "env",
    "k",
    "http.route",
    "password",
    "user.email",
    "service.name",
    "host.name",
];

/// String values: plain ones, ones the conditions compare with, and ones the redaction
/// patterns find (an e-mail, an IPv4 address, a card number, a `tok-` token).
pub const STRINGS: &[&str] = &[
    "",
    "dev",
    "prod",
    "/ping",
    "GET /healthz",
    "db",
    "exception",
    "v",
    "mail alice@example.com now",
    "from 10.1.2.3 and 192.168.0.1",
    "card 4111 1111 1111 1111",
    "tok-12345 and tok-999",
    "secret debug line",
    "naïve ünïcode ✓",
];

fn pick(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(pool).prop_map(str::to_string)
}

fn scalar_value() -> impl Strategy<Value = any_value::Value> {
    prop_oneof![
        6 => pick(STRINGS).prop_map(any_value::Value::StringValue),
        1 => any::<bool>().prop_map(any_value::Value::BoolValue),
        1 => (-3i64..10).prop_map(any_value::Value::IntValue),
        1 => prop::sample::select(&[0.25f64, 1.5, -2.0][..]).prop_map(any_value::Value::DoubleValue),
        1 => vec(any::<u8>(), 0..4).prop_map(any_value::Value::BytesValue),
    ]
}

/// An `AnyValue`: a scalar, or an array or map nesting scalars and one more level.
pub fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = option::weighted(0.95, scalar_value()).prop_map(|value| AnyValue { value });
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
            vec((pick(KEYS), inner), 0..3).prop_map(|kvs| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, v)| KeyValue {
                            key,
                            value: Some(v),
                            ..Default::default()
                        })
                        .collect(),
                })),
            }),
        ]
    })
}

pub fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    vec(
        (pick(KEYS), option::weighted(0.95, any_value())).prop_map(|(key, value)| KeyValue {
            key,
            value,
            ..Default::default()
        }),
        0..4,
    )
}

pub fn resource() -> impl Strategy<Value = Option<Resource>> {
    option::weighted(
        0.8,
        (attributes(), 0u32..3).prop_map(|(attributes, dropped_attributes_count)| Resource {
            attributes,
            dropped_attributes_count,
            ..Default::default()
        }),
    )
}

pub fn scope() -> impl Strategy<Value = Option<InstrumentationScope>> {
    option::weighted(
        0.8,
        (
            prop::sample::select(&["", "lib-a", "lib-b"][..]),
            prop::sample::select(&["", "1.0"][..]),
            attributes(),
        )
            .prop_map(|(name, version, attributes)| InstrumentationScope {
                name: name.into(),
                version: version.into(),
                attributes,
                dropped_attributes_count: 0,
            }),
    )
}

/// A trace id: absent, or 16 bytes (the wire walker refuses other lengths).
pub fn trace_id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        1 => Just(vec![0u8; 16]),
        8 => any::<[u8; 16]>().prop_map(|a| a.to_vec()),
    ]
}

fn span_id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![1 => Just(Vec::new()), 6 => any::<[u8; 8]>().prop_map(|a| a.to_vec())]
}

/// Trace states: none, another vendor's, valid and invalid `ot` entries.
pub const TRACE_STATES: &[&str] = &[
    "",
    "vendor=x",
    "ot=th:8",
    "ot=th:0,vendor=x",
    "ot=th:fd70a4",
    "ot=rv:00000000000000",
    "ot=rv:ffffffffffffff;th:c",
    "ot=th:zz",
    "not a tracestate",
];

fn event() -> impl Strategy<Value = span::Event> {
    (
        pick(&["exception", "retry", ""][..]).boxed(),
        attributes(),
        0u64..5,
    )
        .prop_map(|(name, attributes, t)| span::Event {
            time_unix_nano: t,
            name,
            attributes,
            dropped_attributes_count: 0,
        })
}

fn span() -> impl Strategy<Value = Span> {
    (
        (trace_id(), span_id(), pick(TRACE_STATES), span_id()),
        (pick(STRINGS), 0i32..6, 0u32..4, 0u64..100, 0u64..100),
        (attributes(), 0u32..3),
        vec(event(), 0..3),
        vec(
            (trace_id(), span_id(), attributes()).prop_map(|(trace_id, span_id, attributes)| {
                span::Link {
                    trace_id,
                    span_id,
                    attributes,
                    ..Default::default()
                }
            }),
            0..2,
        ),
        option::of(
            (0i32..3, pick(&["", "boom"][..]).boxed())
                .prop_map(|(code, message)| Status { message, code }),
        ),
    )
        .prop_map(
            |(
                (trace_id, span_id, trace_state, parent_span_id),
                (name, kind, flags, start, end),
                (attributes, dropped),
                events,
                links,
                status,
            )| Span {
                trace_id,
                span_id,
                trace_state,
                parent_span_id,
                flags,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                dropped_attributes_count: dropped,
                events,
                dropped_events_count: 0,
                links,
                dropped_links_count: 0,
                status,
            },
        )
}

/// A traces request: 0–2 resource-level messages of 0–2 scopes of 0–3 spans.
pub fn traces() -> impl Strategy<Value = ExportTraceServiceRequest> {
    traces_of(span().boxed())
}

pub fn traces_of(
    spans: impl Strategy<Value = Span> + Clone,
) -> impl Strategy<Value = ExportTraceServiceRequest> {
    vec(
        (
            resource(),
            vec(
                (scope(), vec(spans, 0..4)).prop_map(|(scope, spans)| ScopeSpans {
                    scope,
                    spans,
                    schema_url: String::new(),
                }),
                0..3,
            ),
        )
            .prop_map(|(resource, scope_spans)| ResourceSpans {
                resource,
                scope_spans,
                schema_url: String::new(),
            }),
        0..3,
    )
    .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

fn log_record() -> impl Strategy<Value = LogRecord> {
    (
        (
            0u64..100,
            0u64..100,
            0i32..25,
            pick(&["", "DEBUG", "ERROR"][..]).boxed(),
        ),
        (option::weighted(0.8, any_value()), attributes(), 0u32..2),
        (trace_id(), span_id(), 0u32..3),
    )
        .prop_map(
            |(
                (time, observed, severity_number, severity_text),
                (body, attributes, dropped),
                (trace_id, span_id, flags),
            )| {
                LogRecord {
                    time_unix_nano: time,
                    observed_time_unix_nano: observed,
                    severity_number,
                    severity_text,
                    body,
                    attributes,
                    dropped_attributes_count: dropped,
                    flags,
                    trace_id,
                    span_id,
                    event_name: String::new(),
                }
            },
        )
}

pub fn logs() -> impl Strategy<Value = ExportLogsServiceRequest> {
    logs_of(log_record().boxed())
}

pub fn logs_of(
    records: impl Strategy<Value = LogRecord> + Clone,
) -> impl Strategy<Value = ExportLogsServiceRequest> {
    vec(
        (
            resource(),
            vec(
                (scope(), vec(records, 0..4)).prop_map(|(scope, log_records)| ScopeLogs {
                    scope,
                    log_records,
                    schema_url: String::new(),
                }),
                0..3,
            ),
        )
            .prop_map(|(resource, scope_logs)| ResourceLogs {
                resource,
                scope_logs,
                schema_url: String::new(),
            }),
        0..3,
    )
    .prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
}

fn number_point() -> impl Strategy<Value = NumberDataPoint> {
    (
        attributes(),
        0u64..5,
        0u64..100,
        prop_oneof![
            (-2i64..10).prop_map(number_data_point::Value::AsInt),
            prop::sample::select(&[0.25f64, 0.75, 3.0][..])
                .prop_map(number_data_point::Value::AsDouble),
        ],
        0u32..2,
    )
        .prop_map(|(attributes, start, time, value, flags)| NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: time,
            exemplars: vec![],
            flags,
            value: Some(value),
        })
}

fn metric_data() -> impl Strategy<Value = Option<metric::Data>> {
    let points = || vec(number_point(), 0..4);
    option::weighted(
        0.95,
        prop_oneof![
            points().prop_map(|data_points| metric::Data::Gauge(Gauge { data_points })),
            (points(), 0i32..3, any::<bool>()).prop_map(|(data_points, t, m)| metric::Data::Sum(
                Sum {
                    data_points,
                    aggregation_temporality: t,
                    is_monotonic: m,
                }
            )),
            (
                vec(
                    (attributes(), 0u64..5, option::of(Just(1.5f64)), 0u32..2).prop_map(
                        |(attributes, count, sum, flags)| HistogramDataPoint {
                            attributes,
                            count,
                            sum,
                            bucket_counts: vec![count],
                            explicit_bounds: vec![],
                            flags,
                            ..Default::default()
                        }
                    ),
                    0..3
                ),
                0i32..3
            )
                .prop_map(|(data_points, t)| metric::Data::Histogram(Histogram {
                    data_points,
                    aggregation_temporality: t,
                })),
            vec(
                (attributes(), 0u64..5, -2i32..4, 0u64..3).prop_map(
                    |(attributes, count, scale, zero_count)| {
                        ExponentialHistogramDataPoint {
                            attributes,
                            count,
                            scale,
                            zero_count,
                            positive: Some(Buckets {
                                offset: -1,
                                bucket_counts: vec![count],
                            }),
                            ..Default::default()
                        }
                    }
                ),
                0..3
            )
            .prop_map(|data_points| metric::Data::ExponentialHistogram(
                ExponentialHistogram {
                    data_points,
                    aggregation_temporality: 1,
                }
            )),
            vec(
                (attributes(), 0u64..5).prop_map(|(attributes, count)| SummaryDataPoint {
                    attributes,
                    count,
                    sum: 2.0,
                    quantile_values: vec![ValueAtQuantile {
                        quantile: 0.5,
                        value: 1.0,
                    }],
                    ..Default::default()
                }),
                0..3
            )
            .prop_map(|data_points| metric::Data::Summary(Summary { data_points })),
        ],
    )
}

fn metric() -> impl Strategy<Value = Metric> {
    (
        pick(&["m.cpu", "m.mem", "m.io"][..]).boxed(),
        pick(&["", "By", "1"][..]).boxed(),
        metric_data(),
    )
        .prop_map(|(name, unit, data)| Metric {
            name,
            description: String::new(),
            unit,
            metadata: vec![],
            data,
        })
}

pub fn metrics() -> impl Strategy<Value = ExportMetricsServiceRequest> {
    vec(
        (
            resource(),
            vec(
                (scope(), vec(metric(), 0..4)).prop_map(|(scope, metrics)| ScopeMetrics {
                    scope,
                    metrics,
                    schema_url: String::new(),
                }),
                0..3,
            ),
        )
            .prop_map(|(resource, scope_metrics)| ResourceMetrics {
                resource,
                scope_metrics,
                schema_url: String::new(),
            }),
        0..3,
    )
    .prop_map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
}
