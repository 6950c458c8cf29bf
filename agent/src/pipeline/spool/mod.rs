//! The disk spool: one exporter's persistent buffer, a segmented append-only log under
//! `agent.data_dir/buffers/<exporter>/`.
//!
//! ```text
//!  producers ──Append──► writer thread ──group commit──► 00…07.seg 00…08.seg (active)
//!  (push waits for       (write, one fsync,                 ▲ cursor        ▲ read   ▲ end
//!   its record to be      publish the end,                  │ (persisted by the cursor
//!   durable)              acknowledge all)                  │  thread, then older segments
//!                                                           │  are deleted)
//!  export worker ◄── recv: one record at a time (read ahead ≤ 1 MiB on spawn_blocking), ack
//! ```
//!
//! Positions are `(segment id, byte offset)`. Three of them matter:
//! - the **end**: what the writer has appended and published;
//! - the **read** position: the next record to hand to the export worker;
//! - the **cursor**: the start of the oldest record not yet finished with. Records are handed
//!   out in order, but acknowledged in any order (`concurrency > 1`): the cursor moves only over
//!   a contiguous run of acknowledged records. It is persisted ([`cursor`]) by a dedicated
//!   thread, and only after that are the segments wholly before it deleted. After a crash,
//!   everything from the persisted cursor on is sent again: duplicates are possible and
//!   bounded, loss of an acknowledged record is not.
//!
//! Space: `used` is the bytes from the cursor to the end plus the space reserved by appends in
//! progress; a producer reserves its frame before appending and the space returns when the
//! cursor passes it. The files may hold more than `used` by the consumed part of the oldest
//! segment, so `max_size` is never exceeded by more than one segment.
//!
//! Reuse: the cursor thread keeps the newest exported segment file as [`SPARE`] instead of
//! deleting it, and the writer starts the next segment in it, overwriting from offset 0: an
//! fsync of blocks already written commits no journal transaction. Frames are bound to their
//! segment ([`record::bind`]), so what a reused file still holds past the new data never reads
//! as data; a finished reused segment is cut to its data before the next starts, and recovery
//! cuts the last one. A spare is kept only while `used` is two segments below `max_size` (so
//! the bound above holds with it), and goes after [`SPARE_IDLE`] of an empty spool, at close,
//! and when a write finds the disk full.
//!
//! Memory: the reader reads at most 1 MiB ahead and hands out one record at a time; a backlog
//! of any size drains with the memory of a few batches. Start-up reads only the last segment (to cut a torn tail); damage elsewhere
//! is found, skipped and counted when the reader reaches it.
//!
//! Failures: a failed append (a full disk) pauses appends briefly and the producers'
//! `when_full` policy applies; a full disk also seals the active segment so that it can be
//! deleted once exported. A failed cursor write is retried every second (in place when there
//! is no room for a new file).
//!
//! This module never panics on what it reads and never refuses to start because of what it
//! finds on disk; it fails to open only when the directory itself is unusable or locked by
//! another process.

pub mod cursor;
mod reader;
pub mod record;
mod recover;
pub mod segment;
mod sender;
mod writer;

pub use reader::{SpoolReceiver, Ticket};
pub use sender::SpoolSender;

use crate::pipeline::buffer::{PushError, Pushed, Wait};
use sonde_config::{BufferConfig, Fsync, SpoolCompression, WhenFull};
use sonde_core::fs::sync_dir;
use sonde_core::log_limit::LogLimit;
use sonde_core::metrics::{Counter, Gauge, Histogram, Registry};
use sonde_core::Batch;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::{debug, error, info, warn};
use writer::{Active, Append, WriteError};

/// A place in the log: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", segment::file_name(self.segment), self.offset)
    }
}

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

// ---------------------------------------------------------------------------------------------
// Shared state

/// A record handed to the export worker and not yet finished with.
#[derive(Debug)]
struct Entry {
    start: Pos,
    /// Items of the record (what the cursor moving over it takes off `items`).
    items: u64,
    done: bool,
    /// Dropped by `drop_oldest` while the worker held it: if the worker gives it up at shutdown,
    /// it is lost and counted.
    evicted: bool,
}

