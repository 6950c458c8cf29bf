//! `type = "redact"`: masks or hashes sensitive substrings in attribute string values — of
//! resources, scopes, spans, span events and links, log records and metric data points — and,
//! with `bodies`, in log bodies (string bodies and the strings nested in map or array bodies).
//! Attributes named in `keys` have their whole value replaced, whatever it contains: a string
//! by the mask or its hash; a bool, int, double or bytes value by the string its text form
//! (`true`, `42`, `1.5`, lowercase hex) masks or hashes to; every string of an array or map
//! value too, whatever the keys inside the map.
//!
//! A message field written in several pieces (a `Resource`, an `InstrumentationScope` or a log
//! body occurring more than once, which a protobuf decoder merges into one) is redacted in every
//! piece.
//!
//! On the wire: each string field of an `AnyValue` that changes is replaced (the editor rewrites
//! the lengths of the messages around it); every other byte is copied. A string that is not
//! UTF-8 is left as it is and counted (`sonde_processor_errors_total{reason="malformed"}` is for
//! whole batches; a bad string is rare enough to count with them). Redactions are counted per
//! pattern in `sonde_processor_redactions_total{processor, pattern}` (`pattern="key"` for
//! `keys`).

use super::patterns::{Action, Builtin, Counts, Pattern, Redactor};
use super::view::{children, fields, metric_data};
use super::{Applied, Change, Processor, ProcessorContext, ProcessorNode};
use bytes::Bytes;
use sonde_config::{RedactAction, RedactProcessorConfig};
use sonde_core::metrics::Counter;
use sonde_core::wire::edit::Editor;
use sonde_core::wire::write::put_len_header;
use sonde_core::wire::{WireError, I64, LEN, VARINT};
use sonde_core::{BuildError, Signal};
use std::collections::HashSet;

/// How deep nested values (maps in arrays in maps…) are followed; deeper strings are left.
const MAX_DEPTH: usize = 16;

pub struct Redact {
    redactor: Redactor,
    keys: HashSet<Vec<u8>>,
    bodies: bool,
    per_pattern: Vec<Counter>,
    by_key: Counter,
    malformed: Counter,
}

/// Per batch: redactions counted, items touched.
#[derive(Default)]
struct Tally {
    by_key: u64,
    items: u64,
}

impl Redact {
    /// The redacted form of `s`, when it changes.
    fn redact_str(&self, s: &str, counts: &mut Counts, out: &mut String) -> bool {
        self.redactor.redact_into(s, out, counts)
    }

    /// Redacts the strings of the `AnyValue` at `p`; `whole`: replace any string entirely.
    fn any_value(
        &self,
        buf: &[u8],
        p: (usize, usize),
        whole: bool,
        depth: usize,
        cx: &mut Walk<'_>,
    ) -> Result<bool, WireError> {
        let mut changed = false;
        // `value` is a oneof: a decoder keeps its last occurrence. Every occurrence is replaced
        // (nothing sensitive stays on the wire), the last one is what a redaction counts.
        let last = fields(buf, p)
            .map_while(Result::ok)
            .filter(|n| (1..=7).contains(&n.field.number))
            .last()
            .map(|n| n.field.start);
        for n in fields(buf, p) {
            let n = n?;
            let counted = u64::from(last == Some(n.field.start));
            match (n.field.number, n.field.wire_type) {
                (1, LEN) => {
                    let Ok(s) = std::str::from_utf8(&buf[n.field.payload.0..n.field.payload.1])
                    else {
                        self.malformed.inc();
                        continue;
                    };
                    let new = if whole {
                        cx.tally.by_key += counted;
                        Some(self.redactor.replace_whole(s))
                    } else {
                        let mut out = String::new();
                        self.redact_str(s, cx.counts, &mut out).then_some(out)
                    };
                    if let Some(new) = new {
                        replace_with_string(cx.editor, n.range(), new);
                        changed = true;
                    }
                }
                // Under a `keys` key, a bool, int, double or bytes value is no less sensitive:
                // it becomes the string its text form redacts to.
                (2, VARINT) | (3, VARINT) | (4, I64) | (7, LEN) if whole => {
                    let text = match n.field.number {
                        2 => (n.field.value != 0).to_string(),
                        3 => (n.field.value as i64).to_string(),
                        4 => f64::from_bits(n.field.value).to_string(),
                        _ => hex(&buf[n.field.payload.0..n.field.payload.1]),
                    };
                    cx.tally.by_key += counted;
                    replace_with_string(cx.editor, n.range(), self.redactor.replace_whole(&text));
                    changed = true;
                }
                // ArrayValue { values = 1 (AnyValue) }
                (5, LEN) if depth < MAX_DEPTH => {
                    for v in children(buf, n.field.payload, 1) {
                        changed |= self.any_value(buf, v?.payload(), whole, depth + 1, cx)?;
                    }
                }
                // KeyValueList { values = 1 (KeyValue) }: under a key in `keys`, every entry
                // goes whole, whatever its own key.
                (6, LEN) if depth < MAX_DEPTH => {
                    changed |= self.attributes(buf, n.field.payload, 1, whole, depth + 1, cx)?;
                }
                _ => {}
            }
        }
        Ok(changed)
    }

