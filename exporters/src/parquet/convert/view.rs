//! Borrowed views of the OTLP messages the trace and log converters read, straight off the
//! protobuf wire: no prost structs, no owned `String` per attribute key and value. Strings are
//! `&str` into the payload (checked UTF-8), bytes are `&[u8]`, numbers are read as they pass.
//!
//! Reading uses the one wire [`Reader`](sonde_core::wire::Reader) the receiver's validator uses
//! (varints, lengths, unknown fields skipped). On top of it this module keeps prost's decoding
//! semantics, so the rows are the ones the prost-based converter produced (the tests compare
//! both):
//! - a non-repeated scalar field seen twice: the last one wins;
//! - a non-repeated message field seen twice (a `resource`, `status`, `value`, `array_value`):
//!   the occurrences merge, which is reading the concatenation of their bodies, so such a field
//!   is kept as [`Chunks`] and read across them;
//! - a oneof (`AnyValue.value`): the last variant wins; two consecutive occurrences of the same
//!   message variant merge;
//! - every known field must carry its declared wire type, every string must be UTF-8, and nested
//!   messages may be at most [`MAX_DEPTH`] deep (prost's recursion limit) — otherwise the whole
//!   request is refused, as prost refuses it. Known fields the tables do not keep (a resource's
//!   `entity_refs`, a key's `key_strindex`) are checked the same way.
//!
//! One difference remains: protobuf groups (wire types 3 and 4, unused since proto2) are refused
//! here and by [`sonde_core::wire::validate`], while prost skips them in unknown fields. No batch holding
//! them gets past the receiver.

use super::base64_into;
use sonde_core::wire::{Field, Reader, WireError, WireErrorKind};
use std::borrow::Cow;

/// prost's recursion limit: a message nested deeper than this below the request is refused.
pub(crate) const MAX_DEPTH: u32 = 100;

/// Depths (the request is 0) of the messages the converters open, for the recursion limit.
pub(crate) mod depth {
    /// `Resource`, below `Resource{Spans,Logs}` (1).
    pub const RESOURCE: u32 = 2;
    /// `InstrumentationScope`, below `Scope{Spans,Logs}` (2).
    pub const SCOPE: u32 = 3;
    /// `Span` / `LogRecord`.
    pub const ITEM: u32 = 3;
    /// `Span.Event` / `Span.Link`.
    pub const EVENT: u32 = 4;
}

fn err(offset: usize, kind: WireErrorKind) -> WireError {
    WireError { offset, kind }
}

/// Refuses a message at `depth` past the recursion limit (`at`: where its field starts).
#[inline]
pub(crate) fn enter(depth: u32, at: usize) -> Result<(), WireError> {
    if depth > MAX_DEPTH {
        Err(err(at, WireErrorKind::TooDeep))
    } else {
        Ok(())
    }
}

/// The payload of a length-delimited field.
#[inline]
pub(crate) fn bytes_of<'a>(buf: &'a [u8], f: &Field) -> Result<&'a [u8], WireError> {
    let (a, b) = f.len()?;
    // The reader only hands out ranges inside `buf`; `get` keeps that a checked fact.
    buf.get(a..b).ok_or_else(|| {
        err(
            f.start,
            WireErrorKind::LengthOverflow {
                len: b.saturating_sub(a) as u64,
                available: buf.len().saturating_sub(a),
            },
        )
    })
}

/// The payload of a `string` field: UTF-8 or an error, as prost requires.
#[inline]
pub(crate) fn str_of<'a>(buf: &'a [u8], f: &Field) -> Result<&'a str, WireError> {
    std::str::from_utf8(bytes_of(buf, f)?)
        .map_err(|_| err(f.start, WireErrorKind::InvalidUtf8 { field: f.number }))
}

/// The body of a non-repeated message field: one range, or several when the field occurred
/// more than once (protobuf merges them: the message is read across all of them, in order).
#[derive(Debug, Clone, Default)]
pub(crate) enum Chunks {
    #[default]
    Absent,
    One(usize, usize),
    Many(Vec<(usize, usize)>),
}

