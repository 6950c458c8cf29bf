//! `type = "redact"`: the patterns masked or hashed in attribute values (and log bodies).
//! Plain data with defaults and checks; the processor lives in `agent/src/processors/redact.rs`.

use crate::problem::{KeyPath, Problems};
use crate::units::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The built-in pattern names `patterns` may use; anything else is a regular expression.
pub const BUILTIN_PATTERNS: &[&str] = &["credit_card", "email", "ipv4", "ipv6", "jwt"];

/// What a redaction writes in place of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactAction {
    /// The `mask` text.
    #[default]
    Mask,
    /// A keyed hash (HMAC-SHA-256, 24 hex digits): equal values stay equal, so joins still work.
    Hash,
}

/// `type = "redact"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactProcessorConfig {
    /// Built-in pattern names or regular expressions (RE2 syntax).
    pub patterns: Vec<String>,
    pub action: RedactAction,
    /// The replacement with `action = "mask"`.
    pub mask: String,
    /// The hash key with `action = "hash"` (at least 16 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<Secret>,
    /// A file holding the hash key (trailing whitespace ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_key_file: Option<PathBuf>,
    /// Attribute keys whose whole value is redacted, whatever it contains.
    pub keys: Vec<String>,
    /// Redact log bodies too.
    pub bodies: bool,
}

impl Default for RedactProcessorConfig {
    fn default() -> Self {
        RedactProcessorConfig {
            patterns: vec![],
            action: RedactAction::Mask,
            mask: "****".into(),
            hash_key: None,
            hash_key_file: None,
            keys: vec![],
            bodies: false,
        }
    }
}

impl RedactProcessorConfig {
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        if self.patterns.is_empty() && self.keys.is_empty() {
            out.at("", "redacts nothing: give `patterns` or `keys`");
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if BUILTIN_PATTERNS.contains(&p.as_str()) {
                continue;
            }
            if let Err(e) = regex::Regex::new(p) {
                out.at_path(
                    KeyPath::dotted("patterns").index(i),
                    format!(
                        "neither a built-in pattern ({}) nor a valid regular expression: {e}",
                        BUILTIN_PATTERNS.join(", ")
                    ),
                );
            }
        }
        match (self.action, &self.hash_key, &self.hash_key_file) {
            (RedactAction::Hash, None, None) => {
                out.at("action", "`hash` needs `hash_key` or `hash_key_file`")
            }
            (RedactAction::Hash, Some(_), Some(_)) => out.at(
                "hash_key_file",
                "give `hash_key` or `hash_key_file`, not both",
            ),
            (RedactAction::Hash, Some(k), None) if k.expose().len() < 16 => {
                out.at("hash_key", "must be at least 16 bytes")
            }
            (RedactAction::Mask, Some(_), _) | (RedactAction::Mask, _, Some(_)) => out.at(
                "action",
                "a hash key is given but `action` is `mask`: set `action = \"hash\"`",
            ),
            _ => {}
        }
        out
    }
}