    /// Redacts the `KeyValue` fields `number` of the message `p`; `whole`: the list is inside
    /// the value of a key in `keys`, so every value in it is replaced entirely.
    fn attributes(
        &self,
        buf: &[u8],
        p: (usize, usize),
        number: u32,
        whole: bool,
        depth: usize,
        cx: &mut Walk<'_>,
    ) -> Result<bool, WireError> {
        let mut changed = false;
        for kv in children(buf, p, number) {
            let kv = kv?;
            let (mut key, mut value) = (None, None);
            for f in fields(buf, kv.payload()) {
                let f = f?;
                match (f.field.number, f.field.wire_type) {
                    (1, LEN) => key = Some(f.field.payload),
                    (2, LEN) => value = Some(f.field.payload),
                    _ => {}
                }
            }
            let Some(v) = value else { continue };
            let whole = whole || key.is_some_and(|k| self.keys.contains(&buf[k.0..k.1]));
            changed |= self.any_value(buf, v, whole, depth, cx)?;
        }
        Ok(changed)
    }

    /// The resource's and the scope's attributes of a resource-level message `r`, then each
    /// scope-level message's items through `items`.
    fn walk(
        &self,
        buf: &[u8],
        cx: &mut Walk<'_>,
        mut items: impl FnMut(&Self, (usize, usize), &mut Walk<'_>) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        for r in children(buf, (0, buf.len()), 1) {
            let r = r?;
            // Every occurrence of a message field: a decoder merges them into one.
            for res in children(buf, r.payload(), 1) {
                self.attributes(buf, res?.payload(), 1, false, 0, cx)?;
            }
            for s in children(buf, r.payload(), 2) {
                let s = s?;
                for scope in children(buf, s.payload(), 1) {
                    self.attributes(buf, scope?.payload(), 3, false, 0, cx)?;
                }
                items(self, s.payload(), cx)?;
            }
        }
        Ok(())
    }
}

/// Replaces the `AnyValue` field at `range` with `string_value` (field 1) = `new`.
fn replace_with_string(editor: &mut Editor, range: std::ops::Range<usize>, new: String) {
    editor.replace(range, |b| {
        let mut h = bytes::BytesMut::new();
        put_len_header(&mut h, 1, new.len());
        b.extend_from_slice(&h);
        b.extend_from_slice(new.as_bytes());
    });
}

/// Lowercase hex, the text form of a bytes value.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The state of one batch's walk.
struct Walk<'a> {
    editor: &'a mut Editor,
    counts: &'a mut Counts,
    tally: Tally,
}

impl Processor for Redact {
    fn handles(&self, _signal: Signal) -> bool {
        true
    }

