//! The circuit breaker of one endpoint: closed (calls go through, consecutive failures are
//! counted) → after `failure_threshold` failures, open (no calls: the data waits in the buffer)
//! → half-open (exactly one probe call goes through; its success closes the circuit, its failure
//! opens it again).
//!
//! The first opening lasts `open_duration`; each failed probe doubles the next one, up to
//! `max_open_duration` (as Envoy's outlier ejection and gRPC's reconnect backoff grow). A brief
//! outage is over a second or so after the endpoint is back; a long one costs one probe per
//! `max_open_duration`. A success starts the sequence again.
//!
//! It only decides and records; it never sleeps. A call that was let through must be reported
//! with [`Circuit::success`] or [`Circuit::failure`]; the exporter's call guard reports a call
//! dropped before it finished (the worker's timeout) as a failure, so a hanging endpoint opens
//! its circuit too.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is in flight (or was let through and not reported yet).
    HalfOpen,
}

/// What the circuit is doing, for the state gauge and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open,
    HalfOpen,
}

impl Phase {
    /// The value of the `sonde_otlp_exporter_circuit_state` gauge.
    pub fn gauge_value(self) -> i64 {
        match self {
            Phase::Closed => 0,
            Phase::Open => 1,
            Phase::HalfOpen => 2,
        }
    }
}

/// A state change worth logging and counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    HalfOpened,
    Closed,
}

#[derive(Debug)]
pub struct Circuit {
    threshold: u32,
    open_for: Duration,
    max_open_for: Duration,
    state: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Openings since the last success: the next one lasts `open_for × 2^openings`.
    openings: u32,
}

/// Refused: the circuit is open (or its one probe is out); try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

