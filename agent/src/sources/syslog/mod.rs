//! `type = "syslog"`: receives syslog messages over UDP, TCP (optionally TLS, RFC 5425) and a
//! Unix datagram socket, and emits one OTLP log record per message.
//!
//! # The model
//!
//! Each listener (and each TCP connection) is one task with its own [`Sink`]: it reads what is
//! there (a TCP read of up to 64 KiB, or every datagram waiting), cuts it into messages
//! ([`frame`] for TCP), parses each ([`parse`]) and encodes its record straight into the
//! protobuf batch ([`record`]), then hands the batch to the router and waits until every
//! selected buffer took it. While it waits it reads nothing: a TCP sender is slowed by TCP's own
//! flow control, a Unix-socket sender blocks in `send`, and UDP datagrams pile up in the
//! kernel's receive buffer, which drops what does not fit — those drops are read from the kernel
//! (`/proc/net/udp`, the socket's `drops` column) and counted. No queue grows in the agent.
//!
//! Nothing is dropped for its content: a message longer than `max_message_size` is cut to that
//! size and marked, one that parses as neither RFC 5424 nor RFC 3164 is kept whole as the body
//! with a `syslog.parse_error` attribute; both are counted.
//!
//! The listeners are bound in [`build`], so the agent is ready only when they are. On stop the
//! listeners close, and each task hands over what it already parsed (waiting at most
//! [`FINAL_SEND_WAIT`]); what senders had written but the agent had not read is lost with the
//! connection, as syslog has no acknowledgement.
//!
//! Modules: [`frame`] (TCP framing), [`parse`] (the two formats), [`record`] (the OTLP mapping),
//! `datagram` (UDP and Unix sockets, kernel drop counts), `stream` (TCP and TLS).

mod datagram;
pub mod frame;
pub mod parse;
pub mod record;
mod stream;

use super::{SourceContext, SourceTask};
use crate::host::HostFacts;
use crate::pipeline::buffer::Wait;
use crate::pipeline::router::Router;
use crate::sources::file::encode::{kv_str, Encoder};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use record::{Origin, Outcome, RecordWriter};
use sonde_config::SyslogSourceConfig;
use sonde_core::metrics::{Counter, Gauge, Registry};
use sonde_core::{Batch, BuildError, Signal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Record bytes / records after which a batch is handed on even if more is waiting to be read.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_ITEMS: u64 = 8192;
/// How long a stopping source waits for buffer space for what it already parsed.
pub const FINAL_SEND_WAIT: Duration = Duration::from_secs(1);

/// The listener a message came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Unix,
}

impl Transport {
    const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Unix];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }
}

/// The source's counters, registered once.
pub struct Counters {
    messages: [Counter; 3],
    bytes: [Counter; 3],
    records: Counter,
    parse_errors: Counter,
    oversized: Counter,
    incomplete: Counter,
    framing_errors: Counter,
    udp_dropped: Counter,
    stopping_dropped: Counter,
    no_route: Counter,
    connections: Gauge,
    refused_limit: Counter,
    refused_handshake: Counter,
}

impl Counters {
    fn new(r: &Registry, source: &str) -> Self {
        let per_transport = |name, help| {
            Transport::ALL
                .map(|t| r.counter(name, help, &[("source", source), ("transport", t.as_str())]))
        };
        let reason =
            |name, help, reason| r.counter(name, help, &[("source", source), ("reason", reason)]);
        const DROPPED: &str = "Items a source dropped before any buffer took them, by reason.";
        const TRUNCATED: &str =
            "Syslog messages delivered shorter than sent, by reason (oversized, incomplete).";
        const REFUSED: &str =
            "Syslog TCP connections closed at once, by reason (limit, handshake).";
        Counters {
            messages: per_transport(
                "sonde_syslog_messages_total",
                "Syslog messages received, by transport.",
            ),
            bytes: per_transport(
                "sonde_syslog_received_bytes_total",
                "Bytes read from syslog sockets, by transport.",
            ),
            records: r.counter(
                "sonde_source_received_items_total",
                "Items a source produced or received.",
                &[("source", source)],
            ),
            parse_errors: r.counter(
                "sonde_syslog_parse_errors_total",
                "Syslog messages that parsed as neither RFC 5424 nor RFC 3164 (kept whole as the body).",
                &[("source", source)],
            ),
            oversized: reason("sonde_syslog_truncated_messages_total", TRUNCATED, "oversized"),
            incomplete: reason("sonde_syslog_truncated_messages_total", TRUNCATED, "incomplete"),
            framing_errors: r.counter(
                "sonde_syslog_framing_errors_total",
                "TCP octet-counting headers that were not (the connection goes on with newline framing).",
                &[("source", source)],
            ),
            udp_dropped: reason("sonde_source_dropped_items_total", DROPPED, "udp_receive_buffer"),
            stopping_dropped: reason("sonde_source_dropped_items_total", DROPPED, "stopping"),
            no_route: reason("sonde_source_dropped_items_total", DROPPED, "no_route"),
            connections: r.gauge(
                "sonde_syslog_connections",
                "TCP connections open on a syslog source.",
                &[("source", source)],
            ),
            refused_limit: reason("sonde_syslog_refused_connections_total", REFUSED, "limit"),
            refused_handshake: reason("sonde_syslog_refused_connections_total", REFUSED, "handshake"),
        }
    }
}

