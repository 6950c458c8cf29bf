//! Builders of the text and attribute columns whose values repeat from row to row: attribute
//! keys, and everything that comes from a row's resource and scope.
//!
//! They are built as Arrow dictionaries (`Dictionary(Int32, Utf8)`): a value is copied once and
//! each row appends only its key. The Parquet writer is created with the documented schema
//! (plain `Utf8` keys and values) and writes a dictionary column as that type, so the files do
//! not change; and since parquet 60.2 it interns each value of a dictionary once per batch
//! instead of once per row (`DictEncoder::encode_dictionary`). Interning every string of every
//! row took about a sixth of the Parquet path's time (BENCHMARKS.md, "Parquet exporter").

use super::view::{self, KvView, RawKey, RenderedKv, Typed};
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, DictionaryArray, MapArray, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{ArrowError, DataType, Field, Fields};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use sonde_core::wire::WireError;
use std::fmt::Write as _;
use std::sync::Arc;

/// A `map` column from its offsets and the keys and values of its entries (the entry field
/// types are the arrays' own).
fn map_array(offsets: Vec<i32>, keys: ArrayRef, values: ArrayRef) -> Result<ArrayRef, ArrowError> {
    let entries = Fields::from(vec![
        Field::new("key", keys.data_type().clone(), false),
        Field::new("value", values.data_type().clone(), true),
    ]);
    let field = Arc::new(Field::new(
        "key_value",
        DataType::Struct(entries.clone()),
        false,
    ));
    let entries = StructArray::try_new(entries, vec![keys, values], None)?;
    Ok(Arc::new(MapArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        entries,
        None,
        false,
    )?))
}

fn dictionary(keys: &mut Int32Builder, values: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
        keys.finish(),
        values.clone(),
    )?))
}

/// Text values as a dictionary: [`Self::add`] copies a value in, and rows refer to it by key.
#[derive(Default)]
struct Dict {
    values: StringBuilder,
}

impl Dict {
    /// Adds `v` and returns its key. Keys stay far below `i32::MAX`: a payload of `n` bytes
    /// holds fewer than `n / 2` values (each takes at least a tag and a length on the wire), and
    /// payloads are bounded by the receiver's and the batcher's byte limits (MiBs, not GiBs).
    fn add(&mut self, v: &str) -> i32 {
        self.values.append_value(v);
        self.last_key()
    }

    /// The key of the value added last.
    fn last_key(&self) -> i32 {
        self.values.len() as i32 - 1
    }

    #[inline]
    fn value(&self, key: i32) -> &[u8] {
        let offsets = self.values.offsets_slice();
        let k = key as usize;
        &self.values.values_slice()[offsets[k] as usize..offsets[k + 1] as usize]
    }

    fn finish(&mut self) -> ArrayRef {
        Arc::new(self.values.finish())
    }
}

/// The keys of an attribute map. The items of a request mostly carry the same keys in the same
/// order (one instrumentation, one set of attributes), so the key at position `i` of a row is
/// compared with the key at position `i` of the row before, then with that row's other keys;
/// a key found there costs a comparison and a dictionary key instead of a copy. A key not found
/// is added again: an Arrow dictionary may repeat a value (the Parquet dictionary still holds it
/// once), and at worst (every row's keys new or reordered) this is the work of a plain column.
#[derive(Default)]
struct KeyDict {
    keys: Int32Builder,
    dict: Dict,
    /// The dictionary keys of the previous row's entries, and of the current row's.
    last_row: Vec<i32>,
    row: Vec<i32>,
}

impl KeyDict {
    /// How many of the previous row's keys a key out of its position is compared with.
    const SCAN: usize = 32;

    /// Appends `k` as the next entry of the current row and returns its dictionary key.
    #[inline]
    fn append(&mut self, k: &str) -> i32 {
        let key = match self.find(k.as_bytes()) {
            Some(key) => key,
            None => self.dict.add(k),
        };
        self.push(key)
    }

    /// [`Self::append`] for a key read off the wire: its UTF-8 is checked only when it is not
    /// one of the previous row's keys (those were checked when they were added).
    #[inline]
    fn append_raw(&mut self, k: RawKey<'_>) -> Result<i32, WireError> {
        let key = match self.find(k.bytes) {
            Some(key) => key,
            None => self.dict.add(k.str()?),
        };
        Ok(self.push(key))
    }

