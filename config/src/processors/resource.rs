//! `type = "resource"`: resource attributes set, inserted, deleted and detected. Plain data with
//! defaults; the processor lives in `agent/src/processors/resource.rs`.

use crate::problem::Problems;
use crate::units::Duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A detector of resource attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`.
    Env,
    /// `host.name`, `host.id`, `host.arch`.
    Host,
    /// `os.type`, `os.description`.
    Os,
    /// The downward-API variables of a Kubernetes pod (`K8S_POD_NAME`, …).
    K8s,
    /// AWS EC2 instance metadata (IMDSv2).
    Ec2,
    /// Google Compute Engine metadata.
    Gcp,
    /// Azure instance metadata.
    Azure,
}

/// An attribute value as TOML writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
}

/// `type = "resource"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceProcessorConfig {
    /// Detectors, in order of precedence (the first to find a key wins).
    pub detectors: Vec<Detector>,
    /// Attributes set on every resource, replacing the data's own (upsert).
    pub set: BTreeMap<String, AttributeValue>,
    /// Attributes added only to resources that do not have them.
    pub insert: BTreeMap<String, AttributeValue>,
    /// Attribute keys removed.
    pub delete: Vec<String>,
    /// The host's root for the `host` and `os` detectors (`/hostfs` in a container).
    pub root_path: PathBuf,
    /// Time limit of one request to a cloud metadata service.
    pub detect_timeout: Duration,
    /// The metadata services' base URL (default `http://169.254.169.254`): for a proxy, or an
    /// emulator in tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
}

impl Default for ResourceProcessorConfig {
    fn default() -> Self {
        ResourceProcessorConfig {
            detectors: vec![],
            set: BTreeMap::new(),
            insert: BTreeMap::new(),
            delete: vec![],
            root_path: PathBuf::from("/"),
            detect_timeout: Duration::from_secs(2),
            metadata_url: None,
        }
    }
}

impl ResourceProcessorConfig {
    /// What is wrong with these settings, each with its key below the processor.
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        if self.detectors.is_empty()
            && self.set.is_empty()
            && self.insert.is_empty()
            && self.delete.is_empty()
        {
            out.at(
                "",
                "does nothing: give `detectors`, `set`, `insert` or `delete`",
            );
        }
        for (i, d) in self.detectors.iter().enumerate() {
            if self.detectors[..i].contains(d) {
                out.at_path(
                    crate::problem::KeyPath::dotted("detectors").index(i),
                    "listed twice",
                );
            }
        }
        for k in self
            .set
            .keys()
            .chain(self.insert.keys())
            .chain(&self.delete)
        {
            if k.is_empty() {
                out.at("", "an attribute key is empty");
            }
        }
        if self.detect_timeout.get().is_zero() {
            out.at("detect_timeout", "must be more than 0");
        }
        if let Some(u) = &self.metadata_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                out.at("metadata_url", "must be an http:// or https:// URL");
            }
        }
        out
    }
}