    fn apply(&self, signal: Signal, payload: &Bytes, editor: &mut Editor) -> Applied {
        let buf = &payload[..];
        // One small allocation a batch: the per-pattern counts of this redactor.
        let mut counts = self.redactor.new_counts();
        {
            let mut cx = Walk {
                editor,
                counts: &mut counts,
                tally: Tally::default(),
            };
            match signal {
                Signal::Traces => self.walk(buf, &mut cx, |this, scope, cx| {
                    for span in children(buf, scope, 2) {
                        let span = span?;
                        let mut changed = this.attributes(buf, span.payload(), 9, false, 0, cx)?;
                        for ev in children(buf, span.payload(), 11) {
                            changed |= this.attributes(buf, ev?.payload(), 3, false, 0, cx)?;
                        }
                        for link in children(buf, span.payload(), 13) {
                            changed |= this.attributes(buf, link?.payload(), 4, false, 0, cx)?;
                        }
                        cx.tally.items += u64::from(changed);
                    }
                    Ok(())
                })?,
                Signal::Logs => self.walk(buf, &mut cx, |this, scope, cx| {
                    for rec in children(buf, scope, 2) {
                        let rec = rec?;
                        let mut changed = this.attributes(buf, rec.payload(), 6, false, 0, cx)?;
                        if this.bodies {
                            for body in children(buf, rec.payload(), 5) {
                                changed |= this.any_value(buf, body?.payload(), false, 0, cx)?;
                            }
                        }
                        cx.tally.items += u64::from(changed);
                    }
                    Ok(())
                })?,
                Signal::Metrics => self.walk(buf, &mut cx, |this, scope, cx| {
                    for m in children(buf, scope, 2) {
                        let m = m?;
                        let Some((kind, data)) = metric_data(buf, m.payload()) else {
                            continue;
                        };
                        for pt in children(buf, data, 1) {
                            let changed = this.attributes(
                                buf,
                                pt?.payload(),
                                kind.attributes_field(),
                                false,
                                0,
                                cx,
                            )?;
                            cx.tally.items += u64::from(changed);
                        }
                    }
                    Ok(())
                })?,
            }
            for (i, c) in self.per_pattern.iter().enumerate() {
                c.add(cx.counts.get(i));
            }
            self.by_key.add(cx.tally.by_key);
            Ok(Change {
                dropped: 0,
                modified: cx.tally.items,
            })
        }
    }
}

/// `patterns` entries: a built-in name, or a regular expression (RE2 syntax).
fn pattern_of(i: usize, p: &str) -> Pattern {
    match Builtin::from_name(p) {
        Some(b) => Pattern::Builtin(b),
        None => Pattern::Custom {
            name: format!("regex_{i}"),
            regex: p.to_string(),
        },
    }
}

/// Why a redact processor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedactBuildError {
    #[error(transparent)]
    Patterns(#[from] super::patterns::RedactError),
    #[error("hash_key_file {path}: {source}")]
    Key {
        path: String,
        source: std::io::Error,
    },
}

