//! The UTF-8 check of an export request's strings: every field that the OTLP protobuf schema
//! declares `string` (attribute keys and string values at any depth, names, descriptions,
//! units, trace states, severity texts, status messages, schema URLs) must be valid UTF-8, as a
//! protobuf decoder requires. Sources that take requests from outside run it after
//! [`super::validate`], so that a string no decoder downstream could read (the Parquet and
//! stdout exporters, a Collector) is refused at the door, naming its field and offset, instead
//! of costing a whole merged batch later.
//!
//! The walk follows the schema below and skips every field that holds no string; bytes fields
//! (ids, `AnyValue.bytes_value`) are never checked. It expects a request that `validate`
//! accepted, but a malformed one still ends in an error, never a panic.

use super::{Field, Reader, WireError, WireErrorKind, LEN};
use crate::Signal;

/// The message types that hold strings, or hold messages that do.
#[derive(Clone, Copy)]
enum Msg {
    Request(Signal),
    ResourceLevel(Signal),
    Resource,
    EntityRef,
    ScopeLevel(Signal),
    Scope,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    Span,
    Event,
    Link,
    Status,
    LogRecord,
    Metric,
    MetricData(DataPoint),
    DataPoint(DataPoint),
    Exemplar,
}

/// The data point types: they keep their attributes and exemplars under different numbers.
#[derive(Clone, Copy)]
enum DataPoint {
    Number,
    Histogram,
    Exponential,
    Summary,
}

/// What field `number` of `msg` holds: a string, a message to descend into, or neither.
enum Holds {
    Str,
    Msg(Msg),
    Nothing,
}

fn holds(msg: Msg, number: u32) -> Holds {
    use Holds::{Msg as M, Nothing, Str};
    match (msg, number) {
        (Msg::Request(s), 1) => M(Msg::ResourceLevel(s)),
        (Msg::ResourceLevel(_), 1) => M(Msg::Resource),
        (Msg::ResourceLevel(s), 2) => M(Msg::ScopeLevel(s)),
        (Msg::ResourceLevel(_) | Msg::ScopeLevel(_), 3) => Str,
        (Msg::Resource, 1) => M(Msg::KeyValue),
        (Msg::Resource, 3) => M(Msg::EntityRef),
        (Msg::EntityRef, 1..=4) => Str,
        (Msg::ScopeLevel(_), 1) => M(Msg::Scope),
        (Msg::ScopeLevel(Signal::Traces), 2) => M(Msg::Span),
        (Msg::ScopeLevel(Signal::Logs), 2) => M(Msg::LogRecord),
        (Msg::ScopeLevel(Signal::Metrics), 2) => M(Msg::Metric),
        (Msg::Scope, 1 | 2) => Str,
        (Msg::Scope, 3) => M(Msg::KeyValue),
        (Msg::KeyValue, 1) => Str,
        (Msg::KeyValue, 2) => M(Msg::AnyValue),
        (Msg::AnyValue, 1) => Str,
        (Msg::AnyValue, 5) => M(Msg::ArrayValue),
        (Msg::AnyValue, 6) => M(Msg::KeyValueList),
        (Msg::ArrayValue, 1) => M(Msg::AnyValue),
        (Msg::KeyValueList, 1) => M(Msg::KeyValue),
        (Msg::Span, 3 | 5) => Str,
        (Msg::Span, 9) => M(Msg::KeyValue),
        (Msg::Span, 11) => M(Msg::Event),
        (Msg::Span, 13) => M(Msg::Link),
        (Msg::Span, 15) => M(Msg::Status),
        (Msg::Event, 2) => Str,
        (Msg::Event, 3) => M(Msg::KeyValue),
        (Msg::Link, 3) => Str,
        (Msg::Link, 4) => M(Msg::KeyValue),
        (Msg::Status, 2) => Str,
        (Msg::LogRecord, 3 | 12) => Str,
        (Msg::LogRecord, 5) => M(Msg::AnyValue),
        (Msg::LogRecord, 6) => M(Msg::KeyValue),
        (Msg::Metric, 1..=3) => Str,
        (Msg::Metric, 5 | 7) => M(Msg::MetricData(DataPoint::Number)),
        (Msg::Metric, 9) => M(Msg::MetricData(DataPoint::Histogram)),
        (Msg::Metric, 10) => M(Msg::MetricData(DataPoint::Exponential)),
        (Msg::Metric, 11) => M(Msg::MetricData(DataPoint::Summary)),
        (Msg::Metric, 12) => M(Msg::KeyValue),
        (Msg::MetricData(p), 1) => M(Msg::DataPoint(p)),
        (Msg::DataPoint(DataPoint::Number | DataPoint::Summary), 7)
        | (Msg::DataPoint(DataPoint::Histogram), 9)
        | (Msg::DataPoint(DataPoint::Exponential), 1) => M(Msg::KeyValue),
        (Msg::DataPoint(DataPoint::Number), 5)
        | (Msg::DataPoint(DataPoint::Histogram), 8)
        | (Msg::DataPoint(DataPoint::Exponential), 11) => M(Msg::Exemplar),
        (Msg::Exemplar, 7) => M(Msg::KeyValue),
        _ => Nothing,
    }
}

