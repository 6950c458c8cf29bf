//! The names Sonde prints and stores for OTLP's span enums, shared by the stdout exporter's text
//! lines and the Parquet tables (whose schema documents them).

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// `Span.kind` as a word: `server`, `client`, …; `unknown` for a number OTLP does not define.
pub(crate) fn span_kind(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Unspecified) => "unspecified",
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        Err(_) => "unknown",
    }
}

/// `Status.code` as a word: `unset`, `ok`, `error`; `unknown` for any other number.
pub(crate) fn span_status(code: i32) -> &'static str {
    match code {
        0 => "unset",
        1 => "ok",
        2 => "error",
        _ => "unknown",
    }
}
