//! The built-in sensitive-data patterns: their candidate regexes and the checks a candidate
//! must pass to count as a match (Luhn and card prefixes, address parsing, boundaries).
//!
//! Owns [`Builtin`] and the validators. A regex here finds candidates cheaply; a validator
//! rejects the false positives a regex cannot (an order number that fails Luhn, `1.2.3.4.5`).
//! Validators only look at the candidate and its neighbouring bytes; they never allocate.

use std::net::Ipv6Addr;
use std::str::FromStr;

/// A built-in pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// Payment card numbers: 13–19 digits, optionally grouped by single spaces or dashes,
    /// starting like a card brand's number (2221–2720, 3, 4, 5, 6) and passing the Luhn check.
    CreditCard,
    /// E-mail addresses: `local@domain.tld` with ASCII letters, digits and `._%+-` in the
    /// local part and a dotted domain ending in a 2–63 letter top-level label.
    Email,
    /// Dotted-quad IPv4 addresses with octets 0–255, not part of a longer dotted number.
    Ipv4,
    /// IPv6 addresses in any textual form `std::net::Ipv6Addr` accepts (`::1`, `fe80::1`,
    /// `2001:db8::8a2e:370:7334`, `::ffff:192.0.2.1`), not glued to letters or digits.
    Ipv6,
    /// JSON Web Tokens: three base64url segments separated by dots, the first starting with
    /// `eyJ` (the encoding of `{"`); the third may be empty (unsecured tokens).
    Jwt,
}

impl Builtin {
    /// Every built-in, in a stable order.
    pub const ALL: [Builtin; 5] = [
        Builtin::CreditCard,
        Builtin::Email,
        Builtin::Ipv4,
        Builtin::Ipv6,
        Builtin::Jwt,
    ];

    /// The configuration name (`credit_card`, `email`, `ipv4`, `ipv6`, `jwt`).
    pub fn name(self) -> &'static str {
        match self {
            Builtin::CreditCard => "credit_card",
            Builtin::Email => "email",
            Builtin::Ipv4 => "ipv4",
            Builtin::Ipv6 => "ipv6",
            Builtin::Jwt => "jwt",
        }
    }

    /// The built-in with this configuration name.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The candidate regex (RE2 syntax). Word boundaries are ASCII (`(?-u:\b)`), so the lazy
    /// DFA handles them on any text; digits are `[0-9]`, never Unicode digits.
    pub fn regex_source(self) -> &'static str {
        match self {
            Builtin::CreditCard => r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
            Builtin::Email => r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}",
            Builtin::Ipv4 => {
                r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)"
            }
            // Every textual IPv6 address holds `::`, or 7 colons (8 groups), or 6 colons
            // and a dotted IPv4 tail; times (`12:30:45`) and MACs (5 colons) do not.
            Builtin::Ipv6 => concat!(
                r"[0-9A-Fa-f:.]*::[0-9A-Fa-f:.]*",
                r"|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}",
                r"|(?:[0-9A-Fa-f]{1,4}:){6}[0-9]{1,3}(?:\.[0-9]{1,3}){3}",
            ),
            Builtin::Jwt => r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*",
        }
    }

    /// Whether the candidate `text[start..end]` is a real match.
    pub(super) fn accepts(self, text: &str, start: usize, end: usize) -> bool {
        let bytes = text.as_bytes();
        let Some(candidate) = text.get(start..end) else {
            return false;
        };
        let before = start.checked_sub(1).and_then(|i| bytes.get(i)).copied();
        let after = bytes.get(end).copied();
        match self {
            Builtin::CreditCard => card_ok(candidate),
            Builtin::Email => true,
            Builtin::Ipv4 => {
                // Not a piece of `1.2.3.4.5` or `10.1.2.3.4`.
                let before2 = start.checked_sub(2).and_then(|i| bytes.get(i)).copied();
                let after2 = bytes.get(end + 1).copied();
                let glued_left =
                    before == Some(b'.') && before2.is_some_and(|b| b.is_ascii_digit());
                let glued_right = after == Some(b'.') && after2.is_some_and(|b| b.is_ascii_digit());
                !glued_left && !glued_right
            }
            Builtin::Ipv6 => {
                let word = |b: Option<u8>| {
                    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
                };
                // A sentence may end right after an address: drop trailing dots.
                let trimmed = candidate.trim_end_matches('.');
                !word(before)
                    && !word(after)
                    && trimmed.bytes().any(|b| b.is_ascii_hexdigit())
                    && Ipv6Addr::from_str(trimmed).is_ok()
            }
            Builtin::Jwt => {
                !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            }
        }
    }

    /// The end of the part of a candidate to replace (trailing dots of an IPv6 candidate are
    /// punctuation, not address).
    pub(super) fn trim_end(self, text: &str, start: usize, end: usize) -> usize {
        match (self, text.get(start..end)) {
            (Builtin::Ipv6, Some(c)) => start + c.trim_end_matches('.').len(),
            _ => end,
        }
    }
}

/// Luhn over the digits of `candidate` (separators skipped) plus a card-brand prefix check.
fn card_ok(candidate: &str) -> bool {
    let mut digits = [0u8; 19];
    let mut n = 0;
    for b in candidate.bytes() {
        if b.is_ascii_digit() {
            let Some(slot) = digits.get_mut(n) else {
                return false;
            };
            *slot = b - b'0';
            n += 1;
        }
    }
    let Some(digits) = digits.get(..n) else {
        return false;
    };
    if !(13..=19).contains(&n) || !brand_prefix(digits) {
        return false;
    }
    luhn(digits)
}

/// The Luhn (mod 10) check over decimal digits, rightmost digit being the check digit.
pub(super) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Major card brands' leading digits: 3 (Amex, Diners, JCB), 4 (Visa), 5 (Mastercard,
/// Maestro), 6 (Discover, UnionPay, Maestro) and Mastercard's 2221–2720. Identifiers that
/// start with 0, 1, 7, 8, 9 or another 2xxx are not cards.
fn brand_prefix(digits: &[u8]) -> bool {
    match digits {
        [3..=6, ..] => true,
        [2, a, b, c, ..] => {
            let four = 2000 + u32::from(*a) * 100 + u32::from(*b) * 10 + u32::from(*c);
            (2221..=2720).contains(&four)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<u8> {
        s.bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect()
    }

    #[test]
    fn luhn_accepts_valid_and_rejects_single_digit_errors() {
        for valid in [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "79927398713",
        ] {
            assert!(luhn(&digits(valid)), "{valid}");
        }
        for invalid in [
            "4111111111111112",
            "5555555555554445",
            "79927398710",
            "1234567812345678",
        ] {
            assert!(!luhn(&digits(invalid)), "{invalid}");
        }
    }

    #[test]
    fn card_check_needs_length_brand_and_luhn() {
        assert!(card_ok("4111 1111 1111 1111"));
        assert!(card_ok("2223-0000-4841-0010")); // Mastercard 2-series test number
        assert!(!card_ok("4111 1111 1111 1112")); // Luhn fails
        assert!(!card_ok("8111111111111112")); // Luhn-valid, no brand starts with 8
        assert!(!card_ok("411111111111")); // 12 digits
        assert!(!card_ok("41111111111111111111")); // 20 digits
    }

    #[test]
    fn names_round_trip() {
        for b in Builtin::ALL {
            assert_eq!(Builtin::from_name(b.name()), Some(b));
        }
        assert_eq!(Builtin::from_name("ssn"), None);
    }
}
