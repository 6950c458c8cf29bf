//! `type = "sample"`: consistent probability sampling of traces and logs. Plain data with
//! defaults and checks; the processor lives in `agent/src/processors/sample.rs`.

use crate::problem::Problems;
use serde::{Deserialize, Serialize};

/// How this sampler combines with an earlier one (OpenTelemetry probability sampling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleMode {
    /// Every span ends at the configured probability, unless an earlier stage kept it at a
    /// lower one.
    #[default]
    Equalizing,
    /// The probabilities multiply.
    Proportional,
}

/// `type = "sample"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleProcessorConfig {
    /// The share kept, 0 to 100.
    pub percentage: f64,
    pub mode: SampleMode,
    /// Hex digits of the threshold written into `tracestate` (`ot=th:…`), 1 to 14.
    pub precision: u8,
}

impl Default for SampleProcessorConfig {
    fn default() -> Self {
        SampleProcessorConfig {
            percentage: 100.0,
            mode: SampleMode::Equalizing,
            precision: 4,
        }
    }
}

impl SampleProcessorConfig {
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        if !(0.0..=100.0).contains(&self.percentage) || self.percentage.is_nan() {
            out.at("percentage", "must be between 0 and 100");
        }
        if !(1..=14).contains(&self.precision) {
            out.at("precision", "must be between 1 and 14");
        }
        out
    }
}
