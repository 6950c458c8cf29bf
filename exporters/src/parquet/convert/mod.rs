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
#[cfg(test)]
mod tests_origin;
mod traces;
mod view;

use super::schema::{self, attr_value_type, map_entries};
use crate::wire::WireError;
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, DictionaryArray, MapArray, RecordBatch, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema};
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

/// The rows in `signal`'s schema. A column may hold its documented type in another Arrow
/// encoding — the resource and scope columns are dictionaries ([`DictCol`]) — so the batch's
/// own schema names the types the columns have; the Parquet writer, created with the
/// documented schema, writes them as the documented types (and refuses a column that is not an
/// encoding of its documented type).
fn batch(signal: Signal, columns: Vec<ArrayRef>) -> Result<RecordBatch, ConvertError> {
    let documented = schema::schema(signal);
    let fields: Fields = documented
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| match f.data_type() == c.data_type() {
            true => f.clone(),
            false => Arc::new(f.as_ref().clone().with_data_type(c.data_type().clone())),
        })
        .collect();
    let schema = Schema::new_with_metadata(fields, documented.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns)
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

/// The typed maps of an attribute set: the integer, double and boolean keys with their values.
pub(crate) struct TypedMaps {
    int: MapCol<Int64Builder>,
    double: MapCol<Float64Builder>,
    boolean: MapCol<BooleanBuilder>,
}

impl Default for TypedMaps {
    fn default() -> Self {
        TypedMaps {
            int: MapCol::new(Int64Builder::new(), attr_value_type(1)),
            double: MapCol::new(Float64Builder::new(), attr_value_type(2)),
            boolean: MapCol::new(BooleanBuilder::new(), attr_value_type(3)),
        }
    }
}

impl TypedMaps {
    #[inline]
    fn push(&mut self, key: &str, typed: Typed) {
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

    #[inline]
    fn end_row(&mut self) {
        self.int.end_row();
        self.double.end_row();
        self.boolean.end_row();
    }

    fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        out.push(self.int.finish()?);
        out.push(self.double.finish()?);
        out.push(self.boolean.finish()?);
        Ok(())
    }
}

/// The four map columns of an attribute set (see the schema module): every key as text, and
/// the integer, double and boolean keys typed.
pub(crate) struct AttrCols {
    text: MapCol<StringBuilder>,
    typed: TypedMaps,
    /// Reused for the JSON of array and key-value-list values.
    scratch: Vec<u8>,
}

impl Default for AttrCols {
    fn default() -> Self {
        AttrCols {
            text: MapCol::new(StringBuilder::new(), attr_value_type(0)),
            typed: TypedMaps::default(),
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
        self.typed.push(kv.key, Typed::of(&kv.value));
        Ok(())
    }

    /// Ends the current row of the four maps.
    #[inline]
    pub(crate) fn end_row(&mut self) {
        self.text.end_row();
        self.typed.end_row();
    }

    /// Appends one row holding `kvs`.
    pub(crate) fn append(&mut self, kvs: &[KeyValue]) {
        for kv in kvs {
            self.text.keys.append_value(&kv.key);
            let typed = append_text(&mut self.text.values, value_of(kv));
            self.typed.push(&kv.key, typed);
        }
        self.end_row();
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        out.push(self.text.finish()?);
        self.typed.finish(out)
    }
}

fn value_of(kv: &KeyValue) -> Option<&any_value::Value> {
    kv.value.as_ref().and_then(|v| v.value.as_ref())
}

/// Appends the text form of a decoded OTLP value to `v` (null when there is none) and returns
/// its typed copy.
fn append_text(v: &mut StringBuilder, value: Option<&any_value::Value>) -> Typed {
    match value {
        None => {
            v.append_null();
            return Typed::None;
        }
        Some(any_value::Value::StringValue(s)) => v.append_value(s),
        Some(any_value::Value::IntValue(i)) => {
            let _ = write!(v, "{i}");
            v.append_value("");
            return Typed::Int(*i);
        }
        Some(any_value::Value::DoubleValue(d)) => {
            let _ = write!(v, "{d:?}");
            v.append_value("");
            return Typed::Double(*d);
        }
        Some(any_value::Value::BoolValue(b)) => {
            v.append_value(if *b { "true" } else { "false" });
            return Typed::Bool(*b);
        }
        Some(any_value::Value::BytesValue(b)) => {
            base64_into(v, b);
            v.append_value("");
        }
        Some(any_value::Value::StringValueStrindex(i)) => {
            let _ = write!(v, "{i}");
            v.append_value("");
        }
        Some(other @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_))) => {
            v.append_value(json_text(other));
        }
    }
    Typed::None
}

/// A text column whose rows repeat a few values — a resource's or a scope's, one set per
/// resource or scope of the request — built as an Arrow dictionary: each value is copied once
/// (by [`Self::set`]), each row appends only a key. parquet (≥ 60.2) interns a dictionary's
/// values once per batch instead of once per row, and writes the column as plain `Utf8`.
#[derive(Default)]
pub(crate) struct DictCol {
    keys: Int32Builder,
    values: StringBuilder,
    /// The key of the value the next rows take.
    current: Option<i32>,
}

impl DictCol {
    /// Adds `v` to the dictionary and returns its key.
    fn add(&mut self, v: &str) -> i32 {
        self.values.append_value(v);
        self.last_key()
    }

    /// The key of the value added last.
    fn last_key(&self) -> i32 {
        self.values.len() as i32 - 1
    }

    /// The value of the rows from now on (`None`: null).
    fn set(&mut self, v: Option<&str>) {
        self.current = v.map(|v| self.add(v));
    }