impl Chunks {
    #[inline]
    pub(crate) fn push(&mut self, r: (usize, usize)) {
        *self = match std::mem::take(self) {
            Chunks::Absent => Chunks::One(r.0, r.1),
            Chunks::One(a, b) => Chunks::Many(vec![(a, b), r]),
            Chunks::Many(mut v) => {
                v.push(r);
                Chunks::Many(v)
            }
        };
    }

    /// Calls `each` for every field of the message, across all its chunks.
    #[inline]
    pub(crate) fn fields(
        &self,
        buf: &[u8],
        mut each: impl FnMut(Field) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        let mut read = |(a, b): (usize, usize)| {
            let mut r = Reader::new(buf, a, b);
            while let Some(f) = r.next()? {
                each(f)?;
            }
            Ok(())
        };
        match self {
            Chunks::Absent => Ok(()),
            Chunks::One(a, b) => read((*a, *b)),
            Chunks::Many(v) => v.iter().try_for_each(|r| read(*r)),
        }
    }
}

/// An `AnyValue` on the wire. Arrays and key-value lists stay unread until rendered.
#[derive(Debug, Clone, Default)]
pub(crate) enum AnyView<'a> {
    /// No value set (or no `AnyValue` at all).
    #[default]
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Strindex(i32),
    /// An `ArrayValue` body.
    Array(Chunks),
    /// A `KeyValueList` body.
    Kvlist(Chunks),
}

impl<'a> AnyView<'a> {
    /// Reads the `AnyValue` in `chunks`, a message at `depth`.
    pub(crate) fn read(buf: &'a [u8], chunks: &Chunks, depth: u32) -> Result<Self, WireError> {
        let mut v = AnyView::Empty;
        chunks.fields(buf, |f| {
            let next = match f.number {
                1 => AnyView::Str(str_of(buf, &f)?),
                2 => AnyView::Bool(f.varint()? != 0),
                3 => AnyView::Int(f.varint()? as i64),
                4 => AnyView::Double(f64::from_bits(f.fixed64()?)),
                5 | 6 => {
                    let range = f.len()?;
                    enter(depth + 1, f.start)?;
                    match (&mut v, f.number) {
                        (AnyView::Array(c), 5) | (AnyView::Kvlist(c), 6) => {
                            // Same message variant again: prost merges into it.
                            c.push(range);
                            return Ok(());
                        }
                        _ if f.number == 5 => AnyView::Array(Chunks::One(range.0, range.1)),
                        _ => AnyView::Kvlist(Chunks::One(range.0, range.1)),
                    }
                }
                7 => AnyView::Bytes(bytes_of(buf, &f)?),
                8 => AnyView::Strindex(f.varint()? as i32),
                _ => return Ok(()),
            };
            let old = std::mem::replace(&mut v, next);
            // prost decoded a replaced array or list in full before dropping it: check it
            // the same way, so what prost refuses is refused here too.
            if matches!(old, AnyView::Array(_) | AnyView::Kvlist(_)) {
                write_json(&mut Vec::new(), buf, &old, depth)?;
            }
            Ok(())
        })?;
        Ok(v)
    }
}

/// A `KeyValue`'s key as read off the wire, its UTF-8 not yet checked. The attribute columns
/// compare it with the keys of the row before (checked when they were added) and check only a
/// key they have not seen: the same few keys come on every item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawKey<'a> {
    pub bytes: &'a [u8],
    /// Where its field starts, for the error.
    at: usize,
}

impl<'a> RawKey<'a> {
    /// The key as text, or the error prost gives for a key that is not UTF-8.
    #[inline]
    pub(crate) fn str(&self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes)
            .map_err(|_| err(self.at, WireErrorKind::InvalidUtf8 { field: 1 }))
    }
}

/// A `KeyValue` on the wire; its value is an `AnyValue` at `depth + 1`.
pub(crate) struct KvView<'a> {
    pub key: RawKey<'a>,
    pub value: AnyView<'a>,
    /// Depth of the `AnyValue` message.
    pub value_depth: u32,
}

