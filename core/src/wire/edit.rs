//! Editing an encoded message without decoding it: a list of field-level edits (delete a field,
//! replace a field, insert fields at the start of a nested message) applied in one output pass
//! that copies every untouched byte range as it is and rewrites only the length prefixes of the
//! messages that contain an edit.
//!
//! This is how the processors change batches: a filter deletes the span fields it drops (or the
//! whole scope- or resource-level message when nothing of it is left), a redaction replaces the
//! string fields it masks, the resource processor replaces a `Resource` (or inserts one where
//! there is none). Everything else — the other spans, their attributes, unknown fields — is
//! copied byte for byte.
//!
//! Model: an edit is anchored on the *original* bytes. `Delete` and `Replace` name a whole field
//! (tag, length prefix and payload); `Insert` names the payload start of a length-delimited field
//! (the new fields go first in that message) or the start of the whole input. Edits must not
//! overlap; an edit inside a field another edit deletes or replaces is refused. The containers
//! of an edit are found by walking: a length-delimited field whose payload holds an edit is a
//! message, and its new length is computed (pass 1) then written (pass 2).
//!
//! Never panics on malformed input (a `WireError` is returned), never reads out of bounds.

use super::write::{put_varint, varint_len};
use super::{Field, Reader, WireError, WireErrorKind, LEN};
use bytes::{BufMut, Bytes, BytesMut};
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Delete,
    /// The replacement (a whole field) is `arena[from..to]`.
    Replace {
        from: usize,
        to: usize,
    },
    /// New fields (`arena[from..to]`) at the payload start `at`.
    Insert {
        from: usize,
        to: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Edit {
    /// Field start (tag) for `Delete`/`Replace`; the payload start for `Insert`.
    start: usize,
    /// Field end; equal to `start` for `Insert`.
    end: usize,
    op: Op,
}

impl Edit {
    fn new_len(&self) -> usize {
        match self.op {
            Op::Delete => 0,
            Op::Replace { from, to } | Op::Insert { from, to } => to - from,
        }
    }
}

/// Edits to one encoded message, applied by [`Editor::apply`]. Reusable: [`Editor::clear`]
/// keeps the allocations.
#[derive(Debug, Default)]
pub struct Editor {
    edits: Vec<Edit>,
    arena: Vec<u8>,
    /// New payload lengths of the containers, in the order pass 2 meets them.
    sizes: Vec<usize>,
}

fn invalid(offset: usize) -> WireError {
    WireError {
        offset,
        kind: WireErrorKind::Truncated {
            needed: 0,
            available: 0,
        },
    }
}

/// The end of a field `Reader::next` just returned.
fn field_end(f: &Field, r: &Reader<'_>) -> usize {
    if f.wire_type == LEN {
        f.payload.1
    } else {
        r.pos
    }
}

/// Whether edit `e` lies in or on field `f` (ending at `fe`) rather than after it. An insert at
/// `fe` can only belong to `f` (no other field's payload starts there): to `f` itself when it is
/// an empty message, or to an empty message nested last in it.
fn touches(e: &Edit, f: &Field, fe: usize) -> bool {
    e.start < fe || (e.start == fe && matches!(e.op, Op::Insert { .. }) && f.wire_type == LEN)
}

/// Whether edit `e` may lie in a message ending at `end`: before it, or an insert at `end` into
/// an empty message that is the last field.
fn inside(e: &Edit, end: usize) -> bool {
    e.start < end || (e.start == end && matches!(e.op, Op::Insert { .. }))
}

/// The tag of a length-delimited field, written anew (the input's may be padded).
fn len_tag(f: &Field) -> u64 {
    (u64::from(f.number) << 3) | u64::from(LEN)
}

impl Editor {
    pub fn new() -> Self {
        Editor::default()
    }

    pub fn clear(&mut self) {
        self.edits.clear();
        self.arena.clear();
        self.sizes.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Removes the field occupying `field` (from its tag to the end of its payload).
    pub fn delete(&mut self, field: Range<usize>) {
        self.edits.push(Edit {
            start: field.start,
            end: field.end,
            op: Op::Delete,
        });
    }

    /// Replaces the field occupying `field` with what `write` appends (zero or more whole
    /// fields, tags included).
    pub fn replace(&mut self, field: Range<usize>, write: impl FnOnce(&mut Vec<u8>)) {
        let from = self.arena.len();
        write(&mut self.arena);
        self.edits.push(Edit {
            start: field.start,
            end: field.end,
            op: Op::Replace {
                from,
                to: self.arena.len(),
            },
        });
    }

    /// Inserts what `write` appends (whole fields) at `payload_start`: the first byte of a
    /// length-delimited field's payload (the new fields come first in that message), or 0 (the
    /// start of the whole input).
    pub fn insert(&mut self, payload_start: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let from = self.arena.len();
        write(&mut self.arena);
        self.edits.push(Edit {
            start: payload_start,
            end: payload_start,
            op: Op::Insert {
                from,
                to: self.arena.len(),
            },
        });
    }

    /// The input with every edit applied; the input itself (no copy) when there is none.
    pub fn apply(&mut self, input: &Bytes) -> Result<Bytes, WireError> {
        if self.edits.is_empty() {
            return Ok(input.clone());
        }
        // Inserts sort before a field starting at the same offset: they belong to the message
        // whose payload starts there, the field to the same message's first field.
        self.edits
            .sort_by_key(|e| (e.start, !matches!(e.op, Op::Insert { .. })));
        for w in self.edits.windows(2) {
            if w[1].start < w[0].end {
                return Err(invalid(w[1].start));
            }
        }
        if self.edits.last().is_some_and(|e| e.end > input.len()) {
            return Err(invalid(input.len()));
        }
        self.sizes.clear();
        let mut sizes = std::mem::take(&mut self.sizes);
        let (total, reached) = self.size(input, 0, input.len(), 0, &mut sizes)?;
        // Every edit must have found its field; one that did not (past the end) is refused.
        if reached != self.edits.len() {
            return Err(invalid(input.len()));
        }
        let mut out = BytesMut::with_capacity(total);
        let mut next_size = 0;
        self.write(input, 0, input.len(), 0, &sizes, &mut next_size, &mut out)?;
        self.sizes = sizes;
        debug_assert_eq!(out.len(), total);
        Ok(out.freeze())
    }

    /// The new length of the message `buf[start..end]` (which holds the edits from index
    /// `first` on that fall inside it), and the index of the first edit after it; records
    /// container sizes in pre-order.
    fn size(
        &self,
        buf: &[u8],
        start: usize,
        end: usize,
        first: usize,
        sizes: &mut Vec<usize>,
    ) -> Result<(usize, usize), WireError> {
        let mut i = first;
        let mut len = 0;
        // Inserts at this message's own payload start.
        while let Some(e) = self
            .edits
            .get(i)
            .filter(|e| e.start == start && e.end == start)
        {
            len += e.new_len();
            i += 1;
        }
        let mut r = Reader::new(buf, start, end);
        let mut unchanged_from = start;
        while self.edits.get(i).is_some_and(|e| inside(e, end)) {
            let Some(f) = r.next()? else {
                return Err(invalid(self.edits[i].start));
            };
            let fe = field_end(&f, &r);
            let e = self.edits[i];
            if !touches(&e, &f, fe) {
                continue; // untouched field
            }
            len += f.start - unchanged_from;
            unchanged_from = fe;
            if e.start == f.start && e.end == fe && !matches!(e.op, Op::Insert { .. }) {
                len += e.new_len();
                i += 1;
            } else if f.wire_type == LEN && e.start >= f.payload.0 && e.end <= f.payload.1 {
                let slot = sizes.len();
                sizes.push(0);
                let (inner, next) = self.size(buf, f.payload.0, f.payload.1, i, sizes)?;
                sizes[slot] = inner;
                len += varint_len(len_tag(&f)) + varint_len(inner as u64) + inner;
                i = next;
            } else {
                // An edit that straddles field boundaries or points inside a scalar.
                return Err(invalid(e.start));
            }
        }
        Ok((len + end - unchanged_from, i))
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        buf: &[u8],
        start: usize,
        end: usize,
        first: usize,
        sizes: &[usize],
        next_size: &mut usize,
        out: &mut BytesMut,
    ) -> Result<usize, WireError> {
        let mut i = first;
        while let Some(e) = self
            .edits
            .get(i)
            .filter(|e| e.start == start && e.end == start)
        {
            out.put_slice(self.bytes(e));
            i += 1;
        }
        let mut r = Reader::new(buf, start, end);
        let mut unchanged_from = start;
        while self.edits.get(i).is_some_and(|e| inside(e, end)) {
            let Some(f) = r.next()? else {
                return Err(invalid(self.edits[i].start));
            };
            let fe = field_end(&f, &r);
            let e = self.edits[i];
            if !touches(&e, &f, fe) {
                continue;
            }
            out.put_slice(&buf[unchanged_from..f.start]);
            unchanged_from = fe;
            if e.start == f.start && e.end == fe && !matches!(e.op, Op::Insert { .. }) {
                out.put_slice(self.bytes(&e));
                i += 1;
            } else {
                let inner = sizes
                    .get(*next_size)
                    .copied()
                    .ok_or_else(|| invalid(f.start))?;
                *next_size += 1;
                put_varint(out, len_tag(&f));
                put_varint(out, inner as u64);
                i = self.write(buf, f.payload.0, f.payload.1, i, sizes, next_size, out)?;
            }
        }
        out.put_slice(&buf[unchanged_from..end]);
        Ok(i)
    }

    fn bytes(&self, e: &Edit) -> &[u8] {
        match e.op {
            Op::Delete => &[],
            Op::Replace { from, to } | Op::Insert { from, to } => &self.arena[from..to],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::kv;
    use crate::wire::write::put_len_header;
    use crate::{wire, Signal};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;
    use prost::Message;

    fn encoded_field(number: u32, msg: &impl Message) -> Vec<u8> {
        let body = msg.encode_to_vec();
        let mut b = BytesMut::new();
        put_len_header(&mut b, number, body.len());
        b.put_slice(&body);
        b.to_vec()
    }

    /// `layout[r][s]` = the span names of scope `s` of resource `r`.
    fn request(layout: &[Vec<Vec<String>>]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: layout
                .iter()
                .enumerate()
                .map(|(r, scopes)| ResourceSpans {
                    resource: (r % 2 == 0).then(|| Resource {
                        attributes: vec![kv("service.name", &format!("svc-{r}"))],
                        ..Default::default()
                    }),
                    scope_spans: scopes
                        .iter()
                        .map(|names| ScopeSpans {
                            spans: names
                                .iter()
                                .map(|n| Span {
                                    name: n.clone(),
                                    trace_id: vec![7; 16],
                                    span_id: vec![1; 8],
                                    attributes: vec![kv("k", n)],
                                    ..Default::default()
                                })
                                .collect(),
                            schema_url: "s".into(),
                            ..Default::default()
                        })
                        .collect(),
                    schema_url: format!("r{r}"),
                })
                .collect(),
        }
    }

    /// Every field of a message: (field, its whole range).
    fn fields(buf: &[u8], start: usize, end: usize) -> Vec<(Field, Range<usize>)> {
        let mut r = Reader::new(buf, start, end);
        let mut out = vec![];
        while let Some(f) = r.next().unwrap() {
            let fe = field_end(&f, &r);
            out.push((f, f.start..fe));
        }
        out
    }

    #[test]
    fn no_edit_is_no_copy() {
        let b = Bytes::from(request(&[vec![vec!["a".into()]]]).encode_to_vec());
        let out = Editor::new().apply(&b).unwrap();
        assert_eq!(out.as_ptr(), b.as_ptr());
    }

    #[test]
    fn an_insert_into_an_empty_message_and_a_padded_length() {
        // ResourceSpans { resource: Resource {} }, the resource's length padded (0x80 0x00 = 0).
        let b = Bytes::from_static(&[0x0a, 0x03, 0x0a, 0x80, 0x00]);
        let mut e = Editor::new();
        e.insert(5, |v| v.extend(encoded_field(1, &kv("a", "b"))));
        let out = e.apply(&b).unwrap();
        let req = ExportTraceServiceRequest::decode(&out[..]).unwrap();
        assert_eq!(
            req.resource_spans[0].resource.as_ref().unwrap().attributes,
            vec![kv("a", "b")]
        );
    }

    #[test]
    fn overlapping_or_straddling_edits_are_refused() {
        let b = Bytes::from(request(&[vec![vec!["a".into(), "b".into()]]]).encode_to_vec());
        let mut e = Editor::new();
        e.delete(0..b.len());
        e.delete(2..4);
        assert!(e.apply(&b).is_err());
        let mut e = Editor::new();
        e.delete(1..3); // not a field boundary
        assert!(e.apply(&b).is_err());
        let mut e = Editor::new();
        e.delete(0..b.len() + 1);
        assert!(e.apply(&b).is_err());
    }

    proptest! {
        /// Deleting spans (and with them emptied scopes), replacing span names and inserting a
        /// resource attribute on the wire gives what the same edit on prost structs encodes to.
        #[test]
        fn edits_match_the_same_edit_on_decoded_messages(
            layout in prop::collection::vec(
                prop::collection::vec(prop::collection::vec("[a-z]{0,300}", 0..6), 0..4), 1..4),
            drop_mask in any::<u64>(),
            rename_mask in any::<u64>(),
        ) {
            let req = request(&layout);
            let bytes = Bytes::from(req.encode_to_vec());
            let mut oracle = req.clone();
            let mut editor = Editor::new();
            let mut n = 0u32;
            for (ri, (rf, rrange)) in fields(&bytes, 0, bytes.len()).into_iter().enumerate() {
                let _ = rrange;
                // Insert an attribute in the resource, or a resource where there is none.
                let mut resource_payload = None;
                for (f, _) in fields(&bytes, rf.payload.0, rf.payload.1) {
                    if f.number == 1 { resource_payload = Some(f.payload.0); }
                }
                let added = kv("added", "yes");
                match resource_payload {
                    Some(p) => editor.insert(p, |b| b.extend(encoded_field(1, &added))),
                    None => editor.insert(rf.payload.0, |b| {
                        b.extend(encoded_field(1, &Resource { attributes: vec![added.clone()], ..Default::default() }))
                    }),
                }
                let ors = &mut oracle.resource_spans[ri];
                ors.resource.get_or_insert_with(Default::default).attributes.insert(0, added);
                let mut scope_idx = 0;
                for (sf, srange) in fields(&bytes, rf.payload.0, rf.payload.1) {
                    if sf.number != 2 { continue; }
                    let spans: Vec<_> = fields(&bytes, sf.payload.0, sf.payload.1)
                        .into_iter().filter(|(f, _)| f.number == 2).collect();
                    let dropped: Vec<bool> = spans.iter().map(|_| { n += 1; drop_mask >> (n % 64) & 1 == 1 }).collect();
                    let oss = &mut ors.scope_spans[scope_idx];
                    if !spans.is_empty() && dropped.iter().all(|d| *d) {
                        editor.delete(srange);
                        ors.scope_spans.remove(scope_idx);
                        continue;
                    }
                    let mut kept = 0;
                    for ((pf, prange), drop) in spans.into_iter().zip(dropped) {
                        if drop {
                            editor.delete(prange);
                            oss.spans.remove(kept);
                            continue;
                        }
                        n += 1;
                        // An empty name is not on the wire: nothing to replace.
                        if rename_mask >> (n % 64) & 1 == 1 && !oss.spans[kept].name.is_empty() {
                            for (nf, nrange) in fields(&bytes, pf.payload.0, pf.payload.1) {
                                if nf.number == 5 {
                                    editor.replace(nrange, |b| {
                                        let mut h = BytesMut::new();
                                        put_len_header(&mut h, 5, 7);
                                        b.extend_from_slice(&h);
                                        b.extend_from_slice(b"renamed");
                                    });
                                }
                            }
                            oss.spans[kept].name = "renamed".into();
                        }
                        kept += 1;
                    }
                    scope_idx += 1;
                }
            }
            let out = editor.apply(&bytes).unwrap();
            prop_assert_eq!(&out[..], &oracle.encode_to_vec()[..]);
            prop_assert!(wire::validate(Signal::Traces, &out).is_ok());
        }

        #[test]
        fn arbitrary_edits_on_arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..200),
            cuts in prop::collection::vec((0usize..220, 0usize..20, 0u8..3), 0..6),
        ) {
            let bytes = Bytes::from(bytes);
            let mut e = Editor::new();
            for (at, len, op) in cuts {
                match op {
                    0 => e.delete(at..at + len),
                    1 => e.replace(at..at + len, |b| b.extend_from_slice(&[0x0a, 0x00])),
                    _ => e.insert(at, |b| b.extend_from_slice(&[0x08, 0x01])),
                }
            }
            let _ = e.apply(&bytes);
        }
    }
}
