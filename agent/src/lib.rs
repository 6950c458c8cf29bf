//! Sonde, the agent: sources, the pipeline (router, buffers, export workers), the topology that
//! wires them, and the process lifecycle. `main.rs` is only the command line on top of this.
//!
//! Data flow: source → [`pipeline::router`] → per-exporter [`pipeline::buffer`] →
//! [`pipeline::worker`] (merge, timeout, retry) → an exporter from `sonde-exporters`.

pub mod admin;
pub mod health;
pub mod host;
pub mod lifecycle;
pub mod logging;
pub mod pipeline;
pub mod sources;
pub mod systemd;
pub mod topology;

/// The configuration used when none is given and `/etc/sonde/sonde.toml` does not exist.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The system-wide configuration file, used when present and no `--config` is given.
pub const SYSTEM_CONFIG: &str = "/etc/sonde/sonde.toml";
