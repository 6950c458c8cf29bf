//! Turning a file's bytes into records: line splitting (`\n`, or the two-byte newline of
//! UTF-16), over-long lines split or truncated at `max_line_length`, decoding to UTF-8 (invalid
//! input replaced and reported), and multi-line records joined by a start pattern.
//!
//! Every record carries the file offset just past its last byte: the position a checkpoint may
//! hold once the record has been delivered. Bytes of an unfinished line stay buffered (bounded by
//! `max_line_length`) and are not covered by any offset until the line is complete.

use encoding_rs::Encoding;
use regex::Regex;
use sonde_config::LongLine;
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// How lines end in the file's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Newline {
    /// `\n` (UTF-8 and every ASCII-compatible encoding).
    Byte,
    Utf16Le,
    Utf16Be,
}

impl Newline {
    /// Bytes per code unit: lines and pieces are multiples of it.
    fn unit(self) -> usize {
        match self {
            Newline::Byte => 1,
            Newline::Utf16Le | Newline::Utf16Be => 2,
        }
    }

    /// Index of the first newline in `data` (which starts at a code unit boundary) and its
    /// length.
    fn find(self, data: &[u8]) -> Option<usize> {
        match self {
            Newline::Byte => memchr::memchr(b'\n', data),
            Newline::Utf16Le => memchr::memchr_iter(b'\n', data)
                .find(|&j| j % 2 == 0 && data.get(j + 1) == Some(&0)),
            Newline::Utf16Be => memchr::memchr_iter(b'\n', data)
                .find(|&j| j % 2 == 1 && data[j - 1] == 0)
                .map(|j| j - 1),
        }
    }

    /// `line` without a trailing carriage return.
    fn strip_cr(self, line: &[u8]) -> &[u8] {
        let cr: &[u8] = match self {
            Newline::Byte => b"\r",
            Newline::Utf16Le => &[b'\r', 0],
            Newline::Utf16Be => &[0, b'\r'],
        };
        line.strip_suffix(cr).unwrap_or(line)
    }
}

/// Line settings shared by every file of a source.
#[derive(Debug, Clone)]
pub struct LineConfig {
    pub max: usize,
    pub on_long: LongLine,
    pub newline: Newline,
}

impl LineConfig {
    pub fn new(max: usize, on_long: LongLine, newline: Newline) -> Self {
        let unit = newline.unit();
        LineConfig {
            // Pieces of a split line stay whole code units.
            max: (max / unit * unit).max(unit),
            on_long,
            newline,
        }
    }
}

/// One line (or piece of one) as raw bytes.
#[derive(Debug)]
pub struct RawLine<'a> {
    pub bytes: &'a [u8],
    /// File offset just past this line, its newline included.
    pub end: u64,
    /// Longer than `max_line_length`: the rest was dropped (`truncate`).
    pub truncated: bool,
    /// A piece of a longer line (`split`).
    pub split: bool,
}

/// The line splitter of one file.
#[derive(Debug, Default)]
pub struct Splitter {
    /// The unfinished line (at most `max` bytes).
    carry: Vec<u8>,
    /// The current line already passed `max` under `truncate`: its rest is being skipped.
    skipping: bool,
    /// The current line was split already (its remaining piece is a piece too).
    splitting: bool,
    /// A code unit cut in two by a read (UTF-16 only).
    odd: Vec<u8>,
    /// Scratch for joining `odd` and new data.
    joined: Vec<u8>,
}

impl Splitter {
    /// Bytes buffered for the unfinished line.
    pub fn buffered(&self) -> usize {
        self.carry.len() + self.odd.len()
    }

    pub fn reset(&mut self) {
        self.carry.clear();
        self.odd.clear();
        self.skipping = false;
        self.splitting = false;
    }

