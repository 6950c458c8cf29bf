//! One OTLP/HTTP request: `POST /v1/traces | /v1/metrics | /v1/logs` with
//! `Content-Type: application/x-protobuf` or `application/json`, optionally
//! `Content-Encoding: gzip | zstd`.
//!
//! Order of checks: path, method, content type, content encoding, token, declared length, then an
//! in-flight slot; only then is the body read (within `request_timeout`, at most
//! `max_request_size` bytes), decompressed (at most `max_request_size` bytes out), transcoded
//! from JSON when it is JSON, and handed to [`Receiver::accept`]. CPU-heavy steps on large
//! bodies (decompression, JSON) run on the blocking pool, not on a runtime worker.
//!
//! Answers follow the OTLP/HTTP spec, in the request's encoding: success is 200 with an empty
//! `Export*ServiceResponse` (zero bytes, or `{}` in JSON); a refusal is its [`Reason`]'s status
//! with a `google.rpc.Status` body saying what is wrong, plus `Retry-After` when the client should
//! come back later.

use super::decompress::{decompress, DecompressError, Encoding};
use super::{json, Reason, Receiver, Refusal, Transport};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use prost::Message;
use sonde_core::otlp::{self, status};
use sonde_core::Signal;
use std::sync::Arc;

/// Bodies larger than this are decompressed and transcoded on the blocking pool.
const INLINE_WORK_LIMIT: usize = 64 * 1024;

/// The encoding of a request, and so of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }

    fn of(content_type: Option<&HeaderValue>) -> Option<Format> {
        let v = content_type?.to_str().ok()?;
        let media = v.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-protobuf")
            || media.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Format::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Format::Json)
        } else {
            None
        }
    }
}

pub async fn handle(rx: Arc<Receiver>, req: http::Request<Incoming>) -> Response<Full<Bytes>> {
    // Errors are answered in the request's encoding when it has one we know, else in JSON.
    let format = Format::of(req.headers().get(header::CONTENT_TYPE)).unwrap_or(Format::Json);
    let (parts, body) = req.into_parts();
    let mut body = Some(body);
    let received = receive(&rx, &parts, &mut body).await;
    if let Some(unread) = body {
        // Refused before the body was read. An HTTP/1.1 client is still sending it and would
        // see a reset instead of our answer (and its retry hint) if the connection closed under
        // it: read and discard it, within the same limits, holding no in-flight slot.
        drain(
            unread,
            rx.limits.max_request_size,
            rx.limits.request_timeout,
        )
        .await;
    }
    match received {
        Ok(()) => {
            let body = match format {
                Format::Protobuf => Bytes::new(),
                Format::Json => Bytes::from_static(b"{}"),
            };
            let mut resp = Response::new(Full::new(body));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            resp
        }
        Err(r) => refusal(&rx, format, &r),
    }
}

/// Reads and discards a body, up to `limit` bytes and for at most `within`.
async fn drain(mut body: Incoming, limit: usize, within: std::time::Duration) {
    let _ = tokio::time::timeout(within, async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit {
                break;
            }
        }
    })
    .await;
}

async fn receive(
    rx: &Receiver,
    req: &http::request::Parts,
    body: &mut Option<Incoming>,
) -> Result<(), Refusal> {
    let signal = otlp::signal_of_http_path(req.uri.path()).ok_or_else(|| {
        Refusal::new(
            Reason::NotFound,
            format!(
                "no such endpoint {}: OTLP/HTTP takes POST /v1/traces, /v1/metrics and /v1/logs",
                req.uri.path()
            ),
        )
    })?;
    if req.method != http::Method::POST {
        return Err(Refusal::new(
            Reason::MethodNotAllowed,
            format!("{} is not allowed: use POST", req.method),
        ));
    }
    let headers = &req.headers;
    let format = Format::of(headers.get(header::CONTENT_TYPE)).ok_or_else(|| {
        Refusal::new(
            Reason::UnsupportedMediaType,
            format!(
                "unsupported Content-Type {:?}: use application/x-protobuf or application/json",
                headers
                    .get(header::CONTENT_TYPE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default()
            ),
        )
    })?;
    let encoding = Encoding::parse(headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()))
        .ok_or_else(|| {
            Refusal::new(
                Reason::UnsupportedEncoding,
                "unsupported Content-Encoding: use gzip, zstd or none",
            )
        })?;
    rx.authorized(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))?;
    let limit = rx.limits.max_request_size;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let _slot = rx.slot().await?;

    let Some(body) = body.take() else {
        return Err(Refusal::new(Reason::Malformed, "the request has no body"));
    };
    let body = Limited::new(body, limit).collect();
    let body = match tokio::time::timeout(rx.limits.request_timeout, body).await {
        Err(_) => {
            return Err(Refusal::new(
                Reason::Timeout,
                format!(
                    "the request body did not arrive within {:?}",
                    rx.limits.request_timeout
                ),
            ))
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(too_large(limit))
        }
        Ok(Err(e)) => {
            return Err(Refusal::new(
                Reason::Malformed,
                format!("cannot read the request body: {e}"),
            ))
        }
        Ok(Ok(b)) => b.to_bytes(),
    };
    let payload = if body.len() > INLINE_WORK_LIMIT
        && (encoding != Encoding::Identity || format == Format::Json)
    {
        tokio::task::spawn_blocking(move || decode(signal, format, encoding, body, limit))
            .await
            .map_err(|e| Refusal::new(Reason::Malformed, format!("decoding failed: {e}")))??
    } else {
        decode(signal, format, encoding, body, limit)?
    };
    rx.accept(Transport::Http, signal, payload).await
}

