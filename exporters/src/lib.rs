//! Sonde's destinations, each behind the one [`Exporter`] trait, and the OTLP wire helpers they
//! share: the [`Batch`] currency and the zero-allocation [`wire`] walker.
//!
//! An exporter never knows about sources: it receives batches from an export worker and says
//! whether each one went out, failed for good, or should be retried.

pub mod ack;
pub mod batch;
pub mod exporter;
pub mod stdout;
pub mod wire;

pub use ack::Ack;
pub use batch::{Batch, Signal};
pub use exporter::{BoxFuture, DynExporter, ExportError, ExportOutcome, Exporter};

use sonde_config::ExporterKind;

/// Builds the exporter a config describes.
pub fn build(name: &str, kind: &ExporterKind) -> Result<DynExporter, BuildError> {
    let _ = name;
    Ok(match kind {
        ExporterKind::Stdout(cfg) => std::sync::Arc::new(stdout::StdoutExporter::new(cfg)),
    })
}

/// An exporter that could not be built from its (valid) config, e.g. a file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("exporter `{exporter}`: {message}")]
pub struct BuildError {
    pub exporter: String,
    pub message: String,
}
