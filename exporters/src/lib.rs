//! Sonde's destinations, each behind the one [`Exporter`] trait, and the OTLP wire helpers they
//! share: the [`Batch`] currency and the zero-allocation [`wire`] walker.
//!
//! An exporter never knows about sources: it receives batches from an export worker and says
//! whether each one went out, failed for good, or should be retried.

pub mod ack;
pub mod batch;
pub mod exporter;
mod names;
pub mod otlp;
pub mod parquet;
pub mod stdout;
pub mod telemetry;
pub mod wire;

pub use ack::Ack;
pub use batch::{Batch, Signal};
pub use exporter::{BoxFuture, DynExporter, ExportError, ExportOutcome, Exporter};
pub use telemetry::Telemetry;

use sonde_config::{AgentConfig, ExporterConfig, ExporterKind};
use std::sync::Arc;

/// Builds the exporter a config describes; its own metrics go to `telemetry`, its local state
/// (if any) under `agent.data_dir`.
pub fn build(
    name: &str,
    config: &ExporterConfig,
    telemetry: Arc<dyn Telemetry>,
    agent: &AgentConfig,
) -> Result<DynExporter, BuildError> {
    let failed = |message| BuildError {
        exporter: name.to_string(),
        message,
    };
    Ok(match &config.kind {
        ExporterKind::Stdout(cfg) => Arc::new(stdout::StdoutExporter::new(cfg)),
        ExporterKind::Otlp(cfg) => {
            Arc::new(otlp::OtlpExporter::new(name, cfg, &config.common, telemetry).map_err(failed)?)
        }
        ExporterKind::Parquet(cfg) => Arc::new(
            parquet::ParquetExporter::new(
                name,
                cfg,
                &agent.data_dir,
                agent.shutdown_timeout.get(),
                telemetry,
            )
            .map_err(failed)?,
        ),
    })
}

/// An exporter that could not be built from its (valid) config, e.g. a file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("exporter `{exporter}`: {message}")]
pub struct BuildError {
    pub exporter: String,
    pub message: String,
}