struct State {
    /// Segment id → committed length.
    segments: BTreeMap<u64, u64>,
    active: u64,
    read: Pos,
    cursor: Pos,
    /// The cursor on disk; `None` when the file is missing or damaged.
    persisted: Option<Pos>,
    inflight: VecDeque<Entry>,
    /// Ticket id of `inflight[0]`.
    front: u64,
    used: u64,
    used_gauge: Gauge,
    /// Items from the cursor to the end: added when the writer publishes a record, taken off
    /// when the cursor passes it or an eviction drops it. The backlog found at start-up is
    /// counted in the background and added when known, so it may lag (and is shown as at
    /// least 0) for a moment after a start with a large backlog. Records lost to damage are
    /// never taken off (their item counts cannot be trusted), so whenever the spool is empty
    /// (`used` 0) and the backlog count is in, `items` is set to 0: any drift ends there.
    items: i64,
    items_gauge: Gauge,
    /// The start-up backlog's items are still being counted.
    backlog_pending: bool,
    /// Every sender is gone: the reader stops (what is left stays on disk for the next start).
    closed: bool,
    /// Appends are refused until then after a failed write (a full disk above all), and why.
    write_failed: Option<(Instant, WriteError)>,
    /// The records the writer made durable most recently, in log order, still in memory: a
    /// reader that has caught up with the writer takes them from here instead of reading back
    /// what was just written (see [`RECENT_BYTES`]).
    recent: VecDeque<Recent>,
    recent_bytes: u64,
    /// An exported segment file kept (as [`SPARE`]) to be reused as the next segment.
    spare: bool,
    /// Segments from this id on may be reused: they hold only frames bound to them (created by
    /// this run) and were never evicted (an eviction may still be counting its records).
    recycle_floor: u64,
    /// Since when the spool has been empty (`used` 0), for letting an idle spare go.
    empty_since: Option<Instant>,
}

/// The exported segment file kept for reuse (not a segment: `segment::list` ignores it).
pub const SPARE: &str = "spare";
/// An empty spool keeps its spare this long, then deletes it (an idle agent holds no more disk
/// than its data).
pub const SPARE_IDLE: Duration = Duration::from_secs(5);

/// Most bytes of recently written records kept in memory for a reader that has caught up.
/// Beyond it the oldest are let go and read from disk when their turn comes, so a reader that
/// falls behind costs no memory.
pub const RECENT_BYTES: u64 = 4 << 20;

/// A durable record kept in memory: where it starts, where the next one starts, and the batch.
struct Recent {
    pos: Pos,
    next: u64,
    batch: Batch,
}

impl State {
    fn seg_len(&self, id: u64) -> u64 {
        self.segments.get(&id).copied().unwrap_or(0)
    }

    fn end(&self) -> Pos {
        Pos {
            segment: self.active,
            offset: self.seg_len(self.active),
        }
    }

    /// Bytes of log between `a` and `b`.
    fn dist(&self, a: Pos, b: Pos) -> u64 {
        if b <= a {
            return 0;
        }
        if a.segment == b.segment {
            return b.offset - a.offset;
        }
        let middle: u64 = self
            .segments
            .range(a.segment + 1..b.segment)
            .map(|(_, l)| *l)
            .sum();
        self.seg_len(a.segment).saturating_sub(a.offset) + middle + b.offset
    }

    /// Keeps the durable record at `pos` (ending at `next`) for the reader, letting the oldest
    /// go past [`RECENT_BYTES`].
    fn remember(&mut self, pos: Pos, next: u64, batch: Batch) {
        self.recent_bytes += batch.payload.len() as u64;
        self.recent.push_back(Recent { pos, next, batch });
        while self.recent_bytes > RECENT_BYTES {
            match self.recent.pop_front() {
                Some(r) => self.recent_bytes -= r.batch.payload.len() as u64,
                None => break,
            }
        }
    }

    /// Hands out the record at the read position (ending at `next` in the same segment): the
    /// read position moves past it and it becomes an in-flight entry; returns its ticket id.
    fn hand_out(&mut self, next: u64, items: u64) -> u64 {
        let start = self.read;
        self.read = Pos {
            segment: start.segment,
            offset: next,
        };
        let id = self.front + self.inflight.len() as u64;
        self.inflight.push_back(Entry {
            start,
            items,
            done: false,
            evicted: false,
        });
        id
    }

