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

mod logs;
mod metrics;
#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests_equivalence;
mod traces;
mod view;

use super::schema::{self, attr_value_type, map_entries};
use crate::wire::WireError;
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, FixedSizeBinaryBuilder, Float64Builder, Int64Builder,
    StringBuilder, TimestampNanosecondBuilder,
};
use arrow_array::{ArrayRef, MapArray, RecordBatch, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType, Fields};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use sonde_config::Signal;
use std::fmt::Write as _;
use std::sync::Arc;
use view::{KvView, RenderedKv, ResourceView, ScopeView, Typed};

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
    Wire(#[from] crate::wire::WireError),
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

fn batch(signal: Signal, columns: Vec<ArrayRef>) -> Result<RecordBatch, ConvertError> {
    RecordBatch::try_new(schema::schema(signal), columns)
        .map_err(|source| ConvertError::Arrow { signal, source })
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

/// A `map<string, V>` column built row by row.
pub(crate) struct MapCol<B> {
    offsets: Vec<i32>,
    keys: StringBuilder,
    values: B,
    value_type: DataType,
}

impl<B: ArrayBuilder> MapCol<B> {
    fn new(values: B, value_type: DataType) -> Self {
        MapCol {
            offsets: vec![0],
            keys: StringBuilder::new(),
            values,
            value_type,
        }
    }

    fn end_row(&mut self) {
        self.offsets.push(self.keys.len() as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let entries = map_entries(self.value_type.clone());
        let DataType::Struct(fields) = entries.data_type().clone() else {
            return Err(ArrowError::SchemaError(
                "map entries are not a struct".into(),
            ));
        };
        let keys = Arc::new(self.keys.finish()) as ArrayRef;
        let values = self.values.finish();
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let entries_array = StructArray::try_new(fields, vec![keys, values], None)?;
        Ok(Arc::new(MapArray::try_new(
            entries,
            OffsetBuffer::new(offsets.into()),
            entries_array,
            None,
            false,
        )?))
    }
}

/// The four map columns of an attribute set (see the schema module): every key as text, and
/// the integer, double and boolean keys typed.
pub(crate) struct AttrCols {
    text: MapCol<StringBuilder>,
    int: MapCol<Int64Builder>,
    double: MapCol<Float64Builder>,
    boolean: MapCol<BooleanBuilder>,
    /// Reused for the JSON of array and key-value-list values.
    scratch: Vec<u8>,
}

impl Default for AttrCols {
    fn default() -> Self {
        AttrCols {
            text: MapCol::new(StringBuilder::new(), attr_value_type(0)),
            int: MapCol::new(Int64Builder::new(), attr_value_type(1)),
            double: MapCol::new(Float64Builder::new(), attr_value_type(2)),
            boolean: MapCol::new(BooleanBuilder::new(), attr_value_type(3)),
            scratch: Vec::new(),
        }
    }
}

impl AttrCols {
    /// Adds one attribute read off the wire to the current row (finished by [`Self::end_row`]).
    #[inline]
    pub(crate) fn push(&mut self, buf: &[u8], kv: &KvView<'_>) -> Result<(), WireError> {
        self.text.keys.append_value(kv.key);
        let v = &mut self.text.values;
        if view::write_text(v, buf, &kv.value, kv.value_depth, &mut self.scratch)? {
            v.append_value("");
        } else {
            v.append_null();
        }
        self.push_typed(kv.key, Typed::of(&kv.value));
        Ok(())
    }

    #[inline]
    fn push_typed(&mut self, key: &str, typed: Typed) {
        match typed {
            Typed::None => {}
            Typed::Int(i) => {
                self.int.keys.append_value(key);
                self.int.values.append_value(i);
            }
            Typed::Double(d) => {
                self.double.keys.append_value(key);
                self.double.values.append_value(d);
            }
            Typed::Bool(b) => {
                self.boolean.keys.append_value(key);
                self.boolean.values.append_value(b);
            }
        }
    }

    /// Ends the current row of the four maps.
    #[inline]
    pub(crate) fn end_row(&mut self) {
        self.text.end_row();
        self.int.end_row();
        self.double.end_row();
        self.boolean.end_row();
    }

    /// Appends one row of attributes rendered beforehand (a resource's or scope's).
    #[inline]
    pub(crate) fn append_rendered(&mut self, kvs: &[RenderedKv<'_>]) {
        for kv in kvs {
            self.text.keys.append_value(kv.key);
            self.text.values.append_option(kv.text.as_deref());
            self.push_typed(kv.key, kv.typed);
        }
        self.end_row();
    }

    /// Appends one row holding `kvs`.
    pub(crate) fn append(&mut self, kvs: &[KeyValue]) {
        for kv in kvs {
            self.text.keys.append_value(&kv.key);
            let v = &mut self.text.values;
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                None => v.append_null(),
                Some(any_value::Value::StringValue(s)) => v.append_value(s),
                Some(any_value::Value::IntValue(i)) => {
                    let _ = write!(v, "{i}");
                    v.append_value("");
                    self.int.keys.append_value(&kv.key);
                    self.int.values.append_value(*i);
                }
                Some(any_value::Value::DoubleValue(d)) => {
                    let _ = write!(v, "{d:?}");
                    v.append_value("");
                    self.double.keys.append_value(&kv.key);
                    self.double.values.append_value(*d);
                }
                Some(any_value::Value::BoolValue(b)) => {
                    v.append_value(if *b { "true" } else { "false" });
                    self.boolean.keys.append_value(&kv.key);
                    self.boolean.values.append_value(*b);
                }
                Some(any_value::Value::BytesValue(b)) => {
                    base64_into(v, b);
                    v.append_value("");
                }
                Some(any_value::Value::StringValueStrindex(i)) => {
                    let _ = write!(v, "{i}");
                    v.append_value("");
                }
                Some(
                    other @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)),
                ) => {
                    v.append_value(json_text(other));
                }
            }
        }
        self.text.end_row();
        self.int.end_row();
        self.double.end_row();
        self.boolean.end_row();
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        out.push(self.text.finish()?);
        out.push(self.int.finish()?);
        out.push(self.double.finish()?);
        out.push(self.boolean.finish()?);
        Ok(())
    }
}

/// The resource and scope of the rows being appended.
#[derive(Clone, Copy, Default)]
pub(crate) struct Origin<'a> {
    pub resource: Option<&'a Resource>,
    pub resource_schema_url: &'a str,
    pub scope: Option<&'a InstrumentationScope>,
    pub scope_schema_url: &'a str,
    pub service_name: Option<&'a str>,
}

