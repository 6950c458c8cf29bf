//! `type = "internal_metrics"`: how often the agent's own counters and gauges are turned into
//! OTLP metrics. Plain data with a default; the source lives in
//! `agent/src/sources/internal_metrics.rs`.

use crate::problem::Problems;
use crate::sources::periodic::check_interval;
use crate::units::Duration;
use serde::{Deserialize, Serialize};

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

impl InternalMetricsConfig {
    /// What is wrong with these settings, each with its key below the source.
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        check_interval(self.interval, &mut out);
        out
    }
}
