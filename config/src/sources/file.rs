//! `type = "file"` source settings: which files are tailed (glob patterns), how they are found,
//! read, split into records (one line, or multi-line) and decoded (text or JSON, the character
//! encoding), and how positions are checkpointed. Also the checks these types cannot express.
//!
//! Plain data and checks only: nothing here opens a file. The tailer itself lives in
//! `agent/src/sources/file/`.

use crate::problem::{KeyPath, Problems};
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
    /// The pattern and time format for `format = "regex"`.
    pub regex: RegexFormatConfig,
    /// Kubernetes resource attributes (`k8s.namespace.name`, `k8s.pod.name`, …) taken from
    /// paths laid out as the kubelet does (`/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`).
    /// Absent: on for `format = "cri"` and `"docker"`, off otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s_metadata: Option<bool>,
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
            regex: RegexFormatConfig::default(),
            k8s_metadata: None,
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
    /// The CRI log format containerd and CRI-O write for Kubernetes:
    /// `<RFC 3339 time> <stdout|stderr> <P|F> <text>`, partial (`P`) lines joined.
    Cri,
    /// Docker's `json-file` log driver: `{"log":"…\n","stream":"stdout","time":"…"}`, partial
    /// lines (no trailing newline) joined.
    Docker,
    /// `key=value` pairs (values may be quoted): the pairs become attributes.
    Logfmt,
    /// A regular expression with named captures (see `regex`).
    Regex,
}

impl FileFormat {
    /// Formats written by container runtimes, whose files Kubernetes lays out by pod.
    pub fn is_container(self) -> bool {
        matches!(self, FileFormat::Cri | FileFormat::Docker)
    }
}

/// `format = "regex"`: named captures become attributes; `time`, `severity` and `message` (or
/// `body`) captures map onto the record's time, severity and body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegexFormatConfig {
    /// The regular expression matched against each record.
    pub pattern: String,
    /// A strftime-style format for the `time` capture (`%d/%b/%Y:%H:%M:%S %z`); absent: RFC 3339
    /// text or Unix seconds / ms / µs / ns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_format: Option<String>,
}

impl FileSourceConfig {
    /// Whether Kubernetes resource attributes are taken from the paths.
    pub fn k8s_metadata(&self) -> bool {
        self.k8s_metadata.unwrap_or(self.format.is_container())
    }
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

impl FileSourceConfig {
    /// What is wrong with these settings, each with its key path below the source.
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        self.check_patterns(&mut out);
        self.check_sizes(&mut out);
        for (k, d) in [
            ("scan_interval", self.scan_interval),
            ("poll_interval", self.poll_interval),
            ("checkpoint_interval", self.checkpoint_interval),
        ] {
            if d.get() < std::time::Duration::from_millis(10) {
                out.at(k, "must be at least 10ms");
            }
        }
        if encoding_rs::Encoding::for_label(self.encoding.as_bytes()).is_none()
            && !self.encoding.eq_ignore_ascii_case("utf-16")
        {
            out.at(
                "encoding",
                format!(
                    "unknown encoding `{}` (e.g. `utf-8`, `utf-16`, `utf-16le`, `latin1`)",
                    self.encoding
                ),
            );
        }
        if let Some(m) = &self.multiline {
            if let Err(e) = regex::bytes::Regex::new(&m.start) {
                out.at(
                    "multiline.start",
                    format!("invalid regular expression: {e}"),
                );
            }
            if m.timeout.get().is_zero() {
                out.at("multiline.timeout", "must be greater than zero");
            }
            if self.format.is_container() {
                out.at(
                    "multiline",
                    "cannot be used with `format = \"cri\"` or `\"docker\"` (their partial lines are joined by the format)",
                );
            }
        }
        self.check_regex(&mut out);
        out
    }

    /// `format = "regex"` has a pattern that compiles and a time format chrono understands.
    fn check_regex(&self, out: &mut Problems) {
        let r = &self.regex;
        if self.format == FileFormat::Regex {
            if r.pattern.is_empty() {
                out.at("regex.pattern", "`format = \"regex\"` needs a pattern");
            } else {
                match regex::Regex::new(&r.pattern) {
                    Err(e) => out.at("regex.pattern", format!("invalid regular expression: {e}")),
                    Ok(re) if re.capture_names().flatten().next().is_none() => out.at(
                        "regex.pattern",
                        "has no named capture (`(?P<name>...)`); nothing would be extracted",
                    ),
                    Ok(_) => {}
                }
            }
        } else if !r.pattern.is_empty() || r.time_format.is_some() {
            out.at("regex", "is only used with `format = \"regex\"`");
        }
        if let Some(f) = &r.time_format {
            use chrono::format::{Item, StrftimeItems};
            if f.is_empty() || StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
                out.at(
                    "regex.time_format",
                    format!(
                        "`{f}` is not a valid strftime format (e.g. `%Y-%m-%d %H:%M:%S%.f %z`)"
                    ),
                );
            }
        }
    }

    /// `include` is not empty, and every pattern compiles; included ones are absolute.
    fn check_patterns(&self, out: &mut Problems) {
        if self.include.is_empty() {
            out.at("include", "at least one pattern is needed");
        }
        for (list, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            for (i, p) in patterns.iter().enumerate() {
                let at = || KeyPath::dotted(list).index(i);
                if list == "include" && !p.starts_with('/') {
                    out.at_path(
                        at(),
                        format!("`{p}` is not an absolute path (patterns start with `/`)"),
                    );
                }
                if let Err(e) = globset::Glob::new(p) {
                    out.at_path(at(), format!("invalid pattern `{p}`: {}", e.kind()));
                }
            }
        }
    }

    /// The fingerprint, open-file, line and read-buffer bounds.
    fn check_sizes(&self, out: &mut Problems) {
        if self.fingerprint_bytes < 16 || self.fingerprint_bytes > 65_536 {
            out.at("fingerprint_bytes", "must be between 16 and 65536");
        }
        if self.max_open_files == 0 {
            out.at("max_open_files", "must be at least 1");
        }
        if self.max_line_length.get() < 16 {
            out.at("max_line_length", "must be at least 16 bytes");
        }
        if self.max_line_length > ByteSize::mib(64) {
            out.at("max_line_length", "must be at most 64MiB");
        }
        if self.read_buffer_size.get() < 4096 || self.read_buffer_size > ByteSize::mib(16) {
            out.at("read_buffer_size", "must be between 4KiB and 16MiB");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path with list positions as plain numbers: `include.0`.
    fn dotted(path: &KeyPath) -> String {
        let segs: Vec<String> = path.segments().iter().map(|s| s.to_string()).collect();
        segs.join(".")
    }

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
        let errs = c.problems();
        let paths: Vec<String> = errs.iter().map(|p| dotted(&p.path)).collect();
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
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }
}
