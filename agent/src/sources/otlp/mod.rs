//! `type = "otlp"`: the door through which apps on the host send traces, metrics and logs —
//! OTLP/gRPC (`TraceService/Export`, `MetricsService/Export`, `LogsService/Export`) and OTLP/HTTP
//! (`POST /v1/traces`, `/v1/metrics`, `/v1/logs`, protobuf or JSON).
//!
//! # The model
//!
//! A protobuf request is never decoded into structs: its bytes (gRPC: as tonic's framing and
//! decompression hand them over through `sonde_core`'s raw codec; HTTP: the body after bounded
//! decompression) are checked and counted by the wire walker and become a [`Batch`] as they came.
//! A JSON request is decoded once and encoded to protobuf ([`json`]). Nothing malformed (nor a
//! string field that is not UTF-8, which every decoder downstream would refuse) ever reaches a
//! buffer: it is refused with gRPC `INVALID_ARGUMENT` / HTTP 400 and a message saying
//! what is wrong, and counted.
//!
//! A request is answered success only when every exporter buffer that selects its batch has
//! accepted it ([`Receiver::accept`]). A buffer that stays full for `block_timeout` makes the
//! answer a retryable throttling response with a retry hint; a stopping agent answers
//! `UNAVAILABLE` / 503. Requests in flight are bounded by `max_in_flight` (a request waits up to
//! `block_timeout` for a slot, then is throttled), connections by `max_connections`, request
//! size by `max_request_size` before and after decompression, and the time to send a request by
//! `request_timeout`.
//!
//! Module map: [`server`] (listeners, connections, TLS handshake, graceful stop), [`grpc`] and
//! [`http`] (one request each: checks, decoding, the answer), [`decompress`], [`json`],
//! [`auth`], [`tls`]. The raw gRPC codec and the `google.rpc.Status`/`RetryInfo` payloads are
//! `sonde_core::otlp`'s.

mod auth;
mod decompress;
mod grpc;
mod http;
mod json;
mod server;
pub(crate) mod tls;

use super::{SourceContext, SourceTask};
use crate::pipeline::buffer::{PushError, Wait};
use crate::pipeline::router::Router;
use bytes::Bytes;
use sonde_config::OtlpSourceConfig;
use sonde_core::log_limit::LogLimit;
use sonde_core::metrics::{Counter, Gauge, Registry};
use sonde_core::{wire, Batch, BuildError, Signal};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Which listener a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

impl Transport {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }

    /// The name people use.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "gRPC",
            Transport::Http => "HTTP",
        }
    }
}

/// Why a request was refused: decides the gRPC code, the HTTP status, whether a retry hint is
/// given, and the `reason` label of `sonde_source_refused_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Bytes that are not a well-formed request: protobuf, JSON, compressed data, gRPC framing.
    Malformed,
    /// Larger than `max_request_size`, as sent or after decompression.
    TooLarge,
    UnsupportedMediaType,
    UnsupportedEncoding,
    Unauthenticated,
    NotFound,
    MethodNotAllowed,
    /// The client did not send the whole request within `request_timeout`.
    Timeout,
    /// Every in-flight slot stayed taken for `block_timeout`.
    TooManyRequests,
    /// A selected buffer stayed full for `block_timeout`.
    BufferFull,
    /// The agent is stopping.
    Stopping,
}

