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
