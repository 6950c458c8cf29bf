//! Odd but valid encodings of a request: what a protobuf decoder accepts but a canonical
//! encoder never writes. The request is re-encoded guided by a small schema of OTLP's nested
//! messages, with any of:
//! - fields in descending field-number order (the relative order of a repeated field's entries
//!   is kept: that order is data);
//! - unknown fields: a marker (a length-delimited field numbered [`UNKNOWN_FIELD`]) in every
//!   message of the marked kinds, and an unknown varint field in the others;
//! - non-minimal (padded) length prefixes;
//! - numeric scalars written twice, a decoy first (the last occurrence wins when decoding);
//! - `Resource` and `InstrumentationScope` messages written in two pieces (a decoder merges
//!   the occurrences of a message field: their repeated fields concatenate).
//!
//! A decoder (prost) reads the same message from either encoding; the processors must too.

use bytes::{BufMut, BytesMut};
use sonde_core::wire::write::put_varint;
use sonde_core::Signal;

/// The field number of the marker fields (unknown to OTLP).
pub const UNKNOWN_FIELD: u32 = 1999;

/// The marker payloads, one per kind of message that carries one.
pub const MARK_REQUEST: &[u8] = b"\xffUNK-REQ";
pub const MARK_RESOURCE_LEVEL: &[u8] = b"\xffUNK-RL";
pub const MARK_RESOURCE: &[u8] = b"\xffUNK-RES";
pub const MARK_ITEM: &[u8] = b"\xffUNK-ITEM";
pub const MARK_VALUE: &[u8] = b"\xffUNK-VAL";

#[derive(Debug, Clone, Copy, Default)]
pub struct Odd {
    pub reorder: bool,
    pub unknown: bool,
    pub pad_lengths: bool,
    pub decoys: bool,
    pub split: bool,
}

impl Odd {
    pub fn any(&self) -> bool {
        self.reorder || self.unknown || self.pad_lengths || self.decoys || self.split
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum M {
    Request(Signal),
    ResourceLevel(Signal),
    ScopeLevel(Signal),
    Resource,
    Scope,
    KeyValue,
    AnyValue,
    Array,
    KvList,
    Span,
    Event,
    Link,
    Status,
    Log,
    Metric,
    /// A metric's data message, by the metric's field number for it.
    Data(u32),
    NumberPoint,
    HistogramPoint,
    ExpPoint,
    SummaryPoint,
    Leaf,
}

/// The message type of field `number` of a message `m` (`None`: not a message).
fn child(m: M, number: u32) -> Option<M> {
    use M::*;
    Some(match (m, number) {
        (Request(s), 1) => ResourceLevel(s),
        (ResourceLevel(_), 1) => Resource,
        (ResourceLevel(s), 2) => ScopeLevel(s),
        (ScopeLevel(_), 1) => Scope,
        (ScopeLevel(Signal::Traces), 2) => Span,
        (ScopeLevel(Signal::Logs), 2) => Log,
        (ScopeLevel(Signal::Metrics), 2) => Metric,
        (Resource, 1) | (Scope, 3) | (KvList, 1) => KeyValue,
        (KeyValue, 2) | (Array, 1) => AnyValue,
        (AnyValue, 5) => Array,
        (AnyValue, 6) => KvList,
        (Span, 9) | (Event, 3) | (Link, 4) => KeyValue,
        (Span, 11) => Event,
        (Span, 13) => Link,
        (Span, 15) => Status,
        (Log, 5) => AnyValue,
        (Log, 6) => KeyValue,
        (Metric, n @ (5 | 7 | 9 | 10 | 11)) => Data(n),
        (Data(kind), 1) => point_of(kind),
        (NumberPoint | SummaryPoint, 7) | (HistogramPoint, 9) | (ExpPoint, 1) => KeyValue,
        (ExpPoint, 8 | 9) | (SummaryPoint, 6) => Leaf,
        _ => return None,
    })
}

/// The data point type of a metric's data field.
fn point_of(data_field: u32) -> M {
    match data_field {
        9 => M::HistogramPoint,
        10 => M::ExpPoint,
        11 => M::SummaryPoint,
        _ => M::NumberPoint,
    }
}

fn marker(m: M) -> Option<&'static [u8]> {
    match m {
        M::Request(_) => Some(MARK_REQUEST),
        M::ResourceLevel(_) => Some(MARK_RESOURCE_LEVEL),
        M::Resource => Some(MARK_RESOURCE),
        M::Span | M::Log => Some(MARK_ITEM),
        M::AnyValue | M::KeyValue => Some(MARK_VALUE),
        _ => None,
    }
}

struct Raw<'a> {
    /// Where the field starts (its tag) in the parsed message.
    start: usize,
    number: u32,
    wire_type: u8,
    /// The value bytes after the tag (a varint, fixed bytes, or the payload of a LEN field).
    body: &'a [u8],
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn parse(buf: &[u8]) -> Vec<Raw<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let field_start = pos;
        let Some(tag) = varint(buf, &mut pos) else {
            panic!("odd: not a message")
        };
        let (number, wire_type) = ((tag >> 3) as u32, (tag & 7) as u8);
        let start = pos;
        let body = match wire_type {
            0 => {
                varint(buf, &mut pos);
                &buf[start..pos]
            }
            1 => {
                pos += 8;
                &buf[start..pos]
            }
            5 => {
                pos += 4;
                &buf[start..pos]
            }
            2 => {
                let len = varint(buf, &mut pos).unwrap_or(0) as usize;
                let s = pos;
                pos += len;
                &buf[s..pos]
            }
            _ => panic!("odd: wire type {wire_type}"),
        };
        out.push(Raw {
            start: field_start,
            number,
            wire_type,
            body,
        });
    }
    out
}

