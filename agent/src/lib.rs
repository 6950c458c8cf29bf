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
pub mod processors;
pub mod sources;
pub mod systemd;
pub mod topology;

/// The configuration used when none is given and `/etc/sonde/sonde.toml` does not exist.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The system-wide configuration file, used when present and no `--config` is given.
pub const SYSTEM_CONFIG: &str = "/etc/sonde/sonde.toml";

/// Loads configuration text: the schema's checks, then the ones only the agent can make (filter
/// conditions that do not parse), every problem with its line:column.
pub fn load_config(
    text: &str,
    origin: &str,
) -> Result<sonde_config::Config, sonde_config::ConfigErrors> {
    sonde_config::load_str_checked(text, origin, &processors::check)
}

/// [`load_config`] of a file.
pub fn load_config_file(
    path: &std::path::Path,
) -> Result<sonde_config::Config, sonde_config::ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| sonde_config::ConfigErrors {
        origin: origin.clone(),
        errors: vec![sonde_config::ConfigError::new(
            "",
            format!("cannot read the file: {e}"),
        )],
    })?;
    load_config(&text, &origin)
}
