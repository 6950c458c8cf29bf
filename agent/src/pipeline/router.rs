//! The graph of a running configuration: which buffers and processors take what each source
//! and processor produces, and the one way a batch goes through it.
//!
//! A batch from component `c` (a source, or a processor passing on what it let through) goes to
//! every exporter's buffer that names `c` in its `inputs` (an exporter without `inputs` takes
//! from every source) and selects its signal, and to every processor that names `c`. Processors
//! run on the sending task, one after the other as the graph orders them (the configuration is
//! checked to be acyclic); their output continues from their name. The buffer pushes come last:
//! a push succeeds only when every selected buffer accepted the batch, which is what a source
//! acknowledges upstream.

use super::buffer::{BufferSender, PushError, Pushed, Wait};
use crate::processors::ProcessorNode;
use sonde_core::{Batch, Signal};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One exporter's selection and its buffer.
pub struct Route {
    pub exporter: Arc<str>,
    /// Components it takes from; `None` = every source.
    pub inputs: Option<HashSet<String>>,
    /// Signals it takes (the configured ones that its type can take).
    pub signals: Vec<Signal>,
    pub buffer: BufferSender,
}

/// A processor and the components it takes from.
pub struct ProcessorRoute {
    pub node: Arc<ProcessorNode>,
    pub inputs: HashSet<String>,
}

/// Where a component's batches go next.
#[derive(Clone)]
enum Hop {
    /// The route at this index.
    Buffer(usize),
    Processor(Arc<ProcessorNode>),
}

struct Graph {
    routes: Vec<Route>,
    processors: Vec<ProcessorRoute>,
    /// The hops of every processor, and of every source seen so far (computed on first use).
    hops: std::sync::RwLock<HashMap<Arc<str>, Arc<[Hop]>>>,
}

impl Graph {
    fn is_processor(&self, name: &str) -> bool {
        self.processors.iter().any(|p| p.node.name() == name)
    }

    fn compute(&self, from: &str) -> Arc<[Hop]> {
        let source = !self.is_processor(from);
        let buffers = self.routes.iter().enumerate().filter_map(|(i, r)| {
            let takes = match &r.inputs {
                Some(inputs) => inputs.contains(from),
                None => source,
            };
            takes.then_some(Hop::Buffer(i))
        });
        let processors = self
            .processors
            .iter()
            .filter(|p| p.inputs.contains(from))
            .map(|p| Hop::Processor(p.node.clone()));
        buffers.chain(processors).collect()
    }

    fn hops(&self, from: &str) -> Arc<[Hop]> {
        if let Some(h) = self
            .hops
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(from)
        {
            return h.clone();
        }
        let h = self.compute(from);
        self.hops
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Arc::from(from), h.clone());
        h
    }

    /// Runs `batch` from `from` through the processors, collecting the buffer pushes.
    fn expand(&self, from: &str, batch: Batch, pushes: &mut Vec<(usize, Batch)>) {
        let hops = self.hops(from);
        for hop in hops.iter() {
            match hop {
                Hop::Buffer(i) => {
                    if self.routes[*i].signals.contains(&batch.signal) {
                        pushes.push((*i, batch.clone()));
                    }
                }
                Hop::Processor(p) => {
                    if let Some(out) = p.process(batch.clone()) {
                        self.expand(p.name(), out, pushes);
                    }
                }
            }
        }
    }
}

/// The router handle sources hold. Cloning is cheap; when every clone is gone the buffers close
/// and the export workers drain and stop.
#[derive(Clone)]
pub struct Router {
    graph: Arc<Graph>,
}

/// The outcome of a send: how many buffers queued it and how many dropped it by policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub queued: usize,
    pub dropped: usize,
}

impl Router {
    /// A graph of buffers only (no processor).
    pub fn new(routes: Vec<Route>) -> Self {
        Router::with_processors(routes, vec![])
    }

    pub fn with_processors(routes: Vec<Route>, processors: Vec<ProcessorRoute>) -> Self {
        Router {
            graph: Arc::new(Graph {
                routes,
                processors,
                hops: Default::default(),
            }),
        }
    }

    /// Whether a batch of `signal` from `source` reaches any buffer (through processors, which
    /// pass on what they do not drop).
    pub fn has_route(&self, source: &str, signal: Signal) -> bool {
        let mut seen = HashSet::new();
        let mut todo = vec![source.to_string()];
        while let Some(c) = todo.pop() {
            if !seen.insert(c.clone()) {
                continue;
            }
            for hop in self.graph.hops(&c).iter() {
                match hop {
                    Hop::Buffer(i) if self.graph.routes[*i].signals.contains(&signal) => {
                        return true
                    }
                    Hop::Buffer(_) => {}
                    Hop::Processor(p) => todo.push(p.name().to_string()),
                }
            }
        }
        false
    }

    /// Runs `batch` through the processors its source feeds and pushes what comes out to every
    /// selecting buffer, waiting for space as `wait` allows.
    ///
    /// On `Err(Full)` some buffers may already hold the batch; a retry by the producer can then
    /// duplicate it there (at-least-once), never lose it. A batch the processors empty is
    /// delivered nowhere (`Ok` with nothing queued) and its ack is released.
    pub async fn send(&self, batch: Batch, wait: Wait) -> Result<Delivery, PushError> {
        let mut pushes = Vec::new();
        let from = batch.source.clone();
        self.graph.expand(&from, batch, &mut pushes);
        let mut delivery = Delivery::default();
        for (i, b) in pushes {
            // A clone is cheap: the payload bytes are shared, not copied.
            match self.graph.routes[i].buffer.push(b, wait).await? {
                Pushed::Queued => delivery.queued += 1,
                Pushed::Dropped => delivery.dropped += 1,
            }
        }
        Ok(delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::buffer::channel;
    use sonde_config::BufferConfig;
    use sonde_core::metrics::Registry;

    fn batch(signal: Signal, source: &str) -> Batch {
        Batch::from_trusted(signal, vec![1, 2, 3].into(), 1, Arc::from(source))
    }

    #[tokio::test]
    async fn routes_by_inputs_and_signals() {
        let r = Registry::default();
        let (a_tx, mut a_rx) = channel("a", &BufferConfig::default(), &r);
        let (b_tx, mut b_rx) = channel("b", &BufferConfig::default(), &r);
        let router = Router::new(vec![
            Route {
                exporter: "a".into(),
                inputs: None,
                signals: Signal::ALL.to_vec(),
                buffer: a_tx,
            },
            Route {
                exporter: "b".into(),
                inputs: Some(["host".to_string()].into()),
                signals: vec![Signal::Metrics],
                buffer: b_tx,
            },
        ]);
        let d = router
            .send(batch(Signal::Metrics, "host"), Wait::No)
            .await
            .unwrap();
        assert_eq!(d.queued, 2);
        let d = router
            .send(batch(Signal::Traces, "host"), Wait::No)
            .await
            .unwrap();
        assert_eq!(d.queued, 1);
        let d = router
            .send(batch(Signal::Metrics, "otlp"), Wait::No)
            .await
            .unwrap();
        assert_eq!(d.queued, 1);
        assert!(router.has_route("otlp", Signal::Logs));
        drop(router);
        let mut a = 0;
        while a_rx.recv().await.is_some() {
            a += 1;
        }
        let mut b = 0;
        while b_rx.recv().await.is_some() {
            b += 1;
        }
        assert_eq!((a, b), (3, 1));
    }
}