impl<'a> KvView<'a> {
    /// Reads the `KeyValue` in `buf[range]`, a message at `depth`.
    #[inline(never)]
    pub(crate) fn read(
        buf: &'a [u8],
        (a, b): (usize, usize),
        depth: u32,
    ) -> Result<Self, WireError> {
        // No key field reads as the empty key, as in prost.
        let mut key = RawKey { bytes: &[], at: a };
        let mut value = Chunks::Absent;
        let mut r = Reader::new(buf, a, b);
        while let Some(f) = r.next()? {
            match f.number {
                1 => {
                    // Checked here: this is the general path, the common one defers it.
                    let bytes = str_of(buf, &f)?.as_bytes();
                    key = RawKey { bytes, at: f.start };
                }
                2 => {
                    value.push(f.len()?);
                    enter(depth + 1, f.start)?;
                }
                3 => {
                    f.varint()?; // key_strindex: checked, not kept (the tables hold keys)
                }
                _ => {}
            }
        }
        Ok(KvView {
            key,
            value: AnyView::read(buf, &value, depth + 1)?,
            value_depth: depth + 1,
        })
    }

    /// Reads a `KeyValue` field (its wire type and depth checked). Inlined with the common
    /// layout's reader, so the view is built where it is used (returned through memory from a
    /// call, it stalled the span loop reading it back: 2% of the span path).
    #[inline(always)]
    pub(crate) fn field(buf: &'a [u8], f: &Field, depth: u32) -> Result<Self, WireError> {
        let range = f.len()?;
        enter(depth, f.start)?;
        match KvView::read_common(buf, range, depth) {
            Some(kv) => Ok(kv),
            None => KvView::read(buf, range, depth),
        }
    }

    /// Reads the `KeyValue` in `buf[range]` if it has the layout nearly every encoder writes:
    /// `key` then `value`, each once, lengths below 128, and a value that is one string, int,
    /// bool or double field (or none). `None` for any other layout, including a malformed one:
    /// [`Self::read`] then reads it (or refuses it) in full. What this accepts, [`Self::read`]
    /// reads the same way; the general loop costs a field dispatch per tag and the value's
    /// [`Chunks`], which for the ten attributes of a span is a sixth of the conversion.
    #[inline(always)]
    fn read_common(buf: &'a [u8], (a, b): (usize, usize), depth: u32) -> Option<Self> {
        // [0x0a klen key..] [0x12 vlen value..]: tags of field 1 and field 2, both LEN.
        let m = buf.get(a..b)?;
        let (&[0x0a, klen], m) = m.split_first_chunk::<2>()? else {
            return None;
        };
        let (key, m) = m.split_at_checked(one_byte_len(klen)?)?;
        let (&[0x12, vlen], value) = m.split_first_chunk::<2>()? else {
            return None;
        };
        if one_byte_len(vlen)? != value.len() || depth + 1 > MAX_DEPTH {
            return None;
        }
        let value = match value {
            [] => AnyView::Empty,
            [0x0a, slen, s @ ..] if one_byte_len(*slen) == Some(s.len()) => {
                AnyView::Str(std::str::from_utf8(s).ok()?)
            }
            [0x10, v] if *v < 0x80 => AnyView::Bool(*v != 0),
            [0x18, v @ ..] => AnyView::Int(varint_exact(v)? as i64),
            [0x21, d @ ..] => AnyView::Double(f64::from_le_bytes(<[u8; 8]>::try_from(d).ok()?)),
            _ => return None,
        };
        Some(KvView {
            key: RawKey { bytes: key, at: a },
            value,
            value_depth: depth + 1,
        })
    }
}

/// A length that is a one-byte varint (below 128), or `None`.
#[inline]
fn one_byte_len(b: u8) -> Option<usize> {
    (b < 0x80).then_some(usize::from(b))
}

