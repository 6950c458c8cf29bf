//! OTLP/HTTP (binary protobuf) to one endpoint: a POST of the batch's bytes (compressed when
//! configured) to the signal's URL, over hyper's pooled client on the [`Dialer`] (HTTP/1.1 on
//! plain text, HTTP/2 when TLS negotiates it), and the answer classified as the OTLP
//! specification says: 2xx is success (with a possible partial success in the body); 429, 502,
//! 503 and 504 are retryable, honouring `Retry-After`; every other status is permanent.

use super::connect::Dialer;
use super::{Answer, BuildError, CallError};
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prost::Message;
use sonde_config::OtlpCompression;
use sonde_core::otlp::status::{partial_success, RpcStatus};
use sonde_core::{otlp, Signal};
use std::io::Write as _;
use std::time::{Duration, SystemTime};

/// Payloads larger than this are compressed on the blocking pool, not on a runtime thread.
const INLINE_COMPRESS_MAX: usize = 64 * 1024;
/// The most of a response body read (a partial success or an error status is small).
const MAX_RESPONSE: usize = 1 << 20;

pub struct HttpSettings {
    pub compression: OtlpCompression,
    pub headers: HeaderMap,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub max_idle: usize,
}

pub struct HttpClient {
    client: Client<Dialer, Full<Bytes>>,
    /// Traces, metrics, logs.
    urls: [Uri; 3],
    headers: HeaderMap,
    compression: OtlpCompression,
}

/// `base` + `/v1/traces` etc., as the OTLP exporter specification derives the signal URLs from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn signal_urls(base: &str) -> Result<[Uri; 3], BuildError> {
    let base = base.trim_end_matches('/');
    let u = |s: Signal| -> Result<Uri, BuildError> {
        let url = format!("{base}{}", otlp::http_path(s));
        url.parse()
            .map_err(|e: http::uri::InvalidUri| BuildError::Endpoint {
                endpoint: url.clone(),
                reason: e.to_string(),
            })
    };
    let [t, m, l] = Signal::ALL.map(u);
    Ok([t?, m?, l?])
}

impl HttpClient {
    /// A client posting to `base` (scheme, authority and base path), dialling through `dialer`.
    pub fn new(base: &str, dialer: Dialer, s: &HttpSettings) -> Result<HttpClient, BuildError> {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(s.max_idle.max(1));
        if !s.keepalive_interval.is_zero() {
            builder
                .http2_keep_alive_interval(s.keepalive_interval)
                .http2_keep_alive_timeout(s.keepalive_timeout)
                .http2_keep_alive_while_idle(true);
        }
        let mut headers = s.headers.clone();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("sonde/", env!("CARGO_PKG_VERSION"))),
        );
        match s.compression {
            OtlpCompression::None => {}
            OtlpCompression::Gzip => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            OtlpCompression::Zstd => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("zstd"));
            }
        }
        Ok(HttpClient {
            client: builder.build(dialer),
            urls: signal_urls(base)?,
            headers,
            compression: s.compression,
        })
    }

    pub fn url(&self, signal: Signal) -> &Uri {
        &self.urls[signal.index()]
    }

    pub async fn export(&self, signal: Signal, payload: Bytes) -> Result<Answer, CallError> {
        let url = self.url(signal);
        let body = compress_off_runtime(self.compression, payload)
            .await
            .map_err(|e| CallError::Permanent {
                reason: format!("cannot compress the batch: {e}"),
                label: "compression".into(),
            })?;
        let mut request = Request::post(url.clone())
            .body(Full::new(body))
            .map_err(|e| CallError::Permanent {
                reason: format!("{url}: cannot build the request: {e}"),
                label: "request".into(),
            })?;
        *request.headers_mut() = self.headers.clone();
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| CallError::Retryable {
                reason: format!("{url}: {}", error_chain(&e)),
                retry_after: None,
                label: "transport".into(),
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let encoding = response
            .headers()
            .get(CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map(|b| b.to_bytes());
        let body = match body {
            Ok(b) => decompress(encoding.as_deref(), b),
            Err(e) if status.is_success() => {
                // The data was accepted; only the details of the answer are lost.
                tracing::debug!(url = %url, error = %e, "cannot read the export response");
                Bytes::new()
            }
            Err(_) => Bytes::new(),
        };
        classify(status, &body, retry_after, url)
    }
}

/// What an HTTP answer means for the batch.
pub fn classify(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    url: &Uri,
) -> Result<Answer, CallError> {
    if status.is_success() {
        let p = partial_success(body);
        return Ok(Answer {
            rejected: u64::try_from(p.rejected).unwrap_or(0),
            message: p.error_message,
        });
    }
    let detail = RpcStatus::decode(body)
        .ok()
        .map(|s| s.message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
            text.chars().filter(|c| !c.is_control()).collect()
        });
    let reason = format!("{url} answered {status}: {detail}");
    let label = format!("http_{}", status.as_u16());
    match status.as_u16() {
        429 | 502 | 503 | 504 => Err(CallError::Retryable {
            reason,
            retry_after,
            label,
        }),
        _ => Err(CallError::Permanent { reason, label }),
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Compresses `payload`; large payloads on the blocking pool.
pub async fn compress_off_runtime(c: OtlpCompression, payload: Bytes) -> std::io::Result<Bytes> {
    if c == OtlpCompression::None {
        return Ok(payload);
    }
    if payload.len() <= INLINE_COMPRESS_MAX {
        return compress(c, &payload);
    }
    tokio::task::spawn_blocking(move || compress(c, &payload))
        .await
        .map_err(std::io::Error::other)?
}

pub fn compress(c: OtlpCompression, payload: &[u8]) -> std::io::Result<Bytes> {
    match c {
        OtlpCompression::None => Ok(Bytes::copy_from_slice(payload)),
        OtlpCompression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(payload.len() / 4 + 64),
                flate2::Compression::new(6),
            );
            enc.write_all(payload)?;
            Ok(enc.finish()?.into())
        }
        OtlpCompression::Zstd => {
            Ok(zstd::bulk::compress(payload, zstd::DEFAULT_COMPRESSION_LEVEL)?.into())
        }
    }
}

