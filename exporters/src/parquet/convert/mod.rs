//! OTLP export requests (protobuf bytes) → Arrow record batches in the [schema](super::schema)
//! of their signal, one row per span, log record or metric data point.
//!
//! Traces and logs are read straight off the protobuf wire ([view]: borrowed `&str` / `&[u8]`
//! views, appended into the columnar builders as they are read; resource and scope parsed once
//! per resource / scope). Decoding into prost's owned structs first (a `String` per attribute
//! key and value) cost more than a third of the whole OTLP → Parquet path. Metrics still decode
//! with the `opentelemetry-proto` prost types.
//!
//! Never panics on input: a payload that is not a valid request (e.g. a string that is not
//! UTF-8, which the receiver's wire walker does not check) is a [`ConvertError::Decode`], and the
//! caller drops that batch. The wire-level readers refuse what prost refuses (see [view]); the
//! tests compare them with the prost-based converters they replaced ([oracle], test-only).

mod columns;
mod logs;
mod metrics;
#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests_equivalence;
#[cfg(test)]
mod tests_origin;
mod traces;
mod view;

use super::schema;
use arrow_array::builder::{FixedSizeBinaryBuilder, Int64Builder, TimestampNanosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{ArrowError, Fields, Schema};
pub(crate) use columns::AttrCols;
use columns::{SharedAttrCols, SharedText};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sonde_core::Signal;
use std::sync::Arc;
use view::{ResourceView, ScopeView};

/// Why a payload could not become rows.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot decode the {signal} request: {source}")]
    Decode { signal: Signal, source: DecodeError },
    /// A bug: the arrays built do not match the schema.
    #[error("cannot assemble the {signal} record batch: {source}")]
    Arrow { signal: Signal, source: ArrowError },
}

/// Why the bytes are not a request: from the wire-level reader (traces, logs; with the byte
/// offset) or from prost (metrics).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Wire(#[from] sonde_core::wire::WireError),
    #[error("{0}")]
    Prost(#[from] prost::DecodeError),
}

/// Decodes one encoded export request of `signal` and returns its rows.
pub fn convert(signal: Signal, payload: &[u8]) -> Result<RecordBatch, ConvertError> {
    match signal {
        Signal::Traces => traces::convert(payload),
        Signal::Metrics => metrics::convert(payload),
        Signal::Logs => logs::convert(payload),
    }
}

/// The rows in `signal`'s schema. A column may hold its documented type in another Arrow
/// encoding (attribute keys and the resource and scope columns are dictionaries, see
/// [`columns`]), so the batch's own schema names the types the columns have. The Parquet
/// writer, created with the documented schema, writes them as the documented types, and
/// refuses a column that is not an encoding of its documented type.
/// The columns of a table read straight off the wire (spans, log records): one row per item.
trait ItemRows {
    /// Appends the row of the item in `buf[range]`, of `resource` and `scope`.
    fn append(
        &mut self,
        buf: &[u8],
        resource: &ResourceView<'_>,
        scope: &ScopeView<'_>,
        range: (usize, usize),
    ) -> Result<(), sonde_core::wire::WireError>;

    /// The finished columns, in the table's order.
    fn finish(self) -> Result<Vec<ArrayRef>, ArrowError>;
}

/// Every item of the request `payload` of `signal` as a row of `rows`, then the record batch.
fn convert_items(
    signal: Signal,
    payload: &[u8],
    mut rows: impl ItemRows,
) -> Result<RecordBatch, ConvertError> {
    view::for_each_item(payload, |resource, scope, item| {
        rows.append(payload, resource, scope, item)
    })
    .map_err(|source| ConvertError::Decode {
        signal,
        source: DecodeError::Wire(source),
    })?;
    let columns = rows
        .finish()
        .map_err(|source| ConvertError::Arrow { signal, source })?;
    batch(signal, columns)
}

fn batch(signal: Signal, columns: Vec<ArrayRef>) -> Result<RecordBatch, ConvertError> {
    let documented = schema::schema(signal);
    let fields = with_types(documented.fields(), &columns);
    let schema = Schema::new_with_metadata(fields, documented.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns)
        .map_err(|source| ConvertError::Arrow { signal, source })
}

/// `fields` with the types of `columns`, which may be other encodings of them (see [`batch`]).
fn with_types(fields: &Fields, columns: &[ArrayRef]) -> Fields {
    fields
        .iter()
        .zip(columns)
        .map(|(f, c)| match f.data_type() == c.data_type() {
            true => f.clone(),
            false => Arc::new(f.as_ref().clone().with_data_type(c.data_type().clone())),
        })
        .collect()
}