impl Reason {
    const ALL: [Reason; 11] = [
        Reason::Malformed,
        Reason::TooLarge,
        Reason::UnsupportedMediaType,
        Reason::UnsupportedEncoding,
        Reason::Unauthenticated,
        Reason::NotFound,
        Reason::MethodNotAllowed,
        Reason::Timeout,
        Reason::TooManyRequests,
        Reason::BufferFull,
        Reason::Stopping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::TooLarge => "too_large",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::UnsupportedEncoding => "unsupported_encoding",
            Reason::Unauthenticated => "unauthenticated",
            Reason::NotFound => "not_found",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::Timeout => "timeout",
            Reason::TooManyRequests => "too_many_requests",
            Reason::BufferFull => "buffer_full",
            Reason::Stopping => "stopping",
        }
    }

    /// Whether the client is told to come back later (with `RetryInfo` / `Retry-After`).
    pub fn throttles(self) -> bool {
        matches!(
            self,
            Reason::TooManyRequests | Reason::BufferFull | Reason::Stopping
        )
    }

    /// The gRPC status code. Throttling uses the codes the OTLP spec makes retryable with a
    /// `RetryInfo`; a request too large gets `RESOURCE_EXHAUSTED` *without* one, which the spec
    /// makes non-retryable.
    pub fn grpc_code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            Reason::Malformed => Code::InvalidArgument,
            Reason::TooLarge => Code::ResourceExhausted,
            Reason::UnsupportedMediaType => Code::InvalidArgument,
            Reason::UnsupportedEncoding => Code::Unimplemented,
            Reason::Unauthenticated => Code::Unauthenticated,
            Reason::NotFound | Reason::MethodNotAllowed => Code::Unimplemented,
            Reason::Timeout => Code::DeadlineExceeded,
            Reason::TooManyRequests => Code::ResourceExhausted,
            Reason::BufferFull | Reason::Stopping => Code::Unavailable,
        }
    }

    /// The HTTP status (the OTLP/HTTP spec's: 400 bad data, 429/503 throttling with
    /// `Retry-After`).
    pub fn http_status(self) -> u16 {
        match self {
            Reason::Malformed => 400,
            Reason::TooLarge => 413,
            Reason::UnsupportedMediaType | Reason::UnsupportedEncoding => 415,
            Reason::Unauthenticated => 401,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::Timeout => 408,
            Reason::TooManyRequests => 429,
            Reason::BufferFull | Reason::Stopping => 503,
        }
    }
}

/// A refused request: why, and the message the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The limits a request is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_request_size: usize,
    pub request_timeout: Duration,
    pub block_timeout: Duration,
    pub retry_after: Duration,
}

/// The counters of one transport, fetched once so the hot path only touches atomics.
struct TransportCounters {
    requests: Counter,
    items: [Counter; 3],
    bytes: [Counter; 3],
    refused_requests: [Counter; Reason::ALL.len()],
    refused_items: [Counter; Reason::ALL.len()],
}

impl TransportCounters {
    fn new(metrics: &Registry, source: &str, t: Transport) -> Self {
        let per_signal = |name, help| {
            Signal::ALL.map(|s| {
                metrics.counter(
                    name,
                    help,
                    &[
                        ("source", source),
                        ("transport", t.as_str()),
                        ("signal", s.as_str()),
                    ],
                )
            })
        };
        let per_reason = |name, help| {
            Reason::ALL.map(|r| {
                metrics.counter(
                    name,
                    help,
                    &[
                        ("source", source),
                        ("transport", t.as_str()),
                        ("reason", r.as_str()),
                    ],
                )
            })
        };
        Self {
            requests: metrics.counter(
                "sonde_source_accepted_requests_total",
                "Export requests an OTLP source answered with success.",
                &[("source", source), ("transport", t.as_str())],
            ),
            items: per_signal(
                "sonde_source_received_items_total",
                "Items a source produced or received.",
            ),
            bytes: per_signal(
                "sonde_source_received_bytes_total",
                "Encoded (protobuf) bytes an OTLP source accepted.",
            ),
            refused_requests: per_reason(
                "sonde_source_refused_requests_total",
                "Requests an OTLP source refused, by reason.",
            ),
            refused_items: per_reason(
                "sonde_source_refused_items_total",
                "Items in well-formed requests an OTLP source refused (throttled or stopping); \
                 the client keeps them and retries.",
            ),
        }
    }
}

/// What both listeners share: the router, the limits, the in-flight slots, the counters.
pub struct Receiver {
    pub name: Arc<str>,
    router: Router,
    shutdown: CancellationToken,
    pub limits: Limits,
    in_flight: Arc<Semaphore>,
    in_flight_gauge: Gauge,
    auth: Option<auth::BearerAuth>,
    pub metrics: Registry,
    counters: [TransportCounters; 2],
    no_route: Counter,
    warn_limit: [LogLimit; Reason::ALL.len()],
    no_route_warn: LogLimit,
}

/// An in-flight slot, held for the whole handling of a request.
pub struct InFlight {
    _permit: OwnedSemaphorePermit,
    gauge: Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.add(-1);
    }
}