    /// Feeds `data`, which was read at file offset `pos` (just after everything fed before);
    /// calls `emit` for every complete line.
    pub fn feed(
        &mut self,
        cfg: &LineConfig,
        data: &[u8],
        pos: u64,
        emit: &mut dyn FnMut(RawLine<'_>),
    ) {
        if cfg.newline == Newline::Byte {
            self.feed_aligned(cfg, data, pos, emit);
            return;
        }
        // UTF-16: process whole code units only; a trailing odd byte waits for the next read.
        let mut joined = std::mem::take(&mut self.joined);
        joined.clear();
        joined.extend_from_slice(&self.odd);
        joined.extend_from_slice(data);
        let start = pos - self.odd.len() as u64;
        self.odd.clear();
        let whole = joined.len() / 2 * 2;
        self.odd.extend_from_slice(&joined[whole..]);
        self.feed_aligned(cfg, &joined[..whole], start, emit);
        self.joined = joined;
    }

    fn feed_aligned(
        &mut self,
        cfg: &LineConfig,
        data: &[u8],
        pos: u64,
        emit: &mut dyn FnMut(RawLine<'_>),
    ) {
        let nl_len = cfg.newline.unit();
        let mut i = 0;
        while let Some(rel) = cfg.newline.find(&data[i..]) {
            let nl = i + rel;
            let end = pos + (nl + nl_len) as u64;
            let segment = &data[i..nl];
            if self.carry.is_empty()
                && !self.skipping
                && !self.splitting
                && segment.len() <= cfg.max
            {
                // The fast path: the whole line is in this read.
                emit(RawLine {
                    bytes: cfg.newline.strip_cr(segment),
                    end,
                    truncated: false,
                    split: false,
                });
            } else {
                self.push_partial(cfg, segment, pos + nl as u64, emit);
                let carry = std::mem::take(&mut self.carry);
                emit(RawLine {
                    bytes: cfg.newline.strip_cr(&carry),
                    end,
                    truncated: self.skipping,
                    split: self.splitting,
                });
                self.carry = carry;
                self.carry.clear();
                self.skipping = false;
                self.splitting = false;
            }
            i = nl + nl_len;
        }
        self.push_partial(cfg, &data[i..], pos + data.len() as u64, emit);
    }

    /// Adds bytes of an unfinished line (ending at file offset `end`), honouring `max`.
    fn push_partial(
        &mut self,
        cfg: &LineConfig,
        mut bytes: &[u8],
        end: u64,
        emit: &mut dyn FnMut(RawLine<'_>),
    ) {
        if self.skipping {
            return;
        }
        let room = cfg.max - self.carry.len();
        if bytes.len() <= room {
            self.carry.extend_from_slice(bytes);
            return;
        }
        match cfg.on_long {
            LongLine::Truncate => {
                self.carry.extend_from_slice(&bytes[..room]);
                self.skipping = true;
            }
            LongLine::Split => {
                self.carry.extend_from_slice(&bytes[..room]);
                bytes = &bytes[room..];
                self.splitting = true;
                emit(RawLine {
                    bytes: &self.carry,
                    end: end - bytes.len() as u64,
                    truncated: false,
                    split: true,
                });
                self.carry.clear();
                while bytes.len() > cfg.max {
                    let (piece, rest) = bytes.split_at(cfg.max);
                    bytes = rest;
                    emit(RawLine {
                        bytes: piece,
                        end: end - bytes.len() as u64,
                        truncated: false,
                        split: true,
                    });
                }
                self.carry.extend_from_slice(bytes);
            }
        }
    }

    /// The file is finished (deleted or rotated away, and drained): emits its unterminated last
    /// line, if any. `end` is the file offset after the last byte fed.
    pub fn finish(&mut self, cfg: &LineConfig, end: u64, emit: &mut dyn FnMut(RawLine<'_>)) {
        if !self.carry.is_empty() || !self.odd.is_empty() {
            let mut carry = std::mem::take(&mut self.carry);
            if !self.skipping {
                carry.extend_from_slice(&self.odd);
            }
            emit(RawLine {
                bytes: cfg.newline.strip_cr(&carry),
                end,
                truncated: self.skipping,
                split: self.splitting,
            });
        }
        self.reset();
    }
}

/// Decodes record bytes to UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    /// `None` = UTF-8.
    encoding: Option<&'static Encoding>,
}

impl Decoder {
    pub fn utf8() -> Self {
        Decoder { encoding: None }
    }

    pub fn new(encoding: &'static Encoding) -> Self {
        if encoding == encoding_rs::UTF_8 {
            Self::utf8()
        } else {
            Decoder {
                encoding: Some(encoding),
            }
        }
    }

    /// The text of `bytes` and whether anything had to be replaced. `at_start`: the bytes begin
    /// the file, so a byte order mark is dropped.
    pub fn decode<'a>(&self, bytes: &'a [u8], at_start: bool) -> (Cow<'a, str>, bool) {
        match self.encoding {
            None => {
                let bytes = if at_start {
                    bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
                } else {
                    bytes
                };
                match std::str::from_utf8(bytes) {
                    Ok(s) => (Cow::Borrowed(s), false),
                    Err(_) => (String::from_utf8_lossy(bytes), true),
                }
            }
            Some(enc) => {
                let (text, bad) = enc.decode_without_bom_handling(bytes);
                match text {
                    Cow::Borrowed(s) if at_start => {
                        (Cow::Borrowed(s.strip_prefix('\u{feff}').unwrap_or(s)), bad)
                    }
                    Cow::Owned(s) if at_start && s.starts_with('\u{feff}') => {
                        (Cow::Owned(s['\u{feff}'.len_utf8()..].to_string()), bad)
                    }
                    t => (t, bad),
                }
            }
        }
    }
}

/// Multi-line settings shared by every file of a source.
#[derive(Debug, Clone)]
pub struct MultilineConfig {
    pub start: Regex,
    pub timeout: Duration,
    pub max: usize,
}

/// The record being assembled from several lines, in one file.
#[derive(Debug, Default)]
pub struct Multiline {
    buf: String,
    end: u64,
    last: Option<Instant>,
}

impl Multiline {
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// Adds a line ending at offset `end`; emits the previous record when this line starts a new
    /// one (or when adding it would pass `max`).
    pub fn push(
        &mut self,
        cfg: &MultilineConfig,
        line: &str,
        end: u64,
        now: Instant,
        emit: &mut dyn FnMut(&str, u64),
    ) {
        if !self.is_empty()
            && (cfg.start.is_match(line) || self.buf.len() + 1 + line.len() > cfg.max)
        {
            self.flush(emit);
        }
        if !self.is_empty() {
            self.buf.push('\n');
        }
        self.buf.push_str(line);
        self.end = end;
        self.last = Some(now);
    }

    /// Emits the waiting record if no line was added for `timeout`.
    pub fn flush_if_idle(
        &mut self,
        cfg: &MultilineConfig,
        now: Instant,
        emit: &mut dyn FnMut(&str, u64),
    ) {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) >= cfg.timeout)
        {
            self.flush(emit);
        }
    }

