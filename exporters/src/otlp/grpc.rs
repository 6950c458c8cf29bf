//! OTLP/gRPC to one endpoint: a tonic channel over the [`Dialer`] (one HTTP/2 connection,
//! reused, re-established on failure, kept alive with pings), the batch's bytes sent through
//! [`RawCodec`], and the answer classified as the OTLP specification says.
//!
//! Retryable: `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`,
//! `DATA_LOSS`, `RESOURCE_EXHAUSTED` only with a `RetryInfo`, and transport failures (tonic
//! reports those as `UNAVAILABLE`, or `UNKNOWN` with a source error). Everything else is
//! permanent. A `RetryInfo` delay is passed on as the retry hint.

use super::connect::Dialer;
use super::{Answer, BuildError, CallError};
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, Uri};
use sonde_config::OtlpCompression;
use sonde_core::otlp::codec::RawCodec;
use sonde_core::otlp::status::{partial_success, retry_delay};
use sonde_core::{otlp, Signal};
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

pub struct GrpcClient {
    channel: Channel,
    origin: Uri,
    headers: HeaderMap,
    compression: Option<CompressionEncoding>,
    /// For messages: `https://host:port`.
    pub url: String,
}

pub struct GrpcSettings {
    pub compression: OtlpCompression,
    pub headers: HeaderMap,
    pub connect_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

fn path(signal: Signal) -> PathAndQuery {
    PathAndQuery::from_static(otlp::grpc_path(signal))
}

impl GrpcClient {
    /// A lazily connecting client for `scheme://authority`, dialling through `dialer`. Needs a
    /// tokio runtime (the channel runs a task).
    pub fn new(url: &str, dialer: Dialer, s: &GrpcSettings) -> Result<GrpcClient, BuildError> {
        let bad = |e: &dyn std::fmt::Display| BuildError::Endpoint {
            endpoint: url.to_string(),
            reason: e.to_string(),
        };
        let origin: Uri = url.parse().map_err(|e| bad(&e))?;
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| bad(&e))?
            .connect_timeout(s.connect_timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("sonde/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| bad(&e))?;
        if !s.keepalive_interval.is_zero() {
            endpoint = endpoint
                .http2_keep_alive_interval(s.keepalive_interval)
                .keep_alive_timeout(s.keepalive_timeout)
                .keep_alive_while_idle(true);
        }
        let channel = endpoint.connect_with_connector_lazy(dialer);
        Ok(GrpcClient {
            channel,
            origin,
            headers: s.headers.clone(),
            compression: match s.compression {
                OtlpCompression::None => None,
                OtlpCompression::Gzip => Some(CompressionEncoding::Gzip),
                OtlpCompression::Zstd => Some(CompressionEncoding::Zstd),
            },
            url: url.to_string(),
        })
    }

    pub async fn export(&self, signal: Signal, payload: Bytes) -> Result<Answer, CallError> {
        let mut client =
            tonic::client::Grpc::with_origin(self.channel.clone(), self.origin.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd);
        if let Some(c) = self.compression {
            client = client.send_compressed(c);
        }
        client.ready().await.map_err(|e| CallError::Retryable {
            reason: format!("{}: not ready: {e}", self.url),
            retry_after: None,
            label: "transport".into(),
        })?;
        let mut request = tonic::Request::new(payload);
        *request.metadata_mut() = MetadataMap::from_headers(self.headers.clone());
        match client.unary(request, path(signal), RawCodec).await {
            Ok(response) => {
                let p = partial_success(&response.into_inner());
                Ok(Answer {
                    rejected: u64::try_from(p.rejected).unwrap_or(0),
                    message: p.error_message,
                })
            }
            Err(status) => Err(classify(&status, &self.url)),
        }
    }
}

/// What a non-OK gRPC status means for the batch.
pub fn classify(status: &tonic::Status, url: &str) -> CallError {
    let code = status.code();
    let hint = retry_delay(status.details());
    let transport = std::error::Error::source(status).is_some();
    let label = if transport && matches!(code, Code::Unknown | Code::Unavailable) {
        "transport".to_string()
    } else {
        format!("grpc_{}", code_name(code))
    };
    let reason = format!(
        "{url} answered {}: {}",
        code_name(code).to_ascii_uppercase(),
        status.message()
    );
    let retryable = match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => hint.is_some(),
        Code::Unknown => transport,
        _ => false,
    };
    if retryable {
        CallError::Retryable {
            reason,
            retry_after: hint.filter(|d| !d.is_zero()),
            label,
        }
    } else {
        CallError::Permanent { reason, label }
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sonde_core::otlp::status::{Any, ProtoDuration, RetryInfo, RpcStatus, RETRY_INFO_TYPE};

    fn with_retry_info(code: Code, secs: i64) -> tonic::Status {
        let details = RpcStatus {
            code: code as i32,
            message: "m".into(),
            details: vec![Any {
                type_url: RETRY_INFO_TYPE.into(),
                value: RetryInfo {
                    retry_delay: Some(ProtoDuration {
                        seconds: secs,
                        nanos: 0,
                    }),
                }
                .encode_to_vec(),
            }],
        };
        tonic::Status::with_details(code, "m", details.encode_to_vec().into())
    }

    #[test]
    fn unavailable_is_retried_with_the_retry_info_delay() {
        match classify(&with_retry_info(Code::Unavailable, 3), "u") {
            CallError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resource_exhausted_is_retried_only_with_retry_info() {
        assert!(matches!(
            classify(&with_retry_info(Code::ResourceExhausted, 1), "u"),
            CallError::Retryable { .. }
        ));
        assert!(matches!(
            classify(&tonic::Status::resource_exhausted("full"), "u"),
            CallError::Permanent { .. }
        ));
    }

    #[test]
    fn bad_data_and_auth_are_permanent_and_named() {
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::Unimplemented,
        ] {
            match classify(&tonic::Status::new(code, "no"), "http://gw:4317") {
                CallError::Permanent { reason, .. } => {
                    assert!(reason.starts_with("http://gw:4317 answered "), "{reason}")
                }
                other => panic!("{code:?}: {other:?}"),
            }
        }
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::DataLoss,
        ] {
            assert!(matches!(
                classify(&tonic::Status::new(code, ""), "u"),
                CallError::Retryable { .. }
            ));
        }
    }
}
