//! The buffer of one exporter, between the router and the export worker: in memory (the
//! default, `memory`) or on disk ([`spool`]), behind one API.
//!
//! - Producers (the router) call [`BufferSender::push`], which returns once the batch is
//!   accepted: queued in memory, or durable on disk per `fsync`. That is what a source may
//!   acknowledge upstream.
//! - The export worker calls [`BufferReceiver::recv`] and [`Queued::ack`]s each batch once its
//!   export is finished (sent, or dropped for good and counted). A batch dropped without `ack`
//!   was cut off by the shutdown deadline: a disk buffer keeps it and sends it after a restart.
//!
//! Memory: space is a semaphore of bytes (`buffer.max_size`). A batch takes its bytes' worth of
//! permits when pushed and gives them back only when it is dropped after its export finished, so
//! the bound covers everything the exporter holds, not just the queue. Disk: the same bound
//! holds for the bytes from the spool's cursor to its end.
//!
//! Layout: this module is the public face and only dispatches. What both kinds share sits one
//! level down — the `push` vocabulary ([`Wait`], [`Pushed`], [`PushError`]), the `metrics` every
//! buffer reports, the [`Queued`] batch and its hold — so neither kind imports the other or this
//! face.

mod memory;
pub mod metrics;
mod push;
mod queued;
pub mod spool;

pub use push::{PushError, Pushed, Wait};
pub use queued::Queued;
pub use spool::SpoolError;

use memory::MemorySender;
use sonde_config::{BufferConfig, BufferKind};
use sonde_core::metrics::Registry;
use sonde_core::Batch;
use spool::{SpoolConfig, SpoolReceiver, SpoolSender};
use std::path::Path;
use tokio::sync::mpsc;

/// The producers' handle. Cloning is cheap; when every clone is gone the buffer closes.
#[derive(Clone)]
pub struct BufferSender {
    inner: SenderKind,
}

#[derive(Clone)]
enum SenderKind {
    Memory(MemorySender),
    Disk(SpoolSender),
}

/// The export worker's handle.
pub struct BufferReceiver {
    inner: ReceiverKind,
}

enum ReceiverKind {
    Memory(mpsc::Receiver<Queued>),
    Disk(SpoolReceiver),
}

impl BufferReceiver {
    /// The next batch. `None` once the buffer is closed: a memory buffer first hands out
    /// everything it holds; a disk buffer stops at once and keeps the rest for the next start.
    pub async fn recv(&mut self) -> Option<Queued> {
        match &mut self.inner {
            ReceiverKind::Memory(rx) => rx.recv().await,
            ReceiverKind::Disk(rx) => rx.recv().await.map(|(batch, t)| Queued::on_disk(batch, t)),
        }
    }

    /// Whether what is not acknowledged survives a restart (a disk buffer).
    pub fn persistent(&self) -> bool {
        matches!(self.inner, ReceiverKind::Disk(_))
    }

    /// Called by the worker when it is done: a disk buffer persists its cursor.
    pub async fn close(self) {
        if let ReceiverKind::Disk(rx) = self.inner {
            rx.close().await;
        }
    }
}

/// Creates the buffer of exporter `name` as its config says: in memory, or on disk under
/// `data_dir/buffers/<name>/` (recovering what a previous run left there).
pub async fn open(
    name: &str,
    cfg: &BufferConfig,
    data_dir: &Path,
    metrics: &Registry,
) -> Result<(BufferSender, BufferReceiver), SpoolError> {
    match cfg.kind {
        BufferKind::Memory => Ok(channel(name, cfg, metrics)),
        BufferKind::Disk => {
            let (tx, rx, _) = spool::open(SpoolConfig::new(data_dir, name, cfg), metrics).await?;
            Ok((
                BufferSender {
                    inner: SenderKind::Disk(tx),
                },
                BufferReceiver {
                    inner: ReceiverKind::Disk(rx),
                },
            ))
        }
    }
}

/// Creates the in-memory buffer of exporter `name` (whatever `cfg.kind` says).
pub fn channel(
    name: &str,
    cfg: &BufferConfig,
    metrics: &Registry,
) -> (BufferSender, BufferReceiver) {
    let (tx, rx) = MemorySender::new(name, cfg, metrics);
    (
        BufferSender {
            inner: SenderKind::Memory(tx),
        },
        BufferReceiver {
            inner: ReceiverKind::Memory(rx),
        },
    )
}

impl BufferSender {
    /// Offers a batch. Under `block` waits for space as `wait` allows; under `drop_newest` (and
    /// `drop_oldest`) never waits. A disk buffer returns once the batch is durable.
    pub async fn push(&self, batch: Batch, wait: Wait) -> Result<Pushed, PushError> {
        match &self.inner {
            SenderKind::Memory(m) => m.push(batch, wait).await,
            SenderKind::Disk(d) => d.push(batch, wait).await,
        }
    }
}
