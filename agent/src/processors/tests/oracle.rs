//! The oracle: each processor's edit done on decoded prost messages, and the OTTL [`Item`]s over
//! them that the filter's conditions are evaluated against. Written from the processors'
//! documented behaviour and the OTLP field definitions, independently of the wire views.

use crate::processors::ottl::{Condition, Field, Item, Key, Path, Subject, Value};
use crate::processors::patterns::{Counts, Redactor};
use crate::processors::probability::{FastRng, Sampler, SpanInput, TraceStateEdit};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, Span};

/// What the processor is expected to report and do, besides the output request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expect {
    pub dropped: u64,
    pub modified: u64,
    /// Whether the request changes at all (when not, the batch must pass without a copy).
    pub changed: bool,
}

// ---------------------------------------------------------------------------------------------
// Values

/// The OTTL value of a decoded `AnyValue`, keys applied.
fn value_of<'a>(v: Option<&'a AnyValue>, keys: &[Key]) -> Value<'a> {
    let Some(value) = v.and_then(|v| v.value.as_ref()) else {
        return Value::Nil;
    };
    let here = match value {
        any_value::Value::StringValue(s) => Value::Str(s),
        any_value::Value::BoolValue(b) => Value::Bool(*b),
        any_value::Value::IntValue(i) => Value::Int(*i),
        any_value::Value::DoubleValue(d) => Value::Double(*d),
        any_value::Value::ArrayValue(_) => Value::Slice,
        any_value::Value::KvlistValue(_) => Value::Map,
        any_value::Value::BytesValue(b) => Value::Bytes(b),
        // A profiles-only string reference: not a value the views read.
        _ => Value::Nil,
    };
    let Some((first, rest)) = keys.split_first() else {
        return here;
    };
    match (value, first) {
        (any_value::Value::KvlistValue(l), Key::Str(k)) => lookup(&l.values, k, rest),
        (any_value::Value::ArrayValue(a), Key::Int(i)) => usize::try_from(*i)
            .ok()
            .and_then(|i| a.values.get(i))
            .map_or(Value::Nil, |v| value_of(Some(v), rest)),
        _ => Value::Nil,
    }
}

/// Attribute `key` of a list (the last of repeated keys, as a map built from the list).
fn lookup<'a>(attrs: &'a [KeyValue], key: &str, rest: &[Key]) -> Value<'a> {
    attrs
        .iter()
        .rev()
        .find(|kv| kv.key == key)
        .map_or(Value::Nil, |kv| value_of(kv.value.as_ref(), rest))
}

fn attributes<'a>(attrs: &'a [KeyValue], keys: &[Key]) -> Value<'a> {
    match keys.split_first() {
        None => Value::Map,
        Some((Key::Str(k), rest)) => lookup(attrs, k, rest),
        Some((Key::Int(_), _)) => Value::Nil,
    }
}

fn int(v: impl Into<i128>) -> Value<'static> {
    Value::Int(v.into() as i64)
}

/// Where an item belongs.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub resource: Option<&'a Resource>,
    pub scope: Option<&'a InstrumentationScope>,
}

fn origin_value<'a>(o: &Origin<'a>, path: &Path) -> Value<'a> {
    match path.subject {
        Subject::Resource => match (o.resource, path.field) {
            (None, Field::DroppedAttributesCount) => int(0),
            (None, _) => Value::Nil,
            (Some(r), Field::Attributes) => attributes(&r.attributes, &path.keys),
            (Some(r), Field::DroppedAttributesCount) => int(r.dropped_attributes_count),
            _ => Value::Nil,
        },
        Subject::Scope => match o.scope {
            Some(s) => scope_value(s, path),
            // An absent scope reads as an empty one.
            None => match path.field {
                Field::Name | Field::Version => Value::Str(""),
                Field::Attributes if path.keys.is_empty() => Value::Map,
                Field::DroppedAttributesCount => int(0),
                _ => Value::Nil,
            },
        },
        _ => Value::Nil,
    }
}

fn scope_value<'a>(s: &'a InstrumentationScope, path: &Path) -> Value<'a> {
    match path.field {
        Field::Name => Value::Str(&s.name),
        Field::Version => Value::Str(&s.version),
        Field::Attributes => attributes(&s.attributes, &path.keys),
        Field::DroppedAttributesCount => int(s.dropped_attributes_count),
        _ => Value::Nil,
    }
}