/// The varint that `v` holds, exactly (every byte used, at most 10, fits 64 bits), or `None`.
#[inline]
fn varint_exact(v: &[u8]) -> Option<u64> {
    let (last, init) = v.split_last()?;
    if *last >= 0x80 || v.len() > 10 || (v.len() == 10 && *last > 1) {
        return None;
    }
    let mut value = 0u64;
    for (i, b) in init.iter().enumerate() {
        if *b < 0x80 {
            return None;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
    }
    Some(value | (u64::from(*last) << (7 * init.len())))
}

/// Writes a `serde_json` serialization into `out`. Serializing a string or number into a `Vec`
/// cannot fail (it performs no I/O and has no maps with non-string keys), so the error is
/// dropped.
fn json_into(out: &mut Vec<u8>, v: &(impl serde::Serialize + ?Sized)) {
    let _ = serde_json::to_writer(out, v);
}

/// Writes `v` (an `AnyValue` at `depth`) as JSON, exactly as the prost path's `json_text` did:
/// strings, numbers, booleans, arrays and objects (key order kept); bytes as base64 strings; a
/// non-finite double as the string `"NaN"`, `"inf"` or `"-inf"`; an empty value as `null`.
/// Leaves go through `serde_json`'s own serializer, as before.
pub(crate) fn write_json(
    out: &mut Vec<u8>,
    buf: &[u8],
    v: &AnyView<'_>,
    depth: u32,
) -> Result<(), WireError> {
    match v {
        AnyView::Empty => out.extend_from_slice(b"null"),
        AnyView::Str(s) => json_into(out, *s),
        AnyView::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        AnyView::Int(i) => json_into(out, i),
        AnyView::Double(d) => match serde_json::Number::from_f64(*d) {
            Some(n) => json_into(out, &n),
            None => json_into(out, &format!("{d:?}")),
        },
        AnyView::Bytes(b) => {
            let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
            base64_into(&mut s, b);
            json_into(out, &s);
        }
        AnyView::Strindex(i) => json_into(out, &i64::from(*i)),
        AnyView::Array(chunks) => {
            // ArrayValue at depth + 1; its values are AnyValues at depth + 2.
            out.push(b'[');
            let mut first = true;
            chunks.fields(buf, |f| {
                if f.number != 1 {
                    return Ok(());
                }
                let range = f.len()?;
                enter(depth + 2, f.start)?;
                let item = AnyView::read(buf, &Chunks::One(range.0, range.1), depth + 2)?;
                if !first {
                    out.push(b',');
                }
                first = false;
                write_json(out, buf, &item, depth + 2)
            })?;
            out.push(b']');
        }
        AnyView::Kvlist(chunks) => {
            // KeyValueList at depth + 1; its KeyValues at depth + 2.
            out.push(b'{');
            let mut first = true;
            chunks.fields(buf, |f| {
                if f.number != 1 {
                    return Ok(());
                }
                let kv = KvView::field(buf, &f, depth + 2)?;
                if !first {
                    out.push(b',');
                }
                first = false;
                json_into(out, kv.key.str()?);
                out.push(b':');
                write_json(out, buf, &kv.value, kv.value_depth)
            })?;
            out.push(b'}');
        }
    }
    Ok(())
}

/// Writes the text form of an attribute value (the `<set>` map's value) into `w` and returns
/// `true`, or returns `false` for an empty value (a null). Strings as they are, integers and
/// doubles as Rust prints them, booleans `true`/`false`, bytes base64, arrays and lists JSON.
/// `scratch` is reused for JSON.
#[inline]
pub(crate) fn write_text(
    w: &mut impl std::fmt::Write,
    buf: &[u8],
    v: &AnyView<'_>,
    depth: u32,
    scratch: &mut Vec<u8>,
) -> Result<bool, WireError> {
    match v {
        AnyView::Empty => return Ok(false),
        AnyView::Str(s) => {
            let _ = w.write_str(s);
        }
        AnyView::Int(i) => {
            let _ = w.write_str(itoa::Buffer::new().format(*i));
        }
        AnyView::Double(d) => {
            let _ = write!(w, "{d:?}");
        }
        AnyView::Bool(b) => {
            let _ = w.write_str(if *b { "true" } else { "false" });
        }
        AnyView::Bytes(b) => base64_into(w, b),
        AnyView::Strindex(i) => {
            let _ = w.write_str(itoa::Buffer::new().format(*i));
        }
        AnyView::Array(_) | AnyView::Kvlist(_) => {
            scratch.clear();
            write_json(scratch, buf, v, depth)?;
            // Built from checked `&str`s and ASCII punctuation, so always UTF-8.
            let _ = w.write_str(&String::from_utf8_lossy(scratch));
        }
    }
    Ok(true)
}

/// The typed copy of an attribute value, for the `_int`, `_double` and `_bool` maps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Typed {
    None,
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Typed {
    #[inline]
    pub(crate) fn of(v: &AnyView<'_>) -> Typed {
        match v {
            AnyView::Int(i) => Typed::Int(*i),
            AnyView::Double(d) => Typed::Double(*d),
            AnyView::Bool(b) => Typed::Bool(*b),
            _ => Typed::None,
        }
    }
}

/// An attribute rendered once (resource and scope attributes are parsed once per
/// resource / scope and appended to every row below them).
#[derive(Debug, Clone)]
pub(crate) struct RenderedKv<'a> {
    pub key: &'a str,
    /// The text form, `None` for an empty value.
    pub text: Option<Cow<'a, str>>,
    pub typed: Typed,
}

