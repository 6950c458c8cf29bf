//! Sources: where data enters the agent. A source is a config struct (in `sonde-config`) and a
//! task built from it that runs until its shutdown token fires, sending [`Batch`]es through the
//! router it was given.
//!
//! Everything a source needs arrives in its [`SourceContext`]; no globals.

pub mod file;
pub mod host_metrics;
pub mod internal_metrics;
pub mod otlp;

use crate::metrics::{Counter, Registry};
use crate::pipeline::buffer::{PushError, Wait};
use crate::pipeline::router::Router;
use sonde_config::SourceConfig;
use sonde_exporters::Batch;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a running source is handed.
#[derive(Clone)]
pub struct SourceContext {
    /// The source's name in the config; batches carry it so the router can honour `inputs`.
    pub name: Arc<str>,
    pub router: Router,
    pub shutdown: CancellationToken,
    pub metrics: Registry,
    /// `agent.data_dir`: where a source keeps its state (e.g. file checkpoints).
    pub data_dir: PathBuf,
}

impl SourceContext {
    /// `sonde_source_dropped_items_total{source, reason}`.
    pub fn dropped_counter(&self, reason: &str) -> Counter {
        self.metrics.counter(
            "sonde_source_dropped_items_total",
            "Items a source dropped before any buffer took them, by reason.",
            &[("source", &self.name), ("reason", reason)],
        )
    }

    /// Sends one periodic sample (host or internal metrics) without waiting: a sample that finds
    /// the buffers full is dropped and counted in `dropped` — cheaper to lose than to queue, and
    /// the next one carries the cumulative values anyway. False once the pipeline has closed.
    pub async fn send_sample(&self, batch: Batch, dropped: &Counter) -> bool {
        let items = batch.items;
        match self.router.send(batch, Wait::No).await {
            Ok(d) => {
                tracing::debug!(source = %self.name, items, queued = d.queued, "sample sent");
                true
            }
            Err(PushError::Full) => {
                dropped.add(items);
                tracing::warn!(source = %self.name, items, "buffers full; sample dropped");
                true
            }
            Err(PushError::Closed) => false,
        }
    }
}

/// A source's task; it finishes when `shutdown` fires and its last data is handed on.
pub type SourceTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Builds the task of a configured source. Fails when the source cannot start (e.g. a port that
/// cannot be bound); the agent then refuses to start and says why.
pub async fn build(cfg: &SourceConfig, cx: SourceContext) -> anyhow::Result<SourceTask> {
    match cfg {
        SourceConfig::HostMetrics(c) => Ok(Box::pin(host_metrics::run(c.clone(), cx))),
        SourceConfig::File(c) => Ok(Box::pin(file::build(c, cx)?)),
        SourceConfig::InternalMetrics(c) => Ok(Box::pin(internal_metrics::run(c.clone(), cx))),
        SourceConfig::Otlp(c) => Ok(otlp::build(c, cx).await?),
    }
}
