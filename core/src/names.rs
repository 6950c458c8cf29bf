//! The names Sonde prints and stores for OTLP's span enums, shared by the stdout exporter's text
//! lines and the Parquet tables (whose schema documents them).

/// `Span.kind` as a word: `server`, `client`, …; `unknown` for a number OTLP does not define.
pub fn span_kind(kind: i32) -> &'static str {
    match kind {
        0 => "unspecified",
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unknown",
    }
}

/// `Status.code` as a word: `unset`, `ok`, `error`; `unknown` for any other number.
pub fn span_status(code: i32) -> &'static str {
    match code {
        0 => "unset",
        1 => "ok",
        2 => "error",
        _ => "unknown",
    }
}