impl<'a> RenderedKv<'a> {
    /// Reads a `KeyValue` field at `depth` and renders it; also says whether its value is a
    /// string (for `service.name`).
    fn read(buf: &'a [u8], f: &Field, depth: u32) -> Result<(Self, bool), WireError> {
        let kv = KvView::field(buf, f, depth)?;
        let text = match &kv.value {
            AnyView::Str(s) => Some(Cow::Borrowed(*s)),
            v => {
                let mut s = String::new();
                let present = write_text(&mut s, buf, v, kv.value_depth, &mut Vec::new())?;
                present.then_some(Cow::Owned(s))
            }
        };
        let is_str = matches!(kv.value, AnyView::Str(_));
        Ok((
            RenderedKv {
                key: kv.key.str()?,
                text,
                typed: Typed::of(&kv.value),
            },
            is_str,
        ))
    }
}

/// A `Resource` and its resource-level `schema_url`, read once per `Resource{Spans,Logs}`.
#[derive(Debug, Default)]
pub(crate) struct ResourceView<'a> {
    /// Its position among the request's resources (rows of one resource share its values).
    pub seq: usize,
    pub attrs: Vec<RenderedKv<'a>>,
    pub dropped: u32,
    pub schema_url: &'a str,
    /// The first `service.name` attribute with a string value.
    pub service_name: Option<&'a str>,
}