    fn append_current(&mut self) {
        self.keys.append_option(self.current);
    }

    fn data_type() -> DataType {
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        self.current = None;
        let values = Arc::new(self.values.finish());
        Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
            self.keys.finish(),
            values,
        )?))
    }
}

/// The text map of a resource's or scope's attributes, the same entries on every row below it:
/// keys and values as [`DictCol`]s.
pub(crate) struct DictMapCol {
    offsets: Vec<i32>,
    keys: DictCol,
    values: DictCol,
    /// The dictionary keys of the current resource's or scope's entries.
    current: Vec<(i32, Option<i32>)>,
}

impl Default for DictMapCol {
    fn default() -> Self {
        DictMapCol {
            offsets: vec![0],
            keys: DictCol::default(),
            values: DictCol::default(),
            current: Vec::new(),
        }
    }
}

impl DictMapCol {
    /// Starts the entries of the rows from now on.
    fn clear(&mut self) {
        self.current.clear();
    }

    /// Adds an entry to the rows from now on, its value text already appended to the values'
    /// dictionary by `value` (which says whether it appended one).
    fn push(&mut self, key: &str, value: impl FnOnce(&mut StringBuilder) -> bool) {
        let k = self.keys.add(key);
        let v = value(&mut self.values.values).then(|| self.values.last_key());
        self.current.push((k, v));
    }

    fn append_current(&mut self) {
        for &(k, v) in &self.current {
            self.keys.keys.append_value(k);
            self.values.keys.append_option(v);
        }
        self.offsets.push(self.keys.keys.len() as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        self.current.clear();
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let entries = Fields::from(vec![
            Field::new("key", DictCol::data_type(), false),
            Field::new("value", DictCol::data_type(), true),
        ]);
        let field = Arc::new(Field::new(
            "key_value",
            DataType::Struct(entries.clone()),
            false,
        ));
        let entries = StructArray::try_new(
            entries,
            vec![self.keys.finish()?, self.values.finish()?],
            None,
        )?;
        Ok(Arc::new(MapArray::try_new(
            field,
            OffsetBuffer::new(offsets.into()),
            entries,
            None,
            false,
        )?))
    }
}

/// The four attribute maps of a resource or scope: the text map as a [`DictMapCol`], the typed
/// maps (rare for resources and scopes) appended row by row.
#[derive(Default)]
pub(crate) struct SharedAttrCols {
    text: DictMapCol,
    typed: TypedMaps,
}

impl SharedAttrCols {
    /// The attributes of the rows from now on, rendered off the wire.
    fn set_rendered(&mut self, kvs: &[RenderedKv<'_>]) {
        self.text.clear();
        for kv in kvs {
            self.text.push(kv.key, |v| match kv.text.as_deref() {
                Some(t) => {
                    v.append_value(t);
                    true
                }
                None => false,
            });
        }
    }

    /// The attributes of the rows from now on, decoded by prost.
    fn set(&mut self, kvs: &[KeyValue]) {
        self.text.clear();
        for kv in kvs {
            self.text.push(&kv.key, |v| match value_of(kv) {
                Some(value) => {
                    append_text(v, Some(value));
                    true
                }
                None => false,
            });
        }
    }

    /// Appends a row: the current text entries and the typed copies of `typed`.
    fn append_row(&mut self, typed: impl Iterator<Item = (impl AsRef<str>, Typed)>) {
        self.text.append_current();
        for (key, t) in typed {
            self.typed.push(key.as_ref(), t);
        }
        self.typed.end_row();
    }

    fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        out.push(self.text.finish()?);
        self.typed.finish(out)
    }
}

/// The typed copies of decoded attributes.
fn typed(kvs: &[KeyValue]) -> impl Iterator<Item = (&str, Typed)> {
    kvs.iter()
        .map(|kv| (kv.key.as_str(), typed_of(value_of(kv))))
}

/// The typed copy of a decoded value, without its text.
fn typed_of(value: Option<&any_value::Value>) -> Typed {
    match value {
        Some(any_value::Value::IntValue(i)) => Typed::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => Typed::Double(*d),
        Some(any_value::Value::BoolValue(b)) => Typed::Bool(*b),
        _ => Typed::None,
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
/// ([`DictCol`]): a resource's or scope's values are copied once, when its first row comes.
#[derive(Default)]
pub(crate) struct OriginCols {
    /// The positions of the resource and scope whose values the dictionaries' current keys
    /// hold.
    current: Option<(usize, usize)>,
    service_name: DictCol,
    resource_attrs: SharedAttrCols,
    resource_dropped: Int64Builder,
    resource_schema_url: DictCol,
    scope_name: DictCol,
    scope_version: DictCol,
    scope_attrs: SharedAttrCols,
    scope_dropped: Int64Builder,
    scope_schema_url: DictCol,
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
        self.resource_attrs
            .append_row(r.attrs.iter().map(|kv| (kv.key, kv.typed)));
        self.resource_dropped.append_value(i64::from(r.dropped));
        self.resource_schema_url.append_current();
        self.scope_name.append_current();
        self.scope_version.append_current();
        self.scope_attrs
            .append_row(s.attrs.iter().map(|kv| (kv.key, kv.typed)));
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
        self.resource_attrs.append_row(typed(resource_attrs));
        self.resource_dropped.append_value(
            o.resource
                .map_or(0, |r| i64::from(r.dropped_attributes_count)),
        );
        self.resource_schema_url.append_current();
        self.scope_name.append_current();
        self.scope_version.append_current();
        self.scope_attrs.append_row(typed(scope_attrs));
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
