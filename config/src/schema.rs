//! The configuration schema: plain data with defaults. Behaviour lives in the other crates; this
//! module only says what can be written and what it means when it is left out.
//!
//! Components (`sources.<name>`, `exporters.<name>`) are selected by their `type` key. Their
//! settings are split by [`crate::load`]: the keys every exporter shares ([`ExporterCommon`]) and
//! the keys of its type, each checked with `deny_unknown_fields`.

pub use crate::otlp::*;
pub use crate::parquet::*;
use crate::units::{ByteSize, Duration};
use serde::{Deserialize, Serialize};
use sonde_core::Signal;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::file::*;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub agent: AgentConfig,
    pub sources: BTreeMap<String, SourceConfig>,
    pub exporters: BTreeMap<String, ExporterConfig>,
}

/// `[agent]`: process-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Where the agent keeps state (disk buffers, file checkpoints).
    pub data_dir: PathBuf,
    /// How long a graceful shutdown may take to flush and drain before giving up.
    pub shutdown_timeout: Duration,
    pub log: LogConfig,
    /// The admin HTTP server (`/metrics`, `/health/live`, `/health/ready`, `/config`):
    /// an address, or `"off"`.
    pub admin: Listen,
    pub health: HealthConfig,
    pub telemetry: TelemetryConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/sonde"),
            shutdown_timeout: Duration::from_secs(10),
            log: LogConfig::default(),
            admin: Listen::At(SocketAddr::from(([127, 0, 0, 1], 13133))),
            health: HealthConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// A listening address that can be turned off: `"127.0.0.1:13133"` or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(SocketAddr),
}

impl Listen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::At(a) => Some(a),
        }
    }
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "off" | "" => Ok(Listen::Off),
            a => a.parse().map(Listen::At).map_err(|e| {
                format!("invalid address `{a}` ({e}); expected e.g. \"127.0.0.1:13133\" or \"off\"")
            }),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Listen::Off => s.serialize_str("off"),
            Listen::At(a) => s.collect_str(a),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Listen;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address such as \"127.0.0.1:13133\", \"off\" or false")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Listen, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Listen, E> {
                if v {
                    Err(E::custom(
                        "`true` is not an address; write one, e.g. \"127.0.0.1:13133\"",
                    ))
                } else {
                    Ok(Listen::Off)
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `[agent.telemetry]`: the agent's own traces (spans around exports and retries) and logs,
/// sent over OTLP/HTTP (protobuf) with `opentelemetry-otlp`. Off unless `endpoint` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver, e.g. `"http://127.0.0.1:4318"` (`/v1/traces` and
    /// `/v1/logs` are appended). Point it at another agent or a collector, not at this agent's
    /// own receiver, or its export spans would feed themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub traces: bool,
    pub logs: bool,
    /// Time limit of one export of the agent's own telemetry.
    pub timeout: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            traces: true,
            logs: true,
            timeout: Duration::from_secs(5),
        }
    }
}

/// `[agent.health]`: what `/health/ready` judges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// An exporter whose exports have failed continuously for longer than this makes the agent
    /// not ready.
    pub unhealthy_after: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            unhealthy_after: Duration::from_secs(60),
        }
    }
}

/// `[agent.log]`: the agent's own log output (stderr). `SONDE_LOG` overrides `level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// An `EnvFilter` directive such as `info` or `sonde=debug,warn`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

// ---------------------------------------------------------------------------------------------
// Sources

/// `[sources.<name>]`.
// Config is built once and read rarely: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    HostMetrics(HostMetricsConfig),
    InternalMetrics(InternalMetricsConfig),
    File(FileSourceConfig),
    Otlp(OtlpSourceConfig),
}

impl SourceConfig {
    /// Every `type` a source can have.
    pub const TYPES: &'static [&'static str] =
        &["host_metrics", "internal_metrics", "file", "otlp"];

    pub fn type_name(&self) -> &'static str {
        match self {
            SourceConfig::HostMetrics(_) => "host_metrics",
            SourceConfig::InternalMetrics(_) => "internal_metrics",
            SourceConfig::File(_) => "file",
            SourceConfig::Otlp(_) => "otlp",
        }
    }

    /// The signals this source can produce.
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            SourceConfig::HostMetrics(_) | SourceConfig::InternalMetrics(_) => &[Signal::Metrics],
            SourceConfig::File(_) => &[Signal::Logs],
            SourceConfig::Otlp(_) => &Signal::ALL,
        }
    }
}