    pub fn flush(&mut self, emit: &mut dyn FnMut(&str, u64)) {
        if self.last.take().is_some() {
            emit(&self.buf, self.end);
        }
        self.buf.clear();
    }

    pub fn reset(&mut self) {
        self.buf.clear();
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(cfg: &LineConfig, chunks: &[&[u8]]) -> Vec<(String, u64, bool, bool)> {
        let mut s = Splitter::default();
        let mut out = vec![];
        let mut pos = 0;
        for c in chunks {
            s.feed(cfg, c, pos, &mut |l| {
                out.push((
                    String::from_utf8_lossy(l.bytes).into_owned(),
                    l.end,
                    l.truncated,
                    l.split,
                ))
            });
            pos += c.len() as u64;
        }
        out
    }

    fn plain(max: usize, on_long: LongLine) -> LineConfig {
        LineConfig::new(max, on_long, Newline::Byte)
    }

    #[test]
    fn lines_across_reads_keep_their_offsets() {
        let got = lines(
            &plain(100, LongLine::Split),
            &[b"one\ntw", b"o\r\nthree\n", b"four"],
        );
        assert_eq!(
            got,
            [
                ("one".into(), 4, false, false),
                ("two".into(), 9, false, false),
                ("three".into(), 15, false, false)
            ]
        );
    }

    #[test]
    fn long_lines_split_into_pieces_with_offsets() {
        let got = lines(&plain(4, LongLine::Split), &[b"abcdefghij\nxy\n"]);
        assert_eq!(
            got,
            [
                ("abcd".into(), 4, false, true),
                ("efgh".into(), 8, false, true),
                ("ij".into(), 11, false, true),
                ("xy".into(), 14, false, false)
            ]
        );
        // The same when the long line arrives in small reads.
        let got = lines(&plain(4, LongLine::Split), &[b"abc", b"defg", b"hij\nxy\n"]);
        assert_eq!(
            got.iter().map(|g| (g.0.as_str(), g.1)).collect::<Vec<_>>(),
            [("abcd", 4), ("efgh", 8), ("ij", 11), ("xy", 14)]
        );
    }

    #[test]
    fn long_lines_truncate_and_skip_the_rest() {
        let got = lines(&plain(4, LongLine::Truncate), &[b"abcdef", b"ghij\nxy\n"]);
        assert_eq!(
            got,
            [
                ("abcd".into(), 11, true, false),
                ("xy".into(), 14, false, false)
            ]
        );
    }

    #[test]
    fn a_huge_line_keeps_memory_bounded() {
        let cfg = plain(1024, LongLine::Truncate);
        let mut s = Splitter::default();
        let chunk = vec![b'x'; 1 << 20];
        let mut n = 0;
        for i in 0..20u64 {
            s.feed(&cfg, &chunk, i << 20, &mut |_| n += 1);
            assert!(s.buffered() <= 1024);
        }
        s.feed(&cfg, b"\n", 20 << 20, &mut |l| {
            assert!(l.truncated);
            assert_eq!(l.bytes.len(), 1024);
            n += 1;
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn finish_emits_the_unterminated_last_line() {
        let cfg = plain(100, LongLine::Split);
        let mut s = Splitter::default();
        s.feed(&cfg, b"a\nlast", 0, &mut |_| {});
        let mut got = vec![];
        s.finish(&cfg, 6, &mut |l| got.push((l.bytes.to_vec(), l.end)));
        assert_eq!(got, [(b"last".to_vec(), 6)]);
    }

    #[test]
    fn utf16le_lines_split_on_aligned_newlines_even_across_odd_reads() {
        let text = "héllo\nwörld\n";
        let mut bytes = vec![0xff, 0xfe];
        for u in text.encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let cfg = LineConfig::new(100, LongLine::Split, Newline::Utf16Le);
        let dec = Decoder::new(encoding_rs::UTF_16LE);
        let mut s = Splitter::default();
        let mut got = vec![];
        let mut pos = 0;
        for c in bytes.chunks(3) {
            s.feed(&cfg, c, pos, &mut |l| {
                let start = l.end as usize - l.bytes.len() - 2;
                got.push((dec.decode(l.bytes, start == 0).0.into_owned(), l.end))
            });
            pos += c.len() as u64;
        }
        assert_eq!(got, [("héllo".into(), 14), ("wörld".into(), 26)]);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_reported() {
        let d = Decoder::utf8();
        assert_eq!(d.decode(b"ok", false), (Cow::Borrowed("ok"), false));
        let (t, bad) = d.decode(b"a\xffb", false);
        assert_eq!((t.as_ref(), bad), ("a\u{fffd}b", true));
        assert_eq!(d.decode(b"\xef\xbb\xbfbom", true).0, "bom");
    }

    #[test]
    fn multiline_joins_until_the_next_start_or_timeout() {
        let cfg = MultilineConfig {
            start: Regex::new(r"^\d{4}-").unwrap(),
            timeout: Duration::from_millis(100),
            max: 1000,
        };
        let mut m = Multiline::default();
        let mut out = vec![];
        let t0 = Instant::now();
        let mut emit = |s: &str, end: u64| out.push((s.to_string(), end));
        m.push(&cfg, "2024-01-01 boom", 16, t0, &mut emit);
        m.push(&cfg, "  at a()", 25, t0, &mut emit);
        m.push(&cfg, "  at b()", 34, t0, &mut emit);
        m.push(&cfg, "2024-01-01 next", 50, t0, &mut emit);
        m.flush_if_idle(&cfg, t0 + Duration::from_millis(50), &mut emit);
        m.flush_if_idle(&cfg, t0 + Duration::from_millis(150), &mut emit);
        assert_eq!(
            out,
            [
                ("2024-01-01 boom\n  at a()\n  at b()".to_string(), 34),
                ("2024-01-01 next".to_string(), 50)
            ]
        );
    }
}
