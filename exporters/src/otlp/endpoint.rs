//! Endpoints: one per resolved address of each configured target, each with its own client
//! (connections), circuit breaker and metrics; and the resolver that keeps the set current
//! (a host name with several addresses is several endpoints; names are resolved again every
//! `resolve_interval`, and endpoints whose address stays keep their connections and circuit).
//!
//! The set is published through a `watch` channel: an export takes a snapshot (`Arc`) and never
//! waits on the resolver except before the very first resolution.

use super::balance::Ring;
use super::circuit::{Circuit, Phase, Transition};
use super::connect::{tls_config, Dialer};
use super::grpc::{GrpcClient, GrpcSettings};
use super::http::{HttpClient, HttpSettings};
use super::BuildError;
use super::{Answer, CallError};
use bytes::Bytes;
use sonde_config::{OtlpExporterConfig, OtlpProtocol, OtlpTarget};
use sonde_core::metrics::{Counter, Gauge, Registry};
use sonde_core::Signal;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_rustls::rustls::ClientConfig;
use tracing::{info, warn};

/// How long one name resolution may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// One per endpoint, made once: boxed, so the variants' sizes do not matter.
pub enum Client {
    Grpc(Box<GrpcClient>),
    Http(Box<HttpClient>),
}

impl Client {
    pub async fn export(&self, signal: Signal, payload: Bytes) -> Result<Answer, CallError> {
        match self {
            Client::Grpc(c) => c.export(signal, payload).await,
            Client::Http(c) => c.export(signal, payload).await,
        }
    }
}

/// One address to send to.
pub struct Endpoint {
    /// `ip:port`: the endpoint's place on the consistent-hash ring.
    pub key: String,
    /// For logs and metrics: the configured URL, and the address when it came from a name.
    pub label: String,
    pub client: Client,
    pub circuit: Circuit,
    exporter: Arc<str>,
    metrics: Registry,
    state: Gauge,
    opened: Counter,
    ok: Counter,
}

impl Endpoint {
    /// Counts a failure (by reason) and feeds the circuit breaker.
    pub fn failed(&self, reason: &str) {
        self.metrics.counter(
"sonde_otlp_exporter_failed_requests_total",
            "OTLP export requests that failed, by endpoint and reason (transport, timeout, grpc_<code>, http_<status>).",
            &[("exporter", &self.exporter), ("endpoint", &self.label), ("reason", reason)],
        )
        .inc();
        if self.circuit.failure(Instant::now()) == Some(Transition::Opened) {
            self.opened.inc();
            self.state.set(Phase::Open.gauge_value());
            warn!(exporter = %self.exporter, endpoint = %self.label, reason, "circuit opened: no calls to this endpoint for a while");
        }
    }

    /// The endpoint answered (accepted, or refused the data for good): it is healthy.
    pub fn answered(&self, accepted: bool) {
        if accepted {
            self.ok.inc();
        }
        if self.circuit.success() == Some(Transition::Closed) {
            self.state.set(Phase::Closed.gauge_value());
            info!(exporter = %self.exporter, endpoint = %self.label, "circuit closed: endpoint healthy again");
        }
    }

    pub fn probing(&self) {
        self.state.set(Phase::HalfOpen.gauge_value());
        info!(exporter = %self.exporter, endpoint = %self.label, "circuit half-open: sending one probe");
    }
}

/// The endpoints in use, as of the last resolution.
#[derive(Default)]
pub struct EndpointSet {
    pub list: Vec<Arc<Endpoint>>,
    /// `(target index, address)` of each entry of `list`.
    origin: Vec<(usize, SocketAddr)>,
    pub ring: Ring,
    /// False until every target has been resolved once.
    pub ready: bool,
    /// Why targets have no address (resolution errors), for the retry reason.
    pub problem: Option<String>,
}

/// Makes endpoints: everything shared by the clients of one exporter.
pub struct Factory {
    pub exporter: Arc<str>,
    pub metrics: Registry,
    cfg: OtlpExporterConfig,
    tls: Option<Arc<ClientConfig>>,
    grpc: GrpcSettings,
    http: HttpSettings,
    connect_timeout: Duration,
    pub targets: Vec<OtlpTarget>,
    pub urls: Vec<String>,
}

