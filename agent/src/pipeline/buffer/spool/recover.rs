//! Start-up: what a previous run (or a crash) left in the spool directory becomes a consistent
//! state — without reading more than the last segment, so start-up takes the same time whatever
//! the backlog.
//!
//! The steps, in order: lock the directory; list the segments (dropping a leftover temp cursor,
//! the spare and empty segments); read the cursor and place it inside the log; delete what is
//! wholly before it; cut a torn tail off the last segment; start the segment to append to. Then,
//! once the spool runs, its backlog's items are counted in the background.
//!
//! Never refuses to start because of what it finds: a missing or damaged cursor means resending
//! everything on disk (counted and logged), never losing it. Fails only when the directory
//! itself is unusable or locked by another process.

use super::config::{CursorFound, Recovered, SpoolConfig, SpoolError};
use super::core::Core;
use super::metrics::{Counters, Gauges};
use super::pos::Pos;
use super::spare::SPARE;
use super::state::State;
use super::writer::Active;
use super::{cursor, record, segment};
use crate::pipeline::buffer::metrics::BufferGauges;
use sonde_config::Fsync;
use sonde_core::log_limit::LogLimit;
use sonde_core::metrics::Registry;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{info, warn};

/// Segment id → length in bytes.
type Segments = BTreeMap<u64, u64>;

/// Start-up: lists the segments, reads the cursor, removes what a crash left behind, cuts a torn
/// tail off the last segment, and opens a fresh segment to append to. Reads no segment but the
/// last, so it takes the same time whatever the backlog.
pub(super) fn recover(
    cfg: SpoolConfig,
    metrics: &Registry,
) -> Result<(Core, Active, Recovered), SpoolError> {
    let name = cfg.name.to_string();
    let dir = cfg.dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&name, "create", &dir, e))?;
    let lock = lock_dir(&dir, &name)?;
    let counters = Counters::new(metrics, &name);
    let mut r = Recovery {
        name: &name,
        dir: &dir,
        counters: &counters,
        found: Recovered::default(),
    };
    let mut segments = r.list_segments()?;
    let loaded = r.load_cursor(&segments);
    let mut cursor = r.place_cursor(loaded, &segments);
    r.remove_exported(&mut segments, cursor.segment);
    r.cut_torn_tail(&mut segments)?;
    if let Some(len) = segments.get(&cursor.segment) {
        cursor.offset = cursor.offset.min(*len);
    }
    let new_id = segments
        .keys()
        .next_back()
        .copied()
        .max(loaded.map(|p| p.segment))
        .map_or(0, |id| id + 1);
    if segments.is_empty() {
        cursor = Pos {
            segment: new_id,
            offset: 0,
        };
    }
    let active = r.open_active(&segments, new_id, cfg.fsync)?;
    segments.insert(active.id, active.len);
    let gauges = Gauges::new(metrics, &name);
    gauges.segments.set(segments.len() as i64);
    let max_bytes = i64::try_from(cfg.max_size).unwrap_or(i64::MAX);
    let st = State::new(
        segments,
        active.id,
        cursor,
        loaded.filter(|p| *p == cursor),
        // Only segments this run starts hold nothing but frames bound to them.
        if active.len == 0 {
            active.id
        } else {
            active.id + 1
        },
        BufferGauges::register(metrics, &name, max_bytes),
    );
    r.found.segments = st.segments.range(st.cursor.segment..st.active).count();
    r.found.backlog_bytes = st.used;
    info!(exporter = %name, dir = %dir.display(), segments = r.found.segments, backlog_bytes = st.used, cursor = %st.cursor, "disk buffer opened");
    let recovered = r.found;
    let core = Core {
        name: cfg.name.clone(),
        dir,
        fsync: cfg.fsync,
        compression: cfg.compression,
        segment_size: cfg.segment_size.max(record::HEADER_LEN),
        max_size: cfg.max_size,
        state: Mutex::new(st),
        space: Notify::new(),
        data: Notify::new(),
        counters,
        gauges,
        persist_lock: Mutex::new(()),
        warn_full: LogLimit::default(),
        warn_cursor: LogLimit::default(),
        _lock: lock,
    };
    Ok((core, active, recovered))
}

/// The error of `what` failing on `path` in exporter `name`'s spool.
fn io_err(name: &str, what: &'static str, path: &Path, source: io::Error) -> SpoolError {
    SpoolError::Io {
        exporter: name.to_string(),
        what,
        path: path.display().to_string(),
        source,
    }
}

/// Takes the directory's lock (`flock` on `lock`): one process per spool.
fn lock_dir(dir: &Path, name: &str) -> Result<File, SpoolError> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(name, "create", &path, e))?;
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
            Err(e) => return Err(io_err(name, "lock", &path, e.into())),
        }
    }
}

/// One start-up of one spool directory, and what it found.
struct Recovery<'a> {
    name: &'a str,
    dir: &'a Path,
    counters: &'a Counters,
    found: Recovered,
}

