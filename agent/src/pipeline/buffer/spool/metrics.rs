//! The spool's own metrics, registered once per spool when it opens: drops by reason (through
//! the buffer-wide [`Dropped`]), damage skipped, torn tails cut, segment files reused, write and
//! cursor failures, group-commit and append latencies, the segment count, and where handed-out
//! records came from.
//!
//! What a buffer holds (`sonde_buffer_bytes`, `sonde_buffer_items`) is the buffer-wide
//! [`BufferGauges`], kept in the spool's state. This module counts; it never decides.

use super::write_error::WriteError;
use crate::pipeline::buffer::metrics::Dropped;
use sonde_core::metrics::{Counter, Gauge, Histogram, Registry};
use std::collections::BTreeMap;

/// Why a spool drops a batch (the `reason` label of the buffer's dropped counters).
const DROP_REASONS: [&str; 5] = ["buffer_full", "evicted", "disk_full", "io", "too_large"];
/// Why a stretch of a segment is skipped as damaged.
const DAMAGE_REASONS: [&str; 5] = ["bad_crc", "bad_frame", "truncated", "undecodable", "io"];
/// Why an append fails ([`WriteError::reason`]).
const WRITE_ERROR_REASONS: [&str; 2] = ["disk_full", "io"];

/// Bucket bounds (seconds) for the spool's commit and append latencies: 50 µs to 5 s.
const SPOOL_SECONDS_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    5.0,
];
/// Bucket bounds for the records of one group commit.
const COMMIT_RECORDS_BUCKETS: &[f64] =
    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

pub(super) struct Counters {
    dropped: BTreeMap<&'static str, Dropped>,
    damaged_records: BTreeMap<&'static str, Counter>,
    damaged_bytes: Counter,
    pub(super) torn_tail_bytes: Counter,
    pub(super) recycled: Counter,
    write_errors: BTreeMap<&'static str, Counter>,
    pub(super) cursor_errors: Counter,
    /// One group commit on the writer thread: its write and its fsync.
    pub(super) commit_seconds: Histogram,
    pub(super) commit_records: Histogram,
    /// A producer's wait from handing its record to the writer to its acknowledgement.
    pub(super) append_seconds: Histogram,
}

/// One metric per reason, keyed by the reason.
fn by_reason<T>(
    reasons: &[&'static str],
    make: impl Fn(&'static str) -> T,
) -> BTreeMap<&'static str, T> {
    reasons
        .iter()
        .map(|reason| (*reason, make(reason)))
        .collect()
}

impl Counters {
    pub(super) fn new(r: &Registry, name: &str) -> Self {
        let c = |n, h| r.counter(n, h, &[("exporter", name)]);
        let seconds = |n, h| r.histogram(n, h, &[("exporter", name)], SPOOL_SECONDS_BUCKETS);
        let per_reason = |reasons: &[&'static str], n, h| {
            by_reason(reasons, |reason| {
                r.counter(n, h, &[("exporter", name), ("reason", reason)])
            })
        };
        Counters {
            dropped: by_reason(&DROP_REASONS, |reason| Dropped::register(r, name, reason)),
            damaged_records: per_reason(
                &DAMAGE_REASONS,
                "sonde_spool_damaged_records_total",
                "Damaged stretches of a spool skipped by the reader (each at least one record lost), by reason.",
            ),
            damaged_bytes: c(
                "sonde_spool_damaged_bytes_total",
                "Bytes of damaged spool data skipped by the reader.",
            ),
            torn_tail_bytes: c(
                "sonde_spool_torn_tail_bytes_total",
                "Bytes of a torn last record cut from a spool at start-up.",
            ),
            recycled: c(
                "sonde_spool_segments_reused_total",
                "Segments started in an exported segment's file instead of a new one (overwriting written blocks makes each fsync cheaper).",
            ),
            write_errors: per_reason(
                &WRITE_ERROR_REASONS,
                "sonde_spool_write_errors_total",
                "Appends to a spool that failed (the producer's when_full policy applied), by reason.",
            ),
            cursor_errors: c(
                "sonde_spool_cursor_errors_total",
                "Failures to persist a spool's cursor (retried every second).",
            ),
            commit_seconds: seconds(
                "sonde_spool_commit_seconds",
                "Duration of one group commit on the spool's writer thread: writing the waiting records and, per fsync, making them durable.",
            ),
            commit_records: r.histogram(
                "sonde_spool_commit_records",
                "Records in one group commit (how many producers shared its write and fsync).",
                &[("exporter", name)],
                COMMIT_RECORDS_BUCKETS,
            ),
            append_seconds: seconds(
                "sonde_spool_append_seconds",
                "How long an append waited for the spool's writer: from handing the record over to its acknowledgement (durable per fsync).",
            ),
        }
    }

    /// Counts `batches` batches of `items` items dropped for `reason`.
    pub(super) fn drop(&self, reason: &str, batches: u64, items: u64) {
        if let Some(d) = self.dropped.get(reason) {
            d.add(batches, items);
        }
    }

    /// Counts a damaged stretch of `bytes` skipped for `reason`.
    pub(super) fn damaged(&self, reason: &str, bytes: u64) {
        if let Some(c) = self.damaged_records.get(reason) {
            c.inc();
        }
        self.damaged_bytes.add(bytes);
    }

    /// The counter of appends failed with `e`.
    pub(super) fn write_errors(&self, e: WriteError) -> Counter {
        self.write_errors
            .get(e.reason())
            .cloned()
            .unwrap_or_default()
    }
}

/// The spool's gauges besides the buffer-wide ones.
pub(super) struct Gauges {
    /// Segment files on disk.
    pub(super) segments: Gauge,
}

impl Gauges {
    pub(super) fn new(r: &Registry, name: &str) -> Self {
        Gauges {
            segments: r.gauge(
                "sonde_spool_segments",
                "Segment files of an exporter's disk buffer.",
                &[("exporter", name)],
            ),
        }
    }
}

/// The counter of records handed to the exporter `from` memory (just written and still held) or
/// disk (read back).
pub(super) fn read_records(r: &Registry, name: &str, from: &str) -> Counter {
    r.counter(
        "sonde_spool_read_records_total",
        "Records a disk buffer handed to its exporter, by where they came from (memory: just written and still held, disk: read back).",
        &[("exporter", name), ("from", from)],
    )
}
