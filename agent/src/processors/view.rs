//! Reading OTLP items where they lie in an encoded request: the walk from request to resource,
//! scope and item with every range the processors need to edit, and the OTTL [`Item`] views a
//! filter evaluates its conditions against — without decoding anything into structs.
//!
//! A view answers a path by scanning the item's own fields (and its resource's or scope's for
//! `resource.*` / `instrumentation_scope.*`); attribute lookups scan the attribute list and
//! compare keys as bytes. Values borrow from the request. A field that is not well formed (a
//! string that is not UTF-8, a wrong wire type) reads as absent; the walk itself reports a
//! malformed structure as an error, which the processors turn into "pass the batch unchanged,
//! count it".
//!
//! Field numbers are those of opentelemetry-proto's `trace.proto`, `logs.proto`,
//! `metrics.proto`, `common.proto` and `resource.proto`.

use super::ottl::{Field, Item, Key, Path, Subject, Value};
use sonde_core::wire::{Field as WireField, Reader, WireError, I32, I64, LEN, VARINT};
use std::ops::Range;

/// A field and the byte range it occupies (tag to end of payload).
#[derive(Debug, Clone, Copy)]
pub struct Node {
    pub field: WireField,
    pub whole: (usize, usize),
}

impl Node {
    pub fn range(&self) -> Range<usize> {
        self.whole.0..self.whole.1
    }
    pub fn payload(&self) -> (usize, usize) {
        self.field.payload
    }
}

/// The fields of the message `buf[start..end]`, each with its whole range.
pub fn fields(buf: &[u8], range: (usize, usize)) -> Fields<'_> {
    Fields {
        r: Reader::new(buf, range.0, range.1),
    }
}

pub struct Fields<'a> {
    r: Reader<'a>,
}

impl Iterator for Fields<'_> {
    type Item = Result<Node, WireError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.r.next() {
            Ok(Some(f)) => {
                let end = if f.wire_type == LEN {
                    f.payload.1
                } else {
                    self.r.pos
                };
                Some(Ok(Node {
                    field: f,
                    whole: (f.start, end),
                }))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// The length-delimited fields `number` of a message.
pub fn children(
    buf: &[u8],
    p: (usize, usize),
    number: u32,
) -> impl Iterator<Item = Result<Node, WireError>> + '_ {
    fields(buf, p).filter(move |n| {
        n.as_ref().map_or(true, |n| {
            n.field.number == number && n.field.wire_type == LEN
        })
    })
}

/// The payload of the first length-delimited field `number` in `range`, if any.
pub fn first_len(buf: &[u8], range: (usize, usize), number: u32) -> Option<(usize, usize)> {
    fields(buf, range)
        .map_while(Result::ok)
        .find(|n| n.field.number == number && n.field.wire_type == LEN)
        .map(|n| n.field.payload)
}

/// Where an item belongs: the payloads of its resource-level and scope-level messages, whose
/// fields 1 are its `Resource` and `InstrumentationScope` — absent, whole, or in several pieces
/// that a decoder merges into one (repeated fields concatenated, the last scalar winning), which
/// is how they are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin {
    pub resource_level: (usize, usize),
    pub scope_level: (usize, usize),
}

/// The payloads of the pieces of a message field 1 of the message `parent`.
fn pieces(buf: &[u8], parent: (usize, usize)) -> impl Iterator<Item = (usize, usize)> + '_ {
    fields(buf, parent)
        .map_while(Result::ok)
        .filter(|n| n.field.number == 1 && n.field.wire_type == LEN)
        .map(|n| n.field.payload)
}

/// Scalar field `number` across the pieces of a message: the last occurrence wins.
fn merged_scalar(buf: &[u8], parent: (usize, usize), number: u32) -> Option<WireField> {
    pieces(buf, parent)
        .filter_map(|p| scalar(buf, p, number))
        .last()
}

/// `attributes` (a map marker) or `attributes["k"]…` across the pieces of a message: the last
/// entry of a key wins.
fn merged_attributes<'a>(
    buf: &'a [u8],
    parent: (usize, usize),
    number: u32,
    keys: &[Key],
) -> Value<'a> {
    match keys.split_first() {
        None => Value::Map,
        Some((Key::Str(k), rest)) => pieces(buf, parent)
            .filter_map(|p| entry(buf, p, number, k, rest))
            .last()
            .unwrap_or(Value::Nil),
        Some((Key::Int(_), _)) => Value::Nil,
    }
}

