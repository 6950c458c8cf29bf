//! The resource and scope columns, checked without [`super::OriginCols`] (which the wire-level
//! and the prost-based converters share, so the equivalence tests cannot catch its mistakes):
//! rows written to Parquet with the documented schema and read back must carry, row by row, the
//! values of their own resource and scope, for requests whose resources and scopes change,
//! repeat and are missing. Also checks that the dictionaries these columns are built as come
//! back as the documented types.

use super::convert;
use crate::parquet::schema;
use crate::parquet::testdata::{kv, s};
use arrow_array::{Array, ArrayRef, Int64Array, MapArray, RecordBatch, StringArray};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use prost::Message;
use sonde_core::Signal;

type Entries = Vec<(String, Option<String>)>;

/// What one row's resource and scope columns must hold.
#[derive(Debug, PartialEq, Clone)]
struct Expected {
    service: Option<String>,
    resource_attrs: Entries,
    resource_ints: Vec<(String, i64)>,
    resource_url: Option<String>,
    scope_name: Option<String>,
    scope_version: Option<String>,
    scope_attrs: Entries,
    scope_url: Option<String>,
}

fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(Value::IntValue(i)),
    }
}

/// Three resources (one missing, one with a null value and an integer), each with a missing
/// scope and a full one, in an order where a resource's values come back after another's.
/// A resource, its schema URL, and its scopes with theirs.
type Origin = (
    Option<Resource>,
    String,
    Vec<(Option<InstrumentationScope>, String)>,
);

fn origins() -> Vec<Origin> {
    let resource = |attrs: Vec<KeyValue>| Resource {
        attributes: attrs,
        ..Default::default()
    };
    let scope = |name: &str, attrs: Vec<KeyValue>| InstrumentationScope {
        name: name.into(),
        version: format!("{name}-1.0"),
        attributes: attrs,
        dropped_attributes_count: 0,
    };
    let scopes = |n: &str| {
        vec![
            (None, String::new()),
            (
                Some(scope(n, vec![kv("lib", s(n))])),
                format!("https://s/{n}"),
            ),
        ]
    };
    vec![
        (
            Some(resource(vec![
                kv("service.name", s("a")),
                kv("pid", int(7)),
            ])),
            "https://r/a".into(),
            scopes("x"),
        ),
        (None, String::new(), scopes("y")),
        (
            Some(resource(vec![
                kv("service.name", s("c")),
                KeyValue {
                    key: "empty".into(),
                    value: None,
                    ..Default::default()
                },
                kv("host.name", s("h")),
            ])),
            String::new(),
            scopes("x"),
        ),
    ]
}

fn text(v: &AnyValue) -> Option<String> {
    match v.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        other => panic!("not used here: {other:?}"),
    }
}

fn expected(
    resource: &Option<Resource>,
    url: &str,
    scope: &Option<InstrumentationScope>,
    scope_url: &str,
) -> Expected {
    let attrs = resource.as_ref().map_or(&[][..], |r| &r.attributes);
    let entries = |kvs: &[KeyValue]| -> Entries {
        kvs.iter()
            .map(|kv| (kv.key.clone(), kv.value.as_ref().and_then(text)))
            .collect()
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Expected {
        service: attrs
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?)),
        resource_attrs: entries(attrs),
        resource_ints: attrs
            .iter()
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::IntValue(i) => Some((kv.key.clone(), *i)),
                _ => None,
            })
            .collect(),
        resource_url: some(url),
        scope_name: scope.as_ref().and_then(|s| some(&s.name)),
        scope_version: scope.as_ref().and_then(|s| some(&s.version)),
        scope_attrs: entries(scope.as_ref().map_or(&[][..], |s| &s.attributes)),
        scope_url: some(scope_url),
    }
}

/// [`origins`] as a request's resource-level messages: `scope` makes a scope-level message (with
/// two items), `resource` a resource-level one around its scopes.
fn levels<S, R>(
    scope: impl Fn(Option<InstrumentationScope>, String) -> S,
    resource: impl Fn(Option<Resource>, String, Vec<S>) -> R,
) -> Vec<R> {
    origins()
        .into_iter()
        .map(|(r, url, scopes)| {
            let scopes = scopes.into_iter().map(|(s, su)| scope(s, su)).collect();
            resource(r, url, scopes)
        })
        .collect()
}

