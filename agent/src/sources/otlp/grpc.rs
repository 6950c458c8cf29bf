//! One OTLP/gRPC request: route by method path, check content type, token and an in-flight slot,
//! then let tonic ([`tonic::server::Grpc`] with [`RawCodec`]) unframe and decompress the message
//! (bounded by `max_request_size`) and hand its bytes to [`Receiver::accept`].
//!
//! Answers: success is the empty `Export*ServiceResponse` (zero bytes) with `grpc-status: 0`.
//! Refusals are trailers-only responses with the code of their [`Reason`]; throttling ones carry
//! a `google.rpc.RetryInfo` in `grpc-status-details-bin` (and in `google.rpc.retryinfo-bin`). tonic's own refusals (bad framing,
//! corrupt compressed data, a message over the limit, an unknown `grpc-encoding`) are mapped to
//! the same reasons, so they get the codes the OTLP spec wants (tonic says `INTERNAL` and
//! `OUT_OF_RANGE` there, which OTLP clients would retry forever) and are counted alike.

use super::{Reason, Receiver, Refusal, Transport};
use bytes::Bytes;
use hyper::body::Incoming;
use prost::Message;
use sonde_core::otlp::codec::RawCodec;
use sonde_core::otlp::{self, status};
use sonde_core::Signal;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tonic::body::Body;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

pub async fn handle(rx: Arc<Receiver>, req: http::Request<Incoming>) -> http::Response<Body> {
    let signal = match otlp::signal_of_grpc_path(req.uri().path()) {
        Some(s) => s,
        None => {
            let r = Refusal::new(
                Reason::NotFound,
                format!(
                    "unknown method {}: this receiver serves the OTLP TraceService, \
                     MetricsService and LogsService Export methods",
                    req.uri().path()
                ),
            );
            return refusal(&rx, &r);
        }
    };
    let grpc_content = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc_content {
        // The gRPC spec's answer, so that a plain HTTP client does not read 200 as success.
        let r = Refusal::new(
            Reason::UnsupportedMediaType,
            "gRPC requests must have Content-Type application/grpc",
        );
        rx.refused(Transport::Grpc, &r);
        let mut resp =
            http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(r.message))));
        *resp.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return resp;
    }
    if req.method() != http::Method::POST {
        let r = Refusal::new(Reason::MethodNotAllowed, "gRPC requests must use POST");
        return refusal(&rx, &r);
    }
    if let Err(r) = rx.authorized(
        req.headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    ) {
        return refusal(&rx, &r);
    }
    let _slot = match rx.slot().await {
        Ok(s) => s,
        Err(r) => return refusal(&rx, &r),
    };

    let outcome = Arc::new(Mutex::new(None));
    let export = Export {
        rx: rx.clone(),
        signal,
        outcome: outcome.clone(),
    };
    let mut grpc = tonic::server::Grpc::new(RawCodec)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .max_decoding_message_size(rx.limits.max_request_size);
    let limit = rx.limits.request_timeout + rx.limits.block_timeout;
    let response = match tokio::time::timeout(limit, grpc.unary(export, req)).await {
        Ok(r) => r,
        Err(_) => {
            let r = Refusal::new(
                Reason::Timeout,
                format!("the request did not arrive in full within {limit:?}"),
            );
            return refusal(&rx, &r);
        }
    };
    let refused = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(r) = refused {
        return refusal(&rx, &r);
    }
    // tonic refused before our service saw a message: its Status rides in the extensions.
    if let Some(st) = response.extensions().get::<Status>() {
        if st.code() != Code::Ok {
            let r = tonic_refusal(st);
            return refusal(&rx, &r);
        }
    }
    response
}

/// Maps a refusal tonic made itself to ours.
fn tonic_refusal(st: &Status) -> Refusal {
    let reason = match st.code() {
        Code::OutOfRange | Code::ResourceExhausted => Reason::TooLarge,
        Code::Unimplemented => Reason::UnsupportedEncoding,
        _ => Reason::Malformed,
    };
    let message = match reason {
        Reason::TooLarge => format!(
            "the request is larger than max_request_size: {}",
            st.message()
        ),
        Reason::UnsupportedEncoding => format!(
            "{} (this receiver takes gzip, zstd and identity)",
            st.message()
        ),
        _ => format!("malformed gRPC request: {}", st.message()),
    };
    Refusal::new(reason, message)
}

/// The trailers-only answer to a refusal, counted.
fn refusal(rx: &Receiver, r: &Refusal) -> http::Response<Body> {
    rx.refused(Transport::Grpc, r);
    let code = r.reason.grpc_code();
    let status = if r.reason.throttles() {
        let delay = rx.limits.retry_after;
        let details = status::rpc_status(code as i32, &r.message, Some(delay)).encode_to_vec();
        // The hint twice: in the standard details, and as the `google.rpc.retryinfo-bin`
        // trailer, which is where some SDKs (OpenTelemetry Python) look for it.
        let mut metadata = MetadataMap::new();
        metadata.insert_bin(
            "google.rpc.retryinfo-bin",
            MetadataValue::from_bytes(&status::retry_info(delay).encode_to_vec()),
        );
        Status::with_details_and_metadata(code, r.message.clone(), details.into(), metadata)
    } else {
        Status::new(code, r.message.clone())
    };
    let mut resp = status.into_http::<Body>();
    if r.reason == Reason::UnsupportedEncoding {
        resp.headers_mut().insert(
            "grpc-accept-encoding",
            http::HeaderValue::from_static("gzip,zstd,identity"),
        );
    }
    resp
}

/// The service tonic calls with the message bytes. It always answers success to tonic and
/// leaves a refusal in `outcome`, so that [`handle`] answers it with our codes and counters.
struct Export {
    rx: Arc<Receiver>,
    signal: Signal,
    outcome: Arc<Mutex<Option<Refusal>>>,
}

type ExportFuture = Pin<Box<dyn Future<Output = Result<tonic::Response<Bytes>, Status>> + Send>>;

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = ExportFuture;

    fn call(&mut self, request: tonic::Request<Bytes>) -> ExportFuture {
        let rx = self.rx.clone();
        let signal = self.signal;
        let outcome = self.outcome.clone();
        Box::pin(async move {
            if let Err(r) = rx
                .accept(Transport::Grpc, signal, request.into_inner())
                .await
            {
                *outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            }
            // The full-success response: an empty Export*ServiceResponse.
            Ok(tonic::Response::new(Bytes::new()))
        })
    }
}