    /// The record at the read position if it is still in memory (older ones are dropped).
    fn take_recent(&mut self) -> Option<Recent> {
        while let Some(r) = self.recent.front() {
            if r.pos > self.read {
                return None;
            }
            let r = self.recent.pop_front()?;
            self.recent_bytes -= r.batch.payload.len() as u64;
            if r.pos == self.read {
                return Some(r);
            }
        }
        None
    }

    fn add_items(&mut self, n: i64) {
        self.items = self.items.saturating_add(n);
        self.settle_items();
    }

    /// Publishes `items`; an empty spool holds no items, whatever damage made the count drift.
    fn settle_items(&mut self) {
        if self.used == 0 && !self.backlog_pending {
            self.items = 0;
        }
        self.items_gauge.set(self.items.max(0));
    }

    fn set_used(&mut self, used: u64) {
        self.used = used;
        self.used_gauge.set(i64::try_from(used).unwrap_or(i64::MAX));
        if used == 0 {
            self.settle_items();
            self.empty_since.get_or_insert_with(Instant::now);
        } else {
            self.empty_since = None;
        }
    }

    /// Moves the read position off the end of finished segments.
    fn normalize_read(&mut self) {
        while self.read.segment < self.active {
            match self.segments.get(&self.read.segment) {
                Some(len) if self.read.offset < *len => return,
                _ => {
                    let next = self
                        .segments
                        .range(self.read.segment + 1..)
                        .next()
                        .map_or(self.active, |(id, _)| *id);
                    self.read = Pos {
                        segment: next,
                        offset: 0,
                    };
                }
            }
        }
    }

    /// Moves the cursor over finished records; returns the bytes freed, or `None` when it did
    /// not move (it may move by zero bytes, from the end of a segment to the start of the next:
    /// that still lets the finished segment be deleted).
    fn advance_cursor(&mut self) -> Option<u64> {
        let mut passed = 0u64;
        while self.inflight.front().is_some_and(|e| e.done) {
            passed += self.inflight.pop_front().map_or(0, |e| e.items);
            self.front += 1;
        }
        if passed > 0 {
            self.add_items(-(passed.min(i64::MAX as u64) as i64));
        }
        let new = self.inflight.front().map_or(self.read, |e| e.start);
        if new <= self.cursor {
            return None;
        }
        let freed = self.dist(self.cursor, new);
        self.cursor = new;
        self.set_used(self.used.saturating_sub(freed));
        Some(freed)
    }
}

struct Counters {
    dropped: BTreeMap<&'static str, (Counter, Counter)>,
    damaged_records: BTreeMap<&'static str, Counter>,
    damaged_bytes: Counter,
    torn_tail_bytes: Counter,
    recycled: Counter,
    write_errors: BTreeMap<&'static str, Counter>,
    cursor_errors: Counter,
    /// One group commit on the writer thread: its write and its fsync.
    commit_seconds: Histogram,
    commit_records: Histogram,
    /// A producer's wait from handing its record to the writer to its acknowledgement.
    append_seconds: Histogram,
}

/// Bucket bounds (seconds) for the spool's commit and append latencies: 50 µs to 5 s.
const SPOOL_SECONDS_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    5.0,
];
/// Bucket bounds for the records of one group commit.
const COMMIT_RECORDS_BUCKETS: &[f64] =
    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

