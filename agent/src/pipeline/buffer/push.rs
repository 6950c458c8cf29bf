//! What a producer says and hears when it offers a batch to a buffer: how long it may wait
//! ([`Wait`]), what became of an accepted batch ([`Pushed`]) and why one was refused
//! ([`PushError`]).
//!
//! Both kinds of buffer (the memory one and the disk spool) answer in these types; they live here,
//! below both, so that neither imports the other. This module holds vocabulary only: it never
//! depends on a buffer.

use tokio::time::Instant;

/// How long a producer may wait for space under `when_full = "block"`.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// Don't wait: refuse at once if full.
    No,
    /// Wait until this instant, then refuse.
    Until(Instant),
    /// Wait as long as it takes (the producer has its own cancellation).
    Forever,
}

/// Why a batch was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("buffer full")]
    Full,
    #[error("buffer closed (the agent is stopping)")]
    Closed,
}

/// What happened to an accepted push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Refused under `when_full = "drop_newest"` (or `drop_oldest` when nothing older could
    /// go): counted, and reported to the producer as accepted (the policy chose to lose it).
    Dropped,
}
