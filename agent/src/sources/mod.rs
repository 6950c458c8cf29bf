//! Sources: where data enters the agent. A source is a config struct (in `sonde-config`) and a
//! task built from it that runs until its shutdown token fires, sending [`Batch`]es through the
//! router it was given.
//!
//! Everything a source needs arrives in its [`SourceContext`]; no globals.

pub mod host_metrics;
pub mod internal_metrics;
pub mod otlp;

use crate::metrics::Registry;
use crate::pipeline::router::Router;
use sonde_config::SourceConfig;
use std::future::Future;
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
}

/// A source's task; it finishes when `shutdown` fires and its last data is handed on.
pub type SourceTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Builds the task of a configured source. Fails when the source cannot start (e.g. a port that
/// cannot be bound); the agent then refuses to start and says why.
pub async fn build(cfg: &SourceConfig, cx: SourceContext) -> anyhow::Result<SourceTask> {
    match cfg {
        SourceConfig::HostMetrics(c) => Ok(Box::pin(host_metrics::run(c.clone(), cx))),
        SourceConfig::InternalMetrics(c) => Ok(Box::pin(internal_metrics::run(c.clone(), cx))),
        SourceConfig::Otlp(c) => Ok(otlp::build(c, cx).await?),
    }
}