    /// The dictionary key of `k` if the previous row has it: at the current position, or among
    /// its first [`Self::SCAN`] keys.
    #[inline]
    fn find(&self, k: &[u8]) -> Option<i32> {
        let same = |key: &&i32| self.dict.value(**key) == k;
        let pos = self.row.len();
        self.last_row
            .get(pos)
            .filter(same)
            .or_else(|| self.last_row.iter().take(Self::SCAN).find(same))
            .copied()
    }

    #[inline]
    fn push(&mut self, key: i32) -> i32 {
        self.keys.append_value(key);
        self.row.push(key);
        key
    }

    /// Ends the current row. A row without attributes leaves the one before it as the row the
    /// next keys are compared with.
    #[inline]
    fn end_row(&mut self) {
        if !self.row.is_empty() {
            std::mem::swap(&mut self.last_row, &mut self.row);
            self.row.clear();
        }
    }

    /// The keys column and the dictionary's values (which the typed maps' keys share).
    fn finish(&mut self) -> Result<(ArrayRef, ArrayRef), ArrowError> {
        self.last_row.clear();
        self.row.clear();
        let values = self.dict.finish();
        Ok((dictionary(&mut self.keys, &values)?, values))
    }
}

/// A typed map: keys as dictionary keys into its attribute set's key dictionary.
struct TypedMap<B> {
    offsets: Vec<i32>,
    keys: Int32Builder,
    values: B,
}

impl<B: ArrayBuilder + Default> Default for TypedMap<B> {
    fn default() -> Self {
        TypedMap {
            offsets: vec![0],
            keys: Int32Builder::new(),
            values: B::default(),
        }
    }
}

impl<B: ArrayBuilder> TypedMap<B> {
    #[inline]
    fn end_row(&mut self) {
        self.offsets.push(self.keys.len() as i32);
    }

    fn finish(&mut self, key_values: &ArrayRef) -> Result<ArrayRef, ArrowError> {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let keys = dictionary(&mut self.keys, key_values)?;
        map_array(offsets, keys, self.values.finish())
    }
}

/// The typed maps of an attribute set: the integer, double and boolean keys with their values.
#[derive(Default)]
struct TypedMaps {
    int: TypedMap<Int64Builder>,
    double: TypedMap<Float64Builder>,
    boolean: TypedMap<BooleanBuilder>,
}

impl TypedMaps {
    /// Adds the typed copy of the attribute whose key is `key` in the key dictionary.
    #[inline]
    fn push(&mut self, key: i32, typed: Typed) {
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

    fn finish(&mut self, out: &mut Vec<ArrayRef>, key_values: &ArrayRef) -> Result<(), ArrowError> {
        out.push(self.int.finish(key_values)?);
        out.push(self.double.finish(key_values)?);
        out.push(self.boolean.finish(key_values)?);
        Ok(())
    }
}

/// The four map columns of an item's attribute set (see the schema module): every key with its
/// value as text, and the integer, double and boolean keys typed.
pub(crate) struct AttrCols {
    offsets: Vec<i32>,
    keys: KeyDict,
    values: StringBuilder,
    typed: TypedMaps,
    /// Reused for the JSON of array and key-value-list values.
    scratch: Vec<u8>,
}

impl Default for AttrCols {
    fn default() -> Self {
        AttrCols {
            offsets: vec![0],
            keys: KeyDict::default(),
            values: StringBuilder::new(),
            typed: TypedMaps::default(),
            scratch: Vec::new(),
        }
    }
}

impl AttrCols {
    /// Adds one attribute read off the wire to the current row (finished by [`Self::end_row`]).
    #[inline]
    pub(crate) fn push(&mut self, buf: &[u8], kv: &KvView<'_>) -> Result<(), WireError> {
        let key = self.keys.append_raw(kv.key)?;
        let v = &mut self.values;
        if view::write_text(v, buf, &kv.value, kv.value_depth, &mut self.scratch)? {
            v.append_value("");
        } else {
            v.append_null();
        }
        self.typed.push(key, Typed::of(&kv.value));
        Ok(())
    }

    /// Ends the current row of the four maps.
    #[inline]
    pub(crate) fn end_row(&mut self) {
        self.keys.end_row();
        self.offsets.push(self.keys.keys.len() as i32);
        self.typed.end_row();
    }

