//! `[agent]`: the process-wide settings — where state is kept, how long shutdown may take, the
//! agent's own log output (`[agent.log]`), the admin server's address, what readiness judges
//! (`[agent.health]`) and the agent's own traces and logs (`[agent.telemetry]`).
//!
//! Plain data with defaults; the lifecycle, the admin server and the self-telemetry that read it
//! live in the agent.

use crate::listen::Listen;
use crate::units::Duration;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

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