// ---------------------------------------------------------------------------------------------
// Items

pub struct OSpan<'a> {
    pub span: &'a Span,
    pub origin: Origin<'a>,
}

fn span_value<'a>(s: &'a Span, path: &Path) -> Value<'a> {
    match path.field {
        Field::TraceId => Value::Bytes(&s.trace_id),
        Field::SpanId => Value::Bytes(&s.span_id),
        Field::ParentSpanId => Value::Bytes(&s.parent_span_id),
        Field::TraceState => match path.keys.first() {
            None => Value::Str(&s.trace_state),
            Some(Key::Str(k)) => s
                .trace_state
                .split(',')
                .filter_map(|m| m.trim().split_once('='))
                .find(|(key, _)| key == &&**k)
                .map_or(Value::Nil, |(_, v)| Value::Str(v)),
            Some(Key::Int(_)) => Value::Nil,
        },
        Field::Flags => int(s.flags),
        Field::Name => Value::Str(&s.name),
        Field::Kind => int(s.kind),
        Field::StartTimeUnixNano => int(s.start_time_unix_nano),
        Field::EndTimeUnixNano => int(s.end_time_unix_nano),
        Field::Attributes => attributes(&s.attributes, &path.keys),
        Field::DroppedAttributesCount => int(s.dropped_attributes_count),
        Field::DroppedEventsCount => int(s.dropped_events_count),
        Field::DroppedLinksCount => int(s.dropped_links_count),
        Field::StatusCode => int(s.status.as_ref().map_or(0, |st| st.code)),
        Field::StatusMessage => Value::Str(s.status.as_ref().map_or("", |st| &st.message)),
        _ => Value::Nil,
    }
}

impl Item for OSpan<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        match path.subject {
            Subject::Item | Subject::ParentSpan => span_value(self.span, path),
            _ => origin_value(&self.origin, path),
        }
    }
}

pub struct OEvent<'a> {
    pub event: &'a span::Event,
    pub index: usize,
    pub span: &'a Span,
    pub origin: Origin<'a>,
}

impl Item for OEvent<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        let e = self.event;
        match path.subject {
            Subject::Item => match path.field {
                Field::TimeUnixNano => int(e.time_unix_nano),
                Field::Name => Value::Str(&e.name),
                Field::Attributes => attributes(&e.attributes, &path.keys),
                Field::DroppedAttributesCount => int(e.dropped_attributes_count),
                Field::EventIndex => int(self.index as u64),
                _ => Value::Nil,
            },
            Subject::ParentSpan => span_value(self.span, path),
            _ => origin_value(&self.origin, path),
        }
    }
}

pub struct OLog<'a> {
    pub record: &'a LogRecord,
    pub origin: Origin<'a>,
}

impl Item for OLog<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        let r = self.record;
        match path.subject {
            Subject::Item => match path.field {
                Field::TimeUnixNano => int(r.time_unix_nano),
                Field::ObservedTimeUnixNano => int(r.observed_time_unix_nano),
                Field::SeverityNumber => int(r.severity_number),
                Field::SeverityText => Value::Str(&r.severity_text),
                Field::Body => match &r.body {
                    None => Value::Nil,
                    Some(b) => value_of(Some(b), &path.keys),
                },
                Field::Attributes => attributes(&r.attributes, &path.keys),
                Field::DroppedAttributesCount => int(r.dropped_attributes_count),
                Field::Flags => int(r.flags),
                Field::TraceId => Value::Bytes(&r.trace_id),
                Field::SpanId => Value::Bytes(&r.span_id),
                _ => Value::Nil,
            },
            _ => origin_value(&self.origin, path),
        }
    }
}

