//! Turning a file's records (lines, or multi-line records) into log records, by `format`:
//! `text`, `json` ([`super::parse`]), `cri` ([`cri`]), `docker` ([`docker`]), `logfmt`
//! ([`logfmt`]) and `regex` ([`regex`]); and the per-file state that needs: the partial lines of
//! container runtimes waiting for their last piece, and the file's resource (Kubernetes
//! attributes from its path, [`super::k8s`]).
//!
//! Positions. A partial line is consumed but not yet a record: until its last piece is read, the
//! file's delivered position must not pass the line where the join began, or a crash would lose
//! the first pieces. [`Formats::record`] returns the position the file may advance to. Pieces of
//! stdout and stderr are joined separately (runtimes interleave the two streams).
//!
//! Bounds: a join holds at most `max_line_length` bytes per stream; a longer one is split or cut
//! as `on_long_line` says, and counted as a long line.

pub mod cri;
pub mod docker;
pub mod logfmt;
pub mod regex;

use super::encode::{encode_attribute, Encoder, ResourceId};
use super::{k8s, parse, Counters};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use sonde_config::{FileFormat, FileSourceConfig, JsonFieldsConfig, LongLine};
use std::path::Path;

/// A container's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

/// How records become log records, resolved from the config once per source.
pub struct Formats {
    kind: Kind,
    max: usize,
    on_long: LongLine,
    /// Kubernetes attributes from paths.
    k8s: bool,
    /// The source's resource, which a file's own resource extends.
    base: Resource,
    /// `log.iostream` = `stdout` / `stderr`, encoded.
    iostream: [Vec<u8>; 2],
    /// The `sonde_file_parse_errors_total` reason of this format.
    reason: &'static str,
}

enum Kind {
    Text,
    Json(JsonFieldsConfig),
    Cri,
    Docker,
    Logfmt,
    Regex(regex::RegexFormat),
}

impl Formats {
    /// `base`: the source's resource.
    pub fn new(cfg: &FileSourceConfig, base: Resource) -> Result<Self, ::regex::Error> {
        let kind = match cfg.format {
            FileFormat::Text => Kind::Text,
            FileFormat::Json => Kind::Json(cfg.json.clone()),
            FileFormat::Cri => Kind::Cri,
            FileFormat::Docker => Kind::Docker,
            FileFormat::Logfmt => Kind::Logfmt,
            FileFormat::Regex => Kind::Regex(regex::RegexFormat::new(
                &cfg.regex.pattern,
                cfg.regex.time_format.clone(),
            )?),
        };
        Ok(Formats {
            kind,
            max: cfg.max_line_length.as_usize(),
            on_long: cfg.on_long_line,
            k8s: cfg.k8s_metadata(),
            base,
            iostream: [
                encode_attribute("log.iostream", "stdout"),
                encode_attribute("log.iostream", "stderr"),
            ],
            reason: match cfg.format {
                FileFormat::Text => "text",
                FileFormat::Json => "json",
                FileFormat::Cri => "cri",
                FileFormat::Docker => "docker",
                FileFormat::Logfmt => "logfmt",
                FileFormat::Regex => "regex",
            },
        })
    }

    /// The `reason` label of this format's parse errors.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Turns one record of a file into a log record (or a piece of one); returns the position
    /// the file may advance to: `end`, or where a join still waiting began. `start` is the
    /// file offset of the record's first byte, `end` the one after its last.
    pub fn record(
        &self,
        st: &mut FileState,
        out: &mut Out<'_>,
        text: &str,
        start: u64,
        end: u64,
    ) -> u64 {
        let res = st.resource.as_ref();
        match &self.kind {
            Kind::Text => out.text(res, 0, text, &[]),
            Kind::Json(cfg) => out.parsed(res, parse::json_record(cfg, text), text),
            Kind::Logfmt => out.parsed(res, logfmt::record(text), text),
            Kind::Regex(f) => out.parsed(res, f.record(text), text),
            Kind::Cri => match cri::parse(text) {
                Some(l) => self.piece(st, out, l.stream, l.time, l.text, l.partial, start),
                None => self.unparsed(st, out, text),
            },
            Kind::Docker => match docker::parse(text) {
                Some(l) => self.piece(st, out, l.stream, l.time, &l.text, l.partial, start),
                None => self.unparsed(st, out, text),
            },
        }
        st.pending_from().unwrap_or(end)
    }

    /// A line of a container format that is not one: what waits is emitted first (the line
    /// breaks it), then the line as text.
    fn unparsed(&self, st: &mut FileState, out: &mut Out<'_>, text: &str) {
        out.c.parse_errors.inc();
        self.flush(st, out);
        out.text(st.resource.as_ref(), 0, text, &[]);
    }

