//! The disk spool: one exporter's persistent buffer, a segmented append-only log under
//! `agent.data_dir/buffers/<exporter>/`.
//!
//! ```text
//!  producers ──Append──► writer thread ──group commit──► 00…07.seg 00…08.seg (active)
//!  (push waits for       (write, one fsync,                 ▲ cursor        ▲ read   ▲ end
//!   its record to be      publish the end,                  │ (persisted by the cursor
//!   durable)              acknowledge all)                  │  thread, then older segments
//!                                                           │  are deleted)
//!  export worker ◄── recv: one record at a time (spawn_blocking), ack when finished with
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
//! Memory: the reader holds one record at a time; a backlog of any size drains with the memory
//! of a few batches. Start-up reads only the last segment (to cut a torn tail); damage elsewhere
//! is found, skipped and counted when the reader reaches it.
//!
//! This module never panics on what it reads and never refuses to start because of what it
//! finds on disk; it fails to open only when the directory itself is unusable or locked by
//! another process.

pub mod cursor;
pub mod record;
pub mod segment;
mod writer;

use crate::metrics::{Counter, Gauge, Registry};
use crate::pipeline::buffer::{PushError, Pushed, Wait};
use sonde_config::{BufferConfig, Fsync, WhenFull};
use sonde_exporters::Batch;
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
    /// Every sender is gone: the reader stops (what is left stays on disk for the next start).
    closed: bool,
    /// Appends are refused until then after a failed write (a full disk).
    disk_full_until: Option<Instant>,
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

    fn set_used(&mut self, used: u64) {
        self.used = used;
        self.used_gauge.set(i64::try_from(used).unwrap_or(i64::MAX));
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

    /// Moves the cursor over finished records; returns the bytes freed.
    fn advance_cursor(&mut self) -> u64 {
        while self.inflight.front().is_some_and(|e| e.done) {
            self.inflight.pop_front();
            self.front += 1;
        }
        let new = self.inflight.front().map_or(self.read, |e| e.start);
        if new <= self.cursor {
            return 0;
        }
        let freed = self.dist(self.cursor, new);
        self.cursor = new;
        self.set_used(self.used.saturating_sub(freed));
        freed
    }
}

struct Counters {
    dropped: BTreeMap<&'static str, (Counter, Counter)>,
    damaged_records: BTreeMap<&'static str, Counter>,
    damaged_bytes: Counter,
    torn_tail_bytes: Counter,
    write_errors: BTreeMap<&'static str, Counter>,
    cursor_errors: Counter,
}

