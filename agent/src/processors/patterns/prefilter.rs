//! The one-pass byte scan that tells which built-in patterns could match a text.
//!
//! Owns [`scan`]: a single loop over the bytes with a class table and one small state
//! machine per built-in, each accepting a superset of what the built-in's regex matches
//! (a run of 13+ digits with single space/dash separators; four dot-separated digit
//! groups; an `@`; `eyJ`; a hex/colon run holding `::` or 6+ colons). It must never reject
//! text that the regex would match — only the regexes and validators decide matches.
//!
//! Measured with `cargo run --release --example probe` (4 KiB of access-log text without a
//! sensitive value; minimum of 40 batches of 100 runs; 2-core machine under load average
//! 16–20, two runs): this scan 7.95–8.0 µs (~500 MiB/s); `RegexSet::matches` over the five
//! built-in regexes 9.1–10.1 µs (400–440 MiB/s); the same state machines as a `match` on
//! the byte class 7.8–9.2 µs (a wash); `RegexSet::is_match` 7.8 µs but it does not say
//! which pattern. Every byte-serial pass lands near 7.8 µs on this machine; what the
//! prefilter buys is not running the five regexes' `find_iter` (7.8–12 µs each, 40 µs
//! together) when nothing can match, and running only the flagged one when one can.

/// Byte classes (columns of the transition tables).
const OTHER: usize = 0;
const DIGIT: usize = 1;
const HEX_LETTER: usize = 2;
const SEP: usize = 3; // space or dash: card group separators
const DOT: usize = 4;
const COLON: usize = 5;
const COLUMNS: usize = 8;

const CLASS: [u8; 256] = {
    let mut t = [OTHER as u8; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = DIGIT as u8;
        b += 1;
    }
    let mut b = b'a';
    while b <= b'f' {
        t[b as usize] = HEX_LETTER as u8;
        t[(b - 32) as usize] = HEX_LETTER as u8;
        b += 1;
    }
    t[b' ' as usize] = SEP as u8;
    t[b'-' as usize] = SEP as u8;
    t[b'.' as usize] = DOT as u8;
    t[b':' as usize] = COLON as u8;
    t
};

// Card machine: state = digits * 2 + (previous byte was a separator); 13 digits accept.
const CARD_ACCEPT: u8 = 26;
const CARD: [u8; 27 * COLUMNS] = {
    let mut t = [0u8; 27 * COLUMNS];
    let mut s = 0;
    while s < 27 {
        let (digits, sep) = (s / 2, s % 2 == 1);
        let mut c = 0;
        while c < COLUMNS {
            let next = if s == CARD_ACCEPT as usize {
                CARD_ACCEPT as usize
            } else if c == DIGIT {
                if digits + 1 >= 13 {
                    CARD_ACCEPT as usize
                } else {
                    (digits + 1) * 2
                }
            } else if c == SEP {
                if sep || digits == 0 {
                    1
                } else {
                    digits * 2 + 1
                }
            } else {
                0
            };
            t[s * COLUMNS + c] = next as u8;
            c += 1;
        }
        s += 1;
    }
    t
};

// IPv4 machine: state = dots * 2 + (current group has a digit), dots 0..=3; a digit after
// the third dot accepts.
const V4_ACCEPT: u8 = 8;
const V4: [u8; 9 * COLUMNS] = {
    let mut t = [0u8; 9 * COLUMNS];
    let mut s = 0;
    while s < 9 {
        let (dots, digit) = (s / 2, s % 2 == 1);
        let mut c = 0;
        while c < COLUMNS {
            let next = if s == V4_ACCEPT as usize {
                V4_ACCEPT as usize
            } else if c == DIGIT {
                if dots == 3 {
                    V4_ACCEPT as usize
                } else {
                    dots * 2 + 1
                }
            } else if c == DOT {
                if digit && dots < 3 {
                    (dots + 1) * 2
                } else {
                    0
                }
            } else {
                0
            };
            t[s * COLUMNS + c] = next as u8;
            c += 1;
        }
        s += 1;
    }
    t
};

