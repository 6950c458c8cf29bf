//! From a parsed message to an OTLP log record, encoded straight into the batch with the file
//! source's hand encoder ([`crate::sources::file::encode`]).
//!
//! The mapping (the reference is `docs/sources/syslog.md`):
//! - `time_unix_nano`: the message's timestamp (absent when it has none); `observed_time_unix_nano`:
//!   when the agent read it.
//! - `severity_number` / `severity_text`: from the syslog severity (emerg → FATAL4 … debug →
//!   DEBUG, the names as syslog writes them: `emerg`, `alert`, `crit`, `err`, `warning`,
//!   `notice`, `info`, `debug`).
//! - `body`: the message text (MSG), or the whole text when it did not parse.
//! - attributes: `syslog.facility` (int), `syslog.version` (int, RFC 5424), `syslog.hostname`,
//!   `syslog.appname`, `syslog.procid`, `syslog.msgid`, `syslog.structured_data.<SD-ID>.<name>`
//!   (an element without parameters: `syslog.structured_data.<SD-ID>` = ""), `client.address`
//!   (the sender's IP, UDP and TCP), `syslog.truncated` (true when cut), and
//!   `syslog.parse_error` (the reason) when the text parsed as neither format.

use super::frame::Cut;
use super::parse::{self, Format, Message};
use crate::sources::file::encode::{
    put_bool_attribute, put_int_attribute, put_str_attribute, Encoder, Head,
};

/// OTLP severity numbers for syslog severities 0 (emerg) to 7 (debug).
const SEVERITY_NUMBER: [u8; 8] = [24, 23, 22, 17, 13, 10, 9, 5];
const SEVERITY_TEXT: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Where a message came from and what happened to it on the way.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The sender's IP address, when the transport has one.
    pub peer: Option<&'a str>,
    pub cut: Option<Cut>,
}

/// What encoding one message found, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Parsed,
    Unparsed,
}

/// Encodes records; holds the attribute scratch buffer so a message costs no allocation.
pub struct RecordWriter {
    attrs: Vec<u8>,
}

impl Default for RecordWriter {
    fn default() -> Self {
        RecordWriter {
            attrs: Vec::with_capacity(512),
        }
    }
}

impl RecordWriter {
    /// Parses `bytes` (one message, framing removed; invalid UTF-8 is replaced by U+FFFD) and
    /// appends its record to `enc`. `None` for an empty message (a blank line), which is no
    /// record.
    pub fn write(
        &mut self,
        enc: &mut Encoder,
        bytes: &[u8],
        origin: Origin<'_>,
        now: std::time::SystemTime,
    ) -> Option<Outcome> {
        let text = String::from_utf8_lossy(bytes);
        let text = parse::trim_end(&text);
        if text.is_empty() && origin.cut.is_none() {
            return None;
        }
        let since = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let m = parse::parse(text, since.as_secs() as i64);
        let a = &mut self.attrs;
        a.clear();
        put_fields(a, &m);
        if let Some(peer) = origin.peer {
            put_str_attribute(a, &["client.address"], peer);
        }
        if origin.cut.is_some() {
            put_bool_attribute(a, &["syslog.truncated"], true);
        }
        let outcome = match m.format {
            Format::Unparsed(why) => {
                put_str_attribute(a, &["syslog.parse_error"], why);
                Outcome::Unparsed
            }
            _ => Outcome::Parsed,
        };
        let severity = m.severity.map(usize::from).filter(|s| *s < 8);
        let head = Head {
            time: m.time.unwrap_or(0),
            observed: u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),
            severity_number: severity.map_or(0, |s| SEVERITY_NUMBER[s]),
            severity_text: severity.map_or("", |s| SEVERITY_TEXT[s]),
        };
        enc.push_entry(&head, m.body, a);
        Some(outcome)
    }
}

