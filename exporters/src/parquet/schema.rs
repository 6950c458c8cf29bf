//! The Arrow schemas of the three tables (spans, logs, metric data points), versioned, with a
//! description of every column. The converters build their arrays from the same field
//! constructors, so a batch always matches its schema; `sonde schema <signal>` and the README
//! print [`describe`].
//!
//! Conventions that hold in every table:
//! - Times are `timestamp[ns, UTC]`; an unset OTLP time (0) is null.
//! - Ids are fixed-size binary (16 bytes for trace ids, 8 for span ids); an empty id is null.
//! - Counts and flags are `int64` (no unsigned types: several engines cannot read them).
//! - An attribute set is four `map<string, …>` columns: `<set>` holds every key with its value
//!   as text (strings as they are, numbers and booleans in their usual text form, bytes as
//!   base64, arrays and key-value lists as JSON), and `<set>_int`, `<set>_double`, `<set>_bool`
//!   hold the keys whose value has that type, typed. So `attributes['http.route']` works for
//!   every key and `attributes_int['http.response.status_code'] >= 500` compares numbers.
//!
//! Changing a column's name, type or meaning bumps [`SCHEMA_VERSION`]; adding a column at the end
//! does too.

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use sonde_core::Signal;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The version of the three schemas, written into every file's key-value metadata as
/// [`META_SCHEMA_VERSION`].
pub const SCHEMA_VERSION: u32 = 1;
/// File metadata key holding [`SCHEMA_VERSION`].
pub const META_SCHEMA_VERSION: &str = "sonde.schema.version";
/// File metadata key holding the signal (`traces`, `metrics`, `logs`).
pub const META_SIGNAL: &str = "sonde.signal";
/// File metadata key holding the file's identity (also in its object name).
pub const META_FILE_ID: &str = "sonde.file.id";
/// File metadata key holding the `{host}` of the writer.
pub const META_HOST: &str = "sonde.host";
/// File metadata key holding the agent version that wrote the file.
pub const META_WRITER: &str = "sonde.writer";

pub(crate) fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

