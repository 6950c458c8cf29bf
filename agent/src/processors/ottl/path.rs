//! Paths: the telemetry fields a condition reads, and which of them exist in each context.
//!
//! Owns [`Context`], [`Path`] (a resolved, context-checked field reference that an
//! [`super::Item`] answers) and the per-context path tables. Resolution happens once, at
//! parse time; it must never be repeated per item.

use std::fmt;

/// The kind of item a condition is evaluated against (the OTTL context), as in the
/// Collector's filter processor configuration keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// `traces.span`: a span.
    Span,
    /// `traces.spanevent`: an event of a span (the span is reachable as `span.*`).
    SpanEvent,
    /// `logs.log_record`: a log record.
    Log,
    /// `metrics.metric`: a metric (name, type, …) as a whole.
    Metric,
    /// `metrics.datapoint`: one data point (the metric is reachable as `metric.*`).
    DataPoint,
}

impl Context {
    /// The OTTL name of the context, also accepted as a path prefix (`span.name`).
    pub fn name(self) -> &'static str {
        match self {
            Context::Span => "span",
            Context::SpanEvent => "spanevent",
            Context::Log => "log",
            Context::Metric => "metric",
            Context::DataPoint => "datapoint",
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whose field a path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The item itself (the span, the event, the log record, the metric, the data point).
    Item,
    /// The resource the item belongs to (`resource.*`).
    Resource,
    /// The instrumentation scope the item belongs to (`instrumentation_scope.*`).
    Scope,
    /// The span that holds the event (`span.*` in the span event context).
    ParentSpan,
    /// The metric that holds the data point (`metric.*` in the data point context).
    ParentMetric,
}

/// A field of a subject. Which fields exist depends on the subject and the context; see
/// [`Context`] and the table in the module documentation of [`super`].
///
/// Values an [`super::Item`] must answer, by field:
/// - ints (`Value::Int`): `Kind`, `StatusCode`, `SeverityNumber`, `Flags`, every `*TimeUnixNano`,
///   every `Dropped*Count`, `Type`, `AggregationTemporality`, `ValueInt`, `Count`, `Scale`,
///   `ZeroCount`, `EventIndex`;
/// - doubles: `ValueDouble`, `Sum`;
/// - bools: `IsMonotonic`, and `AnyDatapointAttribute` (see there);
/// - strings: `Name`, `Version`, `StatusMessage`, `SeverityText`, `TraceState` (whole header),
///   `Description`, `Unit`;
/// - bytes: `TraceId`, `SpanId`, `ParentSpanId` (empty when unset);
/// - the attribute value, `Map` or `Nil` for `Attributes` (with or without keys), the body
///   value for `Body`, the entry's value or `Nil` for `TraceState` with a key.
///
/// Fields not set on the wire answer their protobuf default (0, "", empty bytes), except
/// `Attributes[...]`, `Body` and `TraceState[...]`, which answer `Nil` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Version,
    Kind,
    StatusCode,
    StatusMessage,
    TraceId,
    SpanId,
    ParentSpanId,
    TraceState,
    Flags,
    StartTimeUnixNano,
    EndTimeUnixNano,
    TimeUnixNano,
    ObservedTimeUnixNano,
    SeverityNumber,
    SeverityText,
    Body,
    Attributes,
    DroppedAttributesCount,
    DroppedEventsCount,
    DroppedLinksCount,
    EventIndex,
    Description,
    Unit,
    Type,
    AggregationTemporality,
    IsMonotonic,
    ValueInt,
    ValueDouble,
    Count,
    Sum,
    Scale,
    ZeroCount,
    /// Metric context only, behind `HasAttrKeyOnDatapoint(key)` (keys = `[key]`) and
    /// `HasAttrOnDatapoint(key, value)` (keys = `[key, value]`): the item answers
    /// `Value::Bool(true)` when any data point of the metric has an attribute `key` (whose
    /// value is the string `value`, when given; a value that is not a string compares as `""`,
    /// as in the Collector), else `Value::Bool(false)`.
    AnyDatapointAttribute,
}

/// An index into a map (`["key"]`) or a slice (`[0]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Str(Box<str>),
    Int(i64),
}

/// A resolved path: `subject.field[key]…`. Created by the parser, answered by an
/// [`super::Item`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    pub subject: Subject,
    pub field: Field,
    /// Indexes applied in order (`attributes["a"]["b"]` has two). Empty for most fields.
    pub keys: Box<[Key]>,
}

/// How a field may be indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexing {
    /// No `[…]` allowed.
    None,
    /// Any number of `["k"]` / `[0]` (maps and nested values).
    Nested,
    /// At most one string key (`trace_state["k"]`).
    OneStr,
}

/// One path spelling: the dotted name after the subject prefix.
struct Spelling {
    name: &'static str,
    field: Field,
    indexing: Indexing,
    /// `true` for `*.string` spellings, which read the id as lowercase hex.
    hex: bool,
}

