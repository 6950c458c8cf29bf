//! `type = "otlp"` source settings: the gRPC and HTTP listeners, the limits on requests and
//! connections, the throttling answers, and server-side TLS and bearer-token authentication.
//! Also the checks these types cannot express (both listeners off, one address for both).
//!
//! Plain data and checks only; the receiver lives in `agent/src/sources/otlp/`. The exporter of
//! the same protocol is configured in [`crate::exporters::otlp`].

use crate::listen::Listen;
use crate::problem::Problems;
use crate::units::{ByteSize, Duration};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// `type = "otlp"`: receives traces, metrics and logs from apps over OTLP/gRPC and OTLP/HTTP and
/// passes the protobuf requests on as they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpSourceConfig {
    /// OTLP/gRPC listening address, or `"off"`. Loopback by default; a sidecar sets `0.0.0.0`.
    pub grpc: Listen,
    /// OTLP/HTTP listening address (`/v1/traces`, `/v1/metrics`, `/v1/logs`), or `"off"`.
    pub http: Listen,
    /// Largest request accepted, both as sent and after decompression (a zip bomb is refused
    /// when it passes this, not inflated).
    pub max_request_size: ByteSize,
    /// Requests handled at once (both listeners together); a request over the limit waits up to
    /// `block_timeout` for a slot, then is told to retry later.
    pub max_in_flight: usize,
    /// Open connections per listener; connections over the limit are closed at once.
    pub max_connections: usize,
    /// Time a client has to send a whole request (headers and body).
    pub request_timeout: Duration,
    /// How long a request may wait for buffer space (`when_full = "block"`) or for an in-flight
    /// slot before it is answered with a retryable throttling response.
    pub block_timeout: Duration,
    /// The retry hint in throttling responses (gRPC `RetryInfo`, HTTP `Retry-After`).
    pub retry_after: Duration,
    /// TLS on both listeners; absent means plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsConfig>,
    /// Bearer-token authentication on both listeners; absent means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<ServerAuthConfig>,
}

impl Default for OtlpSourceConfig {
    fn default() -> Self {
        Self {
            grpc: Listen::At(SocketAddr::from(([127, 0, 0, 1], 4317))),
            http: Listen::At(SocketAddr::from(([127, 0, 0, 1], 4318))),
            max_request_size: ByteSize::mib(16),
            max_in_flight: 32,
            max_connections: 256,
            request_timeout: Duration::from_secs(10),
            block_timeout: Duration::from_secs(2),
            retry_after: Duration::from_secs(1),
            tls: None,
            auth: None,
        }
    }
}

/// Server-side TLS (rustls): PEM files, read at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to: set it to require mTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

/// Authentication of incoming requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAuthConfig {
    /// A file holding the token clients must send as `Authorization: Bearer <token>`; read at
    /// start, surrounding whitespace ignored. The token itself never appears in the config.
    pub bearer_token_file: PathBuf,
}

impl OtlpSourceConfig {
    /// What is wrong with these settings, each with its key below the source.
    pub fn problems(&self) -> Problems {
        let mut out = Problems::default();
        match (self.grpc, self.http) {
            (Listen::Off, Listen::Off) => out.at(
                "",
                "`grpc` and `http` are both \"off\": the source would receive nothing",
            ),
            (Listen::At(g), Listen::At(h)) if g == h && g.port() != 0 => out.at(
                "http",
                format!("`http` and `grpc` cannot share the address {h}"),
            ),
            _ => {}
        }
        if self.max_request_size.get() < 1024 {
            out.at("max_request_size", "must be at least 1KiB");
        }
        for (k, v) in [
            ("max_in_flight", self.max_in_flight),
            ("max_connections", self.max_connections),
        ] {
            if v == 0 {
                out.at(k, "must be at least 1");
            }
        }
        for (k, v) in [
            ("request_timeout", self.request_timeout),
            ("retry_after", self.retry_after),
        ] {
            if v.get().is_zero() {
                out.at(k, "must be greater than zero");
            }
        }
        out
    }
}
