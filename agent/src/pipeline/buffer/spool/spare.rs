//! The spare: the newest exported segment file, kept (as [`SPARE`]) instead of deleted so that
//! the writer starts the next segment in it, overwriting blocks already written (an fsync of
//! those commits no journal transaction).
//!
//! Invariant: a spare exists only while the log is two segments below `max_size`, so the disk
//! never holds more than `max_size` plus one segment. It goes after [`SPARE_IDLE`] of an empty
//! spool, at close, and when a write finds the disk full. A spare that cannot be taken is
//! deleted, never used half-way: the writer then starts a new file.

use super::core::Core;
use super::segment;
use super::state::State;
use sonde_config::Fsync;
use sonde_core::fs::sync_dir;
use std::fs::{File, OpenOptions};
use std::time::Duration;
use tracing::debug;

/// The exported segment file kept for reuse (not a segment: `segment::list` ignores it).
pub const SPARE: &str = "spare";
/// An empty spool keeps its spare this long, then deletes it (an idle agent holds no more disk
/// than its data).
pub const SPARE_IDLE: Duration = Duration::from_secs(5);

impl Core {
    /// Whether a spare file (and a reused, full-size active segment) fits next to the log:
    /// only while the log is two segments below `max_size`, so the disk never holds more than
    /// `max_size` plus one segment.
    pub(super) fn spare_fits(&self, st: &State) -> bool {
        st.used.saturating_add(2 * self.segment_size) <= self.max_size
    }

    /// The spare, renamed into place as segment `id` and opened to be overwritten from its
    /// start; `None` when there is none, it no longer fits (then it is deleted), or it cannot be
    /// taken (the caller starts a new file).
    pub(super) fn take_spare(&self, id: u64) -> Option<File> {
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
    pub(super) fn trim_spare(&self, force: bool) {
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
}