fn put_len(out: &mut BytesMut, number: u32, payload: &[u8], pad: bool) {
    put_varint(out, (u64::from(number) << 3) | 2);
    let len = payload.len() as u64;
    if pad {
        // The length as a varint of one more byte than it needs.
        let mut v = len;
        loop {
            out.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        out.put_u8(0);
    } else {
        put_varint(out, len);
    }
    out.put_slice(payload);
}

/// The request `buf` of `signal`, re-encoded the odd ways `odd` says.
pub fn reencode(signal: Signal, buf: &[u8], odd: Odd) -> Vec<u8> {
    message(buf, M::Request(signal), odd).to_vec()
}

fn message(buf: &[u8], m: M, odd: Odd) -> BytesMut {
    let mut fields = parse(buf);
    if odd.reorder {
        // Stable: the entries of one repeated field keep their order.
        fields.sort_by_key(|f| std::cmp::Reverse(f.number));
    }
    let mut out = BytesMut::new();
    if odd.unknown {
        match marker(m) {
            Some(mark) => put_len(&mut out, UNKNOWN_FIELD, mark, odd.pad_lengths),
            None => {
                put_varint(&mut out, u64::from(UNKNOWN_FIELD + 1) << 3);
                put_varint(&mut out, 7);
            }
        }
    }
    for f in &fields {
        match f.wire_type {
            2 => match child(m, f.number) {
                Some(M::Leaf) | None => put_len(&mut out, f.number, f.body, odd.pad_lengths),
                Some(sub) => {
                    let inner = message(f.body, sub, odd);
                    if odd.split && matches!(sub, M::Resource | M::Scope) {
                        let (a, b) = halves(&inner);
                        put_len(&mut out, f.number, a, odd.pad_lengths);
                        put_len(&mut out, f.number, b, odd.pad_lengths);
                    } else {
                        put_len(&mut out, f.number, &inner, odd.pad_lengths)
                    }
                }
            },
            wt => {
                let tag = (u64::from(f.number) << 3) | u64::from(wt);
                if odd.decoys {
                    // A decoy of the same type first: decoding keeps the last.
                    put_varint(&mut out, tag);
                    match wt {
                        0 => put_varint(&mut out, 1),
                        1 => out.put_slice(&[0x55; 8]),
                        _ => out.put_slice(&[0x55; 4]),
                    }
                }
                put_varint(&mut out, tag);
                out.put_slice(f.body);
            }
        }
    }
    out
}

/// A message's fields in two parts: the first half of its fields, and the rest.
fn halves(msg: &[u8]) -> (&[u8], &[u8]) {
    let fields = parse(msg);
    let cut = fields.get(fields.len() / 2).map_or(msg.len(), |f| f.start);
    msg.split_at(cut)
}
