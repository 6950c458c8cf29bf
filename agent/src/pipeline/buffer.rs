//! The buffer of one exporter, between the router and the export worker: in memory (the
//! default) or on disk ([`super::spool`]), behind one API.
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

use super::spool::{self, SpoolConfig, SpoolError, SpoolReceiver, SpoolSender, Ticket};
use sonde_config::{BufferConfig, BufferKind, WhenFull};
use sonde_core::metrics::{Counter, Gauge, Registry};
use sonde_core::Batch;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long a producer may wait for space under `when_full = "block"`.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// Don't wait: refuse at once if full.
    No,
    /// Wait until this instant, then refuse.
    Until(Instant),
    /// Wait as long as it takes (the producer has its own cancellation).
    Forever,
}

/// Why a batch was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("buffer full")]
    Full,
    #[error("buffer closed (the agent is stopping)")]
    Closed,
}

/// What happened to an accepted push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Refused under `when_full = "drop_newest"` (or `drop_oldest` when nothing older could
    /// go): counted, and reported to the producer as accepted (the policy chose to lose it).
    Dropped,
}

/// A batch in the buffer, holding its share of the buffer's space until finished with.
pub struct Queued {
    pub batch: Batch,
    /// `None` once acked.
    hold: Option<Hold>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        // Dropped without `ack`: interrupted (shutdown), so the source must not count it done.
        if let Some(a) = self.batch.ack.take() {
            a.abandon();
        }
    }
}

enum Hold {
    /// Held for its `Drop`, which gives the space back.
    Memory {
        _hold: MemoryHold,
    },
    Disk(Ticket),
}

impl Queued {
    /// Marks the batch as finished with (exported, or given up on and counted). A batch dropped
    /// without `ack` was interrupted by shutdown: a persistent buffer keeps it for next time,
    /// and its source's [`sonde_core::Ack`] hears it was not finished.
    pub fn ack(mut self) {
        // Finished: let the source's token go without abandoning it.
        self.batch.ack = None;
        if let Some(Hold::Disk(t)) = self.hold.take() {
            t.ack();
        }
    }
}

/// A memory batch's space: permits and gauges are given back on drop.
struct MemoryHold {
    _permit: OwnedSemaphorePermit,
    gauges: BufferGauges,
    bytes: i64,
    items: i64,
}

impl Drop for MemoryHold {
    fn drop(&mut self) {
        self.gauges.bytes.add(-self.bytes);
        self.gauges.items.add(-self.items);
    }
}

#[derive(Clone)]
struct BufferGauges {
    bytes: Gauge,
    items: Gauge,
}

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

