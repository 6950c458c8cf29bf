//! Encoding log records straight into an OTLP `ExportLogsServiceRequest`, without building the
//! prost structs for the common case (a text line): the tailer's hot path is one length
//! computation and a few copies per line.
//!
//! A batch holds one `ResourceLogs` per resource (the host resource, and for example one per
//! Kubernetes container whose files are read), each with one `ScopeLogs`. A resource's records
//! are appended to its own buffer after room left for the headers; when the batch is finished
//! the headers, whose lengths are only then known, are written into that room right before the
//! first record, so the records are never copied again. With several resources the finished
//! `ResourceLogs` are concatenated (an export request is one repeated field, so the
//! concatenation is the request holding them all).

use bytes::{Buf, Bytes, BytesMut};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;
use std::sync::Arc;

/// Field tags (field number << 3 | wire type).
const REQUEST_RESOURCE_LOGS: u8 = 1 << 3 | 2;
const RESOURCE_LOGS_RESOURCE: u8 = 1 << 3 | 2;
const RESOURCE_LOGS_SCOPE_LOGS: u8 = 2 << 3 | 2;
const SCOPE_LOGS_SCOPE: u8 = 1 << 3 | 2;
const SCOPE_LOGS_LOG_RECORDS: u8 = 2 << 3 | 2;
pub(crate) const RECORD_TIME: u8 = 1 << 3 | 1;
pub(crate) const RECORD_SEVERITY_NUMBER: u8 = 2 << 3;
pub(crate) const RECORD_SEVERITY_TEXT: u8 = 3 << 3 | 2;
pub(crate) const RECORD_BODY: u8 = 5 << 3 | 2;
pub(crate) const RECORD_ATTRIBUTES: u8 = 6 << 3 | 2;
pub(crate) const RECORD_OBSERVED_TIME: u8 = 11 << 3 | 1;
pub(crate) const ANY_STRING: u8 = 1 << 3 | 2;
const ANY_BOOL: u8 = 2 << 3;
pub(crate) const ANY_INT: u8 = 3 << 3;
pub(crate) const ANY_BYTES: u8 = 7 << 3 | 2;
pub(crate) const KV_KEY: u8 = 1 << 3 | 2;
pub(crate) const KV_VALUE: u8 = 2 << 3 | 2;

/// A resource other than the source's own, encoded once (`ResourceLogs.resource`, tag
/// included); records pushed with it land in its own `ResourceLogs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId(Arc<[u8]>);

impl ResourceId {
    /// The resource made of `base`'s attributes followed by `extra`.
    pub fn new(base: &Resource, extra: Vec<KeyValue>) -> Self {
        let mut r = base.clone();
        r.attributes.extend(extra);
        ResourceId(Arc::from(resource_field(&r)))
    }
}

fn resource_field(resource: &Resource) -> Vec<u8> {
    let mut r = vec![RESOURCE_LOGS_RESOURCE];
    encode_varint(resource.encoded_len() as u64, &mut r);
    resource.encode_raw(&mut r);
    r
}

/// The records of one resource in the batch being built.
#[derive(Clone)]
struct Group {
    /// `None`: the source's own resource.
    id: Option<ResourceId>,
    buf: BytesMut,
    /// Room kept at the front of `buf` for the headers.
    reserve: usize,
    items: u64,
}

impl Group {
    fn new(id: Option<ResourceId>, resource_len: usize, scope_len: usize) -> Self {
        Group {
            id,
            buf: BytesMut::new(),
            // Two tags and three varints of at most 10 bytes each, plus the fixed parts.
            reserve: resource_len + scope_len + 3 + 30,
            items: 0,
        }
    }

    fn start(&mut self, capacity: usize) {
        if self.buf.is_empty() {
            self.buf.reserve(capacity + self.reserve);
            self.buf.resize(self.reserve, 0);
        }
    }

    fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.reserve)
    }

    /// The finished `ResourceLogs` field (tag included) and its record count.
    fn finish(&mut self, resource: &[u8], scope: &[u8]) -> Option<(BytesMut, u64)> {
        if self.items == 0 {
            self.buf.clear();
            return None;
        }
        let records = self.len();
        let scope_logs = scope.len() + records;
        let resource_logs = resource.len() + 1 + encoded_len_varint(scope_logs as u64) + scope_logs;
        let mut head = Vec::with_capacity(self.reserve);
        head.push(REQUEST_RESOURCE_LOGS);
        encode_varint(resource_logs as u64, &mut head);
        head.extend_from_slice(resource);
        head.push(RESOURCE_LOGS_SCOPE_LOGS);
        encode_varint(scope_logs as u64, &mut head);
        head.extend_from_slice(scope);
        let at = self.reserve - head.len();
        let mut buf = std::mem::take(&mut self.buf);
        buf[at..self.reserve].copy_from_slice(&head);
        buf.advance(at);
        Some((buf, std::mem::take(&mut self.items)))
    }
}

