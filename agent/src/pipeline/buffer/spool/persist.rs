//! The cursor thread: persists the cursor when acknowledgements moved it (at most every
//! [`CURSOR_INTERVAL`]), then deletes the segments wholly before it — keeping the newest as the
//! spare when it may be reused — and lets an idle or oversized spare go.
//!
//! Invariant: a segment is deleted only after the cursor past it is durable, so a crash at any
//! point resends at most what was acknowledged since the last write and never loses what was
//! not. A failed cursor write is counted, retried every second (in place, when a full disk
//! refuses a new file), and never stops the thread.

use super::core::Core;
use super::pos::Pos;
use super::spare::SPARE;
use super::write_error::WriteError;
use super::{cursor, segment};
use sonde_config::Fsync;
use std::io;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// The cursor is persisted at most this often (and only when it moved).
pub const CURSOR_INTERVAL: Duration = Duration::from_millis(100);

/// The cursor thread's loop: runs until every handle of the spool is gone, then makes its final
/// write and deletes the spare.
pub(super) fn cursor_thread(core: Arc<Core>, wake: Receiver<()>) {
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

impl Core {
    /// Writes the in-memory cursor if it moved, then deletes the segments wholly before it.
    /// Blocking.
    pub(super) fn persist(&self) {
        let _serial = self.persist_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (pos, persisted) = {
            let st = self.lock();
            (st.cursor, st.persisted)
        };
        if persisted == Some(pos) || !self.store_cursor(pos) {
            return;
        }
        let (doomed, reuse) = self.forget_segments_before(pos);
        for id in &doomed {
            self.remove_exported(*id, Some(*id) == reuse);
        }
        if !doomed.is_empty() {
            self.space.notify_waiters();
        }
    }

    /// Writes the cursor file (in place when a full disk refuses a new one); false, counted and
    /// logged, when it could not.
    fn store_cursor(&self, pos: Pos) -> bool {
        let sync = self.fsync != Fsync::Never;
        let stored = cursor::store(&self.dir, pos, sync).or_else(|e| {
            if WriteError::of(&e) == WriteError::NoSpace {
                cursor::store_in_place(&self.dir, pos, sync)
            } else {
                Err(e)
            }
        });
        let Err(e) = stored else {
            return true;
        };
        self.counters.cursor_errors.inc();
        if self.warn_cursor.check().is_some() {
            warn!(exporter = %self.name, dir = %self.dir.display(), error = %e, "cannot persist the spool cursor; will retry (a crash now means resending, not losing)");
        }
        false
    }

    /// Records `pos` as persisted and drops the segments wholly before it from the state;
    /// returns them, and the one to keep as the spare (the newest, if it may be reused and
    /// fits).
    fn forget_segments_before(&self, pos: Pos) -> (Vec<u64>, Option<u64>) {
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
        let reuse = doomed
            .last()
            .copied()
            .filter(|id| !st.spare && *id >= st.recycle_floor && self.spare_fits(&st));
        (doomed, reuse)
    }

    /// Deletes the file of exported segment `id`, or keeps it as the spare when `reuse`.
    fn remove_exported(&self, id: u64, reuse: bool) {
        let path = segment::path(&self.dir, id);
        if reuse && std::fs::rename(&path, self.dir.join(SPARE)).is_ok() {
            self.lock().spare = true;
            debug!(exporter = %self.name, file = %path.display(), "segment exported; kept for reuse");
            return;
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
}