/// A data point of any kind, by reference.
#[derive(Clone, Copy)]
pub enum Point<'a> {
    Number(&'a opentelemetry_proto::tonic::metrics::v1::NumberDataPoint),
    Histogram(&'a opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint),
    Exp(&'a opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint),
    Summary(&'a opentelemetry_proto::tonic::metrics::v1::SummaryDataPoint),
}

impl<'a> Point<'a> {
    pub fn attributes(self) -> &'a [KeyValue] {
        match self {
            Point::Number(p) => &p.attributes,
            Point::Histogram(p) => &p.attributes,
            Point::Exp(p) => &p.attributes,
            Point::Summary(p) => &p.attributes,
        }
    }
}

/// The data points of a metric's data.
pub fn points(data: &metric::Data) -> Vec<Point<'_>> {
    match data {
        metric::Data::Gauge(g) => g.data_points.iter().map(Point::Number).collect(),
        metric::Data::Sum(s) => s.data_points.iter().map(Point::Number).collect(),
        metric::Data::Histogram(h) => h.data_points.iter().map(Point::Histogram).collect(),
        metric::Data::ExponentialHistogram(h) => h.data_points.iter().map(Point::Exp).collect(),
        metric::Data::Summary(s) => s.data_points.iter().map(Point::Summary).collect(),
    }
}

fn metric_value<'a>(m: &'a Metric, path: &Path) -> Value<'a> {
    match path.field {
        Field::Name => Value::Str(&m.name),
        Field::Description => Value::Str(&m.description),
        Field::Unit => Value::Str(&m.unit),
        Field::Type => int(match &m.data {
            None => 0,
            Some(metric::Data::Gauge(_)) => 1,
            Some(metric::Data::Sum(_)) => 2,
            Some(metric::Data::Histogram(_)) => 3,
            Some(metric::Data::ExponentialHistogram(_)) => 4,
            Some(metric::Data::Summary(_)) => 5,
        }),
        Field::AggregationTemporality => int(match &m.data {
            Some(metric::Data::Sum(s)) => s.aggregation_temporality,
            Some(metric::Data::Histogram(h)) => h.aggregation_temporality,
            Some(metric::Data::ExponentialHistogram(h)) => h.aggregation_temporality,
            _ => 0,
        }),
        Field::IsMonotonic => {
            Value::Bool(matches!(&m.data, Some(metric::Data::Sum(s)) if s.is_monotonic))
        }
        Field::AnyDatapointAttribute => {
            let Some(data) = &m.data else {
                return Value::Bool(false);
            };
            let (key, want) = match &path.keys[..] {
                [Key::Str(k)] => (k, None),
                [Key::Str(k), Key::Str(v)] => (k, Some(v)),
                _ => return Value::Bool(false),
            };
            // pdata's `Value.Str()`: "" for a value that is not a string.
            Value::Bool(points(data).iter().any(|p| {
                match p.attributes().iter().rev().find(|kv| kv.key == **key) {
                    None => false,
                    Some(kv) => match value_of(kv.value.as_ref(), &[]) {
                        Value::Str(s) => want.is_none_or(|w| **w == *s),
                        _ => want.is_none_or(|w| w.is_empty()),
                    },
                }
            }))
        }
        _ => Value::Nil,
    }
}

pub struct OMetric<'a> {
    pub metric: &'a Metric,
    pub origin: Origin<'a>,
}

impl Item for OMetric<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        match path.subject {
            Subject::Item | Subject::ParentMetric => metric_value(self.metric, path),
            _ => origin_value(&self.origin, path),
        }
    }
}

pub struct OPoint<'a> {
    pub point: Point<'a>,
    pub metric: &'a Metric,
    pub origin: Origin<'a>,
}

impl Item for OPoint<'_> {
    fn get(&self, path: &Path) -> Value<'_> {
        match path.subject {
            Subject::Item => point_value(self.point, path),
            Subject::ParentMetric => metric_value(self.metric, path),
            _ => origin_value(&self.origin, path),
        }
    }
}