/// Builds batches of log records. A clone is an encoder with the same resources and scope (and
/// the records so far).
#[derive(Clone)]
pub struct Encoder {
    /// `groups[0]` is the source's own resource; the others exist for the batch being built.
    groups: Vec<Group>,
    /// The group the last record went to.
    last: usize,
    /// `ResourceLogs.resource` of the source's own resource, tag included.
    resource: Vec<u8>,
    /// `ScopeLogs.scope`, tag included.
    scope: Vec<u8>,
    items: u64,
    len: usize,
    capacity: usize,
}

/// Allocation hint for the records of a resource other than the source's own: small, since a
/// batch may hold one per open file; the buffer grows as records come.
const GROUP_CAPACITY: usize = 4 << 10;

impl Encoder {
    /// `capacity`: the record bytes a batch is expected to hold (a hint for allocation).
    pub fn new(resource: &Resource, scope: &InstrumentationScope, capacity: usize) -> Self {
        let r = resource_field(resource);
        let mut s = vec![SCOPE_LOGS_SCOPE];
        encode_varint(scope.encoded_len() as u64, &mut s);
        scope.encode_raw(&mut s);
        Encoder {
            groups: vec![Group::new(None, r.len(), s.len())],
            last: 0,
            resource: r,
            scope: s,
            items: 0,
            len: 0,
            capacity,
        }
    }