// IPv6 machine: state = colons * 2 + (previous byte was a colon), colons 0..=5, over a run
// of hex digits, dots and colons; `::` or a sixth colon accepts.
const V6_ACCEPT: u8 = 12;
const V6: [u8; 13 * COLUMNS] = {
    let mut t = [0u8; 13 * COLUMNS];
    let mut s = 0;
    while s < 13 {
        let (colons, prev_colon) = (s / 2, s % 2 == 1);
        let mut c = 0;
        while c < COLUMNS {
            let next = if s == V6_ACCEPT as usize {
                V6_ACCEPT as usize
            } else if c == COLON {
                if prev_colon || colons + 1 >= 6 {
                    V6_ACCEPT as usize
                } else {
                    (colons + 1) * 2 + 1
                }
            } else if c == DIGIT || c == HEX_LETTER || c == DOT {
                colons * 2
            } else {
                0
            };
            t[s * COLUMNS + c] = next as u8;
            c += 1;
        }
        s += 1;
    }
    t
};

/// Which built-ins have a candidate somewhere in the text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Candidates {
    pub card: bool,
    pub email: bool,
    pub ipv4: bool,
    pub ipv6: bool,
    pub jwt: bool,
}

/// Scans `text` once. `want` says which built-ins are configured; the scan stops as soon
/// as all of them are flagged.
///
/// The three digit machines are transition tables: three table loads per byte and no
/// data-dependent branch, so the cost per byte does not depend on the text.
pub(super) fn scan(text: &[u8], want: Candidates) -> Candidates {
    let mut found = Candidates::default();
    if want.email {
        found.email = memchr::memchr(b'@', text).is_some();
    }
    if want.jwt {
        found.jwt = memchr::memmem::find(text, b"eyJ").is_some();
    }
    // A machine that is not wanted starts in its accepting state, so "all accept" is the
    // one early-exit test.
    let mut card = if want.card { 0 } else { CARD_ACCEPT };
    let mut v4 = if want.ipv4 { 0 } else { V4_ACCEPT };
    let mut v6 = if want.ipv6 { 0 } else { V6_ACCEPT };
    for chunk in text.chunks(64) {
        if card == CARD_ACCEPT && v4 == V4_ACCEPT && v6 == V6_ACCEPT {
            break;
        }
        for &b in chunk {
            let class = usize::from(CLASS[usize::from(b)]);
            card = CARD[usize::from(card) * COLUMNS + class];
            v4 = V4[usize::from(v4) * COLUMNS + class];
            v6 = V6[usize::from(v6) * COLUMNS + class];
        }
    }
    found.card = want.card && card == CARD_ACCEPT;
    found.ipv4 = want.ipv4 && v4 == V4_ACCEPT;
    found.ipv6 = want.ipv6 && v6 == V6_ACCEPT;
    found
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Regex;

    use super::super::Builtin;
    use super::*;

    const ALL: Candidates = Candidates {
        card: true,
        email: true,
        ipv4: true,
        ipv6: true,
        jwt: true,
    };

    #[test]
    fn flags_each_kind_of_candidate() {
        let s = |t: &str| scan(t.as_bytes(), ALL);
        assert!(s("x 4111 1111 1111 1111 y").card);
        assert!(!s("x 4111  1111 1111 1111 y").card);
        assert!(!s("order 123456789012").card);
        assert!(s("at 10.0.0.1:80").ipv4);
        assert!(!s("v1.2.3 and 12.5").ipv4);
        assert!(s("fe80::1").ipv6);
        assert!(s("2001:0db8:0000:0000:0000:ff00:0042:8329").ipv6);
        assert!(!s("12:30:45.123").ipv6);
        assert!(s("a@b").email && !s("ab").email);
        assert!(s("eyJx").jwt && !s("eyj").jwt);
        assert_eq!(s("GET /index.html 200"), Candidates::default());
    }

    #[test]
    fn unwanted_kinds_are_not_scanned() {
        let only_email = Candidates {
            email: true,
            ..Candidates::default()
        };
        assert_eq!(
            scan(b"4111111111111111 fe80::1", only_email),
            Candidates::default()
        );
    }

    proptest! {
        /// Whenever a built-in regex finds a candidate, the scan flags it.
        #[test]
        fn scan_is_a_superset_of_every_builtin_regex(s in "[0-9a-fA-F:. @eyJ\\-x]{0,60}") {
            let c = scan(s.as_bytes(), ALL);
            for (b, flagged) in [
                (Builtin::CreditCard, c.card),
                (Builtin::Email, c.email),
                (Builtin::Ipv4, c.ipv4),
                (Builtin::Ipv6, c.ipv6),
                (Builtin::Jwt, c.jwt),
            ] {
                let re = Regex::new(b.regex_source());
                prop_assert!(re.is_ok());
                if let Ok(re) = re {
                    if re.is_match(&s) {
                        prop_assert!(flagged, "{} missed in {:?}", b.name(), s);
                    }
                }
            }
        }
    }
}
