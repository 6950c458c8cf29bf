//! `type = "resource"`: sets, inserts and deletes resource attributes, and fills in what the
//! detectors found (`env`, `host`, `os`, `k8s`, and the clouds' metadata services), on the wire.
//!
//! Per resource-level message, in this order: `delete` removes keys; `set` replaces a key's
//! value or adds it (upsert); `insert` adds a key only where the data does not have it; detected
//! attributes are added only where neither the data nor `set`/`insert` has the key — the
//! application's own attributes win, as with the Collector's `resourcedetection`. A `Resource`
//! whose attributes do not change is not touched; one that changes is rewritten with its kept
//! attributes and other fields copied byte for byte and the new ones after them; a
//! resource-level message without a `Resource` gets one. A `Resource` written in several pieces
//! (which a decoder merges into one) is edited as the one it decodes to: the earlier pieces lose
//! their deleted and set keys, the last one gets the new attributes.
//!
//! Detection: the local detectors run once at build; the cloud detectors run in the background
//! ([`super::detect`]) and their attributes apply from the moment they arrive — a laptop without
//! a metadata service neither waits nor loses data.

use super::detect::{Detected, DetectorSet};
use super::view::{children, fields, Node};
use super::{Applied, Change, Processor, ProcessorContext, ProcessorNode};
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use sonde_config::{AttributeValue, ResourceProcessorConfig};
use sonde_core::wire::edit::Editor;
use sonde_core::wire::write::put_len_header;
use sonde_core::wire::{WireError, LEN};
use sonde_core::{wire, BuildError, Signal};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

/// An attribute ready to be written: its key and its encoded `KeyValue` message.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub key: String,
    /// The value as text, for the admin server's `/processors`.
    pub display: String,
    /// The `KeyValue` message (without tag or length).
    pub kv: Vec<u8>,
}

impl Encoded {
    pub fn new(key: &str, value: AnyValue) -> Encoded {
        let display = match &value.value {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            Some(any_value::Value::IntValue(i)) => i.to_string(),
            Some(any_value::Value::DoubleValue(d)) => d.to_string(),
            Some(any_value::Value::BoolValue(b)) => b.to_string(),
            _ => String::new(),
        };
        Encoded {
            key: key.to_string(),
            display,
            kv: KeyValue {
                key: key.to_string(),
                value: Some(value),
                ..Default::default()
            }
            .encode_to_vec(),
        }
    }

    pub fn string(key: &str, value: &str) -> Encoded {
        Encoded::new(
            key,
            AnyValue {
                value: Some(any_value::Value::StringValue(value.to_string())),
            },
        )
    }

    /// Appends it as `Resource.attributes` (field 1).
    fn write(&self, out: &mut Vec<u8>) {
        let mut h = bytes::BytesMut::new();
        put_len_header(&mut h, 1, self.kv.len());
        out.extend_from_slice(&h);
        out.extend_from_slice(&self.kv);
    }
}

fn value_of(v: &AttributeValue) -> AnyValue {
    AnyValue {
        value: Some(match v {
            AttributeValue::String(s) => any_value::Value::StringValue(s.clone()),
            AttributeValue::Int(i) => any_value::Value::IntValue(*i),
            AttributeValue::Double(d) => any_value::Value::DoubleValue(*d),
            AttributeValue::Bool(b) => any_value::Value::BoolValue(*b),
        }),
    }
}

pub struct Resource {
    delete: HashSet<String>,
    set: Vec<Encoded>,
    insert: Vec<Encoded>,
    detected: Arc<Detected>,
}

/// The key of a `KeyValue` message, if it has one.
fn key_of(buf: &[u8], kv: (usize, usize)) -> Option<&[u8]> {
    fields(buf, kv)
        .map_while(Result::ok)
        .filter(|n| n.field.number == 1 && n.field.wire_type == LEN)
        .last()
        .map(|n| &buf[n.field.payload.0..n.field.payload.1])
}

impl Resource {
    pub fn new(cfg: &ResourceProcessorConfig, detected: Arc<Detected>) -> Resource {
        let encode = |m: &std::collections::BTreeMap<String, AttributeValue>| {
            m.iter()
                .map(|(k, v)| Encoded::new(k, value_of(v)))
                .collect::<Vec<_>>()
        };
        Resource {
            delete: cfg.delete.iter().cloned().collect(),
            set: encode(&cfg.set),
            insert: encode(&cfg.insert),
            detected,
        }
    }