fn point_value<'a>(p: Point<'a>, path: &Path) -> Value<'a> {
    use Point::*;
    match path.field {
        Field::Attributes => attributes(p.attributes(), &path.keys),
        Field::StartTimeUnixNano => int(match p {
            Number(p) => p.start_time_unix_nano,
            Histogram(p) => p.start_time_unix_nano,
            Exp(p) => p.start_time_unix_nano,
            Summary(p) => p.start_time_unix_nano,
        }),
        Field::TimeUnixNano => int(match p {
            Number(p) => p.time_unix_nano,
            Histogram(p) => p.time_unix_nano,
            Exp(p) => p.time_unix_nano,
            Summary(p) => p.time_unix_nano,
        }),
        Field::ValueDouble => Value::Double(match p {
            Number(p) => match p.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                _ => 0.0,
            },
            _ => 0.0,
        }),
        Field::ValueInt => int(match p {
            Number(p) => match p.value {
                Some(number_data_point::Value::AsInt(i)) => i,
                _ => 0,
            },
            _ => 0,
        }),
        Field::Flags => int(match p {
            Number(p) => p.flags,
            Histogram(p) => p.flags,
            Exp(p) => p.flags,
            Summary(p) => p.flags,
        }),
        Field::Count => int(match p {
            Number(_) => 0,
            Histogram(p) => p.count,
            Exp(p) => p.count,
            Summary(p) => p.count,
        }),
        Field::Sum => Value::Double(match p {
            Number(_) => 0.0,
            Histogram(p) => p.sum.unwrap_or(0.0),
            Exp(p) => p.sum.unwrap_or(0.0),
            Summary(p) => p.sum,
        }),
        Field::Scale => int(match p {
            Exp(p) => p.scale,
            _ => 0,
        }),
        Field::ZeroCount => int(match p {
            Exp(p) => p.zero_count,
            _ => 0,
        }),
        _ => Value::Nil,
    }
}

// ---------------------------------------------------------------------------------------------
// Filter

/// The filter's condition lists, parsed.
pub struct Conditions {
    pub spans: Vec<Condition>,
    pub events: Vec<Condition>,
    pub logs: Vec<Condition>,
    pub metrics: Vec<Condition>,
    pub points: Vec<Condition>,
}

/// Whether any condition holds; a condition that fails to evaluate counts as false.
fn any(cs: &[Condition], item: &impl Item, errors: &mut u64) -> bool {
    cs.iter().any(|c| {
        c.evaluate(item).unwrap_or_else(|_| {
            *errors += 1;
            false
        })
    })
}

/// Keeps the entries of `v` for which `keep` says so; whether any went.
fn retain_counting<T>(v: &mut Vec<T>, mut keep: impl FnMut(&mut T) -> bool) -> bool {
    let before = v.len();
    let mut kept = Vec::with_capacity(before);
    for mut x in v.drain(..) {
        if keep(&mut x) {
            kept.push(x);
        }
    }
    *v = kept;
    v.len() != before
}

/// The filter on a decoded traces request; `errors`: evaluation errors.
pub fn filter_traces(
    req: &mut ExportTraceServiceRequest,
    c: &Conditions,
    errors: &mut u64,
) -> Expect {
    let mut e = Expect::default();
    let mut result = Vec::new();
    for mut rs in req.resource_spans.drain(..) {
        let resource = rs.resource.clone();
        let had = !rs.scope_spans.is_empty();
        retain_counting(&mut rs.scope_spans, |ss| {
            let scope = ss.scope.clone();
            let origin = Origin {
                resource: resource.as_ref(),
                scope: scope.as_ref(),
            };
            let had = !ss.spans.is_empty();
            retain_counting(&mut ss.spans, |span| {
                if any(&c.spans, &OSpan { span, origin }, errors) {
                    e.dropped += 1;
                    return false;
                }
                if c.events.is_empty() {
                    return true;
                }
                let snapshot = span.clone();
                let mut index = 0;
                let went = retain_counting(&mut span.events, |event| {
                    let item = OEvent {
                        event,
                        index,
                        span: &snapshot,
                        origin,
                    };
                    index += 1;
                    !any(&c.events, &item, errors)
                });
                e.modified += u64::from(went);
                true
            });
            !(had && ss.spans.is_empty())
        });
        if !(had && rs.scope_spans.is_empty()) {
            result.push(rs);
        }
    }
    req.resource_spans = result;
    e.changed = e.dropped > 0 || e.modified > 0;
    e
}