/// `type = "internal_metrics"`: the agent's own counters and gauges (the numbers `/metrics`
/// serves) as OTLP metrics, so they can be exported like any other metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalMetricsConfig {
    pub interval: Duration,
}

impl Default for InternalMetricsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
        }
    }
}

/// `type = "host_metrics"`: CPU, memory, load, disks, filesystems, network, paging, processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostMetricsConfig {
    /// How often to scrape.
    pub interval: Duration,
    /// Which scrapers run.
    pub collectors: Vec<HostCollector>,
    /// Metric names and attributes: current semantic conventions, or the Collector's
    /// hostmetrics receiver defaults.
    pub conventions: Conventions,
    /// The host's root file system as seen by the agent (`/hostfs` in a container).
    pub root_path: PathBuf,
    pub filesystem: FilesystemFilter,
    pub disk: NameFilter,
    pub network: NameFilter,
    pub process: ProcessConfig,
}

impl Default for HostMetricsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            collectors: HostCollector::DEFAULT.to_vec(),
            conventions: Conventions::Semconv,
            root_path: PathBuf::from("/"),
            filesystem: FilesystemFilter::default(),
            disk: NameFilter {
                include: vec![],
                exclude: vec!["loop*".into(), "ram*".into()],
            },
            network: NameFilter::default(),
            process: ProcessConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostCollector {
    Cpu,
    Memory,
    Load,
    Disk,
    Filesystem,
    Network,
    Paging,
    Processes,
    Uptime,
    /// Per-process metrics for the top N processes (off by default).
    Process,
}

