//! Fans each batch out to the buffers of the exporters that select it (by `inputs` and
//! `signals`). A push succeeds only when every selected buffer accepted the batch, which is
//! what a source acknowledges upstream.

use super::buffer::{BufferSender, PushError, Pushed, Wait};
use sonde_core::{Batch, Signal};
use std::collections::HashSet;
use std::sync::Arc;

/// One exporter's selection and its buffer.
pub struct Route {
    pub exporter: Arc<str>,
    /// Sources it takes from; `None` = all.
    pub inputs: Option<HashSet<String>>,
    /// Signals it takes (the configured ones that its type can take).
    pub signals: Vec<Signal>,
    pub buffer: BufferSender,
}

impl Route {
    fn selects(&self, batch: &Batch) -> bool {
        self.signals.contains(&batch.signal)
            && self
                .inputs
                .as_ref()
                .is_none_or(|i| i.contains(&*batch.source))
    }
}

/// The router handle sources hold. Cloning is cheap; when every clone is gone the buffers close
/// and the export workers drain and stop.
#[derive(Clone)]
pub struct Router {
    routes: Arc<[Route]>,
}

/// The outcome of a send: how many buffers queued it and how many dropped it by policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub queued: usize,
    pub dropped: usize,
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Self {
        Self {
            routes: routes.into(),
        }
    }

    /// Whether any exporter takes `signal` from `source`.
    pub fn has_route(&self, source: &str, signal: Signal) -> bool {
        self.routes.iter().any(|r| {
            r.signals.contains(&signal) && r.inputs.as_ref().is_none_or(|i| i.contains(source))
        })
    }

    /// Pushes `batch` to every selecting buffer, waiting for space as `wait` allows.
    ///
    /// On `Err(Full)` some buffers may already hold the batch; a retry by the producer can then
    /// duplicate it there (at-least-once), never lose it.
    pub async fn send(&self, batch: Batch, wait: Wait) -> Result<Delivery, PushError> {
        let mut delivery = Delivery::default();
        for route in self.routes.iter().filter(|r| r.selects(&batch)) {
            // A clone is cheap: the payload bytes are shared, not copied.
            match route.buffer.push(batch.clone(), wait).await? {
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
