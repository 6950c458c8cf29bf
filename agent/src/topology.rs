//! The topology, wired in one place: exporters and their buffers and workers first, then the
//! processors, then the router that runs them, then the sources. Reading [`start`] and [`Running::stop`] tells the whole data flow
//! and the order of shutdown.
//!
//! Stop order: sources stop (no new data) → the router is dropped, closing every buffer → each
//! worker flushes its pending batches and drains its buffer → past `agent.shutdown_timeout`
//! whatever is still unsent is dropped and counted. A disk buffer is not drained at stop: what
//! it holds, and whatever its worker could not finish, stays on disk for the next start.

use crate::health::{ExporterHealth, Health};
use crate::pipeline::buffer::metrics::Dropped;
use crate::pipeline::buffer::{self, SpoolError};
use crate::pipeline::{router, worker};
use crate::processors::{self, ProcessorNode};
use crate::sources::{self, SourceContext};
use sonde_config::Config;
use sonde_core::metrics::Registry;
use sonde_core::BuildError;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub struct Running {
    sources: JoinSet<()>,
    workers: JoinSet<()>,
    stop_sources: CancellationToken,
    abort_exports: CancellationToken,
    router: Option<router::Router>,
    /// The processors, for the admin server's `/processors`.
    pub processors: Vec<Arc<ProcessorNode>>,
    shutdown_timeout: Duration,
    metrics: Registry,
}

/// Why a configuration (valid as written) could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("exporter `{exporter}`: cannot open its buffer: {source}")]
    Buffer {
        exporter: String,
        #[source]
        source: SpoolError,
    },
}

/// Builds and starts everything the config describes. Health learns of the exporters and of
/// how many workers must be running for the heartbeat to beat.
pub async fn start(
    config: &Config,
    metrics: Registry,
    health: Arc<Health>,
) -> Result<Running, StartError> {
    let abort_exports = CancellationToken::new();
    let mut workers = JoinSet::new();
    let mut routes = Vec::new();
    let mut watched = BTreeMap::new();
    let alive = health.workers(config.exporters.len());
    for (name, ecfg) in &config.exporters {
        let exporter_health = Arc::new(ExporterHealth::default());
        watched.insert(name.clone(), exporter_health.clone());
        let cx = sonde_exporters::context(name, &config.agent, metrics.clone());
        let exporter = sonde_exporters::build(ecfg, &cx)?;
        let (tx, rx) = buffer::open(name, &ecfg.common.buffer, &config.agent.data_dir, &metrics)
            .await
            .map_err(|source| StartError::Buffer {
                exporter: name.clone(),
                source,
            })?;
        let accepts = ecfg.kind.accepts();
        routes.push(router::Route {
            exporter: Arc::from(name.as_str()),
            inputs: ecfg
                .common
                .inputs
                .as_ref()
                .map(|i| i.iter().cloned().collect::<HashSet<_>>()),
            signals: ecfg
                .common
                .signals
                .clone()
                .unwrap_or_else(|| accepts.to_vec())
                .into_iter()
                .filter(|s| accepts.contains(s))
                .collect(),
            buffer: tx,
            bulkhead: Some(router::Bulkhead {
                health: exporter_health.clone(),
                shed: Dropped::register(&metrics, name, "exporter_failing"),
            }),
        });
        let wcfg = worker::WorkerConfig {
            name: Arc::from(name.as_str()),
            batch: ecfg.common.batch.clone(),
            timeout: ecfg.common.timeout.get(),
            retry: ecfg.common.retry.clone(),
            concurrency: ecfg
                .common
                .concurrency
                .unwrap_or_else(|| ecfg.kind.default_concurrency()),
            health: exporter_health,
        };
        let run = worker::run(wcfg, exporter, rx, metrics.clone(), abort_exports.clone());
        let alive = alive.clone();
        workers.spawn(async move {
            let _running = alive.enter();
            run.await;
        });
    }
    health.set_exporters(watched);

    // Processors next: the router runs them on the sending task, so they exist before it.
    let stop_sources = CancellationToken::new();
    let mut processor_routes = Vec::new();
    let mut processor_nodes = Vec::new();
    for (name, pcfg) in &config.processors {
        let cx = processors::context(
            name,
            &config.agent,
            metrics.clone(),
            stop_sources.child_token(),
        );
        let node = Arc::new(processors::build(pcfg, &cx)?);
        processor_nodes.push(node.clone());
        processor_routes.push(router::ProcessorRoute {
            node,
            inputs: pcfg.inputs.iter().cloned().collect(),
        });
    }
    let router = router::Router::with_processors(routes, processor_routes);

    let mut tasks = JoinSet::new();
    for (name, scfg) in &config.sources {
        let cx = SourceContext {
            shutdown_timeout: config.agent.shutdown_timeout.get(),
            ..sources::context(
                name,
                router.clone(),
                metrics.clone(),
                stop_sources.child_token(),
                config.agent.data_dir.clone(),
            )
        };
        let task = sources::build(scfg, cx).await?;
        tasks.spawn(task);
    }
    info!(
        sources = config.sources.len(),
        exporters = config.exporters.len(),
        "sonde started"
    );
    Ok(Running {
        sources: tasks,
        workers,
        stop_sources,
        abort_exports,
        router: Some(router),
        processors: processor_nodes,
        shutdown_timeout: config.agent.shutdown_timeout.get(),
        metrics,
    })
}

/// What a stop left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Items dropped because the shutdown deadline passed before they were sent.
    pub dropped_at_shutdown: u64,
    pub clean: bool,
}

impl Running {
    /// Stops gracefully within `agent.shutdown_timeout`.
    pub async fn stop(mut self) -> StopReport {
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.stop_sources.cancel();
        let sources_done = tokio::time::timeout_at(deadline, async {
            while self.sources.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !sources_done {
            warn!("sources did not stop before the shutdown deadline; aborting them");
            self.sources.abort_all();
        }
        // Dropping the last router handle closes the buffers: workers drain and finish.
        drop(self.router.take());
        let drained = tokio::time::timeout_at(deadline, async {
            while self.workers.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            warn!(timeout = ?self.shutdown_timeout, "exporters did not drain before the shutdown deadline; dropping what is left");
            self.abort_exports.cancel();
            // Workers now drop (and count) everything without network calls; give them a moment.
            if tokio::time::timeout(Duration::from_secs(5), async {
                while self.workers.join_next().await.is_some() {}
            })
            .await
            .is_err()
            {
                self.workers.abort_all();
            }
        }
        let dropped = self.metrics.counter_sum(
            "sonde_exporter_dropped_items_total",
            &[("reason", "shutdown")],
        );
        if dropped > 0 {
            warn!(
                items = dropped,
                "items could not be sent before shutdown and were dropped"
            );
        }
        info!(clean = drained && sources_done, "sonde stopped");
        StopReport {
            dropped_at_shutdown: dropped,
            clean: drained && sources_done,
        }
    }
}
