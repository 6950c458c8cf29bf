//! The settings of each source type, one file per `type` (`[sources.<name>]` with
//! `type = "host_metrics"` is `host_metrics.rs`), each with the checks its types cannot express.
//!
//! The enum that selects among them ([`crate::SourceConfig`]) is in `schema.rs`; the sources
//! themselves run in the agent (`agent/src/sources/`). Nothing here opens a file or a socket.

pub mod file;
pub mod host_metrics;
pub mod internal_metrics;
pub mod journald;
pub mod otlp;
pub(crate) mod periodic;
pub mod syslog;
