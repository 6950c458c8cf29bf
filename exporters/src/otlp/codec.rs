//! What goes over the wire besides the batch itself: a tonic [`Codec`] that sends the batch's
//! bytes as they are and decodes the `Export*ServiceResponse` (only its partial success), and the
//! few protobuf messages read from answers (`google.rpc.Status`, `RetryInfo`), declared here
//! with prost so no `protoc` is needed.
//!
//! The three `Export*ServiceResponse` messages have the same shape: field 1 `partial_success`
//! holding field 1 `rejected_<items>` (int64) and field 2 `error_message`; one struct reads all.

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

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
pub fn retry_info(status_bytes: &[u8]) -> Option<Duration> {
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

/// Sends `Bytes` untouched; decodes the export response.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassthroughCodec;

impl Codec for PassthroughCodec {
    type Encode = Bytes;
    type Decode = ExportResponse;
    type Encoder = BytesEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<ExportResponse>, Status> {
        // A response we cannot read still means the request was accepted: count nothing rejected.
        let resp = ExportResponse::decode(&mut *src).unwrap_or_default();
        let rest = src.remaining();
        src.advance(rest);
        Ok(Some(resp))
    }
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
            retry_info(&st.encode_to_vec()),
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
        assert_eq!(retry_info(&st.encode_to_vec()), None);
        assert_eq!(retry_info(&[0xff, 0xff, 0xff]), None);
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
        let r = ExportResponse::decode(&t.encode_to_vec()[..]).unwrap();
        let p = r.partial_success.unwrap();
        assert_eq!((p.rejected, p.error_message.as_str()), (7, "too old"));
        let l = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: String::new(),
            }),
        };
        let r = ExportResponse::decode(&l.encode_to_vec()[..]).unwrap();
        assert_eq!(r.partial_success.unwrap().rejected, 3);
    }
}
