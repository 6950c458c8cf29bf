//! Sonde's configuration: the TOML schema (serde structs with defaults), `${VAR}` interpolation,
//! validation of the whole file, and errors that name the key path and the line:column.
//!
//! This crate owns what can be written and what it means; it does no I/O beyond reading the file
//! and has no behaviour. The other crates take the typed [`Config`] and build from it.

pub mod error;
pub mod file;
pub mod interpolate;
pub mod load;
pub mod otlp;
pub mod parquet;
pub mod schema;
pub mod units;

pub use error::{ConfigError, ConfigErrors};
pub use load::{load_file, load_str, load_str_with_env};
pub use schema::*;
pub use units::{ByteSize, Duration, Secret};