/// The request of `signal` with two items per scope, and what each row must hold.
fn request(signal: Signal) -> (Vec<u8>, Vec<Expected>) {
    let want = origins()
        .iter()
        .flat_map(|(r, u, scopes)| {
            scopes.iter().flat_map(move |(s, su)| {
                let e = expected(r, u, s, su);
                [e.clone(), e]
            })
        })
        .collect();
    let bytes = match signal {
        Signal::Traces => ExportTraceServiceRequest {
            resource_spans: levels(
                |scope, schema_url| ScopeSpans {
                    scope,
                    spans: vec![Span::default(); 2],
                    schema_url,
                },
                |resource, schema_url, scope_spans| ResourceSpans {
                    resource,
                    scope_spans,
                    schema_url,
                },
            ),
        }
        .encode_to_vec(),
        Signal::Logs => ExportLogsServiceRequest {
            resource_logs: levels(
                |scope, schema_url| ScopeLogs {
                    scope,
                    log_records: vec![LogRecord::default(); 2],
                    schema_url,
                },
                |resource, schema_url, scope_logs| ResourceLogs {
                    resource,
                    scope_logs,
                    schema_url,
                },
            ),
        }
        .encode_to_vec(),
        Signal::Metrics => ExportMetricsServiceRequest {
            resource_metrics: levels(
                |scope, schema_url| ScopeMetrics {
                    scope,
                    metrics: vec![Metric {
                        name: "m".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint::default(); 2],
                        })),
                        ..Default::default()
                    }],
                    schema_url,
                },
                |resource, schema_url, scope_metrics| ResourceMetrics {
                    resource,
                    scope_metrics,
                    schema_url,
                },
            ),
        }
        .encode_to_vec(),
    };
    (bytes, want)
}

/// Converts, writes with the documented schema, and reads the file back.
fn through_parquet(signal: Signal, bytes: &[u8]) -> RecordBatch {
    let rows = convert(signal, bytes).expect("converts");
    let mut w = ArrowWriter::try_new(Vec::new(), schema::schema(signal), None).expect("writer");
    w.write(&rows).expect("writes");
    let file = bytes::Bytes::from(w.into_inner().expect("closes"));
    let mut reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("reads")
        .build()
        .expect("reader");
    let batch = reader.next().expect("a batch").expect("decodes");
    assert!(reader.next().is_none());
    batch
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "{name} has type {}",
                b.schema().field_with_name(name).unwrap().data_type()
            )
        })
}

fn text_at(b: &RecordBatch, name: &str, row: usize) -> Option<String> {
    let c = col::<StringArray>(b, name);
    c.is_valid(row).then(|| c.value(row).to_string())
}

fn map_at<V: 'static>(
    b: &RecordBatch,
    name: &str,
    row: usize,
    value: impl Fn(&V, usize) -> Option<String>,
) -> Entries {
    let entries = col::<MapArray>(b, name).value(row);
    let keys = entries
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("string keys");
    let values = entries
        .column(1)
        .as_any()
        .downcast_ref::<V>()
        .expect("value type");
    (0..entries.len())
        .map(|i| (keys.value(i).to_string(), value(values, i)))
        .collect()
}

#[test]
fn every_row_keeps_its_own_resource_and_scope_and_the_documented_types() {
    for signal in [Signal::Traces, Signal::Logs, Signal::Metrics] {
        let (bytes, want) = request(signal);
        let b = through_parquet(signal, &bytes);
        let documented = schema::schema(signal);
        assert_eq!(
            b.schema().fields(),
            documented.fields(),
            "{signal}: types read back"
        );
        assert_eq!(b.num_rows(), want.len(), "{signal}");
        let strings = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        for (row, want) in want.iter().enumerate() {
            let got = Expected {
                service: text_at(&b, "service_name", row),
                resource_attrs: map_at(&b, "resource_attributes", row, strings),
                resource_ints: map_at(&b, "resource_attributes_int", row, |a: &Int64Array, i| {
                    Some(a.value(i).to_string())
                })
                .into_iter()
                .map(|(k, v)| (k, v.and_then(|v| v.parse().ok()).unwrap_or_default()))
                .collect(),
                resource_url: text_at(&b, "resource_schema_url", row),
                scope_name: text_at(&b, "scope_name", row),
                scope_version: text_at(&b, "scope_version", row),
                scope_attrs: map_at(&b, "scope_attributes", row, strings),
                scope_url: text_at(&b, "scope_schema_url", row),
            };
            assert_eq!(&got, want, "{signal} row {row}");
        }
    }
}

/// The in-memory encodings are what the writer is given; a column that is not an encoding of
/// its documented type must be refused there, not written.
#[test]
fn the_writer_refuses_a_column_that_is_not_its_documented_type() {
    let rows = convert(Signal::Logs, &request(Signal::Logs).0).expect("converts");
    let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
    let i = rows.schema().index_of("service_name").expect("column");
    columns[i] = std::sync::Arc::new(Int64Array::from(vec![1; rows.num_rows()]));
    let fields: Vec<_> = rows
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
        .collect();
    let wrong = RecordBatch::try_new(
        std::sync::Arc::new(arrow_schema::Schema::new(fields)),
        columns,
    )
    .expect("a batch");
    let mut w =
        ArrowWriter::try_new(Vec::new(), schema::schema(Signal::Logs), None).expect("writer");
    assert!(w.write(&wrong).is_err());
}