    /// Appends one row holding `kvs`.
    pub(crate) fn append(&mut self, kvs: &[KeyValue]) {
        for kv in kvs {
            let key = self.keys.append(&kv.key);
            let typed = append_text(&mut self.values, value_of(kv));
            self.typed.push(key, typed);
        }
        self.end_row();
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let (keys, key_values) = self.keys.finish()?;
        out.push(map_array(offsets, keys, Arc::new(self.values.finish()))?);
        self.typed.finish(out, &key_values)
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
            super::base64_into(v, b);
            v.append_value("");
        }
        Some(any_value::Value::StringValueStrindex(i)) => {
            let _ = write!(v, "{i}");
            v.append_value("");
        }
        Some(other @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_))) => {
            v.append_value(super::json_text(other));
        }
    }
    Typed::None
}

/// A text column that takes one value per resource or scope: [`Self::set`] when a new one
/// starts, [`Self::append_current`] for each row.
#[derive(Default)]
pub(crate) struct SharedText {
    keys: Int32Builder,
    dict: Dict,
    /// The key of the rows' value from now on (`None`: null).
    current: Option<i32>,
}

impl SharedText {
    /// The value of the rows from now on (`None`: null).
    pub(crate) fn set(&mut self, v: Option<&str>) {
        self.current = v.map(|v| self.dict.add(v));
    }

    #[inline]
    pub(crate) fn append_current(&mut self) {
        self.keys.append_option(self.current);
    }

    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        self.current = None;
        let values = self.dict.finish();
        dictionary(&mut self.keys, &values)
    }
}

/// The four attribute maps of a resource or a scope, the same entries on every row below it:
/// [`Self::set`] (or [`Self::set_rendered`]) copies them in when a new one starts,
/// [`Self::append_current`] appends them as keys for each row.
pub(crate) struct SharedAttrCols {
    offsets: Vec<i32>,
    keys: Int32Builder,
    key_dict: Dict,
    values: Int32Builder,
    value_dict: Dict,
    typed: TypedMaps,
    /// The current entries: key, value (`None`: null) and typed copy.
    current: Vec<(i32, Option<i32>, Typed)>,
}

impl Default for SharedAttrCols {
    fn default() -> Self {
        SharedAttrCols {
            offsets: vec![0],
            keys: Int32Builder::new(),
            key_dict: Dict::default(),
            values: Int32Builder::new(),
            value_dict: Dict::default(),
            typed: TypedMaps::default(),
            current: Vec::new(),
        }
    }
}