impl Factory {
    pub fn new(
        exporter: Arc<str>,
        cfg: &OtlpExporterConfig,
        timeout: Duration,
        concurrency: usize,
        metrics: Registry,
    ) -> Result<Factory, BuildError> {
        let mut targets = Vec::new();
        let mut urls = Vec::new();
        for e in cfg.endpoint_list() {
            let t = OtlpTarget::parse(&e, cfg.protocol, cfg.insecure).map_err(|reason| {
                BuildError::Endpoint {
                    endpoint: e.clone(),
                    reason,
                }
            })?;
            let scheme = if t.tls { "https" } else { "http" };
            urls.push(match cfg.protocol {
                OtlpProtocol::Grpc => format!("{scheme}://{}", t.authority()),
                OtlpProtocol::HttpProtobuf => format!("{scheme}://{}{}", t.authority(), t.path),
            });
            targets.push(t);
        }
        if targets.is_empty() {
            return Err(BuildError::NoEndpoint);
        }
        let tls = if targets.iter().any(|t| t.tls) {
            let alpn: &[&[u8]] = match cfg.protocol {
                OtlpProtocol::Grpc => &[b"h2"],
                OtlpProtocol::HttpProtobuf => &[b"h2", b"http/1.1"],
            };
            Some(tls_config(&cfg.tls, alpn).map_err(BuildError::Tls)?)
        } else {
            None
        };
        let mut headers = http::HeaderMap::new();
        for (k, v) in &cfg.headers {
            let bad = |reason: &str| BuildError::Header {
                name: k.clone(),
                reason: reason.to_string(),
            };
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad("not a valid header name"))?;
            let mut value = http::HeaderValue::from_str(v.expose())
                .map_err(|_| bad("the value is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Factory {
            exporter,
            metrics,
            tls,
            grpc: GrpcSettings {
                compression: cfg.compression,
                headers: headers.clone(),
                connect_timeout: timeout,
                keepalive_interval: cfg.keepalive_interval.get(),
                keepalive_timeout: cfg.keepalive_timeout.get(),
            },
            http: HttpSettings {
                compression: cfg.compression,
                headers,
                keepalive_interval: cfg.keepalive_interval.get(),
                keepalive_timeout: cfg.keepalive_timeout.get(),
                max_idle: concurrency,
            },
            connect_timeout: timeout,
            cfg: cfg.clone(),
            targets,
            urls,
        })
    }

    /// Whether target `i` is a host name (needs resolving) rather than an IP address.
    pub fn is_name(&self, i: usize) -> bool {
        self.targets[i].host.parse::<IpAddr>().is_err()
    }

    fn endpoint(&self, i: usize, addr: SocketAddr) -> Result<Endpoint, BuildError> {
        let t = &self.targets[i];
        let url = &self.urls[i];
        let tls = match (&self.tls, t.tls) {
            (Some(c), true) => Some((
                c.clone(),
                self.cfg.tls.server_name.as_deref().unwrap_or(&t.host),
            )),
            _ => None,
        };
        let dialer = Dialer::new(addr, tls, self.connect_timeout).map_err(BuildError::Tls)?;
        let client = match self.cfg.protocol {
            OtlpProtocol::Grpc => Client::Grpc(Box::new(GrpcClient::new(url, dialer, &self.grpc)?)),
            OtlpProtocol::HttpProtobuf => {
                Client::Http(Box::new(HttpClient::new(url, dialer, &self.http)?))
            }
        };
        let label = if self.is_name(i) {
            format!("{url} ({addr})")
        } else {
            url.clone()
        };
        let labels: [(&'static str, &str); 2] =
            [("exporter", &self.exporter), ("endpoint", &label)];
        let t = &self.metrics;
        Ok(Endpoint {
            key: addr.to_string(),
            client,
            circuit: Circuit::new(
                self.cfg.circuit_breaker.failure_threshold,
                self.cfg.circuit_breaker.open_duration.get(),
                self.cfg.circuit_breaker.max_open_duration.get(),
            ),
            exporter: self.exporter.clone(),
            metrics: self.metrics.clone(),
            state: t.gauge(
                "sonde_otlp_exporter_circuit_state",
                "Circuit breaker state per endpoint: 0 closed, 1 open, 2 half-open.",
                &labels,
            ),
            opened: t.counter(
                "sonde_otlp_exporter_circuit_opened_total",
                "Times an endpoint's circuit breaker opened.",
                &labels,
            ),
            ok: t.counter(
                "sonde_otlp_exporter_requests_total",
                "OTLP export requests an endpoint accepted.",
                &labels,
            ),
            label,
        })
    }

    /// The set for `addrs[i]` = the addresses of target `i`, reusing endpoints of `old` whose
    /// address did not change.
    fn build_set(
        &self,
        addrs: &[Vec<SocketAddr>],
        old: &EndpointSet,
        ready: bool,
        problem: Option<String>,
    ) -> EndpointSet {
        let reuse: HashMap<(usize, SocketAddr), Arc<Endpoint>> = old
            .origin
            .iter()
            .copied()
            .zip(old.list.iter().cloned())
            .collect();
        let mut set = EndpointSet {
            ready,
            problem,
            ..Default::default()
        };
        for (i, list) in addrs.iter().enumerate() {
            for addr in list {
                if set.origin.iter().any(|(_, a)| a == addr) {
                    continue;
                }
                let ep = match reuse.get(&(i, *addr)) {
                    Some(ep) => ep.clone(),
                    None => match self.endpoint(i, *addr) {
                        Ok(ep) => Arc::new(ep),
                        Err(e) => {
                            warn!(exporter = %self.exporter, endpoint = %self.urls[i], error = %e, "cannot use this endpoint");
                            continue;
                        }
                    },
                };
                set.origin.push((i, *addr));
                set.list.push(ep);
            }
        }
        let keys: Vec<&str> = set.list.iter().map(|e| e.key.as_str()).collect();
        set.ring = Ring::new(&keys);
        set
    }

    /// The set from the targets that are IP addresses (names resolve later, in [`resolve_loop`]).
    pub fn literal_set(&self) -> EndpointSet {
        let addrs: Vec<Vec<SocketAddr>> = (0..self.targets.len())
            .map(|i| match self.targets[i].host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, self.targets[i].port)],
                Err(_) => vec![],
            })
            .collect();
        let ready = (0..self.targets.len()).all(|i| !self.is_name(i));
        self.build_set(&addrs, &EndpointSet::default(), ready, None)
    }
}

