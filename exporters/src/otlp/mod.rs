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

    /// Sends the batch in rounds: each round sends what is still pending to usable endpoints
    /// (round-robin, or cut by trace ID), and what fails on one endpoint goes to another in
    /// the next round. At most one round per endpoint.
    async fn export_batch(&self, batch: &Batch) -> Result<ExportOutcome, ExportError> {
        let set = self.endpoints().await?;
        let n = set.list.len();
        let by_trace =
            self.balance == OtlpBalance::TraceId && batch.signal == Signal::Traces && n > 1;
        let mut call = Call::new(batch, n);
        let rr_start = self.rr.fetch_add(1, Ordering::Relaxed);
        for round in 0..n {
            if call.pending.is_empty() {
                break;
            }
            let now = Instant::now();
            let usable: Vec<bool> = (0..n)
                .map(|i| !call.excluded[i] && set.list[i].circuit.available(now))
                .collect();
            if !usable.iter().any(|u| *u) {
                break;
            }
            let sends =
                route_pending(&set, &mut call.pending, &usable, by_trace, rr_start + round)?;
            if round > 0 {
                self.failovers.add(sends.len() as u64);
            }
            let results =
                futures_util::future::join_all(sends.iter().map(|(i, payload, _)| {
                    self.attempt(&set.list[*i], batch.signal, payload.clone())
                }))
                .await;
            for ((i, payload, items), result) in sends.into_iter().zip(results) {
                self.take_result(&mut call, &set.list[i], i, payload, items, result);
            }
        }
        self.conclude(&set, call)
    }

    /// Records how one piece's attempt on endpoint `i` ended: accepted (with what the endpoint
    /// rejected), refused for good, or pending again for another endpoint.
    fn take_result(
        &self,
        call: &mut Call,
        ep: &Endpoint,
        i: usize,
        payload: Bytes,
        items: u64,
        result: Attempt,
    ) {
        match result {
            Attempt::Done(Ok(answer)) => {
                call.accepted_parts += 1;
                call.rejected += answer.rejected.min(items);
                if answer.rejected > 0 && self.warn_partial.check().is_some() {
                    warn!(exporter = %self.name, endpoint = %ep.label, rejected = answer.rejected, error = %answer.message, "endpoint accepted a batch but rejected part of it");
                }
            }
            Attempt::Done(Err(CallError::Permanent { reason, .. })) => {
                call.rejected += items;
                call.permanent.push(reason);
            }
            Attempt::Done(Err(CallError::Retryable {
                reason,
                retry_after,
                ..
            })) => {
                debug!(exporter = %self.name, endpoint = %ep.label, error = %reason, "export failed on this endpoint");
                call.excluded[i] = true;
                call.hints_all &= retry_after.is_some();
                call.last_retryable = Some((reason, retry_after));
                call.pending.push((payload, items));
            }
            Attempt::Refused(wait) => {
                call.excluded[i] = true;
                call.wait_min = Some(call.wait_min.map_or(wait, |w| w.min(wait)));
                call.pending.push((payload, items));
            }
        }
    }

    /// The call's result once the rounds are over: retry what is still pending, refuse for
    /// good when nothing was accepted and something was refused, otherwise success (with the
    /// items the endpoints rejected).
    fn conclude(&self, set: &EndpointSet, call: Call) -> Result<ExportOutcome, ExportError> {
        if !call.pending.is_empty() {
            if call.accepted_parts > 0 {
                let accepted_parts = call.accepted_parts;
                debug!(exporter = %self.name, accepted_parts, "part of a split batch was accepted; the retry sends it again");
            }
            return Err(match call.last_retryable {
                Some((reason, hint)) => ExportError::Retryable {
                    reason,
                    retry_after: if call.hints_all { hint } else { None },
                },
                None => self.circuits_open(set, call.wait_min),
            });
        }
        if !call.permanent.is_empty() {
            if call.accepted_parts == 0 {
                return Err(ExportError::permanent(call.permanent.join("; ")));
            }
            error!(exporter = %self.name, items = call.rejected, error = %call.permanent.join("; "), "part of a split batch was refused for good and dropped");
        }
        Ok(ExportOutcome {
            rejected_items: call.rejected,
        })
    }

    /// Nothing was tried because every circuit is open: retry once the first one may let a
    /// call through (or `wait_min`, what a refusing circuit asked for, if sooner).
    fn circuits_open(&self, set: &EndpointSet, wait_min: Option<Duration>) -> ExportError {
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
}

/// What one export call has learnt so far, across its rounds.
struct Call {
    /// Endpoints that failed during this call: not tried again in it.
    excluded: Vec<bool>,
    /// Pieces still to deliver: the batch, or the trace-ID parts whose endpoint failed.
    pending: Vec<(Bytes, u64)>,
    /// Items the endpoints rejected or refused for good.
    rejected: u64,
    /// Reasons of the permanent refusals.
    permanent: Vec<String>,
    accepted_parts: usize,
    last_retryable: Option<(String, Option<Duration>)>,
    /// Every retryable failure came with a retry-after hint.
    hints_all: bool,
    /// The shortest wait a refusing circuit asked for.
    wait_min: Option<Duration>,
}

impl Call {
    fn new(batch: &Batch, endpoints: usize) -> Call {
        Call {
            excluded: vec![false; endpoints],
            pending: vec![(batch.payload.clone(), batch.items)],
            rejected: 0,
            permanent: Vec::new(),
            accepted_parts: 0,
            last_retryable: None,
            hints_all: true,
            wait_min: None,
        }
    }
}

/// Where each pending piece goes this round, as (endpoint index, payload, items): cut by
/// trace ID over the usable endpoints, or whole to the next usable endpoint after `turn`.
fn route_pending(
    set: &EndpointSet,
    pending: &mut Vec<(Bytes, u64)>,
    usable: &[bool],
    by_trace: bool,
    turn: usize,
) -> Result<Vec<(usize, Bytes, u64)>, ExportError> {
    let n = set.list.len();
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
            let pick = (0..n).map(|k| (turn + k) % n).find(|i| usable[*i]);
            if let Some(i) = pick {
                sends.push((i, payload, items));
            }
        }
    }
    Ok(sends)
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
