//! `type = "otlp"`: sends batches as they are (no decode, no re-encode) over OTLP/gRPC or
//! OTLP/HTTP to one endpoint or spreads them over several.
//!
//! The model: the export worker (in the agent) owns timeouts, retries with backoff and
//! concurrency; this exporter owns the connections, the choice of endpoint, one circuit
//! breaker per endpoint, trace-ID routing, and the classification of every answer into
//! success (with a partial-success count), retryable (with the destination's hint) or permanent.
//!
//! One export call:
//! 1. takes a snapshot of the endpoint set ([`endpoint`]; names are resolved in the background);
//! 2. decides where the data goes: round-robin over endpoints whose circuit lets calls through,
//!    or, for spans with `balance = "trace_id"`, cuts the request by trace ID on the
//!    consistent-hash ring ([`balance`]);
//! 3. sends each part (concurrently when there are several). A part that fails retryably is sent
//!    to the next usable endpoint within the same call (its traces to their next ring endpoint);
//!    the endpoint's circuit breaker counts the failure. A call dropped by the worker's timeout
//!    counts as a failure too.
//! 4. answers: every part accepted → `Ok` with the rejected-item count; some part unsent on every
//!    usable endpoint → `Retryable` (the whole batch is retried; parts that had been accepted are
//!    then sent again: at least once, not exactly once); every part refused for good →
//!    `Permanent`; some refused for good, the rest accepted → `Ok` with the refused items counted
//!    as rejected. With every circuit open no call is made: `Retryable` with the time until the
//!    first circuit lets a probe through, so the data waits in the buffer.

pub mod balance;
pub mod circuit;
pub mod connect;
pub mod endpoint;
pub mod grpc;
pub mod http;

use balance::trace_point;
use bytes::Bytes;
use endpoint::{Endpoint, EndpointSet, Factory};
use sonde_config::{ExporterCommon, OtlpBalance, OtlpExporterConfig};
use sonde_core::log_limit::LogLimit;
use sonde_core::metrics::{Counter, Registry};
use sonde_core::wire::by_trace::split_by_trace;
use sonde_core::{Batch, BoxFuture, ExportError, ExportOutcome, Exporter, Signal};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

/// An accepted request: items the destination said it rejected anyway, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub rejected: u64,
    pub message: String,
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The endpoint is unwell or busy: try later, or elsewhere. Counts against its circuit.
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
        /// The `reason` label of the failure counter.
        label: String,
    },
    /// The endpoint refuses this data for good (bad request, auth, …).
    Permanent { reason: String, label: String },
}

/// Why an OTLP exporter could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("endpoint `{endpoint}`: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("no endpoint configured")]
    NoEndpoint,
    #[error(transparent)]
    Tls(#[from] connect::TlsError),
    #[error("header `{name}`: {reason}")]
    Header { name: String, reason: String },
    #[error("resolving endpoint names needs a tokio runtime")]
    NoRuntime,
}

/// Records a failure on the endpoint if the call is dropped before it finished (the worker's
/// timeout, or shutdown), so a hanging endpoint counts as failing.
struct CallGuard<'a> {
    ep: &'a Endpoint,
    armed: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.ep.failed("timeout");
        }
    }
}

/// How one attempt on one endpoint ended.
enum Attempt {
    Done(Result<Answer, CallError>),
    /// The circuit did not let the call through; it may in `.0`.
    Refused(Duration),
}

pub struct OtlpExporter {
    name: Arc<str>,
    balance: OtlpBalance,
    set: watch::Receiver<Arc<EndpointSet>>,
    rr: AtomicUsize,
    resolver: Mutex<Option<JoinHandle<()>>>,
    refused: Counter,
    failovers: Counter,
    warn_partial: LogLimit,
    warn_refused: LogLimit,
}