    /// The group of `id` in this batch, made on first use.
    fn group(&mut self, id: Option<&ResourceId>) -> &mut Group {
        let same = |g: &Group| match (&g.id, id) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(&a.0, &b.0) || a == b,
            _ => false,
        };
        if !same(&self.groups[self.last]) {
            self.last = match self.groups.iter().position(same) {
                Some(i) => i,
                None => {
                    let res_len = id.map_or(self.resource.len(), |r| r.0.len());
                    self.groups
                        .push(Group::new(id.cloned(), res_len, self.scope.len()));
                    self.groups.len() - 1
                }
            };
        }
        let cap = if self.last == 0 {
            self.capacity
        } else {
            GROUP_CAPACITY.min(self.capacity)
        };
        let g = &mut self.groups[self.last];
        g.start(cap);
        g
    }

    /// Record bytes so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    /// Appends a record whose body is the string `body`. `time` 0 means unknown. `attrs` are
    /// attributes pre-encoded by [`encode_attribute`].
    pub fn push_text(&mut self, time: u64, observed: u64, body: &str, attrs: &[u8]) {
        let head = Head {
            time,
            observed,
            ..Head::default()
        };
        self.push_entry_in(None, &head, body, &[attrs]);
    }

    /// [`Encoder::push_text`] for the resource `res` (`None`: the source's own), with the
    /// attributes of several pre-encoded lists.
    pub fn push_text_in(
        &mut self,
        res: Option<&ResourceId>,
        time: u64,
        observed: u64,
        body: &str,
        attrs: &[&[u8]],
    ) {
        let head = Head {
            time,
            observed,
            ..Head::default()
        };
        self.push_entry_in(res, &head, body, attrs);
    }

    /// Appends a record with the fields of `head`, the string `body`, and `attrs` pre-encoded by
    /// [`encode_attribute`] or the `put_*_attribute` functions.
    pub fn push_entry(&mut self, head: &Head, body: &str, attrs: &[u8]) {
        self.push_entry_in(None, head, body, &[attrs]);
    }

    /// [`Encoder::push_entry`] for the resource `res` (`None`: the source's own), with the
    /// attributes of several pre-encoded lists.
    pub fn push_entry_in(
        &mut self,
        res: Option<&ResourceId>,
        head: &Head,
        body: &str,
        attrs: &[&[u8]],
    ) {
        let any_len = 1 + encoded_len_varint(body.len() as u64) + body.len();
        let attrs_len: usize = attrs.iter().map(|a| a.len()).sum();
        let mut len = 9 + 1 + encoded_len_varint(any_len as u64) + any_len + attrs_len;
        if head.time != 0 {
            len += 9;
        }
        if head.severity_number != 0 {
            len += 1 + encoded_len_varint(u64::from(head.severity_number));
        }
        if !head.severity_text.is_empty() {
            let n = head.severity_text.len();
            len += 1 + encoded_len_varint(n as u64) + n;
        }
        let b = &mut self.group(res).buf;
        let before = b.len();
        b.reserve(1 + 10 + len);
        b.extend_from_slice(&[SCOPE_LOGS_LOG_RECORDS]);
        encode_varint(len as u64, b);
        if head.time != 0 {
            b.extend_from_slice(&[RECORD_TIME]);
            b.extend_from_slice(&head.time.to_le_bytes());
        }
        if head.severity_number != 0 {
            b.extend_from_slice(&[RECORD_SEVERITY_NUMBER]);
            encode_varint(u64::from(head.severity_number), b);
        }
        if !head.severity_text.is_empty() {
            b.extend_from_slice(&[RECORD_SEVERITY_TEXT]);
            encode_varint(head.severity_text.len() as u64, b);
            b.extend_from_slice(head.severity_text.as_bytes());
        }
        b.extend_from_slice(&[RECORD_BODY]);
        encode_varint(any_len as u64, b);
        b.extend_from_slice(&[ANY_STRING]);
        encode_varint(body.len() as u64, b);
        b.extend_from_slice(body.as_bytes());
        for a in attrs {
            b.extend_from_slice(a);
        }
        b.extend_from_slice(&[RECORD_OBSERVED_TIME]);
        b.extend_from_slice(&head.observed.to_le_bytes());
        let added = b.len() - before;
        self.counted(added);
    }

    /// Appends a record already encoded as the fields of a `LogRecord` (tag and length are
    /// added here), for the source's own resource.
    pub fn push_encoded(&mut self, record: &[u8]) {
        let b = &mut self.group(None).buf;
        let before = b.len();
        b.reserve(1 + 10 + record.len());
        b.extend_from_slice(&[SCOPE_LOGS_LOG_RECORDS]);
        encode_varint(record.len() as u64, b);
        b.extend_from_slice(record);
        let added = b.len() - before;
        self.counted(added);
    }

    fn counted(&mut self, added: usize) {
        self.groups[self.last].items += 1;
        self.items += 1;
        self.len += added;
    }

    /// Appends a record built as a prost struct (parsed formats).
    pub fn push_record(&mut self, record: &LogRecord) {
        self.push_record_in(None, record);
    }

    /// [`Encoder::push_record`] for the resource `res` (`None`: the source's own).
    pub fn push_record_in(&mut self, res: Option<&ResourceId>, record: &LogRecord) {
        let len = record.encoded_len();
        let b = &mut self.group(res).buf;
        let before = b.len();
        b.reserve(1 + 10 + len);
        b.extend_from_slice(&[SCOPE_LOGS_LOG_RECORDS]);
        encode_varint(len as u64, b);
        record.encode_raw(b);
        let added = b.len() - before;
        self.counted(added);
    }

    /// The finished request and its record count; `None` when empty. The encoder is ready for
    /// the next batch.
    pub fn finish(&mut self) -> Option<(Bytes, u64)> {
        let items = std::mem::take(&mut self.items);
        self.len = 0;
        self.last = 0;
        let mut parts = Vec::new();
        for g in self.groups.iter_mut() {
            let id = g.id.clone();
            let res = match &id {
                Some(id) => &id.0[..],
                None => &self.resource[..],
            };
            if let Some((bytes, _)) = g.finish(res, &self.scope) {
                parts.push(bytes);
            }
        }
        // The other resources' groups live for one batch: the files they belong to may be gone.
        self.groups.truncate(1);
        if items == 0 {
            return None;
        }
        let out = match parts.len() {
            1 => parts.pop().unwrap_or_default(),
            _ => {
                let mut all = BytesMut::with_capacity(parts.iter().map(|p| p.len()).sum());
                for p in parts {
                    all.extend_from_slice(&p);
                }
                all
            }
        };
        Some((out.freeze(), items))
    }
}

/// The fixed fields of a record other than its body and attributes; 0 and "" are left out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Head<'a> {
    /// Unix nanoseconds; 0 means unknown.
    pub time: u64,
    pub observed: u64,
    /// OTLP `SeverityNumber` (1–24).
    pub severity_number: u8,
    pub severity_text: &'a str,
}

/// A string attribute encoded as a `LogRecord.attributes` field, ready to append to records.
pub fn encode_attribute(key: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_str_attribute(&mut out, &[key], value);
    out
}

