//! Sources: where data enters the agent. A source is a config struct (in `sonde-config`) and a
//! `build(config, context)` that returns the task running it until its shutdown token fires,
//! sending [`Batch`]es through the router it was given (the context's `output`).
//!
//! Everything a source needs arrives in its [`SourceContext`]; no globals.

pub mod file;
pub mod host_metrics;
pub mod internal_metrics;
pub mod journald;
pub mod otlp;
mod periodic;
pub mod syslog;

use crate::pipeline::buffer::{PushError, Wait};
use crate::pipeline::router::Router;
use sonde_config::{AgentConfig, SourceConfig};
use sonde_core::metrics::{Counter, Registry};
use sonde_core::{Batch, BuildError, Context, Kind};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

/// A string attribute, as the sources that build OTLP messages write them.
pub fn kv_str(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// What a source is built with: the component context, with the router as its output.
pub type SourceContext = Context<Router>;

/// A source's task; it finishes when `shutdown` fires and its last data is handed on.
pub type SourceTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The context of source `name`, feeding `router`, with the agent's default shutdown deadline.
pub fn context(
    name: &str,
    router: Router,
    metrics: Registry,
    shutdown: CancellationToken,
    data_dir: PathBuf,
) -> SourceContext {
    Context {
        kind: Kind::Source,
        name: Arc::from(name),
        metrics,
        shutdown,
        data_dir,
        shutdown_timeout: AgentConfig::default().shutdown_timeout.get(),
        output: router,
    }
}

/// `sonde_source_dropped_items_total{source, reason}`.
pub fn dropped_counter(cx: &SourceContext, reason: &str) -> Counter {
    cx.metrics.counter(
        "sonde_source_dropped_items_total",
        "Items a source dropped before any buffer took them, by reason.",
        &[("source", &cx.name), ("reason", reason)],
    )
}

/// `sonde_source_received_items_total{source}`.
pub fn received_counter(cx: &SourceContext) -> Counter {
    cx.metrics.counter(
        "sonde_source_received_items_total",
        "Items a source produced or received.",
        &[("source", &cx.name)],
    )
}

/// Sends one periodic sample (host or internal metrics) without waiting: a sample that finds
/// the buffers full is dropped and counted in `dropped` — cheaper to lose than to queue, and
/// the next one carries the cumulative values anyway. False once the pipeline has closed.
pub async fn send_sample(cx: &SourceContext, batch: Batch, dropped: &Counter) -> bool {
    let items = batch.items;
    match cx.output.send(batch, Wait::No).await {
        Ok(d) => {
            tracing::debug!(source = %cx.name, items, queued = d.queued, "sample sent");
            true
        }
        Err(PushError::Full) => {
            dropped.add(items);
            tracing::warn!(source = %cx.name, items, "buffers full; sample dropped");
            true
        }
        Err(PushError::Closed) => false,
    }
}

/// Builds the task of a configured source. Fails when the source cannot start (e.g. a port that
/// cannot be bound); the agent then refuses to start and says why.
pub async fn build(cfg: &SourceConfig, cx: SourceContext) -> Result<SourceTask, BuildError> {
    match cfg {
        SourceConfig::HostMetrics(c) => host_metrics::build(c, cx).await,
        SourceConfig::File(c) => file::build(c, cx).await,
        SourceConfig::InternalMetrics(c) => internal_metrics::build(c, cx).await,
        SourceConfig::Otlp(c) => otlp::build(c, cx).await,
        SourceConfig::Journald(c) => journald::build(c, cx).await,
        SourceConfig::Syslog(c) => syslog::build(c, cx).await,
    }
}
