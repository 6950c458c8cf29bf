//! `format = "cri"`: the line format the CRI runtimes (containerd, CRI-O) write for Kubernetes:
//! `<RFC 3339 time> <stdout|stderr> <tag> <text>`, where the tag's first part is `P` for a
//! partial line (the runtime cut a long line; the following lines of the same stream continue
//! it) or `F` for the last piece. This module only splits one line; joining is the caller's.

use super::Stream;
use crate::sources::file::parse::rfc3339;

/// One CRI line, split.
#[derive(Debug, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub time: u64,
    pub stream: Stream,
    pub partial: bool,
    pub text: &'a str,
}

/// Splits a CRI line; `None` when it is not one.
pub fn parse(line: &str) -> Option<CriLine<'_>> {
    let (time, rest) = line.split_once(' ')?;
    let (stream, rest) = rest.split_once(' ')?;
    // The text is empty for an empty line; some writers leave out the space before it.
    let (tag, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let stream = match stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match tag.split(':').next() {
        Some("P") => true,
        Some("F") => false,
        _ => return None,
    };
    Some(CriLine {
        time: rfc3339(time)?,
        stream,
        partial,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_partial_lines_split() {
        assert_eq!(
            parse("2026-12-07T10:10:10.123456789Z stdout F hello world"),
            Some(CriLine {
                time: 1_796_638_210_123_456_789,
                stream: Stream::Stdout,
                partial: false,
                text: "hello world",
            })
        );
        let p = parse("2026-12-07T10:10:10.5+01:00 stderr P  two  spaces ").unwrap();
        assert_eq!(p.stream, Stream::Stderr);
        assert!(p.partial);
        assert_eq!(p.text, " two  spaces ");
        assert_eq!(p.time, 1_796_638_210_500_000_000 - 3_600_000_000_000);
    }

    #[test]
    fn empty_text_and_tag_parts_are_accepted() {
        assert_eq!(parse("2026-12-07T10:10:10Z stdout F").unwrap().text, "");
        assert_eq!(parse("2026-12-07T10:10:10Z stdout F ").unwrap().text, "");
        assert!(!parse("2026-12-07T10:10:10Z stdout F:x y").unwrap().partial);
    }

    #[test]
    fn other_lines_are_refused() {
        for l in [
            "",
            "hello",
            "2026-12-07T10:10:10Z stdin F x",
            "2026-12-07T10:10:10Z stdout X x",
            "yesterday stdout F x",
            "2026-12-07T10:10:10Z stdout",
        ] {
            assert!(parse(l).is_none(), "{l:?}");
        }
    }
}
