//! A zero-allocation walk of the protobuf wire format of OTLP export requests.
//!
//! [`validate`] checks that bytes are a well-formed `Export{Trace,Metrics,Logs}ServiceRequest` and
//! counts its items (spans, metric data points, log records) without decoding into structs and
//! without allocating. It descends through the known message structure (request → resource →
//! scope → item), checks every tag, wire type, varint and length on the way, scans each item's own
//! fields for well-formed wire encoding, and checks the id fields' lengths (16-byte trace ids,
//! 8-byte span ids). Unknown fields are skipped as protobuf requires, as long as they are well
//! formed. It never panics and never reads out of bounds: every failure is a [`WireError`] with
//! the byte offset where the walk stopped.
//!
//! It also cuts a request at its top-level field boundaries ([`split`]), which is how an oversized
//! batch is divided: an export request is one repeated field, so each piece is itself a request.
//! [`by_trace`] regroups a trace request's spans by trace ID; [`write`] has the varint and length
//! helpers hand encoders and editors write with. The [`Reader`] is the one protobuf reader of the
//! agent: everything that reads fields of an encoded request reads them with it.

pub mod by_trace;
pub mod edit;
pub mod utf8;
pub mod write;

use crate::Signal;
use std::fmt;

/// Why bytes are not a well-formed export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Byte offset in the request where the problem was found.
    pub offset: usize,
    pub kind: WireErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireErrorKind {
    TruncatedVarint,
    VarintTooLong,
    /// A length prefix that runs past the end of its enclosing message.
    LengthOverflow {
        len: u64,
        available: usize,
    },
    /// A fixed-width field cut short.
    Truncated {
        needed: usize,
        available: usize,
    },
    FieldNumberZero,
    /// Wire types 3, 4 (groups) and 6, 7 do not occur in OTLP.
    InvalidWireType(u8),
    /// A known field carried the wrong wire type.
    WrongWireType {
        field: u32,
        found: u8,
        expected: u8,
    },
    /// A trace or span id that is neither empty nor the right length.
    BadIdLength {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    /// The message structure nests deeper than any OTLP message (or, for attribute values,
    /// deeper than prost's recursion limit of 100 nested messages).
    TooDeep,
    /// A field key whose value does not fit 32 bits (protobuf keys are `uint32`).
    KeyTooLarge,
    /// A string field that is not valid UTF-8.
    InvalidUtf8 {
        field: u32,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WireErrorKind::*;
        match &self.kind {
            TruncatedVarint => write!(f, "truncated varint"),
            VarintTooLong => write!(f, "varint longer than 10 bytes"),
            LengthOverflow { len, available } => {
                write!(
                    f,
                    "length {len} overruns the enclosing message ({available} bytes left)"
                )
            }
            Truncated { needed, available } => {
                write!(
                    f,
                    "fixed-width field needs {needed} bytes, {available} left"
                )
            }
            FieldNumberZero => write!(f, "field number 0"),
            InvalidWireType(t) => write!(f, "invalid wire type {t}"),
            WrongWireType {
                field,
                found,
                expected,
            } => {
                write!(
                    f,
                    "field {field} has wire type {found}, expected {expected}"
                )
            }
            BadIdLength {
                field,
                len,
                expected,
            } => {
                write!(f, "{field} is {len} bytes, expected {expected} (or empty)")
            }
            TooDeep => write!(f, "message nesting too deep"),
            KeyTooLarge => write!(f, "field key larger than 32 bits"),
            InvalidUtf8 { field } => write!(f, "string field {field} is not valid UTF-8"),
        }?;
        write!(f, " at byte {}", self.offset)
    }
}

impl std::error::Error for WireError {}

pub const VARINT: u8 = 0;
pub const I64: u8 = 1;
pub const LEN: u8 = 2;
pub const I32: u8 = 5;

/// One field read off the wire: its number, wire type, where it starts, for LEN fields the
/// payload's range, and for the other wire types its value.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub number: u32,
    pub wire_type: u8,
    pub start: usize,
    /// For LEN fields: payload start..end (absolute offsets).
    pub payload: (usize, usize),
    /// For VARINT fields the decoded varint, for I64 / I32 fields the little-endian value; 0 for
    /// LEN fields.
    pub value: u64,
}

