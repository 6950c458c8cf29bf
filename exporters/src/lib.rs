//! Sonde's destinations, one module per exporter, each behind `sonde-core`'s [`Exporter`] trait.
//!
//! An exporter never knows about sources: it receives batches from an export worker and says
//! whether each one went out, failed for good, or should be retried. Each is built by the one
//! component contract: [`build`] takes its config and an [`ExporterContext`] and returns the
//! exporter or a [`BuildError`] naming it.

pub mod otlp;
pub mod parquet;
pub mod stdout;

use sonde_config::{AgentConfig, ExporterConfig, ExporterKind};
use sonde_core::metrics::Registry;
use sonde_core::{BuildError, Context, DynExporter, Kind};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What an exporter is built with: an exporter has no downstream of its own (its export worker
/// calls it).
pub type ExporterContext = Context<()>;

/// The context exporter `name` is built with under the agent's settings.
pub fn context(name: &str, agent: &AgentConfig, metrics: Registry) -> ExporterContext {
    Context {
        kind: Kind::Exporter,
        name: Arc::from(name),
        metrics,
        shutdown: CancellationToken::new(),
        data_dir: agent.data_dir.clone(),
        shutdown_timeout: agent.shutdown_timeout.get(),
        output: (),
    }
}

/// Builds the exporter a config describes; its own metrics go to `cx.metrics`, its local state
/// (if any) under `cx.data_dir`.
pub fn build(config: &ExporterConfig, cx: &ExporterContext) -> Result<DynExporter, BuildError> {
    Ok(match &config.kind {
        ExporterKind::Stdout(cfg) => Arc::new(stdout::StdoutExporter::new(cfg)),
        ExporterKind::Otlp(cfg) => Arc::new(
            otlp::OtlpExporter::new(&cx.name, cfg, &config.common, cx.metrics.clone())
                .map_err(|e| cx.error(e))?,
        ),
        ExporterKind::Parquet(cfg) => Arc::new(
            parquet::ParquetExporter::new(
                &cx.name,
                cfg,
                &cx.data_dir,
                cx.shutdown_timeout,
                cx.metrics.clone(),
            )
            .map_err(|e| cx.error(e))?,
        ),
    })
}
