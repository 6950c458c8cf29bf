//! `type = "journald"` source settings: which journal directory is read, which units and
//! priorities are kept, where a first start begins, and which fields become attributes. Also
//! the checks these types cannot express.
//!
//! Plain data and checks only: nothing here opens a file. The journal reader itself lives in
//! `agent/src/sources/journald/`.

use crate::problem::{KeyPath, Problems};
use crate::sources::file::StartAt;
use crate::units::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `type = "journald"`: reads the systemd journal's files (no journalctl, no libsystemd) and
/// emits one OTLP log record per journal entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournaldSourceConfig {
    /// The journal directory; absent means `/var/log/journal`, or `/run/log/journal` when the
    /// first does not exist. Its files and those of its machine-id subdirectories are read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Keep only entries of these units (`_SYSTEMD_UNIT`); empty keeps every unit.
    pub units: Vec<String>,
    /// Leave out entries of these units.
    pub exclude_units: Vec<String>,
    /// Keep entries up to this priority (`emerg` … `debug`); entries without one are kept.
    pub priority: Priority,
    /// Where to start the very first time (no checkpoint yet): the journal's end or beginning.
    pub start_at: StartAt,
    /// Which fields become attributes: `all`, or `default` (the documented subset).
    pub fields: FieldSet,
    /// How often the journal files are checked for new entries and new, archived or deleted
    /// files (inotify wakes the reader sooner).
    pub poll_interval: Duration,
    /// How often acknowledged positions are written to disk.
    pub checkpoint_interval: Duration,
    /// Extra resource attributes, added to `host.name` and `os.type`.
    pub resource: BTreeMap<String, String>,
}

impl Default for JournaldSourceConfig {
    fn default() -> Self {
        Self {
            directory: None,
            units: vec![],
            exclude_units: vec![],
            priority: Priority::Debug,
            start_at: StartAt::End,
            fields: FieldSet::All,
            poll_interval: Duration::from_millis(250),
            checkpoint_interval: Duration::from_secs(1),
            resource: BTreeMap::new(),
        }
    }
}

/// syslog priorities, most severe first (`PRIORITY=0` … `7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Emerg,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Priority {
    /// The numeric syslog priority (0 = emerg … 7 = debug).
    pub fn level(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSet {
    /// Every field of the entry becomes an attribute.
    All,
    /// Only the mapped fields (unit, process, host, boot, identifier, code location, transport).
    Default,
}

impl JournaldSourceConfig {
    /// What is wrong with these settings, each with its key path below the source.
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        if let Some(d) = &self.directory {
            if !d.starts_with('/') {
                out.at("directory", format!("`{d}` is not an absolute path"));
            }
        }
        for (list, units) in [
            ("units", &self.units),
            ("exclude_units", &self.exclude_units),
        ] {
            for (i, u) in units.iter().enumerate() {
                if u.is_empty() {
                    out.at_path(
                        KeyPath::dotted(list).index(i),
                        "a unit name cannot be empty",
                    );
                }
            }
        }
        for (k, d) in [
            ("poll_interval", self.poll_interval),
            ("checkpoint_interval", self.checkpoint_interval),
        ] {
            if d.get() < std::time::Duration::from_millis(10) {
                out.at(k, "must be at least 10ms");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_directories_and_empty_units_are_reported() {
        let c = JournaldSourceConfig {
            directory: Some("log/journal".into()),
            units: vec!["".into()],
            poll_interval: Duration::from_millis(1),
            ..Default::default()
        };
        assert_eq!(c.problems().iter().count(), 3, "{:?}", c.problems());
        assert!(JournaldSourceConfig::default().problems().is_empty());
    }

    #[test]
    fn priorities_order_from_emerg_to_debug() {
        assert_eq!(Priority::Emerg.level(), 0);
        assert_eq!(Priority::Info.level(), 6);
        assert!(Priority::Err < Priority::Warning);
    }
}
