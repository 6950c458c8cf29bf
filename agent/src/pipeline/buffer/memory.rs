//! The memory buffer: a bounded queue whose space is a semaphore of bytes (`buffer.max_size`).
//!
//! A batch takes its bytes' worth of permits when pushed and gives them back only when it is
//! dropped after its export finished ([`MemorySpace`]), so the bound covers everything the
//! exporter holds, not just the queue. A batch larger than the whole buffer takes all of it
//! rather than waiting forever. `when_full = "block"` waits as the producer's [`Wait`] allows;
//! `drop_newest` refuses at once and counts (`reason="buffer_full"`).
//!
//! Nothing here survives a restart, and nothing here ever blocks a thread: waiting is on the
//! semaphore, under the producer's deadline.

use super::metrics::{BufferGauges, Dropped};
use super::push::{PushError, Pushed, Wait};
use super::queued::{MemorySpace, Queued};
use sonde_config::{BufferConfig, WhenFull};
use sonde_core::metrics::Registry;
use sonde_core::Batch;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The producers' side of a memory buffer. Cloning is cheap; when every clone is gone the
/// queue closes (after handing out what it holds).
#[derive(Clone)]
pub(super) struct MemorySender {
    tx: mpsc::Sender<Queued>,
    space: Arc<Semaphore>,
    max_bytes: u32,
    when_full: WhenFull,
    gauges: BufferGauges,
    dropped: Dropped,
}

impl MemorySender {
    /// The memory buffer of exporter `name` (whatever `cfg.kind` says), and the queue the export
    /// worker reads.
    pub(super) fn new(
        name: &str,
        cfg: &BufferConfig,
        metrics: &Registry,
    ) -> (MemorySender, mpsc::Receiver<Queued>) {
        let max_bytes = u32::try_from(cfg.max_size.get()).unwrap_or(u32::MAX).max(1);
        // The byte limit is the real bound; the count bound only keeps a flood of tiny batches
        // from costing more in per-entry overhead than in payload.
        let (tx, rx) = mpsc::channel(65_536);
        let sender = MemorySender {
            tx,
            space: Arc::new(Semaphore::new(max_bytes as usize)),
            max_bytes,
            when_full: cfg.when_full,
            gauges: BufferGauges::register(metrics, name, i64::from(max_bytes)),
            dropped: Dropped::register(metrics, name, "buffer_full"),
        };
        (sender, rx)
    }

    /// Queues `batch` once its space is free, as `when_full` and `wait` allow.
    pub(super) async fn push(&self, batch: Batch, wait: Wait) -> Result<Pushed, PushError> {
        // A batch larger than the whole buffer takes all of it rather than waiting forever.
        let need = u32::try_from(batch.payload.len())
            .unwrap_or(u32::MAX)
            .clamp(1, self.max_bytes);
        let wait = match self.when_full {
            WhenFull::Block => wait,
            // drop_oldest is refused for memory by config validation; it degrades to drop_newest.
            WhenFull::DropNewest | WhenFull::DropOldest => Wait::No,
        };
        let permit = match self.acquire(need, wait).await {
            Ok(p) => p,
            Err(PushError::Full) if self.when_full != WhenFull::Block => {
                self.dropped.add(1, batch.items);
                return Ok(Pushed::Dropped);
            }
            Err(e) => return Err(e),
        };
        let bytes = batch.payload.len() as i64;
        let items = batch.items as i64;
        let space = MemorySpace::take(permit, self.gauges.clone(), bytes, items);
        let queued = Queued::in_memory(batch, space);
        self.tx.send(queued).await.map_err(|_| PushError::Closed)?;
        Ok(Pushed::Queued)
    }

    /// `need` bytes of space, waiting as `wait` allows.
    async fn acquire(&self, need: u32, wait: Wait) -> Result<OwnedSemaphorePermit, PushError> {
        let space = self.space.clone();
        match wait {
            Wait::No => space.try_acquire_many_owned(need).map_err(|e| match e {
                TryAcquireError::Closed => PushError::Closed,
                TryAcquireError::NoPermits => PushError::Full,
            }),
            Wait::Until(deadline) => {
                match tokio::time::timeout_at(deadline, space.acquire_many_owned(need)).await {
                    Ok(r) => r.map_err(|_| PushError::Closed),
                    Err(_) => Err(PushError::Full),
                }
            }
            Wait::Forever => space
                .acquire_many_owned(need)
                .await
                .map_err(|_| PushError::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::buffer::{channel, PushError, Pushed, Wait};
    use sonde_config::{BufferConfig, BufferKind, ByteSize, WhenFull};
    use sonde_core::metrics::Registry;
    use sonde_core::{Batch, Signal};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::Instant;

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
