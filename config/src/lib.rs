//! Sonde's configuration: the TOML schema (serde structs with defaults), `${VAR}` interpolation,
//! validation of the whole file, and errors that name the key path and the line:column.
//!
//! This crate owns what can be written and what it means; it does no I/O beyond reading the file
//! and has no behaviour. The other crates take the typed [`Config`] and build from it.
//!
//! # Map
//! - [`schema`]: the whole file ([`Config`]) and the enums that pick a component's settings by
//!   its `type`.
//! - [`agent`]: `[agent]` and its tables (log, admin, health, telemetry).
//! - [`sources`]: one file per source type; [`processors`]: one file per processor type;
//!   [`exporters`]: the settings every exporter shares
//!   ([`exporters::common`]) and one file per exporter type. Each settings struct carries the
//!   checks its types cannot express (`problems()`).
//! - [`load`]: text to [`Config`], every component deserialized on its own; `validate`: the
//!   checks across components; `report`: placing each problem at its key's line:column;
//!   `print`: the effective configuration back as TOML.
//! - [`units`], [`listen`]: how durations, sizes, secrets and addresses are written.
//! - [`interpolate`], [`error`], [`problem`]: `${VAR}`, the errors shown, key paths.
//!
//! Every public type is also at the crate root (`sonde_config::ParquetConfig`).

pub mod agent;
pub mod error;
pub mod exporters;
pub mod interpolate;
pub mod listen;
pub mod load;
mod print;
pub mod problem;
pub mod processors;
mod report;
pub mod schema;
pub mod sources;
pub mod units;
mod validate;

pub use agent::*;
pub use error::{ConfigError, ConfigErrors};
pub use exporters::common::*;
pub use exporters::otlp::*;
pub use exporters::parquet::*;
pub use exporters::stdout::*;
pub use listen::*;
pub use load::{load_file, load_str, load_str_checked, load_str_with_env, LateProblem};
pub use problem::*;
pub use processors::filter::*;
pub use processors::redact::*;
pub use processors::resource::*;
pub use processors::sample::*;
pub use schema::*;
pub use sources::file::*;
pub use sources::host_metrics::*;
pub use sources::internal_metrics::*;
pub use sources::journald::*;
pub use sources::otlp::*;
pub use sources::syslog::*;
pub use units::{ByteSize, Duration, Secret};
