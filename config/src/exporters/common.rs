//! The settings every exporter has, whatever its type ([`ExporterCommon`]): which sources and
//! signals it takes, the buffer in front of it (memory or disk, its bound and what happens when
//! it is full), how batches are merged, the time limit, retries and concurrency of export calls.
//! Also the checks these types cannot express.
//!
//! Plain data and checks only; the buffers, batcher and export workers live in the agent's
//! pipeline (`agent/src/pipeline/`).

use crate::problem::Problems;
use crate::units::{ByteSize, Duration};
use serde::{Deserialize, Serialize};
use sonde_core::Signal;

/// The settings every exporter has, whatever its type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExporterCommon {
    /// Names of the sources this exporter takes data from; absent means every source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// Which signals it takes; absent means every signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<Signal>>,
    pub buffer: BufferConfig,
    pub batch: BatchConfig,
    /// Time limit for one export call.
    pub timeout: Duration,
    pub retry: RetryConfig,
    /// Export calls in flight at once. Absent: the exporter type's default (1 keeps order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
}

impl ExporterCommon {
    /// The keys of [`ExporterCommon`]; every other key of an exporter belongs to its type.
    pub const KEYS: &'static [&'static str] = &[
        "inputs",
        "signals",
        "buffer",
        "batch",
        "timeout",
        "retry",
        "concurrency",
    ];

    /// What is wrong with these settings on their own, each with its key below the exporter.
    /// (`inputs` and `signals` need the sources too: they are checked with the whole file.)
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        self.check_batch(&mut out);
        self.check_buffer(&mut out);
        self.check_calls(&mut out);
        out
    }

    fn check_batch(&self, out: &mut Problems) {
        if self.batch.max_items == 0 {
            out.at("batch.max_items", "must be at least 1");
        }
        if self.batch.max_bytes.get() == 0 {
            out.at("batch.max_bytes", "must be at least 1 byte");
        }
    }

    fn check_buffer(&self, out: &mut Problems) {
        let buffer = &self.buffer;
        if buffer.max_size < self.batch.max_bytes {
            out.at(
                "buffer.max_size",
                format!(
                    "the buffer ({}) must hold at least one full batch (batch.max_bytes = {})",
                    buffer.max_size, self.batch.max_bytes
                ),
            );
        }
        if buffer.when_full == WhenFull::DropOldest && buffer.kind != BufferKind::Disk {
            out.at(
                "buffer.when_full",
                "`drop_oldest` needs `type = \"disk\"`: a memory buffer can `block` or `drop_newest`",
            );
        }
        if buffer.kind == BufferKind::Disk && buffer.max_size < ByteSize::kib(64) {
            out.at("buffer.max_size", "a disk buffer needs at least 64KiB");
        }
    }

    /// Concurrency, time limit and backoff of the export calls.
    fn check_calls(&self, out: &mut Problems) {
        if self.concurrency == Some(0) {
            out.at("concurrency", "must be at least 1");
        }
        if self.timeout.get().is_zero() {
            out.at("timeout", "must be greater than zero");
        }
        let retry = &self.retry;
        if retry.initial_backoff.get().is_zero() || retry.initial_backoff > retry.max_backoff {
            out.at(
                "retry.initial_backoff",
                "must be greater than zero and at most `max_backoff`",
            );
        }
    }
}

impl Default for ExporterCommon {
    fn default() -> Self {
        Self {
            inputs: None,
            signals: None,
            buffer: BufferConfig::default(),
            batch: BatchConfig::default(),
            timeout: Duration::from_secs(10),
            retry: RetryConfig::default(),
            concurrency: None,
        }
    }
}

/// The per-exporter buffer between the router and the export worker.
///
/// `max_size` defaults by type: 64 MiB in memory, 2 GiB on disk. Deserialization goes through
/// [`BufferConfigRaw`] so that a disk buffer written without `max_size` gets the disk default,
/// and `print-config` shows the size that applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "BufferConfigRaw")]
pub struct BufferConfig {
    #[serde(rename = "type")]
    pub kind: BufferKind,
    /// Upper bound on the encoded bytes held (on disk: the bytes of the records not yet
    /// exported; the files may pass it by at most one segment).
    pub max_size: ByteSize,
    pub when_full: WhenFull,
    /// When a disk buffer's appends are flushed to stable storage (ignored in memory).
    pub fsync: Fsync,
    /// How a disk buffer stores each batch's payload (ignored in memory).
    pub compression: SpoolCompression,
}

