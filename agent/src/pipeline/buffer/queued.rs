//! A batch handed to the export worker ([`Queued`]), holding its share of its buffer's space
//! until the worker is finished with it.
//!
//! The share is a [`MemorySpace`] (byte permits of the memory buffer, and the gauges they
//! count in) or a spool [`Ticket`]. Invariant: the space returns only when the batch is done
//! with — acknowledged, or dropped after its export ended — so a buffer's limit bounds all that
//! its exporter holds, not just its queue. A batch dropped without [`Queued::ack`] was cut off
//! by shutdown: its source's [`sonde_core::Ack`] hears so, and a disk buffer keeps it.

use super::metrics::BufferGauges;
use super::spool::Ticket;
use sonde_core::Batch;
use tokio::sync::OwnedSemaphorePermit;

/// A batch in the buffer, holding its share of the buffer's space until finished with.
pub struct Queued {
    pub batch: Batch,
    /// `None` once acked.
    hold: Option<Hold>,
}

enum Hold {
    /// Held for its `Drop`, which gives the space back.
    Memory {
        _space: MemorySpace,
    },
    Disk(Ticket),
}

impl Queued {
    /// `batch`, holding memory-buffer space.
    pub(super) fn in_memory(batch: Batch, space: MemorySpace) -> Self {
        Queued {
            batch,
            hold: Some(Hold::Memory { _space: space }),
        }
    }

    /// `batch`, read from the spool under `ticket`.
    pub(super) fn on_disk(batch: Batch, ticket: Ticket) -> Self {
        Queued {
            batch,
            hold: Some(Hold::Disk(ticket)),
        }
    }

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

impl Drop for Queued {
    fn drop(&mut self) {
        // Dropped without `ack`: interrupted (shutdown), so the source must not count it done.
        if let Some(a) = self.batch.ack.take() {
            a.abandon();
        }
    }
}

/// A memory batch's space: its permits and its share of the gauges, given back on drop.
pub(super) struct MemorySpace {
    _permit: OwnedSemaphorePermit,
    gauges: BufferGauges,
    bytes: i64,
    items: i64,
}

impl MemorySpace {
    /// Counts `bytes` and `items` in `gauges` until dropped, when `permit` returns too.
    pub(super) fn take(
        permit: OwnedSemaphorePermit,
        gauges: BufferGauges,
        bytes: i64,
        items: i64,
    ) -> Self {
        gauges.bytes.add(bytes);
        gauges.items.add(items);
        MemorySpace {
            _permit: permit,
            gauges,
            bytes,
            items,
        }
    }
}

impl Drop for MemorySpace {
    fn drop(&mut self) {
        self.gauges.bytes.add(-self.bytes);
        self.gauges.items.add(-self.items);
    }
}