fn str_of(buf: &[u8], p: (usize, usize)) -> Option<&str> {
    std::str::from_utf8(buf.get(p.0..p.1)?).ok()
}

/// The value of an `AnyValue` message, keys applied (`["k"]` into a key-value list, `[i]` into
/// an array).
pub fn any_value<'a>(buf: &'a [u8], p: (usize, usize), keys: &[Key]) -> Value<'a> {
    let mut value = Value::Nil;
    let mut list = None;
    // The last set field wins, as in protobuf's oneof decoding.
    for n in fields(buf, p).map_while(Result::ok) {
        let f = n.field;
        list = None;
        value = match (f.number, f.wire_type) {
            (1, LEN) => str_of(buf, f.payload).map_or(Value::Nil, Value::Str),
            (2, VARINT) => Value::Bool(f.value != 0),
            (3, VARINT) => Value::Int(f.value as i64),
            (4, I64) => Value::Double(f64::from_bits(f.value)),
            (5, LEN) => {
                list = Some((false, f.payload));
                Value::Slice
            }
            (6, LEN) => {
                list = Some((true, f.payload));
                Value::Map
            }
            (7, LEN) => Value::Bytes(&buf[f.payload.0..f.payload.1]),
            _ => value,
        };
    }
    let Some((first, rest)) = keys.split_first() else {
        return value;
    };
    match (list, first) {
        // KeyValueList { values: repeated KeyValue = 1 }
        (Some((true, p)), Key::Str(k)) => lookup(buf, p, 1, k, rest),
        // ArrayValue { values: repeated AnyValue = 1 }
        (Some((false, p)), Key::Int(i)) => usize::try_from(*i)
            .ok()
            .and_then(|i| {
                fields(buf, p)
                    .map_while(Result::ok)
                    .filter(|n| n.field.number == 1 && n.field.wire_type == LEN)
                    .nth(i)
            })
            .map_or(Value::Nil, |n| any_value(buf, n.field.payload, rest)),
        _ => Value::Nil,
    }
}

/// The value of attribute `key` among the `KeyValue` fields numbered `number` of the message
/// `p`, further keys applied; `Nil` when absent.
pub fn lookup<'a>(
    buf: &'a [u8],
    p: (usize, usize),
    number: u32,
    key: &str,
    rest: &[Key],
) -> Value<'a> {
    entry(buf, p, number, key, rest).unwrap_or(Value::Nil)
}

/// Like [`lookup`], but tells an absent key (`None`) from a present one without a value
/// (`Some(Nil)`).
fn entry<'a>(
    buf: &'a [u8],
    p: (usize, usize),
    number: u32,
    key: &str,
    rest: &[Key],
) -> Option<Value<'a>> {
    let mut found = None;
    for n in fields(buf, p).map_while(Result::ok) {
        if n.field.number != number || n.field.wire_type != LEN {
            continue;
        }
        let (mut k, mut v) = (None, None);
        for kv in fields(buf, n.field.payload).map_while(Result::ok) {
            match (kv.field.number, kv.field.wire_type) {
                (1, LEN) => k = Some(kv.field.payload),
                (2, LEN) => v = Some(kv.field.payload),
                _ => {}
            }
        }
        if k.is_some_and(|k| &buf[k.0..k.1] == key.as_bytes()) {
            // A repeated key: the last one wins, as a map built from the list would have it.
            found = Some(v.map_or(Value::Nil, |v| any_value(buf, v, rest)));
        }
    }
    found
}

/// Whether the message `p` has any field `number` (a non-empty repeated field).
fn has_any(buf: &[u8], p: (usize, usize), number: u32) -> bool {
    fields(buf, p)
        .map_while(Result::ok)
        .any(|n| n.field.number == number)
}

/// A scalar field of a message, by number; `None` when absent. The last occurrence wins.
fn scalar(buf: &[u8], p: (usize, usize), number: u32) -> Option<WireField> {
    fields(buf, p)
        .map_while(Result::ok)
        .filter(|n| n.field.number == number)
        .last()
        .map(|n| n.field)
}

fn int_of(f: Option<WireField>) -> Value<'static> {
    Value::Int(f.map_or(0, |f| match f.wire_type {
        VARINT | I64 => f.value as i64,
        I32 => i64::from(f.value as u32),
        _ => 0,
    }))
}

fn sint32_of(f: Option<WireField>) -> Value<'static> {
    Value::Int(f.map_or(0, |f| {
        let v = f.value as u32;
        i64::from(((v >> 1) as i32) ^ -((v & 1) as i32))
    }))
}

