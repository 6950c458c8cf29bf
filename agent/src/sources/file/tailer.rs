//! The tailer: one dedicated thread per source that finds files, follows them through rotation,
//! reads them in bounded chunks, and hands encoded batches (with the file positions they cover)
//! to the async side through a channel of two. When the pipeline pushes back, the hand-off
//! blocks and the thread reads nothing more: positions stay where they were.
//!
//! Identity. An open file is recognised by device and inode (so a rename is followed); every
//! read checks that the file still begins with the bytes it was identified by, so a truncation
//! (copytruncate) is noticed even when the file has grown again since. A file seen for the
//! first time is matched against known files by fingerprint ([`tracked::best_known`]): a
//! rotated file that was closed resumes where it was left, a copy of a file still open is
//! ignored, anything else is new and read from its beginning (or, on the very first start,
//! from its end when `start_at = "end"`).
//!
//! Lifetime. A file that no longer matches the patterns (renamed away, deleted) is read to its
//! end; once nothing was appended for `rotate_wait` its last, unterminated line is emitted too,
//! and it is closed when its lines are delivered (a deleted file exists only through our
//! descriptor: closing it earlier would let a crash lose the lines still in flight). Closed
//! files are remembered (for their checkpoint) until no scan has seen them for 15 minutes.
//!
//! This module owns the decisions (when to scan, open, resume, read, close, hand over); the
//! state of each file lives in [`tracked`], and the bytes of each read become records in
//! [`records`].
//!
//! [`tracked`]: super::tracked
//! [`tracked::best_known`]: super::tracked::best_known
//! [`records`]: super::records

use super::checkpoint::{Entry, Tracker};
use super::discover::{Candidate, Discover};
use super::encode::Encoder;
use super::fingerprint::{has_compressed_extension, is_compressed, read_prefix, Fingerprint};
use super::records::{now_nanos, Sink};
use super::settings::Settings;
use super::tracked::{best_known, Found, Tracked};
use super::watch::{Stop, Waiter, Woken};
use super::Counters;
use bytes::Bytes;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Closed files not matched by any scan for this long are forgotten (with their checkpoint):
/// their file is gone (deleted, or moved out of the patterns). Long enough for a copy of it to
/// show up, short enough that frequent rotation does not grow the checkpoint file.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Remembered paths for "said once" warnings; the set is cleared when it grows past this.
const MAX_WARNED: usize = 10_000;

/// What the tailer hands to the async side: one encoded batch (possibly empty) and the
/// positions it covers.
pub struct Outgoing {
    pub payload: Option<(Bytes, u64)>,
    /// (file id, offset after the last line in or before this batch).
    pub positions: Vec<(u64, u64)>,
}

/// How one read ended.
enum Read {
    Data,
    Eof,
    /// The file no longer begins as it did: truncated or rewritten.
    Truncated,
    Failed(io::Error),
}

/// The hand-off was refused: the source is stopping.
pub struct Closed;

pub struct Tailer {
    s: Settings,
    discover: Discover,
    files: Vec<Tracked>,
    next_id: u64,
    gen: u64,
    first_scan: bool,
    buf: Vec<u8>,
    prefix: Vec<u8>,
    encoder: Encoder,
    tracker: Arc<Mutex<Tracker>>,
    c: Counters,
    stop: Stop,
    waiter: Waiter,
    /// The last scan found empty matching files: a write event may be their first content.
    empty_seen: bool,
    last_scan: Instant,
    /// Paths already warned about (skipped, unreadable), so each is said once.
    warned: HashSet<(PathBuf, &'static str)>,
}

impl Tailer {
    pub fn new(
        s: Settings,
        discover: Discover,
        encoder: Encoder,
        tracker: Arc<Mutex<Tracker>>,
        c: Counters,
        stop: Stop,
    ) -> Self {
        let now = Instant::now();
        let known: Vec<(u64, Entry)> = lock(&tracker)
            .entries()
            .map(|(id, e)| (id, e.clone()))
            .collect();
        let next_id = known.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
        let mut files = Vec::with_capacity(known.len());
        for (id, e) in known {
            let t = Tracked::new(
                Found {
                    id,
                    path: &e.path,
                    dev: e.dev,
                    ino: e.ino,
                    fp: e.fp(),
                    file: None,
                    offset: e.offset,
                    seen_gen: 0,
                },
                now,
                &s,
            );
            files.push(t);
        }
        let buf = vec![0; s.read_buffer];
        let waiter = Waiter::new(stop.clone(), s.fs_events);
        Tailer {
            s,
            discover,
            files,
            next_id,
            gen: 0,
            first_scan: true,
            buf,
            prefix: Vec::new(),
            encoder,
            tracker,
            c,
            stop,
            waiter,
            empty_seen: false,
            last_scan: Instant::now(),
            warned: HashSet::new(),
        }
    }

