//! The tailer's settings: everything the tailer thread needs from the source's config,
//! resolved once at build time (encodings chosen, the multi-line pattern compiled, sizes in
//! bytes). Data only; [`super::tailer`] and the per-file state read it, nothing writes it.

use super::formats::Formats;
use super::reader::{Decoder, LineConfig, MultilineConfig};
use std::time::Duration;

/// Everything the tailer needs from the config, resolved.
pub struct Settings {
    pub fingerprint_bytes: usize,
    pub max_open_files: usize,
    /// `start_at = "end"` and no checkpoint existed: files seen by the first scan start at
    /// their end.
    pub start_first_at_end: bool,
    pub scan_interval: Duration,
    pub poll_interval: Duration,
    pub rotate_wait: Duration,
    pub read_buffer: usize,
    pub lines: LineConfig,
    pub decoder: Decoder,
    /// `encoding = "utf-16"`: the byte order comes from each file's BOM.
    pub utf16_auto: bool,
    pub multiline: Option<MultilineConfig>,
    pub formats: Formats,
    pub include_file_name: bool,
    pub include_file_path: bool,
    /// Wake on file-system events (inotify) besides polling.
    pub fs_events: bool,
    /// A batch is handed on at this many record bytes or records.
    pub batch_bytes: usize,
    pub batch_items: u64,
}
