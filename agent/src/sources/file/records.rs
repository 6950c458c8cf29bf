//! The record path: what happens to the bytes of one read. The file's splitter cuts them
//! into lines (bounded by `max_line_length`), its decoder turns each line into text (counting
//! invalid UTF-8), the multi-line joiner gathers lines into records, the source's `format`
//! ([`super::formats`]) parses each record (and joins container runtimes' partial lines), and the
//! encoder appends it to the batch being built, advancing the file's `emitted` offset past it.
//!
//! A [`Sink`] borrows the tailer's encoder for one read (or one timeout round); it does no I/O
//! and never blocks.

use super::encode::Encoder;
use super::formats::{FileState, Out};
use super::reader::{Decoder, Multiline, RawLine};
use super::settings::Settings;
use super::tracked::Tracked;
use super::Counters;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where lines go: decoding, multi-line joining, formatting and encoding.
pub(super) struct Sink<'a> {
    pub(super) s: &'a Settings,
    pub(super) c: &'a Counters,
    pub(super) encoder: &'a mut Encoder,
    pub(super) observed: u64,
    pub(super) now: Instant,
}

impl Sink<'_> {
    /// `data`, read at offset `pos` of file `t`: every line it completes goes on to a record.
    pub(super) fn feed(&mut self, t: &mut Tracked, data: &[u8], pos: u64) {
        let Tracked {
            splitter,
            multi,
            lines,
            decoder,
            emitted,
            line_end,
            attrs,
            attr_pairs,
            fmt,
            ..
        } = t;
        splitter.feed(lines, data, pos, &mut |raw| {
            self.line(
                raw, *decoder, line_end, emitted, multi, attrs, attr_pairs, fmt,
            )
        });
    }

    /// The file is finished: its unterminated last line and waiting record go out.
    pub(super) fn finish(&mut self, t: &mut Tracked) {
        let Tracked {
            splitter,
            multi,
            lines,
            decoder,
            emitted,
            line_end,
            attrs,
            attr_pairs,
            read_pos,
            fmt,
            ..
        } = t;
        splitter.finish(lines, *read_pos, &mut |raw| {
            self.line(
                raw, *decoder, line_end, emitted, multi, attrs, attr_pairs, fmt,
            )
        });
        multi.flush(&mut |rec, end| {
            *emitted = self.record(rec, attrs, attr_pairs, fmt, end, end);
        });
        let s = self.s;
        s.formats.flush(fmt, &mut self.out(attrs, attr_pairs));
        *emitted = (*emitted).max(*read_pos);
    }

    /// One line: counted when cut or truncated, decoded, then a record on its own or a part
    /// of the multi-line record being gathered.
    #[allow(clippy::too_many_arguments)]
    fn line(
        &mut self,
        raw: RawLine<'_>,
        decoder: Decoder,
        line_end: &mut u64,
        emitted: &mut u64,
        multi: &mut Multiline,
        attrs: &[u8],
        attr_pairs: &[(String, String)],
        fmt: &mut FileState,
    ) {
        if raw.truncated {
            self.c.long_truncated.inc();
        }
        if raw.split {
            self.c.long_split.inc();
        }
        let (text, bad) = decoder.decode(raw.bytes, *line_end == 0);
        if bad {
            self.c.invalid_utf8.inc();
        }
        let start = *line_end;
        *line_end = raw.end;
        let s = self.s;
        match &s.multiline {
            Some(ml) => {
                let now = self.now;
                multi.push(ml, &text, raw.end, now, &mut |rec, end| {
                    *emitted = self.record(rec, attrs, attr_pairs, fmt, end, end);
                });
            }
            None if !text.is_empty() => {
                *emitted = self.record(&text, attrs, attr_pairs, fmt, start, raw.end);
            }
            None => *emitted = fmt.pending_from().unwrap_or(raw.end),
        }
    }

    /// Emits one record (or a piece of one) by the source's `format`; returns the position its
    /// file may advance to (a join still waiting for its last piece holds it back).
    pub(super) fn record(
        &mut self,
        text: &str,
        attrs: &[u8],
        attr_pairs: &[(String, String)],
        fmt: &mut FileState,
        start: u64,
        end: u64,
    ) -> u64 {
        let s = self.s;
        s.formats
            .record(fmt, &mut self.out(attrs, attr_pairs), text, start, end)
    }

    fn out<'b>(&'b mut self, attrs: &'b [u8], attr_pairs: &'b [(String, String)]) -> Out<'b> {
        Out {
            encoder: &mut *self.encoder,
            c: self.c,
            observed: self.observed,
            attrs,
            attr_pairs,
        }
    }
}

/// Now, as nanoseconds since the Unix epoch (0 before it, saturated far after it).
pub(super) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
