//! `type = "file"`: the settings of the log file tailer. Plain data with defaults; the tailer
//! itself lives in `agent/src/sources/file/`.

use crate::units::{ByteSize, Duration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `type = "file"`: tails files matching glob patterns and emits one OTLP log record per line
/// (or per multi-line record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSourceConfig {
    /// Glob patterns of the files to tail (`*`, `?`, `[ab]`, `{a,b}`, `**`). Absolute paths.
    pub include: Vec<String>,
    /// Glob patterns of paths to leave out even when `include` matches them.
    pub exclude: Vec<String>,
    /// Where to start in files that are already there the very first time the source runs (no
    /// checkpoints yet). Files that appear later are always read from their beginning.
    pub start_at: StartAt,
    /// How often the patterns are matched again to find new, rotated and deleted files.
    pub scan_interval: Duration,
    /// How long to wait before reading again once every open file is at its end.
    pub poll_interval: Duration,
    /// Also wake up on file-system events (inotify): lines arrive without waiting for the next
    /// poll, new and rotated files are found without waiting for the next scan.
    pub fs_events: bool,
    /// How many leading bytes identify a file (hashed). Files whose first bytes are equal are
    /// taken for one file; shorter files are identified by what they have plus their inode.
    pub fingerprint_bytes: usize,
    /// Files open at once; more matching files wait their turn.
    pub max_open_files: usize,
    /// The longest log record kept, in bytes; see `on_long_line`.
    pub max_line_length: ByteSize,
    /// What to do with a record longer than `max_line_length`.
    pub on_long_line: LongLine,
    /// Bytes read from a file in one go.
    pub read_buffer_size: ByteSize,
    /// How long a file that was rotated away or deleted is kept open after its last new data,
    /// so lines its writer still appends before reopening are not lost.
    pub rotate_wait: Duration,
    /// How often acknowledged positions are written to disk.
    pub checkpoint_interval: Duration,
    /// Character encoding of the files (any WHATWG label: `utf-8`, `utf-16le`, `utf-16be`,
    /// `latin1`, `shift_jis`, …). `utf-16` detects the byte order from a BOM (default LE).
    pub encoding: String,
    /// How each record is turned into a log record.
    pub format: FileFormat,
    /// Add the `log.file.name` attribute (the file's name).
    pub include_file_name: bool,
    /// Add the `log.file.path` attribute (the file's full path).
    pub include_file_path: bool,
    /// Extra resource attributes, added to `host.name` and `os.type`.
    pub resource: BTreeMap<String, String>,
    /// Multi-line records: absent means one record per line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiline: Option<MultilineConfig>,
    /// Field mapping for `format = "json"`.
    pub json: JsonFieldsConfig,
}