/// Undoes a response's `Content-Encoding` (gzip, zstd); anything unreadable becomes empty.
fn decompress(encoding: Option<&str>, body: Bytes) -> Bytes {
    use std::io::Read as _;
    let mut out = Vec::new();
    let ok = match encoding {
        None | Some("identity") => return body,
        Some("gzip") => flate2::read::GzDecoder::new(&body[..])
            .take(MAX_RESPONSE as u64)
            .read_to_end(&mut out)
            .is_ok(),
        Some("zstd") => zstd::stream::read::Decoder::new(&body[..])
            .and_then(|d| d.take(MAX_RESPONSE as u64).read_to_end(&mut out))
            .is_ok(),
        Some(_) => false,
    };
    if ok {
        out.into()
    } else {
        Bytes::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Uri {
        "http://gw:4318/v1/traces".parse().unwrap()
    }

    #[test]
    fn signal_urls_follow_the_spec() {
        let [t, m, l] = signal_urls("http://gw:4318").unwrap();
        assert_eq!(t.to_string(), "http://gw:4318/v1/traces");
        assert_eq!(m.to_string(), "http://gw:4318/v1/metrics");
        assert_eq!(l.to_string(), "http://gw:4318/v1/logs");
        let [t, ..] = signal_urls("https://vendor.example/otlp/").unwrap();
        assert_eq!(t.to_string(), "https://vendor.example/otlp/v1/traces");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_are_classified_as_the_spec_says() {
        for code in [429, 502, 503, 504] {
            let s = StatusCode::from_u16(code).unwrap();
            match classify(s, b"", Some(Duration::from_secs(2)), &url()) {
                Err(CallError::Retryable { retry_after, .. }) => {
                    assert_eq!(retry_after, Some(Duration::from_secs(2)))
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        for code in [400, 401, 403, 404, 413, 500] {
            let s = StatusCode::from_u16(code).unwrap();
            match classify(s, b"", None, &url()) {
                Err(CallError::Permanent { reason, .. }) => {
                    assert!(reason.contains("http://gw:4318/v1/traces"), "{reason}");
                    assert!(reason.contains(&code.to_string()), "{reason}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_error_body_status_message_is_quoted() {
        let body = RpcStatus {
            code: 3,
            message: "span too large".into(),
            details: vec![],
        }
        .encode_to_vec();
        match classify(StatusCode::BAD_REQUEST, &body, None, &url()) {
            Err(CallError::Permanent { reason, .. }) => {
                assert!(reason.ends_with("span too large"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_success_is_read_from_a_2xx_body() {
        use opentelemetry_proto::tonic::collector::metrics::v1::{
            ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
        };
        let body = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 4,
                error_message: "dup".into(),
            }),
        }
        .encode_to_vec();
        let a = classify(StatusCode::OK, &body, None, &url()).unwrap();
        assert_eq!((a.rejected, a.message.as_str()), (4, "dup"));
        assert_eq!(
            classify(StatusCode::OK, b"", None, &url())
                .unwrap()
                .rejected,
            0
        );
    }

    #[test]
    fn compression_round_trips() {
        use std::io::Read;
        let data = vec![7u8; 100_000];
        let gz = compress(OtlpCompression::Gzip, &data).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let zs = compress(OtlpCompression::Zstd, &data).unwrap();
        assert_eq!(zstd::decode_all(&zs[..]).unwrap(), data);
        assert!(gz.len() < 1000 && zs.len() < 1000);
    }
}