pub fn filter_logs(req: &mut ExportLogsServiceRequest, c: &Conditions, errors: &mut u64) -> Expect {
    let mut e = Expect::default();
    let mut result = Vec::new();
    for mut rl in req.resource_logs.drain(..) {
        let resource = rl.resource.clone();
        let had = !rl.scope_logs.is_empty();
        retain_counting(&mut rl.scope_logs, |sl| {
            let scope = sl.scope.clone();
            let origin = Origin {
                resource: resource.as_ref(),
                scope: scope.as_ref(),
            };
            let had = !sl.log_records.is_empty();
            retain_counting(&mut sl.log_records, |record| {
                let drop = any(&c.logs, &OLog { record, origin }, errors);
                e.dropped += u64::from(drop);
                !drop
            });
            !(had && sl.log_records.is_empty())
        });
        if !(had && rl.scope_logs.is_empty()) {
            result.push(rl);
        }
    }
    req.resource_logs = result;
    e.changed = e.dropped > 0;
    e
}

/// Keeps the data points of `data` that `keep` accepts (by reference to the decoded point).
fn retain_points(data: &mut metric::Data, mut keep: impl FnMut(Point<'_>) -> bool) {
    macro_rules! retain {
        ($v:expr, $variant:ident) => {
            $v.retain(|p| keep(Point::$variant(p)))
        };
    }
    match data {
        metric::Data::Gauge(g) => retain!(g.data_points, Number),
        metric::Data::Sum(s) => retain!(s.data_points, Number),
        metric::Data::Histogram(h) => retain!(h.data_points, Histogram),
        metric::Data::ExponentialHistogram(h) => retain!(h.data_points, Exp),
        metric::Data::Summary(s) => retain!(s.data_points, Summary),
    }
}

pub fn filter_metrics(
    req: &mut ExportMetricsServiceRequest,
    c: &Conditions,
    errors: &mut u64,
) -> Expect {
    let mut e = Expect::default();
    let mut result = Vec::new();
    for mut rm in req.resource_metrics.drain(..) {
        let resource = rm.resource.clone();
        let had = !rm.scope_metrics.is_empty();
        retain_counting(&mut rm.scope_metrics, |sm| {
            let scope = sm.scope.clone();
            let origin = Origin {
                resource: resource.as_ref(),
                scope: scope.as_ref(),
            };
            let had = !sm.metrics.is_empty();
            retain_counting(&mut sm.metrics, |m| {
                let n = m.data.as_ref().map_or(0, |d| points(d).len()) as u64;
                if any(&c.metrics, &OMetric { metric: m, origin }, errors) {
                    e.dropped += n;
                    e.changed = true;
                    return false;
                }
                if c.points.is_empty() || n == 0 {
                    return true;
                }
                let snapshot = m.clone();
                let mut went = 0;
                if let Some(data) = m.data.as_mut() {
                    retain_points(data, |point| {
                        let item = OPoint {
                            point,
                            metric: &snapshot,
                            origin,
                        };
                        let drop = any(&c.points, &item, errors);
                        went += u64::from(drop);
                        !drop
                    });
                }
                e.dropped += went;
                if went > 0 {
                    e.changed = true;
                }
                if went == n {
                    return false; // a metric left without data points goes
                }
                e.modified += u64::from(went > 0);
                true
            });
            !(had && sm.metrics.is_empty())
        });
        if !(had && rm.scope_metrics.is_empty()) {
            result.push(rm);
        }
    }
    req.resource_metrics = result;
    e
}

// ---------------------------------------------------------------------------------------------
// Resource

/// A resource attribute edit: `delete`, then `set` (upsert, in key order), then `insert` (only
/// keys still absent).
pub struct ResourceEdit {
    pub delete: Vec<String>,
    pub set: Vec<KeyValue>,
    pub insert: Vec<KeyValue>,
}

/// The resource processor's edit of one resource-level message's `Resource`; whether it
/// changes.
pub fn edit_resource(resource: &mut Option<Resource>, edit: &ResourceEdit) -> bool {
    let mut changed = false;
    let r = resource.get_or_insert_with(Resource::default);
    let before = r.attributes.len();
    r.attributes
        .retain(|kv| !edit.delete.contains(&kv.key) && !edit.set.iter().any(|s| s.key == kv.key));
    changed |= r.attributes.len() != before;
    for s in &edit.set {
        r.attributes.push(s.clone());
        changed = true;
    }
    for i in &edit.insert {
        if !r.attributes.iter().any(|kv| kv.key == i.key) {
            r.attributes.push(i.clone());
            changed = true;
        }
    }
    changed
}

// ---------------------------------------------------------------------------------------------
// Redact

/// The redact processor's settings, as the oracle applies them.
pub struct Redaction<'a> {
    pub redactor: &'a Redactor,
    pub keys: &'a [&'a str],
    pub bodies: bool,
}

