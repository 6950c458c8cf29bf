//! `type = "filter"`: OTTL conditions, by context, whose matching items are dropped. The
//! conditions are parsed by the agent (`agent/src/processors/ottl/`): a condition that does not
//! parse is reported by `sonde validate` with its line:column inside the string.

use crate::problem::Problems;
use serde::{Deserialize, Serialize};

/// `type = "filter"`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterProcessorConfig {
    /// Spans matching any of these are dropped (OTTL `span` context).
    pub spans: Vec<String>,
    /// Span events matching any of these are dropped (OTTL `spanevent` context).
    pub span_events: Vec<String>,
    /// Log records matching any of these are dropped (OTTL `log` context).
    pub log_records: Vec<String>,
    /// Whole metrics matching any of these are dropped (OTTL `metric` context).
    pub metrics: Vec<String>,
    /// Data points matching any of these are dropped (OTTL `datapoint` context).
    pub datapoints: Vec<String>,
}

impl FilterProcessorConfig {
    /// Every condition list with its key: what the agent parses and reports against.
    pub fn lists(&self) -> [(&'static str, &[String]); 5] {
        [
            ("spans", &self.spans),
            ("span_events", &self.span_events),
            ("log_records", &self.log_records),
            ("metrics", &self.metrics),
            ("datapoints", &self.datapoints),
        ]
    }

    /// The signals it acts on: those it has conditions for.
    pub fn signals(&self) -> Vec<sonde_core::Signal> {
        use sonde_core::Signal;
        let mut out = Vec::new();
        if !self.spans.is_empty() || !self.span_events.is_empty() {
            out.push(Signal::Traces);
        }
        if !self.metrics.is_empty() || !self.datapoints.is_empty() {
            out.push(Signal::Metrics);
        }
        if !self.log_records.is_empty() {
            out.push(Signal::Logs);
        }
        out
    }

    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        if self.lists().iter().all(|(_, l)| l.is_empty()) {
            out.at(
                "",
                "has no condition: give `spans`, `span_events`, `log_records`, `metrics` or `datapoints`",
            );
        }
        out
    }
}
