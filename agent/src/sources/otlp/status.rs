//! The error payloads OTLP prescribes: a `google.rpc.Status` (code, message, details) with an
//! optional `google.rpc.RetryInfo` telling a throttled client when to come back. gRPC carries it
//! base64-encoded in `grpc-status-details-bin`; OTLP/HTTP sends it as the body of a 4xx/5xx
//! response, protobuf- or JSON-encoded like the request.
//!
//! The messages themselves are declared once, by hand (prost derive), in the OTLP exporter's
//! codec, which reads the same payloads from the other side.

use prost::Message;
pub use sonde_exporters::otlp::codec::{Any, ProtoDuration, RetryInfo, RpcStatus, RETRY_INFO_TYPE};
use std::time::Duration;

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