    /// Runs until stopped or until the async side is gone.
    pub fn run(mut self, tx: mpsc::Sender<Outgoing>) {
        let mut next_scan = Instant::now();
        let _ = self.run_loop(&tx, &mut next_scan);
        debug!("tailer stopped");
    }

    fn run_loop(
        &mut self,
        tx: &mpsc::Sender<Outgoing>,
        next_scan: &mut Instant,
    ) -> Result<(), Closed> {
        while !self.stop.is_stopped() {
            let now = Instant::now();
            if now >= *next_scan {
                self.scan();
                *next_scan = Instant::now() + self.s.scan_interval;
            }
            let progressed = self.read_pass(tx)?;
            self.timeouts();
            self.send(tx)?;
            if !progressed {
                let until_scan = next_scan.saturating_duration_since(Instant::now());
                match self.waiter.wait(self.s.poll_interval.min(until_scan)) {
                    Woken::Stopped => break,
                    Woken::Changed => *next_scan = Instant::now(),
                    // A new file is created empty, then written: its write is the news. Scans
                    // for that are spaced at least 100 ms apart.
                    Woken::Modified if self.empty_seen => {
                        *next_scan = (self.last_scan + Duration::from_millis(100)).min(*next_scan)
                    }
                    Woken::Modified | Woken::Timeout => {}
                }
            }
        }
        Ok(())
    }

    fn open_count(&self) -> usize {
        self.files.iter().filter(|t| t.file.is_some()).count()
    }

    fn warn_once(&mut self, path: &Path, what: &'static str) -> bool {
        if self.warned.len() >= MAX_WARNED {
            self.warned.clear();
        }
        self.warned.insert((path.to_path_buf(), what))
    }

    // -----------------------------------------------------------------------------------------
    // Discovery

    fn scan(&mut self) {
        self.gen += 1;
        let gen = self.gen;
        let now = Instant::now();
        self.last_scan = now;
        self.empty_seen = false;
        let (mut found, mut skipped, mut errors) = (vec![], vec![], vec![]);
        self.discover.scan(&mut found, &mut skipped, &mut errors);
        for (path, why) in skipped {
            self.skip(&path, why.as_str());
        }
        for e in errors {
            if self.warn_once(&e.path, "walk") {
                warn!(path = %e.path.display(), error = %e.error, "cannot list directory; files in it are not tailed");
            }
            self.c.read_errors_walk.inc();
        }
        // Rotate the order so that, when files wait for `max_open_files`, each gets its turn.
        if !found.is_empty() {
            let n = found.len();
            found.rotate_left((gen as usize) % n);
        }
        // Watch the directories that hold matching files, and where new ones would appear.
        let dirs = found
            .iter()
            .filter_map(|c| c.path.parent().map(Path::to_path_buf))
            .chain(self.discover.bases())
            .collect();
        self.waiter.set_dirs(dirs);
        let mut deferred = 0usize;
        for cand in found {
            if let Some(t) = self
                .files
                .iter_mut()
                .find(|t| t.file.is_some() && t.dev == cand.dev && t.ino == cand.ino)
            {
                t.seen_gen = gen;
                t.last_seen = now;
                t.gone = false;
                if t.path != cand.path {
                    debug!(from = %t.path.display(), to = %cand.path.display(), "file renamed; following it");
                    t.set_path(&cand.path, &self.s);
                    lock(&self.tracker).upsert(t.id, t.fp, t.dev, t.ino, &t.path, t.emitted);
                }
                continue;
            }
            if cand.size == 0 {
                // Nothing to identify it by yet; read from the start once it has.
                self.empty_seen = true;
                continue;
            }
            let name = cand.path.to_string_lossy();
            if has_compressed_extension(&name) {
                self.skip(&cand.path, "compressed");
                continue;
            }
            if !self.consider_new(&cand, gen, now) {
                deferred += 1;
            }
        }
        for t in self.files.iter_mut().filter(|t| t.file.is_some()) {
            if t.seen_gen != gen && !t.gone {
                debug!(path = %t.path.display(), "file no longer matches (rotated away or deleted); reading it to its end");
                t.gone = true;
            }
        }
        // Closed files unseen for long are forgotten (with their checkpoint).
        let mut forget = vec![];
        self.files.retain(|t| {
            let keep = t.file.is_some() || now.duration_since(t.last_seen) < FORGET_AFTER;
            if !keep {
                forget.push(t.id);
            }
            keep
        });
        if !forget.is_empty() {
            let mut tr = lock(&self.tracker);
            for id in forget {
                tr.forget(id);
            }
        }
        if deferred > 0 {
            self.c.deferred_opens.add(deferred as u64);
            // Make room: close idle files (they are reopened by fingerprint on a later scan).
            let mut closed = 0;
            for t in self.files.iter_mut() {
                if closed >= deferred {
                    break;
                }
                if t.file.is_some() && !t.gone && t.seen_gen == gen && t.idle() {
                    t.file = None;
                    closed += 1;
                }
            }
            debug!(
                deferred,
                closed, "max_open_files reached; idle files closed to make room"
            );
        }
        self.first_scan = false;
        self.c.open_files.set(self.open_count() as i64);
        self.c.tracked_files.set(self.files.len() as i64);
    }