/// Redactions counted per batch.
pub struct Tally {
    pub counts: Counts,
    pub by_key: u64,
}

/// Deeper than this, nested values are left as they are.
const MAX_DEPTH: usize = 16;

impl Redaction<'_> {
    fn value(&self, v: &mut AnyValue, whole: bool, depth: usize, t: &mut Tally) -> bool {
        match v.value.as_mut() {
            Some(any_value::Value::StringValue(s)) => {
                if whole {
                    t.by_key += 1;
                    *s = self.redactor.replace_whole(s);
                    true
                } else if let Some(new) = self.redactor.redact(s, &mut t.counts) {
                    *s = new;
                    true
                } else {
                    false
                }
            }
            // Under a key, a value that is not text goes too: the mask or hash of its text form.
            Some(any_value::Value::BoolValue(_))
            | Some(any_value::Value::IntValue(_))
            | Some(any_value::Value::DoubleValue(_))
            | Some(any_value::Value::BytesValue(_))
                if whole =>
            {
                let text = match v.value.take() {
                    Some(any_value::Value::BoolValue(b)) => b.to_string(),
                    Some(any_value::Value::IntValue(i)) => i.to_string(),
                    Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                    Some(any_value::Value::BytesValue(b)) => {
                        b.iter().map(|x| format!("{x:02x}")).collect()
                    }
                    _ => String::new(),
                };
                t.by_key += 1;
                v.value = Some(any_value::Value::StringValue(
                    self.redactor.replace_whole(&text),
                ));
                true
            }
            Some(any_value::Value::ArrayValue(a)) if depth < MAX_DEPTH => {
                let mut changed = false;
                for x in &mut a.values {
                    changed |= self.value(x, whole, depth + 1, t);
                }
                changed
            }
            Some(any_value::Value::KvlistValue(l)) if depth < MAX_DEPTH => {
                self.attrs_within(&mut l.values, whole, depth + 1, t)
            }
            _ => false,
        }
    }

    fn attrs_within(
        &self,
        attrs: &mut [KeyValue],
        whole: bool,
        depth: usize,
        t: &mut Tally,
    ) -> bool {
        let mut changed = false;
        for kv in attrs {
            let whole = whole || self.keys.contains(&kv.key.as_str());
            if let Some(v) = kv.value.as_mut() {
                changed |= self.value(v, whole, depth, t);
            }
        }
        changed
    }

    pub fn attrs(&self, attrs: &mut [KeyValue], t: &mut Tally) -> bool {
        self.attrs_within(attrs, false, 0, t)
    }

    pub fn traces(&self, req: &mut ExportTraceServiceRequest, t: &mut Tally) -> Expect {
        let mut e = Expect::default();
        for rs in &mut req.resource_spans {
            if let Some(r) = rs.resource.as_mut() {
                e.changed |= self.attrs(&mut r.attributes, t);
            }
            for ss in &mut rs.scope_spans {
                if let Some(s) = ss.scope.as_mut() {
                    e.changed |= self.attrs(&mut s.attributes, t);
                }
                for span in &mut ss.spans {
                    let mut changed = self.attrs(&mut span.attributes, t);
                    for ev in &mut span.events {
                        changed |= self.attrs(&mut ev.attributes, t);
                    }
                    for l in &mut span.links {
                        changed |= self.attrs(&mut l.attributes, t);
                    }
                    e.modified += u64::from(changed);
                }
            }
        }
        e.changed |= e.modified > 0;
        e
    }

    pub fn logs(&self, req: &mut ExportLogsServiceRequest, t: &mut Tally) -> Expect {
        let mut e = Expect::default();
        for rl in &mut req.resource_logs {
            if let Some(r) = rl.resource.as_mut() {
                e.changed |= self.attrs(&mut r.attributes, t);
            }
            for sl in &mut rl.scope_logs {
                if let Some(s) = sl.scope.as_mut() {
                    e.changed |= self.attrs(&mut s.attributes, t);
                }
                for rec in &mut sl.log_records {
                    let mut changed = self.attrs(&mut rec.attributes, t);
                    if self.bodies {
                        if let Some(b) = rec.body.as_mut() {
                            changed |= self.value(b, false, 0, t);
                        }
                    }
                    e.modified += u64::from(changed);
                }
            }
        }
        e.changed |= e.modified > 0;
        e
    }

    pub fn metrics(&self, req: &mut ExportMetricsServiceRequest, t: &mut Tally) -> Expect {
        let mut e = Expect::default();
        for rm in &mut req.resource_metrics {
            if let Some(r) = rm.resource.as_mut() {
                e.changed |= self.attrs(&mut r.attributes, t);
            }
            for sm in &mut rm.scope_metrics {
                if let Some(s) = sm.scope.as_mut() {
                    e.changed |= self.attrs(&mut s.attributes, t);
                }
                for m in &mut sm.metrics {
                    let Some(data) = m.data.as_mut() else {
                        continue;
                    };
                    let mut each = |attrs: &mut Vec<KeyValue>| {
                        e.modified += u64::from(self.attrs(attrs, t));
                    };
                    match data {
                        metric::Data::Gauge(g) => g
                            .data_points
                            .iter_mut()
                            .for_each(|p| each(&mut p.attributes)),
                        metric::Data::Sum(s) => s
                            .data_points
                            .iter_mut()
                            .for_each(|p| each(&mut p.attributes)),
                        metric::Data::Histogram(h) => h
                            .data_points
                            .iter_mut()
                            .for_each(|p| each(&mut p.attributes)),
                        metric::Data::ExponentialHistogram(h) => h
                            .data_points
                            .iter_mut()
                            .for_each(|p| each(&mut p.attributes)),
                        metric::Data::Summary(s) => s
                            .data_points
                            .iter_mut()
                            .for_each(|p| each(&mut p.attributes)),
                    }
                }
            }
        }
        e.changed |= e.modified > 0;
        e
    }
}