fn double_of(f: Option<WireField>) -> Value<'static> {
    Value::Double(
        f.filter(|f| f.wire_type == I64)
            .map_or(0.0, |f| f64::from_bits(f.value)),
    )
}

fn bytes_of(buf: &[u8], f: Option<WireField>) -> Value<'_> {
    Value::Bytes(
        f.filter(|f| f.wire_type == LEN)
            .map_or(&[][..], |f| &buf[f.payload.0..f.payload.1]),
    )
}

fn string_of(buf: &[u8], f: Option<WireField>) -> Value<'_> {
    Value::Str(
        f.filter(|f| f.wire_type == LEN)
            .and_then(|f| str_of(buf, f.payload))
            .unwrap_or(""),
    )
}

/// `resource.*` and `instrumentation_scope.*` paths.
fn origin_value<'a>(buf: &'a [u8], origin: &Origin, path: &Path) -> Value<'a> {
    match path.subject {
        Subject::Resource => {
            let r = origin.resource_level;
            if pieces(buf, r).next().is_none() {
                return match path.field {
                    Field::DroppedAttributesCount => Value::Int(0),
                    _ => Value::Nil,
                };
            }
            match path.field {
                Field::Attributes => merged_attributes(buf, r, 1, &path.keys),
                Field::DroppedAttributesCount => int_of(merged_scalar(buf, r, 2)),
                _ => Value::Nil,
            }
        }
        // An absent scope reads as an empty one.
        Subject::Scope => {
            let s = origin.scope_level;
            match path.field {
                Field::Name => string_of(buf, merged_scalar(buf, s, 1)),
                Field::Version => string_of(buf, merged_scalar(buf, s, 2)),
                Field::Attributes => merged_attributes(buf, s, 3, &path.keys),
                Field::DroppedAttributesCount => int_of(merged_scalar(buf, s, 4)),
                _ => Value::Nil,
            }
        }
        _ => Value::Nil,
    }
}

/// `attributes` (a map marker) or `attributes["k"]…`.
fn attributes<'a>(buf: &'a [u8], p: (usize, usize), number: u32, keys: &[Key]) -> Value<'a> {
    match keys.split_first() {
        None => Value::Map,
        Some((Key::Str(k), rest)) => lookup(buf, p, number, k, rest),
        Some((Key::Int(_), _)) => Value::Nil,
    }
}

/// A span (`Span` message payload `span`).
pub struct SpanView<'a> {
    pub buf: &'a [u8],
    pub span: (usize, usize),
    pub origin: Origin,
}

fn span_value<'a>(buf: &'a [u8], s: (usize, usize), path: &Path) -> Value<'a> {
    match path.field {
        Field::TraceId => bytes_of(buf, scalar(buf, s, 1)),
        Field::SpanId => bytes_of(buf, scalar(buf, s, 2)),
        Field::TraceState => {
            let ts = match string_of(buf, scalar(buf, s, 3)) {
                Value::Str(ts) => ts,
                _ => "",
            };
            match path.keys.first() {
                None => Value::Str(ts),
                Some(Key::Str(k)) => trace_state_entry(ts, k).map_or(Value::Nil, Value::Str),
                Some(Key::Int(_)) => Value::Nil,
            }
        }
        Field::ParentSpanId => bytes_of(buf, scalar(buf, s, 4)),
        Field::Flags => int_of(scalar(buf, s, 16)),
        Field::Name => string_of(buf, scalar(buf, s, 5)),
        Field::Kind => int_of(scalar(buf, s, 6)),
        Field::StartTimeUnixNano => int_of(scalar(buf, s, 7)),
        Field::EndTimeUnixNano => int_of(scalar(buf, s, 8)),
        Field::Attributes => attributes(buf, s, 9, &path.keys),
        Field::DroppedAttributesCount => int_of(scalar(buf, s, 10)),
        Field::DroppedEventsCount => int_of(scalar(buf, s, 12)),
        Field::DroppedLinksCount => int_of(scalar(buf, s, 14)),
        Field::StatusCode | Field::StatusMessage => {
            let st = first_len(buf, s, 15).unwrap_or((0, 0));
            if path.field == Field::StatusCode {
                int_of(scalar(buf, st, 3))
            } else {
                string_of(buf, scalar(buf, st, 2))
            }
        }
        _ => Value::Nil,
    }
}