/// Resolves the targets' names now and every `interval`, publishing each changed set.
pub async fn resolve_loop(
    factory: Arc<Factory>,
    tx: watch::Sender<Arc<EndpointSet>>,
    interval: Duration,
    endpoints_gauge: Gauge,
) {
    let mut last: Vec<Vec<SocketAddr>> = vec![vec![]; factory.targets.len()];
    let mut first = true;
    loop {
        let mut addrs = Vec::with_capacity(factory.targets.len());
        let mut problems = Vec::new();
        for (i, t) in factory.targets.iter().enumerate() {
            if let Ok(ip) = t.host.parse::<IpAddr>() {
                addrs.push(vec![SocketAddr::new(ip, t.port)]);
                continue;
            }
            let found = tokio::time::timeout(
                RESOLVE_TIMEOUT,
                tokio::net::lookup_host((t.host.as_str(), t.port)),
            )
            .await;
            match found {
                Ok(Ok(it)) => {
                    let mut list: Vec<SocketAddr> = it.collect();
                    list.sort();
                    list.dedup();
                    addrs.push(list);
                }
                Ok(Err(e)) => {
                    problems.push(format!("cannot resolve `{}`: {e}", t.host));
                    // Keep what the name resolved to before: a DNS hiccup is not an outage.
                    addrs.push(last[i].clone());
                }
                Err(_) => {
                    problems.push(format!("resolving `{}` timed out", t.host));
                    addrs.push(last[i].clone());
                }
            }
        }
        if !problems.is_empty() {
            warn!(exporter = %factory.exporter, problems = %problems.join("; "), "endpoint name resolution failed");
        }
        if first || addrs != last {
            let old = tx.borrow().clone();
            let problem = (!problems.is_empty()).then(|| problems.join("; "));
            let set = factory.build_set(&addrs, &old, true, problem);
            if !first {
                info!(exporter = %factory.exporter, endpoints = set.list.len(), "endpoint addresses changed");
            }
            endpoints_gauge.set(set.list.len() as i64);
            let _ = tx.send(Arc::new(set));
            last = addrs;
            first = false;
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use sonde_core::metrics::Registry;

    fn factory(endpoints: &[&str]) -> Factory {
        let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        let text = format!(
            "[sources.h]\ntype = \"host_metrics\"\n[exporters.x]\ntype = \"otlp\"\ninsecure = true\nendpoints = [{}]\n",
            list.join(", ")
        );
        let c = sonde_config::load_str(&text, "test").unwrap();
        let sonde_config::ExporterKind::Otlp(cfg) = &c.exporters["x"].kind else {
            panic!("not an otlp exporter")
        };
        Factory::new(
            Arc::from("x"),
            cfg,
            Duration::from_secs(1),
            1,
            Registry::default(),
        )
        .unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn keys(set: &EndpointSet) -> Vec<&str> {
        set.list.iter().map(|e| e.key.as_str()).collect()
    }

    #[tokio::test]
    async fn a_name_with_several_addresses_is_several_endpoints() {
        let f = factory(&["collectors.internal:4317"]);
        let set = f.build_set(
            &[vec![addr("10.0.0.1:4317"), addr("10.0.0.2:4317")]],
            &EndpointSet::default(),
            true,
            None,
        );
        assert_eq!(keys(&set), ["10.0.0.1:4317", "10.0.0.2:4317"]);
        // Both are on the trace-ID ring: traces spread over the two addresses.
        let owners: std::collections::HashSet<usize> = (0..64u64)
            .filter_map(|i| {
                set.ring
                    .pick(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), |_| true)
            })
            .collect();
        assert_eq!(owners.len(), 2);
    }

    #[tokio::test]
    async fn a_new_resolution_keeps_endpoints_whose_address_stayed() {
        let f = factory(&["collectors.internal:4317"]);
        let first = f.build_set(
            &[vec![addr("10.0.0.1:4317"), addr("10.0.0.2:4317")]],
            &EndpointSet::default(),
            true,
            None,
        );
        // 10.0.0.1 went away, 10.0.0.3 appeared.
        let second = f.build_set(
            &[vec![addr("10.0.0.2:4317"), addr("10.0.0.3:4317")]],
            &first,
            true,
            None,
        );
        assert_eq!(keys(&second), ["10.0.0.2:4317", "10.0.0.3:4317"]);
        // The survivor is the same endpoint: its connections and circuit state carry over.
        assert!(Arc::ptr_eq(&first.list[1], &second.list[0]));
    }

    #[tokio::test]
    async fn an_address_reached_through_two_targets_is_one_endpoint() {
        let f = factory(&["a.internal:4317", "b.internal:4317"]);
        let set = f.build_set(
            &[
                vec![addr("10.0.0.1:4317"), addr("10.0.0.2:4317")],
                vec![addr("10.0.0.2:4317"), addr("10.0.0.3:4317")],
            ],
            &EndpointSet::default(),
            true,
            None,
        );
        assert_eq!(
            keys(&set),
            ["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"]
        );
    }

    /// Runs the resolver from `initial` until it publishes once; returns that set and the
    /// endpoints gauge it kept.
    async fn first_resolution(f: Arc<Factory>, initial: EndpointSet) -> (Arc<EndpointSet>, Gauge) {
        let (tx, mut rx) = watch::channel(Arc::new(initial));
        let gauge = Registry::default().gauge("sonde_otlp_exporter_endpoints", "", &[]);
        let task = tokio::spawn(resolve_loop(
            f,
            tx,
            Duration::from_secs(3600),
            gauge.clone(),
        ));
        tokio::time::timeout(Duration::from_secs(15), rx.changed())
            .await
            .unwrap()
            .unwrap();
        let set = rx.borrow().clone();
        task.abort();
        (set, gauge)
    }

    #[tokio::test]
    async fn the_resolver_publishes_names_and_keeps_literals() {
        let f = Arc::new(factory(&["localhost:4317", "127.0.0.9:4317"]));
        // Before the first resolution only the literal address is known, and the set says so.
        let literal = f.literal_set();
        assert_eq!(keys(&literal), ["127.0.0.9:4317"]);
        assert!(!literal.ready);
        let (set, gauge) = first_resolution(f.clone(), literal).await;
        assert!(set.ready);
        assert!(set.problem.is_none(), "{:?}", set.problem);
        // localhost is 127.0.0.1 (and ::1 where IPv6 is configured): one endpoint per address.
        assert!(keys(&set).contains(&"127.0.0.1:4317"), "{:?}", keys(&set));
        assert!(keys(&set).contains(&"127.0.0.9:4317"));
        assert_eq!(gauge.get(), set.list.len() as i64);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_problem_not_a_crash() {
        let f = Arc::new(factory(&["no-such-host.invalid:4317"]));
        let (set, _) = first_resolution(f.clone(), f.literal_set()).await;
        assert!(set.ready);
        assert!(set.list.is_empty());
        let problem = set.problem.clone().unwrap();
        assert!(problem.contains("no-such-host.invalid"), "{problem}");
    }
}