fn f(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

/// The entries field of a `map<string, value>` column.
pub(crate) fn map_entries(value: DataType) -> FieldRef {
    Arc::new(f(
        "key_value",
        DataType::Struct(Fields::from(vec![
            f("key", DataType::Utf8, false),
            f("value", value, true),
        ])),
        false,
    ))
}

pub(crate) fn map_type(value: DataType) -> DataType {
    DataType::Map(map_entries(value), false)
}

/// The value types of an attribute set's four maps, in column order.
pub(crate) const ATTR_SUFFIXES: [&str; 4] = ["", "_int", "_double", "_bool"];

pub(crate) fn attr_value_type(i: usize) -> DataType {
    match i {
        0 => DataType::Utf8,
        1 => DataType::Int64,
        2 => DataType::Float64,
        _ => DataType::Boolean,
    }
}

/// The four columns of an attribute set named `name`.
pub(crate) fn attr_fields(name: &str) -> Vec<Field> {
    ATTR_SUFFIXES
        .iter()
        .enumerate()
        .map(|(i, s)| f(&format!("{name}{s}"), map_type(attr_value_type(i)), false))
        .collect()
}

fn fsb(name: &str, n: i32) -> Field {
    f(name, DataType::FixedSizeBinary(n), true)
}

/// Resource and scope columns, shared by the three tables (after the signal's own leading ones).
fn resource_scope_fields() -> Vec<Field> {
    let mut v = vec![f("service_name", DataType::Utf8, true)];
    v.extend(attr_fields("resource_attributes"));
    v.push(f(
        "resource_dropped_attributes_count",
        DataType::Int64,
        false,
    ));
    v.push(f("resource_schema_url", DataType::Utf8, true));
    v.push(f("scope_name", DataType::Utf8, true));
    v.push(f("scope_version", DataType::Utf8, true));
    v.extend(attr_fields("scope_attributes"));
    v.push(f("scope_dropped_attributes_count", DataType::Int64, false));
    v.push(f("scope_schema_url", DataType::Utf8, true));
    v
}

/// The struct fields of one span event.
pub(crate) fn event_fields() -> Fields {
    let mut v = vec![f("time", ts_type(), true), f("name", DataType::Utf8, false)];
    v.extend(attr_fields("attributes"));
    v.push(f("dropped_attributes_count", DataType::Int64, false));
    Fields::from(v)
}

/// The struct fields of one span link.
pub(crate) fn link_fields() -> Fields {
    let mut v = vec![
        fsb("trace_id", 16),
        fsb("span_id", 8),
        f("trace_state", DataType::Utf8, true),
        f("flags", DataType::Int64, false),
    ];
    v.extend(attr_fields("attributes"));
    v.push(f("dropped_attributes_count", DataType::Int64, false));
    Fields::from(v)
}

/// The struct fields of one exemplar.
pub(crate) fn exemplar_fields() -> Fields {
    let mut v = vec![
        f("time", ts_type(), true),
        f("value_int", DataType::Int64, true),
        f("value_double", DataType::Float64, true),
        fsb("trace_id", 16),
        fsb("span_id", 8),
    ];
    v.extend(attr_fields("filtered_attributes"));
    Fields::from(v)
}

/// The struct fields of one summary quantile.
pub(crate) fn quantile_fields() -> Fields {
    Fields::from(vec![
        f("quantile", DataType::Float64, false),
        f("value", DataType::Float64, false),
    ])
}

pub(crate) fn list_item(dt: DataType) -> FieldRef {
    Arc::new(f("item", dt, false))
}

pub(crate) fn list_of(dt: DataType) -> DataType {
    DataType::List(list_item(dt))
}

fn spans() -> Schema {
    let mut v = vec![
        fsb("trace_id", 16),
        fsb("span_id", 8),
        fsb("parent_span_id", 8),
        f("trace_state", DataType::Utf8, true),
        f("flags", DataType::Int64, false),
        f("name", DataType::Utf8, false),
        f("kind", DataType::Utf8, false),
        f("start_time", ts_type(), true),
        f("end_time", ts_type(), true),
        f("duration_ns", DataType::Int64, true),
        f("status_code", DataType::Utf8, false),
        f("status_message", DataType::Utf8, true),
    ];
    v.extend(resource_scope_fields());
    v.extend(attr_fields("attributes"));
    v.push(f("dropped_attributes_count", DataType::Int64, false));
    v.push(f(
        "events",
        list_of(DataType::Struct(event_fields())),
        false,
    ));
    v.push(f("dropped_events_count", DataType::Int64, false));
    v.push(f("links", list_of(DataType::Struct(link_fields())), false));
    v.push(f("dropped_links_count", DataType::Int64, false));
    Schema::new(v)
}

fn logs() -> Schema {
    let mut v = vec![
        f("time", ts_type(), true),
        f("observed_time", ts_type(), true),
        f("severity_number", DataType::Int32, false),
        f("severity_text", DataType::Utf8, true),
        f("body", DataType::Utf8, true),
        f("body_type", DataType::Utf8, true),
        f("event_name", DataType::Utf8, true),
        fsb("trace_id", 16),
        fsb("span_id", 8),
        f("flags", DataType::Int64, false),
    ];
    v.extend(resource_scope_fields());
    v.extend(attr_fields("attributes"));
    v.push(f("dropped_attributes_count", DataType::Int64, false));
    Schema::new(v)
}

fn metrics() -> Schema {
    let mut v = vec![
        f("metric_name", DataType::Utf8, false),
        f("metric_description", DataType::Utf8, true),
        f("metric_unit", DataType::Utf8, true),
        f("metric_type", DataType::Utf8, false),
        f("temporality", DataType::Utf8, true),
        f("is_monotonic", DataType::Boolean, true),
        f("time", ts_type(), true),
        f("start_time", ts_type(), true),
        f("value_int", DataType::Int64, true),
        f("value_double", DataType::Float64, true),
        f("count", DataType::Int64, true),
        f("sum", DataType::Float64, true),
        f("min", DataType::Float64, true),
        f("max", DataType::Float64, true),
        f("bucket_counts", list_of(DataType::Int64), true),
        f("explicit_bounds", list_of(DataType::Float64), true),
        f("exp_scale", DataType::Int32, true),
        f("exp_zero_count", DataType::Int64, true),
        f("exp_zero_threshold", DataType::Float64, true),
        f("exp_positive_offset", DataType::Int32, true),
        f("exp_positive_bucket_counts", list_of(DataType::Int64), true),
        f("exp_negative_offset", DataType::Int32, true),
        f("exp_negative_bucket_counts", list_of(DataType::Int64), true),
        f(
            "quantiles",
            list_of(DataType::Struct(quantile_fields())),
            true,
        ),
        f("flags", DataType::Int64, false),
        f(
            "exemplars",
            list_of(DataType::Struct(exemplar_fields())),
            false,
        ),
    ];
    v.extend(resource_scope_fields());
    v.extend(attr_fields("attributes"));
    v.extend(attr_fields("metric_metadata"));
    Schema::new(v)
}

/// The schema of a signal's table (built once).
pub fn schema(signal: Signal) -> SchemaRef {
    static S: OnceLock<[SchemaRef; 3]> = OnceLock::new();
    let all = S.get_or_init(|| {
        let meta = |s: Signal| {
            HashMap::from([
                (META_SCHEMA_VERSION.to_string(), SCHEMA_VERSION.to_string()),
                (META_SIGNAL.to_string(), s.as_str().to_string()),
            ])
        };
        [
            Arc::new(spans().with_metadata(meta(Signal::Traces))),
            Arc::new(metrics().with_metadata(meta(Signal::Metrics))),
            Arc::new(logs().with_metadata(meta(Signal::Logs))),
        ]
    });
    match signal {
        Signal::Traces => all[0].clone(),
        Signal::Metrics => all[1].clone(),
        Signal::Logs => all[2].clone(),
    }
}

/// What a column holds, for `sonde schema` and the README. Attribute-set columns are described
/// once by their base name.
fn doc(signal: Signal, parent: &str, column: &str) -> &'static str {
    if let Some(typed) = ATTR_SUFFIXES[1..].iter().find(|s| {
        column.ends_with(*s) && column.contains("attributes")
            || column.starts_with("metric_metadata") && column.ends_with(*s)
    }) {
        return match *typed {
            "_int" => "the set's integer-valued keys, typed",
            "_double" => "the set's double-valued keys, typed",
            _ => "the set's boolean-valued keys, typed",
        };
    }
    match (parent, column) {
        ("events", "name") => return "event name",
        ("events", "time") => return "event time (UTC, ns); null when unset",
        ("links", "flags") => return "link flags (W3C trace flags in the low 8 bits)",
        ("exemplars", "time") => return "exemplar time (UTC, ns); null when unset",
        ("exemplars", "value_int") => return "exemplar value, when recorded as an integer",
        ("exemplars", "value_double") => return "exemplar value, when recorded as a double",
        _ => {}
    }
    let base = column;
    match (signal, base) {
        (_, "trace_id") => "trace id, 16 bytes (`lower(hex(trace_id))` in DuckDB); null when empty",
        (_, "span_id") => "span id, 8 bytes; null when empty",
        (_, "parent_span_id") => "parent span id, 8 bytes; null for a root span",
        (_, "trace_state") => "W3C tracestate; null when empty",
        (Signal::Traces, "flags") => "span flags (W3C trace flags in the low 8 bits)",
        (Signal::Logs, "flags") => "log record flags (W3C trace flags in the low 8 bits)",
        (Signal::Metrics, "flags") => "data point flags (1 = no recorded value)",
        (Signal::Traces, "name") => "span name",
        (_, "name") => "event name",
        (_, "kind") => "unspecified | internal | server | client | producer | consumer",
        (_, "start_time") => "start time (UTC, ns); null when unset",
        (_, "end_time") => "end time (UTC, ns); null when unset",
        (_, "duration_ns") => "end_time - start_time in ns; null when either is unset",
        (_, "status_code") => "unset | ok | error",
        (_, "status_message") => "status message; null when empty",
        (_, "service_name") => "the resource's service.name, promoted to a column",
        (_, "resource_attributes") => "resource attributes (attribute set, see above)",
        (_, "resource_dropped_attributes_count") => "resource attributes dropped at the source",
        (_, "resource_schema_url") => "schema URL of the resource; null when empty",
        (_, "scope_name") => "instrumentation scope name; null when empty",
        (_, "scope_version") => "instrumentation scope version; null when empty",
        (_, "scope_attributes") => "instrumentation scope attributes (attribute set)",
        (_, "scope_dropped_attributes_count") => "scope attributes dropped at the source",
        (_, "scope_schema_url") => "schema URL of the scope; null when empty",
        (_, "attributes") => {
            "attributes (attribute set: text map of every key, typed maps per type)"
        }
        (_, "filtered_attributes") => "attributes filtered out of the exemplar's measurement",
        (_, "metric_metadata") => "the metric's metadata key-values (attribute set)",
        (_, "dropped_attributes_count") => "attributes dropped at the source",
        (_, "events") => "span events",
        (_, "dropped_events_count") => "events dropped at the source",
        (_, "links") => "span links",
        (_, "dropped_links_count") => "links dropped at the source",
        (Signal::Logs, "time") => "event time (UTC, ns); null when unset",
        (Signal::Metrics, "time") => "data point time (UTC, ns); null when unset",
        (_, "time") => "time (UTC, ns); null when unset",
        (_, "observed_time") => "time the record was observed (UTC, ns); null when unset",
        (_, "severity_number") => "OTLP severity number (0 unspecified, 1–4 trace … 21–24 fatal)",
        (_, "severity_text") => "severity text as sent; null when empty",
        (_, "body") => "body: a string as is; any other value as JSON text (see body_type)",
        (_, "body_type") => {
            "string | int | double | bool | bytes | array | kvlist; null without body"
        }
        (_, "event_name") => "event name; null when empty",
        (_, "metric_name") => "metric name",
        (_, "metric_description") => "metric description; null when empty",
        (_, "metric_unit") => "metric unit (UCUM); null when empty",
        (_, "metric_type") => "gauge | sum | histogram | exponential_histogram | summary",
        (_, "temporality") => "delta | cumulative | unspecified (sums and histograms); else null",
        (_, "is_monotonic") => "sums: whether the sum only grows; else null",
        (_, "value_int") => "integer value (gauge and sum points recorded as int)",
        (_, "value_double") => "floating-point value (gauge and sum points recorded as double)",
        (_, "count") => "histograms and summaries: number of measurements",
        (_, "sum") => "histograms and summaries: sum of measurements; null when not recorded",
        (_, "min") => "histograms: smallest measurement; null when not recorded",
        (_, "max") => "histograms: largest measurement; null when not recorded",
        (_, "bucket_counts") => "histograms: count per bucket (one more than explicit_bounds)",
        (_, "explicit_bounds") => "histograms: bucket upper bounds",
        (_, "exp_scale") => "exponential histograms: scale",
        (_, "exp_zero_count") => "exponential histograms: count in the zero bucket",
        (_, "exp_zero_threshold") => "exponential histograms: width of the zero bucket",
        (_, "exp_positive_offset") => "exponential histograms: index of the first positive bucket",
        (_, "exp_positive_bucket_counts") => "exponential histograms: positive bucket counts",
        (_, "exp_negative_offset") => "exponential histograms: index of the first negative bucket",
        (_, "exp_negative_bucket_counts") => "exponential histograms: negative bucket counts",
        (_, "quantiles") => "summaries: (quantile, value) pairs",
        (_, "quantile") => "quantile in [0, 1]",
        (_, "value") => "value at the quantile",
        (_, "exemplars") => "exemplars of the data point",
        _ => "",
    }
}

