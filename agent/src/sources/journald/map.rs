//! From a journal entry to an OTLP log record, encoded straight to protobuf (no prost structs):
//! `MESSAGE` is the body (bytes when it is not UTF-8), `PRIORITY` the severity,
//! `_SOURCE_REALTIME_TIMESTAMP` (else the entry's realtime) the time, the entry's realtime the
//! observed time, and the other fields attributes — under their semantic-convention name where
//! one exists ([`SEMCONV`]), as `journald.<lowercase name>` otherwise.
//!
//! Also the filters that need the fields: units and priority.

use super::object::EntryObject;
use prost::encoding::{encode_varint, encoded_len_varint};

// The field tags of `LogRecord`, `AnyValue` and `KeyValue`, shared with the file source's encoder.
use crate::sources::file::encode::{
    ANY_BYTES, ANY_INT, ANY_STRING, KV_KEY, KV_VALUE, RECORD_ATTRIBUTES, RECORD_BODY,
    RECORD_OBSERVED_TIME, RECORD_SEVERITY_NUMBER, RECORD_SEVERITY_TEXT, RECORD_TIME,
};

/// Journal fields with a semantic-convention attribute name, and whether the value is an
/// integer. With `fields = "default"` these are the only fields kept as attributes.
pub const SEMCONV: &[(&str, &str, bool)] = &[
    ("_PID", "process.pid", true),
    ("_COMM", "process.executable.name", false),
    ("_EXE", "process.executable.path", false),
    ("_CMDLINE", "process.command_line", false),
    ("_HOSTNAME", "host.name", false),
    ("CODE_FILE", "code.filepath", false),
    ("CODE_LINE", "code.lineno", true),
    ("CODE_FUNC", "code.function", false),
];

/// Fields kept with `fields = "default"` besides [`SEMCONV`]'s, as `journald.<lowercase>`.
pub const DEFAULT_OTHERS: &[&str] = &[
    "_SYSTEMD_UNIT",
    "_BOOT_ID",
    "SYSLOG_IDENTIFIER",
    "_TRANSPORT",
];

/// Fields mapped onto the record itself, never attributes.
const CONSUMED: &[&str] = &["MESSAGE", "PRIORITY", "_SOURCE_REALTIME_TIMESTAMP"];

/// Splits `NAME=value`; a field without `=` is not a field.
pub fn split(field: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = memchr::memchr(b'=', field)?;
    Some((&field[..eq], &field[eq + 1..]))
}

/// The value of the first field called `name`.
pub fn get<'a>(fields: &'a [Vec<u8>], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .filter_map(|f| split(f))
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, v)| v)
}

/// The syslog priority (0 … 7) of `PRIORITY`, if it has a valid one.
pub fn priority(fields: &[Vec<u8>]) -> Option<u8> {
    match get(fields, "PRIORITY")? {
        [d @ b'0'..=b'7'] => Some(d - b'0'),
        _ => None,
    }
}

/// OTLP severity number and text of a syslog priority.
pub fn severity(p: u8) -> (u64, &'static str) {
    match p {
        0 => (24, "emerg"),
        1 => (23, "alert"),
        2 => (21, "crit"),
        3 => (17, "err"),
        4 => (13, "warning"),
        5 => (10, "notice"),
        6 => (9, "info"),
        _ => (5, "debug"),
    }
}

/// Which entries are kept.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub units: Vec<String>,
    pub exclude_units: Vec<String>,
    /// Highest priority number kept (7 keeps everything).
    pub max_priority: u8,
}

impl Filter {
    pub fn keeps(&self, fields: &[Vec<u8>]) -> bool {
        if let Some(p) = priority(fields) {
            if p > self.max_priority {
                return false;
            }
        }
        if self.units.is_empty() && self.exclude_units.is_empty() {
            return true;
        }
        let unit = get(fields, "_SYSTEMD_UNIT").unwrap_or_default();
        let is = |u: &String| u.as_bytes() == unit;
        (self.units.is_empty() || self.units.iter().any(is)) && !self.exclude_units.iter().any(is)
    }
}