#[derive(Clone)]
struct MemorySender {
    tx: mpsc::Sender<Queued>,
    space: Arc<Semaphore>,
    max_bytes: u32,
    when_full: WhenFull,
    gauges: BufferGauges,
    dropped_items: Counter,
    dropped_batches: Counter,
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
            ReceiverKind::Disk(rx) => rx.recv().await.map(|(batch, t)| Queued {
                batch,
                hold: Some(Hold::Disk(t)),
            }),
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
    let max_bytes = u32::try_from(cfg.max_size.get()).unwrap_or(u32::MAX).max(1);
    // The byte limit is the real bound; the count bound only keeps a flood of tiny batches from
    // costing more in per-entry overhead than in payload.
    let (tx, rx) = mpsc::channel(65_536);
    let labels = [("exporter", name)];
    let gauges = BufferGauges {
        bytes: metrics.gauge(
            "sonde_buffer_bytes",
            "Encoded bytes held by an exporter's buffer.",
            &labels,
        ),
        items: metrics.gauge(
            "sonde_buffer_items",
            "Items held by an exporter's buffer (disk: from the cursor to the end of the log).",
            &labels,
        ),
    };
    metrics
        .gauge(
            "sonde_buffer_max_bytes",
            "Configured size limit of an exporter's buffer.",
            &labels,
        )
        .set(i64::from(max_bytes));
    let dropped = |unit| {
        metrics.counter(
            if unit == "items" {
                "sonde_buffer_dropped_items_total"
            } else {
                "sonde_buffer_dropped_batches_total"
            },
            "Batches and items refused by a full buffer under when_full = drop_newest.",
            &[("exporter", name), ("reason", "buffer_full")],
        )
    };
    let sender = MemorySender {
        tx,
        space: Arc::new(Semaphore::new(max_bytes as usize)),
        max_bytes,
        when_full: cfg.when_full,
        gauges,
        dropped_items: dropped("items"),
        dropped_batches: dropped("batches"),
    };
    (
        BufferSender {
            inner: SenderKind::Memory(sender),
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

impl MemorySender {
    async fn push(&self, batch: Batch, wait: Wait) -> Result<Pushed, PushError> {
        // A batch larger than the whole buffer takes all of it rather than waiting forever.
        let need = u32::try_from(batch.payload.len())
            .unwrap_or(u32::MAX)
            .clamp(1, self.max_bytes);
        let wait = match self.when_full {
            WhenFull::Block => wait,
            // drop_oldest is refused for memory by config validation; it degrades to drop_newest.
            WhenFull::DropNewest | WhenFull::DropOldest => Wait::No,
        };
        let acquired = match wait {
            Wait::No => self
                .space
                .clone()
                .try_acquire_many_owned(need)
                .map_err(|e| match e {
                    tokio::sync::TryAcquireError::Closed => PushError::Closed,
                    tokio::sync::TryAcquireError::NoPermits => PushError::Full,
                }),
            Wait::Until(deadline) => {
                match tokio::time::timeout_at(deadline, self.space.clone().acquire_many_owned(need))
                    .await
                {
                    Ok(r) => r.map_err(|_| PushError::Closed),
                    Err(_) => Err(PushError::Full),
                }
            }
            Wait::Forever => self
                .space
                .clone()
                .acquire_many_owned(need)
                .await
                .map_err(|_| PushError::Closed),
        };
        let permit = match acquired {
            Ok(p) => p,
            Err(PushError::Full) if self.when_full != WhenFull::Block => {
                self.dropped_batches.inc();
                self.dropped_items.add(batch.items);
                return Ok(Pushed::Dropped);
            }
            Err(e) => return Err(e),
        };
        let bytes = batch.payload.len() as i64;
        let items = batch.items as i64;
        self.gauges.bytes.add(bytes);
        self.gauges.items.add(items);
        let queued = Queued {
            batch,
            hold: Some(Hold::Memory {
                _hold: MemoryHold {
                    _permit: permit,
                    gauges: self.gauges.clone(),
                    bytes,
                    items,
                },
            }),
        };
        self.tx.send(queued).await.map_err(|_| PushError::Closed)?;
        Ok(Pushed::Queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_config::{BufferKind, ByteSize};
    use sonde_core::Signal;
    use std::time::Duration;

    fn batch(n: usize) -> Batch {
        Batch::from_trusted(Signal::Logs, vec![0u8; n].into(), 1, Arc::from("s"))
    }

    fn cfg(max: u64, when_full: WhenFull) -> BufferConfig {
        BufferConfig {
            kind: BufferKind::Memory,
            max_size: ByteSize(max),
            when_full,
            ..BufferConfig::default()
        }
    }

    #[tokio::test]
    async fn block_refuses_after_the_deadline_and_frees_space_when_exported() {
        let r = Registry::default();
        let (tx, mut rx) = channel("e", &cfg(100, WhenFull::Block), &r);
        assert_eq!(tx.push(batch(60), Wait::No).await, Ok(Pushed::Queued));
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            tx.push(batch(60), Wait::Until(soon)).await,
            Err(PushError::Full)
        );
        assert_eq!(
            r.gauge("sonde_buffer_bytes", "", &[("exporter", "e")])
                .get(),
            60
        );
        // Taking the batch out is not enough: space returns when it is dropped (exported).
        let q = rx.recv().await.unwrap();
        assert_eq!(tx.push(batch(60), Wait::No).await, Err(PushError::Full));
        drop(q);
        assert_eq!(tx.push(batch(60), Wait::No).await, Ok(Pushed::Queued));
    }

    #[tokio::test]
    async fn drop_newest_counts_what_it_drops() {
        let r = Registry::default();
        let (tx, _rx) = channel("e", &cfg(100, WhenFull::DropNewest), &r);
        assert_eq!(tx.push(batch(80), Wait::Forever).await, Ok(Pushed::Queued));
        assert_eq!(tx.push(batch(80), Wait::Forever).await, Ok(Pushed::Dropped));
        assert_eq!(
            r.counter_sum("sonde_buffer_dropped_items_total", &[("exporter", "e")]),
            1
        );
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_buffer_still_fits_alone() {
        let (tx, _rx) = channel("e", &cfg(10, WhenFull::Block), &Registry::default());
        assert_eq!(tx.push(batch(50), Wait::No).await, Ok(Pushed::Queued));
    }

    #[tokio::test]
    async fn a_waiting_producer_proceeds_when_space_returns() {
        let (tx, mut rx) = channel("e", &cfg(100, WhenFull::Block), &Registry::default());
        tx.push(batch(100), Wait::No).await.unwrap();
        let tx2 = tx.clone();
        let waiter = tokio::spawn(async move { tx2.push(batch(100), Wait::Forever).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(rx.recv().await);
        assert_eq!(waiter.await.unwrap(), Ok(Pushed::Queued));
    }
}
