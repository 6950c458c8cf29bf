//! Sonde's vocabulary, and nothing else: what every source, processor and exporter speaks.
//!
//! - the currency: [`Batch`] (an encoded OTLP export request with its [`Signal`] and item count)
//!   and its end-to-end [`Ack`];
//! - the [`wire`] walker that validates, reads and cuts encoded requests without decoding them;
//! - the [`Exporter`] trait every destination implements, and how an export fails;
//! - the component contract: [`component::Context`] and [`component::BuildError`];
//! - OTLP as it travels ([`otlp`]: paths, the raw gRPC codec, status messages) and the [`names`]
//!   of its enum values;
//! - the one [`metrics`] registry;
//! - the few utilities every component shares: [`backoff`], [`log_limit`], [`fs`] (atomic
//!   writes), [`process`] (the process's own figures).
//!
//! It knows no source, processor or exporter, and never will: they depend on it, not the other
//! way round.

pub mod ack;
pub mod backoff;
pub mod batch;
pub mod component;
pub mod exporter;
pub mod fs;
pub mod log_limit;
pub mod metrics;
pub mod names;
pub mod otlp;
pub mod process;
pub mod signal;
pub mod wire;

pub use ack::Ack;
pub use batch::Batch;
pub use component::{BuildError, Context, Kind};
pub use exporter::{BoxFuture, DynExporter, ExportError, ExportOutcome, Exporter};
pub use signal::Signal;
