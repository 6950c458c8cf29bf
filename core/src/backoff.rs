//! Exponential backoff with full jitter (AWS architecture blog's "full jitter"): the n-th wait is
//! uniform in [0, min(max, initial · 2ⁿ)], and never shorter than a hint the destination gave.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The next wait; `hint` (Retry-After, RetryInfo) is honoured as a lower bound.
    pub fn next(&mut self, hint: Option<Duration>) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jittered = ceiling.mul_f64(rand::rng().random_range(0.0..=1.0));
        match hint {
            Some(h) => jittered.max(h.min(self.max.max(h))),
            None => jittered,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_under_the_growing_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for n in 0..20u32 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << n.min(20))
                .min(Duration::from_secs(1));
            let w = b.next(None);
            assert!(w <= ceiling, "attempt {n}: {w:?} > {ceiling:?}");
        }
    }

    #[test]
    fn a_hint_is_a_lower_bound() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        assert!(b.next(Some(Duration::from_secs(3))) >= Duration::from_secs(3));
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            seen.insert(b.next(None).as_millis());
        }
        assert!(seen.len() > 10, "{seen:?}");
    }
}