impl Counters {
    fn new(r: &Registry, name: &str) -> Self {
        let dropped = ["buffer_full", "evicted", "disk_full", "io", "too_large"]
            .into_iter()
            .map(|reason| {
                let labels = [("exporter", name), ("reason", reason)];
                (
                    reason,
                    (
                        r.counter(
                            "sonde_buffer_dropped_items_total",
                            "Items a buffer dropped, by reason (buffer_full: drop_newest refused them; evicted: drop_oldest discarded them; disk_full and io: the spool could not write; too_large).",
                            &labels,
                        ),
                        r.counter(
                            "sonde_buffer_dropped_batches_total",
                            "Batches a buffer dropped, by reason.",
                            &labels,
                        ),
                    ),
                )
            })
            .collect();
        let damaged_records = ["bad_crc", "bad_frame", "truncated", "undecodable", "io"]
            .into_iter()
            .map(|reason| {
                (
                    reason,
                    r.counter(
                        "sonde_spool_damaged_records_total",
                        "Damaged stretches of a spool skipped by the reader (each at least one record lost), by reason.",
                        &[("exporter", name), ("reason", reason)],
                    ),
                )
            })
            .collect();
        let write_errors = ["disk_full", "io"]
            .into_iter()
            .map(|reason| {
                (
                    reason,
                    r.counter(
                        "sonde_spool_write_errors_total",
                        "Appends to a spool that failed (the producer's when_full policy applied), by reason.",
                        &[("exporter", name), ("reason", reason)],
                    ),
                )
            })
            .collect();
        let c = |n, h| r.counter(n, h, &[("exporter", name)]);
        Counters {
            dropped,
            damaged_records,
            damaged_bytes: c(
                "sonde_spool_damaged_bytes_total",
                "Bytes of damaged spool data skipped by the reader.",
            ),
            torn_tail_bytes: c(
                "sonde_spool_torn_tail_bytes_total",
                "Bytes of a torn last record cut from a spool at start-up.",
            ),
            recycled: c(
                "sonde_spool_segments_reused_total",
                "Segments started in an exported segment's file instead of a new one (overwriting written blocks makes each fsync cheaper).",
            ),
            write_errors,
            cursor_errors: c(
                "sonde_spool_cursor_errors_total",
                "Failures to persist a spool's cursor (retried every second).",
            ),
            commit_seconds: r.histogram(
                "sonde_spool_commit_seconds",
                "Duration of one group commit on the spool's writer thread: writing the waiting records and, per fsync, making them durable.",
                &[("exporter", name)],
                SPOOL_SECONDS_BUCKETS,
            ),
            commit_records: r.histogram(
                "sonde_spool_commit_records",
                "Records in one group commit (how many producers shared its write and fsync).",
                &[("exporter", name)],
                COMMIT_RECORDS_BUCKETS,
            ),
            append_seconds: r.histogram(
                "sonde_spool_append_seconds",
                "How long an append waited for the spool's writer: from handing the record over to its acknowledgement (durable per fsync).",
                &[("exporter", name)],
                SPOOL_SECONDS_BUCKETS,
            ),
        }
    }

    fn drop(&self, reason: &str, batches: u64, items: u64) {
        if let Some((i, b)) = self.dropped.get(reason) {
            i.add(items);
            b.add(batches);
        }
    }

    fn damaged(&self, reason: &str, bytes: u64) {
        if let Some(c) = self.damaged_records.get(reason) {
            c.inc();
        }
        self.damaged_bytes.add(bytes);
    }

    fn write_errors(&self, e: WriteError) -> Counter {
        self.write_errors
            .get(e.reason())
            .cloned()
            .unwrap_or_default()
    }
}

struct Gauges {
    segments: Gauge,
}

/// What every part of one spool shares: its state and its files.
pub(crate) struct Core {
    name: Arc<str>,
    dir: PathBuf,
    fsync: Fsync,
    compression: SpoolCompression,
    segment_size: u64,
    max_size: u64,
    state: Mutex<State>,
    /// Space was freed (producers waiting under `block`).
    space: Notify,
    /// New data was published, or the spool was closed (the reader).
    data: Notify,
    counters: Counters,
    gauges: Gauges,
    /// Serializes writes of the cursor file.
    persist_lock: Mutex<()>,
    warn_full: LogLimit,
    warn_cursor: LogLimit,
    /// The directory lock (`flock` on `lock`), released when the last part is gone.
    _lock: File,
}

impl Core {
    /// Whether a spare file (and a reused, full-size active segment) fits next to the log:
    /// only while the log is two segments below `max_size`, so the disk never holds more than
    /// `max_size` plus one segment.
    fn spare_fits(&self, st: &State) -> bool {
        st.used.saturating_add(2 * self.segment_size) <= self.max_size
    }

