//! Processors: named components between sources and exporters that enrich, filter, redact and
//! sample the data passing through — on the wire. A processor reads a batch's encoded request
//! with the wire walker ([`view`]), records field-level edits ([`sonde_core::wire::edit`]), and
//! the edited request is written in one pass that copies every untouched byte range. Nothing is
//! decoded into structs; a batch with nothing to change passes without a copy.
//!
//! The contract: a config struct and `build(config, context) -> Result<ProcessorNode,
//! BuildError>`, as for sources and exporters. A [`ProcessorNode`] is called by the router for
//! each batch that one of its inputs produced, on the producing task (no hand-off to another
//! task or thread); it returns the batch to pass on, or nothing when every item was dropped.
//! Signals a processor does not handle pass through it unchanged.
//!
//! Acknowledgements stay exact: the batch going out keeps the incoming batch's [`sonde_core::Ack`];
//! a batch a filter or sampler empties is dropped, which releases its share of the ack (a file
//! source's checkpoint still advances).
//!
//! Bad input never costs data: a request a processor cannot read is passed on unchanged and
//! counted (`sonde_processor_errors_total{reason="malformed"}`), with a rate-limited warning.
//!
//! Modules: the processors [`resource`], [`filter`], [`redact`], [`sample`]; their kernels
//! [`ottl`] (conditions), [`patterns`] (redaction matchers), [`probability`] (consistent
//! sampling); the wire-level [`view`]s and the level-by-level [`prune`] of emptied messages;
//! [`detect`] (the resource detectors).

pub mod detect;
pub mod filter;
pub mod ottl;
pub mod patterns;
pub mod probability;
pub mod prune;
pub mod redact;
pub mod resource;
pub mod sample;
pub mod view;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use sonde_config::{ProcessorConfig, ProcessorKind};
use sonde_core::log_limit::LogLimit;
use sonde_core::metrics::{Counter, Histogram, Registry};
use sonde_core::wire::edit::Editor;
use sonde_core::wire::WireError;
use sonde_core::{Batch, BuildError, Context, Kind, Signal};
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;
use tracing::warn;

/// What a processor is built with; its output is wired by the topology afterwards.
pub type ProcessorContext = Context<()>;

/// What [`Processor::apply`] returns: what it did besides its edits, or why it could not read
/// the request (which then passes unchanged, counted).
pub type Applied = Result<Change, WireError>;

/// What one processor did to one request, besides its edits.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    /// Items removed (spans, data points, log records).
    pub dropped: u64,
    /// Items changed in place (or whose resource changed).
    pub modified: u64,
}

/// A processor's logic: reads a request and records its edits.
pub trait Processor: Send + Sync {
    /// Whether the processor does anything to this signal (the others pass untouched).
    fn handles(&self, signal: Signal) -> bool;

    /// Reads `payload` (an encoded request of `signal`) and records in `editor` what to change.
    fn apply(&self, signal: Signal, payload: &Bytes, editor: &mut Editor) -> Applied;

