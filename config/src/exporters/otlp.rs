//! `type = "otlp"` exporter settings: where to send (one endpoint or several), how (gRPC or
//! HTTP/protobuf, compression, headers, TLS), and how to treat a failing endpoint (circuit
//! breaker, load balancing). Also what an endpoint string means ([`OtlpTarget::parse`]), so the
//! config check and the exporter read it the same way.
//!
//! Plain data and checks only; the behaviour is in `sonde-exporters`' `otlp` module. The source
//! of the same protocol is configured in [`crate::sources::otlp`].

use crate::problem::{KeyPath, Problems};
use crate::units::{Duration, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `type = "otlp"`: OTLP to a Collector, a gateway tier or a vendor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpExporterConfig {
    /// `"grpc"` or `"http/protobuf"`.
    pub protocol: OtlpProtocol,
    /// The destination: `"http://host:4317"`, `"https://host:4317"`, `"host:4317"` (TLS unless
    /// `insecure`); for HTTP the base URL the per-signal paths (`/v1/traces`, …) are appended to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Several destinations to spread batches over (instead of `endpoint`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// How batches are spread over several endpoints.
    pub balance: OtlpBalance,
    pub compression: OtlpCompression,
    /// Extra request headers (gRPC metadata), e.g. `authorization = "Bearer ${TOKEN}"`. Values
    /// are secrets: never logged, redacted by `print-config`.
    pub headers: BTreeMap<String, Secret>,
    /// For an endpoint written without a scheme: plain text instead of TLS.
    pub insecure: bool,
    pub tls: OtlpTlsConfig,
    /// gRPC: HTTP/2 keep-alive ping interval on each connection (0s = no pings).
    pub keepalive_interval: Duration,
    /// gRPC: how long to wait for a keep-alive ping's answer before closing the connection.
    pub keepalive_timeout: Duration,
    pub circuit_breaker: CircuitBreakerConfig,
    /// How often endpoint host names are resolved again (each address is an endpoint).
    pub resolve_interval: Duration,
}

impl Default for OtlpExporterConfig {
    fn default() -> Self {
        Self {
            protocol: OtlpProtocol::Grpc,
            endpoint: None,
            endpoints: vec![],
            balance: OtlpBalance::RoundRobin,
            compression: OtlpCompression::Gzip,
            headers: BTreeMap::new(),
            insecure: false,
            tls: OtlpTlsConfig::default(),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            circuit_breaker: CircuitBreakerConfig::default(),
            resolve_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OtlpProtocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The OTLP default port for the protocol.
    pub fn default_port(self) -> u16 {
        match self {
            OtlpProtocol::Grpc => 4317,
            OtlpProtocol::HttpProtobuf => 4318,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpBalance {
    /// Each batch to the next healthy endpoint.
    RoundRobin,
    /// Spans by trace ID to an endpoint chosen by consistent hashing (every span of a trace to
    /// the same endpoint); metrics and logs round-robin.
    TraceId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtlpCompression {
    None,
    Gzip,
    Zstd,
}

/// TLS settings (rustls). Without `ca_file` the system's trust store is used.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpTlsConfig {
    /// PEM file of the CA certificate(s) to trust instead of the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (with `key_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// The name to verify the server's certificate against, when not the endpoint's host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Per-endpoint circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Consecutive failed calls that open the circuit (0 = never open).
    pub failure_threshold: u32,
    /// How long an open circuit first refuses calls before one probe is let through; each
    /// failed probe doubles it, up to `max_open_duration`.
    pub open_duration: Duration,
    /// The longest an open circuit refuses calls.
    pub max_open_duration: Duration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_duration: Duration::from_secs(1),
            max_open_duration: Duration::from_secs(30),
        }
    }
}

/// An endpoint string, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpTarget {
    pub tls: bool,
    /// A host name or an IP address (without brackets).
    pub host: String,
    pub port: u16,
    /// The base path (HTTP), without a trailing slash; empty for none.
    pub path: String,
}

impl OtlpTarget {
    /// Reads `[scheme://]host[:port][/path]`. Without a scheme, TLS unless `insecure`; without
    /// a port, the protocol's OTLP default.
    pub fn parse(s: &str, protocol: OtlpProtocol, insecure: bool) -> Result<OtlpTarget, String> {
        let s = s.trim();
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if s.contains("://") {
            return Err(format!(
                "endpoint `{s}`: the scheme must be `http://` or `https://`"
            ));
        } else {
            (!insecure, s)
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(format!(
                "endpoint `{s}`: a query or fragment is not allowed"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some(end) = v6.find(']') else {
                return Err(format!("endpoint `{s}`: unclosed `[` in the address"));
            };
            let port = &v6[end + 1..];
            (&v6[..end], port.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("endpoint `{s}`: no host"));
        }
        if host.contains(['@', ' ', '[', ']'])
            || (host.contains(':') && !authority.starts_with('['))
        {
            return Err(format!("endpoint `{s}`: invalid host `{host}`"));
        }
        let port = match port {
            None => protocol.default_port(),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("endpoint `{s}`: invalid port `{p}`"))?,
        };
        Ok(OtlpTarget {
            tls,
            host: host.to_string(),
            port,
            path: path.trim_end_matches('/').to_string(),
        })
    }

    /// `host:port` with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl OtlpExporterConfig {
    /// The configured endpoint strings (`endpoint` or `endpoints`).
    pub fn endpoint_list(&self) -> Vec<String> {
        match &self.endpoint {
            Some(e) => vec![e.clone()],
            None => self.endpoints.clone(),
        }
    }

    /// What is wrong with these settings, each with its key path below the exporter.
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        self.check_endpoints(&mut out);
        self.check_headers(&mut out);
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            out.at("tls", "`cert_file` and `key_file` go together");
        }
        let breaker = &self.circuit_breaker;
        if breaker.open_duration.get().is_zero() && breaker.failure_threshold > 0 {
            out.at("circuit_breaker.open_duration", "must be greater than zero");
        }
        if breaker.max_open_duration.get() < breaker.open_duration.get() {
            out.at(
                "circuit_breaker.max_open_duration",
                format!(
                    "must be at least `open_duration` ({})",
                    breaker.open_duration
                ),
            );
        }
        if self.resolve_interval.get() < std::time::Duration::from_secs(1) {
            out.at("resolve_interval", "must be at least 1s");
        }
        out
    }

    /// `endpoint` or `endpoints`, one of the two, and every endpoint readable.
    fn check_endpoints(&self, out: &mut Problems) {
        match (&self.endpoint, self.endpoints.is_empty()) {
            (Some(_), false) => out.at("endpoints", "set `endpoint` or `endpoints`, not both"),
            (None, true) => out.at(
                "",
                "missing key `endpoint` (e.g. \"http://localhost:4317\") or `endpoints`",
            ),
            _ => {}
        }
        if let Some(e) = &self.endpoint {
            if let Err(m) = OtlpTarget::parse(e, self.protocol, self.insecure) {
                out.at("endpoint", m);
            }
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if let Err(m) = OtlpTarget::parse(e, self.protocol, self.insecure) {
                out.at_path(KeyPath::dotted("endpoints").index(i), m);
            }
        }
    }

    /// Header names that HTTP and gRPC can carry, and values without control characters.
    fn check_headers(&self, out: &mut Problems) {
        let at = |name: &str| KeyPath::dotted("headers").key(name.to_string());
        for name in self.headers.keys() {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token || name.starts_with("grpc-") || name.eq_ignore_ascii_case("content-type") {
                out.at_path(
                    at(name),
                    format!("`{name}` cannot be sent as a request header"),
                );
            }
        }
        for (name, value) in &self.headers {
            if value
                .expose()
                .bytes()
                .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
            {
                out.at_path(at(name), "the value contains control characters");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<OtlpTarget, String> {
        OtlpTarget::parse(s, OtlpProtocol::Grpc, false)
    }

    #[test]
    fn endpoints_are_read_like_the_otlp_exporter_spec() {
        let t = parse("http://collector:4317").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "collector", 4317));
        let t = parse("https://10.0.0.1").unwrap();
        assert_eq!((t.tls, t.port), (true, 4317));
        // No scheme: TLS unless insecure.
        assert!(parse("gw:4317").unwrap().tls);
        assert!(
            !OtlpTarget::parse("gw:4317", OtlpProtocol::Grpc, true)
                .unwrap()
                .tls
        );
        let t =
            OtlpTarget::parse("http://[::1]:9/base/", OtlpProtocol::HttpProtobuf, false).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9, "/base")
        );
        assert_eq!(t.authority(), "[::1]:9");
        let t = OtlpTarget::parse("http://h", OtlpProtocol::HttpProtobuf, false).unwrap();
        assert_eq!(t.port, 4318);
    }

    #[test]
    fn bad_endpoints_say_why() {
        assert!(parse("ftp://x:1").unwrap_err().contains("scheme"));
        assert!(parse("http://x:99999").unwrap_err().contains("port"));
        assert!(parse("http://:4317").unwrap_err().contains("no host"));
        assert!(parse("http://x:1/p?q=1").unwrap_err().contains("query"));
        assert!(parse("a:b:c").is_err());
    }
}
