//! W3C `tracestate` parsing and the OpenTelemetry `ot` entry's edit.
//!
//! Owns [`TraceState`] (a validated, borrowed view of a header: its members and the `ot`
//! entry's `th`/`rv` sub-keys) and [`TraceState::write_with_threshold`]. Parsing never
//! allocates and never panics; a header that breaks the W3C list rules is refused as a
//! whole, a bad `th` or `rv` only makes that sub-key absent.
//!
//! Rules applied (W3C Trace Context, "tracestate"; OpenTelemetry "TraceState Handling"):
//! - members are `key=value` separated by `,` with optional spaces or tabs around; empty
//!   members are allowed and dropped on rewrite; at most 32 members; keys are unique;
//! - a key is `lcalpha *(lcalpha / digit / "_" / "-" / "*" / "/")` of at most 256 characters,
//!   or `tenant@system` (tenant of at most 241 characters starting with a letter or digit,
//!   system of at most 14 starting with a letter);
//! - a value is 1–256 printable ASCII characters other than `,` and `=`, not ending in a space;
//! - the `ot` value is `key:value` pairs separated by `;`, keys `lcalpha *(lcalpha / digit)`,
//!   values of `[A-Za-z0-9._-]`, at most 256 characters; `th` is 1–14 hex digits, `rv`
//!   exactly 14.
//! - on rewrite the `ot` entry moves to the front (W3C: a modified entry goes left), other
//!   members keep their order; when a new `ot` entry would make 33 members, the right-most
//!   member is dropped (W3C's rule for adding an entry to a full list).

use super::threshold::{Randomness, Threshold};

/// The most members a tracestate may have.
pub const MAX_MEMBERS: usize = 32;
/// The longest `ot` value (and any member value).
pub const MAX_VALUE_LEN: usize = 256;

/// A header that breaks the W3C list rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceStateError {
    #[error("tracestate member {0} is not `key=value` with a valid key and value")]
    BadMember(usize),
    #[error("tracestate has more than {MAX_MEMBERS} members")]
    TooManyMembers,
    #[error("tracestate key of member {0} appears twice")]
    DuplicateKey(usize),
    #[error("the `ot` value would exceed {MAX_VALUE_LEN} characters")]
    OtTooLong,
    #[error("a threshold that keeps nothing has no `th` encoding")]
    NeverThreshold,
}

/// A validated view of a tracestate header.
#[derive(Debug, Clone, Copy)]
pub struct TraceState<'a> {
    header: &'a str,
    members: usize,
    /// The `ot` value, when present and well-formed.
    ot: Option<&'a str>,
    /// An `ot` entry is present but its value breaks the `ot` grammar.
    pub ot_malformed: bool,
    /// The `th` sub-key, when present and valid.
    pub th: Option<Threshold>,
    /// A `th` sub-key is present but invalid.
    pub th_invalid: bool,
    /// The `rv` sub-key, when present and valid.
    pub rv: Option<Randomness>,
    /// An `rv` sub-key is present but invalid.
    pub rv_invalid: bool,
}

impl<'a> TraceState<'a> {
    /// Validates a header and reads its `ot` entry. An empty header is valid and empty.
    pub fn parse(header: &'a str) -> Result<TraceState<'a>, TraceStateError> {
        let mut ts = TraceState {
            header,
            members: 0,
            ot: None,
            ot_malformed: false,
            th: None,
            th_invalid: false,
            rv: None,
            rv_invalid: false,
        };
        for (i, (key, value)) in members(header).enumerate() {
            let (Some(key), Some(value)) = (key, value) else {
                return Err(TraceStateError::BadMember(i));
            };
            if !valid_key(key) || !valid_value(value) {
                return Err(TraceStateError::BadMember(i));
            }
            ts.members += 1;
            if ts.members > MAX_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            if members(header).take(i).any(|(k, _)| k == Some(key)) {
                return Err(TraceStateError::DuplicateKey(i));
            }
            if key == "ot" {
                if valid_ot(value) {
                    ts.ot = Some(value);
                } else {
                    ts.ot_malformed = true;
                }
            }
        }
        if let Some(ot) = ts.ot {
            for (k, v) in sub_keys(ot) {
                match k {
                    "th" => {
                        ts.th = Threshold::parse_th(v);
                        ts.th_invalid = ts.th.is_none();
                    }
                    "rv" => {
                        ts.rv = Randomness::parse_rv(v);
                        ts.rv_invalid = ts.rv.is_none();
                    }
                    _ => {}
                }
            }
        }
        Ok(ts)
    }

    /// The `ot` value, when present and well-formed.
    pub fn ot(&self) -> Option<&'a str> {
        self.ot
    }

