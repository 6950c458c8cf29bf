//! `type = "stdout"` exporter settings: the output format. Plain data with a default; the exporter
//! lives in `sonde-exporters`' `stdout` module.

use serde::{Deserialize, Serialize};

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