    /// The fields of one piece of a `Resource` (payload `p`) that stay — attributes whose key
    /// is in neither `delete` nor `set`, and every other field — with the keys present (a key
    /// in `set` counts: `insert` must not add it) pushed to `present`; and whether any went.
    fn strip<'b>(
        &self,
        buf: &'b [u8],
        p: (usize, usize),
        present: &mut Vec<&'b [u8]>,
    ) -> Result<(Vec<Range<usize>>, bool), WireError> {
        let mut kept = Vec::new();
        let mut went = false;
        for n in fields(buf, p) {
            let n: Node = n?;
            let is_attr = n.field.number == 1 && n.field.wire_type == LEN;
            let key = is_attr.then(|| key_of(buf, n.payload())).flatten();
            match key {
                Some(k) if self.delete.iter().any(|d| d.as_bytes() == k) => went = true,
                Some(k) if self.set.iter().any(|s| s.key.as_bytes() == k) => {
                    went = true;
                    present.push(k);
                }
                Some(k) => {
                    present.push(k);
                    kept.push(n.range());
                }
                None => kept.push(n.range()),
            }
        }
        Ok((kept, went))
    }

    /// The new payload of the last piece of a `Resource` (absent: `None`), or `None` when
    /// nothing changes. `present`: the keys the earlier pieces keep (a decoder merges the
    /// pieces into one `Resource`).
    fn rewrite<'b>(
        &self,
        buf: &'b [u8],
        resource: Option<(usize, usize)>,
        mut present: Vec<&'b [u8]>,
        detected: &[Encoded],
    ) -> Result<Option<Vec<u8>>, WireError> {
        let (kept, mut changed) = match resource {
            Some(p) => self.strip(buf, p, &mut present)?,
            None => (Vec::new(), false),
        };
        let mut out = Vec::new();
        for r in &kept {
            out.extend_from_slice(&buf[r.clone()]);
        }
        let mut added: Vec<&str> = Vec::new();
        for s in &self.set {
            s.write(&mut out);
            added.push(&s.key);
            changed = true;
        }
        let absent =
            |k: &str, added: &[&str]| !present.contains(&k.as_bytes()) && !added.contains(&k);
        for e in self.insert.iter().chain(detected) {
            if absent(&e.key, &added) {
                e.write(&mut out);
                added.push(&e.key);
                changed = true;
            }
        }
        Ok(changed.then_some(out))
    }
}

/// Writes `payload` as field 1 (a `Resource`).
fn write_resource(out: &mut Vec<u8>, payload: &[u8]) {
    let mut h = bytes::BytesMut::new();
    put_len_header(&mut h, 1, payload.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
}

impl Processor for Resource {
    fn handles(&self, _signal: Signal) -> bool {
        true
    }

    fn describe(&self) -> Option<serde_json::Value> {
        let detected: serde_json::Map<String, serde_json::Value> = self
            .detected
            .describe()
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        Some(serde_json::json!({ "detected": detected }))
    }

    fn apply(&self, signal: Signal, payload: &Bytes, editor: &mut Editor) -> Applied {
        let buf = &payload[..];
        let detected = self.detected.current();
        let mut modified = 0;
        for r in children(buf, (0, buf.len()), 1) {
            let r = r?;
            // A `Resource` may come in pieces (a decoder merges them): the earlier ones lose
            // their deleted and set keys, the last one is rewritten as a whole.
            let pieces: Vec<Node> = fields(buf, r.payload())
                .map_while(Result::ok)
                .filter(|n| n.field.number == 1 && n.field.wire_type == LEN)
                .collect();
            let (last, earlier) = match pieces.split_last() {
                Some((last, earlier)) => (Some(*last), earlier),
                None => (None, &[][..]),
            };
            let mut present = Vec::new();
            let mut changed = false;
            for piece in earlier {
                let (kept, went) = self.strip(buf, piece.payload(), &mut present)?;
                if went {
                    changed = true;
                    let mut body = Vec::new();
                    for k in kept {
                        body.extend_from_slice(&buf[k]);
                    }
                    editor.replace(piece.range(), |out| write_resource(out, &body));
                }
            }
            match self.rewrite(buf, last.map(|n| n.payload()), present, &detected)? {
                Some(new) => {
                    let write = |out: &mut Vec<u8>| write_resource(out, &new);
                    match last {
                        Some(f) => editor.replace(f.range(), write),
                        None => editor.insert(r.payload().0, write),
                    }
                }
                None if changed => {}
                None => continue,
            }
            // The items under this resource: the message is itself a one-resource request.
            modified += wire::validate(signal, &buf[r.range()])?;
        }
        Ok(Change {
            dropped: 0,
            modified,
        })
    }
}

/// Builds the processor and starts its detectors (the cloud ones in the background).
pub fn build(
    cfg: &ResourceProcessorConfig,
    cx: &ProcessorContext,
) -> Result<ProcessorNode, BuildError> {
    let detected = DetectorSet::new(cfg, cx).start();
    Ok(ProcessorNode::new(
        cx,
        None,
        Box::new(Resource::new(cfg, detected)),
    ))
}
