//! The one rate limit for repeating log lines: a destination that is down, a disk that is full or
//! a client that sends garbage must not flood the log, yet the next line that gets through says
//! how many were held back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the same kind of trouble is logged at most, unless a component says otherwise.
pub const LOG_PERIOD: Duration = Duration::from_secs(10);

/// One line per period at most. Shared by reference between tasks; cheap when it says no.
#[derive(Debug)]
pub struct LogLimit {
    period: Duration,
    /// When the last line was let through, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(LOG_PERIOD)
    }
}

impl LogLimit {
    pub fn new(period: Duration) -> Self {
        LogLimit {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)`: log now; `n` lines were held back since the last one. `None`: hold it back.
    pub fn check(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, held) = &mut *state;
        if last.is_none_or(|t| t.elapsed() >= self.period) {
            *last = Some(Instant::now());
            Some(std::mem::take(held))
        } else {
            *held += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_one_line_through_per_period_and_counts_the_rest() {
        let l = LogLimit::new(Duration::from_secs(3600));
        assert_eq!(l.check(), Some(0));
        assert_eq!(l.check(), None);
        assert_eq!(l.check(), None);
        let z = LogLimit::new(Duration::ZERO);
        assert_eq!(z.check(), Some(0));
        assert_eq!(z.check(), Some(0));
    }

    #[test]
    fn the_next_line_reports_what_was_held_back() {
        let l = LogLimit::new(Duration::from_millis(20));
        assert_eq!(l.check(), Some(0));
        assert_eq!(l.check(), None);
        assert_eq!(l.check(), None);
        // The period is what is under test: let it pass, then one line gets through.
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(l.check(), Some(2));
        assert_eq!(l.check(), None);
    }
}