fn put_fields(a: &mut Vec<u8>, m: &Message<'_>) {
    if let Some(f) = m.facility {
        put_int_attribute(a, &["syslog.facility"], i64::from(f));
    }
    if let Some(v) = m.version {
        put_int_attribute(a, &["syslog.version"], i64::from(v));
    }
    for (key, value) in [
        ("syslog.hostname", m.hostname),
        ("syslog.appname", m.appname),
        ("syslog.procid", m.procid),
        ("syslog.msgid", m.msgid),
    ] {
        if let Some(v) = value {
            put_str_attribute(a, &[key], v);
        }
    }
    // Attribute keys must be unique: a parameter repeated within an element keeps its first
    // value (RFC 5424 allows repeats; they are rare).
    let mut seen: Vec<(&str, &str)> = Vec::new();
    parse::structured_data(m.structured_data, |id, param| match param {
        None => put_str_attribute(a, &["syslog.structured_data.", id], ""),
        Some((name, value)) => {
            if !seen.contains(&(id, name)) {
                seen.push((id, name));
                put_str_attribute(a, &["syslog.structured_data.", id, ".", name], &value);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message as _;
    use std::collections::BTreeMap;

    fn records(messages: &[(&str, Origin<'_>)]) -> Vec<LogRecord> {
        let mut enc = Encoder::new(&Resource::default(), &InstrumentationScope::default(), 1024);
        let mut w = RecordWriter::default();
        for (m, o) in messages {
            w.write(&mut enc, m.as_bytes(), *o, std::time::SystemTime::now());
        }
        let Some((bytes, _)) = enc.finish() else {
            return vec![];
        };
        let req = ExportLogsServiceRequest::decode(&bytes[..]).unwrap();
        req.resource_logs[0].scope_logs[0].log_records.clone()
    }

    fn attrs(r: &LogRecord) -> BTreeMap<String, String> {
        r.attributes
            .iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(s)) => s.clone(),
                    Some(Value::IntValue(i)) => i.to_string(),
                    Some(Value::BoolValue(b)) => b.to_string(),
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), v)
            })
            .collect()
    }

    fn body(r: &LogRecord) -> &str {
        match r.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::StringValue(s)) => s,
            other => panic!("body {other:?}"),
        }
    }

    #[test]
    fn an_rfc5424_message_maps_to_severity_time_and_attributes() {
        let r = records(&[(
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine evntslog 77 ID47 [ex@32473 iut="3" iut="4"][flag] hello"#,
            Origin {
                peer: Some("192.0.2.7"),
                cut: None,
            },
        )]);
        let r = &r[0];
        assert_eq!(
            (r.severity_number, r.severity_text.as_str()),
            (10, "notice")
        );
        assert_eq!(r.time_unix_nano, 1_065_910_455_003_000_000);
        assert!(r.observed_time_unix_nano > r.time_unix_nano);
        assert_eq!(body(r), "hello");
        let a = attrs(r);
        let expect: BTreeMap<String, String> = [
            ("syslog.facility", "20"),
            ("syslog.version", "1"),
            ("syslog.hostname", "mymachine"),
            ("syslog.appname", "evntslog"),
            ("syslog.procid", "77"),
            ("syslog.msgid", "ID47"),
            ("syslog.structured_data.ex@32473.iut", "3"),
            ("syslog.structured_data.flag", ""),
            ("client.address", "192.0.2.7"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(a, expect);
    }

    #[test]
    fn every_severity_has_its_otlp_number_and_name() {
        let texts: Vec<String> = (0..8).map(|s| format!("<{}>x: y", 8 + s)).collect();
        let msgs: Vec<(&str, Origin<'_>)> = texts
            .iter()
            .map(|t| (t.as_str(), Origin::default()))
            .collect();
        let got: Vec<(i32, String)> = records(&msgs)
            .iter()
            .map(|r| (r.severity_number, r.severity_text.clone()))
            .collect();
        let want: Vec<(i32, String)> = SEVERITY_NUMBER
            .iter()
            .zip(SEVERITY_TEXT)
            .map(|(n, t)| (i32::from(*n), t.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unparsed_and_cut_messages_are_kept_with_the_reason() {
        let r = records(&[
            ("no pri here\n", Origin::default()),
            (
                "<13>Dec  7 10:00:00 host app: cut sho",
                Origin {
                    peer: None,
                    cut: Some(Cut::Oversized),
                },
            ),
            ("\r\n", Origin::default()),
            ("bad \u{fffd}", Origin::default()),
        ]);
        assert_eq!(r.len(), 3, "the blank line is no record");
        assert_eq!(body(&r[0]), "no pri here");
        assert_eq!(r[0].severity_number, 0);
        assert_eq!(attrs(&r[0])["syslog.parse_error"], "no <PRI> at the start");
        assert_eq!(body(&r[1]), "cut sho");
        assert_eq!(attrs(&r[1])["syslog.truncated"], "true");
        assert_eq!(attrs(&r[1])["syslog.appname"], "app");
        assert!(!attrs(&r[1]).contains_key("syslog.parse_error"));
        assert_eq!(body(&r[2]), "bad \u{fffd}");
    }
}