impl Field {
    fn wrong_type(&self, expected: u8) -> WireError {
        WireError {
            offset: self.start,
            kind: WireErrorKind::WrongWireType {
                field: self.number,
                found: self.wire_type,
                expected,
            },
        }
    }

    /// The payload range of a length-delimited field (message, string, bytes).
    #[inline]
    pub fn len(&self) -> Result<(usize, usize), WireError> {
        if self.wire_type == LEN {
            Ok(self.payload)
        } else {
            Err(self.wrong_type(LEN))
        }
    }

    /// The value of a varint field (`int32`, `int64`, `uint32`, `bool`, enums).
    #[inline]
    pub fn varint(&self) -> Result<u64, WireError> {
        if self.wire_type == VARINT {
            Ok(self.value)
        } else {
            Err(self.wrong_type(VARINT))
        }
    }

    /// The value of a `fixed64` / `double` field.
    #[inline]
    pub fn fixed64(&self) -> Result<u64, WireError> {
        if self.wire_type == I64 {
            Ok(self.value)
        } else {
            Err(self.wrong_type(I64))
        }
    }

    /// The value of a `fixed32` field.
    #[inline]
    pub fn fixed32(&self) -> Result<u32, WireError> {
        if self.wire_type == I32 {
            Ok(self.value as u32)
        } else {
            Err(self.wrong_type(I32))
        }
    }
}

/// A cursor over a message body, with absolute offsets for error reporting.
pub struct Reader<'a> {
    buf: &'a [u8],
    pub pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], start: usize, end: usize) -> Self {
        Reader {
            buf,
            pos: start,
            end,
        }
    }

    fn err(&self, offset: usize, kind: WireErrorKind) -> WireError {
        WireError { offset, kind }
    }

    /// A varint of at most 10 bytes whose value fits 64 bits (a 10th byte above 1 is refused,
    /// as prost does).
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Fast path, inlined into every caller: most varints on the wire (tags, small lengths)
        // are one byte.
        if let Some(&b) = self.buf.get(self.pos).filter(|_| self.pos < self.end) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos).filter(|_| self.pos < self.end) else {
                return Err(self.err(start, WireErrorKind::TruncatedVarint));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                break;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.err(start, WireErrorKind::VarintTooLong))
    }

    /// Reads `N` little-endian bytes.
    #[inline]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let available = self.end.saturating_sub(self.pos);
        match self
            .buf
            .get(self.pos..self.pos.saturating_add(N))
            .filter(|_| N <= available)
            .and_then(|b| <[u8; N]>::try_from(b).ok())
        {
            Some(bytes) => {
                self.pos += N;
                Ok(bytes)
            }
            None => Err(self.err(
                self.pos,
                WireErrorKind::Truncated {
                    needed: N,
                    available,
                },
            )),
        }
    }

    /// Reads the next field, skipping over its payload. `None` at the end of the message.
    /// Inlined: the converters call it once per field of every span (a call, and the
    /// `Result<Option<Field>>` through memory, cost more than the read itself).
    #[inline(always)]
    // Not an `Iterator`: a malformed field ends the walk with an error, and `?` on
    // `Result<Option<_>>` reads better at every call site than on `Option<Result<_>>`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Field>, WireError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let start = self.pos;
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(self.err(start, WireErrorKind::KeyTooLarge));
        }
        let wire_type = (key & 7) as u8;
        let number = (key >> 3) as u32;
        if number == 0 {
            return Err(self.err(start, WireErrorKind::FieldNumberZero));
        }
        let mut payload = (self.pos, self.pos);
        let mut value = 0;
        match wire_type {
            VARINT => value = self.varint()?,
            I64 => value = u64::from_le_bytes(self.fixed::<8>()?),
            I32 => value = u64::from(u32::from_le_bytes(self.fixed::<4>()?)),
            LEN => {
                let len_at = self.pos;
                let len = self.varint()?;
                let available = self.end - self.pos;
                if len > available as u64 {
                    return Err(self.err(len_at, WireErrorKind::LengthOverflow { len, available }));
                }
                payload = (self.pos, self.pos + len as usize);
                self.pos += len as usize;
            }
            other => return Err(self.err(start, WireErrorKind::InvalidWireType(other))),
        }
        Ok(Some(Field {
            number,
            wire_type,
            start,
            payload,
            value,
        }))
    }
}

