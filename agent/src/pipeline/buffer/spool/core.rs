//! What every part of one spool shares: the [`Core`] (its configuration, its [`State`] under a
//! mutex, the notifications that wake producers and the reader, its counters and its directory
//! lock), the [`Handle`] whose last holder stops the spool's threads, and the [`Reservation`] an
//! append holds.
//!
//! The mutex guards bookkeeping only: no I/O and nothing that can block runs under it, and
//! every critical section leaves the state consistent before anything that can panic.

use super::metrics::{Counters, Gauges};
use super::state::State;
use sonde_config::{Fsync, SpoolCompression};
use sonde_core::log_limit::LogLimit;
use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::sync::Notify;

/// What every part of one spool shares: its state and its files.
pub(super) struct Core {
    pub(super) name: Arc<str>,
    pub(super) dir: PathBuf,
    pub(super) fsync: Fsync,
    pub(super) compression: SpoolCompression,
    pub(super) segment_size: u64,
    pub(super) max_size: u64,
    pub(super) state: Mutex<State>,
    /// Space was freed (producers waiting under `block`).
    pub(super) space: Notify,
    /// New data was published, or the spool was closed (the reader).
    pub(super) data: Notify,
    pub(super) counters: Counters,
    pub(super) gauges: Gauges,
    /// Serializes writes of the cursor file.
    pub(super) persist_lock: Mutex<()>,
    pub(super) warn_full: LogLimit,
    pub(super) warn_cursor: LogLimit,
    /// The directory lock (`flock` on `lock`), released when the last part is gone.
    pub(super) _lock: File,
}

impl Core {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything that can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives back `bytes` of space and wakes the producers waiting for it.
    pub(super) fn release(&self, bytes: u64) {
        {
            let mut st = self.lock();
            let used = st.used.saturating_sub(bytes);
            st.set_used(used);
        }
        self.space.notify_waiters();
    }
}

/// Space reserved by one append; given back on drop unless the record was written.
pub(super) struct Reservation {
    core: Arc<Core>,
    bytes: u64,
    armed: bool,
}

impl Reservation {
    /// Space already counted in `used`, to be given back unless [`Reservation::disarm`]ed.
    pub(super) fn new(core: Arc<Core>, bytes: u64) -> Self {
        Reservation {
            core,
            bytes,
            armed: true,
        }
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The record is in the log: its space is now counted as log, not as reservation.
    pub(super) fn disarm(&mut self) {
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
pub(super) struct Handle {
    pub(super) core: Arc<Core>,
    pub(super) wake: SyncSender<()>,
    pub(super) threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Handle {
    /// Tells the cursor thread that the cursor may have moved.
    pub(super) fn wake_cursor(&self) {
        let _ = self.wake.try_send(());
    }
}