impl Default for FileSourceConfig {
    fn default() -> Self {
        Self {
            include: vec![],
            exclude: vec![],
            start_at: StartAt::End,
            scan_interval: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            fs_events: true,
            fingerprint_bytes: 1024,
            max_open_files: 1024,
            max_line_length: ByteSize::mib(1),
            on_long_line: LongLine::Split,
            read_buffer_size: ByteSize::kib(256),
            rotate_wait: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(1),
            encoding: "utf-8".into(),
            format: FileFormat::Text,
            include_file_name: true,
            include_file_path: false,
            resource: BTreeMap::new(),
            multiline: None,
            json: JsonFieldsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongLine {
    /// Emit the record in pieces of `max_line_length` bytes.
    Split,
    /// Keep the first `max_line_length` bytes and skip the rest of the line.
    Truncate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// The line is the body, as a string.
    Text,
    /// The line is a JSON object: its fields become attributes (see `json`).
    Json,
}

/// Lines are joined into one record from a line matching `start` up to the next such line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A regular expression matching the first line of a record (e.g. `^\d{4}-`).
    pub start: String,
    /// A record waiting for more lines is emitted after this long without one.
    #[serde(default = "default_multiline_timeout")]
    pub timeout: Duration,
}

fn default_multiline_timeout() -> Duration {
    Duration::from_secs(1)
}

/// How the fields of a JSON line map onto the log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonFieldsConfig {
    /// The field that becomes the body; without it the whole line is the body.
    pub message_field: String,
    /// The field holding the record's time (RFC 3339 text, or Unix seconds / ms / µs / ns as a
    /// number); absent means not mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_field: Option<String>,
    /// The field holding the severity (`info`, `WARN`, `error`, … or a bunyan/pino number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity_field: Option<String>,
}

impl Default for JsonFieldsConfig {
    fn default() -> Self {
        Self {
            message_field: "message".into(),
            timestamp_field: None,
            severity_field: None,
        }
    }
}

/// Checks that need more than types: every problem as (key path below the source, message).
/// Numeric path segments are list indices.
pub fn validate(c: &FileSourceConfig) -> Vec<(Vec<String>, String)> {
    let mut errs = Vec::new();
    let mut err = |path: &[&str], msg: String| {
        errs.push((path.iter().map(|s| s.to_string()).collect(), msg));
    };
    if c.include.is_empty() {
        err(&["include"], "at least one pattern is needed".into());
    }
    for (list, patterns) in [("include", &c.include), ("exclude", &c.exclude)] {
        for (i, p) in patterns.iter().enumerate() {
            let idx = i.to_string();
            if list == "include" && !p.starts_with('/') {
                err(
                    &[list, &idx],
                    format!("`{p}` is not an absolute path (patterns start with `/`)"),
                );
            }
            if let Err(e) = globset::Glob::new(p) {
                err(
                    &[list, &idx],
                    format!("invalid pattern `{p}`: {}", e.kind()),
                );
            }
        }
    }
    if c.fingerprint_bytes < 16 || c.fingerprint_bytes > 65_536 {
        err(
            &["fingerprint_bytes"],
            "must be between 16 and 65536".into(),
        );
    }
    if c.max_open_files == 0 {
        err(&["max_open_files"], "must be at least 1".into());
    }
    if c.max_line_length.get() < 16 {
        err(&["max_line_length"], "must be at least 16 bytes".into());
    }
    if c.max_line_length > ByteSize::mib(64) {
        err(&["max_line_length"], "must be at most 64MiB".into());
    }
    if c.read_buffer_size.get() < 4096 || c.read_buffer_size > ByteSize::mib(16) {
        err(
            &["read_buffer_size"],
            "must be between 4KiB and 16MiB".into(),
        );
    }
    for (k, d) in [
        ("scan_interval", c.scan_interval),
        ("poll_interval", c.poll_interval),
        ("checkpoint_interval", c.checkpoint_interval),
    ] {
        if d.get() < std::time::Duration::from_millis(10) {
            err(&[k], "must be at least 10ms".into());
        }
    }
    if encoding_rs::Encoding::for_label(c.encoding.as_bytes()).is_none()
        && !c.encoding.eq_ignore_ascii_case("utf-16")
    {
        err(
            &["encoding"],
            format!(
                "unknown encoding `{}` (e.g. `utf-8`, `utf-16`, `utf-16le`, `latin1`)",
                c.encoding
            ),
        );
    }
    if let Some(m) = &c.multiline {
        if let Err(e) = regex::bytes::Regex::new(&m.start) {
            err(
                &["multiline", "start"],
                format!("invalid regular expression: {e}"),
            );
        }
        if m.timeout.get().is_zero() {
            err(
                &["multiline", "timeout"],
                "must be greater than zero".into(),
            );
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_patterns_regexes_and_encodings_are_reported() {
        let c = FileSourceConfig {
            include: vec!["relative/*.log".into(), "/var/log/[".into()],
            encoding: "klingon".into(),
            multiline: Some(MultilineConfig {
                start: "(".into(),
                timeout: Duration::from_secs(1),
            }),
            ..Default::default()
        };
        let errs = validate(&c);
        let paths: Vec<String> = errs.iter().map(|(p, _)| p.join(".")).collect();
        assert_eq!(
            paths,
            ["include.0", "include.1", "encoding", "multiline.start"],
            "{errs:?}"
        );
    }

    #[test]
    fn a_plain_config_is_valid() {
        let c = FileSourceConfig {
            include: vec!["/var/log/**/*.log".into()],
            exclude: vec!["*.gz".into()],
            encoding: "UTF-16".into(),
            ..Default::default()
        };
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
    }
}