/// Encodes log records of journal entries.
#[derive(Debug, Default)]
pub struct Mapper {
    /// Only [`SEMCONV`] and [`DEFAULT_OTHERS`] become attributes.
    pub default_only: bool,
    attrs: Vec<u8>,
    names: Vec<Vec<u8>>,
    key: String,
}

impl Mapper {
    pub fn new(default_only: bool) -> Self {
        Mapper {
            default_only,
            ..Default::default()
        }
    }

    /// Writes the `LogRecord` of `entry` (without its own tag and length) into `out`.
    pub fn encode(&mut self, entry: &EntryObject, fields: &[Vec<u8>], out: &mut Vec<u8>) {
        self.attrs.clear();
        self.names.clear();
        let mut message: Option<&[u8]> = None;
        let mut source_time: Option<u64> = None;
        for f in fields {
            let Some((name, value)) = split(f) else {
                continue;
            };
            match name {
                b"MESSAGE" => {
                    message.get_or_insert(value);
                }
                b"_SOURCE_REALTIME_TIMESTAMP" => {
                    source_time = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
                }
                _ if self.names.iter().any(|n| n == name) => {}
                _ => {
                    self.names.push(name.to_vec());
                    self.attribute(name, value);
                }
            }
        }
        let observed = entry.realtime.saturating_mul(1000);
        let time = source_time.map_or(observed, |t| t.saturating_mul(1000));
        out.push(RECORD_TIME);
        out.extend_from_slice(&time.to_le_bytes());
        if let Some(p) = priority(fields) {
            let (number, text) = severity(p);
            out.push(RECORD_SEVERITY_NUMBER);
            encode_varint(number, out);
            put_bytes(out, RECORD_SEVERITY_TEXT, text.as_bytes());
        }
        if let Some(m) = message {
            let tag = if std::str::from_utf8(m).is_ok() {
                ANY_STRING
            } else {
                ANY_BYTES
            };
            out.push(RECORD_BODY);
            encode_varint(bytes_len(m.len()) as u64, out);
            put_bytes(out, tag, m);
        }
        out.extend_from_slice(&self.attrs);
        out.push(RECORD_OBSERVED_TIME);
        out.extend_from_slice(&observed.to_le_bytes());
    }

    /// Appends one attribute for field `name` to `self.attrs`, unless it is not kept.
    fn attribute(&mut self, name: &[u8], value: &[u8]) {
        let Ok(name) = std::str::from_utf8(name) else {
            return;
        };
        if CONSUMED.contains(&name) {
            return;
        }
        let semconv = SEMCONV.iter().find(|(f, _, _)| *f == name);
        if self.default_only && semconv.is_none() && !DEFAULT_OTHERS.contains(&name) {
            return;
        }
        self.key.clear();
        let int = match semconv {
            Some((_, key, int)) => {
                self.key.push_str(key);
                int.then(|| std::str::from_utf8(value).ok()?.parse::<i64>().ok())
                    .flatten()
            }
            None => {
                self.key.push_str("journald.");
                self.key
                    .extend(name.chars().map(|c| c.to_ascii_lowercase()));
                None
            }
        };
        let mut any = Vec::with_capacity(value.len() + 12);
        match int {
            Some(i) => {
                any.push(ANY_INT);
                encode_varint(i as u64, &mut any);
            }
            None if std::str::from_utf8(value).is_ok() => put_bytes(&mut any, ANY_STRING, value),
            None => put_bytes(&mut any, ANY_BYTES, value),
        }
        let kv_len = bytes_len(self.key.len()) + bytes_len(any.len());
        let a = &mut self.attrs;
        a.push(RECORD_ATTRIBUTES);
        encode_varint(kv_len as u64, a);
        put_bytes(a, KV_KEY, self.key.as_bytes());
        put_bytes(a, KV_VALUE, &any);
    }
}