const fn plain(name: &'static str, field: Field) -> Spelling {
    Spelling {
        name,
        field,
        indexing: Indexing::None,
        hex: false,
    }
}
const fn nested(name: &'static str, field: Field) -> Spelling {
    Spelling {
        name,
        field,
        indexing: Indexing::Nested,
        hex: false,
    }
}
const fn hex(name: &'static str, field: Field) -> Spelling {
    Spelling {
        name,
        field,
        indexing: Indexing::None,
        hex: true,
    }
}

const SPAN_FIELDS: &[Spelling] = &[
    plain("trace_id", Field::TraceId),
    hex("trace_id.string", Field::TraceId),
    plain("span_id", Field::SpanId),
    hex("span_id.string", Field::SpanId),
    plain("parent_span_id", Field::ParentSpanId),
    hex("parent_span_id.string", Field::ParentSpanId),
    Spelling {
        name: "trace_state",
        field: Field::TraceState,
        indexing: Indexing::OneStr,
        hex: false,
    },
    plain("name", Field::Name),
    plain("kind", Field::Kind),
    plain("flags", Field::Flags),
    plain("start_time_unix_nano", Field::StartTimeUnixNano),
    plain("end_time_unix_nano", Field::EndTimeUnixNano),
    nested("attributes", Field::Attributes),
    plain("dropped_attributes_count", Field::DroppedAttributesCount),
    plain("dropped_events_count", Field::DroppedEventsCount),
    plain("dropped_links_count", Field::DroppedLinksCount),
    plain("status.code", Field::StatusCode),
    plain("status.message", Field::StatusMessage),
];

const SPAN_EVENT_FIELDS: &[Spelling] = &[
    plain("name", Field::Name),
    plain("time_unix_nano", Field::TimeUnixNano),
    nested("attributes", Field::Attributes),
    plain("dropped_attributes_count", Field::DroppedAttributesCount),
    plain("event_index", Field::EventIndex),
];

const LOG_FIELDS: &[Spelling] = &[
    plain("time_unix_nano", Field::TimeUnixNano),
    plain("observed_time_unix_nano", Field::ObservedTimeUnixNano),
    plain("severity_number", Field::SeverityNumber),
    plain("severity_text", Field::SeverityText),
    nested("body", Field::Body),
    nested("attributes", Field::Attributes),
    plain("dropped_attributes_count", Field::DroppedAttributesCount),
    plain("flags", Field::Flags),
    plain("trace_id", Field::TraceId),
    hex("trace_id.string", Field::TraceId),
    plain("span_id", Field::SpanId),
    hex("span_id.string", Field::SpanId),
];

const METRIC_FIELDS: &[Spelling] = &[
    plain("name", Field::Name),
    plain("description", Field::Description),
    plain("unit", Field::Unit),
    plain("type", Field::Type),
    plain("aggregation_temporality", Field::AggregationTemporality),
    plain("is_monotonic", Field::IsMonotonic),
];

const DATA_POINT_FIELDS: &[Spelling] = &[
    nested("attributes", Field::Attributes),
    plain("start_time_unix_nano", Field::StartTimeUnixNano),
    plain("time_unix_nano", Field::TimeUnixNano),
    plain("value_double", Field::ValueDouble),
    plain("value_int", Field::ValueInt),
    plain("flags", Field::Flags),
    plain("count", Field::Count),
    plain("sum", Field::Sum),
    plain("scale", Field::Scale),
    plain("zero_count", Field::ZeroCount),
];

const RESOURCE_FIELDS: &[Spelling] = &[
    nested("attributes", Field::Attributes),
    plain("dropped_attributes_count", Field::DroppedAttributesCount),
];

const SCOPE_FIELDS: &[Spelling] = &[
    plain("name", Field::Name),
    plain("version", Field::Version),
    nested("attributes", Field::Attributes),
    plain("dropped_attributes_count", Field::DroppedAttributesCount),
];

fn item_fields(context: Context) -> &'static [Spelling] {
    match context {
        Context::Span => SPAN_FIELDS,
        Context::SpanEvent => SPAN_EVENT_FIELDS,
        Context::Log => LOG_FIELDS,
        Context::Metric => METRIC_FIELDS,
        Context::DataPoint => DATA_POINT_FIELDS,
    }
}

/// The prefixes accepted in a context, with the subject and field table each selects.
fn prefixes(context: Context) -> Vec<(&'static str, Subject, &'static [Spelling])> {
    let mut out = vec![
        ("resource", Subject::Resource, RESOURCE_FIELDS),
        ("instrumentation_scope", Subject::Scope, SCOPE_FIELDS),
    ];
    match context {
        Context::SpanEvent => {
            out.push(("spanevent", Subject::Item, SPAN_EVENT_FIELDS));
            out.push(("span", Subject::ParentSpan, SPAN_FIELDS));
        }
        Context::DataPoint => {
            out.push(("datapoint", Subject::Item, DATA_POINT_FIELDS));
            out.push(("metric", Subject::ParentMetric, METRIC_FIELDS));
        }
        other => out.push((other.name(), Subject::Item, item_fields(other))),
    }
    out
}