impl Recovery<'_> {
    fn io_err(&self, what: &'static str, path: &Path, source: io::Error) -> SpoolError {
        io_err(self.name, what, path, source)
    }

    /// The segments on disk, after removing what holds nothing: a temp cursor file, the spare
    /// and empty segments (an agent that started and stopped without data).
    fn list_segments(&self) -> Result<Segments, SpoolError> {
        let _ = std::fs::remove_file(self.dir.join(cursor::TEMP));
        let _ = std::fs::remove_file(self.dir.join(SPARE));
        let mut segments = segment::list(self.dir).map_err(|e| self.io_err("list", self.dir, e))?;
        segments.retain(|id, len| {
            if *len == 0 {
                let _ = std::fs::remove_file(segment::path(self.dir, *id));
            }
            *len > 0
        });
        Ok(segments)
    }

    /// The persisted cursor, if there is a usable one (a missing or damaged one is recorded and
    /// logged: everything on disk is sent again).
    fn load_cursor(&mut self, segments: &Segments) -> Option<Pos> {
        match cursor::load(self.dir) {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                if !segments.is_empty() {
                    self.found.cursor = CursorFound::Missing;
                    warn!(exporter = %self.name, dir = %self.dir.display(), "spool cursor missing: sending everything on disk again (duplicates possible)");
                }
                None
            }
            Err(e) => {
                self.found.cursor = CursorFound::Damaged;
                self.counters.cursor_errors.inc();
                warn!(exporter = %self.name, error = %e, "spool cursor unusable: sending everything on disk again (duplicates possible)");
                None
            }
        }
    }

    /// Where sending starts: the loaded cursor, moved to the start of the next segment when its
    /// own is gone; the oldest segment's start without one, or with one past the log.
    fn place_cursor(&mut self, loaded: Option<Pos>, segments: &Segments) -> Pos {
        let (Some(first), Some(last)) = (
            segments.keys().next().copied(),
            segments.keys().next_back().copied(),
        ) else {
            return Pos::default();
        };
        let oldest = Pos {
            segment: first,
            offset: 0,
        };
        let Some(p) = loaded else {
            return oldest;
        };
        if p.segment > last {
            self.found.cursor = CursorFound::Damaged;
            warn!(exporter = %self.name, cursor = %p, "spool cursor points past the last segment: sending everything on disk again");
            oldest
        } else if p.segment < first || !segments.contains_key(&p.segment) {
            // Its segment is gone (emptied, or deleted once exported): the next one starts.
            let next = segments
                .range(p.segment..)
                .next()
                .map_or(first, |(id, _)| *id);
            Pos {
                segment: next,
                offset: 0,
            }
        } else {
            p
        }
    }

    /// Deletes the segments before `cursor_segment`: they were exported, and a crash between the
    /// cursor write and their deletion left them behind.
    fn remove_exported(&self, segments: &mut Segments, cursor_segment: u64) {
        let exported: Vec<u64> = segments
            .range(..cursor_segment)
            .map(|(id, _)| *id)
            .collect();
        for id in exported {
            let _ = std::fs::remove_file(segment::path(self.dir, id));
            segments.remove(&id);
        }
    }

    /// Cuts a torn record (and, in a reused file, the old content past the data) off the end of
    /// the last segment: a torn tail can only be at the end of the last segment written.
    fn cut_torn_tail(&mut self, segments: &mut Segments) -> Result<(), SpoolError> {
        let Some((&id, &len)) = segments.iter().next_back() else {
            return Ok(());
        };
        let path = segment::path(self.dir, id);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| self.io_err("open", &path, e))?;
        let read = |e| self.io_err("read", &path, e);
        let Some(good) = segment::torn_tail(&f, id, len).map_err(read)? else {
            return Ok(());
        };
        // Past the torn write (if any), a reused file holds its old content: frames of an
        // earlier segment, whole up to the end of the file.
        let stale = segment::stale_from(&f, good, len).map_err(read)?;
        f.set_len(good)
            .map_err(|e| self.io_err("truncate", &path, e))?;
        let _ = f.sync_all();
        let cut = stale - good;
        if cut > 0 {
            self.counters.torn_tail_bytes.add(cut);
            self.found.torn_tail_bytes = cut;
            warn!(exporter = %self.name, file = %path.display(), offset = good, bytes = cut, "cut a torn record from the end of the spool (it was never acknowledged)");
        }
        if stale < len {
            info!(exporter = %self.name, file = %path.display(), offset = stale, bytes = len - stale, "cut the old content of a reused segment file");
        }
        if good == 0 {
            let _ = std::fs::remove_file(&path);
            segments.remove(&id);
        } else {
            segments.insert(id, good);
        }
        Ok(())
    }

    /// Starts segment `new_id` to append to. A full disk may refuse even an empty file: then the
    /// last segment is appended to instead, rather than refuse to start.
    fn open_active(
        &self,
        segments: &Segments,
        new_id: u64,
        fsync: Fsync,
    ) -> Result<Active, SpoolError> {
        let e = match segment::create(self.dir, new_id, fsync) {
            Ok(file) => return Ok(Active::new(new_id, file, 0)),
            Err(e) => e,
        };
        let reopened = segments.iter().next_back().and_then(|(&id, &len)| {
            let mut f = OpenOptions::new()
                .write(true)
                .open(segment::path(self.dir, id))
                .ok()?;
            f.seek(io::SeekFrom::Start(len)).ok()?;
            Some(Active::new(id, f, len))
        });
        match reopened {
            Some(active) => {
                warn!(exporter = %self.name, dir = %self.dir.display(), error = %e, "cannot start a new segment; appending to the last one");
                Ok(active)
            }
            None => Err(self.io_err("create", &segment::path(self.dir, new_id), e)),
        }
    }
}

/// Counts the items of the backlog found at start-up on a short-lived thread and adds them to
/// the `sonde_buffer_items` gauge. Holds the spool only weakly: a spool closed meanwhile (a
/// reload reopening it) is not kept open by the count.
pub(super) fn count_backlog_items(core: &Arc<Core>) {
    let ranges = core.lock().backlog_ranges();
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