impl<'a> Origin<'a> {
    pub(crate) fn new(resource: Option<&'a Resource>, resource_schema_url: &'a str) -> Self {
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
            resource,
            resource_schema_url,
            scope: None,
            scope_schema_url: "",
            service_name,
        }
    }

    pub(crate) fn with_scope(self, scope: Option<&'a InstrumentationScope>, url: &'a str) -> Self {
        Origin {
            scope,
            scope_schema_url: url,
            ..self
        }
    }
}

/// The resource and scope columns every table has.
#[derive(Default)]
pub(crate) struct OriginCols {
    service_name: StringBuilder,
    resource_attrs: AttrCols,
    resource_dropped: Int64Builder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attrs: AttrCols,
    scope_dropped: Int64Builder,
    scope_schema_url: StringBuilder,
}

impl OriginCols {
    /// Appends the resource and scope columns of one row read off the wire.
    #[inline]
    pub(crate) fn append_view(&mut self, r: &ResourceView<'_>, s: &ScopeView<'_>) {
        self.service_name.append_option(r.service_name);
        self.resource_attrs.append_rendered(&r.attrs);
        self.resource_dropped.append_value(i64::from(r.dropped));
        self.resource_schema_url
            .append_option(non_empty(r.schema_url));
        self.scope_name.append_option(non_empty(s.name));
        self.scope_version.append_option(non_empty(s.version));
        self.scope_attrs.append_rendered(&s.attrs);
        self.scope_dropped.append_value(i64::from(s.dropped));
        self.scope_schema_url.append_option(non_empty(s.schema_url));
    }

    pub(crate) fn append(&mut self, o: &Origin<'_>) {
        self.service_name.append_option(o.service_name);
        match o.resource {
            Some(r) => {
                self.resource_attrs.append(&r.attributes);
                self.resource_dropped
                    .append_value(r.dropped_attributes_count as i64);
            }
            None => {
                self.resource_attrs.append(&[]);
                self.resource_dropped.append_value(0);
            }
        }
        self.resource_schema_url
            .append_option(non_empty(o.resource_schema_url));
        match o.scope {
            Some(s) => {
                self.scope_name.append_option(non_empty(&s.name));
                self.scope_version.append_option(non_empty(&s.version));
                self.scope_attrs.append(&s.attributes);
                self.scope_dropped
                    .append_value(s.dropped_attributes_count as i64);
            }
            None => {
                self.scope_name.append_null();
                self.scope_version.append_null();
                self.scope_attrs.append(&[]);
                self.scope_dropped.append_value(0);
            }
        }
        self.scope_schema_url
            .append_option(non_empty(o.scope_schema_url));
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        out.push(Arc::new(self.service_name.finish()));
        self.resource_attrs.finish(out)?;
        out.push(Arc::new(self.resource_dropped.finish()));
        out.push(Arc::new(self.resource_schema_url.finish()));
        out.push(Arc::new(self.scope_name.finish()));
        out.push(Arc::new(self.scope_version.finish()));
        self.scope_attrs.finish(out)?;
        out.push(Arc::new(self.scope_dropped.finish()));
        out.push(Arc::new(self.scope_schema_url.finish()));
        Ok(())
    }
}

/// A struct array from its fields and columns.
pub(crate) fn struct_array(fields: Fields, cols: Vec<ArrayRef>) -> Result<StructArray, ArrowError> {
    StructArray::try_new(fields, cols, None)
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
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
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