// ---------------------------------------------------------------------------------------------
// Sample

/// The sampler on a decoded traces request: the kernel's decision per span, its tracestate
/// written back.
pub fn sample_traces(req: &mut ExportTraceServiceRequest, s: &Sampler) -> Expect {
    let mut e = Expect::default();
    let mut out = String::new();
    let mut result = Vec::new();
    for mut rs in req.resource_spans.drain(..) {
        let had = !rs.scope_spans.is_empty();
        retain_counting(&mut rs.scope_spans, |ss| {
            let had = !ss.spans.is_empty();
            retain_counting(&mut ss.spans, |span| {
                out.clear();
                let d = s.sample_span(
                    SpanInput {
                        trace_id: &span.trace_id,
                        trace_state: &span.trace_state,
                        flags: span.flags,
                    },
                    &mut out,
                );
                if !d.keep {
                    e.dropped += 1;
                    return false;
                }
                if d.trace_state == TraceStateEdit::Rewritten {
                    span.trace_state = out.clone();
                    e.modified += 1;
                }
                true
            });
            !(had && ss.spans.is_empty())
        });
        if !(had && rs.scope_spans.is_empty()) {
            result.push(rs);
        }
    }
    req.resource_spans = result;
    e.changed = e.dropped > 0 || e.modified > 0;
    e
}

/// The sampler on a decoded logs request whose records all have a valid trace id (no draw).
pub fn sample_logs(req: &mut ExportLogsServiceRequest, s: &Sampler) -> Expect {
    let mut e = Expect::default();
    // Never drawn from: every record has its trace id.
    let mut rng = FastRng::from_seed(0);
    let mut result = Vec::new();
    for mut rl in req.resource_logs.drain(..) {
        let had = !rl.scope_logs.is_empty();
        retain_counting(&mut rl.scope_logs, |sl| {
            let had = !sl.log_records.is_empty();
            retain_counting(&mut sl.log_records, |r| {
                let keep = s.sample_log(&r.trace_id, &mut rng).keep;
                e.dropped += u64::from(!keep);
                keep
            });
            !(had && sl.log_records.is_empty())
        });
        if !(had && rl.scope_logs.is_empty()) {
            result.push(rl);
        }
    }
    req.resource_logs = result;
    e.changed = e.dropped > 0;
    e
}