/// A LEN field of `len` payload bytes: tag, length, payload.
fn bytes_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    encode_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use prost::Message;

    fn entry() -> EntryObject {
        EntryObject {
            offset: 8,
            seqnum: 1,
            realtime: 1_700_000_000_000_001,
            monotonic: 5,
            boot_id: [0; 16],
            xor_hash: 0,
            items: vec![],
        }
    }

    fn f(s: &[u8]) -> Vec<u8> {
        s.to_vec()
    }

    fn attr<'a>(r: &'a LogRecord, k: &str) -> Option<&'a Value> {
        r.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn fields_map_to_the_record_and_semantic_attributes() {
        let fields = vec![
            f(b"MESSAGE=hello"),
            f(b"PRIORITY=3"),
            f(b"_PID=42"),
            f(b"_COMM=nginx"),
            f(b"CODE_LINE=7"),
            f(b"_SYSTEMD_UNIT=nginx.service"),
            f(b"_SOURCE_REALTIME_TIMESTAMP=1699999999000000"),
            f(b"MY_FIELD=\xff\xfe"),
            f(b"MY_FIELD=second"),
        ];
        let mut out = vec![];
        Mapper::new(false).encode(&entry(), &fields, &mut out);
        let r = LogRecord::decode(&out[..]).unwrap();
        assert_eq!(r.time_unix_nano, 1_699_999_999_000_000_000);
        assert_eq!(r.observed_time_unix_nano, 1_700_000_000_000_001_000);
        assert_eq!((r.severity_number, r.severity_text.as_str()), (17, "err"));
        assert_eq!(
            r.body.clone().unwrap().value,
            Some(Value::StringValue("hello".into()))
        );
        assert_eq!(attr(&r, "process.pid"), Some(&Value::IntValue(42)));
        assert_eq!(attr(&r, "code.lineno"), Some(&Value::IntValue(7)));
        assert_eq!(
            attr(&r, "process.executable.name"),
            Some(&Value::StringValue("nginx".into()))
        );
        assert_eq!(
            attr(&r, "journald._systemd_unit"),
            Some(&Value::StringValue("nginx.service".into()))
        );
        assert_eq!(
            attr(&r, "journald.my_field"),
            Some(&Value::BytesValue(vec![0xff, 0xfe])),
            "first value kept, as bytes"
        );
        assert_eq!(r.attributes.len(), 5);
        let mut out = vec![];
        Mapper::new(true).encode(&entry(), &fields, &mut out);
        let r = LogRecord::decode(&out[..]).unwrap();
        assert_eq!(r.attributes.len(), 4, "MY_FIELD is not in the default set");
    }

    #[test]
    fn a_binary_message_is_a_bytes_body_and_time_defaults_to_realtime() {
        let mut out = vec![];
        Mapper::new(false).encode(&entry(), &[f(b"MESSAGE=\x00\xff")], &mut out);
        let r = LogRecord::decode(&out[..]).unwrap();
        assert_eq!(
            r.body.unwrap().value,
            Some(Value::BytesValue(vec![0, 0xff]))
        );
        assert_eq!(r.time_unix_nano, r.observed_time_unix_nano);
        assert_eq!(r.severity_number, 0);
    }

    #[test]
    fn filters_keep_units_and_priorities() {
        let e = |unit: &[u8], p: &[u8]| {
            let mut u = b"_SYSTEMD_UNIT=".to_vec();
            u.extend_from_slice(unit);
            let mut pr = b"PRIORITY=".to_vec();
            pr.extend_from_slice(p);
            vec![u, pr]
        };
        let f = Filter {
            units: vec!["a.service".into()],
            exclude_units: vec![],
            max_priority: 6,
        };
        assert!(f.keeps(&e(b"a.service", b"6")));
        assert!(!f.keeps(&e(b"a.service", b"7")));
        assert!(!f.keeps(&e(b"b.service", b"1")));
        let f = Filter {
            units: vec![],
            exclude_units: vec!["b.service".into()],
            max_priority: 7,
        };
        assert!(f.keeps(&e(b"a.service", b"x")));
        assert!(!f.keeps(&e(b"b.service", b"1")));
    }
}
