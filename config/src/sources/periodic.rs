//! What the sampling sources (`host_metrics`, `internal_metrics`) share in their settings: the
//! shortest `interval` allowed. The sampling loop itself is `agent/src/sources/periodic.rs`.

use crate::problem::Problems;
use crate::units::Duration;

/// The shortest sampling interval accepted.
pub(crate) const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Reports an `interval` shorter than [`MIN_INTERVAL`].
pub(crate) fn check_interval(interval: Duration, out: &mut Problems) {
    if interval.get() < MIN_INTERVAL {
        out.at("interval", "must be at least 100ms");
    }
}
