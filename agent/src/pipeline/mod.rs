//! The pipeline between sources and exporters: the [`router`] fans each batch out to the buffers
//! of the exporters that select it; each exporter's [`buffer`] bounds what waits; its
//! [`worker`] merges batches and exports them with a timeout and retries. A buffer is in memory
//! or on disk: the [`buffer::spool`], a segmented log that survives restarts and crashes.
//!
//! Every hand-off is bounded: a buffer holds at most `buffer.max_size` encoded bytes, and a
//! batch's bytes stay counted against that limit until the export of that batch has finished.

pub mod buffer;
pub mod router;
pub mod worker;
