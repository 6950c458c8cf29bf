//! What a spool is opened with ([`SpoolConfig`]), why opening can fail ([`SpoolError`]) and
//! what opening found ([`Recovered`]). Plain data: nothing here touches the disk.

use sonde_config::{BufferConfig, Fsync, SpoolCompression, WhenFull};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a spool is opened with.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// The exporter's name, for logs and metric labels.
    pub name: Arc<str>,
    pub max_size: u64,
    pub when_full: WhenFull,
    pub fsync: Fsync,
    /// How each record's payload is stored.
    pub compression: SpoolCompression,
    /// A segment is closed and a new one started once the next record would pass this size.
    pub segment_size: u64,
}

impl SpoolConfig {
    /// The spool of exporter `name` under `data_dir/buffers/<name>/`.
    pub fn new(data_dir: &Path, name: &str, cfg: &BufferConfig) -> Self {
        let max_size = cfg.max_size.get().max(1);
        Self {
            dir: data_dir.join("buffers").join(name),
            name: Arc::from(name),
            max_size,
            when_full: cfg.when_full,
            fsync: cfg.fsync,
            compression: cfg.compression,
            segment_size: default_segment_size(max_size),
        }
    }
}

/// An eighth of `max_size`, between 64 KiB and 64 MiB: small enough that deleting a segment at a
/// time keeps close to the limit, large enough that there are few files.
pub fn default_segment_size(max_size: u64) -> u64 {
    (max_size / 8).clamp(64 << 10, 64 << 20)
}

/// Why a spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("disk buffer of exporter `{exporter}`: cannot {what} {path}: {source}")]
    Io {
        exporter: String,
        what: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("disk buffer of exporter `{exporter}`: {path} is in use by another process")]
    Locked { exporter: String, path: String },
}

/// What the spool found when it opened (also logged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Segments holding unexported data.
    pub segments: usize,
    /// Bytes from the cursor to the end.
    pub backlog_bytes: u64,
    pub cursor: CursorFound,
    /// Bytes cut from the end of the last segment (a record torn by a crash).
    pub torn_tail_bytes: u64,
}

/// The state of the cursor file at start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CursorFound {
    #[default]
    Valid,
    /// No cursor file: everything on disk is sent.
    Missing,
    /// A damaged cursor file, or one pointing outside the log: everything on disk is sent.
    Damaged,
}