/// A path the parser accepted, before its keys are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Resolved {
    pub subject: Subject,
    pub field: Field,
    /// Read as lowercase hex (`trace_id.string`).
    pub hex: bool,
    pub nested_keys: bool,
    pub one_str_key: bool,
}

/// Resolves a dotted name (`resource.attributes`, `status.code`) in a context.
pub(super) fn resolve(context: Context, dotted: &str) -> Option<Resolved> {
    let found = |subject: Subject, table: &'static [Spelling], rest: &str| {
        table.iter().find(|s| s.name == rest).map(|s| Resolved {
            subject,
            field: s.field,
            hex: s.hex,
            nested_keys: s.indexing == Indexing::Nested,
            one_str_key: s.indexing == Indexing::OneStr,
        })
    };
    if let Some(hit) = found(Subject::Item, item_fields(context), dotted) {
        return Some(hit);
    }
    let (head, rest) = dotted.split_once('.')?;
    prefixes(context)
        .into_iter()
        .filter(|(prefix, _, _)| *prefix == head)
        .find_map(|(_, subject, table)| found(subject, table, rest))
}

/// Every path spelling accepted in a context, for error messages and documentation.
pub fn spellings(context: Context) -> Vec<String> {
    let mut out: Vec<String> = item_fields(context)
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    for (prefix, subject, table) in prefixes(context) {
        if subject == Subject::Item {
            continue; // the own-context prefix repeats the item's fields
        }
        out.extend(table.iter().map(|s| format!("{prefix}.{}", s.name)));
    }
    out
}

/// The canonical OTTL spelling of a path in a context (used by `Display`).
pub(super) fn spelling(context: Context, subject: Subject, field: Field, hex: bool) -> String {
    let name_in = |table: &[Spelling]| {
        table
            .iter()
            .find(|s| s.field == field && s.hex == hex)
            .map(|s| s.name)
            .unwrap_or("?")
    };
    match subject {
        Subject::Item => name_in(item_fields(context)).to_string(),
        Subject::Resource => format!("resource.{}", name_in(RESOURCE_FIELDS)),
        Subject::Scope => format!("instrumentation_scope.{}", name_in(SCOPE_FIELDS)),
        Subject::ParentSpan => format!("span.{}", name_in(SPAN_FIELDS)),
        Subject::ParentMetric => format!("metric.{}", name_in(METRIC_FIELDS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_fields_resolve_with_and_without_context_prefix() {
        let plain = resolve(Context::Span, "name");
        let prefixed = resolve(Context::Span, "span.name");
        assert_eq!(plain, prefixed);
        assert_eq!(
            plain.map(|r| (r.subject, r.field)),
            Some((Subject::Item, Field::Name))
        );
        assert_eq!(
            resolve(Context::Log, "log.severity_number").map(|r| r.field),
            Some(Field::SeverityNumber)
        );
    }

    #[test]
    fn parent_subjects_resolve_only_in_their_child_context() {
        let r = resolve(Context::SpanEvent, "span.name");
        assert_eq!(r.map(|r| r.subject), Some(Subject::ParentSpan));
        let r = resolve(Context::DataPoint, "metric.type");
        assert_eq!(
            r.map(|r| (r.subject, r.field)),
            Some((Subject::ParentMetric, Field::Type))
        );
        // In the metric context `metric.` is the item's own prefix.
        let r = resolve(Context::Metric, "metric.type");
        assert_eq!(r.map(|r| r.subject), Some(Subject::Item));
        assert_eq!(resolve(Context::Log, "span.name"), None);
        assert_eq!(resolve(Context::Span, "metric.name"), None);
    }

    #[test]
    fn fields_of_other_contexts_are_unknown() {
        assert_eq!(resolve(Context::Span, "body"), None);
        assert_eq!(resolve(Context::Log, "kind"), None);
        assert_eq!(resolve(Context::DataPoint, "name"), None);
        assert_eq!(resolve(Context::Metric, "value_int"), None);
        assert_eq!(resolve(Context::Span, "resource.name"), None);
    }

    #[test]
    fn hex_spellings_are_marked() {
        let r = resolve(Context::Span, "trace_id.string");
        assert_eq!(r.map(|r| (r.field, r.hex)), Some((Field::TraceId, true)));
        assert_eq!(
            spelling(Context::Span, Subject::Item, Field::TraceId, true),
            "trace_id.string"
        );
    }

    #[test]
    fn every_listed_spelling_resolves_and_prints_back() {
        for context in [
            Context::Span,
            Context::SpanEvent,
            Context::Log,
            Context::Metric,
            Context::DataPoint,
        ] {
            for name in spellings(context) {
                let r = resolve(context, &name);
                let Some(r) = r else {
                    panic!("{name} does not resolve in {context}")
                };
                assert_eq!(
                    spelling(context, r.subject, r.field, r.hex),
                    name,
                    "{context}"
                );
            }
        }
    }
}
