//! `format = "logfmt"`: `key=value` pairs separated by spaces, values bare or double-quoted
//! with escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\uXXXX`, …); a key alone has an empty value.
//! `msg` (or `message`) becomes the body, `level` (or `lvl`) the severity, `time` (or `ts`)
//! the record's time when it parses; every other pair is a string attribute.

use crate::sources::file::parse::{severity_of, text_time};
use crate::sources::kv_str;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use std::borrow::Cow;

/// The pairs of a logfmt line; `None` when the line is not logfmt (an unterminated quote, a
/// bad escape, a pair without a key, or no `key=value` pair at all).
pub fn pairs(line: &str) -> Option<Vec<(&str, Cow<'_, str>)>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut with_value = false;
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'"' {
            i += 1;
        }
        let key = &line[start..i];
        if key.is_empty() {
            return None;
        }
        if b.get(i) != Some(&b'=') {
            if b.get(i) == Some(&b'"') {
                return None;
            }
            out.push((key, Cow::Borrowed("")));
            continue;
        }
        i += 1;
        with_value = true;
        if b.get(i) == Some(&b'"') {
            let (v, next) = quoted(line, i + 1)?;
            out.push((key, v));
            i = next;
        } else {
            let vs = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                if b[i] == b'"' {
                    return None;
                }
                i += 1;
            }
            out.push((key, Cow::Borrowed(&line[vs..i])));
        }
    }
    with_value.then_some(out)
}

/// The quoted value starting at `from` (just after the opening quote) and the index after the
/// closing quote.
fn quoted(line: &str, from: usize) -> Option<(Cow<'_, str>, usize)> {
    let b = line.as_bytes();
    let mut i = from;
    while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
        i += 1;
    }
    if b.get(i) == Some(&b'"') {
        return Some((Cow::Borrowed(&line[from..i]), i + 1));
    }
    let mut s = String::from(&line[from..i]);
    let mut chars = line.get(i..)?.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((Cow::Owned(s), i + at + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    '"' | '\\' | '/' => s.push(e),
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    'b' => s.push('\u{8}'),
                    'f' => s.push('\u{c}'),
                    'u' => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            code = code * 16 + chars.next()?.1.to_digit(16)?;
                        }
                        s.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                    }
                    _ => return None,
                }
            }
            c => s.push(c),
        }
    }
    None
}

/// The record of a logfmt line; `None` when the line is not logfmt.
pub fn record(line: &str) -> Option<LogRecord> {
    let pairs = pairs(line)?;
    let mut r = LogRecord::default();
    let mut body = None;
    for (k, v) in pairs {
        match k {
            "msg" | "message" if body.is_none() => body = Some(v.into_owned()),
            "level" | "lvl" if r.severity_text.is_empty() => {
                r.severity_number = severity_of(&v) as i32;
                r.severity_text = v.into_owned();
            }
            "time" | "ts" if r.time_unix_nano == 0 => match text_time(&v) {
                Some(t) => r.time_unix_nano = t,
                None => r.attributes.push(kv_str(k, &v)),
            },
            _ => r.attributes.push(kv_str(k, &v)),
        }
    }
    r.body = Some(AnyValue {
        value: Some(any_value::Value::StringValue(
            body.unwrap_or_else(|| line.to_owned()),
        )),
    });
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::SeverityNumber;

    #[test]
    fn bare_and_quoted_values_with_escapes() {
        let p = pairs(r#"a=1 b="two words" c="q\"uote\\ \n\u00e9" flag d= e="""#).unwrap();
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        assert_eq!(
            p,
            [
                ("a", "1"),
                ("b", "two words"),
                ("c", "q\"uote\\ \né"),
                ("flag", ""),
                ("d", ""),
                ("e", "")
            ]
        );
    }

    #[test]
    fn bad_lines_are_refused() {
        for l in [
            "just some words",
            "",
            r#"a="unterminated"#,
            r#"a="bad \q escape""#,
            "=value",
            r#"a=b"c"#,
            r#"a="\u12""#,
        ] {
            assert!(pairs(l).is_none(), "{l:?}");
        }
    }

    #[test]
    fn well_known_keys_map_to_body_severity_and_time() {
        let r = record(r#"ts=2026-12-07T10:10:10Z level=warn msg="disk low" free=12"#).unwrap();
        assert_eq!(r.time_unix_nano, 1_796_638_210_000_000_000);
        assert_eq!(r.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(r.severity_text, "warn");
        assert_eq!(
            r.body.unwrap().value,
            Some(any_value::Value::StringValue("disk low".into()))
        );
        assert_eq!(r.attributes, [kv_str("free", "12")]);
        // Without msg the line is the body; a time that does not parse stays an attribute.
        let r = record("lvl=E time=soon").unwrap();
        assert_eq!(r.severity_number, SeverityNumber::Error as i32);
        assert_eq!(r.time_unix_nano, 0);
        assert_eq!(r.attributes, [kv_str("time", "soon")]);
        assert_eq!(
            r.body.unwrap().value,
            Some(any_value::Value::StringValue("lvl=E time=soon".into()))
        );
        assert_eq!(
            record("ts=1796638210.5 msg=x").unwrap().time_unix_nano,
            1_796_638_210_500_000_000
        );
    }

    /// `v` written as logfmt writers quote it.
    fn quote(v: &str) -> String {
        let mut out = String::from("\"");
        for c in v.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        #[test]
        fn any_input_parses_or_is_refused_without_panicking(line in "\\PC{0,80}") {
            let _ = pairs(&line);
            let _ = record(&line);
        }

        #[test]
        fn written_pairs_read_back(
            kvs in proptest::collection::vec(("[a-z_.]{1,8}", "\\PC{0,20}"), 1..6)
        ) {
            let line: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
            let line = line.join(" ");
            let got = pairs(&line).expect("written as logfmt");
            let got: Vec<(String, String)> =
                got.into_iter().map(|(k, v)| (k.to_owned(), v.into_owned())).collect();
            proptest::prop_assert_eq!(got, kvs);
        }
    }
}
