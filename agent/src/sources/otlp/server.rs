//! The listeners: bind, accept (at most `max_connections` open per listener; more are closed at
//! once and counted), TLS handshake under a deadline, then serve the connection with hyper
//! (HTTP/1.1 or HTTP/2, detected from the first bytes or from ALPN) until it closes or the
//! source stops.
//!
//! Stopping is graceful: the listeners close first (no new connections), then each connection is
//! asked to finish — HTTP/2 sends GOAWAY and lets its open streams complete, HTTP/1 closes after
//! the response in progress — and the source task ends when the last connection has.
//!
//! This module knows nothing of OTLP: requests go to [`super::grpc::handle`] or
//! [`super::http::handle`] according to the listener.

use super::{grpc, http, Receiver, Transport};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use sonde_core::metrics::{Counter, Gauge};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// HTTP/2 streams one connection may have open at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// Largest header block accepted.
const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// HTTP/2 flow-control windows: what a client may send ahead of what we have read. The
/// connection window bounds the unread data one connection can park in memory while its
/// requests wait for an in-flight slot (hyper's default is 1 MiB); on loopback or a pod network
/// it is still far more than the bandwidth-delay product.
const H2_CONNECTION_WINDOW: u32 = 512 * 1024;
const H2_STREAM_WINDOW: u32 = 256 * 1024;

/// A bound listener, not yet accepting.
pub struct Listener {
    pub transport: Transport,
    pub local_addr: SocketAddr,
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for OTLP/{transport} on {addr}: {source}")]
pub struct BindError {
    pub transport: &'static str,
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

impl Listener {
    pub async fn bind(
        transport: Transport,
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Listener, BindError> {
        let err = |source| BindError {
            transport: transport.label(),
            addr,
            source,
        };
        let tcp = TcpListener::bind(addr).await.map_err(err)?;
        let local_addr = tcp.local_addr().map_err(err)?;
        Ok(Listener {
            transport,
            local_addr,
            tcp,
            tls: tls.map(TlsAcceptor::from),
        })
    }

    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Per-listener connection counters.
#[derive(Clone)]
struct ConnMetrics {
    open: Gauge,
    refused_limit: Counter,
    refused_handshake: Counter,
}

impl ConnMetrics {
    fn new(rx: &Receiver, transport: Transport) -> Self {
        let labels = [("source", &*rx.name), ("transport", transport.as_str())];
        let refused = |reason| {
            rx.metrics.counter(
                "sonde_source_refused_connections_total",
                "Connections an OTLP source closed at once, by reason (limit: max_connections \
                 reached; handshake: TLS handshake failed or timed out).",
                &[
                    ("source", &*rx.name),
                    ("transport", transport.as_str()),
                    ("reason", reason),
                ],
            )
        };
        Self {
            open: rx.metrics.gauge(
                "sonde_source_connections",
                "Connections open on an OTLP source's listener.",
                &labels,
            ),
            refused_limit: refused("limit"),
            refused_handshake: refused("handshake"),
        }
    }
}

/// Serves every listener until `shutdown`, then lets open connections finish.
pub async fn run(
    listeners: Vec<Listener>,
    rx: Arc<Receiver>,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let mut loops = JoinSet::new();
    for l in listeners {
        loops.spawn(accept_loop(
            l,
            rx.clone(),
            max_connections,
            shutdown.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
    info!(source = %rx.name, "OTLP receiver stopped");
}

async fn accept_loop(
    listener: Listener,
    rx: Arc<Receiver>,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let Listener {
        transport,
        local_addr,
        tcp,
        tls,
    } = listener;
    let limit = Arc::new(Semaphore::new(max_connections));
    let metrics = ConnMetrics::new(&rx, transport);
    let mut conns = JoinSet::new();
    let mut accept_backoff = Duration::from_millis(5);
    let mut last_limit_warn: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = tcp.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                accept_backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                warn!(source = %rx.name, address = %local_addr, error = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(accept_backoff) => {}
                }
                accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics.refused_limit.inc();
            if last_limit_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                last_limit_warn = Some(tokio::time::Instant::now());
                warn!(source = %rx.name, transport = transport.as_str(), max_connections, %peer,
                    "connection limit reached; closing new connections");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let rx = rx.clone();
        let tls = tls.clone();
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            let _permit = permit;
            metrics.open.add(1);
            connection(stream, peer, transport, tls, rx, &metrics, shutdown).await;
            metrics.open.add(-1);
        });
    }
    drop(tcp);
    debug!(source = %rx.name, transport = transport.as_str(), open = conns.len(), "listener closed; finishing connections");
    while conns.join_next().await.is_some() {}
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    tls: Option<TlsAcceptor>,
    rx: Arc<Receiver>,
    metrics: &ConnMetrics,
    shutdown: CancellationToken,
) {
    let deadline = rx.limits.request_timeout;
    match tls {
        None => {
            // A connection that never says anything holds a slot; give it the request timeout
            // (and none at all once the source stops).
            let spoke = tokio::select! {
                r = tokio::time::timeout(deadline, stream.readable()) => matches!(r, Ok(Ok(()))),
                _ = shutdown.cancelled() => false,
            };
            if spoke {
                serve(stream, transport, rx, shutdown).await
            }
        }
        Some(acceptor) => {
            let handshake = tokio::select! {
                r = tokio::time::timeout(deadline, acceptor.accept(stream)) => r,
                _ = shutdown.cancelled() => return,
            };
            match handshake {
                Ok(Ok(tls_stream)) => serve(tls_stream, transport, rx, shutdown).await,
                Ok(Err(e)) => {
                    metrics.refused_handshake.inc();
                    debug!(source = %rx.name, %peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    metrics.refused_handshake.inc();
                    debug!(source = %rx.name, %peer, "TLS handshake timed out");
                }
            }
        }
    }
}

async fn serve<I>(io: I, transport: Transport, rx: Arc<Receiver>, shutdown: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(rx.limits.request_timeout)
        .max_buf_size(MAX_HEADER_BYTES as usize * 2);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .max_header_list_size(MAX_HEADER_BYTES)
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    let io = TokioIo::new(io);
    // Runs a connection to its end; on shutdown asks it to finish gracefully and waits for that.
    macro_rules! drive {
        ($conn:expr) => {{
            let mut conn = std::pin::pin!($conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = shutdown.cancelled() => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }};
    }
    match transport {
        Transport::Grpc => {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                let rx = rx.clone();
                async move { Ok::<_, Infallible>(grpc::handle(rx, req).await) }
            });
            drive!(builder.serve_connection(io, svc))
        }
        Transport::Http => {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                let rx = rx.clone();
                async move { Ok::<_, Infallible>(http::handle(rx, req).await) }
            });
            drive!(builder.serve_connection(io, svc))
        }
    }
}