    fn skip(&mut self, path: &Path, reason: &'static str) {
        if self.warn_once(path, reason) {
            if reason == "compressed" {
                // Rotated and compressed logs are expected next to the live ones.
                debug!(path = %path.display(), reason, "matching path is not tailed");
            } else {
                warn!(path = %path.display(), reason, "matching path is not tailed");
            }
            self.c.skipped(reason).inc();
        }
    }

    /// A matching file not open under its inode: resume a known one or start a new one.
    /// False when it had to wait for `max_open_files`.
    fn consider_new(&mut self, cand: &Candidate, gen: u64, now: Instant) -> bool {
        let file = match open(&cand.path) {
            Ok(f) => f,
            Err(e) => {
                // Counted and said once per path; retried on every scan.
                if self.warn_once(&cand.path, "open") {
                    warn!(path = %cand.path.display(), error = %e, "cannot open file; it is not tailed until it can be");
                    self.c.read_errors_open.inc();
                }
                return true;
            }
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => {
                warn!(path = %cand.path.display(), error = %e, "cannot stat open file");
                self.c.read_errors_read.inc();
                return true;
            }
        };
        if let Some(skip) = super::discover::kind(&meta) {
            self.skip(&cand.path, skip.as_str());
            return true;
        }
        let (dev, ino, size) = (meta.dev(), meta.ino(), meta.len());
        let mut prefix = std::mem::take(&mut self.prefix);
        let res = read_prefix(&file, self.s.fingerprint_bytes, &mut prefix);
        let ok = self.consider_prefix(cand, file, res, &prefix, dev, ino, size, gen, now);
        self.prefix = prefix;
        ok
    }