impl BufferConfig {
    /// The default `max_size` of a buffer of type `kind`.
    pub fn default_max_size(kind: BufferKind) -> ByteSize {
        match kind {
            BufferKind::Memory => ByteSize::mib(64),
            BufferKind::Disk => ByteSize::gib(2),
        }
    }
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            kind: BufferKind::Memory,
            max_size: BufferConfig::default_max_size(BufferKind::Memory),
            when_full: WhenFull::Block,
            fsync: Fsync::Batch,
            compression: SpoolCompression::None,
        }
    }
}

/// `buffer` as written in the file: `max_size` may be left out and then depends on `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfigRaw {
    #[serde(rename = "type")]
    pub kind: BufferKind,
    pub max_size: Option<ByteSize>,
    pub when_full: WhenFull,
    pub fsync: Fsync,
    pub compression: SpoolCompression,
}

impl Default for BufferConfigRaw {
    fn default() -> Self {
        let d = BufferConfig::default();
        Self {
            kind: d.kind,
            max_size: None,
            when_full: d.when_full,
            fsync: d.fsync,
            compression: d.compression,
        }
    }
}

impl From<BufferConfigRaw> for BufferConfig {
    fn from(raw: BufferConfigRaw) -> Self {
        Self {
            kind: raw.kind,
            max_size: raw
                .max_size
                .unwrap_or_else(|| BufferConfig::default_max_size(raw.kind)),
            when_full: raw.when_full,
            fsync: raw.fsync,
            compression: raw.compression,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// Batches wait in memory; lost if the process dies.
    Memory,
    /// Batches wait in a segmented log under `agent.data_dir/buffers/<exporter>/` and survive
    /// restarts and crashes.
    Disk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Make the producer wait: the pressure goes upstream.
    Block,
    /// Refuse the new batch and count it as dropped.
    DropNewest,
    /// Discard the oldest unexported data (a segment at a time) to make room; counted. Disk only.
    DropOldest,
}

/// When a disk buffer makes its appends durable before acknowledging the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// Group commit: append every waiting batch, one fsync, then acknowledge them all.
    Batch,
    /// One fsync per batch.
    Always,
    /// Written to the operating system only: survives a crash of the agent, not of the machine.
    Never,
}

/// How a disk buffer stores the payload of each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoolCompression {
    /// Stored as received: the least CPU per batch (every batch passes through the spool, not
    /// only during an outage).
    None,
    /// zstd at a fast level (about 1 GB/s per core; OTLP shrinks 5–6×): less to write and
    /// fsync, and `max_size` holds that much more telemetry, for about 0.4 µs of CPU per
    /// 430-byte span. A payload that does not shrink is stored as is.
    Zstd,
}

/// How batches are merged before an export call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Flush once this many items (spans, data points, log records) are waiting.
    pub max_items: usize,
    /// Flush before the merged request would pass this many encoded bytes.
    pub max_bytes: ByteSize,
    /// Flush a non-empty batch after it has waited this long.
    pub max_age: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_items: 8192,
            max_bytes: ByteSize::mib(4),
            max_age: Duration::from_millis(200),
        }
    }
}

/// Retries of failed exports: exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Give up on a batch after retrying this long (counted as dropped). `"0s"` or
    /// `"unlimited"`: never give up (for a disk buffer; with a memory buffer a dead destination
    /// then holds the buffer full and `when_full` applies upstream).
    #[serde(deserialize_with = "crate::units::duration_or_unlimited")]
    pub max_elapsed: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_every_shared_setting_and_nothing_else() {
        let every_key_set = ExporterCommon {
            inputs: Some(vec![]),
            signals: Some(vec![]),
            concurrency: Some(1),
            ..ExporterCommon::default()
        };
        let toml::Value::Table(t) = toml::Value::try_from(&every_key_set).unwrap() else {
            panic!("ExporterCommon is not a table");
        };
        let mut written: Vec<&str> = t.keys().map(String::as_str).collect();
        let mut keys = ExporterCommon::KEYS.to_vec();
        written.sort_unstable();
        keys.sort_unstable();
        assert_eq!(written, keys);
    }

    #[test]
    fn a_buffer_must_hold_a_batch_and_drop_oldest_needs_a_disk() {
        let mut c = ExporterCommon::default();
        c.batch.max_bytes = ByteSize::mib(128);
        c.buffer.when_full = WhenFull::DropOldest;
        let found: Vec<String> = c.problems().iter().map(|p| p.path.to_string()).collect();
        assert_eq!(found, ["buffer.max_size", "buffer.when_full"]);
        c.buffer = BufferConfig::from(BufferConfigRaw {
            kind: BufferKind::Disk,
            ..BufferConfigRaw::default()
        });
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }
}
