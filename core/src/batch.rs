//! The pipeline's currency: an encoded OTLP export request with its signal and item count.

use crate::ack::Ack;
use crate::wire;
use crate::Signal;
use bytes::Bytes;
use std::sync::Arc;

/// An encoded `Export{Trace,Metrics,Logs}ServiceRequest` on its way through the agent.
///
/// The payload is the protobuf encoding exactly as it will be sent; two batches of one signal
/// merge by concatenating their payloads (protobuf's rule for repeated fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub signal: Signal,
    pub payload: Bytes,
    /// Spans, metric data points or log records in `payload`.
    pub items: u64,
    /// The source that produced it (used by the router to honour `inputs`).
    pub source: Arc<str>,
    /// Told when every buffer that took this batch has finished with it (see [`Ack`]); `None`
    /// for sources that do not track delivery.
    pub ack: Option<Ack>,
}

impl Batch {
    /// Validates `payload` with the wire walker and wraps it. Nothing malformed becomes a Batch.
    pub fn new(signal: Signal, payload: Bytes, source: Arc<str>) -> Result<Batch, wire::WireError> {
        let items = wire::validate(signal, &payload)?;
        Ok(Batch {
            signal,
            payload,
            items,
            source,
            ack: None,
        })
    }

    /// Wraps a payload the agent encoded itself (already known well-formed) with its count.
    pub fn from_trusted(signal: Signal, payload: Bytes, items: u64, source: Arc<str>) -> Batch {
        Batch {
            signal,
            payload,
            items,
            source,
            ack: None,
        }
    }

    /// Attaches an acknowledgement token (shared by every clone of the batch).
    pub fn with_ack(mut self, ack: Ack) -> Batch {
        self.ack = Some(ack);
        self
    }

    pub fn len_bytes(&self) -> usize {
        self.payload.len()
    }
}