impl<'a> ResourceView<'a> {
    pub(crate) fn read(
        buf: &'a [u8],
        chunks: &Chunks,
        schema_url: &'a str,
    ) -> Result<Self, WireError> {
        let mut v = ResourceView {
            schema_url,
            ..Default::default()
        };
        chunks.fields(buf, |f| {
            match f.number {
                1 => {
                    let (kv, is_str) = RenderedKv::read(buf, &f, depth::RESOURCE + 1)?;
                    if is_str && v.service_name.is_none() && kv.key == "service.name" {
                        v.service_name = kv.text.as_ref().and_then(|t| match t {
                            Cow::Borrowed(s) => Some(*s),
                            Cow::Owned(_) => None,
                        });
                    }
                    v.attrs.push(kv);
                }
                2 => v.dropped = f.varint()? as u32,
                3 => check_entity_ref(buf, &f)?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(v)
    }
}

/// `Resource.entity_refs` is not kept in the tables, but prost decodes it, so a malformed one
/// refuses the request here too.
fn check_entity_ref(buf: &[u8], f: &Field) -> Result<(), WireError> {
    let (a, b) = f.len()?;
    let mut r = Reader::new(buf, a, b);
    while let Some(f) = r.next()? {
        if (1..=4).contains(&f.number) {
            str_of(buf, &f)?;
        }
    }
    Ok(())
}

/// An `InstrumentationScope` and its scope-level `schema_url`, read once per
/// `Scope{Spans,Logs}`.
#[derive(Debug, Default)]
pub(crate) struct ScopeView<'a> {
    /// Its position among all the request's scopes, whatever their resource.
    pub seq: usize,
    pub name: &'a str,
    pub version: &'a str,
    pub attrs: Vec<RenderedKv<'a>>,
    pub dropped: u32,
    pub schema_url: &'a str,
}

impl<'a> ScopeView<'a> {
    pub(crate) fn read(
        buf: &'a [u8],
        chunks: &Chunks,
        schema_url: &'a str,
    ) -> Result<Self, WireError> {
        let mut v = ScopeView {
            schema_url,
            ..Default::default()
        };
        chunks.fields(buf, |f| {
            match f.number {
                1 => v.name = str_of(buf, &f)?,
                2 => v.version = str_of(buf, &f)?,
                3 => v.attrs.push(RenderedKv::read(buf, &f, depth::SCOPE + 1)?.0),
                4 => v.dropped = f.varint()? as u32,
                _ => {}
            }
            Ok(())
        })?;
        Ok(v)
    }
}

/// Walks `Export*ServiceRequest → Resource* → Scope* → item` and calls `item` with the
/// resource, the scope and each item's body range. Resource and scope are read before their
/// items wherever they sit in the message (protobuf allows any field order).
pub(crate) fn for_each_item<'a>(
    buf: &'a [u8],
    mut item: impl FnMut(&ResourceView<'a>, &ScopeView<'a>, (usize, usize)) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut request = Reader::new(buf, 0, buf.len());
    let (mut resources, mut scopes) = (0, 0);
    while let Some(f) = request.next()? {
        if f.number != 1 {
            continue;
        }
        let (a, b) = f.len()?;
        // Resource{Spans,Logs}: 1 = resource, 2 = scope-level messages, 3 = schema_url.
        let (resource, url) = level_header(buf, (a, b))?;
        let resource = ResourceView {
            seq: resources,
            ..ResourceView::read(buf, &resource, url)?
        };
        resources += 1;
        let mut r = Reader::new(buf, a, b);
        while let Some(f) = r.next()? {
            if f.number != 2 {
                continue;
            }
            let (a, b) = f.len()?;
            // Scope{Spans,Logs}: 1 = scope, 2 = items, 3 = schema_url.
            let (scope, url) = level_header(buf, (a, b))?;
            let scope = ScopeView {
                seq: scopes,
                ..ScopeView::read(buf, &scope, url)?
            };
            scopes += 1;
            let mut s = Reader::new(buf, a, b);
            while let Some(f) = s.next()? {
                if f.number == 2 {
                    item(&resource, &scope, f.len()?)?;
                }
            }
        }
    }
    Ok(())
}

/// The own fields of a resource-level or scope-level message, which share their layout:
/// 1 = the resource or scope (its chunks, merged as protobuf merges a repeated message field),
/// 2 = the nested messages (only their wire type is checked here), 3 = schema_url.
fn level_header(buf: &[u8], (a, b): (usize, usize)) -> Result<(Chunks, &str), WireError> {
    let mut head = Chunks::Absent;
    let mut url = "";
    let mut r = Reader::new(buf, a, b);
    while let Some(f) = r.next()? {
        match f.number {
            1 => head.push(f.len()?),
            2 => {
                f.len()?;
            }
            3 => url = str_of(buf, &f)?,
            _ => {}
        }
    }
    Ok((head, url))
}

/// A first guess at the number of items in a request of `len` bytes whose items take at least
/// about `item_bytes` each on the wire, for builder capacities. Builders grow past it; an
/// exact count would cost a walk of the whole request before the real one (measured: 3% of the
/// span path), a guess too high would hold memory for rows that never come.
pub(crate) fn capacity_hint(len: usize, item_bytes: usize) -> usize {
    (len / item_bytes.max(1)).min(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use proptest::prelude::*;
    use prost::Message;

    /// What the general loop reads from `kv`, as text (`AnyView` holds floats, so no `Eq`).
    fn general(kv: &[u8]) -> Option<String> {
        let v = KvView::read(kv, (0, kv.len()), 5).ok()?;
        Some(format!("{:?} {:?}", v.key.str().ok()?, v.value))
    }

    /// Checks that the common-layout reader, where it reads `kv` at all, reads what the general
    /// loop reads (a key that is not UTF-8 is refused when the key is used); returns whether it
    /// read it.
    fn agrees(kv: &[u8]) -> bool {
        match KvView::read_common(kv, (0, kv.len()), 5) {
            None => false,
            Some(v) => {
                let common = v.key.str().ok().map(|k| format!("{k:?} {:?}", v.value));
                assert_eq!(general(kv), common, "{kv:02x?}");
                assert_eq!(v.value_depth, 6);
                true
            }
        }
    }

    fn encoded(key: &str, value: Option<Value>) -> Vec<u8> {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn the_common_layout_reads_as_the_general_loop() {
        let long = "x".repeat(127);
        for (kv, common) in [
            (
                encoded("http.method", Some(Value::StringValue("GET".into()))),
                true,
            ),
            (encoded("k", Some(Value::StringValue(String::new()))), true),
            // prost leaves an empty key out: the general loop reads that.
            (encoded("", Some(Value::StringValue("v".into()))), false),
            (encoded(&long, Some(Value::StringValue("v".into()))), true),
            (
                encoded("k", Some(Value::StringValue("y".repeat(125)))),
                true,
            ),
            (encoded("k", Some(Value::IntValue(-1))), true), // a 10-byte varint
            (encoded("k", Some(Value::IntValue(i64::MAX))), true),
            (encoded("k", Some(Value::BoolValue(true))), true),
            (encoded("k", Some(Value::DoubleValue(f64::NAN))), true),
            (encoded("k", None), true),
            // Lengths of 128 and more take two bytes: the general loop reads them.
            (
                encoded("k", Some(Value::StringValue("y".repeat(126)))),
                false,
            ),
            (
                encoded(&"x".repeat(128), Some(Value::BoolValue(false))),
                false,
            ),
            (encoded("k", Some(Value::BytesValue(vec![1, 2]))), false),
            (encoded("k", Some(Value::StringValueStrindex(3))), false),
            // No value at all, the value before the key, a repeated key, a bool of 2 bytes.
            (vec![0x0a, 1, b'k'], false),
            (vec![0x12, 2, 0x10, 1, 0x0a, 1, b'k'], false),
            (vec![0x0a, 1, b'a', 0x0a, 1, b'k', 0x12, 0], false),
            (vec![0x0a, 1, b'k', 0x12, 3, 0x10, 0x81, 0x01], false),
            // A length byte above 127 that happens to equal the bytes left: not a length.
            (
                [&[0x0a, 1, b'k', 0x12, 0x83, 0x0a, 0x81][..], &[b'z'; 0x81]].concat(),
                false,
            ),
            // A key that is not UTF-8: read, and refused where the key is used.
            (vec![0x0a, 1, 0xff, 0x12, 0], true),
            // A value that is not UTF-8 and an 11-byte varint: refused by the general loop.
            (vec![0x0a, 1, b'k', 0x12, 3, 0x0a, 1, 0xff], false),
            (
                [&[0x0a, 1, b'k', 0x12, 11, 0x18][..], &[0xff; 9], &[2]].concat(),
                false,
            ),
        ] {
            assert_eq!(agrees(&kv), common, "{kv:02x?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn any_key_value_reads_as_the_general_loop(
            key in ".{0,40}",
            value in prop_oneof![
                Just(None),
                ".{0,70}".prop_map(|s| Some(Value::StringValue(s))),
                any::<i64>().prop_map(|i| Some(Value::IntValue(i))),
                any::<bool>().prop_map(|b| Some(Value::BoolValue(b))),
                any::<f64>().prop_map(|d| Some(Value::DoubleValue(d))),
            ],
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        ) {
            let mut kv = encoded(&key, value);
            for (at, byte) in flips {
                let i = at.index(kv.len());
                kv[i] = byte;
            }
            agrees(&kv);
        }
    }
}