/// A human-readable name for an Arrow type.
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 => "string".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "bool".into(),
        DataType::FixedSizeBinary(n) => format!("fixed_size_binary[{n}]"),
        DataType::Timestamp(TimeUnit::Nanosecond, Some(tz)) => format!("timestamp[ns, {tz}]"),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{}, {}>",
                type_name(kv[0].data_type()),
                type_name(kv[1].data_type())
            ),
            other => format!("map<{other}>"),
        },
        DataType::List(item) => match item.data_type() {
            DataType::Struct(_) => "list<struct>".into(),
            other => format!("list<{}>", type_name(other)),
        },
        other => other.to_string(),
    }
}

/// One line per column (and per field of a nested struct): name, type, nullability, meaning.
pub fn describe(signal: Signal) -> String {
    let schema = schema(signal);
    let table = match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "metric data points",
        Signal::Logs => "log records",
    };
    let mut out = format!(
        "# Sonde Parquet schema for {signal} (one row per {}), version {SCHEMA_VERSION}\n\
         # file metadata: {META_SCHEMA_VERSION} = \"{SCHEMA_VERSION}\", {META_SIGNAL} = \"{signal}\"\n",
        table.trim_end_matches('s')
    );
    let mut rows = Vec::new();
    fn walk(
        signal: Signal,
        parent: &str,
        prefix: &str,
        fields: &Fields,
        rows: &mut Vec<[String; 4]>,
    ) {
        for field in fields {
            let name = format!("{prefix}{}", field.name());
            rows.push([
                name.clone(),
                type_name(field.data_type()),
                if field.is_nullable() {
                    "null"
                } else {
                    "not null"
                }
                .to_string(),
                doc(signal, parent, field.name()).to_string(),
            ]);
            if let DataType::List(item) = field.data_type() {
                if let DataType::Struct(children) = item.data_type() {
                    walk(signal, field.name(), &format!("{name}[]."), children, rows);
                }
            }
        }
    }
    walk(signal, "", "", schema.fields(), &mut rows);
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0);
    for r in rows {
        let line = format!("{:w0$}  {:w1$}  {:8}  {}", r[0], r[1], r[2], r[3]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_described() {
        for s in Signal::ALL {
            let text = describe(s);
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let cols: Vec<&str> = line.split("  ").filter(|c| !c.is_empty()).collect();
                assert!(cols.len() >= 4, "{s}: undocumented column: {line}");
            }
        }
    }

    #[test]
    fn schemas_carry_their_version() {
        for s in Signal::ALL {
            let schema = schema(s);
            assert_eq!(
                schema
                    .metadata()
                    .get(META_SCHEMA_VERSION)
                    .map(String::as_str),
                Some("1")
            );
            assert_eq!(
                schema.metadata().get(META_SIGNAL).map(String::as_str),
                Some(s.as_str())
            );
        }
    }

    #[test]
    fn attribute_sets_are_maps_by_type() {
        let s = schema(Signal::Traces);
        let t = s.field_with_name("attributes").unwrap().data_type();
        assert_eq!(type_name(t), "map<string, string>");
        let t = s
            .field_with_name("resource_attributes_int")
            .unwrap()
            .data_type();
        assert_eq!(type_name(t), "map<string, int64>");
    }
}