    /// What the processor found or holds that an operator may want to see (the resource
    /// processor's detected attributes), for the admin server's `/processors`.
    fn describe(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Bucket upper bounds (seconds) for the time a processor takes on one batch: 1 µs to 100 ms.
const SECONDS_BUCKETS: &[f64] = &[
    1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1,
];

/// A processor's counters, registered once.
struct NodeMetrics {
    items: [Counter; 3],
    /// Only for processors that drop (filter, sample).
    dropped: Option<Counter>,
    modified: Counter,
    malformed: Counter,
    seconds: Histogram,
}

impl NodeMetrics {
    fn new(r: &Registry, name: &str, drop_reason: Option<&str>) -> Self {
        NodeMetrics {
            items: Signal::ALL.map(|s| {
                r.counter(
                    "sonde_processor_items_total",
                    "Items a processor received, by signal.",
                    &[("processor", name), ("signal", s.as_str())],
                )
            }),
            dropped: drop_reason.map(|reason| {
                r.counter(
                    "sonde_processor_dropped_items_total",
                    "Items a processor removed, by reason.",
                    &[("processor", name), ("reason", reason)],
                )
            }),
            modified: r.counter(
                "sonde_processor_modified_items_total",
                "Items a processor changed in place (for `resource`: items whose resource changed).",
                &[("processor", name)],
            ),
            malformed: r.counter(
                "sonde_processor_errors_total",
                "Batches or items a processor could not interpret and passed on unchanged, by reason.",
                &[("processor", name), ("reason", "malformed")],
            ),
            seconds: r.histogram(
                "sonde_processor_seconds",
                "Time a processor took per batch.",
                &[("processor", name)],
                SECONDS_BUCKETS,
            ),
        }
    }
}

thread_local! {
    /// One editor per thread, reused: its buffers grow to the largest batch and stay.
    static EDITOR: RefCell<Editor> = RefCell::new(Editor::new());
}

/// A built processor, with its metrics: what the router calls.
pub struct ProcessorNode {
    name: Arc<str>,
    inner: Box<dyn Processor>,
    metrics: NodeMetrics,
    warn: LogLimit,
}

impl ProcessorNode {
    /// `drop_reason`: the `reason` label of the items it removes, for a processor that does.
    pub fn new(
        cx: &ProcessorContext,
        drop_reason: Option<&str>,
        inner: Box<dyn Processor>,
    ) -> ProcessorNode {
        ProcessorNode {
            name: cx.name.clone(),
            metrics: NodeMetrics::new(&cx.metrics, &cx.name, drop_reason),
            inner,
            warn: LogLimit::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn describe(&self) -> Option<serde_json::Value> {
        self.inner.describe()
    }

    /// The batch after this processor: `None` when nothing of it is left. The batch keeps its
    /// source name and its ack.
    pub fn process(&self, batch: Batch) -> Option<Batch> {
        if !self.inner.handles(batch.signal) {
            return Some(batch);
        }
        let started = Instant::now();
        self.metrics.items[batch.signal.index()].add(batch.items);
        let result = EDITOR.with(|cell| {
            let mut editor = cell.borrow_mut();
            editor.clear();
            let change = self
                .inner
                .apply(batch.signal, &batch.payload, &mut editor)?;
            let payload = editor.apply(&batch.payload)?;
            Ok::<_, WireError>((change, payload))
        });
        let out = match result {
            Ok((change, payload)) => {
                if let Some(d) = &self.metrics.dropped {
                    d.add(change.dropped);
                }
                self.metrics.modified.add(change.modified);
                let items = batch.items.saturating_sub(change.dropped);
                (items > 0).then(|| Batch {
                    payload,
                    items,
                    ..batch
                })
            }
            Err(e) => {
                self.metrics.malformed.inc();
                if let Some(held) = self.warn.check() {
                    warn!(processor = %self.name, signal = %batch.signal, error = %e, suppressed = held,
                        "cannot interpret a batch; passing it on unchanged");
                }
                Some(batch)
            }
        };
        self.metrics
            .seconds
            .observe(started.elapsed().as_secs_f64());
        out
    }
}

/// Builds the processor a config describes. Fails when the config, valid as written, cannot be
/// used: a condition or pattern that does not compile, a hash key that cannot be read.
pub fn build(cfg: &ProcessorConfig, cx: &ProcessorContext) -> Result<ProcessorNode, BuildError> {
    match &cfg.kind {
        ProcessorKind::Resource(c) => resource::build(c, cx),
        ProcessorKind::Filter(c) => filter::build(c, cx),
        ProcessorKind::Redact(c) => redact::build(c, cx),
        ProcessorKind::Sample(c) => sample::build(c, cx),
    }
}

/// The context processor `name` is built with under the agent's settings; `shutdown` stops its
/// background work (the cloud detectors).
pub fn context(
    name: &str,
    agent: &sonde_config::AgentConfig,
    metrics: Registry,
    shutdown: tokio_util::sync::CancellationToken,
) -> ProcessorContext {
    Context {
        kind: Kind::Processor,
        name: Arc::from(name),
        metrics,
        shutdown,
        data_dir: agent.data_dir.clone(),
        shutdown_timeout: agent.shutdown_timeout.get(),
        output: (),
    }
}

/// The problems of a loaded configuration that only the processors can see: a filter condition
/// that does not parse, placed at its line:column inside the condition string.
pub fn check(config: &sonde_config::Config) -> Vec<sonde_config::LateProblem> {
    let mut out = Vec::new();
    for (name, p) in &config.processors {
        let ProcessorKind::Filter(f) = &p.kind else {
            continue;
        };
        for (list, conditions) in f.lists() {
            let context = filter::context_of(list);
            for (i, c) in conditions.iter().enumerate() {
                if let Err(e) = ottl::Condition::parse(context, c) {
                    out.push(sonde_config::LateProblem {
                        path: sonde_config::KeyPath::dotted("processors")
                            .key(name.clone())
                            .key(list)
                            .index(i),
                        within: Some((e.line as usize, e.column as usize)),
                        message: format!("invalid OTTL condition: {}", e.message),
                    });
                }
            }
        }
    }
    out
}