impl Counters {
    fn new(r: &Registry, name: &str) -> Self {
        let dropped = ["buffer_full", "evicted", "disk_full", "too_large"]
            .into_iter()
            .map(|reason| {
                let labels = [("exporter", name), ("reason", reason)];
                (
                    reason,
                    (
                        r.counter(
                            "sonde_buffer_dropped_items_total",
                            "Items a buffer dropped, by reason (buffer_full: drop_newest refused them; evicted: drop_oldest discarded them; disk_full; too_large).",
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
            write_errors,
            cursor_errors: c(
                "sonde_spool_cursor_errors_total",
                "Failures to persist a spool's cursor (retried at the next acknowledgement).",
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

/// One warning per interval at most.
#[derive(Default)]
struct RateLimit(Mutex<Option<Instant>>);

impl RateLimit {
    fn ready(&self) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            true
        } else {
            false
        }
    }
}

/// What every part of one spool shares: its state and its files.
pub(crate) struct Core {
    name: Arc<str>,
    dir: PathBuf,
    fsync: Fsync,
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
    warn_full: RateLimit,
    warn_cursor: RateLimit,
    /// The directory lock (`flock` on `lock`), released when the last part is gone.
    _lock: File,
}

impl Core {
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
            if self.warn_cursor.ready() {
                warn!(exporter = %self.name, dir = %self.dir.display(), error = %e, "cannot persist the spool cursor; will retry (a crash now means resending, not losing)");
            }
            return;
        }
        let doomed: Vec<u64> = {
            let mut st = self.lock();
            st.persisted = Some(pos);
            let doomed: Vec<u64> = st.segments.range(..pos.segment).map(|(id, _)| *id).collect();
            for id in &doomed {
                st.segments.remove(id);
            }
            self.gauges.segments.set(st.segments.len() as i64);
            if !doomed.is_empty() {
                st.disk_full_until = None;
            }
            doomed
        };
        for id in &doomed {
            let path = segment::path(&self.dir, *id);
            match std::fs::remove_file(&path) {
                Ok(()) => debug!(exporter = %self.name, file = %path.display(), "segment exported; deleted"),
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
    let metrics = metrics.clone();
    let when_full = cfg.when_full;
    let (core, active, recovered) = tokio::task::spawn_blocking(move || recover(cfg, &metrics))
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
    let sender = SpoolSender {
        inner: Arc::new(SenderInner {
            handle: handle.clone(),
            tx,
            when_full,
        }),
    };
    let receiver = SpoolReceiver {
        handle,
        file: None,
        last_source: None,
        io_failures: 0,
    };
    Ok((sender, receiver, recovered))
}

fn cursor_thread(core: Arc<Core>, wake: Receiver<()>) {
    loop {
        let r = wake.recv();
        core.persist();
        if r.is_err() {
            return;
        }
        // Coalesce bursts of acknowledgements into one write.
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn lock_dir(dir: &Path, name: &str) -> Result<File, SpoolError> {
    let path = dir.join("lock");
    let io_err = |what, source| SpoolError::Io {
        exporter: name.to_string(),
        what,
        path: path.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err("create", e))?;
    // A spool closed a moment ago in this process may still be finishing its last cursor write.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(SpoolError::Locked {
                    exporter: name.to_string(),
                    path: dir.display().to_string(),
                })
            }
            Err(e) => return Err(io_err("lock", e.into())),
        }
    }
}

/// Start-up: lists the segments, reads the cursor, removes what a crash left behind, cuts a torn
/// tail off the last segment, and opens a fresh segment to append to. Reads no segment but the
/// last, so it takes the same time whatever the backlog.
fn recover(cfg: SpoolConfig, metrics: &Registry) -> Result<(Core, Active, Recovered), SpoolError> {
    let name = cfg.name.to_string();
    let dir = cfg.dir.clone();
    let io_err = |what, path: &Path, source| SpoolError::Io {
        exporter: name.clone(),
        what,
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
    let lock = lock_dir(&dir, &name)?;
    let counters = Counters::new(metrics, &name);
    let mut recovered = Recovered::default();
    let _ = std::fs::remove_file(dir.join(cursor::TEMP));
    let mut segments = segment::list(&dir).map_err(|e| io_err("list", &dir, e))?;

    // Empty segments hold nothing (an agent that started and stopped without data).
    for (id, _) in segments.clone().iter().filter(|(_, len)| **len == 0) {
        let _ = std::fs::remove_file(segment::path(&dir, *id));
        segments.remove(id);
    }

    let loaded = match cursor::load(&dir) {
        Ok(Some(p)) => Some(p),
        Ok(None) => {
            if !segments.is_empty() {
                recovered.cursor = CursorFound::Missing;
                warn!(exporter = %name, dir = %dir.display(), "spool cursor missing: sending everything on disk again (duplicates possible)");
            }
            None
        }
        Err(e) => {
            recovered.cursor = CursorFound::Damaged;
            counters.cursor_errors.inc();
            warn!(exporter = %name, error = %e, "spool cursor unusable: sending everything on disk again (duplicates possible)");
            None
        }
    };
    let first = segments.keys().next().copied();
    let last = segments.keys().next_back().copied();
    let mut cursor = match (loaded, first, last) {
        (_, None, _) | (_, _, None) => Pos::default(),
        (None, Some(f), _) => Pos {
            segment: f,
            offset: 0,
        },
        (Some(p), Some(f), Some(l)) => {
            if p.segment > l {
                recovered.cursor = CursorFound::Damaged;
                warn!(exporter = %name, cursor = %p, "spool cursor points past the last segment: sending everything on disk again");
                Pos {
                    segment: f,
                    offset: 0,
                }
            } else if p.segment < f || !segments.contains_key(&p.segment) {
                // Its segment is gone (emptied, or deleted once exported): the next one starts.
                let next = segments.range(p.segment..).next().map_or(f, |(id, _)| *id);
                Pos {
                    segment: next,
                    offset: 0,
                }
            } else {
                p
            }
        }
    };

    // Segments before the cursor were exported; a crash between the cursor write and their
    // deletion leaves them behind.
    for id in segments.range(..cursor.segment).map(|(id, _)| *id).collect::<Vec<_>>() {
        let _ = std::fs::remove_file(segment::path(&dir, id));
        segments.remove(&id);
    }

    // A torn tail can only be at the end of the last segment written.
    if let Some((&id, &len)) = segments.iter().next_back() {
        let path = segment::path(&dir, id);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        if let Some(good) = segment::torn_tail(&f, len).map_err(|e| io_err("read", &path, e))? {
            f.set_len(good).map_err(|e| io_err("truncate", &path, e))?;
            let _ = f.sync_all();
            let cut = len - good;
            counters.torn_tail_bytes.add(cut);
            recovered.torn_tail_bytes = cut;
            warn!(exporter = %name, file = %path.display(), offset = good, bytes = cut, "cut a torn record from the end of the spool (it was never acknowledged)");
            if good == 0 {
                let _ = std::fs::remove_file(&path);
                segments.remove(&id);
            } else {
                segments.insert(id, good);
            }
        }
    }
    if let Some(len) = segments.get(&cursor.segment) {
        cursor.offset = cursor.offset.min(*len);
    }

    let active_id = segments
        .keys()
        .next_back()
        .copied()
        .max(loaded.map(|p| p.segment))
        .map_or(0, |id| id + 1);
    if segments.is_empty() {
        cursor = Pos {
            segment: active_id,
            offset: 0,
        };
    }
    let active_path = segment::path(&dir, active_id);
    let _ = std::fs::remove_file(&active_path);
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&active_path)
        .map_err(|e| io_err("create", &active_path, e))?;
    if cfg.fsync != Fsync::Never {
        cursor::sync_dir(&dir).map_err(|e| io_err("sync", &dir, e))?;
    }
    segments.insert(active_id, 0);

    let labels = [("exporter", &*name)];
    let used_gauge = metrics.gauge(
        "sonde_buffer_bytes",
        "Encoded bytes held by an exporter's buffer (disk: from the cursor to the end of the log).",
        &labels,
    );
    metrics
        .gauge(
            "sonde_buffer_max_bytes",
            "Configured size limit of an exporter's buffer.",
            &labels,
        )
        .set(i64::try_from(cfg.max_size).unwrap_or(i64::MAX));
    let segments_gauge = metrics.gauge(
        "sonde_spool_segments",
        "Segment files of an exporter's disk buffer.",
        &labels,
    );
    segments_gauge.set(segments.len() as i64);
    let mut st = State {
        segments,
        active: active_id,
        read: cursor,
        cursor,
        persisted: loaded.filter(|p| *p == cursor),
        inflight: VecDeque::new(),
        front: 0,
        used: 0,
        used_gauge,
        closed: false,
        disk_full_until: None,
    };
    st.normalize_read();
    st.cursor = st.read;
    let backlog = st.dist(st.cursor, st.end());
    st.set_used(backlog);
    recovered.segments = st.segments.range(st.cursor.segment..st.active).count();
    recovered.backlog_bytes = backlog;
    info!(exporter = %name, dir = %dir.display(), segments = recovered.segments, backlog_bytes = backlog, cursor = %st.cursor, "disk buffer opened");
    let core = Core {
        name: cfg.name.clone(),
        dir,
        fsync: cfg.fsync,
        segment_size: cfg.segment_size.max(record::HEADER_LEN),
        max_size: cfg.max_size,
        state: Mutex::new(st),
        space: Notify::new(),
        data: Notify::new(),
        counters,
        gauges: Gauges {
            segments: segments_gauge,
        },
        persist_lock: Mutex::new(()),
        warn_full: RateLimit::default(),
        warn_cursor: RateLimit::default(),
        _lock: lock,
    };
    let active = Active {
        id: active_id,
        file,
        len: 0,
        sealed: false,
    };
    Ok((core, active, recovered))
}

// ---------------------------------------------------------------------------------------------
// Producing

/// The producers' side. Cloning is cheap; when the last clone is gone the writer stops and the
/// reader returns `None`.
#[derive(Clone)]
pub struct SpoolSender {
    inner: Arc<SenderInner>,
}

struct SenderInner {
    handle: Arc<Handle>,
    tx: mpsc::Sender<Append>,
    when_full: WhenFull,
}

impl Drop for SenderInner {
    fn drop(&mut self) {
        self.handle.core.lock().closed = true;
        self.handle.core.data.notify_one();
    }
}

enum Refused {
    Full,
    DiskFull(Instant),
}

impl SpoolSender {
    /// Appends `batch` and returns once it is durable (per `fsync`). When the spool is full the
    /// `when_full` policy applies: `block` waits as `wait` allows and then says
    /// [`PushError::Full`]; `drop_newest` drops this batch; `drop_oldest` discards the oldest
    /// segment of unexported data (counted) to make room. A full disk is handled the same way.
    pub async fn push(&self, batch: Batch, wait: Wait) -> Result<Pushed, PushError> {
        let core = &self.inner.handle.core;
        let need = record::frame_len(&batch);
        if need - record::HEADER_LEN > record::MAX_BODY {
            core.counters.drop("too_large", 1, batch.items);
            warn!(exporter = %core.name, bytes = batch.payload.len(), "batch too large for the disk buffer; dropped");
            return Ok(Pushed::Dropped);
        }
        let when_full = self.inner.when_full;
        let wait = if when_full == WhenFull::Block {
            wait
        } else {
            Wait::No
        };
        let mut evicted_for_disk = false;
        loop {
            let notified = core.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let refused = {
                let mut st = core.lock();
                match st.disk_full_until {
                    Some(t) if Instant::now() < t => Some(Refused::DiskFull(t)),
                    _ => {
                        st.disk_full_until = None;
                        if st.used == 0 || st.used + need <= core.max_size {
                            let used = st.used + need;
                            st.set_used(used);
                            None
                        } else {
                            Some(Refused::Full)
                        }
                    }
                }
            };
            let Some(refused) = refused else {
                let reservation = Reservation {
                    core: core.clone(),
                    bytes: need,
                    armed: true,
                };
                let (reply, answer) = oneshot::channel();
                let append = Append {
                    batch: batch.clone(),
                    reservation,
                    reply,
                };
                if self.inner.tx.send(append).await.is_err() {
                    return Err(PushError::Closed);
                }
                match answer.await {
                    Ok(Ok(())) => return Ok(Pushed::Queued),
                    // The write failed; the writer paused appends: the policy applies below.
                    Ok(Err(_)) => continue,
                    Err(_) => return Err(PushError::Closed),
                }
            };
            let reason = match refused {
                Refused::Full => "buffer_full",
                Refused::DiskFull(_) => "disk_full",
            };
            match when_full {
                WhenFull::DropNewest => {
                    core.counters.drop(reason, 1, batch.items);
                    return Ok(Pushed::Dropped);
                }
                WhenFull::DropOldest => {
                    let disk = matches!(refused, Refused::DiskFull(_));
                    if disk && evicted_for_disk {
                        core.counters.drop(reason, 1, batch.items);
                        return Ok(Pushed::Dropped);
                    }
                    if !self.evict_oldest().await {
                        core.counters.drop(reason, 1, batch.items);
                        return Ok(Pushed::Dropped);
                    }
                    if disk {
                        // Space on disk returns when the cursor thread deletes the segment.
                        evicted_for_disk = true;
                        let _ = tokio::time::timeout(writer::DISK_FULL_PAUSE, notified).await;
                    }
                }
                WhenFull::Block => {
                    let until = match wait {
                        Wait::No => return Err(PushError::Full),
                        Wait::Until(d) => Some(d),
                        Wait::Forever => None,
                    };
                    let retry = match refused {
                        Refused::DiskFull(t) => Some(tokio::time::Instant::from_std(t)),
                        Refused::Full => None,
                    };
                    let wake = match (until, retry) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    match wake {
                        Some(t) => {
                            let _ = tokio::time::timeout_at(t, notified).await;
                        }
                        None => notified.await,
                    }
                    if until.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        return Err(PushError::Full);
                    }
                }
            }
        }
    }

    /// Discards the oldest sealed segment's unexported records (`drop_oldest`); false when there
    /// is nothing to discard (all unexported data is in the segment being written).
    async fn evict_oldest(&self) -> bool {
        let core = self.inner.handle.core.clone();
        let plan = {
            let mut st = core.lock();
            let s = st.cursor.segment;
            if s >= st.active {
                return false;
            }
            let mut held = 0u64;
            for e in st.inflight.iter_mut() {
                if e.start.segment != s {
                    break;
                }
                if !e.done {
                    e.done = true;
                    e.evicted = true;
                    held += 1;
                }
            }
            let unread = if st.read.segment == s {
                let range = (st.read.offset, st.seg_len(s));
                st.read = Pos {
                    segment: s + 1,
                    offset: 0,
                };
                st.normalize_read();
                // Opened now, before the cursor thread can delete it.
                File::open(segment::path(&core.dir, s))
                    .ok()
                    .map(|f| (f, range))
            } else {
                None
            };
            st.advance_cursor();
            (s, held, unread)
        };
        let (s, held, unread) = plan;
        self.inner.handle.wake_cursor();
        core.space.notify_waiters();
        let (records, items) = match unread {
            Some((f, (from, to))) => {
                tokio::task::spawn_blocking(move || segment::count(&f, from, to).unwrap_or((0, 0)))
                    .await
                    .unwrap_or((0, 0))
            }
            None => (0, 0),
        };
        core.counters.drop("evicted", records, items);
        if core.warn_full.ready() {
            warn!(exporter = %core.name, segment = %segment::file_name(s), batches = records, items, in_flight = held, "disk buffer full: dropped the oldest unexported data (when_full = drop_oldest)");
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Consuming

/// The export worker's side.
pub struct SpoolReceiver {
    handle: Arc<Handle>,
    file: Option<(u64, Arc<File>)>,
    last_source: Option<Arc<str>>,
    io_failures: u32,
}

/// A record handed to the export worker. [`Ticket::ack`] when it is finished with (sent, or
/// dropped for good and counted); dropping it without `ack` leaves it in the spool, to be sent
/// again after a restart.
pub struct Ticket {
    handle: Arc<Handle>,
    id: u64,
    items: u64,
    acked: bool,
}

impl Ticket {
    pub fn ack(mut self) {
        self.acked = true;
        let core = &self.handle.core;
        let freed = {
            let mut st = core.lock();
            if let Some(i) = self.id.checked_sub(st.front) {
                if let Some(e) = st.inflight.get_mut(i as usize) {
                    e.done = true;
                }
            }
            st.advance_cursor()
        };
        if freed > 0 {
            core.space.notify_waiters();
            self.handle.wake_cursor();
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.acked {
            return;
        }
        let core = &self.handle.core;
        let evicted = {
            let st = core.lock();
            match self.id.checked_sub(st.front) {
                // Already passed by the cursor without an ack: only eviction does that.
                None => true,
                Some(i) => st.inflight.get(i as usize).is_some_and(|e| e.evicted),
            }
        };
        if evicted {
            core.counters.drop("evicted", 1, self.items);
        }
    }
}

enum Claim {
    Read { pos: Pos, limit: u64 },
    Wait,
    Closed,
}

impl SpoolReceiver {
    /// The next record, waiting for one; `None` once every sender is gone (what is left stays on
    /// disk for the next start).
    pub async fn recv(&mut self) -> Option<(Batch, Ticket)> {
        self.next(true).await
    }

    /// The next record if one is ready now.
    pub async fn try_recv(&mut self) -> Option<(Batch, Ticket)> {
        self.next(false).await
    }

    /// Bytes from the cursor to the end of the log.
    pub fn backlog_bytes(&self) -> u64 {
        let st = self.handle.core.lock();
        st.dist(st.cursor, st.end())
    }

    /// The segment files the spool keeps now.
    pub fn segments(&self) -> Vec<u64> {
        self.handle.core.lock().segments.keys().copied().collect()
    }

    /// Persists the cursor now and, when nothing else holds the spool, waits (a few seconds at
    /// most) for its threads to stop.
    pub async fn close(self) {
        let handle = self.handle.clone();
        drop(self);
        let core = handle.core.clone();
        let _ = tokio::task::spawn_blocking(move || core.persist()).await;
        let last = Arc::strong_count(&handle) == 1;
        let threads = std::mem::take(&mut *handle.threads.lock().unwrap_or_else(|p| p.into_inner()));
        drop(handle);
        if !last {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while threads.iter().any(|t| !t.is_finished()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn next(&mut self, wait: bool) -> Option<(Batch, Ticket)> {
        let core = self.handle.core.clone();
        loop {
            let notified = core.data.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (claim, freed) = {
                let mut st = core.lock();
                st.normalize_read();
                let freed = st.advance_cursor();
                let end = st.end();
                let claim = if st.closed {
                    Claim::Closed
                } else if st.read < end {
                    let limit = if st.read.segment == st.active {
                        end.offset
                    } else {
                        st.seg_len(st.read.segment)
                    };
                    Claim::Read {
                        pos: st.read,
                        limit,
                    }
                } else {
                    Claim::Wait
                };
                (claim, freed)
            };
            if freed > 0 {
                core.space.notify_waiters();
                self.handle.wake_cursor();
            }
            let (pos, limit) = match claim {
                Claim::Closed => return None,
                Claim::Wait if wait => {
                    notified.await;
                    continue;
                }
                Claim::Wait => return None,
                Claim::Read { pos, limit } => (pos, limit),
            };
            let file = match &self.file {
                Some((id, f)) if *id == pos.segment => f.clone(),
                _ => match File::open(segment::path(&core.dir, pos.segment)) {
                    Ok(f) => {
                        let f = Arc::new(f);
                        self.file = Some((pos.segment, f.clone()));
                        f
                    }
                    Err(e) => {
                        self.read_failed(pos, limit, e).await;
                        continue;
                    }
                },
            };
            let read =
                tokio::task::spawn_blocking(move || segment::read_at(&file, pos.offset, limit))
                    .await
                    .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
            let read = match read {
                Ok(r) => r,
                Err(e) => {
                    self.read_failed(pos, limit, e).await;
                    continue;
                }
            };
            self.io_failures = 0;
            let (next, damage) = match read {
                segment::Read::Frame { body, next } => {
                    match record::decode(body, &mut self.last_source) {
                        Some(batch) => {
                            let mut st = core.lock();
                            if st.read != pos {
                                continue; // discarded by drop_oldest meanwhile
                            }
                            st.read = Pos {
                                segment: pos.segment,
                                offset: next,
                            };
                            let id = st.front + st.inflight.len() as u64;
                            st.inflight.push_back(Entry {
                                start: pos,
                                done: false,
                                evicted: false,
                            });
                            let ticket = Ticket {
                                handle: self.handle.clone(),
                                id,
                                items: batch.items,
                                acked: false,
                            };
                            return Some((batch, ticket));
                        }
                        None => (next, segment::Damage::Undecodable),
                    }
                }
                segment::Read::Damaged { reason, next } => (next, reason),
            };
            self.skip(pos, next, damage.as_str());
        }
    }

    /// Skips the damaged stretch `[pos, next)` of one segment, counted and logged.
    fn skip(&mut self, pos: Pos, next: u64, reason: &'static str) {
        let core = &self.handle.core;
        {
            let mut st = core.lock();
            if st.read != pos {
                return;
            }
            st.read = Pos {
                segment: pos.segment,
                offset: next,
            };
        }
        let bytes = next.saturating_sub(pos.offset);
        core.counters.damaged(reason, bytes);
        error!(exporter = %core.name, file = %segment::path(&core.dir, pos.segment).display(), offset = pos.offset, bytes, reason, "damaged spool data skipped (at least one record lost)");
    }

    /// A read that failed with an I/O error: retried twice, then the rest of the segment is
    /// skipped and counted, so a bad sector never stops the queue.
    async fn read_failed(&mut self, pos: Pos, limit: u64, e: io::Error) {
        self.file = None;
        if e.kind() == io::ErrorKind::NotFound {
            // Deleted by drop_oldest's cursor move, or by hand.
            let moved = self.handle.core.lock().read != pos;
            if !moved {
                self.skip(pos, limit, "io");
            }
            return;
        }
        self.io_failures += 1;
        if self.io_failures >= 3 {
            self.io_failures = 0;
            self.skip(pos, limit, "io");
            return;
        }
        warn!(exporter = %self.handle.core.name, offset = pos.offset, error = %e, "spool read failed; retrying");
        tokio::time::sleep(Duration::from_millis(100 * u64::from(self.io_failures))).await;
    }
}
