//! The one contract every component is built by — sources, processors and exporters alike: a
//! config struct (in `sonde-config`) and a typed `build(config, context)` that returns the
//! running component or a [`BuildError`].
//!
//! Everything a component needs arrives in its [`Context`]: its name, the metrics registry, the
//! shutdown token, the data directory for state it keeps, the shutdown deadline, and its
//! downstream (`output`: the router for sources and processors, nothing for exporters, which are
//! called by their export worker). No globals, no singletons.

use crate::metrics::Registry;
use std::error::Error;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What kind of component something is, for messages and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Source,
    Processor,
    Exporter,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a component is handed when it is built.
#[derive(Clone)]
pub struct Context<D> {
    pub kind: Kind,
    /// The component's name in the config (`[sources.<name>]`).
    pub name: Arc<str>,
    pub metrics: Registry,
    /// Fires when the component must stop; a component's task finishes after it.
    pub shutdown: CancellationToken,
    /// `agent.data_dir`: where a component keeps state (checkpoints, staged files).
    pub data_dir: PathBuf,
    /// `agent.shutdown_timeout`: how long a stop may take in all.
    pub shutdown_timeout: Duration,
    /// Where the component's output goes.
    pub output: D,
}

impl<D> Context<D> {
    /// A build failure of this component.
    pub fn error(&self, cause: impl Into<Box<dyn Error + Send + Sync>>) -> BuildError {
        BuildError::new(self.kind, &self.name, cause)
    }

    /// The same context with another downstream.
    pub fn with_output<E>(self, output: E) -> Context<E> {
        Context {
            kind: self.kind,
            name: self.name,
            metrics: self.metrics,
            shutdown: self.shutdown,
            data_dir: self.data_dir,
            shutdown_timeout: self.shutdown_timeout,
            output,
        }
    }
}

/// A component that could not be built from its (valid) configuration: a port that cannot be
/// bound, a certificate that cannot be read, a state directory that cannot be written. The agent
/// then refuses to start (or a reload keeps the old configuration) and says which component and
/// why. The cause is the component's own typed error.
#[derive(Debug)]
pub struct BuildError {
    pub kind: Kind,
    pub name: Arc<str>,
    pub cause: Box<dyn Error + Send + Sync>,
}

impl BuildError {
    pub fn new(kind: Kind, name: &str, cause: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        BuildError {
            kind,
            name: Arc::from(name),
            cause: cause.into(),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`: {}", self.kind, self.name, self.cause)
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot bind 127.0.0.1:1: address in use")]
    struct Bind;

    #[test]
    fn a_build_error_names_the_component_and_its_cause() {
        let cx = Context {
            kind: Kind::Source,
            name: Arc::from("otlp"),
            metrics: Registry::default(),
            shutdown: CancellationToken::new(),
            data_dir: PathBuf::from("/tmp"),
            shutdown_timeout: Duration::from_secs(1),
            output: (),
        };
        let e = cx.error(Bind);
        assert_eq!(
            e.to_string(),
            "source `otlp`: cannot bind 127.0.0.1:1: address in use"
        );
        let e = cx.with_output(7u8).error("plain text cause");
        assert_eq!(e.to_string(), "source `otlp`: plain text cause");
    }
}