    /// Writes the header with `th` set to `threshold` into `out` (cleared first): the `ot`
    /// entry becomes `th:…`, then the valid `rv`, then the other sub-keys in their order,
    /// and moves to the front. A malformed `ot` value or an invalid `th`/`rv` is dropped.
    /// Refused when the `ot` value would exceed 256 characters or `threshold` is NEVER;
    /// `out` is then left empty.
    pub fn write_with_threshold(
        &self,
        threshold: Threshold,
        out: &mut String,
    ) -> Result<(), TraceStateError> {
        out.clear();
        let Some(th) = threshold.th() else {
            return Err(TraceStateError::NeverThreshold);
        };
        out.push_str("ot=th:");
        out.push_str(th.as_str());
        if let Some(rv) = self.rv {
            out.push_str(";rv:");
            push_hex14(out, rv.value());
        }
        if let Some(ot) = self.ot {
            for (k, v) in sub_keys(ot) {
                if k != "th" && k != "rv" {
                    out.push(';');
                    out.push_str(k);
                    out.push(':');
                    out.push_str(v);
                }
            }
        }
        if out.len() - "ot=".len() > MAX_VALUE_LEN {
            out.clear();
            return Err(TraceStateError::OtTooLong);
        }
        let mut kept = 1;
        for (key, value) in members(self.header) {
            let (Some(key), Some(value)) = (key, value) else {
                continue;
            };
            if key == "ot" {
                continue;
            }
            if kept == MAX_MEMBERS {
                break; // adding `ot` to a full list drops the right-most members
            }
            out.push(',');
            out.push_str(key);
            out.push('=');
            out.push_str(value);
            kept += 1;
        }
        Ok(())
    }
}

fn push_hex14(out: &mut String, v: u64) {
    for shift in (0..14).rev() {
        let nibble = ((v >> (shift * 4)) & 0xf) as u8;
        out.push(char::from(if nibble < 10 {
            b'0' + nibble
        } else {
            b'a' + nibble - 10
        }));
    }
}

/// Non-empty members as (key, value); `None` parts mark a member without `=`.
fn members(header: &str) -> impl Iterator<Item = (Option<&str>, Option<&str>)> {
    header
        .split(',')
        .map(|m| m.trim_matches(|c| c == ' ' || c == '\t'))
        .filter(|m| !m.is_empty())
        .map(|m| match m.split_once('=') {
            Some((k, v)) => (Some(k), Some(v)),
            None => (None, None),
        })
}

fn sub_keys(ot: &str) -> impl Iterator<Item = (&str, &str)> {
    ot.split(';').filter_map(|kv| kv.split_once(':'))
}

fn lcalpha(b: u8) -> bool {
    b.is_ascii_lowercase()
}

fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    match key.split_once('@') {
        None => {
            b.len() <= 256
                && b.first().is_some_and(|&c| lcalpha(c))
                && b.iter().all(|&c| key_char(c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            (1..=241).contains(&t.len())
                && t.first().is_some_and(|&c| lcalpha(c) || c.is_ascii_digit())
                && t.iter().all(|&c| key_char(c))
                && (1..=14).contains(&s.len())
                && s.first().is_some_and(|&c| lcalpha(c))
                && s.iter().all(|&c| key_char(c))
        }
    }
}

fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    (1..=MAX_VALUE_LEN).contains(&b.len())
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b.last().is_some_and(|&c| c != b' ')
}

