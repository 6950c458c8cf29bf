//! `format = "json"`: a line holding a JSON object becomes a log record whose attributes are the
//! object's fields; the configured message, timestamp and severity fields map onto the body, the
//! record's time and its severity. A line that is not a JSON object stays a text record (its
//! body the line) and is counted.

use super::encode::kv_str;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use serde_json::Value;
use sonde_config::JsonFieldsConfig;

/// Builds the record of one JSON line; `None` when the line is not a JSON object.
pub fn json_record(cfg: &JsonFieldsConfig, line: &str) -> Option<LogRecord> {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(line) else {
        return None;
    };
    let mut record = LogRecord::default();
    if let Some(field) = &cfg.timestamp_field {
        if let Some(t) = map.get(field).and_then(timestamp) {
            record.time_unix_nano = t;
            map.remove(field);
        }
    }
    if let Some(field) = &cfg.severity_field {
        if let Some(v) = map.remove(field) {
            let (number, text) = severity(&v);
            record.severity_number = number as i32;
            record.severity_text = text;
        }
    }
    record.body = Some(match map.remove(&cfg.message_field) {
        Some(v) => any(v),
        None => AnyValue {
            value: Some(any_value::Value::StringValue(line.to_owned())),
        },
    });
    record.attributes = map
        .into_iter()
        .map(|(k, v)| KeyValue {
            key: k,
            value: Some(any(v)),
            ..Default::default()
        })
        .collect();
    Some(record)
}

/// A text record (the body is the line).
pub fn text_record(line: &str) -> LogRecord {
    LogRecord {
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(line.to_owned())),
        }),
        ..Default::default()
    }
}