/// Deeper than any OTLP message except nested attribute values, which prost stops at 100.
const MAX_DEPTH: u32 = 100;

/// Checks that every string field of the export request `buf` of `signal` is valid UTF-8.
pub fn check(signal: Signal, buf: &[u8]) -> Result<(), WireError> {
    walk(buf, 0, buf.len(), Msg::Request(signal), 0)
}

fn walk(buf: &[u8], start: usize, end: usize, msg: Msg, depth: u32) -> Result<(), WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError {
            offset: start,
            kind: WireErrorKind::TooDeep,
        });
    }
    let mut r = Reader::new(buf, start, end);
    while let Some(f) = r.next()? {
        if f.wire_type != LEN {
            continue;
        }
        match holds(msg, f.number) {
            Holds::Str => check_str(buf, &f)?,
            Holds::Msg(child) => walk(buf, f.payload.0, f.payload.1, child, depth + 1)?,
            Holds::Nothing => {}
        }
    }
    Ok(())
}

#[inline]
fn check_str(buf: &[u8], f: &Field) -> Result<(), WireError> {
    let bytes = &buf[f.payload.0..f.payload.1];
    // ASCII, by far the most common, is checked a word at a time by the standard library too;
    // the explicit test only spares the call for the empty and one-byte strings.
    if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
        return Ok(());
    }
    Err(WireError {
        offset: f.start,
        kind: WireErrorKind::InvalidUtf8 { field: f.number },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::{kv, traces};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use prost::Message;

    /// Replaces the first occurrence of `needle` in `buf` by the same number of bytes that are
    /// not UTF-8 (a lone continuation byte first).
    fn spoil(mut buf: Vec<u8>, needle: &str) -> Vec<u8> {
        let at = buf
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .expect("the needle is in the request");
        buf[at] = 0x80;
        buf
    }

    #[test]
    fn valid_requests_pass() {
        let buf = traces(2, 5).encode_to_vec();
        assert_eq!(check(Signal::Traces, &buf), Ok(()));
        let mut unicode = traces(1, 1);
        unicode.resource_spans[0].scope_spans[0].spans[0].name = "größe ✓ 日本".into();
        assert_eq!(check(Signal::Traces, &unicode.encode_to_vec()), Ok(()));
    }

    #[test]
    fn a_bad_span_name_or_attribute_is_found() {
        let mut req = traces(1, 1);
        let span = &mut req.resource_spans[0].scope_spans[0].spans[0];
        span.name = "SPAN-NAME".into();
        span.attributes.push(kv("ATTR-KEY", "ATTR-VALUE"));
        let buf = req.encode_to_vec();
        for (needle, field) in [("SPAN-NAME", 5), ("ATTR-KEY", 1), ("ATTR-VALUE", 1)] {
            let e = check(Signal::Traces, &spoil(buf.clone(), needle)).unwrap_err();
            assert_eq!(e.kind, WireErrorKind::InvalidUtf8 { field }, "{needle}");
        }
    }

    #[test]
    fn nested_values_log_bodies_and_metric_names_are_checked() {
        let nested = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::StringValue("DEEP".into())),
                }],
            })),
        };
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(nested),
                        severity_text: "SEVERITY".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        assert_eq!(check(Signal::Logs, &logs), Ok(()));
        assert!(check(Signal::Logs, &spoil(logs.clone(), "DEEP")).is_err());
        assert!(check(Signal::Logs, &spoil(logs, "SEVERITY")).is_err());

        let metrics = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "METRIC".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                attributes: vec![kv("POINT-KEY", "v")],
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        assert_eq!(check(Signal::Metrics, &metrics), Ok(()));
        assert!(check(Signal::Metrics, &spoil(metrics.clone(), "METRIC")).is_err());
        assert!(check(Signal::Metrics, &spoil(metrics, "POINT-KEY")).is_err());
    }

    #[test]
    fn bytes_fields_are_not_text() {
        // Trace and span ids are arbitrary bytes: traces() fills them with values above 0x7f.
        let mut req = traces(1, 3);
        for s in &mut req.resource_spans[0].scope_spans[0].spans {
            s.trace_id = vec![0xff; 16];
            s.span_id = vec![0xc3; 8];
        }
        assert_eq!(check(Signal::Traces, &req.encode_to_vec()), Ok(()));
    }

    proptest::proptest! {
        /// No false refusal: whatever prost decodes (it checks UTF-8 on every `string` field),
        /// the check accepts; and a refusal is always a string prost would refuse too.
        #[test]
        fn agrees_with_prost_on_mutated_requests(pos in 0usize..2000, byte in proptest::prelude::any::<u8>()) {
            let mut buf = traces(2, 3).encode_to_vec();
            let at = pos % buf.len();
            buf[at] = byte;
            let prost_ok = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(&buf[..]).is_ok();
            let ours = check(Signal::Traces, &buf);
            if prost_ok {
                proptest::prop_assert_eq!(ours.clone(), Ok(()));
            }
            if let Err(WireError { kind: WireErrorKind::InvalidUtf8 { .. }, .. }) = ours {
                proptest::prop_assert!(!prost_ok);
            }
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = check(Signal::Traces, &data);
            let _ = check(Signal::Metrics, &data);
            let _ = check(Signal::Logs, &data);
        }
    }
}