/// Appends a string attribute whose key is the concatenation of `key` (so a composed key needs
/// no allocation).
pub fn put_str_attribute(out: &mut Vec<u8>, key: &[&str], value: &str) {
    let any_len = 1 + encoded_len_varint(value.len() as u64) + value.len();
    put_attribute_head(out, key, any_len);
    out.push(ANY_STRING);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value.as_bytes());
}

/// Appends an integer attribute.
pub fn put_int_attribute(out: &mut Vec<u8>, key: &[&str], value: i64) {
    let any_len = 1 + encoded_len_varint(value as u64);
    put_attribute_head(out, key, any_len);
    out.push(ANY_INT);
    encode_varint(value as u64, out);
}

/// Appends a boolean attribute.
pub fn put_bool_attribute(out: &mut Vec<u8>, key: &[&str], value: bool) {
    put_attribute_head(out, key, 2);
    out.push(ANY_BOOL);
    out.push(u8::from(value));
}

/// The attribute's tag and length, its key, and the tag and length of its `AnyValue` (of
/// `any_len` bytes, which the caller appends).
fn put_attribute_head(out: &mut Vec<u8>, key: &[&str], any_len: usize) {
    let key_len: usize = key.iter().map(|k| k.len()).sum();
    let kv_len = 1
        + encoded_len_varint(key_len as u64)
        + key_len
        + 1
        + encoded_len_varint(any_len as u64)
        + any_len;
    out.reserve(kv_len + 6);
    out.push(RECORD_ATTRIBUTES);
    encode_varint(kv_len as u64, out);
    out.push(KV_KEY);
    encode_varint(key_len as u64, out);
    for k in key {
        out.extend_from_slice(k.as_bytes());
    }
    out.push(KV_VALUE);
    encode_varint(any_len as u64, out);
}

pub use crate::sources::kv_str;

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use sonde_core::{wire, Signal};

    fn encoder() -> Encoder {
        let resource = Resource {
            attributes: vec![kv_str("host.name", "box")],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "sonde.file".into(),
            ..Default::default()
        };
        Encoder::new(&resource, &scope, 1024)
    }

    #[test]
    fn hand_encoded_records_decode_as_otlp() {
        let mut e = encoder();
        let attr = encode_attribute("log.file.name", "app.log");
        e.push_text(0, 42, "hello", &attr);
        e.push_text(7, 43, &"x".repeat(300), &[]);
        e.push_record(&LogRecord {
            severity_text: "WARN".into(),
            ..Default::default()
        });
        let mut attrs = vec![];
        put_str_attribute(&mut attrs, &["a.", "b"], "c");
        put_int_attribute(&mut attrs, &["n"], -3);
        put_bool_attribute(&mut attrs, &["t"], true);
        let head = Head {
            time: 9,
            observed: 10,
            severity_number: 17,
            severity_text: "err",
        };
        e.push_entry(&head, "entry", &attrs);
        let (bytes, items) = e.finish().unwrap();
        assert_eq!(items, 4);
        assert_eq!(wire::validate(Signal::Logs, &bytes).unwrap(), 4);
        let req = ExportLogsServiceRequest::decode(&bytes[..]).unwrap();
        let rl = &req.resource_logs[0];
        assert_eq!(
            rl.resource.as_ref().unwrap().attributes,
            [kv_str("host.name", "box")]
        );
        let sl = &rl.scope_logs[0];
        assert_eq!(sl.scope.as_ref().unwrap().name, "sonde.file");
        let r = &sl.log_records;
        assert_eq!(
            r[0],
            LogRecord {
                observed_time_unix_nano: 42,
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("hello".into()))
                }),
                attributes: vec![kv_str("log.file.name", "app.log")],
                ..Default::default()
            }
        );
        assert_eq!(r[1].time_unix_nano, 7);
        assert_eq!(r[3].severity_number, 17);
        assert_eq!(r[3].severity_text, "err");
        assert_eq!(r[3].time_unix_nano, 9);
        assert_eq!(
            r[3].attributes,
            [
                kv_str("a.b", "c"),
                KeyValue {
                    key: "n".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(-3))
                    }),
                    ..Default::default()
                },
                KeyValue {
                    key: "t".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::BoolValue(true))
                    }),
                    ..Default::default()
                }
            ]
        );
        assert_eq!(r[2].severity_text, "WARN");
        // The encoder starts afresh.
        assert!(e.finish().is_none());
        e.push_text(0, 1, "again", &[]);
        let (bytes, _) = e.finish().unwrap();
        assert_eq!(wire::validate(Signal::Logs, &bytes).unwrap(), 1);
    }
}