/// An unset (zero) OTLP time is null; times past year 2262 saturate.
pub(crate) fn ts(t: u64) -> Option<i64> {
    (t != 0).then(|| t.min(i64::MAX as u64) as i64)
}

pub(crate) fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

pub(crate) fn ts_builder(cap: usize) -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::with_capacity(cap).with_timezone("UTC")
}

/// Appends an id of exactly `len` bytes, or null (empty or malformed).
pub(crate) fn append_id(b: &mut FixedSizeBinaryBuilder, id: &[u8], len: usize) {
    if id.len() != len || b.append_value(id).is_err() {
        b.append_null();
    }
}

/// The resource and scope of the rows being appended, and their positions in the request
/// (rows with the same positions share their resource and scope values).
#[derive(Clone, Copy, Default)]
pub(crate) struct Origin<'a> {
    pub resource_seq: usize,
    pub resource: Option<&'a Resource>,
    pub resource_schema_url: &'a str,
    pub scope_seq: usize,
    pub scope: Option<&'a InstrumentationScope>,
    pub scope_schema_url: &'a str,
    pub service_name: Option<&'a str>,
}

impl<'a> Origin<'a> {
    pub(crate) fn new(
        seq: usize,
        resource: Option<&'a Resource>,
        resource_schema_url: &'a str,
    ) -> Self {
        let service_name = resource.and_then(|r| {
            r.attributes.iter().find_map(|kv| {
                (kv.key == "service.name")
                    .then(|| kv.value.as_ref()?.value.as_ref())
                    .flatten()
                    .and_then(|v| match v {
                        any_value::Value::StringValue(s) => Some(s.as_str()),
                        _ => None,
                    })
            })
        });
        Origin {
            resource_seq: seq,
            resource,
            resource_schema_url,
            scope_seq: 0,
            scope: None,
            scope_schema_url: "",
            service_name,
        }
    }

    /// The scope at position `seq` among all the request's scopes.
    pub(crate) fn with_scope(
        self,
        seq: usize,
        scope: Option<&'a InstrumentationScope>,
        url: &'a str,
    ) -> Self {
        Origin {
            scope_seq: seq,
            scope,
            scope_schema_url: url,
            ..self
        }
    }
}

/// The resource and scope columns every table has. Their text columns are dictionaries
/// ([`columns`]): a resource's or scope's values are copied once, when its first row comes.
#[derive(Default)]
pub(crate) struct OriginCols {
    /// The positions of the resource and scope whose values the dictionaries' current keys
    /// hold.
    current: Option<(usize, usize)>,
    service_name: SharedText,
    resource_attrs: SharedAttrCols,
    resource_dropped: Int64Builder,
    resource_schema_url: SharedText,
    scope_name: SharedText,
    scope_version: SharedText,
    scope_attrs: SharedAttrCols,
    scope_dropped: Int64Builder,
    scope_schema_url: SharedText,
}

impl OriginCols {
    /// Whether the resource or the scope of this row differ from the last row's (then the
    /// caller sets the new values).
    fn changed(&mut self, resource: usize, scope: usize) -> (bool, bool) {
        let last = self.current.replace((resource, scope));
        (
            last.is_none_or(|(r, _)| r != resource),
            last.is_none_or(|(_, s)| s != scope),
        )
    }

    /// Appends the resource and scope columns of one row read off the wire.
    #[inline]
    pub(crate) fn append_view(&mut self, r: &ResourceView<'_>, s: &ScopeView<'_>) {
        let (new_resource, new_scope) = self.changed(r.seq, s.seq);
        if new_resource {
            self.service_name.set(r.service_name);
            self.resource_attrs.set_rendered(&r.attrs);
            self.resource_schema_url.set(non_empty(r.schema_url));
        }
        if new_scope {
            self.scope_name.set(non_empty(s.name));
            self.scope_version.set(non_empty(s.version));
            self.scope_attrs.set_rendered(&s.attrs);
            self.scope_schema_url.set(non_empty(s.schema_url));
        }
        self.service_name.append_current();
        self.resource_attrs.append_current();
        self.resource_dropped.append_value(i64::from(r.dropped));
        self.resource_schema_url.append_current();
        self.scope_name.append_current();
        self.scope_version.append_current();
        self.scope_attrs.append_current();
        self.scope_dropped.append_value(i64::from(s.dropped));
        self.scope_schema_url.append_current();
    }