impl SharedAttrCols {
    /// The attributes of the rows from now on, rendered off the wire.
    pub(crate) fn set_rendered(&mut self, kvs: &[RenderedKv<'_>]) {
        self.current.clear();
        for kv in kvs {
            let key = self.key_dict.add(kv.key);
            let value = kv.text.as_deref().map(|t| self.value_dict.add(t));
            self.current.push((key, value, kv.typed));
        }
    }

    /// The attributes of the rows from now on, decoded by prost.
    pub(crate) fn set(&mut self, kvs: &[KeyValue]) {
        self.current.clear();
        for kv in kvs {
            let key = self.key_dict.add(&kv.key);
            let (value, typed) = match value_of(kv) {
                None => (None, Typed::None),
                v => {
                    let typed = append_text(&mut self.value_dict.values, v);
                    (Some(self.value_dict.last_key()), typed)
                }
            };
            self.current.push((key, value, typed));
        }
    }

    /// Appends a row holding the current entries.
    #[inline]
    pub(crate) fn append_current(&mut self) {
        for &(key, value, typed) in &self.current {
            self.keys.append_value(key);
            self.values.append_option(value);
            self.typed.push(key, typed);
        }
        self.offsets.push(self.keys.len() as i32);
        self.typed.end_row();
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        self.current.clear();
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let key_values = self.key_dict.finish();
        let keys = dictionary(&mut self.keys, &key_values)?;
        let values = dictionary(&mut self.values, &self.value_dict.finish())?;
        out.push(map_array(offsets, keys, values)?);
        self.typed.finish(out, &key_values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::StringArray;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use proptest::prelude::*;

    type Row = Vec<(String, Option<String>)>;

    /// A map column with dictionary-encoded (or plain) keys and values, as plain rows.
    fn rows_of(col: &ArrayRef, value: impl Fn(&ArrayRef, usize) -> Option<String>) -> Vec<Row> {
        let map = col.as_map();
        let text = |a: &ArrayRef, i: usize| -> Option<String> {
            if a.is_null(i) {
                return None;
            }
            match a.as_any_dictionary_opt() {
                Some(d) => {
                    let k = d.normalized_keys()[i];
                    Some(d.values().as_string::<i32>().value(k).to_string())
                }
                None => Some(a.as_string::<i32>().value(i).to_string()),
            }
        };
        (0..map.len())
            .map(|r| {
                let e = map.value(r);
                (0..e.len())
                    .map(|i| {
                        (
                            text(e.column(0), i).expect("keys are not null"),
                            value(e.column(1), i),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    fn kv(k: &str, v: Option<any_value::Value>) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: v.map(|v| AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    /// Rows of `(key, int value or string value)` through [`AttrCols`]: the text map and the
    /// integer map must read back exactly, whatever the order and repetition of the keys.
    fn check(rows: &[Vec<(String, Result<i64, String>)>]) {
        let mut cols = AttrCols::default();
        for row in rows {
            let kvs: Vec<KeyValue> = row
                .iter()
                .map(|(k, v)| match v {
                    Ok(i) => kv(k, Some(any_value::Value::IntValue(*i))),
                    Err(s) => kv(k, Some(any_value::Value::StringValue(s.clone()))),
                })
                .collect();
            cols.append(&kvs);
        }
        let mut out = Vec::new();
        cols.finish(&mut out).expect("finishes");
        let text = rows_of(&out[0], |a, i| {
            a.is_valid(i)
                .then(|| a.as_string::<i32>().value(i).to_string())
        });
        let ints = rows_of(&out[1], |a, i| {
            Some(a.as_primitive::<Int64Type>().value(i).to_string())
        });
        let want_text: Vec<Row> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            Some(v.clone().map_or_else(|s| s, |i| i.to_string())),
                        )
                    })
                    .collect()
            })
            .collect();
        let want_ints: Vec<Row> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .filter_map(|(k, v)| v.as_ref().ok().map(|i| (k.clone(), Some(i.to_string()))))
                    .collect()
            })
            .collect();
        assert_eq!(text, want_text);
        assert_eq!(ints, want_ints);
        assert!(out[2].as_map().entries().is_empty() && out[3].as_map().entries().is_empty());
    }

    fn row(keys: &[&str]) -> Vec<(String, Result<i64, String>)> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    k.to_string(),
                    if i % 2 == 0 {
                        Ok(i as i64)
                    } else {
                        Err(format!("v{i}"))
                    },
                )
            })
            .collect()
    }

    #[test]
    fn keys_read_back_in_every_order_and_repetition() {
        let many: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        check(&[
            row(&["a", "b", "c"]),
            row(&["a", "b", "c"]),
            row(&["c", "a", "b"]),
            row(&[]),
            row(&["a", "a", "d"]),
            row(&["b"]),
            row(&many),
            row(&many[8..]),
            row(&["", "a"]),
            row(&["a"]),
            row(&[""]),
        ]);
    }

    #[test]
    fn a_repeated_key_is_stored_once_in_the_dictionary() {
        let mut cols = AttrCols::default();
        for _ in 0..100 {
            cols.append(&[kv("http.route", None), kv("http.method", None)]);
        }
        let mut out = Vec::new();
        cols.finish(&mut out).expect("finishes");
        let keys = out[0].as_map().keys().as_any_dictionary().values().len();
        assert_eq!(keys, 2);
        let values = out[0].as_map().values();
        assert_eq!(values.null_count(), 200, "absent values are null");
        assert!(values.as_any().downcast_ref::<StringArray>().is_some());
    }

    proptest! {
        #[test]
        fn any_rows_of_keys_read_back(
            rows in proptest::collection::vec(
                proptest::collection::vec(
                    (
                        "[a-e]{0,2}",
                        prop_oneof![any::<i64>().prop_map(Ok), "[x-z]{0,3}".prop_map(Err)],
                    ),
                    0..8,
                ),
                0..24,
            )
        ) {
            check(&rows);
        }
    }
}