    /// One piece of a container line: emitted at once when complete and nothing waits, joined
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    fn piece(
        &self,
        st: &mut FileState,
        out: &mut Out<'_>,
        stream: Stream,
        time: u64,
        text: &str,
        partial: bool,
        start: u64,
    ) {
        let attrs = &self.iostream[stream as usize];
        let res = st.resource.as_ref();
        let j = &mut st.joins[stream as usize];
        if j.from.is_none() && !partial {
            // Never longer than `max_line_length`: the line holding it was not.
            if !text.is_empty() {
                out.text(res, time, text, attrs);
            }
            return;
        }
        if j.from.is_none() {
            j.from = Some(start);
            j.time = time;
        }
        let mut rest = text;
        while !rest.is_empty() {
            let room = self.max.saturating_sub(j.body.len());
            if rest.len() <= room {
                j.body.push_str(rest);
                break;
            }
            let cut = floor_char_boundary(rest, room);
            if !j.cut {
                j.body.push_str(&rest[..cut]);
            }
            match self.on_long {
                LongLine::Truncate => {
                    j.cut = true;
                    break;
                }
                LongLine::Split => {
                    out.c.long_split.inc();
                    out.text(res, j.time, &j.body, attrs);
                    j.body.clear();
                    // The rest of this line is still to come: a restart reads it from here.
                    j.from = Some(start);
                    rest = &rest[cut..];
                }
            }
        }
        if !partial {
            if j.cut {
                out.c.long_truncated.inc();
            }
            if !j.body.is_empty() {
                out.text(res, j.time, &j.body, attrs);
            }
            j.clear();
        }
    }

    /// The file is finished (rotated away or deleted and read to its end): joins still waiting
    /// for their last piece are emitted as they are.
    pub fn flush(&self, st: &mut FileState, out: &mut Out<'_>) {
        let FileState { joins, resource } = st;
        let res = resource.as_ref();
        for (i, j) in joins.iter_mut().enumerate() {
            if j.from.is_none() {
                continue;
            }
            if j.cut {
                out.c.long_truncated.inc();
            }
            if !j.body.is_empty() {
                out.text(res, j.time, &j.body, &self.iostream[i]);
            }
            j.clear();
        }
    }
}

/// The largest index `<= i` that is a character boundary of `s`.
fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    (0..=i).rev().find(|&k| s.is_char_boundary(k)).unwrap_or(0)
}

/// A container line being joined from its pieces.
#[derive(Debug, Default)]
struct Join {
    body: String,
    /// The time of the first piece.
    time: u64,
    /// The file offset of the first piece's line: `None` when nothing waits.
    from: Option<u64>,
    /// Longer than `max_line_length` under `truncate`: the rest is skipped.
    cut: bool,
}

impl Join {
    fn clear(&mut self) {
        self.body.clear();
        self.from = None;
        self.cut = false;
    }
}

/// What one file needs besides its lines: joins waiting for their last piece, and its resource.
#[derive(Debug, Default)]
pub struct FileState {
    joins: [Join; 2],
    /// `None`: the source's own resource.
    resource: Option<ResourceId>,
}

impl FileState {
    /// The file is (now) at `path`: its Kubernetes attributes, when asked for and the path is a
    /// pod log's.
    pub fn set_path(&mut self, f: &Formats, path: &Path) {
        self.resource = if f.k8s {
            k8s::pod_log_attributes(path).map(|a| ResourceId::new(&f.base, a))
        } else {
            None
        };
    }

    /// Where the earliest waiting join began.
    pub fn pending_from(&self) -> Option<u64> {
        self.joins.iter().filter_map(|j| j.from).min()
    }

    /// Forgets waiting joins (the file is read again from a position).
    pub fn reset(&mut self) {
        for j in &mut self.joins {
            j.clear();
        }
    }
}

/// Where records go: the batch being built, the counters, and the file's attributes.
pub struct Out<'a> {
    pub encoder: &'a mut Encoder,
    pub c: &'a Counters,
    pub observed: u64,
    /// `log.file.*` attributes, encoded.
    pub attrs: &'a [u8],
    /// The same as pairs, for records built as structs.
    pub attr_pairs: &'a [(String, String)],
}

impl Out<'_> {
    fn text(&mut self, res: Option<&ResourceId>, time: u64, body: &str, extra: &[u8]) {
        self.c.records.inc();
        self.encoder
            .push_text_in(res, time, self.observed, body, &[self.attrs, extra]);
    }

    /// A parsed record, or the line as text (counted) when it did not parse.
    fn parsed(&mut self, res: Option<&ResourceId>, r: Option<LogRecord>, line: &str) {
        let mut r = match r {
            Some(r) => r,
            None => {
                self.c.parse_errors.inc();
                parse::text_record(line)
            }
        };
        self.c.records.inc();
        r.observed_time_unix_nano = self.observed;
        parse::add_file_attributes(&mut r, self.attr_pairs);
        self.encoder.push_record_in(res, &r);
    }
}

#[cfg(test)]
mod tests;
