//! `format = "docker"`: the lines of Docker's `json-file` log driver,
//! `{"log":"text\n","stream":"stdout","time":"2026-12-07T10:10:10.123456789Z"}`. A `log` without
//! its trailing newline is a partial line (Docker cuts lines at 16 KiB); the following lines of
//! the same stream continue it. This module only decodes one line; joining is the caller's.

use super::Stream;
use crate::sources::file::parse::rfc3339;
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
}

/// One json-file line, decoded; `text` without its newline.
#[derive(Debug, PartialEq, Eq)]
pub struct DockerLine<'a> {
    /// 0 when the line has no time.
    pub time: u64,
    pub stream: Stream,
    pub partial: bool,
    pub text: Cow<'a, str>,
}

/// Decodes a json-file line; `None` when it is not one (not JSON, no `log`, an unknown stream,
/// a time that is not RFC 3339).
pub fn parse(line: &str) -> Option<DockerLine<'_>> {
    let raw: Raw<'_> = serde_json::from_str(line).ok()?;
    let stream = match raw.stream.as_deref() {
        Some("stdout") | None => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        Some(_) => return None,
    };
    let time = match raw.time.as_deref() {
        Some(t) => rfc3339(t)?,
        None => 0,
    };
    let partial = !raw.log.ends_with('\n');
    let text = match raw.log {
        Cow::Borrowed(s) => Cow::Borrowed(s.strip_suffix('\n').unwrap_or(s)),
        Cow::Owned(mut s) => {
            if s.ends_with('\n') {
                s.pop();
            }
            Cow::Owned(s)
        }
    };
    Some(DockerLine {
        time,
        stream,
        partial,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_decode_with_escapes_and_without_the_newline() {
        let l = parse(
            r#"{"log":"GET /a \"q\" \u00e9\ttab\n","stream":"stderr","time":"2026-12-07T10:10:10.000000001Z"}"#,
        )
        .unwrap();
        assert_eq!(l.text, "GET /a \"q\" é\ttab");
        assert_eq!(l.stream, Stream::Stderr);
        assert!(!l.partial);
        assert_eq!(l.time, 1_796_638_210_000_000_001);
        let l =
            parse(r#"{"log":"plain\n","stream":"stdout","time":"2026-12-07T10:10:10Z"}"#).unwrap();
        assert_eq!(l.text, "plain");
        // Without escapes the text is borrowed from the line.
        let l = parse(r#"{"log":"piece","stream":"stdout"}"#).unwrap();
        assert!(matches!(l.text, Cow::Borrowed("piece")));
    }

    #[test]
    fn a_log_without_newline_is_partial() {
        let l = parse(r#"{"log":"first half ","stream":"stdout","time":"2026-12-07T10:10:10Z"}"#)
            .unwrap();
        assert!(l.partial);
        assert_eq!(l.text, "first half ");
    }

    #[test]
    fn other_lines_are_refused() {
        for l in [
            "plain text",
            r#"{"msg":"x"}"#,
            r#"{"log":"x\n","stream":"stdin"}"#,
            r#"{"log":"x\n","time":"yesterday"}"#,
            r#"{"log":1}"#,
        ] {
            assert!(parse(l).is_none(), "{l}");
        }
    }
}
