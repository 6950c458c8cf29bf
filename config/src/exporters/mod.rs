//! The settings of each exporter: what every exporter shares (`common.rs`: inputs, signals,
//! buffer, batch, timeout, retry, concurrency) and one file per `type` for the rest
//! (`[exporters.<name>]` with `type = "parquet"` is `parquet.rs`), each with the checks its types
//! cannot express.
//!
//! The types that put the two halves together ([`crate::ExporterConfig`],
//! [`crate::ExporterKind`]) are in `schema.rs`; the exporters themselves live in the
//! `sonde-exporters` crate and the buffers and workers in the agent's pipeline. Nothing here
//! connects anywhere.

pub mod common;
pub mod otlp;
pub mod parquet;
pub mod stdout;
