//! `format = "regex"`: a regular expression with named captures. Every capture that matched
//! becomes a string attribute, except `time` (the record's time: RFC 3339 text, Unix seconds /
//! ms / µs / ns, or the configured strftime `time_format`), `severity` (the severity) and
//! `message` or `body` (the body; without one, the whole line is the body). A capture whose
//! value does not parse as a time stays an attribute.

use crate::sources::file::parse::{severity_of, text_time};
use crate::sources::kv_str;
use chrono::{DateTime, NaiveDateTime};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use regex::Regex;

/// A compiled `format = "regex"`.
#[derive(Debug, Clone)]
pub struct RegexFormat {
    re: Regex,
    /// The capture names by group index (`None` for unnamed groups).
    names: Vec<Option<String>>,
    time_format: Option<String>,
}

impl RegexFormat {
    pub fn new(pattern: &str, time_format: Option<String>) -> Result<Self, regex::Error> {
        let re = Regex::new(pattern)?;
        let names = re.capture_names().map(|n| n.map(str::to_owned)).collect();
        Ok(RegexFormat {
            re,
            names,
            time_format,
        })
    }

    /// The record of `line`; `None` when the pattern does not match it.
    pub fn record(&self, line: &str) -> Option<LogRecord> {
        let caps = self.re.captures(line)?;
        let mut r = LogRecord::default();
        let mut body = None;
        for (i, name) in self.names.iter().enumerate() {
            let (Some(name), Some(m)) = (name, caps.get(i)) else {
                continue;
            };
            let v = m.as_str();
            match name.as_str() {
                "message" | "body" if body.is_none() => body = Some(v.to_owned()),
                "severity" => {
                    r.severity_number = severity_of(v) as i32;
                    r.severity_text = v.to_owned();
                }
                "time" => match self.time(v) {
                    Some(t) => r.time_unix_nano = t,
                    None => r.attributes.push(kv_str(name, v)),
                },
                _ => r.attributes.push(kv_str(name, v)),
            }
        }
        r.body = Some(AnyValue {
            value: Some(any_value::Value::StringValue(
                body.unwrap_or_else(|| line.to_owned()),
            )),
        });
        Some(r)
    }

    /// Unix nanoseconds of a `time` capture. A format without a zone is read as UTC.
    fn time(&self, v: &str) -> Option<u64> {
        let Some(f) = &self.time_format else {
            return text_time(v);
        };
        let nanos = match DateTime::parse_from_str(v, f) {
            Ok(t) => t.timestamp_nanos_opt(),
            Err(_) => NaiveDateTime::parse_from_str(v, f)
                .ok()?
                .and_utc()
                .timestamp_nanos_opt(),
        }?;
        u64::try_from(nanos).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::SeverityNumber;

    fn body(r: &LogRecord) -> &str {
        match r.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s,
            _ => panic!("no string body"),
        }
    }

    #[test]
    fn captures_map_to_time_severity_body_and_attributes() {
        let f = RegexFormat::new(
            r"^(?P<time>\S+) \[(?P<severity>\w+)\] (?P<component>\w+): (?P<message>.*)$",
            None,
        )
        .unwrap();
        let r = f
            .record("2026-12-07T10:10:10.25Z [ERROR] db: connection refused")
            .unwrap();
        assert_eq!(r.time_unix_nano, 1_796_638_210_250_000_000);
        assert_eq!(r.severity_number, SeverityNumber::Error as i32);
        assert_eq!(r.severity_text, "ERROR");
        assert_eq!(body(&r), "connection refused");
        assert_eq!(r.attributes, [kv_str("component", "db")]);
        assert!(f.record("no match here").is_none());
    }

    #[test]
    fn a_strftime_time_format_is_used() {
        // The Apache / nginx access log.
        let f = RegexFormat::new(
            r#"^(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d+)"#,
            Some("%d/%b/%Y:%H:%M:%S %z".into()),
        )
        .unwrap();
        let line = r#"10.0.0.1 - - [07/Dec/2026:11:10:10 +0100] "GET / HTTP/1.1" 200"#;
        let r = f.record(line).unwrap();
        assert_eq!(r.time_unix_nano, 1_796_638_210_000_000_000);
        assert_eq!(body(&r), line, "no message capture: the line is the body");
        let keys: Vec<&str> = r.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["client", "request", "status"]);
        // Without a zone in the format, UTC.
        let f =
            RegexFormat::new(r"^(?P<time>[^|]+)\|", Some("%Y-%m-%d %H:%M:%S%.f".into())).unwrap();
        assert_eq!(
            f.record("2026-12-07 10:10:10.5|x").unwrap().time_unix_nano,
            1_796_638_210_500_000_000
        );
        // A time that does not parse stays an attribute.
        let r = f.record("yesterday|x").unwrap();
        assert_eq!(r.time_unix_nano, 0);
        assert_eq!(r.attributes, [kv_str("time", "yesterday")]);
    }

    #[test]
    fn epoch_times_parse_without_a_format() {
        let f = RegexFormat::new(r"^(?P<time>\d+(\.\d+)?) (?P<body>.*)", None).unwrap();
        let r = f.record("1796638210123 hello").unwrap();
        assert_eq!(r.time_unix_nano, 1_796_638_210_123_000_000);
        assert_eq!(body(&r), "hello");
    }
}