impl HostCollector {
    pub const DEFAULT: [HostCollector; 9] = [
        HostCollector::Cpu,
        HostCollector::Memory,
        HostCollector::Load,
        HostCollector::Disk,
        HostCollector::Filesystem,
        HostCollector::Network,
        HostCollector::Paging,
        HostCollector::Processes,
        HostCollector::Uptime,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conventions {
    /// Current OpenTelemetry semantic conventions (`cpu.mode`, `system.memory.state`, …).
    Semconv,
    /// The OpenTelemetry Collector hostmetrics receiver's default names (`state`, `device`, …).
    Collector,
}

/// Include/exclude glob patterns (`*` and `?`) on a name. Empty `include` means everything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NameFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

/// Which file systems are reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemFilter {
    pub include_mount_points: Vec<String>,
    pub exclude_mount_points: Vec<String>,
    pub include_fs_types: Vec<String>,
    pub exclude_fs_types: Vec<String>,
}

impl Default for FilesystemFilter {
    fn default() -> Self {
        Self {
            include_mount_points: vec![],
            exclude_mount_points: vec![
                "/proc*".into(),
                "/sys*".into(),
                "/dev*".into(),
                "/run/credentials*".into(),
                "/var/lib/docker/*".into(),
                "/var/lib/containerd/*".into(),
                "/snap/*".into(),
            ],
            include_fs_types: vec![],
            exclude_fs_types: [
                "autofs",
                "binfmt_misc",
                "bpf",
                "cgroup",
                "cgroup2",
                "configfs",
                "debugfs",
                "devpts",
                "devtmpfs",
                "fusectl",
                "hugetlbfs",
                "mqueue",
                "nsfs",
                "overlay",
                "proc",
                "procfs",
                "pstore",
                "rpc_pipefs",
                "securityfs",
                "selinuxfs",
                "squashfs",
                "sysfs",
                "tracefs",
                "nfsd",
                "fuse.lxcfs",
                "ramfs",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

/// Per-process metrics, limited to the top N processes so a scrape stays small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    pub top_n: usize,
    pub by: ProcessRank,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            top_n: 10,
            by: ProcessRank::Cpu,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessRank {
    Cpu,
    Memory,
}

/// `type = "otlp"`: receives traces, metrics and logs from apps over OTLP/gRPC and OTLP/HTTP and
/// passes the protobuf requests on as they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpSourceConfig {
    /// OTLP/gRPC listening address, or `"off"`. Loopback by default; a sidecar sets `0.0.0.0`.
    pub grpc: Listen,
    /// OTLP/HTTP listening address (`/v1/traces`, `/v1/metrics`, `/v1/logs`), or `"off"`.
    pub http: Listen,
    /// Largest request accepted, both as sent and after decompression (a zip bomb is refused
    /// when it passes this, not inflated).
    pub max_request_size: ByteSize,
    /// Requests handled at once (both listeners together); a request over the limit waits up to
    /// `block_timeout` for a slot, then is told to retry later.
    pub max_in_flight: usize,
    /// Open connections per listener; connections over the limit are closed at once.
    pub max_connections: usize,
    /// Time a client has to send a whole request (headers and body).
    pub request_timeout: Duration,
    /// How long a request may wait for buffer space (`when_full = "block"`) or for an in-flight
    /// slot before it is answered with a retryable throttling response.
    pub block_timeout: Duration,
    /// The retry hint in throttling responses (gRPC `RetryInfo`, HTTP `Retry-After`).
    pub retry_after: Duration,
    /// TLS on both listeners; absent means plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsConfig>,
    /// Bearer-token authentication on both listeners; absent means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<ServerAuthConfig>,
}

impl Default for OtlpSourceConfig {
    fn default() -> Self {
        Self {
            grpc: Listen::At(SocketAddr::from(([127, 0, 0, 1], 4317))),
            http: Listen::At(SocketAddr::from(([127, 0, 0, 1], 4318))),
            max_request_size: ByteSize::mib(16),
            max_in_flight: 32,
            max_connections: 256,
            request_timeout: Duration::from_secs(10),
            block_timeout: Duration::from_secs(2),
            retry_after: Duration::from_secs(1),
            tls: None,
            auth: None,
        }
    }
}

/// Server-side TLS (rustls): PEM files, read at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to: set it to require mTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

/// Authentication of incoming requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAuthConfig {
    /// A file holding the token clients must send as `Authorization: Bearer <token>`; read at
    /// start, surrounding whitespace ignored. The token itself never appears in the config.
    pub bearer_token_file: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// Exporters

/// `[exporters.<name>]`: the shared settings and the type-specific ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterConfig {
    pub common: ExporterCommon,
    pub kind: ExporterKind,
}

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

/// The type-specific settings of an exporter.
// Built once at load time: the size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterKind {
    Stdout(StdoutConfig),
    Otlp(OtlpExporterConfig),
    Parquet(ParquetConfig),
}

impl ExporterKind {
    pub const TYPES: &'static [&'static str] = &["stdout", "otlp", "parquet"];

    pub fn type_name(&self) -> &'static str {
        match self {
            ExporterKind::Stdout(_) => "stdout",
            ExporterKind::Otlp(_) => "otlp",
            ExporterKind::Parquet(_) => "parquet",
        }
    }

    /// Export calls in flight when `concurrency` is not set.
    pub fn default_concurrency(&self) -> usize {
        match self {
            ExporterKind::Stdout(_) => 1,
            ExporterKind::Otlp(_) => 4,
            ExporterKind::Parquet(_) => 1,
        }
    }

    /// The signals this exporter type can take.
    pub fn accepts(&self) -> &'static [Signal] {
        match self {
            ExporterKind::Stdout(_) => &Signal::ALL,
            ExporterKind::Otlp(_) => &Signal::ALL,
            ExporterKind::Parquet(_) => &Signal::ALL,
        }
    }
}

/// `type = "stdout"`: prints what it receives, for a person or a pipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutConfig {
    pub format: StdoutFormat,
}

impl Default for StdoutConfig {
    fn default() -> Self {
        Self {
            format: StdoutFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdoutFormat {
    /// One readable line per data point, span or log record.
    Text,
    /// One OTLP/JSON export request per line.
    Json,
}

/// Socket addresses are written as strings (`"127.0.0.1:4317"`).
pub type Addr = SocketAddr;