fn expect_len(f: &Field) -> Result<(), WireError> {
    f.len().map(|_| ())
}

/// How to walk one message type: which fields hold nested messages to descend into, and what
/// to count.
#[derive(Clone, Copy)]
enum Shape {
    /// `Export*ServiceRequest`: field 1 → resource-level messages.
    Request(Signal),
    /// `Resource{Spans,Metrics,Logs}`: field 2 → scope-level messages (field 1 = Resource).
    ResourceLevel(Signal),
    /// `Scope{Spans,Metrics,Logs}`: field 2 → items (field 1 = InstrumentationScope).
    ScopeLevel(Signal),
    /// A `Metric`: data fields 5, 7, 9, 10, 11 hold Gauge/Sum/Histogram/ExpHistogram/Summary.
    Metric,
    /// A metric's data message: field 1 holds the data points.
    MetricData,
    /// A span, log record or data point: flat scan with id length checks.
    Item(ItemKind),
    /// Any other message (Resource, scope, …): flat scan of its fields.
    Opaque,
}

#[derive(Clone, Copy)]
enum ItemKind {
    Span,
    LogRecord,
    DataPoint,
}

/// Walks the message in `buf[start..end]` with `shape`, adding items to `count`.
fn walk(
    buf: &[u8],
    start: usize,
    end: usize,
    shape: Shape,
    count: &mut u64,
) -> Result<(), WireError> {
    let mut r = Reader::new(buf, start, end);
    while let Some(f) = r.next()? {
        let child = match (shape, f.number) {
            (Shape::Request(s), 1) => Some(Shape::ResourceLevel(s)),
            (Shape::ResourceLevel(_), 1) => Some(Shape::Opaque),
            (Shape::ResourceLevel(s), 2) => Some(Shape::ScopeLevel(s)),
            (Shape::ScopeLevel(_), 1) => Some(Shape::Opaque),
            (Shape::ScopeLevel(Signal::Traces), 2) => Some(Shape::Item(ItemKind::Span)),
            (Shape::ScopeLevel(Signal::Logs), 2) => Some(Shape::Item(ItemKind::LogRecord)),
            (Shape::ScopeLevel(Signal::Metrics), 2) => Some(Shape::Metric),
            (Shape::Metric, 5 | 7 | 9 | 10 | 11) => Some(Shape::MetricData),
            (Shape::MetricData, 1) => Some(Shape::Item(ItemKind::DataPoint)),
            (Shape::Item(kind), n) => {
                check_item_field(kind, n, &f)?;
                None
            }
            _ => None,
        };
        if let Some(child) = child {
            expect_len(&f)?;
            if let Shape::Item(_) = child {
                *count += 1;
            }
            match child {
                // Resource and scope bodies are only scanned for well-formedness.
                Shape::Opaque => scan(buf, f.payload.0, f.payload.1)?,
                _ => walk(buf, f.payload.0, f.payload.1, child, count)?,
            }
        }
    }
    Ok(())
}

/// Checks one field of an item: ids have their fixed lengths.
fn check_item_field(kind: ItemKind, number: u32, f: &Field) -> Result<(), WireError> {
    let (name, expected) = match (kind, number) {
        (ItemKind::Span, 1) => ("trace_id", 16),
        (ItemKind::Span, 2) => ("span_id", 8),
        (ItemKind::Span, 4) => ("parent_span_id", 8),
        (ItemKind::LogRecord, 9) => ("trace_id", 16),
        (ItemKind::LogRecord, 10) => ("span_id", 8),
        _ => return Ok(()),
    };
    expect_len(f)?;
    let len = f.payload.1 - f.payload.0;
    if len != 0 && len != expected {
        return Err(WireError {
            offset: f.start,
            kind: WireErrorKind::BadIdLength {
                field: name,
                len,
                expected,
            },
        });
    }
    Ok(())
}

/// Checks that `buf[start..end]` is a well-formed sequence of fields (without a schema).
fn scan(buf: &[u8], start: usize, end: usize) -> Result<(), WireError> {
    let mut r = Reader::new(buf, start, end);
    while r.next()?.is_some() {}
    Ok(())
}

/// Validates an encoded export request of `signal` and returns its item count.
pub fn validate(signal: Signal, buf: &[u8]) -> Result<u64, WireError> {
    let mut count = 0;
    walk(buf, 0, buf.len(), Shape::Request(signal), &mut count)?;
    Ok(count)
}