/// What every listener task shares.
pub struct Shared {
    name: Arc<str>,
    router: Router,
    shutdown: CancellationToken,
    counters: Counters,
    /// An empty encoder with the source's resource and scope, cloned per task.
    template: Encoder,
    max_message_size: usize,
}

/// One task's batch in the making.
pub struct Sink {
    shared: Arc<Shared>,
    transport: Transport,
    enc: Encoder,
    writer: RecordWriter,
}

impl Sink {
    fn new(shared: Arc<Shared>, transport: Transport) -> Self {
        Sink {
            enc: shared.template.clone(),
            shared,
            transport,
            writer: RecordWriter::default(),
        }
    }

    /// Parses and encodes one message.
    fn push(&mut self, bytes: &[u8], origin: Origin<'_>, now: SystemTime) {
        let c = &self.shared.counters;
        let Some(outcome) = self.writer.write(&mut self.enc, bytes, origin, now) else {
            return;
        };
        c.messages[self.transport as usize].inc();
        c.records.inc();
        if outcome == Outcome::Unparsed {
            c.parse_errors.inc();
        }
        match origin.cut {
            Some(frame::Cut::Oversized) => c.oversized.inc(),
            Some(frame::Cut::Incomplete) => c.incomplete.inc(),
            None => {}
        }
    }

    fn read_bytes(&self, n: usize) {
        self.shared.counters.bytes[self.transport as usize].add(n as u64);
    }

    /// Whether the batch should go before more is read.
    fn full(&self) -> bool {
        self.enc.len() >= BATCH_BYTES || self.enc.items() >= BATCH_ITEMS
    }

    /// Hands the batch to the router, waiting for buffer space as long as it takes (reading
    /// nothing meanwhile: that is the backpressure). False when the source is stopping or the
    /// pipeline has closed; the batch is then counted as dropped.
    async fn flush(&mut self) -> bool {
        let Some(batch) = self.batch() else {
            return true;
        };
        let items = batch.items;
        let s = &self.shared;
        let sent = tokio::select! {
            biased;
            r = s.router.send(batch, Wait::Forever) => r,
            _ = s.shutdown.cancelled() => {
                s.counters.stopping_dropped.add(items);
                return false;
            }
        };
        self.sent(items, sent)
    }

    /// The last send of a stopping task: waits at most [`FINAL_SEND_WAIT`] for buffer space.
    async fn flush_final(&mut self) {
        if let Some(batch) = self.batch() {
            let items = batch.items;
            let until = tokio::time::Instant::now() + FINAL_SEND_WAIT;
            let sent = self.shared.router.send(batch, Wait::Until(until)).await;
            self.sent(items, sent);
        }
    }

    fn batch(&mut self) -> Option<Batch> {
        let (payload, items) = self.enc.finish()?;
        Some(Batch::from_trusted(
            Signal::Logs,
            payload,
            items,
            self.shared.name.clone(),
        ))
    }

    fn sent(
        &self,
        items: u64,
        sent: Result<crate::pipeline::router::Delivery, crate::pipeline::buffer::PushError>,
    ) -> bool {
        let c = &self.shared.counters;
        match sent {
            Ok(d) => {
                if d.queued == 0 && d.dropped == 0 {
                    c.no_route.add(items);
                }
                debug!(source = %self.shared.name, transport = self.transport.as_str(), items, "batch sent");
                true
            }
            Err(e) => {
                c.stopping_dropped.add(items);
                debug!(source = %self.shared.name, items, error = %e, "batch not taken; the agent is stopping");
                false
            }
        }
    }
}

