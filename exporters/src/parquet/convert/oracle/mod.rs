//! The prost-based trace and log converters the wire-level ones replaced, kept unchanged as the
//! oracle the equivalence tests compare against (decode into `opentelemetry-proto` structs, then
//! fill the builders). Test-only.

pub(crate) mod logs;
pub(crate) mod traces;