/// The byte ranges of the top-level fields of a request (each a resource-level message with its
/// tag and length prefix). The request must already be valid.
pub fn top_level_ranges(buf: &[u8]) -> Result<Vec<(usize, usize)>, WireError> {
    let mut r = Reader::new(buf, 0, buf.len());
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push((f.start, r.pos));
    }
    Ok(out)
}

/// Cuts a valid request into pieces of at most `max_bytes` each, at top-level field boundaries.
/// A single resource-level message larger than `max_bytes` becomes a piece of its own.
pub fn split(buf: &bytes::Bytes, max_bytes: usize) -> Result<Vec<bytes::Bytes>, WireError> {
    let mut pieces = Vec::new();
    let mut piece_start = 0;
    let mut piece_end = 0;
    for (start, end) in top_level_ranges(buf)? {
        if end - piece_start > max_bytes && piece_end > piece_start {
            pieces.push(buf.slice(piece_start..piece_end));
            piece_start = start;
        }
        piece_end = end;
    }
    if piece_end > piece_start {
        pieces.push(buf.slice(piece_start..piece_end));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;
    use prost::Message;

    /// A string attribute (shared by the wire tests).
    pub(super) fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    pub fn traces(resources: usize, spans: usize) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: (0..resources)
                .map(|r| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", &format!("svc-{r}"))],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans: (0..spans)
                            .map(|i| Span {
                                trace_id: vec![r as u8 + 1; 16],
                                span_id: vec![i as u8 + 1; 8],
                                name: format!("op-{i}"),
                                attributes: vec![kv("http.route", "/x")],
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn metrics() -> ExportMetricsServiceRequest {
        let ndp = |v: f64| NumberDataPoint {
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "g".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![ndp(1.0), ndp(2.0)],
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "s".into(),
                            data: Some(metric::Data::Sum(Sum {
                                data_points: vec![ndp(3.0)],
                                aggregation_temporality: 2,
                                is_monotonic: true,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "h".into(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    bucket_counts: vec![1, 2, 3],
                                    explicit_bounds: vec![1.0, 2.0],
                                    ..Default::default()
                                }],
                                aggregation_temporality: 2,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "q".into(),
                            data: Some(metric::Data::Summary(Summary {
                                data_points: vec![
                                    SummaryDataPoint::default(),
                                    SummaryDataPoint::default(),
                                ],
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn logs(n: usize) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: (0..n)
                        .map(|i| LogRecord {
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(format!("line {i}"))),
                            }),
                            trace_id: vec![7; 16],
                            span_id: vec![8; 8],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn counts_spans_data_points_and_log_records() {
        assert_eq!(
            validate(Signal::Traces, &traces(3, 5).encode_to_vec()),
            Ok(15)
        );
        assert_eq!(validate(Signal::Metrics, &metrics().encode_to_vec()), Ok(6));
        assert_eq!(validate(Signal::Logs, &logs(4).encode_to_vec()), Ok(4));
        assert_eq!(validate(Signal::Traces, &[]), Ok(0));
    }

    #[test]
    fn concatenated_requests_count_as_one() {
        let mut a = traces(1, 2).encode_to_vec();
        a.extend(traces(2, 3).encode_to_vec());
        assert_eq!(validate(Signal::Traces, &a), Ok(8));
        let merged = ExportTraceServiceRequest::decode(a.as_slice()).unwrap();
        assert_eq!(merged.resource_spans.len(), 3);
    }

    #[test]
    fn truncated_request_is_rejected() {
        let buf = traces(2, 3).encode_to_vec();
        for cut in 1..buf.len() {
            // Every strict prefix either fails or (at a field boundary) counts fewer items.
            match validate(Signal::Traces, &buf[..cut]) {
                Err(_) => {}
                Ok(n) => assert!(n < 6, "prefix {cut} counted {n}"),
            }
        }
        let e = validate(Signal::Traces, &buf[..buf.len() - 1]).unwrap_err();
        assert!(
            matches!(
                e.kind,
                WireErrorKind::LengthOverflow { .. }
                    | WireErrorKind::Truncated { .. }
                    | WireErrorKind::TruncatedVarint
            ),
            "{e}"
        );
    }

    #[test]
    fn wrong_wire_type_is_rejected() {
        // Field 1 as a varint instead of a length-delimited message.
        let e = validate(Signal::Traces, &[0x08, 0x01]).unwrap_err();
        assert_eq!(
            e.kind,
            WireErrorKind::WrongWireType {
                field: 1,
                found: 0,
                expected: 2
            }
        );
        assert_eq!(e.offset, 0);
        // Group wire types never occur in OTLP.
        let e = validate(Signal::Logs, &[0x0b]).unwrap_err();
        assert_eq!(e.kind, WireErrorKind::InvalidWireType(3));
    }

    #[test]
    fn length_overflow_is_rejected() {
        // Field 1, LEN, length 100 with 2 bytes following.
        let e = validate(Signal::Metrics, &[0x0a, 100, 0, 0]).unwrap_err();
        assert_eq!(
            e.kind,
            WireErrorKind::LengthOverflow {
                len: 100,
                available: 2
            }
        );
        // A huge length that would overflow usize arithmetic.
        let e = validate(
            Signal::Metrics,
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        )
        .unwrap_err();
        assert!(
            matches!(e.kind, WireErrorKind::LengthOverflow { .. }),
            "{e}"
        );
    }

    #[test]
    fn overlong_varint_and_field_zero_are_rejected() {
        let e = validate(Signal::Traces, &[0x80; 11]).unwrap_err();
        assert_eq!(e.kind, WireErrorKind::VarintTooLong);
        let e = validate(Signal::Traces, &[0x02, 0x00]).unwrap_err();
        assert_eq!(e.kind, WireErrorKind::FieldNumberZero);
    }

    #[test]
    fn varints_past_64_bits_and_keys_past_32_bits_are_rejected_as_prost_does() {
        // An unknown varint field (9) of a resource-level message whose 10th byte carries
        // bits past the 64th.
        let mut buf = vec![0x0a, 0x0b, 0x48];
        buf.extend([0xff; 9]);
        buf.push(0x02);
        let e = validate(Signal::Traces, &buf).unwrap_err();
        assert_eq!(e.kind, WireErrorKind::VarintTooLong);
        assert_eq!(e.offset, 3);
        // The largest 10-byte varint (u64::MAX) is fine in an unknown field.
        let mut buf = vec![0x0a, 0x0b, 0x48];
        buf.extend([0xff; 9]);
        buf.push(0x01);
        assert_eq!(validate(Signal::Traces, &buf), Ok(0));
        // A key of 2^32 (field number 2^29, wire type 0): prost refuses it.
        let e = validate(Signal::Logs, &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]).unwrap_err();
        assert_eq!(e.kind, WireErrorKind::KeyTooLarge);
    }

    #[test]
    fn bad_id_lengths_are_rejected() {
        let mut req = traces(1, 1);
        req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 5];
        let e = validate(Signal::Traces, &req.encode_to_vec()).unwrap_err();
        assert_eq!(
            e.kind,
            WireErrorKind::BadIdLength {
                field: "trace_id",
                len: 5,
                expected: 16
            }
        );
        let mut req = logs(1);
        req.resource_logs[0].scope_logs[0].log_records[0].span_id = vec![1; 9];
        assert!(validate(Signal::Logs, &req.encode_to_vec()).is_err());
    }

    #[test]
    fn split_cuts_at_resource_boundaries() {
        let buf = bytes::Bytes::from(traces(10, 20).encode_to_vec());
        let pieces = split(&buf, buf.len() / 3).unwrap();
        assert!(pieces.len() >= 3, "{}", pieces.len());
        let total: u64 = pieces
            .iter()
            .map(|p| validate(Signal::Traces, p).unwrap())
            .sum();
        assert_eq!(total, 200);
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(joined, buf.to_vec());
        for p in &pieces[..pieces.len() - 1] {
            assert!(p.len() <= buf.len() / 3);
        }
        // A limit smaller than one resource still makes progress, one resource per piece.
        assert_eq!(split(&buf, 1).unwrap().len(), 10);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            for s in Signal::ALL {
                let _ = validate(s, &data);
            }
        }

        #[test]
        fn mutated_requests_never_panic(pos in 0usize..400, byte in any::<u8>()) {
            let mut buf = metrics().encode_to_vec();
            let i = pos % buf.len();
            buf[i] = byte;
            let _ = validate(Signal::Metrics, &buf);
        }
    }
}