    #[allow(clippy::too_many_arguments)]
    fn consider_prefix(
        &mut self,
        cand: &Candidate,
        file: File,
        res: io::Result<()>,
        prefix: &[u8],
        dev: u64,
        ino: u64,
        size: u64,
        gen: u64,
        now: Instant,
    ) -> bool {
        if let Err(e) = res {
            if self.warn_once(&cand.path, "read") {
                warn!(path = %cand.path.display(), error = %e, "cannot read file");
                self.c.read_errors_read.inc();
            }
            return true;
        }
        if prefix.is_empty() {
            return true;
        }
        if is_compressed(prefix) {
            self.skip(&cand.path, "compressed");
            return true;
        }
        let fp = Fingerprint::of(prefix);
        let full = self.s.fingerprint_bytes;
        let open_count = self.open_count();
        if let Some(i) = best_known(&self.files, prefix, full, dev, ino) {
            let t = &mut self.files[i];
            t.last_seen = now;
            if t.file.is_some() {
                // A copy of a file that is still open (copytruncate before the truncation):
                // its lines come from the original.
                debug!(path = %cand.path.display(), original = %t.path.display(), "file is a copy of one being read; ignored");
                return true;
            }
            if open_count >= self.s.max_open_files {
                return false;
            }
            if t.emitted > size {
                // Same first bytes but shorter than what was delivered: a copy made before the
                // last lines were written; they were read from the original.
                t.emitted = size;
            }
            t.file = Some(file);
            t.dev = dev;
            t.ino = ino;
            t.gone = false;
            t.seen_gen = gen;
            t.read_pos = t.emitted;
            t.line_end = t.emitted;
            t.at_eof = false;
            t.finished = false;
            t.last_data = now;
            t.splitter.reset();
            t.multi.reset();
            t.fmt.reset();
            if fp.len > t.fp.len {
                t.fp = fp;
            }
            t.set_path(&cand.path, &self.s);
            t.set_encoding(&self.s, prefix);
            debug!(path = %t.path.display(), offset = t.emitted, "resuming file");
            lock(&self.tracker).upsert(t.id, t.fp, dev, ino, &t.path, t.emitted);
            return true;
        }
        let start = if self.first_scan && self.s.start_first_at_end {
            size
        } else {
            0
        };
        let open = open_count < self.s.max_open_files;
        if !open && start == 0 {
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut t = Tracked::new(
            Found {
                id,
                path: &cand.path,
                dev,
                ino,
                fp,
                file: open.then_some(file),
                offset: start,
                seen_gen: gen,
            },
            now,
            &self.s,
        );
        t.set_encoding(&self.s, prefix);
        lock(&self.tracker).upsert(id, fp, dev, ino, &t.path, start);
        info!(path = %t.path.display(), offset = start, "tailing file");
        self.files.push(t);
        open
    }

    // -----------------------------------------------------------------------------------------
    // Reading

    /// One round over the open files, each read up to a budget so none starves the others.
    fn read_pass(&mut self, tx: &mpsc::Sender<Outgoing>) -> Result<bool, Closed> {
        let budget = (self.s.read_buffer * 4).max(1 << 20);
        let mut progressed = false;
        let mut i = 0;
        while i < self.files.len() {
            if self.files[i].file.is_none() {
                i += 1;
                continue;
            }
            let mut read = 0usize;
            while read < budget {
                match self.read_once(i) {
                    Read::Data => {
                        progressed = true;
                        read += self.s.read_buffer;
                        if self.encoder.len() >= self.s.batch_bytes
                            || self.encoder.items() >= self.s.batch_items
                        {
                            self.send(tx)?;
                        }
                    }
                    Read::Eof => break,
                    Read::Truncated => {
                        progressed = true;
                        self.truncated(i);
                        break;
                    }
                    Read::Failed(e) => {
                        let t = &mut self.files[i];
                        warn!(path = %t.path.display(), error = %e, "read failed; closing the file (it is retried on the next scan)");
                        self.c.read_errors_read.inc();
                        t.file = None;
                        break;
                    }
                }
            }
            i += 1;
        }
        Ok(progressed)
    }

    fn read_once(&mut self, i: usize) -> Read {
        let t = &mut self.files[i];
        let Some(file) = t.file.as_ref() else {
            return Read::Eof;
        };
        let n = match file.read_at(&mut self.buf, t.read_pos) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Read::Data,
            Err(e) => return Read::Failed(e),
        };
        if n == 0 {
            t.at_eof = true;
            return match file.metadata() {
                Ok(m) if m.len() < t.read_pos => Read::Truncated,
                Ok(m) => {
                    if m.nlink() == 0 && !t.gone {
                        debug!(path = %t.path.display(), "file deleted; reading it to its end");
                        t.gone = true;
                    }
                    Read::Eof
                }
                Err(e) => Read::Failed(e),
            };
        }
        // Does the file still begin as it did? If not, what was just read belongs to new
        // content written after a truncation.
        if let Err(e) = read_prefix(file, self.s.fingerprint_bytes, &mut self.prefix) {
            return Read::Failed(e);
        }
        if !t.fp.is_prefix_of(&self.prefix) {
            return Read::Truncated;
        }
        if self.prefix.len() > t.fp.len as usize {
            t.fp = Fingerprint::of(&self.prefix);
            lock(&self.tracker).upsert(t.id, t.fp, t.dev, t.ino, &t.path, t.emitted);
        }
        t.at_eof = false;
        t.finished = false;
        t.last_data = Instant::now();
        self.c.read_bytes.add(n as u64);
        let pos = t.read_pos;
        t.read_pos += n as u64;
        let data = &self.buf[..n];
        let mut sink = Sink {
            s: &self.s,
            c: &self.c,
            encoder: &mut self.encoder,
            observed: now_nanos(),
            now: Instant::now(),
        };
        sink.feed(t, data, pos);
        Read::Data
    }

