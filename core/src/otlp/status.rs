//! The protobuf messages OTLP exchanges besides the requests themselves: the
//! `Export*ServiceResponse` (only its partial success is read), and the error payloads OTLP
//! prescribes — a `google.rpc.Status` (code, message, details) with an optional
//! `google.rpc.RetryInfo` telling a throttled client when to come back. gRPC carries the status
//! base64-encoded in `grpc-status-details-bin`; OTLP/HTTP sends it as the body of a 4xx/5xx
//! response, protobuf- or JSON-encoded like the request. Declared here with prost so no `protoc`
//! is needed; the receiver writes these messages and the exporter reads them.
//!
//! The three `Export*ServiceResponse` messages have the same shape: field 1 `partial_success`
//! holding field 1 `rejected_<items>` (int64) and field 2 `error_message`; one struct reads all.

use prost::Message;
use std::time::Duration;

/// `Export{Trace,Metrics,Logs}ServiceResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<PartialSuccess>,
}

/// `Export*PartialSuccess`: rejected spans, data points or log records, and why.
#[derive(Clone, PartialEq, Message)]
pub struct PartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `google.rpc.Status`: the body of an OTLP/HTTP error and the gRPC `grpc-status-details-bin`.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The delay of the `RetryInfo` in an encoded `google.rpc.Status`, if it carries one.
/// `Some(Duration::ZERO)` means "retry, no particular delay".
pub fn retry_delay(status_bytes: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(status_bytes).ok()?;
    status
        .details
        .iter()
        .find(|a| a.type_url == RETRY_INFO_TYPE || a.type_url.ends_with("/google.rpc.RetryInfo"))
        .and_then(|a| RetryInfo::decode(&a.value[..]).ok())
        .map(|r| {
            r.retry_delay
                .map(|d| {
                    Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0))
                        + Duration::from_nanos(u64::try_from(d.nanos).unwrap_or(0))
                })
                .unwrap_or(Duration::ZERO)
        })
}

/// A `RetryInfo` asking to wait `d`.
pub fn retry_info(d: Duration) -> RetryInfo {
    RetryInfo {
        retry_delay: Some(ProtoDuration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        }),
    }
}

/// The `google.rpc.Status` of a refusal, with a `RetryInfo` when a retry hint is given.
pub fn rpc_status(code: i32, message: &str, retry_after: Option<Duration>) -> RpcStatus {
    let details = retry_after
        .map(|d| {
            vec![Any {
                type_url: RETRY_INFO_TYPE.into(),
                value: retry_info(d).encode_to_vec(),
            }]
        })
        .unwrap_or_default();
    RpcStatus {
        code,
        message: message.into(),
        details,
    }
}

/// The protobuf JSON mapping of the same status (`details` as `@type`-tagged objects, the
/// delay as a `"1.500s"` duration string).
pub fn rpc_status_json(code: i32, message: &str, retry_after: Option<Duration>) -> Vec<u8> {
    let mut v = serde_json::json!({ "code": code, "message": message });
    if let Some(d) = retry_after {
        let delay = if d.subsec_nanos() == 0 {
            format!("{}s", d.as_secs())
        } else {
            format!("{}.{:09}s", d.as_secs(), d.subsec_nanos())
        };
        v["details"] = serde_json::json!([{ "@type": RETRY_INFO_TYPE, "retryDelay": delay }]);
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Whole seconds for `Retry-After`, rounded up and at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The rejected item count and message of an encoded `Export*ServiceResponse`. A response that
/// cannot be read still means the request was accepted: nothing rejected.
pub fn partial_success(response: &[u8]) -> PartialSuccess {
    ExportResponse::decode(response)
        .ok()
        .and_then(|r| r.partial_success)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_is_found_among_the_details() {
        let ri = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: 2,
                nanos: 500_000_000,
            }),
        };
        let st = RpcStatus {
            code: 14,
            message: "busy".into(),
            details: vec![
                Any {
                    type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                    value: vec![1, 2, 3],
                },
                Any {
                    type_url: RETRY_INFO_TYPE.into(),
                    value: ri.encode_to_vec(),
                },
            ],
        };
        assert_eq!(
            retry_delay(&st.encode_to_vec()),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn no_retry_info_and_garbage_give_none() {
        let st = RpcStatus {
            code: 14,
            message: "x".into(),
            details: vec![],
        };
        assert_eq!(retry_delay(&st.encode_to_vec()), None);
        assert_eq!(retry_delay(&[0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn partial_success_reads_for_every_signal() {
        use opentelemetry_proto::tonic::collector::logs::v1::{
            ExportLogsPartialSuccess, ExportLogsServiceResponse,
        };
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        let t = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 7,
                error_message: "too old".into(),
            }),
        };
        let p = partial_success(&t.encode_to_vec());
        assert_eq!((p.rejected, p.error_message.as_str()), (7, "too old"));
        let l = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: String::new(),
            }),
        };
        assert_eq!(partial_success(&l.encode_to_vec()).rejected, 3);
        assert_eq!(partial_success(&[0xff, 0xff]), PartialSuccess::default());
    }

    #[test]
    fn retry_info_round_trips_through_the_status() {
        let s = rpc_status(14, "buffers full", Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_delay(&s.encode_to_vec()),
            Some(Duration::from_millis(1500))
        );
        let back = RpcStatus::decode(&s.encode_to_vec()[..]).unwrap();
        assert_eq!(back.code, 14);
        assert_eq!(back.details[0].type_url, RETRY_INFO_TYPE);
        assert!(rpc_status(3, "bad", None).details.is_empty());
    }

    #[test]
    fn json_status_uses_the_protobuf_json_mapping() {
        let j: serde_json::Value = serde_json::from_slice(&rpc_status_json(
            14,
            "full",
            Some(Duration::from_millis(1500)),
        ))
        .unwrap();
        assert_eq!(j["code"], 14);
        assert_eq!(j["details"][0]["retryDelay"], "1.500000000s");
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(0)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