impl OtlpExporter {
    /// Builds the exporter: TLS settings and headers are checked now; connections open on first
    /// use. Host names are resolved by a background task (which needs a tokio runtime).
    pub fn new(
        name: &str,
        cfg: &OtlpExporterConfig,
        common: &ExporterCommon,
        metrics: Registry,
    ) -> Result<OtlpExporter, BuildError> {
        let name: Arc<str> = Arc::from(name);
        let concurrency = common.concurrency.unwrap_or(4);
        let factory = Arc::new(Factory::new(
            name.clone(),
            cfg,
            common.timeout.get(),
            concurrency,
            metrics.clone(),
        )?);
        let t = &metrics;
        let labels: [(&'static str, &str); 1] = [("exporter", &name)];
        let endpoints = t.gauge(
            "sonde_otlp_exporter_endpoints",
            "Endpoints (resolved addresses) an OTLP exporter sends to.",
            &labels,
        );
        let needs_resolving = (0..factory.targets.len()).any(|i| factory.is_name(i));
        let initial = Arc::new(factory.literal_set());
        endpoints.set(initial.list.len() as i64);
        let (tx, rx) = watch::channel(initial);
        let resolver = if needs_resolving {
            let handle =
                tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
            Some(handle.spawn(endpoint::resolve_loop(
                factory,
                tx,
                cfg.resolve_interval.get(),
                endpoints,
            )))
        } else {
            None
        };
        Ok(OtlpExporter {
            balance: cfg.balance,
            set: rx,
            rr: AtomicUsize::new(0),
            resolver: Mutex::new(resolver),
            refused: t.counter(
                "sonde_otlp_exporter_refused_calls_total",
                "Export calls not made because every endpoint's circuit was open.",
                &[("exporter", &name), ("reason", "circuit_open")],
            ),
            failovers: t.counter(
                "sonde_otlp_exporter_failovers_total",
                "Batches (or trace-ID parts) sent to another endpoint after one failed.",
                &labels,
            ),
            warn_partial: LogLimit::default(),
            warn_refused: LogLimit::default(),
            name,
        })
    }

    /// The endpoints as of now, waiting for the first resolution if there was none yet.
    async fn endpoints(&self) -> Result<Arc<EndpointSet>, ExportError> {
        let set = self.set.borrow().clone();
        let set = if set.ready {
            set
        } else {
            let mut rx = self.set.clone();
            let r = rx.wait_for(|s| s.ready).await.map(|s| s.clone());
            r.map_err(|_| ExportError::retryable("endpoint resolution stopped"))?
        };
        if set.list.is_empty() {
            return Err(ExportError::retryable(
                set.problem
                    .clone()
                    .unwrap_or_else(|| "no endpoint address known".into()),
            ));
        }
        Ok(set)
    }

    /// One attempt on one endpoint, through its circuit breaker.
    async fn attempt(&self, ep: &Endpoint, signal: Signal, payload: Bytes) -> Attempt {
        match ep.circuit.try_acquire(Instant::now()) {
            Err(r) => return Attempt::Refused(r.retry_after),
            Ok(Some(circuit::Transition::HalfOpened)) => ep.probing(),
            Ok(_) => {}
        }
        let mut guard = CallGuard { ep, armed: true };
        let result = ep.client.export(signal, payload).await;
        guard.armed = false;
        match &result {
            Ok(_) => ep.answered(true),
            Err(CallError::Permanent { .. }) => ep.answered(false),
            Err(CallError::Retryable { label, .. }) => ep.failed(label),
        }
        Attempt::Done(result)
    }

    async fn export_batch(&self, batch: &Batch) -> Result<ExportOutcome, ExportError> {
        let set = self.endpoints().await?;
        let n = set.list.len();
        let by_trace =
            self.balance == OtlpBalance::TraceId && batch.signal == Signal::Traces && n > 1;
        // Endpoints that failed during this call are not tried again in it.
        let mut excluded = vec![false; n];
        let mut pending: Vec<(Bytes, u64)> = vec![(batch.payload.clone(), batch.items)];
        let mut rejected = 0u64;
        let mut permanent: Vec<String> = Vec::new();
        let mut accepted_parts = 0usize;
        let mut last_retryable: Option<(String, Option<Duration>)> = None;
        let mut hints_all = true;
        let mut wait_min: Option<Duration> = None;
        let rr_start = self.rr.fetch_add(1, Ordering::Relaxed);
        for round in 0..n {
            if pending.is_empty() {
                break;
            }
            let now = Instant::now();
            let usable: Vec<bool> = (0..n)
                .map(|i| !excluded[i] && set.list[i].circuit.available(now))
                .collect();
            if !usable.iter().any(|u| *u) {
                break;
            }
            // Where each pending piece goes.
            let mut sends: Vec<(usize, Bytes, u64)> = Vec::new();
            for (payload, items) in pending.drain(..) {
                if by_trace {
                    let parts = split_by_trace(&payload, n, |tid| {
                        set.ring.pick(trace_point(tid), |i| usable[i]).unwrap_or(0)
                    })
                    .map_err(|e| {
                        ExportError::permanent(format!("cannot split the batch by trace ID: {e}"))
                    })?;
                    sends.extend(parts.into_iter().map(|p| (p.group, p.payload, p.items)));
                } else {
                    let pick = (0..n)
                        .map(|k| (rr_start + round + k) % n)
                        .find(|i| usable[*i]);
                    if let Some(i) = pick {
                        sends.push((i, payload, items));
                    }
                }
            }
            if round > 0 {
                self.failovers.add(sends.len() as u64);
            }
            let results =
                futures_util::future::join_all(sends.iter().map(|(i, payload, _)| {
                    self.attempt(&set.list[*i], batch.signal, payload.clone())
                }))
                .await;
            for ((i, payload, items), result) in sends.into_iter().zip(results) {
                let ep = &set.list[i];
                match result {
                    Attempt::Done(Ok(answer)) => {
                        accepted_parts += 1;
                        rejected += answer.rejected.min(items);
                        if answer.rejected > 0 && self.warn_partial.check().is_some() {
                            warn!(exporter = %self.name, endpoint = %ep.label, rejected = answer.rejected, error = %answer.message, "endpoint accepted a batch but rejected part of it");
                        }
                    }
                    Attempt::Done(Err(CallError::Permanent { reason, .. })) => {
                        rejected += items;
                        permanent.push(reason);
                    }
                    Attempt::Done(Err(CallError::Retryable {
                        reason,
                        retry_after,
                        ..
                    })) => {
                        debug!(exporter = %self.name, endpoint = %ep.label, error = %reason, "export failed on this endpoint");
                        excluded[i] = true;
                        hints_all &= retry_after.is_some();
                        last_retryable = Some((reason, retry_after));
                        pending.push((payload, items));
                    }
                    Attempt::Refused(wait) => {
                        excluded[i] = true;
                        wait_min = Some(wait_min.map_or(wait, |w| w.min(wait)));
                        pending.push((payload, items));
                    }
                }
            }
        }
        if !pending.is_empty() {
            if accepted_parts > 0 {
                debug!(exporter = %self.name, accepted_parts, "part of a split batch was accepted; the retry sends it again");
            }
            return Err(match last_retryable {
                Some((reason, hint)) => ExportError::Retryable {
                    reason,
                    retry_after: if hints_all { hint } else { None },
                },
                None => {
                    self.refused.inc();
                    let now = Instant::now();
                    let wait = set
                        .list
                        .iter()
                        .map(|e| e.circuit.wait(now))
                        .chain(wait_min)
                        .min()
                        .unwrap_or(Duration::from_secs(1))
                        .max(Duration::from_millis(10));
                    if self.warn_refused.check().is_some() {
                        warn!(exporter = %self.name, retry_in = ?wait, "every endpoint's circuit is open; the data waits in the buffer");
                    }
                    ExportError::Retryable {
                        reason: "every endpoint's circuit is open".into(),
                        retry_after: Some(wait),
                    }
                }
            });
        }
        if !permanent.is_empty() {
            if accepted_parts == 0 {
                return Err(ExportError::permanent(permanent.join("; ")));
            }
            error!(exporter = %self.name, items = rejected, error = %permanent.join("; "), "part of a split batch was refused for good and dropped");
        }
        Ok(ExportOutcome {
            rejected_items: rejected,
        })
    }
}

impl Exporter for OtlpExporter {
    fn export<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<ExportOutcome, ExportError>> {
        Box::pin(self.export_batch(batch))
    }

    fn shutdown(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        if let Some(h) = self
            .resolver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            h.abort();
        }
        Box::pin(async { Ok(()) })
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        if let Some(h) = self
            .resolver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            h.abort();
        }
    }
}