fn any(v: Value) -> AnyValue {
    use any_value::Value as A;
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(A::BoolValue(b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => A::IntValue(i),
            None => A::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(A::StringValue(s)),
        Value::Array(a) => Some(A::ArrayValue(ArrayValue {
            values: a.into_iter().map(any).collect(),
        })),
        Value::Object(m) => Some(A::KvlistValue(KeyValueList {
            values: m
                .into_iter()
                .map(|(k, v)| KeyValue {
                    key: k,
                    value: Some(any(v)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// Unix nanoseconds from RFC 3339 text or a Unix time number (seconds, ms, µs or ns, told
/// apart by magnitude).
fn timestamp(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => rfc3339(s),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                // Integers stay exact.
                let scale = match i {
                    0 => return None,
                    1..100_000_000_000 => 1_000_000_000,
                    100_000_000_000..100_000_000_000_000 => 1_000_000,
                    100_000_000_000_000..100_000_000_000_000_000 => 1_000,
                    _ => 1,
                };
                return i.checked_mul(scale);
            }
            let f = n.as_f64()?;
            if !f.is_finite() || f <= 0.0 {
                return None;
            }
            let nanos = if f < 1e11 {
                f * 1e9
            } else if f < 1e14 {
                f * 1e6
            } else if f < 1e17 {
                f * 1e3
            } else {
                f
            };
            (nanos < u64::MAX as f64).then_some(nanos as u64)
        }
        _ => None,
    }
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH:MM|±HHMM]` (no zone = UTC) to Unix nanoseconds.
pub fn rfc3339(s: &str) -> Option<u64> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(d).ok()?.parse().ok()
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = match b.get(i + 3) {
                Some(b':') => num(i + 4..i + 6)?,
                _ => num(i + 3..i + 5)?,
            };
            let secs = oh * 3600 + om * 60;
            if sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(nanos).ok()?)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The OTLP severity of a level name (`info`, `WARNING`, `E`, …); unknown names are
/// unspecified.
pub fn severity_of(name: &str) -> SeverityNumber {
    use SeverityNumber as S;
    match name.to_ascii_lowercase().as_str() {
        "trace" | "t" => S::Trace,
        "debug" | "d" | "dbug" => S::Debug,
        "info" | "i" | "information" | "informational" | "notice" => S::Info,
        "warn" | "w" | "warning" => S::Warn,
        "error" | "e" | "err" => S::Error,
        "fatal" | "f" | "critical" | "crit" | "alert" | "emerg" | "emergency" | "panic" => S::Fatal,
        _ => S::Unspecified,
    }
}

/// Unix nanoseconds of a time written as text: RFC 3339, or a Unix time number (seconds, ms,
/// µs or ns, told apart by magnitude; a fraction allowed).
pub fn text_time(s: &str) -> Option<u64> {
    if let Some(t) = rfc3339(s) {
        return Some(t);
    }
    let s = s.trim();
    if let Ok(i) = s.parse::<u64>() {
        return timestamp(&Value::from(i));
    }
    match s.parse::<f64>() {
        Ok(f) if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') => timestamp(&Value::from(f)),
        _ => None,
    }
}

/// The OTLP severity of a level name (`info`, `WARNING`, `E`, …) or a bunyan/pino number.
fn severity(v: &Value) -> (SeverityNumber, String) {
    use SeverityNumber as S;
    match v {
        Value::String(s) => (severity_of(s), s.clone()),
        Value::Number(n) => {
            let sev = match n.as_i64() {
                Some(10) => S::Trace,
                Some(20) => S::Debug,
                Some(30) => S::Info,
                Some(40) => S::Warn,
                Some(50) => S::Error,
                Some(60) => S::Fatal,
                _ => S::Unspecified,
            };
            (sev, n.to_string())
        }
        other => (S::Unspecified, other.to_string()),
    }
}

/// Appends the per-file attributes to a parsed record.
pub fn add_file_attributes(record: &mut LogRecord, attrs: &[(String, String)]) {
    record
        .attributes
        .extend(attrs.iter().map(|(k, v)| kv_str(k, v)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> JsonFieldsConfig {
        JsonFieldsConfig {
            message_field: "msg".into(),
            timestamp_field: Some("ts".into()),
            severity_field: Some("level".into()),
        }
    }

    #[test]
    fn json_fields_map_to_body_time_severity_and_attributes() {
        let r = json_record(
            &cfg(),
            r#"{"ts":"2023-11-14T22:13:20.5Z","level":"warn","msg":"disk low","free":12,"tags":["a"],"ctx":{"k":true}}"#,
        )
        .unwrap();
        assert_eq!(r.time_unix_nano, 1_700_000_000_500_000_000);
        assert_eq!(r.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(r.severity_text, "warn");
        assert_eq!(
            r.body.unwrap().value,
            Some(any_value::Value::StringValue("disk low".into()))
        );
        let keys: Vec<&str> = r.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["ctx", "free", "tags"]);
        assert_eq!(
            r.attributes[1].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(12))
        );
    }

    #[test]
    fn a_line_without_the_message_field_is_the_body_and_bad_json_is_refused() {
        let line = r#"{"a":1}"#;
        let r = json_record(&cfg(), line).unwrap();
        assert_eq!(
            r.body.unwrap().value,
            Some(any_value::Value::StringValue(line.into()))
        );
        assert!(json_record(&cfg(), "not json").is_none());
        assert!(json_record(&cfg(), "[1,2]").is_none());
    }

    #[test]
    fn timestamps_parse_from_text_and_numbers() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            rfc3339("2023-11-14 22:13:20.123456789"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(rfc3339("2023-13-14T22:13:20Z"), None);
        assert_eq!(rfc3339("yesterday"), None);
        let n = |v: serde_json::Value| timestamp(&v);
        assert_eq!(
            n(serde_json::json!(1_700_000_000)),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            n(serde_json::json!(1_700_000_000_123u64)),
            Some(1_700_000_000_123_000_000)
        );
        assert_eq!(n(serde_json::json!(1.5)), Some(1_500_000_000));
    }

    #[test]
    fn severities_map_from_names_and_numbers() {
        assert_eq!(
            severity(&serde_json::json!("ERROR")).0,
            SeverityNumber::Error
        );
        assert_eq!(severity(&serde_json::json!(30)).0, SeverityNumber::Info);
        assert_eq!(
            severity(&serde_json::json!("odd")).0,
            SeverityNumber::Unspecified
        );
    }
}
