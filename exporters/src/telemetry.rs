//! How an exporter reaches the agent's own metrics without knowing the agent: a [`Telemetry`]
//! hands out shared atomics by name and labels (the agent's metrics registry implements it), and
//! the exporter keeps the handles and only touches atomics on the hot path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where an exporter registers its counters and gauges.
pub trait Telemetry: Send + Sync {
    /// The counter `name{labels}`, shared with every other caller asking for the same one.
    fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicU64>;
    /// The gauge `name{labels}`.
    fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicI64>;
}

/// A counter handle.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn new(
        t: &dyn Telemetry,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Self {
        Counter(t.counter(name, help, labels))
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge handle.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn new(
        t: &dyn Telemetry,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Self {
        Gauge(t.gauge(name, help, labels))
    }
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

type Key = (&'static str, Vec<(&'static str, String)>);

/// A self-contained [`Telemetry`] for tests and tools: keeps the metrics in a map to read back.
#[derive(Default, Clone)]
pub struct LocalTelemetry {
    counters: Arc<Mutex<BTreeMap<Key, Arc<AtomicU64>>>>,
    gauges: Arc<Mutex<BTreeMap<Key, Arc<AtomicI64>>>>,
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    (
        name,
        labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    )
}

fn matches(labels: &[(&'static str, String)], filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

impl LocalTelemetry {
    /// Sum of a counter over every label set that includes `filter`.
    pub fn counter_sum(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        let map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|((n, l), _)| *n == name && matches(l, filter))
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }
    /// The value of the first gauge whose labels include `filter`.
    pub fn gauge_value(&self, name: &str, filter: &[(&str, &str)]) -> Option<i64> {
        let map = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .find(|((n, l), _)| *n == name && matches(l, filter))
            .map(|(_, g)| g.load(Ordering::Relaxed))
    }
}

impl Telemetry for LocalTelemetry {
    fn counter(
        &self,
        name: &'static str,
        _help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicU64> {
        let mut map = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key(name, labels)).or_default().clone()
    }
    fn gauge(
        &self,
        name: &'static str,
        _help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicI64> {
        let mut map = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key(name, labels)).or_default().clone()
    }
}

/// CPU seconds (user + system, all threads) this process has used, or process `pid`, from
/// `/proc/<pid>/stat`; `None` where that cannot be read (not Linux, a process gone). For the
/// benches and load examples, which report work per CPU-second.
pub fn process_cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // utime and stime (fields 14 and 15) are the 12th and 13th after the command name, in
    // clock ticks of 1/100 s (USER_HZ, fixed at 100 in Linux's user ABI).
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod cpu_tests {
    use super::process_cpu_seconds;

    #[test]
    fn process_cpu_seconds_grows_with_work() {
        let Some(before) = process_cpu_seconds(None) else {
            return; // not Linux: nothing to read
        };
        // Spin until the count moves two ticks; a count that never moves fails at the deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        loop {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            let now = process_cpu_seconds(None).expect("readable a moment ago");
            if now >= before + 0.02 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "stuck at {now}");
        }
        assert_eq!(process_cpu_seconds(Some(u32::MAX)), None);
    }
}
