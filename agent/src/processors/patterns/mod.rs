//! Redaction matchers: find sensitive values in a string and mask or hash them.
//!
//! Owns [`Redactor`] (compiled patterns plus an action), [`Pattern`], [`Action`] and
//! [`Counts`]. It works on one `&str` at a time (an attribute value, a log body) and knows
//! nothing of OTLP. It must never allocate when nothing matches (the common case) and never
//! produce invalid UTF-8: every replacement starts and ends on a match boundary, which the
//! regex engine reports on character boundaries.
//!
//! # Matching
//! A prefilter says which patterns may match: for the built-ins a single byte scan
//! (`prefilter`), for user regexes one [`regex::RegexSet`] pass. Only flagged patterns
//! then run their regex to find positions, and built-in candidates are validated (see
//! [`Builtin`]). When several candidates overlap, the one starting first wins; at equal
//! starts the longer one, then the one configured first. Zero-length matches (a user regex
//! such as `x*`) are ignored.
//!
//! # Actions
//! - [`Action::Mask`]: the match is replaced by the mask text (default `****`).
//! - [`Action::Hash`]: the match is replaced by the first 24 hex digits (96 bits) of
//!   HMAC-SHA-256(key, normalized match). Equal values give equal output on every host
//!   configured with the same key, so joins on the redacted value still work; without the
//!   key a value cannot be confirmed by hashing guesses (card numbers and e-mail addresses
//!   are guessable, which rules out an unkeyed hash). 96 bits keep accidental collisions
//!   negligible (about 6·10⁻⁶ for 10¹² distinct values) in 24 characters.
//!   Normalization before hashing: `credit_card` keeps digits only (so `4111 1111 …` and
//!   `4111-1111-…` join), `email` is ASCII-lowercased; other matches are hashed as they are.

mod builtins;
mod prefilter;

use std::fmt::Write as _;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use ring::hmac;

pub use builtins::Builtin;

/// The compiled-size limit per regex, the `regex` crate's default stated explicitly.
pub const REGEX_SIZE_LIMIT: usize = 10 * (1 << 20);

/// The shortest accepted hash key: 16 bytes (128 bits).
pub const MIN_HASH_KEY_LEN: usize = 16;

/// Hex digits of the HMAC kept in a hashed replacement.
pub const HASH_HEX_LEN: usize = 24;

/// The default mask.
pub const DEFAULT_MASK: &str = "****";

/// A pattern to redact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Builtin(Builtin),
    /// A user regex in RE2 syntax, with the name its counts are reported under.
    Custom {
        name: String,
        regex: String,
    },
}

/// What replaces a match.
#[derive(Clone)]
pub enum Action {
    /// Replace with this text.
    Mask(String),
    /// Replace with the keyed hash of the match (the key's bytes).
    Hash(Vec<u8>),
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Mask(m) => f.debug_tuple("Mask").field(m).finish(),
            Action::Hash(_) => f.write_str("Hash(<key>)"), // never print the key
        }
    }
}

/// A redactor that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("pattern `{name}`: invalid regex: {message}")]
    InvalidRegex { name: String, message: String },
    #[error("pattern name `{0}` is used twice")]
    DuplicateName(String),
    #[error("no pattern configured")]
    NoPattern,
    #[error("hash key is {0} bytes; expected at least {MIN_HASH_KEY_LEN}")]
    ShortKey(usize),
}

/// Redactions per pattern, in the redactor's pattern order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts(Box<[u64]>);

impl Counts {
    /// The count for pattern `index` (0 for an unknown index).
    pub fn get(&self, index: usize) -> u64 {
        self.0.get(index).copied().unwrap_or(0)
    }

    /// Total redactions.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Resets every count to zero.
    pub fn clear(&mut self) {
        self.0.iter_mut().for_each(|c| *c = 0);
    }

    fn add(&mut self, index: usize) {
        if let Some(c) = self.0.get_mut(index) {
            *c += 1;
        }
    }
}

#[derive(Debug, Clone)]
struct Compiled {
    name: Box<str>,
    builtin: Option<Builtin>,
    regex: Regex,
}

