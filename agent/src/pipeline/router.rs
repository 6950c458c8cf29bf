//! The graph of a running configuration: which buffers and processors take what each source
//! and processor produces, and the one way a batch goes through it.
//!
//! A batch from component `c` (a source, or a processor passing on what it let through) goes to
//! every exporter's buffer that names `c` in its `inputs` (an exporter without `inputs` takes
//! from every source) and selects its signal, and to every processor that names `c`. Processors
//! run on the sending task, one after the other as the graph orders them (the configuration is
//! checked to be acyclic); their output continues from their name. The buffer pushes come last,
//! all at once: a send succeeds only when every selected buffer accepted the batch (or gave it up
//! by its policy), which is what a source acknowledges upstream.
//!
//! Fan-out and bulkheads: the buffers are offered the batch concurrently, each waits on its own,
//! so a slow buffer does not hold the others' pushes back. When a batch goes to several
//! exporters and some are healthy, a full buffer whose exporter is failing (its last export
//! call failed: the destination is down, not merely slow) does not push back on the source: the
//! batch is dropped for that exporter alone and counted
//! (`sonde_buffer_dropped_items_total{reason="exporter_failing"}`), so the healthy exporters
//! keep flowing. Otherwise a full buffer applies `when_full` as configured: `block` makes the
//! source wait, which is backpressure (a lone exporter that is down loses nothing that way).

use super::buffer::metrics::Dropped;
use super::buffer::{BufferSender, PushError, Pushed, Wait};
use crate::health::ExporterHealth;
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
    /// The exporter's health and the counter of what is shed while it fails; `None` (tests,
    /// tools) always applies `when_full`.
    pub bulkhead: Option<Bulkhead>,
}

/// What lets a failing exporter's full buffer stop pushing back on the sources.
pub struct Bulkhead {
    pub health: Arc<ExporterHealth>,
    pub shed: Dropped,
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

    /// Whether route `i`'s exporter is failing (and may shed what its full buffer cannot take).
    fn failing(&self, i: usize) -> bool {
        self.routes[i]
            .bulkhead
            .as_ref()
            .is_some_and(|b| b.health.failing())
    }

    /// Offers `batch` to route `i`'s buffer; with `shed`, a failing exporter's full buffer
    /// drops it instead of waiting.
    async fn offer(
        &self,
        i: usize,
        batch: Batch,
        wait: Wait,
        shed: bool,
    ) -> Result<Pushed, PushError> {
        let route = &self.routes[i];
        let Some(b) = route
            .bulkhead
            .as_ref()
            .filter(|b| shed && b.health.failing())
        else {
            return route.buffer.push(batch, wait).await;
        };
        let items = batch.items;
        match route.buffer.push(batch, Wait::No).await {
            Err(PushError::Full) => {
                b.shed.add(1, items);
                Ok(Pushed::Dropped)
            }
            other => other,
        }
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
        let graph = &self.graph;
        // Shedding protects the healthy exporters of a fan-out; when every destination is
        // down (or there is only one), the source waits instead, which loses nothing.
        let shed = pushes.iter().any(|(i, _)| !graph.failing(*i))
            && pushes.iter().any(|(i, _)| graph.failing(*i));
        // One destination (the common case) is awaited as it is: no list of futures.
        if pushes.len() == 1 {
            let (i, b) = pushes.swap_remove(0);
            return tally([graph.offer(i, b, wait, shed).await]);
        }
        let offers = pushes
            .into_iter()
            .map(|(i, b)| graph.offer(i, b, wait, shed));
        tally(futures_util::future::join_all(offers).await)
    }
}

/// What a send's buffer pushes add up to: `Ok` when every buffer took the batch (or dropped it by
/// its policy), else the refusal — `Closed` over `Full`, since a stopping agent says so.
fn tally(
    outcomes: impl IntoIterator<Item = Result<Pushed, PushError>>,
) -> Result<Delivery, PushError> {
    let mut delivery = Delivery::default();
    let mut refused = None;
    for outcome in outcomes {
        match outcome {
            Ok(Pushed::Queued) => delivery.queued += 1,
            Ok(Pushed::Dropped) => delivery.dropped += 1,
            Err(e) => {
                refused = Some(refused.map_or(e, |r| if r == PushError::Closed { r } else { e }))
            }
        }
    }
    match refused {
        Some(e) => Err(e),
        None => Ok(delivery),
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
                bulkhead: None,
            },
            Route {
                exporter: "b".into(),
                inputs: Some(["host".to_string()].into()),
                signals: vec![Signal::Metrics],
                buffer: b_tx,
                bulkhead: None,
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

    fn tiny() -> BufferConfig {
        BufferConfig {
            max_size: sonde_config::ByteSize(4),
            ..BufferConfig::default()
        }
    }

    /// Two exporters fed by one source, both buffers full: while `down` fails, its share is shed
    /// (counted) and the source is not held back for `up`; when every destination is down, the
    /// source waits instead of losing anything.
    #[tokio::test]
    async fn a_failing_exporter_does_not_hold_back_the_healthy_one() {
        let r = Registry::default();
        let (up_tx, mut up_rx) = channel("up", &tiny(), &r);
        let (down_tx, _down_rx) = channel("down", &tiny(), &r);
        let up_health = Arc::new(ExporterHealth::default());
        let down_health = Arc::new(ExporterHealth::default());
        let route = |name: &str, buffer, health: &Arc<ExporterHealth>| Route {
            exporter: name.into(),
            inputs: None,
            signals: Signal::ALL.to_vec(),
            buffer,
            bulkhead: Some(Bulkhead {
                health: health.clone(),
                shed: Dropped::register(&r, name, "exporter_failing"),
            }),
        };
        let router = Router::new(vec![
            route("up", up_tx, &up_health),
            route("down", down_tx, &down_health),
        ]);
        // Both buffers now hold one batch: full.
        let d = router
            .send(batch(Signal::Logs, "s"), Wait::No)
            .await
            .unwrap();
        assert_eq!(d.queued, 2);
        // Healthy and full: backpressure as configured.
        assert!(router
            .send(batch(Signal::Logs, "s"), Wait::No)
            .await
            .is_err());

        down_health.failure("connection refused");
        // `up` drains; `down` stays full and is shed, so the send completes.
        let sent = tokio::spawn(async move {
            let d = router
                .send(batch(Signal::Logs, "s"), Wait::Forever)
                .await
                .unwrap();
            (router, d)
        });
        assert!(up_rx.recv().await.is_some());
        let (router, d) = tokio::time::timeout(std::time::Duration::from_secs(5), sent)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((d.queued, d.dropped), (1, 1));
        let text = r.render();
        assert!(
            text.contains(
                r#"sonde_buffer_dropped_items_total{exporter="down",reason="exporter_failing"} 1"#
            ),
            "{text}"
        );

        // Every destination down: nothing is shed, the source is refused (it keeps its data).
        up_health.failure("connection refused");
        assert!(router
            .send(batch(Signal::Logs, "s"), Wait::No)
            .await
            .is_err());
        assert!(r.render().contains(
            r#"sonde_buffer_dropped_items_total{exporter="down",reason="exporter_failing"} 1"#
        ));
        down_health.success();
        up_health.success();
        assert!(!down_health.failing());
    }
}
