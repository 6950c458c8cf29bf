//! One followed file: its identity (device, inode, and the fingerprint of its first bytes),
//! its positions (where the next read starts, what was handed to the encoder, what was
//! reported for the checkpoint), and its own line state (the unfinished line, the waiting
//! multi-line record, the encoding chosen from its first bytes, its `log.file.*` attributes).
//!
//! This module holds the state and the identity rules; [`super::tailer`] decides when a file
//! is opened, resumed, read and closed, and [`super::records`] turns its bytes into records.

use super::encode::encode_attribute;
use super::fingerprint::Fingerprint;
use super::formats::FileState;
use super::reader::{Decoder, LineConfig, Multiline, Newline, Splitter};
use super::settings::Settings;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One file the tailer knows, open or closed.
pub(super) struct Tracked {
    pub(super) id: u64,
    pub(super) path: PathBuf,
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) fp: Fingerprint,
    pub(super) file: Option<File>,
    /// Not matched by the last scan: renamed away or deleted; read to the end, then closed.
    pub(super) gone: bool,
    /// Scan generation that last matched this file.
    pub(super) seen_gen: u64,
    pub(super) last_seen: Instant,
    /// Where the next read starts.
    pub(super) read_pos: u64,
    /// Offset after the last record handed to the encoder.
    pub(super) emitted: u64,
    /// `emitted` as last reported in a batch's positions.
    pub(super) reported: u64,
    /// Offset after the last line split off (the start of the next one).
    pub(super) line_end: u64,
    pub(super) at_eof: bool,
    /// Gone and read to the end: its last line went out; waiting for delivery to close it.
    pub(super) finished: bool,
    pub(super) last_data: Instant,
    pub(super) splitter: Splitter,
    pub(super) multi: Multiline,
    pub(super) lines: LineConfig,
    pub(super) decoder: Decoder,
    /// `log.file.*` attributes, encoded for text records and as pairs for parsed ones.
    pub(super) attrs: Vec<u8>,
    pub(super) attr_pairs: Vec<(String, String)>,
    /// Format state: joins waiting for their last piece, the file's resource.
    pub(super) fmt: FileState,
}

/// What a newly tracked file starts from: its identity, its descriptor when open, and the
/// offset reading starts at.
pub(super) struct Found<'a> {
    pub(super) id: u64,
    pub(super) path: &'a Path,
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) fp: Fingerprint,
    pub(super) file: Option<File>,
    pub(super) offset: u64,
    pub(super) seen_gen: u64,
}

impl Tracked {
    pub(super) fn new(f: Found<'_>, now: Instant, s: &Settings) -> Tracked {
        let mut t = Tracked {
            id: f.id,
            path: PathBuf::new(),
            dev: f.dev,
            ino: f.ino,
            fp: f.fp,
            file: f.file,
            gone: false,
            seen_gen: f.seen_gen,
            last_seen: now,
            read_pos: f.offset,
            emitted: f.offset,
            reported: f.offset,
            line_end: f.offset,
            at_eof: false,
            finished: false,
            last_data: now,
            splitter: Splitter::default(),
            multi: Multiline::default(),
            lines: s.lines.clone(),
            decoder: s.decoder,
            attrs: vec![],
            attr_pairs: vec![],
            fmt: FileState::default(),
        };
        t.set_path(f.path, s);
        t
    }

    pub(super) fn set_path(&mut self, path: &Path, s: &Settings) {
        self.path = path.to_path_buf();
        self.fmt.set_path(&s.formats, path);
        self.attrs.clear();
        self.attr_pairs.clear();
        if s.include_file_name {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.attrs
                .extend_from_slice(&encode_attribute("log.file.name", &name));
            self.attr_pairs.push(("log.file.name".into(), name));
        }
        if s.include_file_path {
            let p = path.to_string_lossy().into_owned();
            self.attrs
                .extend_from_slice(&encode_attribute("log.file.path", &p));
            self.attr_pairs.push(("log.file.path".into(), p));
        }
    }

    /// Chooses the line format from the first bytes (`encoding = "utf-16"`).
    pub(super) fn set_encoding(&mut self, s: &Settings, prefix: &[u8]) {
        self.lines = s.lines.clone();
        self.decoder = s.decoder;
        if s.utf16_auto {
            if prefix.starts_with(&[0xfe, 0xff]) {
                self.lines = LineConfig::new(s.lines.max, s.lines.on_long, Newline::Utf16Be);
                self.decoder = Decoder::new(encoding_rs::UTF_16BE);
            } else {
                self.lines = LineConfig::new(s.lines.max, s.lines.on_long, Newline::Utf16Le);
                self.decoder = Decoder::new(encoding_rs::UTF_16LE);
            }
        }
    }

    pub(super) fn idle(&self) -> bool {
        self.at_eof && self.splitter.buffered() == 0 && self.multi.is_empty()
    }
}

/// The best known file whose fingerprint begins `prefix` (the first bytes of a file at
/// `dev`/`ino`): same inode first, then the longest fingerprint, then the latest seen. A
/// fingerprint shorter than `full` bytes is trusted only with the same inode.
pub(super) fn best_known(
    files: &[Tracked],
    prefix: &[u8],
    full: usize,
    dev: u64,
    ino: u64,
) -> Option<usize> {
    files
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.fp.len > 0
                && t.fp.is_prefix_of(prefix)
                && (t.fp.len as usize >= full || (t.dev, t.ino) == (dev, ino))
        })
        .max_by_key(|(_, t)| ((t.dev, t.ino) == (dev, ino), t.fp.len, t.last_seen))
        .map(|(i, _)| i)
}
