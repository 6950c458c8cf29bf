//! The TCP listener (RFC 6587; with TLS, RFC 5425): accept at most `max_connections` (more are
//! closed at once and counted), finish the TLS handshake under a deadline, then read each
//! connection in its own task: a read, its messages cut by the [`Framer`], one batch handed to
//! the router — and no next read until the router took it, so a sender faster than the
//! pipeline is held back by TCP flow control.

use super::frame::Framer;
use super::record::Origin;
use super::{Shared, Sink, SyslogError, Transport};
use sonde_core::log_limit::LogLimit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// Bytes asked for per read.
const READ_CHUNK: usize = 64 * 1024;
/// Time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound TCP listener, not yet accepting.
pub struct Listener {
    pub local_addr: SocketAddr,
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Listener {
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Listener, SyslogError> {
        let err = |source| SyslogError::Bind {
            transport: "TCP",
            addr,
            source,
        };
        let tcp = TcpListener::bind(addr).await.map_err(err)?;
        let local_addr = tcp.local_addr().map_err(err)?;
        Ok(Listener {
            local_addr,
            tcp,
            tls: tls.map(TlsAcceptor::from),
        })
    }

    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }
}

pub async fn accept_loop(listener: Listener, shared: Arc<Shared>, max_connections: usize) {
    let Listener { tcp, tls, .. } = listener;
    let limit = Arc::new(Semaphore::new(max_connections));
    let limit_warn = LogLimit::default();
    let mut conns = JoinSet::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = tcp.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                warn!(source = %shared.name, error = %e, "accept failed");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared.counters.refused_limit.inc();
            if let Some(suppressed) = limit_warn.check() {
                warn!(source = %shared.name, max_connections, %peer, suppressed,
                    "syslog connection limit reached; closing new connections");
            }
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            let _permit = permit;
            shared.counters.connections.add(1);
            connection(stream, peer, tls, &shared).await;
            shared.counters.connections.add(-1);
        });
    }
    drop(tcp);
    while conns.join_next().await.is_some() {}
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: &Arc<Shared>,
) {
    let peer_text = peer.ip().to_string();
    let Some(acceptor) = tls else {
        return read_loop(stream, &peer_text, shared).await;
    };
    let handshake = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
        _ = shared.shutdown.cancelled() => return,
    };
    match handshake {
        Ok(Ok(tls_stream)) => read_loop(tls_stream, &peer_text, shared).await,
        Ok(Err(e)) => {
            shared.counters.refused_handshake.inc();
            debug!(source = %shared.name, %peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            shared.counters.refused_handshake.inc();
            debug!(source = %shared.name, %peer, "TLS handshake timed out");
        }
    }
}

/// Reads one connection to its end (or the source's stop).
async fn read_loop<R: AsyncRead + Unpin>(mut io: R, peer: &str, shared: &Arc<Shared>) {
    let mut framer = Framer::new(shared.max_message_size);
    let mut sink = Sink::new(shared.clone(), Transport::Tcp);
    let counters = &shared.counters;
    loop {
        framer.buffer().reserve(READ_CHUNK);
        let read = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => break,
            r = io.read_buf(framer.buffer()) => r,
        };
        let now = SystemTime::now();
        let open = match read {
            Ok(0) => false,
            Ok(n) => {
                sink.read_bytes(n);
                true
            }
            Err(e) => {
                debug!(source = %shared.name, %peer, error = %e, "syslog connection read failed");
                false
            }
        };
        while let Some(f) = framer.next_frame() {
            sink.push(
                &f.bytes,
                Origin {
                    peer: Some(peer),
                    cut: f.cut,
                },
                now,
            );
            if sink.full() && !sink.flush().await {
                return;
            }
        }
        if !open {
            if let Some(f) = framer.finish() {
                sink.push(
                    &f.bytes,
                    Origin {
                        peer: Some(peer),
                        cut: f.cut,
                    },
                    now,
                );
            }
        }
        counters.framing_errors.add(framer.take_framing_errors());
        if !open {
            break;
        }
        if !sink.flush().await {
            return;
        }
    }
    sink.flush_final().await;
}