/// The value of `key` in a W3C `tracestate` header.
fn trace_state_entry<'a>(ts: &'a str, key: &str) -> Option<&'a str> {
    ts.split(',').find_map(|m| {
        let (k, v) = m.trim().split_once('=')?;
        (k == key).then_some(v)
    })
}

impl Item for SpanView<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        match path.subject {
            Subject::Item | Subject::ParentSpan => span_value(self.buf, self.span, path),
            _ => origin_value(self.buf, &self.origin, path),
        }
    }
}

/// A span event (`Span.Event` payload `event`, the `index`-th of its span).
pub struct EventView<'a> {
    pub buf: &'a [u8],
    pub event: (usize, usize),
    pub index: usize,
    pub span: (usize, usize),
    pub origin: Origin,
}

impl Item for EventView<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        let (buf, e) = (self.buf, self.event);
        match path.subject {
            Subject::Item => match path.field {
                Field::TimeUnixNano => int_of(scalar(buf, e, 1)),
                Field::Name => string_of(buf, scalar(buf, e, 2)),
                Field::Attributes => attributes(buf, e, 3, &path.keys),
                Field::DroppedAttributesCount => int_of(scalar(buf, e, 4)),
                Field::EventIndex => Value::Int(self.index as i64),
                _ => Value::Nil,
            },
            Subject::ParentSpan => span_value(buf, self.span, path),
            _ => origin_value(buf, &self.origin, path),
        }
    }
}

/// A log record (`LogRecord` payload `record`).
pub struct LogView<'a> {
    pub buf: &'a [u8],
    pub record: (usize, usize),
    pub origin: Origin,
}

impl Item for LogView<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        let (buf, r) = (self.buf, self.record);
        match path.subject {
            Subject::Item => match path.field {
                Field::TimeUnixNano => int_of(scalar(buf, r, 1)),
                Field::SeverityNumber => int_of(scalar(buf, r, 2)),
                Field::SeverityText => string_of(buf, scalar(buf, r, 3)),
                Field::Body => {
                    first_len(buf, r, 5).map_or(Value::Nil, |b| any_value(buf, b, &path.keys))
                }
                Field::Attributes => attributes(buf, r, 6, &path.keys),
                Field::DroppedAttributesCount => int_of(scalar(buf, r, 7)),
                Field::Flags => int_of(scalar(buf, r, 8)),
                Field::TraceId => bytes_of(buf, scalar(buf, r, 9)),
                Field::SpanId => bytes_of(buf, scalar(buf, r, 10)),
                Field::ObservedTimeUnixNano => int_of(scalar(buf, r, 11)),
                _ => Value::Nil,
            },
            _ => origin_value(buf, &self.origin, path),
        }
    }
}

/// Which kind of data a `Metric` holds: its field number and the data point's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricData {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl MetricData {
    pub fn of_field(number: u32) -> Option<MetricData> {
        Some(match number {
            5 => MetricData::Gauge,
            7 => MetricData::Sum,
            9 => MetricData::Histogram,
            10 => MetricData::ExponentialHistogram,
            11 => MetricData::Summary,
            _ => return None,
        })
    }

    /// `METRIC_DATA_TYPE_*`.
    fn type_number(self) -> i64 {
        match self {
            MetricData::Gauge => 1,
            MetricData::Sum => 2,
            MetricData::Histogram => 3,
            MetricData::ExponentialHistogram => 4,
            MetricData::Summary => 5,
        }
    }

    /// The field number of a data point's attributes.
    pub fn attributes_field(self) -> u32 {
        match self {
            MetricData::Gauge | MetricData::Sum | MetricData::Summary => 7,
            MetricData::Histogram => 9,
            MetricData::ExponentialHistogram => 1,
        }
    }
}

/// The data of a `Metric` payload: which kind, and the payload of that field.
pub fn metric_data(buf: &[u8], metric: (usize, usize)) -> Option<(MetricData, (usize, usize))> {
    fields(buf, metric)
        .map_while(Result::ok)
        .filter(|n| n.field.wire_type == LEN)
        .filter_map(|n| MetricData::of_field(n.field.number).map(|d| (d, n.field.payload)))
        .last()
}