impl Receiver {
    fn new(cfg: &OtlpSourceConfig, cx: &SourceContext, auth: Option<auth::BearerAuth>) -> Receiver {
        let name: &str = &cx.name;
        Receiver {
            name: cx.name.clone(),
            router: cx.output.clone(),
            shutdown: cx.shutdown.clone(),
            limits: Limits {
                max_request_size: cfg.max_request_size.as_usize(),
                request_timeout: cfg.request_timeout.get(),
                block_timeout: cfg.block_timeout.get(),
                retry_after: cfg.retry_after.get(),
            },
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight)),
            in_flight_gauge: cx.metrics.gauge(
                "sonde_source_in_flight_requests",
                "Requests an OTLP source is handling right now.",
                &[("source", name)],
            ),
            auth,
            metrics: cx.metrics.clone(),
            counters: [Transport::Grpc, Transport::Http]
                .map(|t| TransportCounters::new(&cx.metrics, name, t)),
            no_route: cx.metrics.counter(
                "sonde_source_dropped_items_total",
                "Items a source dropped before any buffer took them, by reason.",
                &[("source", name), ("reason", "no_route")],
            ),
            warn_limit: Reason::ALL.map(|_| LogLimit::default()),
            no_route_warn: LogLimit::default(),
        }
    }

    fn counters(&self, t: Transport) -> &TransportCounters {
        match t {
            Transport::Grpc => &self.counters[0],
            Transport::Http => &self.counters[1],
        }
    }

    /// Whether the request may pass authentication (always, without `auth`).
    pub fn authorized(&self, authorization: Option<&[u8]>) -> Result<(), Refusal> {
        match &self.auth {
            None => Ok(()),
            Some(a) if a.check(authorization) => Ok(()),
            Some(_) => Err(Refusal::new(
                Reason::Unauthenticated,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
            )),
        }
    }

    /// Takes an in-flight slot, waiting up to `block_timeout` for one.
    pub async fn slot(&self) -> Result<InFlight, Refusal> {
        let permit = match self.in_flight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let wait = tokio::time::timeout(
                    self.limits.block_timeout,
                    self.in_flight.clone().acquire_owned(),
                );
                tokio::select! {
                    r = wait => match r {
                        Ok(Ok(p)) => p,
                        _ => return Err(Refusal::new(
                            Reason::TooManyRequests,
                            "too many requests in flight (max_in_flight); retry later",
                        )),
                    },
                    _ = self.shutdown.cancelled() => return Err(stopping()),
                }
            }
        };
        self.in_flight_gauge.add(1);
        Ok(InFlight {
            _permit: permit,
            gauge: self.in_flight_gauge.clone(),
        })
    }

    /// Validates a protobuf export request and hands it to the router. `Ok` means every
    /// selected buffer accepted it (or a `drop_newest` buffer dropped it by policy, which the
    /// buffer counts): the request may be answered success.
    pub async fn accept(
        &self,
        t: Transport,
        signal: Signal,
        payload: Bytes,
    ) -> Result<(), Refusal> {
        // Well-formed, and every string is UTF-8 (what any decoder downstream requires: one
        // bad string would otherwise cost a whole merged batch at a Parquet or stdout exporter).
        let items = wire::validate(signal, &payload)
            .and_then(|items| wire::utf8::check(signal, &payload).map(|()| items))
            .map_err(|e| {
                Refusal::new(
                    Reason::Malformed,
                    format!("invalid OTLP {signal} export request: {e}"),
                )
            })?;
        let counters = self.counters(t);
        let len = payload.len() as u64;
        if items > 0 {
            let payload = own_allocation(payload);
            let batch = Batch::from_trusted(signal, payload, items, self.name.clone());
            let deadline = Instant::now() + self.limits.block_timeout;
            let sent = tokio::select! {
                biased;
                r = self.router.send(batch, Wait::Until(deadline)) => r,
                _ = self.shutdown.cancelled() => Err(PushError::Closed),
            };
            match sent {
                Ok(d) if d.queued == 0 && d.dropped == 0 => {
                    self.no_route.add(items);
                    if let Some(n) = self.no_route_warn.check() {
                        warn!(source = %self.name, %signal, suppressed = n,
                            "no exporter takes this signal from this source; items dropped");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let reason = match e {
                        PushError::Full => Reason::BufferFull,
                        PushError::Closed => Reason::Stopping,
                    };
                    counters.refused_items[reason as usize].add(items);
                    return Err(match e {
                        PushError::Full => Refusal::new(
                            Reason::BufferFull,
                            "the agent's buffers are full; retry later",
                        ),
                        PushError::Closed => stopping(),
                    });
                }
            }
        }
        let i = signal.index();
        counters.items[i].add(items);
        counters.bytes[i].add(len);
        counters.requests.inc();
        debug!(source = %self.name, transport = t.as_str(), %signal, items, bytes = len, "request accepted");
        Ok(())
    }

    /// Counts a refusal and logs it (debug each time; warn at most every ten seconds per
    /// reason for the ones that mean trouble).
    pub fn refused(&self, t: Transport, r: &Refusal) {
        self.counters(t).refused_requests[r.reason as usize].inc();
        debug!(source = %self.name, transport = t.as_str(), reason = r.reason.as_str(), error = %r.message, "request refused");
        let noteworthy = matches!(
            r.reason,
            Reason::Malformed
                | Reason::TooLarge
                | Reason::Unauthenticated
                | Reason::TooManyRequests
                | Reason::BufferFull
        );
        if noteworthy {
            if let Some(n) = self.warn_limit[r.reason as usize].check() {
                warn!(source = %self.name, transport = t.as_str(), reason = r.reason.as_str(),
                    error = %r.message, suppressed = n, "refusing OTLP requests");
            }
        }
    }
}