    /// The spare, renamed into place as segment `id` and opened to be overwritten from its
    /// start; `None` when there is none, it no longer fits (then it is deleted), or it cannot be
    /// taken (the caller starts a new file).
    fn take_spare(&self, id: u64) -> Option<File> {
        let fits = {
            let mut st = self.lock();
            if !std::mem::take(&mut st.spare) {
                return None;
            }
            self.spare_fits(&st)
        };
        let spare = self.dir.join(SPARE);
        let path = segment::path(&self.dir, id);
        let taken = fits
            && std::fs::rename(&spare, &path).is_ok()
            && (self.fsync == Fsync::Never || sync_dir(&self.dir).is_ok());
        if !taken {
            let _ = std::fs::remove_file(&spare);
            return None;
        }
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => {
                self.counters.recycled.inc();
                Some(f)
            }
            Err(e) => {
                debug!(exporter = %self.name, file = %path.display(), error = %e, "cannot open the reused segment file; starting a new one");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Deletes the spare if it no longer fits, the spool has been empty for [`SPARE_IDLE`], or
    /// `force` (the spool is closing, or the disk is full: the spare's space is worth more as
    /// data).
    fn trim_spare(&self, force: bool) {
        {
            let mut st = self.lock();
            let idle = st.empty_since.is_some_and(|t| t.elapsed() >= SPARE_IDLE);
            if !st.spare || !(force || idle || !self.spare_fits(&st)) {
                return;
            }
            st.spare = false;
            // Space returned: appends refused after a full disk may be tried again.
            st.write_failed = None;
        }
        let _ = std::fs::remove_file(self.dir.join(SPARE));
        self.space.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything that can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, bytes: u64) {
        {
            let mut st = self.lock();
            let used = st.used.saturating_sub(bytes);
            st.set_used(used);
        }
        self.space.notify_waiters();
    }

    /// Writes the in-memory cursor if it moved, then deletes the segments wholly before it.
    /// Blocking.
    fn persist(&self) {
        let _serial = self.persist_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (pos, persisted) = {
            let st = self.lock();
            (st.cursor, st.persisted)
        };
        if persisted == Some(pos) {
            return;
        }
        let sync = self.fsync != Fsync::Never;
        let stored = cursor::store(&self.dir, pos, sync).or_else(|e| {
            if WriteError::of(&e) == WriteError::NoSpace {
                cursor::store_in_place(&self.dir, pos, sync)
            } else {
                Err(e)
            }
        });
        if let Err(e) = stored {
            self.counters.cursor_errors.inc();
            if self.warn_cursor.check().is_some() {
                warn!(exporter = %self.name, dir = %self.dir.display(), error = %e, "cannot persist the spool cursor; will retry (a crash now means resending, not losing)");
            }
            return;
        }
        let (doomed, reuse) = {
            let mut st = self.lock();
            st.persisted = Some(pos);
            let doomed: Vec<u64> = st
                .segments
                .range(..pos.segment)
                .map(|(id, _)| *id)
                .collect();
            for id in &doomed {
                st.segments.remove(id);
            }
            self.gauges.segments.set(st.segments.len() as i64);
            if !doomed.is_empty() {
                st.write_failed = None;
            }
            // The newest exported segment is kept as the spare, if it may be reused and fits.
            let reuse = doomed
                .last()
                .copied()
                .filter(|id| !st.spare && *id >= st.recycle_floor && self.spare_fits(&st));
            (doomed, reuse)
        };
        for id in &doomed {
            let path = segment::path(&self.dir, *id);
            if Some(*id) == reuse && std::fs::rename(&path, self.dir.join(SPARE)).is_ok() {
                self.lock().spare = true;
                debug!(exporter = %self.name, file = %path.display(), "segment exported; kept for reuse");
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    debug!(exporter = %self.name, file = %path.display(), "segment exported; deleted")
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(exporter = %self.name, file = %path.display(), error = %e, "cannot delete an exported segment")
                }
            }
        }
        if !doomed.is_empty() {
            self.space.notify_waiters();
        }
    }
}

/// Space reserved by one append; given back on drop unless the record was written.
pub(crate) struct Reservation {
    core: Arc<Core>,
    bytes: u64,
    armed: bool,
}

impl Reservation {
    fn bytes(&self) -> u64 {
        self.bytes
    }
    /// The record is in the log: its space is now counted as log, not as reservation.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.armed {
            self.core.release(self.bytes);
        }
    }
}