fn valid_ot(value: &str) -> bool {
    value.len() <= MAX_VALUE_LEN
        && value.split(';').all(|kv| match kv.split_once(':') {
            Some((k, v)) => {
                k.as_bytes().first().is_some_and(|&c| lcalpha(c))
                    && k.bytes().all(|c| lcalpha(c) || c.is_ascii_digit())
                    && v.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
            }
            None => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(h: &str) -> TraceState<'_> {
        match TraceState::parse(h) {
            Ok(t) => t,
            Err(e) => panic!("{h}: {e}"),
        }
    }

    fn rewrite(h: &str, th: &str) -> String {
        let t = Threshold::parse_th(th).unwrap_or(Threshold::NEVER);
        let mut out = String::new();
        match parse(h).write_with_threshold(t, &mut out) {
            Ok(()) => out,
            Err(e) => panic!("{h}: {e}"),
        }
    }

    #[test]
    fn reads_th_and_rv_from_the_ot_entry() {
        let t = parse("vendor=abc, ot=th:c;rv:0123456789abcd;x:1 ,other@sys=v");
        assert_eq!(t.th.map(Threshold::value), Some(0xc0000000000000));
        assert_eq!(t.rv.map(Randomness::value), Some(0x0123456789abcd));
        assert!(!t.th_invalid && !t.rv_invalid && !t.ot_malformed);
        assert_eq!(t.ot(), Some("th:c;rv:0123456789abcd;x:1"));
        let empty = parse("");
        assert_eq!((empty.th, empty.rv, empty.ot()), (None, None, None));
    }

    #[test]
    fn bad_sub_values_are_absent_and_flagged() {
        let t = parse("ot=th:xyz;rv:123");
        assert_eq!((t.th, t.rv), (None, None));
        assert!(t.th_invalid && t.rv_invalid);
        let t = parse("ot=th:123456789abcdef"); // 15 digits
        assert!(t.th_invalid);
        let t = parse("ot=th;rv");
        assert!(t.ot_malformed && t.th.is_none());
        let t = parse("ot=TH:8");
        assert!(t.ot_malformed);
    }

    #[test]
    fn broken_headers_are_refused() {
        assert_eq!(
            TraceState::parse("novalue").err(),
            Some(TraceStateError::BadMember(0))
        );
        assert_eq!(
            TraceState::parse("a=1,B=2").err(),
            Some(TraceStateError::BadMember(1))
        );
        assert_eq!(
            TraceState::parse("a=1,a=2").err(),
            Some(TraceStateError::DuplicateKey(1))
        );
        assert_eq!(
            TraceState::parse("a=x,y").err(),
            Some(TraceStateError::BadMember(1))
        );
        assert_eq!(
            TraceState::parse("a=b=c").err(),
            Some(TraceStateError::BadMember(0))
        );
        assert_eq!(
            TraceState::parse("a=").err(),
            Some(TraceStateError::BadMember(0))
        );
        assert_eq!(
            TraceState::parse("a=\u{e9}").err(),
            Some(TraceStateError::BadMember(0))
        );
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            TraceState::parse(&many.join(",")).err(),
            Some(TraceStateError::TooManyMembers)
        );
        assert!(TraceState::parse(&many[..32].join(",")).is_ok());
        assert!(TraceState::parse(" , a=1 ,,\tb=2\t").is_ok()); // empty members and OWS
    }

    #[test]
    fn rewrite_sets_th_keeps_rv_and_others_and_moves_ot_first() {
        assert_eq!(rewrite("", "e666"), "ot=th:e666");
        assert_eq!(rewrite("vendor=abc", "8"), "ot=th:8,vendor=abc");
        assert_eq!(
            rewrite("a=1,ot=th:8;rv:0123456789abcd;k1:13,b=2", "c"),
            "ot=th:c;rv:0123456789abcd;k1:13,a=1,b=2"
        );
        assert_eq!(rewrite("ot=p:8;th:0", "8"), "ot=th:8;p:8");
        // invalid sub-keys and malformed ot values are dropped
        assert_eq!(rewrite("ot=th:zz;rv:1;k:v", "8"), "ot=th:8;k:v");
        assert_eq!(rewrite("x=1,ot=garbage", "8"), "ot=th:8,x=1");
        assert_eq!(rewrite(" a=1 , , b=2 ", "0"), "ot=th:0,a=1,b=2");
    }

    #[test]
    fn rewrite_of_a_full_list_drops_the_rightmost_member() {
        let many: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        let out = rewrite(&many.join(","), "8");
        let members: Vec<&str> = out.split(',').collect();
        assert_eq!(members.len(), 32);
        assert_eq!(members.first(), Some(&"ot=th:8"));
        assert_eq!(members.last(), Some(&"k30=v"));
        // With an `ot` already among the 32, nothing is dropped.
        let mut with_ot = many.clone();
        with_ot[5] = "ot=th:8".into();
        let out = rewrite(&with_ot.join(","), "c");
        assert_eq!(out.split(',').count(), 32);
        assert!(out.ends_with("k31=v"));
    }

    #[test]
    fn rewrite_refuses_an_ot_value_over_256_characters() {
        let long = format!("ot=x:{}", "a".repeat(250));
        let t = parse(&long);
        let mut out = String::from("junk");
        let th = Threshold::parse_th("8").unwrap_or(Threshold::NEVER);
        assert_eq!(
            t.write_with_threshold(th, &mut out),
            Err(TraceStateError::OtTooLong)
        );
        assert!(out.is_empty());
        assert_eq!(
            t.write_with_threshold(Threshold::NEVER, &mut out),
            Err(TraceStateError::NeverThreshold)
        );
    }
}