fn metric_value<'a>(buf: &'a [u8], m: (usize, usize), path: &Path) -> Value<'a> {
    let data = metric_data(buf, m);
    match path.field {
        Field::Name => string_of(buf, scalar(buf, m, 1)),
        Field::Description => string_of(buf, scalar(buf, m, 2)),
        Field::Unit => string_of(buf, scalar(buf, m, 3)),
        Field::Type => Value::Int(data.map_or(0, |(d, _)| d.type_number())),
        Field::AggregationTemporality => match data {
            Some((
                MetricData::Sum | MetricData::Histogram | MetricData::ExponentialHistogram,
                p,
            )) => int_of(scalar(buf, p, 2)),
            _ => Value::Int(0),
        },
        Field::IsMonotonic => match data {
            Some((MetricData::Sum, p)) => {
                Value::Bool(scalar(buf, p, 3).is_some_and(|f| f.value != 0))
            }
            _ => Value::Bool(false),
        },
        Field::AnyDatapointAttribute => {
            let Some((d, p)) = data else {
                return Value::Bool(false);
            };
            let (key, want) = match &path.keys[..] {
                [Key::Str(k)] => (k, None),
                [Key::Str(k), Key::Str(v)] => (k, Some(v)),
                _ => return Value::Bool(false),
            };
            let hit = fields(buf, p)
                .map_while(Result::ok)
                .filter(|n| n.field.number == 1 && n.field.wire_type == LEN)
                // As the Collector's `HasAttrOnDatapoint`: a value that is not a string reads
                // as "" (pdata's `Value.Str()`).
                .any(
                    |dp| match entry(buf, dp.field.payload, d.attributes_field(), key, &[]) {
                        None => false,
                        Some(Value::Str(s)) => want.is_none_or(|w| **w == *s),
                        Some(_) => want.is_none_or(|w| w.is_empty()),
                    },
                );
            Value::Bool(hit)
        }
        _ => Value::Nil,
    }
}

/// A metric as a whole (`Metric` payload `metric`).
pub struct MetricView<'a> {
    pub buf: &'a [u8],
    pub metric: (usize, usize),
    pub origin: Origin,
}

impl Item for MetricView<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        match path.subject {
            Subject::Item | Subject::ParentMetric => metric_value(self.buf, self.metric, path),
            _ => origin_value(self.buf, &self.origin, path),
        }
    }
}

/// A data point (payload `point`) of a metric (payload `metric`) holding `data`.
pub struct DataPointView<'a> {
    pub buf: &'a [u8],
    pub point: (usize, usize),
    pub data: MetricData,
    pub metric: (usize, usize),
    pub origin: Origin,
}

impl Item for DataPointView<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        let (buf, p, d) = (self.buf, self.point, self.data);
        match path.subject {
            Subject::Item => match path.field {
                Field::Attributes => attributes(buf, p, d.attributes_field(), &path.keys),
                Field::StartTimeUnixNano => int_of(scalar(buf, p, 2)),
                Field::TimeUnixNano => int_of(scalar(buf, p, 3)),
                Field::ValueDouble => match d {
                    MetricData::Gauge | MetricData::Sum => double_of(scalar(buf, p, 4)),
                    _ => Value::Double(0.0),
                },
                Field::ValueInt => match d {
                    MetricData::Gauge | MetricData::Sum => int_of(scalar(buf, p, 6)),
                    _ => Value::Int(0),
                },
                Field::Flags => int_of(scalar(
                    buf,
                    p,
                    match d {
                        MetricData::Gauge | MetricData::Sum | MetricData::Summary => 8,
                        MetricData::Histogram | MetricData::ExponentialHistogram => 10,
                    },
                )),
                Field::Count => match d {
                    MetricData::Gauge | MetricData::Sum => Value::Int(0),
                    _ => int_of(scalar(buf, p, 4)),
                },
                Field::Sum => match d {
                    MetricData::Gauge | MetricData::Sum => Value::Double(0.0),
                    _ => double_of(scalar(buf, p, 5)),
                },
                Field::Scale => match d {
                    MetricData::ExponentialHistogram => sint32_of(scalar(buf, p, 6)),
                    _ => Value::Int(0),
                },
                Field::ZeroCount => match d {
                    MetricData::ExponentialHistogram => int_of(scalar(buf, p, 7)),
                    _ => Value::Int(0),
                },
                _ => Value::Nil,
            },
            Subject::ParentMetric => metric_value(buf, self.metric, path),
            _ => origin_value(buf, &self.origin, path),
        }
    }
}

/// Whether a metric payload has any data point left (a metric without points is removed
/// after filtering, as the Collector does).
pub fn has_data_points(buf: &[u8], data: (usize, usize)) -> bool {
    has_any(buf, data, 1)
}
