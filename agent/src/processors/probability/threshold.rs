//! 56-bit rejection thresholds and randomness values, and their `th`/`rv` encodings.
//!
//! Owns [`Threshold`] and [`Randomness`] per the OpenTelemetry specification "TraceState:
//! Probability Sampling" and "TraceState Handling": a span is kept when `R >= T`.
//! Conversions are exact integer arithmetic except probability → threshold, which is a
//! float scaled by 2^56 and rounded to the requested hex precision.

use std::fmt;

/// 2^56: the number of distinct 56-bit values.
pub const MAX_ADJUSTED_COUNT: u64 = 1 << 56;

/// The default precision (hex digits) for encoded thresholds, as the specification
/// recommends for SDKs.
pub const DEFAULT_PRECISION: u8 = 4;

/// A rejection threshold in `[0, 2^56]`: items with randomness below it are dropped.
/// `0` keeps everything; `2^56` ([`Threshold::NEVER`]) keeps nothing and has no `th` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u64);

/// A 56-bit randomness value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Randomness(u64);

/// An invalid sampling probability.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ProbabilityError {
    #[error("sampling probability {0} is outside [2^-56, 1]")]
    OutOfRange(f64),
    #[error("precision {0} is outside 1..=14 hex digits")]
    Precision(u8),
}

impl Threshold {
    /// Keeps everything (`th:0`).
    pub const ALWAYS: Threshold = Threshold(0);
    /// Keeps nothing; not a probability, never encoded.
    pub const NEVER: Threshold = Threshold(MAX_ADJUSTED_COUNT);

    /// The raw 56-bit value (`2^56` for [`Threshold::NEVER`]).
    pub fn value(self) -> u64 {
        self.0
    }

    /// A threshold from its raw value, if it is at most 2^56.
    pub fn from_value(v: u64) -> Option<Threshold> {
        (v <= MAX_ADJUSTED_COUNT).then_some(Threshold(v))
    }

    /// The threshold for a sampling probability in `[2^-56, 1]`, rounded to `precision`
    /// significant hex digits (1–14). As the specification's reference algorithm does, the
    /// precision counts from the first digit that is not a leading `f`: a probability of
    /// 0.001 at precision 4 gives `ffbe77`, not `ffbf`.
    pub fn from_probability(p: f64, precision: u8) -> Result<Threshold, ProbabilityError> {
        if !(1..=14).contains(&precision) {
            return Err(ProbabilityError::Precision(precision));
        }
        let min = 1.0 / MAX_ADJUSTED_COUNT as f64;
        if !(min..=1.0).contains(&p) {
            return Err(ProbabilityError::OutOfRange(p));
        }
        if p == 1.0 {
            return Ok(Threshold::ALWAYS);
        }
        // p * 2^56 is exact scaling; rounding keeps the error below one unit of the 56 bits.
        let kept = (p * MAX_ADJUSTED_COUNT as f64).round() as u64;
        let exact = MAX_ADJUSTED_COUNT - kept.min(MAX_ADJUSTED_COUNT);
        // Leading-f compensation: one extra digit per factor 16 below 1/2.
        let exp = frexp_exponent(p);
        let digits = (i32::from(precision) + (-exp).div_euclid(4)).clamp(1, 14);
        let shift = 4 * (14 - digits as u32);
        if shift == 0 {
            return Ok(Threshold(exact));
        }
        let half = 1u64 << (shift - 1);
        let rounded = ((exact + half) >> shift) << shift;
        // Rounding up to 2^56 would mean "never": keep the largest value at this precision.
        Ok(Threshold(rounded.min(MAX_ADJUSTED_COUNT - (1u64 << shift))))
    }

    /// The threshold for a sampling percentage in `(0, 100]`; `0` gives [`Threshold::NEVER`].
    pub fn from_percentage(percent: f64, precision: u8) -> Result<Threshold, ProbabilityError> {
        if percent == 0.0 {
            return Ok(Threshold::NEVER);
        }
        Threshold::from_probability(percent / 100.0, precision)
    }

    /// Parses a `th` value: 1–14 hex digits, zero-extended on the right to 14.
    pub fn parse_th(s: &str) -> Option<Threshold> {
        if s.is_empty() || s.len() > 14 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let v = u64::from_str_radix(s, 16).ok()?;
        Some(Threshold(v << (4 * (14 - s.len() as u32))))
    }