pub fn build(
    cfg: &RedactProcessorConfig,
    cx: &ProcessorContext,
) -> Result<ProcessorNode, BuildError> {
    let patterns: Vec<Pattern> = cfg
        .patterns
        .iter()
        .enumerate()
        .map(|(i, p)| pattern_of(i, p))
        .collect();
    let action = match cfg.action {
        RedactAction::Mask => Action::Mask(cfg.mask.clone()),
        RedactAction::Hash => {
            let key = match (&cfg.hash_key, &cfg.hash_key_file) {
                (Some(k), _) => k.expose().as_bytes().to_vec(),
                (None, Some(path)) => std::fs::read(path)
                    .map(|mut k| {
                        while k.last().is_some_and(|b| b.is_ascii_whitespace()) {
                            k.pop();
                        }
                        k
                    })
                    .map_err(|source| {
                        cx.error(RedactBuildError::Key {
                            path: path.display().to_string(),
                            source,
                        })
                    })?,
                (None, None) => Vec::new(),
            };
            Action::Hash(key)
        }
    };
    // Only `keys` and no pattern: the redactor still needs one; it never matches alone.
    let patterns = if patterns.is_empty() {
        vec![Pattern::Custom {
            name: "none".into(),
            regex: "[^\\s\\S]".into(),
        }]
    } else {
        patterns
    };
    let redactor =
        Redactor::new(&patterns, action).map_err(|e| cx.error(RedactBuildError::Patterns(e)))?;
    let counter = |pattern: &str| {
        cx.metrics.counter(
            "sonde_processor_redactions_total",
            "Values a redact processor masked or hashed, by pattern.",
            &[("processor", &cx.name), ("pattern", pattern)],
        )
    };
    // The stand-in pattern of a `keys`-only processor matches nothing: no series for it.
    let per_pattern = match cfg.patterns.is_empty() {
        true => Vec::new(),
        false => redactor.names().map(counter).collect(),
    };
    let node = Redact {
        keys: cfg.keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        bodies: cfg.bodies,
        per_pattern,
        by_key: counter("key"),
        malformed: cx.metrics.counter(
            "sonde_processor_errors_total",
            "Batches or items a processor could not interpret and passed on unchanged, by reason.",
            &[("processor", &cx.name), ("reason", "malformed")],
        ),
        redactor,
    };
    Ok(ProcessorNode::new(cx, None, Box::new(node)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    use sonde_core::metrics::Registry;
    use sonde_core::Batch;
    use std::sync::Arc;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// The span attributes after a redact processor configured by `json` (its own keys).
    fn redacted(json: &str, attributes: Vec<KeyValue>) -> (Vec<(String, Value)>, Registry) {
        let cfg: RedactProcessorConfig = serde_json::from_str(json).expect("a valid configuration");
        let metrics = Registry::default();
        let cx = super::super::context(
            "r",
            &sonde_config::AgentConfig::default(),
            metrics.clone(),
            tokio_util::sync::CancellationToken::new(),
        );
        let node = build(&cfg, &cx).expect("the processor builds");
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "s".into(),
                        attributes,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = Batch::new(
            Signal::Traces,
            request.encode_to_vec().into(),
            Arc::from("test"),
        )
        .expect("a valid request");
        let out = node.process(batch).expect("nothing is dropped");
        let decoded = ExportTraceServiceRequest::decode(out.payload).expect("the output decodes");
        let span = &decoded.resource_spans[0].scope_spans[0].spans[0];
        let attrs = span
            .attributes
            .iter()
            .map(|kv| {
                let v = kv.value.clone().and_then(|v| v.value).expect("a value");
                (kv.key.clone(), v)
            })
            .collect();
        (attrs, metrics)
    }

    #[test]
    fn keys_replace_values_of_every_type_not_only_strings() {
        let (attrs, metrics) = redacted(
            r#"{"keys": ["user.id", "user.pin", "flag", "ratio", "raw"]}"#,
            vec![
                kv("user.id", Value::IntValue(4_242)),
                kv("user.pin", Value::StringValue("1234".into())),
                kv("flag", Value::BoolValue(true)),
                kv("ratio", Value::DoubleValue(0.5)),
                kv("raw", Value::BytesValue(vec![0xde, 0xad])),
                kv("other", Value::IntValue(7)),
            ],
        );
        let masked = || Value::StringValue("****".into());
        assert_eq!(
            attrs,
            vec![
                ("user.id".into(), masked()),
                ("user.pin".into(), masked()),
                ("flag".into(), masked()),
                ("ratio".into(), masked()),
                ("raw".into(), masked()),
                ("other".into(), Value::IntValue(7)),
            ]
        );
        assert_eq!(
            metrics.counter_sum(
                "sonde_processor_redactions_total",
                &[("processor", "r"), ("pattern", "key")]
            ),
            5
        );
        // A `keys`-only processor has no series for the stand-in pattern.
        assert!(!metrics.render().contains(r#"pattern="none""#));
    }

    #[test]
    fn a_hashed_non_string_value_is_the_hash_of_its_text() {
        let key = "0123456789abcdef";
        let cfg =
            format!(r#"{{"keys": ["user.id", "raw"], "action": "hash", "hash_key": "{key}"}}"#);
        let (by_int, _) = redacted(&cfg, vec![kv("user.id", Value::IntValue(4_242))]);
        let (by_text, _) = redacted(&cfg, vec![kv("user.id", Value::StringValue("4242".into()))]);
        assert_eq!(
            by_int, by_text,
            "an id hashes the same as an int and as text"
        );
        let (raw, _) = redacted(&cfg, vec![kv("raw", Value::BytesValue(vec![0xde, 0xad]))]);
        let (hex, _) = redacted(&cfg, vec![kv("raw", Value::StringValue("dead".into()))]);
        assert_eq!(raw, hex);
        let Value::StringValue(h) = &by_int[0].1 else {
            panic!("a hash is a string: {by_int:?}");
        };
        assert_eq!(h.len(), 24);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
