//! The agent's own metrics: counters and gauges keyed by name and labels, cheap to update from
//! any task, rendered as Prometheus text.
//!
//! A component asks the registry for its handles once, at build time, and then only touches
//! atomics on the hot path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Clone, Default, Debug)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
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

/// A value that goes up and down.
#[derive(Clone, Default, Debug)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
}

type Key = (&'static str, Vec<(&'static str, String)>);

/// All of the agent's metrics. Cloning shares the registry.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    help: BTreeMap<&'static str, &'static str>,
    metrics: BTreeMap<Key, Metric>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counter `name{labels}`, created at zero on first use.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        let mut inner = self.lock();
        inner.help.insert(name, help);
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        match inner
            .metrics
            .entry(key)
            .or_insert_with(|| Metric::Counter(Counter::default()))
        {
            Metric::Counter(c) => c.clone(),
            Metric::Gauge(_) => Counter::default(),
        }
    }

    /// The gauge `name{labels}`, created at zero on first use.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Gauge {
        let mut inner = self.lock();
        inner.help.insert(name, help);
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        match inner
            .metrics
            .entry(key)
            .or_insert_with(|| Metric::Gauge(Gauge::default()))
        {
            Metric::Gauge(g) => g.clone(),
            Metric::Counter(_) => Gauge::default(),
        }
    }

    /// Sum of a counter over every label set whose labels include `filter`.
    pub fn counter_sum(&self, name: &str, filter: &[(&str, &str)]) -> u64 {
        self.lock()
            .metrics
            .iter()
            .filter(|((n, labels), _)| {
                *n == name
                    && filter
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, m)| match m {
                Metric::Counter(c) => c.get(),
                Metric::Gauge(_) => 0,
            })
            .sum()
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let inner = self.lock();
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), metric) in &inner.metrics {
            if *name != last {
                let help = inner.help.get(name).copied().unwrap_or("");
                let kind = match metric {
                    Metric::Counter(_) => "counter",
                    Metric::Gauge(_) => "gauge",
                };
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                last = name;
            }
            out.push_str(name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let v = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    let _ = write!(out, "{k}=\"{v}\"");
                }
                out.push('}');
            }
            let value = match metric {
                Metric::Counter(c) => c.get() as i128,
                Metric::Gauge(g) => g.get() as i128,
            };
            let _ = writeln!(out, " {value}");
        }
        out
    }
}

/// Exporters (which do not know the agent) register their metrics here through this trait.
impl sonde_exporters::Telemetry for Registry {
    fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicU64> {
        Registry::counter(self, name, help, labels).0
    }
    fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Arc<AtomicI64> {
        Registry::gauge(self, name, help, labels).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_by_name_and_labels() {
        let r = Registry::default();
        let a = r.counter("sonde_x_total", "x", &[("exporter", "a")]);
        let a2 = r.counter("sonde_x_total", "x", &[("exporter", "a")]);
        let b = r.counter("sonde_x_total", "x", &[("exporter", "b")]);
        a.add(2);
        a2.inc();
        b.add(10);
        assert_eq!(a.get(), 3);
        assert_eq!(r.counter_sum("sonde_x_total", &[]), 13);
        assert_eq!(r.counter_sum("sonde_x_total", &[("exporter", "a")]), 3);
        let text = r.render();
        assert!(text.contains("# TYPE sonde_x_total counter\n"), "{text}");
        assert!(text.contains("sonde_x_total{exporter=\"a\"} 3\n"), "{text}");
    }
}
