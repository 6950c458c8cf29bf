//! The whole file's shape: [`Config`] (`[agent]`, `[sources.<name>]`, `[processors.<name>]`,
//! `[exporters.<name>]`) and the enums that select a component's settings by its `type` key. Each component's settings
//! are in their own file (`agent.rs`, `sources/<type>.rs`, `exporters/<type>.rs`); this module
//! only says which types exist, what each produces or takes, and hands each its own checks.
//!
//! Adding a component type: its settings file in its kind's folder, a variant here (with its
//! `type` name, signals and checks), an arm in [`crate::load`]'s per-type deserialization and one
//! in `print.rs`.

use crate::agent::AgentConfig;
use crate::exporters::common::ExporterCommon;
use crate::exporters::otlp::OtlpExporterConfig;
use crate::exporters::parquet::ParquetConfig;
use crate::exporters::stdout::StdoutConfig;
use crate::problem::Problems;
use crate::processors::filter::FilterProcessorConfig;
use crate::processors::redact::RedactProcessorConfig;
use crate::processors::resource::ResourceProcessorConfig;
use crate::processors::sample::SampleProcessorConfig;
use crate::sources::file::FileSourceConfig;
use crate::sources::host_metrics::HostMetricsConfig;
use crate::sources::internal_metrics::InternalMetricsConfig;
use crate::sources::journald::JournaldSourceConfig;
use crate::sources::otlp::OtlpSourceConfig;
use crate::sources::syslog::SyslogSourceConfig;
use sonde_core::Signal;
use std::collections::BTreeMap;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub agent: AgentConfig,
    pub sources: BTreeMap<String, SourceConfig>,
    pub processors: BTreeMap<String, ProcessorConfig>,
    pub exporters: BTreeMap<String, ExporterConfig>,
}

impl Config {
    /// The signals component `name` (a source or a processor) can produce: a source's own, a
    /// processor's inputs' (a processor passes on what it does not drop). Empty for an unknown
    /// name; a cycle (refused by validation) ends the walk.
    pub fn produces(&self, name: &str) -> std::collections::BTreeSet<Signal> {
        let mut out = std::collections::BTreeSet::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![name];
        while let Some(n) = todo.pop() {
            if !seen.insert(n) {
                continue;
            }
            if let Some(s) = self.sources.get(n) {
                out.extend(s.signals().iter().copied());
            } else if let Some(p) = self.processors.get(n) {
                todo.extend(p.inputs.iter().map(String::as_str));
            }
        }
        out
    }
}

/// `[processors.<name>]`: what it takes from, and its type's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// Sources and processors it takes data from.
    pub inputs: Vec<String>,
    pub kind: ProcessorKind,
}

/// The type-specific settings of a processor.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessorKind {
    Resource(ResourceProcessorConfig),
    Filter(FilterProcessorConfig),
    Redact(RedactProcessorConfig),
    Sample(SampleProcessorConfig),
}

impl ProcessorKind {
    pub const TYPES: &'static [&'static str] = &["resource", "filter", "redact", "sample"];

    pub fn type_name(&self) -> &'static str {
        match self {
            ProcessorKind::Resource(_) => "resource",
            ProcessorKind::Filter(_) => "filter",
            ProcessorKind::Redact(_) => "redact",
            ProcessorKind::Sample(_) => "sample",
        }
    }

    /// The signals the processor acts on; the others pass through it unchanged.
    pub fn signals(&self) -> Vec<Signal> {
        match self {
            ProcessorKind::Resource(_) | ProcessorKind::Redact(_) => Signal::ALL.to_vec(),
            ProcessorKind::Filter(c) => c.signals(),
            ProcessorKind::Sample(_) => vec![Signal::Traces, Signal::Logs],
        }
    }

    /// What is wrong with the type-specific settings, each with its key path below the
    /// processor.
    pub fn problems(&self) -> Problems {
        match self {
            ProcessorKind::Resource(c) => c.problems(),
            ProcessorKind::Filter(c) => c.problems(),
            ProcessorKind::Redact(c) => c.problems(),
            ProcessorKind::Sample(c) => c.problems(),
        }
    }
}

/// `[sources.<name>]`.
// Config is built once and read rarely: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    HostMetrics(HostMetricsConfig),
    InternalMetrics(InternalMetricsConfig),
    File(FileSourceConfig),
    Otlp(OtlpSourceConfig),
    Journald(JournaldSourceConfig),
    Syslog(SyslogSourceConfig),
}

impl SourceConfig {
    /// Every `type` a source can have.
    pub const TYPES: &'static [&'static str] = &[
        "host_metrics",
        "internal_metrics",
        "file",
        "otlp",
        "journald",
        "syslog",
    ];

    pub fn type_name(&self) -> &'static str {
        match self {
            SourceConfig::HostMetrics(_) => "host_metrics",
            SourceConfig::InternalMetrics(_) => "internal_metrics",
            SourceConfig::File(_) => "file",
            SourceConfig::Otlp(_) => "otlp",
            SourceConfig::Journald(_) => "journald",
            SourceConfig::Syslog(_) => "syslog",
        }
    }

    /// The signals this source can produce.
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            SourceConfig::HostMetrics(_) | SourceConfig::InternalMetrics(_) => &[Signal::Metrics],
            SourceConfig::File(_) | SourceConfig::Journald(_) | SourceConfig::Syslog(_) => {
                &[Signal::Logs]
            }
            SourceConfig::Otlp(_) => &Signal::ALL,
        }
    }

    /// What is wrong with the source's settings, each with its key path below the source.
    pub fn problems(&self) -> Problems {
        match self {
            SourceConfig::HostMetrics(c) => c.problems(),
            SourceConfig::InternalMetrics(c) => c.problems(),
            SourceConfig::File(c) => c.problems(),
            SourceConfig::Otlp(c) => c.problems(),
            SourceConfig::Journald(c) => c.problems(),
            SourceConfig::Syslog(c) => c.problems(),
        }
    }
}

/// `[exporters.<name>]`: the shared settings and the type-specific ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterConfig {
    pub common: ExporterCommon,
    pub kind: ExporterKind,
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

    /// What is wrong with the type-specific settings, each with its key path below the exporter.
    pub fn problems(&self) -> Problems {
        match self {
            ExporterKind::Stdout(_) => Problems::default(),
            ExporterKind::Otlp(c) => c.problems(),
            ExporterKind::Parquet(c) => c.problems(),
        }
    }
}
