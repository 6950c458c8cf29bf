//! Human-readable durations (`"10s"`, `"250ms"`, `"1h 30m"`) and byte sizes (`"64MiB"`, `"2GB"`).
//!
//! Both deserialize from strings (and from bare integers: seconds and bytes) and serialize back to
//! the same human form, so `print-config` output can be fed back to `sonde validate`.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// A duration written the human way in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(Duration)
            .map_err(|e| {
                format!("invalid duration `{s}` ({e}); expected e.g. \"500ms\", \"10s\", \"5m\"")
            })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A duration where `"unlimited"` is also accepted, meaning zero (no limit).
pub fn duration_or_unlimited<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(HumanVisitor {
        unlimited: true,
        ..HumanVisitor::<Duration>::new("a duration such as \"5m\", or \"unlimited\"")
    })
}

/// A size in bytes written the human way: `"64MiB"`, `"2GB"`, `"512KiB"`, `"1000"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }
    pub const fn gib(n: u64) -> Self {
        Self(n * 1024 * 1024 * 1024)
    }
    pub fn get(self) -> u64 {
        self.0
    }
    /// The size as `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("k", 1024),
    ("m", 1024 * 1024),
    ("g", 1024 * 1024 * 1024),
    ("kib", 1024),
    ("mib", 1024 * 1024),
    ("gib", 1024 * 1024 * 1024),
    ("tib", 1024 * 1024 * 1024 * 1024),
];

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid size `{s}`; expected e.g. \"64MiB\", \"2GB\", \"4096\"");
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let mult = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, m)| *m)
                .ok_or_else(bad)?
        };
        if num.contains('.') {
            let v: f64 = num.parse().map_err(|_| bad())?;
            let bytes = v * mult as f64;
            if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
                return Err(bad());
            }
            Ok(ByteSize(bytes.round() as u64))
        } else {
            let v: u64 = num.parse().map_err(|_| bad())?;
            v.checked_mul(mult).map(ByteSize).ok_or_else(bad)
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const STEPS: &[(&str, u64)] = &[
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, m) in STEPS {
            if self.0 >= *m && self.0.is_multiple_of(*m) {
                return write!(f, "{}{}", self.0 / m, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// A quantity written either the human way (a string its `FromStr` reads) or as a bare
/// non-negative integer in its base unit: seconds for a duration, bytes for a size.
trait HumanUnit: std::str::FromStr<Err = String> + Default {
    /// What the quantity is called in an error (`invalid duration -1: …`).
    const NAME: &'static str;
    fn from_base_units(n: u64) -> Self;
}

/// Implements [`HumanUnit`] for `$ty`, and serde for it: written back in its `Display` form, read
/// by [`HumanVisitor`]. `$name` names it in errors, `$expecting` the forms accepted.
macro_rules! human_unit {
    ($ty:ty, $name:literal, $expecting:literal, $from_base_units:expr) => {
        impl HumanUnit for $ty {
            const NAME: &'static str = $name;
            fn from_base_units(n: u64) -> Self {
                $from_base_units(n)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(HumanVisitor::<$ty>::new($expecting))
            }
        }
    };
}

human_unit!(
    Duration,
    "duration",
    "a duration such as \"10s\" or \"250ms\"",
    Duration::from_secs
);
human_unit!(
    ByteSize,
    "size",
    "a size such as \"64MiB\" or a number of bytes",
    ByteSize
);

/// Reads a [`HumanUnit`] from a string or an integer.
struct HumanVisitor<T> {
    expecting: &'static str,
    /// The string `"unlimited"` is also accepted, as zero (no limit).
    unlimited: bool,
    unit: PhantomData<T>,
}

impl<T> HumanVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        HumanVisitor {
            expecting,
            unlimited: false,
            unit: PhantomData,
        }
    }
}

impl<T: HumanUnit> de::Visitor<'_> for HumanVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        if self.unlimited && v.trim() == "unlimited" {
            return Ok(T::default());
        }
        v.parse().map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        u64::try_from(v)
            .map(T::from_base_units)
            .map_err(|_| E::custom(format!("invalid {} {v}: must not be negative", T::NAME)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::from_base_units(v))
    }
}

/// A secret value (a token, a password, a header carrying credentials). It deserializes from a
/// plain string but never prints: `Debug`, `Display` and `Serialize` all show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

pub const REDACTED: &str = "<redacted>";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_human_forms() {
        assert_eq!("10s".parse::<Duration>().unwrap(), Duration::from_secs(10));
        assert_eq!(
            "250ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            "1m 30s".parse::<Duration>().unwrap(),
            Duration::from_secs(90)
        );
        assert!("10 parsecs".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
    }

    #[test]
    fn sizes_parse_binary_and_decimal_units() {
        assert_eq!("64MiB".parse::<ByteSize>().unwrap(), ByteSize::mib(64));
        assert_eq!("2GB".parse::<ByteSize>().unwrap(), ByteSize(2_000_000_000));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert_eq!("1.5KiB".parse::<ByteSize>().unwrap(), ByteSize(1536));
        assert_eq!("16 kib".parse::<ByteSize>().unwrap(), ByteSize::kib(16));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("99999999999999999999TiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn sizes_and_durations_round_trip_through_display() {
        for s in ["64MiB", "2GiB", "1000B", "3KiB"] {
            let b: ByteSize = s.parse().unwrap();
            assert_eq!(b.to_string().parse::<ByteSize>().unwrap(), b);
        }
        let d = Duration::from_millis(1500);
        assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
    }

    #[derive(Debug, Deserialize)]
    struct Units {
        #[serde(default)]
        d: Duration,
        #[serde(default)]
        b: ByteSize,
        #[serde(default, deserialize_with = "duration_or_unlimited")]
        u: Duration,
    }

    fn units(text: &str) -> Result<Units, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn bare_integers_are_seconds_and_bytes_and_unlimited_is_zero() {
        let u = units("d = 90\nb = 4096\nu = 7").unwrap();
        assert_eq!(u.d, Duration::from_secs(90));
        assert_eq!(u.b, ByteSize(4096));
        assert_eq!(u.u, Duration::from_secs(7));
        assert_eq!(units("u = \"unlimited\"").unwrap().u, Duration::default());
    }

    #[test]
    fn refusals_say_what_was_expected() {
        for (text, refusal) in [
            ("d = -1", "invalid duration -1: must not be negative"),
            ("b = -2", "invalid size -2: must not be negative"),
            ("u = -3", "invalid duration -3: must not be negative"),
            (
                "d = \"unlimited\"",
                "invalid duration `unlimited` (expected number at 0); \
                 expected e.g. \"500ms\", \"10s\", \"5m\"",
            ),
            (
                "d = true",
                "invalid type: boolean `true`, expected a duration such as \"10s\" or \"250ms\"",
            ),
            (
                "u = true",
                "invalid type: boolean `true`, expected a duration such as \"5m\", or \"unlimited\"",
            ),
            (
                "b = 1.5",
                "invalid type: floating point `1.5`, \
                 expected a size such as \"64MiB\" or a number of bytes",
            ),
        ] {
            assert_eq!(units(text).unwrap_err(), refusal, "{text}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(s.expose(), "hunter2");
    }
}