    /// The `th` encoding (lowercase hex, trailing zeros removed, `0` for 100%); `None` for
    /// [`Threshold::NEVER`].
    pub fn th(self) -> Option<ThValue> {
        if self.0 >= MAX_ADJUSTED_COUNT {
            return None;
        }
        let mut buf = [b'0'; 14];
        let mut v = self.0;
        for slot in buf.iter_mut().rev() {
            let nibble = (v & 0xf) as u8;
            *slot = if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            };
            v >>= 4;
        }
        let len = buf.iter().rposition(|&b| b != b'0').map_or(1, |i| i + 1);
        Some(ThValue {
            buf,
            len: len as u8,
        })
    }

    /// The probability of keeping an item: `(2^56 - T) / 2^56`.
    pub fn probability(self) -> f64 {
        (MAX_ADJUSTED_COUNT - self.0.min(MAX_ADJUSTED_COUNT)) as f64 / MAX_ADJUSTED_COUNT as f64
    }

    /// The number of items a kept item represents: `2^56 / (2^56 - T)` (infinite for NEVER).
    pub fn adjusted_count(self) -> f64 {
        MAX_ADJUSTED_COUNT as f64 / (MAX_ADJUSTED_COUNT - self.0.min(MAX_ADJUSTED_COUNT)) as f64
    }

    /// The sampling decision: keep when `R >= T`.
    pub fn keeps(self, r: Randomness) -> bool {
        r.0 >= self.0
    }
}

/// The base-2 exponent `e` with `p = m * 2^e`, `m` in `[0.5, 1)` (C's `frexp`), for
/// positive finite `p`.
fn frexp_exponent(p: f64) -> i32 {
    let bits = p.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // subnormal: normalize by the position of the highest mantissa bit
        let mantissa = bits & ((1u64 << 52) - 1);
        return -1022 - (mantissa.leading_zeros() as i32 - 12);
    }
    biased - 1022
}

/// An encoded `th` value on the stack (at most 14 characters).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ThValue {
    buf: [u8; 14],
    len: u8,
}

impl ThValue {
    /// The encoding as text.
    pub fn as_str(&self) -> &str {
        let bytes = self.buf.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl fmt::Display for ThValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ThValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "th:{}", self.as_str())
    }
}

impl Randomness {
    /// The least significant 56 bits of a 16-byte trace id (its last 7 bytes); `None` for a
    /// trace id of another length or all zeros (invalid per W3C trace context).
    pub fn from_trace_id(trace_id: &[u8]) -> Option<Randomness> {
        let id: &[u8; 16] = trace_id.try_into().ok()?;
        if id.iter().all(|&b| b == 0) {
            return None;
        }
        let mut low = [0u8; 8];
        low[1..].copy_from_slice(&id[9..]);
        Some(Randomness(u64::from_be_bytes(low)))
    }

