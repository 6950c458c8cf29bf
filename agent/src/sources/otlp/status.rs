//! The error payloads OTLP prescribes: a `google.rpc.Status` (code, message, details) with an
//! optional `google.rpc.RetryInfo` telling a throttled client when to come back. gRPC carries it
//! base64-encoded in `grpc-status-details-bin`; OTLP/HTTP sends it as the body of a 4xx/5xx
//! response, protobuf- or JSON-encoded like the request.
//!
//! The four messages are declared here by hand (prost derive) rather than pulling in a crate of
//! Google's API types for them.

use prost::Message;
use std::time::Duration;

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_info_round_trips_through_the_status() {
        let s = rpc_status(14, "buffers full", Some(Duration::from_millis(1500)));
        let back = RpcStatus::decode(&s.encode_to_vec()[..]).unwrap();
        assert_eq!(back.code, 14);
        assert_eq!(back.details[0].type_url, RETRY_INFO_TYPE);
        let info = RetryInfo::decode(&back.details[0].value[..]).unwrap();
        assert_eq!(
            info.retry_delay,
            Some(ProtoDuration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
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