/// The payload in an allocation of about its own size. The buffers count a batch's bytes to
/// bound memory, but a `Bytes` cut from a larger receive buffer (hyper's, tonic's, or a
/// decompression `Vec` that grew by doubling) keeps all of that allocation alive: a 1 KiB
/// request could pin 8 KiB or more, and the bound would be off by that factor. A payload that is
/// the sole owner of a snug allocation is kept as it is (the common case for large gRPC
/// messages); anything else is copied once.
fn own_allocation(payload: Bytes) -> Bytes {
    match payload.try_into_mut() {
        Ok(m) if m.capacity() - m.len() <= m.len() / 8 => m.freeze(),
        Ok(m) => Bytes::copy_from_slice(&m),
        Err(b) => Bytes::copy_from_slice(&b),
    }
}

fn stopping() -> Refusal {
    Refusal::new(Reason::Stopping, "the agent is stopping; retry later")
}

/// Why a receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Bind(#[from] server::BindError),
}

/// Reads the token and certificates, binds the listeners, and returns the task that serves them
/// until `cx.shutdown`. Nothing is served unless everything could be set up.
pub async fn build(cfg: &OtlpSourceConfig, cx: SourceContext) -> Result<SourceTask, BuildError> {
    let (kind, name) = (cx.kind, cx.name.clone());
    let bound = Bound::bind(cfg, cx)
        .await
        .map_err(|e| BuildError::new(kind, &name, e))?;
    Ok(bound.task())
}

/// A receiver whose listeners are bound but not yet serving.
pub struct Bound {
    listeners: Vec<server::Listener>,
    rx: Arc<Receiver>,
    max_connections: usize,
    shutdown: CancellationToken,
}

impl Bound {
    pub async fn bind(cfg: &OtlpSourceConfig, cx: SourceContext) -> Result<Bound, ReceiverError> {
        let auth = cfg
            .auth
            .as_ref()
            .map(|a| auth::BearerAuth::from_file(&a.bearer_token_file))
            .transpose()?;
        let mut listeners = Vec::new();
        for (transport, listen, alpn) in [
            (Transport::Grpc, cfg.grpc, &[&b"h2"[..]][..]),
            (
                Transport::Http,
                cfg.http,
                &[&b"h2"[..], &b"http/1.1"[..]][..],
            ),
        ] {
            let Some(addr) = listen.addr() else { continue };
            let tls = cfg
                .tls
                .as_ref()
                .map(|t| tls::server_config(t, alpn))
                .transpose()?;
            listeners.push(server::Listener::bind(transport, addr, tls).await?);
        }
        for l in &listeners {
            info!(source = %cx.name, transport = l.transport.as_str(), address = %l.local_addr,
                tls = l.tls(), auth = cfg.auth.is_some(), "OTLP/{} listening", l.transport.label());
        }
        Ok(Bound {
            rx: Arc::new(Receiver::new(cfg, &cx, auth)),
            listeners,
            max_connections: cfg.max_connections,
            shutdown: cx.shutdown.clone(),
        })
    }

    /// The bound address of a transport's listener (port 0 in the config asks the OS for one).
    pub fn local_addr(&self, t: Transport) -> Option<std::net::SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.transport == t)
            .map(|l| l.local_addr)
    }

    /// The task that serves until shutdown, then lets open connections finish.
    pub fn task(self) -> SourceTask {
        Box::pin(server::run(
            self.listeners,
            self.rx,
            self.max_connections,
            self.shutdown,
        ))
    }
}

#[cfg(test)]
mod tests;
