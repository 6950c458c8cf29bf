//! The one trait every destination implements, and how an export can fail.
//!
//! An exporter sends one batch per call and says whether a failure is worth retrying. It does not
//! retry, time out or buffer: the export worker in the agent does that, the same way for every
//! destination.

use crate::Batch;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, so that exporters can be held as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an export did not succeed, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// Transient: retry the same batch later, no sooner than `retry_after` when the destination
    /// said so.
    #[error("{reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The destination will never take this batch (bad request, auth): drop it and count it.
    #[error("{reason}")]
    Permanent { reason: String },
}

impl ExportError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        ExportError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }
    pub fn permanent(reason: impl Into<String>) -> Self {
        ExportError::Permanent {
            reason: reason.into(),
        }
    }
    /// A short, stable label for metrics (`reason="…"`).
    pub fn kind(&self) -> &'static str {
        match self {
            ExportError::Retryable { .. } => "retryable",
            ExportError::Permanent { .. } => "permanent",
        }
    }
}

/// What a successful export reports back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Items the destination accepted the request but said it rejected (OTLP partial success).
    pub rejected_items: u64,
}

/// A destination for batches.
pub trait Exporter: Send + Sync + 'static {
    /// Sends one batch. Called by one export worker; may be called concurrently when the
    /// exporter allows several requests in flight.
    fn export<'a>(
        &'a self,
        batch: &'a crate::Batch,
    ) -> BoxFuture<'a, Result<ExportOutcome, ExportError>>;

    /// Flushes anything the exporter holds itself (open files, buffered output) before the agent
    /// stops.
    fn shutdown(&self) -> BoxFuture<'_, Result<(), ExportError>> {
        Box::pin(async { Ok(()) })
    }
}

/// What building an exporter gives: a shared handle the export worker calls.
pub type DynExporter = std::sync::Arc<dyn Exporter>;

#[allow(dead_code)]
fn _assert_object_safe(_: &dyn Exporter, _: &Batch) {}