/// What senders, receiver and tickets share; when the last is gone the cursor thread makes its
/// final write and stops.
struct Handle {
    core: Arc<Core>,
    wake: SyncSender<()>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Handle {
    fn wake_cursor(&self) {
        let _ = self.wake.try_send(());
    }
}

// ---------------------------------------------------------------------------------------------
// Opening and recovery

/// Opens (creating or recovering) the spool described by `cfg` and starts its writer and cursor
/// threads.
pub async fn open(
    cfg: SpoolConfig,
    metrics: &Registry,
) -> Result<(SpoolSender, SpoolReceiver, Recovered), SpoolError> {
    let registry = metrics.clone();
    let when_full = cfg.when_full;
    let (core, active, recovered) =
        tokio::task::spawn_blocking(move || recover::recover(cfg, &registry))
            .await
            .map_err(|e| SpoolError::Io {
                exporter: String::new(),
                what: "open",
                path: String::new(),
                source: io::Error::other(e.to_string()),
            })??;
    let core = Arc::new(core);
    let (tx, rx) = mpsc::channel(1024);
    let (wake_tx, wake_rx) = sync_channel(1);
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .map_err(|e| SpoolError::Io {
                exporter: core.name.to_string(),
                what: "start a thread for",
                path: core.dir.display().to_string(),
                source: e,
            })
    };
    let w = {
        let core = core.clone();
        spawn(
            "sonde-spool-w".into(),
            Box::new(move || writer::run(core, rx, active)),
        )?
    };
    let c = {
        let core = core.clone();
        spawn(
            "sonde-spool-c".into(),
            Box::new(move || cursor_thread(core, wake_rx)),
        )?
    };
    let handle = Arc::new(Handle {
        core,
        wake: wake_tx,
        threads: Mutex::new(vec![w, c]),
    });
    // A missing or corrected cursor is written at once.
    handle.wake_cursor();
    count_backlog_items(&handle.core);
    let sender = SpoolSender {
        inner: Arc::new(sender::SenderInner {
            handle: handle.clone(),
            tx,
            when_full,
        }),
    };
    let reads = |from| {
        metrics.counter(
            "sonde_spool_read_records_total",
            "Records a disk buffer handed to its exporter, by where they came from (memory: just written and still held, disk: read back).",
            &[("exporter", &*handle.core.name), ("from", from)],
        )
    };
    let receiver = SpoolReceiver {
        read_from_memory: reads("memory"),
        read_from_disk: reads("disk"),
        handle,
        file: None,
        last_source: None,
        io_failures: 0,
        ahead: VecDeque::new(),
    };
    Ok((sender, receiver, recovered))
}

/// Counts the items of the backlog found at start-up on a short-lived thread and adds them to
/// the `sonde_buffer_items` gauge. Holds the spool only weakly: a spool closed meanwhile (a
/// reload reopening it) is not kept open by the count.
fn count_backlog_items(core: &Arc<Core>) {
    let ranges: Vec<(u64, u64, u64)> = {
        let st = core.lock();
        let end = st.end();
        st.segments
            .range(st.cursor.segment..=end.segment)
            .map(|(id, len)| {
                let from = if *id == st.cursor.segment {
                    st.cursor.offset
                } else {
                    0
                };
                (*id, from, *len)
            })
            .filter(|(_, from, to)| from < to)
            .collect()
    };
    if ranges.is_empty() {
        return;
    }
    core.lock().backlog_pending = true;
    let (dir, weak) = (core.dir.clone(), Arc::downgrade(core));
    let spawned = std::thread::Builder::new()
        .name("sonde-spool-n".into())
        .spawn(move || {
            let mut items = 0u64;
            for (id, from, to) in ranges {
                if weak.strong_count() == 0 {
                    return;
                }
                if let Ok(f) = File::open(segment::path(&dir, id)) {
                    items = items.saturating_add(segment::count_items(&f, from, to).unwrap_or(0));
                }
            }
            if let Some(core) = weak.upgrade() {
                let mut st = core.lock();
                st.backlog_pending = false;
                st.add_items(items.min(i64::MAX as u64) as i64);
            }
        });
    if let Err(e) = spawned {
        core.lock().backlog_pending = false;
        warn!(exporter = %core.name, error = %e, "cannot start a thread to count the backlog's items; sonde_buffer_items leaves them out");
    }
}

/// The cursor is persisted at most this often (and only when it moved).
pub const CURSOR_INTERVAL: Duration = Duration::from_millis(100);

fn cursor_thread(core: Arc<Core>, wake: Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        // Woken by acknowledgements; the timeout retries a cursor write that failed.
        let r = wake.recv_timeout(Duration::from_secs(1));
        core.persist();
        if r == Err(RecvTimeoutError::Disconnected) {
            core.trim_spare(true);
            return;
        }
        core.trim_spare(false);
        // Coalesce acknowledgements into one write per interval: each write costs two fsyncs
        // that compete with the writer's, and a crash resends at most one interval's worth.
        std::thread::sleep(CURSOR_INTERVAL);
    }
}