/// Decompresses and, for JSON, transcodes a body to the protobuf export request.
fn decode(
    signal: Signal,
    format: Format,
    encoding: Encoding,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, Refusal> {
    let body = decompress(encoding, body, limit).map_err(|e| match e {
        DecompressError::TooLarge { .. } => Refusal::new(Reason::TooLarge, e.to_string()),
        e => Refusal::new(Reason::Malformed, e.to_string()),
    })?;
    match format {
        Format::Protobuf => Ok(body),
        Format::Json => json::to_protobuf(signal, &body)
            .map(Bytes::from)
            .map_err(|m| Refusal::new(Reason::Malformed, m)),
    }
}

fn too_large(limit: usize) -> Refusal {
    Refusal::new(
        Reason::TooLarge,
        format!("the request is larger than max_request_size ({limit} bytes)"),
    )
}

/// The answer to a refusal, counted: its status, a `google.rpc.Status` body in `format`, and the
/// headers the status calls for.
fn refusal(rx: &Receiver, format: Format, r: &Refusal) -> Response<Full<Bytes>> {
    rx.refused(Transport::Http, r);
    let code = r.reason.grpc_code() as i32;
    let retry = r.reason.throttles().then_some(rx.limits.retry_after);
    let body = match format {
        Format::Protobuf => status::rpc_status(code, &r.message, retry).encode_to_vec(),
        Format::Json => status::rpc_status_json(code, &r.message, retry),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.reason.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Some(d) = retry {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(status::retry_after_secs(d)),
        );
    }
    match r.reason {
        Reason::Unauthenticated => {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Reason::MethodNotAllowed => {
            h.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        Reason::UnsupportedEncoding => {
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("gzip, zstd"),
            );
        }
        _ => {}
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the bytes, the decoding steps answer (with a payload or a refusal) and
        /// never panic; a payload they produce is then judged by the wire walker alone.
        #[test]
        fn decoding_outside_bytes_never_panics(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            json in any::<bool>(),
            enc in 0usize..3,
        ) {
            let format = if json { Format::Json } else { Format::Protobuf };
            let encoding = [Encoding::Identity, Encoding::Gzip, Encoding::Zstd][enc];
            if let Ok(pb) = decode(Signal::Traces, format, encoding, body.into(), 4096) {
                let _ = sonde_core::wire::validate(Signal::Traces, &pb);
            }
        }

        /// Compressed bodies of any content decompress to exactly that content.
        #[test]
        fn compressed_bodies_decode_to_their_content(
            body in proptest::collection::vec(any::<u8>(), 0..4096),
        ) {
            let gz = {
                use std::io::Write as _;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&body).unwrap();
                e.finish().unwrap()
            };
            let out = decode(Signal::Logs, Format::Protobuf, Encoding::Gzip, gz.into(), 8192).unwrap();
            prop_assert_eq!(&out[..], &body[..]);
            let zs = zstd::encode_all(&body[..], 1).unwrap();
            let out = decode(Signal::Logs, Format::Protobuf, Encoding::Zstd, zs.into(), 8192).unwrap();
            prop_assert_eq!(&out[..], &body[..]);
        }
    }

    #[test]
    fn content_types_are_recognised_with_parameters() {
        let f = |s: &'static str| Format::of(Some(&HeaderValue::from_static(s)));
        assert_eq!(f("application/x-protobuf"), Some(Format::Protobuf));
        assert_eq!(f("application/json; charset=utf-8"), Some(Format::Json));
        assert_eq!(f("Application/JSON"), Some(Format::Json));
        assert_eq!(f("text/plain"), None);
        assert_eq!(Format::of(None), None);
    }
}