/// Why a syslog source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error(transparent)]
    Tls(#[from] crate::sources::otlp::tls::TlsError),
    #[error("cannot listen for syslog over {transport} on {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("unix socket {path}: {message}")]
    Unix { path: PathBuf, message: String },
}

/// Reads the TLS files, binds every listener, and returns the task that serves them until the
/// source stops. Nothing is served unless every listener could be bound.
pub async fn build(cfg: &SyslogSourceConfig, cx: SourceContext) -> Result<SourceTask, BuildError> {
    let bound = Bound::bind(cfg, &cx).await.map_err(|e| cx.error(e))?;
    Ok(Box::pin(bound.run()))
}

/// The bound listeners, not yet serving.
pub struct Bound {
    shared: Arc<Shared>,
    udp: Option<tokio::net::UdpSocket>,
    tcp: Option<stream::Listener>,
    unix: Option<datagram::UnixListener>,
    max_connections: usize,
}

impl Bound {
    pub async fn bind(cfg: &SyslogSourceConfig, cx: &SourceContext) -> Result<Bound, SyslogError> {
        let tls = cfg
            .tls
            .as_ref()
            .map(|t| crate::sources::otlp::tls::server_config(t, &[]))
            .transpose()?
            .map(|c| {
                // No TLS 1.3 session tickets: a syslog sender only writes, and tickets it never
                // reads would make its close a reset, which throws away the messages it sent
                // last that the agent has not read yet.
                let mut c = (*c).clone();
                c.send_tls13_tickets = 0;
                Arc::new(c)
            });
        let udp = match cfg.udp.addr() {
            Some(addr) => Some(datagram::bind_udp(addr).await?),
            None => None,
        };
        let tcp = match cfg.tcp.addr() {
            Some(addr) => Some(stream::Listener::bind(addr, tls).await?),
            None => None,
        };
        let unix = match &cfg.unix {
            Some(path) => Some(datagram::UnixListener::bind(path)?),
            None => None,
        };
        let name: &str = &cx.name;
        if let Some(u) = &udp {
            info!(source = name, address = %local(u.local_addr()), "syslog over UDP listening");
        }
        if let Some(t) = &tcp {
            info!(source = name, address = %t.local_addr, tls = t.tls(), "syslog over TCP listening");
        }
        if let Some(u) = &unix {
            info!(source = name, path = %u.path.display(), "syslog on a Unix socket listening");
        }
        let shared = Arc::new(Shared {
            name: cx.name.clone(),
            router: cx.output.clone(),
            shutdown: cx.shutdown.clone(),
            counters: Counters::new(&cx.metrics, name),
            template: Encoder::new(&resource(), &scope(), 64 * 1024),
            max_message_size: cfg.max_message_size.as_usize(),
        });
        Ok(Bound {
            shared,
            udp,
            tcp,
            unix,
            max_connections: cfg.max_connections,
        })
    }

    /// The bound UDP and TCP addresses (port 0 in the config asks the OS for one).
    pub fn local_addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        (
            self.udp.as_ref().and_then(|u| u.local_addr().ok()),
            self.tcp.as_ref().map(|t| t.local_addr),
        )
    }

    /// Serves every listener until the source stops.
    pub async fn run(self) {
        let mut tasks = JoinSet::new();
        let shared = self.shared;
        if let Some(u) = self.udp {
            let u = Arc::new(u);
            tasks.spawn(datagram::count_udp_drops(u.clone(), shared.clone()));
            tasks.spawn(datagram::udp_loop(u, shared.clone()));
        }
        if let Some(t) = self.tcp {
            tasks.spawn(stream::accept_loop(t, shared.clone(), self.max_connections));
        }
        if let Some(u) = self.unix {
            tasks.spawn(datagram::unix_loop(u, shared.clone()));
        }
        while tasks.join_next().await.is_some() {}
        let c = &shared.counters;
        info!(
            source = %shared.name,
            messages = c.records.get(),
            parse_errors = c.parse_errors.get(),
            truncated = c.oversized.get() + c.incomplete.get(),
            udp_dropped = c.udp_dropped.get(),
            "syslog source stopped"
        );
    }
}

fn local(a: std::io::Result<SocketAddr>) -> String {
    a.map_or_else(|e| e.to_string(), |a| a.to_string())
}

fn resource() -> Resource {
    let mut attributes = vec![];
    if let Some(host) = HostFacts::local().name {
        attributes.push(kv_str("host.name", &host));
    }
    attributes.push(kv_str("os.type", "linux"));
    Resource {
        attributes,
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "sonde.syslog".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