    /// Parses an `rv` value: exactly 14 hex digits.
    pub fn parse_rv(s: &str) -> Option<Randomness> {
        if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Randomness)
    }

    /// A randomness value from the low 56 bits of `v`.
    pub fn from_bits(v: u64) -> Randomness {
        Randomness(v & (MAX_ADJUSTED_COUNT - 1))
    }

    /// The 56-bit value.
    pub fn value(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th(p: f64, precision: u8) -> String {
        match Threshold::from_probability(p, precision) {
            Ok(t) => t.th().map(|v| v.to_string()).unwrap_or_default(),
            Err(e) => panic!("{p}: {e}"),
        }
    }

    #[test]
    fn specification_table_of_threshold_encodings() {
        // "1-in-N" table of the specification, precisions 3, 4 and 5.
        let table: &[(f64, [&str; 3])] = &[
            (1.0, ["0", "0", "0"]),
            (0.5, ["8", "8", "8"]),
            (1.0 / 3.0, ["aab", "aaab", "aaaab"]),
            (0.25, ["c", "c", "c"]),
            (0.2, ["ccd", "cccd", "ccccd"]),
            (0.125, ["e", "e", "e"]),
            (0.1, ["e66", "e666", "e6666"]),
            (0.0625, ["f", "f", "f"]),
            (0.01, ["fd71", "fd70a", "fd70a4"]),
            (0.001, ["ffbe7", "ffbe77", "ffbe76d"]),
            (0.0001, ["fff972", "fff9724", "fff97247"]),
            (0.00001, ["ffff584", "ffff583a", "ffff583a5"]),
            (0.000001, ["ffffef4", "ffffef39", "ffffef391"]),
        ];
        for (p, want) in table {
            for (precision, want) in [3u8, 4, 5].into_iter().zip(want) {
                assert_eq!(th(*p, precision), *want, "p={p} precision={precision}");
            }
        }
    }

    #[test]
    fn specification_one_percent_example() {
        // "(1 - 0.01) * 2^56 … with 5 digits of precision … = 0xfd70a400000000", encoded
        // `fd70a4`; in the table that is precision 5 (4 + 1 for the leading `f`).
        let t = Threshold::from_probability(0.01, 5).map(Threshold::value);
        assert_eq!(t, Ok(0xfd70a400000000));
    }

    #[test]
    fn th_values_parse_with_zero_extension() {
        assert_eq!(Threshold::parse_th("0"), Some(Threshold::ALWAYS));
        assert_eq!(
            Threshold::parse_th("8").map(Threshold::value),
            Some(0x80000000000000)
        );
        assert_eq!(
            Threshold::parse_th("fd70a4").map(Threshold::value),
            Some(0xfd70a400000000)
        );
        assert_eq!(
            Threshold::parse_th("FFFFFFFFFFFFFF").map(Threshold::value),
            Some(0xffffffffffffff)
        );
        for bad in ["", "g", "0x8", "fffffffffffffff", " 8", "8 ", "+8", "-1"] {
            assert_eq!(Threshold::parse_th(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn th_encoding_removes_trailing_zeros_and_round_trips() {
        for v in [
            0u64,
            1,
            0x80000000000000,
            0xfd70a400000000,
            0xffffffffffffff,
            0x10,
        ] {
            let t = Threshold(v);
            let enc = t.th().map(|x| x.to_string()).unwrap_or_default();
            assert!(enc == "0" || !enc.ends_with('0'), "{enc}");
            assert_eq!(Threshold::parse_th(&enc), Some(t));
        }
        assert_eq!(Threshold::NEVER.th(), None);
    }

    #[test]
    fn probabilities_and_adjusted_counts() {
        assert_eq!(Threshold::ALWAYS.probability(), 1.0);
        assert_eq!(Threshold(0x80000000000000).adjusted_count(), 2.0);
        assert_eq!(Threshold(0xc0000000000000).probability(), 0.25);
        assert_eq!(Threshold::NEVER.probability(), 0.0);
    }

    #[test]
    fn invalid_probabilities_and_precisions_are_refused() {
        assert!(Threshold::from_probability(0.0, 4).is_err());
        assert!(Threshold::from_probability(1.5, 4).is_err());
        assert!(Threshold::from_probability(f64::NAN, 4).is_err());
        assert!(Threshold::from_probability(0.5, 0).is_err());
        assert!(Threshold::from_probability(0.5, 15).is_err());
        assert_eq!(Threshold::from_percentage(0.0, 4), Ok(Threshold::NEVER));
        assert_eq!(Threshold::from_percentage(100.0, 4), Ok(Threshold::ALWAYS));
        // The smallest probability gives the largest threshold, still a probability.
        let min = Threshold::from_probability(1.0 / MAX_ADJUSTED_COUNT as f64, 14);
        assert_eq!(min.map(Threshold::value), Ok(MAX_ADJUSTED_COUNT - 1));
    }

    #[test]
    fn randomness_from_trace_id_and_rv() {
        let id: Vec<u8> = (1..=16).collect();
        assert_eq!(
            Randomness::from_trace_id(&id).map(Randomness::value),
            Some(0x0a0b0c0d0e0f10)
        );
        assert_eq!(Randomness::from_trace_id(&[0; 16]), None);
        assert_eq!(Randomness::from_trace_id(&[1; 8]), None);
        assert_eq!(
            Randomness::parse_rv("ffffffffffffff").map(Randomness::value),
            Some(0xffffffffffffff)
        );
        assert_eq!(
            Randomness::parse_rv("0a0b0c0d0e0f10").map(Randomness::value),
            Some(0x0a0b0c0d0e0f10)
        );
        for bad in ["", "ffffffffffffff0", "fffffffffffff", "gggggggggggggg"] {
            assert_eq!(Randomness::parse_rv(bad), None, "{bad}");
        }
    }

    #[test]
    fn frexp_matches_the_definition() {
        assert_eq!(frexp_exponent(1.0), 1);
        assert_eq!(frexp_exponent(0.5), 0);
        assert_eq!(frexp_exponent(0.01), -6);
        assert_eq!(frexp_exponent(0.001), -9);
        assert_eq!(frexp_exponent(f64::MIN_POSITIVE), -1021);
    }
}
