//! End-to-end acknowledgement: a token a source attaches to a [`crate::Batch`] to learn when
//! every buffer that took the batch has finished with it (exported, or given up on and counted).
//!
//! The token is shared by every clone of the batch. When the last clone is dropped, the
//! source's callback runs once with `true`, unless some holder called [`Ack::abandon`] — the
//! batch was interrupted (shutdown before export) and may not be counted as done. A source that
//! must not lose data (the file tailer) advances its persisted position only on `true`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Callback = Box<dyn FnOnce(bool) + Send>;

/// The shared acknowledgement of one batch. Cloning shares it.
#[derive(Clone)]
pub struct Ack(Arc<Inner>);

struct Inner {
    abandoned: AtomicBool,
    on_done: Mutex<Option<Callback>>,
}

impl Ack {
    /// A token whose `on_done(finished)` runs when the last holder lets go.
    pub fn new(on_done: impl FnOnce(bool) + Send + 'static) -> Self {
        Ack(Arc::new(Inner {
            abandoned: AtomicBool::new(false),
            on_done: Mutex::new(Some(Box::new(on_done))),
        }))
    }

    /// Marks the batch as not finished: the callback will get `false`.
    pub fn abandon(&self) {
        self.0.abandoned.store(true, Ordering::Release);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let done = !self.abandoned.load(Ordering::Acquire);
        let cb = self
            .on_done
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(cb) = cb {
            cb(done);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

impl PartialEq for Ack {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn fires_once_when_the_last_clone_goes() {
        let (tx, rx) = mpsc::channel();
        let a = Ack::new(move |ok| tx.send(ok).unwrap());
        let b = a.clone();
        drop(a);
        assert!(rx.try_recv().is_err());
        drop(b);
        assert_eq!(rx.try_recv(), Ok(true));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn one_abandon_makes_it_unfinished() {
        let (tx, rx) = mpsc::channel();
        let a = Ack::new(move |ok| tx.send(ok).unwrap());
        let b = a.clone();
        b.abandon();
        drop(b);
        drop(a);
        assert_eq!(rx.try_recv(), Ok(false));
    }
}