enum Act {
    Mask(Box<str>),
    Hash(hmac::Key),
}

/// Compiled patterns and an action. Cheap to share between threads (`&self` everywhere).
pub struct Redactor {
    patterns: Box<[Compiled]>,
    /// The built-ins configured, for the byte scan.
    builtins: prefilter::Candidates,
    /// The user regexes as one set, with the pattern index of each (`None` without any).
    custom: Option<(RegexSet, Box<[usize]>)>,
    action: Act,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

/// One accepted match: byte range and pattern index.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    pattern: usize,
}

impl Redactor {
    /// Compiles the patterns; names must be unique and hash keys at least
    /// [`MIN_HASH_KEY_LEN`] bytes.
    pub fn new(patterns: &[Pattern], action: Action) -> Result<Self, RedactError> {
        if patterns.is_empty() {
            return Err(RedactError::NoPattern);
        }
        let mut compiled: Vec<Compiled> = Vec::with_capacity(patterns.len());
        for p in patterns {
            let (name, builtin, source) = match p {
                Pattern::Builtin(b) => (b.name().to_string(), Some(*b), b.regex_source()),
                Pattern::Custom { name, regex } => (name.clone(), None, regex.as_str()),
            };
            if compiled.iter().any(|c| *c.name == *name) {
                return Err(RedactError::DuplicateName(name));
            }
            let regex = RegexBuilder::new(source)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| RedactError::InvalidRegex {
                    name: name.clone(),
                    message: e.to_string(),
                })?;
            compiled.push(Compiled {
                name: name.into(),
                builtin,
                regex,
            });
        }
        let mut builtins = prefilter::Candidates::default();
        for b in compiled.iter().filter_map(|c| c.builtin) {
            match b {
                Builtin::CreditCard => builtins.card = true,
                Builtin::Email => builtins.email = true,
                Builtin::Ipv4 => builtins.ipv4 = true,
                Builtin::Ipv6 => builtins.ipv6 = true,
                Builtin::Jwt => builtins.jwt = true,
            }
        }
        let custom_index: Vec<usize> = (0..compiled.len())
            .filter(|&i| compiled.get(i).is_some_and(|c| c.builtin.is_none()))
            .collect();
        let custom = if custom_index.is_empty() {
            None
        } else {
            let sources = custom_index
                .iter()
                .filter_map(|&i| compiled.get(i))
                .map(|c| c.regex.as_str());
            let set = RegexSetBuilder::new(sources)
                .size_limit(REGEX_SIZE_LIMIT.saturating_mul(custom_index.len()))
                .build()
                .map_err(|e| RedactError::InvalidRegex {
                    name: "(set)".into(),
                    message: e.to_string(),
                })?;
            Some((set, custom_index.into_boxed_slice()))
        };
        let action = match action {
            Action::Mask(m) => Act::Mask(m.into()),
            Action::Hash(key) if key.len() < MIN_HASH_KEY_LEN => {
                return Err(RedactError::ShortKey(key.len()))
            }
            Action::Hash(key) => Act::Hash(hmac::Key::new(hmac::HMAC_SHA256, &key)),
        };
        Ok(Redactor {
            patterns: compiled.into(),
            builtins,
            custom,
            action,
        })
    }

    /// The pattern names, in the order counts are reported.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| &*p.name)
    }

    /// A zeroed [`Counts`] sized for this redactor.
    pub fn new_counts(&self) -> Counts {
        Counts(vec![0; self.patterns.len()].into())
    }

    /// Redacts `input`, returning `None` when nothing matched (without allocating).
    pub fn redact(&self, input: &str, counts: &mut Counts) -> Option<String> {
        let mut out = String::new();
        self.redact_into(input, &mut out, counts).then_some(out)
    }

    /// Redacts `input` into `out` (cleared first) and returns `true` when something was
    /// replaced; on `false`, `out` is left untouched. Adds to `counts` per pattern.
    pub fn redact_into(&self, input: &str, out: &mut String, counts: &mut Counts) -> bool {
        let found = prefilter::scan(input.as_bytes(), self.builtins);
        let custom = self
            .custom
            .as_ref()
            .map(|(set, index)| (set.matches(input), index));
        let any_custom = custom.as_ref().is_some_and(|(m, _)| m.matched_any());
        if found == prefilter::Candidates::default() && !any_custom {
            return false;
        }
        let flagged = |b: Builtin| match b {
            Builtin::CreditCard => found.card,
            Builtin::Email => found.email,
            Builtin::Ipv4 => found.ipv4,
            Builtin::Ipv6 => found.ipv6,
            Builtin::Jwt => found.jwt,
        };
        let custom_flagged = |i: usize| {
            custom.as_ref().is_some_and(|(m, index)| {
                index
                    .iter()
                    .position(|&j| j == i)
                    .is_some_and(|k| m.matched(k))
            })
        };
        let mut hits: Vec<Hit> = Vec::new();
        for (index, p) in self.patterns.iter().enumerate() {
            let candidate = match p.builtin {
                Some(b) => flagged(b),
                None => custom_flagged(index),
            };
            if !candidate {
                continue;
            }
            for m in p.regex.find_iter(input) {
                let (start, mut end) = (m.start(), m.end());
                if start == end {
                    continue;
                }
                if let Some(b) = p.builtin {
                    if !b.accepts(input, start, end) {
                        continue;
                    }
                    end = b.trim_end(input, start, end);
                }
                hits.push(Hit {
                    start,
                    end,
                    pattern: index,
                });
            }
        }
        if hits.is_empty() {
            return false;
        }
        // First start wins; at equal starts the longer match, then the earlier pattern.
        hits.sort_unstable_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.pattern.cmp(&b.pattern))
        });
        out.clear();
        out.reserve(input.len());
        let mut copied = 0;
        for hit in hits {
            if hit.start < copied {
                continue; // overlaps a match already replaced
            }
            let (Some(gap), Some(matched)) =
                (input.get(copied..hit.start), input.get(hit.start..hit.end))
            else {
                continue;
            };
            out.push_str(gap);
            self.replace(
                matched,
                self.patterns.get(hit.pattern).and_then(|p| p.builtin),
                out,
            );
            counts.add(hit.pattern);
            copied = hit.end;
        }
        out.push_str(input.get(copied..).unwrap_or_default());
        true
    }

    /// What a whole value (an attribute named for redaction) becomes: the mask, or the keyed
    /// hash of the value as it is.
    pub fn replace_whole(&self, value: &str) -> String {
        let mut out = String::new();
        self.replace(value, None, &mut out);
        out
    }

    fn replace(&self, matched: &str, builtin: Option<Builtin>, out: &mut String) {
        match &self.action {
            Act::Mask(mask) => out.push_str(mask),
            Act::Hash(key) => {
                let tag = keyed_hash(key, matched, builtin);
                let bytes = tag.as_ref();
                for b in bytes.iter().take(HASH_HEX_LEN / 2) {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
    }
}

/// HMAC-SHA-256 of the normalized match, fed in chunks without allocating.
fn keyed_hash(key: &hmac::Key, matched: &str, builtin: Option<Builtin>) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    match builtin {
        Some(Builtin::CreditCard) => {
            let mut digits = [0u8; 32];
            let mut n = 0;
            for b in matched.bytes().filter(u8::is_ascii_digit) {
                if let Some(slot) = digits.get_mut(n) {
                    *slot = b;
                    n += 1;
                }
            }
            ctx.update(digits.get(..n).unwrap_or_default());
        }
        Some(Builtin::Email) => {
            let mut chunk = [0u8; 64];
            for piece in matched.as_bytes().chunks(chunk.len()) {
                let Some(dst) = chunk.get_mut(..piece.len()) else {
                    continue;
                };
                dst.copy_from_slice(piece);
                dst.make_ascii_lowercase();
                ctx.update(dst);
            }
        }
        _ => ctx.update(matched.as_bytes()),
    }
    ctx.sign()
}

#[cfg(test)]
mod tests;