impl Circuit {
    /// `threshold` 0 disables the breaker (it never opens). Openings last `open_for`, doubling
    /// after each failed probe up to `max_open_for` (never less than `open_for`).
    pub fn new(threshold: u32, open_for: Duration, max_open_for: Duration) -> Self {
        Circuit {
            threshold,
            open_for,
            max_open_for: max_open_for.max(open_for),
            state: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                openings: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update leaves both fields valid: a poisoned lock still holds a usable state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the circuit now, for the period this opening is due.
    fn open(&self, inner: &mut Inner, now: Instant) {
        let period = self
            .open_for
            .saturating_mul(1u32 << inner.openings.min(20))
            .min(self.max_open_for);
        inner.state = State::Open {
            until: now + period,
        };
        inner.openings = inner.openings.saturating_add(1);
    }

    pub fn phase(&self) -> Phase {
        match self.lock().state {
            State::Closed { .. } => Phase::Closed,
            State::Open { until } if Instant::now() >= until => Phase::HalfOpen,
            State::Open { .. } => Phase::Open,
            State::HalfOpen => Phase::HalfOpen,
        }
    }

    /// Whether a call may go now (without taking the probe slot): for choosing endpoints.
    pub fn available(&self, now: Instant) -> bool {
        match self.lock().state {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            State::HalfOpen => false,
        }
    }

    /// How long until a call may go (zero when it may go now).
    pub fn wait(&self, now: Instant) -> Duration {
        match self.lock().state {
            State::Closed { .. } => Duration::ZERO,
            State::Open { until } => until.saturating_duration_since(now),
            // The probe's outcome decides; ask again after a short while.
            State::HalfOpen => self.open_for.min(Duration::from_secs(1)),
        }
    }

    /// Asks to make a call. On an open circuit whose time is up, this call becomes the probe.
    pub fn try_acquire(&self, now: Instant) -> Result<Option<Transition>, Refused> {
        let mut s = self.lock();
        match s.state {
            State::Closed { .. } => Ok(None),
            State::Open { until } if now >= until => {
                s.state = State::HalfOpen;
                Ok(Some(Transition::HalfOpened))
            }
            State::Open { until } => Err(Refused {
                retry_after: until - now,
            }),
            State::HalfOpen => Err(Refused {
                retry_after: self.open_for.min(Duration::from_secs(1)),
            }),
        }
    }

    /// The call got an answer from the endpoint (even a refusal of the data).
    pub fn success(&self) -> Option<Transition> {
        let mut s = self.lock();
        let was = s.state;
        s.state = State::Closed { failures: 0 };
        s.openings = 0;
        match was {
            State::Closed { .. } => None,
            _ => Some(Transition::Closed),
        }
    }

    /// The call failed in a way that says the endpoint is unwell (transport error, timeout,
    /// unavailable, overloaded).
    pub fn failure(&self, now: Instant) -> Option<Transition> {
        if self.threshold == 0 {
            return None;
        }
        let mut s = self.lock();
        match s.state {
            State::Closed { failures } if failures + 1 >= self.threshold => {
                self.open(&mut s, now);
                Some(Transition::Opened)
            }
            State::Closed { failures } => {
                s.state = State::Closed {
                    failures: failures + 1,
                };
                None
            }
            // The probe failed (or a call let through before the circuit opened): open again,
            // for longer.
            State::HalfOpen => {
                self.open(&mut s, now);
                Some(Transition::Opened)
            }
            State::Open { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let c = Circuit::new(3, Duration::from_secs(10), Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(c.failure(t), None);
        assert_eq!(c.failure(t), None);
        assert_eq!(c.failure(t), Some(Transition::Opened));
        assert_eq!(c.phase(), Phase::Open);
        let refused = c.try_acquire(t + Duration::from_secs(4)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(6));
        assert!(!c.available(t + Duration::from_secs(4)));
    }

    #[test]
    fn a_success_resets_the_count() {
        let c = Circuit::new(2, Duration::from_secs(10), Duration::from_secs(10));
        let t = Instant::now();
        c.failure(t);
        c.success();
        assert_eq!(c.failure(t), None);
        assert_eq!(c.phase(), Phase::Closed);
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        let c = Circuit::new(1, Duration::from_secs(5), Duration::from_secs(5));
        let t = Instant::now();
        assert_eq!(c.failure(t), Some(Transition::Opened));
        let later = t + Duration::from_secs(5);
        assert!(c.available(later));
        assert_eq!(c.try_acquire(later), Ok(Some(Transition::HalfOpened)));
        assert!(c.try_acquire(later).is_err(), "a second probe must wait");
        assert_eq!(c.success(), Some(Transition::Closed));
        assert_eq!(c.try_acquire(later), Ok(None));
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again() {
        let c = Circuit::new(1, Duration::from_secs(5), Duration::from_secs(5));
        let t = Instant::now();
        c.failure(t);
        let later = t + Duration::from_secs(6);
        c.try_acquire(later).unwrap();
        assert_eq!(c.failure(later), Some(Transition::Opened));
        assert_eq!(
            c.try_acquire(later + Duration::from_secs(1)),
            Err(Refused {
                retry_after: Duration::from_secs(4)
            })
        );
    }

    #[test]
    fn threshold_zero_never_opens() {
        let c = Circuit::new(0, Duration::from_secs(5), Duration::from_secs(5));
        let t = Instant::now();
        for _ in 0..100 {
            assert_eq!(c.failure(t), None);
        }
        assert_eq!(c.try_acquire(t), Ok(None));
    }

    #[test]
    fn each_failed_probe_doubles_the_open_period_up_to_the_maximum_and_a_success_resets_it() {
        let secs = Duration::from_secs;
        let c = Circuit::new(1, secs(1), secs(5));
        let mut t = Instant::now();
        assert_eq!(c.failure(t), Some(Transition::Opened));
        // Open for 1 s, then 2, 4, and 5 (the maximum) from then on.
        for period in [1, 2, 4, 5, 5] {
            assert_eq!(c.wait(t), secs(period), "open for {period}s");
            assert!(c
                .try_acquire(t + secs(period) - Duration::from_millis(1))
                .is_err());
            t += secs(period);
            assert_eq!(c.try_acquire(t), Ok(Some(Transition::HalfOpened)));
            assert_eq!(c.failure(t), Some(Transition::Opened));
        }
        // A successful probe closes it; the next opening is short again.
        t += secs(5);
        c.try_acquire(t).unwrap();
        assert_eq!(c.success(), Some(Transition::Closed));
        assert_eq!(c.failure(t), Some(Transition::Opened));
        assert_eq!(c.wait(t), secs(1));
    }

    #[test]
    fn a_maximum_below_the_first_period_is_taken_as_the_first_period() {
        let c = Circuit::new(1, Duration::from_secs(3), Duration::from_secs(1));
        let t = Instant::now();
        c.failure(t);
        assert_eq!(c.wait(t), Duration::from_secs(3));
        c.try_acquire(t + Duration::from_secs(3)).unwrap();
        c.failure(t + Duration::from_secs(3));
        assert_eq!(c.wait(t + Duration::from_secs(3)), Duration::from_secs(3));
    }
}