    /// File `i` was truncated or rewritten: it is kept as a closed record at the position
    /// delivered (a copy of the old content resumes from there) and the file is read again
    /// from its start as a new one.
    fn truncated(&mut self, i: usize) {
        let now = Instant::now();
        let old = &mut self.files[i];
        let Some(file) = old.file.take() else {
            return;
        };
        // Read but not delivered: an unfinished line, a waiting multi-line record.
        let discarded = old.read_pos.saturating_sub(old.emitted);
        old.splitter.reset();
        old.multi.reset();
        old.fmt.reset();
        old.read_pos = old.emitted;
        self.c.truncations.inc();
        if discarded > 0 {
            self.c.discarded_truncated.add(discarded);
        }
        info!(path = %old.path.display(), delivered = old.emitted, "file truncated; reading it again from the start");
        let _ = read_prefix(&file, self.s.fingerprint_bytes, &mut self.prefix);
        let fp = Fingerprint::of(&self.prefix);
        let (path, dev, ino) = (old.path.clone(), old.dev, old.ino);
        let id = self.next_id;
        self.next_id += 1;
        let mut t = Tracked::new(
            Found {
                id,
                path: &path,
                dev,
                ino,
                fp,
                file: Some(file),
                offset: 0,
                seen_gen: self.gen,
            },
            now,
            &self.s,
        );
        let prefix = std::mem::take(&mut self.prefix);
        t.set_encoding(&self.s, &prefix);
        self.prefix = prefix;
        lock(&self.tracker).upsert(id, fp, dev, ino, &path, 0);
        self.files.push(t);
    }

    /// Time-driven work: multi-line records waiting too long, and finished files closed.
    fn timeouts(&mut self) {
        let now = Instant::now();
        let rotate_wait = self.s.rotate_wait;
        let mut finished = 0;
        for t in self.files.iter_mut() {
            if t.file.is_none() {
                continue;
            }
            let mut sink = Sink {
                s: &self.s,
                c: &self.c,
                encoder: &mut self.encoder,
                observed: now_nanos(),
                now,
            };
            if let Some(ml) = &self.s.multiline {
                let Tracked {
                    multi,
                    emitted,
                    attrs,
                    attr_pairs,
                    fmt,
                    ..
                } = t;
                multi.flush_if_idle(ml, now, &mut |rec, end| {
                    *emitted = sink.record(rec, attrs, attr_pairs, fmt, end, end);
                });
            }
            if t.gone && t.at_eof && now.duration_since(t.last_data) >= rotate_wait {
                if !t.finished {
                    sink.finish(t);
                    t.finished = true;
                }
                // Closed only once its lines are delivered: a deleted file exists only through
                // this descriptor, and a crash before delivery must be able to read it again.
                if lock(&self.tracker)
                    .offset(t.id)
                    .is_none_or(|d| d >= t.emitted)
                {
                    t.file = None;
                    finished += 1;
                    debug!(path = %t.path.display(), offset = t.emitted, "finished reading rotated or deleted file; closed");
                }
            }
        }
        if finished > 0 {
            self.c.finished_files.add(finished);
            self.c.open_files.set(self.open_count() as i64);
        }
    }

    /// Hands the current batch (and the positions it covers) to the async side; blocks while
    /// the pipeline pushes back.
    fn send(&mut self, tx: &mpsc::Sender<Outgoing>) -> Result<(), Closed> {
        let mut positions = vec![];
        for t in self.files.iter_mut() {
            if t.emitted != t.reported {
                positions.push((t.id, t.emitted));
                t.reported = t.emitted;
            }
        }
        let payload = self.encoder.finish();
        if payload.is_none() && positions.is_empty() {
            return Ok(());
        }
        tx.blocking_send(Outgoing { payload, positions })
            .map_err(|_| Closed)
    }
}

/// Opens for reading without blocking: a path swapped for a FIFO must not hang the tailer.
fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

fn lock(t: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}
