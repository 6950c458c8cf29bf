//! The metrics every buffer reports, whatever its kind, registered here once: the same names,
//! labels and help texts for the memory buffer and the disk spool.
//!
//! - `sonde_buffer_bytes`, `sonde_buffer_items` (gauges): what the buffer holds now;
//! - `sonde_buffer_max_bytes` (gauge): its configured limit;
//! - `sonde_buffer_dropped_items_total`, `sonde_buffer_dropped_batches_total` (counters): what
//!   it dropped, by `reason`.
//!
//! The spool's own figures (segments, damage, commit latencies) are registered by the spool.
//! This module only registers; it never decides what a buffer holds or drops.

use sonde_core::metrics::{Counter, Gauge, Registry};

/// What one exporter's buffer holds now.
#[derive(Clone)]
pub struct BufferGauges {
    /// Encoded bytes (a disk buffer: from the cursor to the end of the log).
    pub bytes: Gauge,
    /// Items (a disk buffer: from the cursor to the end of the log).
    pub items: Gauge,
}

impl BufferGauges {
    /// Registers the gauges of exporter `exporter`'s buffer and publishes its limit,
    /// `max_bytes`.
    pub fn register(metrics: &Registry, exporter: &str, max_bytes: i64) -> Self {
        let labels = [("exporter", exporter)];
        metrics
            .gauge(
                "sonde_buffer_max_bytes",
                "Configured size limit of an exporter's buffer.",
                &labels,
            )
            .set(max_bytes);
        BufferGauges {
            bytes: metrics.gauge(
                "sonde_buffer_bytes",
                "Encoded bytes held by an exporter's buffer (disk: from the cursor to the end of the log).",
                &labels,
            ),
            items: metrics.gauge(
                "sonde_buffer_items",
                "Items held by an exporter's buffer (disk: from the cursor to the end of the log).",
                &labels,
            ),
        }
    }
}

/// What a buffer dropped for one reason: the items, and the batches they came in.
#[derive(Clone)]
pub struct Dropped {
    items: Counter,
    batches: Counter,
}

impl Dropped {
    /// Registers the dropped counters of exporter `exporter`'s buffer for `reason`: `buffer_full`
    /// (refused under drop_newest), `evicted` (discarded by drop_oldest), `disk_full` and `io`
    /// (the spool could not write), `too_large` (a batch bigger than a spool record may be),
    /// `exporter_failing` (shed by the router's bulkhead while the exporter is down).
    pub fn register(metrics: &Registry, exporter: &str, reason: &str) -> Self {
        let labels = [("exporter", exporter), ("reason", reason)];
        Dropped {
            items: metrics.counter(
                "sonde_buffer_dropped_items_total",
                "Items a buffer dropped, by reason (buffer_full: drop_newest refused them; evicted: drop_oldest discarded them; disk_full and io: the spool could not write; too_large; exporter_failing: shed while the exporter is down and others take the data).",
                &labels,
            ),
            batches: metrics.counter(
                "sonde_buffer_dropped_batches_total",
                "Batches a buffer dropped, by reason.",
                &labels,
            ),
        }
    }

    /// Counts `batches` batches holding `items` items as dropped.
    pub fn add(&self, batches: u64, items: u64) {
        self.batches.add(batches);
        self.items.add(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauges_publish_the_limit_and_the_counters_carry_the_reason() {
        let r = Registry::default();
        let g = BufferGauges::register(&r, "e", 1000);
        g.bytes.add(10);
        assert_eq!(
            r.gauge_value("sonde_buffer_max_bytes", &[("exporter", "e")]),
            Some(1000)
        );
        assert_eq!(
            r.gauge_value("sonde_buffer_bytes", &[("exporter", "e")]),
            Some(10)
        );
        Dropped::register(&r, "e", "evicted").add(2, 7);
        let filter = [("exporter", "e"), ("reason", "evicted")];
        assert_eq!(
            r.counter_sum("sonde_buffer_dropped_items_total", &filter),
            7
        );
        assert_eq!(
            r.counter_sum("sonde_buffer_dropped_batches_total", &filter),
            2
        );
    }
}