    pub(crate) fn append(&mut self, o: &Origin<'_>) {
        let (new_resource, new_scope) = self.changed(o.resource_seq, o.scope_seq);
        let resource_attrs = o.resource.map_or(&[][..], |r| &r.attributes);
        let scope_attrs = o.scope.map_or(&[][..], |s| &s.attributes);
        if new_resource {
            self.service_name.set(o.service_name);
            self.resource_attrs.set(resource_attrs);
            self.resource_schema_url
                .set(non_empty(o.resource_schema_url));
        }
        if new_scope {
            self.scope_name
                .set(o.scope.and_then(|s| non_empty(&s.name)));
            self.scope_version
                .set(o.scope.and_then(|s| non_empty(&s.version)));
            self.scope_attrs.set(scope_attrs);
            self.scope_schema_url.set(non_empty(o.scope_schema_url));
        }
        self.service_name.append_current();
        self.resource_attrs.append_current();
        self.resource_dropped.append_value(
            o.resource
                .map_or(0, |r| i64::from(r.dropped_attributes_count)),
        );
        self.resource_schema_url.append_current();
        self.scope_name.append_current();
        self.scope_version.append_current();
        self.scope_attrs.append_current();
        self.scope_dropped
            .append_value(o.scope.map_or(0, |s| i64::from(s.dropped_attributes_count)));
        self.scope_schema_url.append_current();
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        self.current = None;
        out.push(self.service_name.finish()?);
        self.resource_attrs.finish(out)?;
        out.push(Arc::new(self.resource_dropped.finish()));
        out.push(self.resource_schema_url.finish()?);
        out.push(self.scope_name.finish()?);
        out.push(self.scope_version.finish()?);
        self.scope_attrs.finish(out)?;
        out.push(Arc::new(self.scope_dropped.finish()));
        out.push(self.scope_schema_url.finish()?);
        Ok(())
    }
}

/// A struct array from its fields and columns.
pub(crate) fn struct_array(fields: Fields, cols: Vec<ArrayRef>) -> Result<StructArray, ArrowError> {
    StructArray::try_new(with_types(&fields, &cols), cols, None)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as OTLP/JSON writes bytes.
pub(crate) fn base64_into(out: &mut impl std::fmt::Write, bytes: &[u8]) {
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| B64[((n >> shift) & 63) as usize] as char;
        let _ = out.write_char(sextet(18));
        let _ = out.write_char(sextet(12));
        let _ = out.write_char(if chunk.len() > 1 { sextet(6) } else { '=' });
        let _ = out.write_char(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    base64_into(&mut s, bytes);
    s
}

/// An OTLP value as plain JSON: strings, numbers, booleans, arrays and objects; bytes as base64
/// strings; a non-finite double as the string `"NaN"`, `"inf"` or `"-inf"`.
pub(crate) fn json_value(v: Option<&any_value::Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(J::Number)
            .unwrap_or_else(|| J::String(format!("{d:?}"))),
        Some(any_value::Value::BytesValue(b)) => J::String(base64(b)),
        Some(any_value::Value::StringValueStrindex(i)) => J::from(*i),
        Some(any_value::Value::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|v: &AnyValue| json_value(v.value.as_ref()))
                .collect(),
        ),
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        json_value(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

/// JSON text of an OTLP value, keeping the order of key-value lists.
pub(crate) fn json_text(v: &any_value::Value) -> String {
    let mut out = String::new();
    write_json(&mut out, Some(v));
    out
}

fn write_json(out: &mut String, v: Option<&any_value::Value>) {
    match v {
        Some(any_value::Value::ArrayValue(a)) => {
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, v.value.as_ref());
            }
            out.push(']');
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            out.push('{');
            for (i, kv) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(kv.key.clone()).to_string());
                out.push(':');
                write_json(out, kv.value.as_ref().and_then(|v| v.value.as_ref()));
            }
            out.push('}');
        }
        other => out.push_str(&json_value(other).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    }

    #[test]
    fn complex_values_become_json() {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValue, KeyValueList};
        let s = |x: &str| AnyValue {
            value: Some(any_value::Value::StringValue(x.into())),
        };
        let arr = any_value::Value::ArrayValue(ArrayValue {
            values: vec![
                s("a"),
                AnyValue {
                    value: Some(any_value::Value::IntValue(7)),
                },
                AnyValue {
                    value: Some(any_value::Value::DoubleValue(f64::NAN)),
                },
            ],
        });
        assert_eq!(json_text(&arr), r#"["a",7,"NaN"]"#);
        let kv = any_value::Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: Some(s("v")),
                ..Default::default()
            }],
        });
        assert_eq!(json_text(&kv), r#"{"k":"v"}"#);
    }
}
