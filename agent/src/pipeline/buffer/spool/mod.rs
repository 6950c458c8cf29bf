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
//! of any size drains with the memory of a few batches. Start-up reads only the last segment
//! (to cut a torn tail); damage elsewhere is found, skipped and counted when the reader reaches
//! it.
//!
//! Failures: a failed append (a full disk) pauses appends briefly and the producers'
//! `when_full` policy applies; a full disk also seals the active segment so that it can be
//! deleted once exported. A failed cursor write is retried every second (in place when there
//! is no room for a new file).
//!
//! This module never panics on what it reads and never refuses to start because of what it
//! finds on disk; it fails to open only when the directory itself is unusable or locked by
//! another process.
//!
//! Layout: this module is the public face ([`open`] and what it returns). The shared
//! bookkeeping lives one level down (`core`'s `Core` around `state`'s `State`), and each part is
//! a file with its own imports: `sender` (producers), `writer` (the writer thread), `reader`
//! (the export worker's side), `persist` (the cursor thread), `spare`, `recover` (start-up),
//! and the file formats [`record`], [`segment`], [`cursor`].

mod config;
mod core;
pub mod cursor;
mod metrics;
mod persist;
mod pos;
mod reader;
pub mod record;
mod recover;
pub mod segment;
mod sender;
mod spare;
mod state;
mod write_error;
mod writer;

pub use config::{default_segment_size, CursorFound, Recovered, SpoolConfig, SpoolError};
pub use persist::CURSOR_INTERVAL;
pub use pos::Pos;
pub use reader::{SpoolReceiver, Ticket, READ_AHEAD};
pub use sender::SpoolSender;
pub use spare::{SPARE, SPARE_IDLE};
pub use state::RECENT_BYTES;

use self::core::{Core, Handle};
use sonde_core::metrics::Registry;
use std::io;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::mpsc;

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
    let w = {
        let core2 = core.clone();
        spawn(&core, "sonde-spool-w", move || {
            writer::run(core2, rx, active)
        })?
    };
    let c = {
        let core2 = core.clone();
        spawn(&core, "sonde-spool-c", move || {
            persist::cursor_thread(core2, wake_rx)
        })?
    };
    let handle = Arc::new(Handle {
        core,
        wake: wake_tx,
        threads: Mutex::new(vec![w, c]),
    });
    // A missing or corrected cursor is written at once.
    handle.wake_cursor();
    recover::count_backlog_items(&handle.core);
    let sender = SpoolSender::new(handle.clone(), tx, when_full);
    let receiver = SpoolReceiver::new(handle, metrics);
    Ok((sender, receiver, recovered))
}

/// Starts one of the spool's threads.
fn spawn(
    core: &Core,
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, SpoolError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| SpoolError::Io {
            exporter: core.name.to_string(),
            what: "start a thread for",
            path: core.dir.display().to_string(),
            source: e,
        })
}
