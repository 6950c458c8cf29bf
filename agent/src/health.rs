//! What "healthy" means, kept where every component can update it and the admin server and the
//! systemd watchdog can read it.
//!
//! - Live: the pipeline's heartbeat turns — a task on the pipeline's runtime that beats only
//!   while every export worker is still running. A blocked runtime or a dead worker stops it.
//! - Ready: every source is bound, and no exporter has failed continuously for longer than
//!   `agent.health.unhealthy_after`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the heartbeat beats, and how stale it may get before the agent is not live.
pub const BEAT: Duration = Duration::from_secs(1);
pub const LIVE_WITHIN: Duration = Duration::from_secs(5);

/// Failure tracking for one exporter, updated by its worker.
#[derive(Default, Debug)]
pub struct ExporterHealth {
    state: Mutex<Failing>,
    /// The last export call failed (read lock-free by the router for every push).
    failing: AtomicBool,
    /// Told when an export succeeds after a failure: retries waiting out a backoff try again
    /// at once (the destination is back).
    recovered: tokio::sync::Notify,
}

#[derive(Default, Debug)]
struct Failing {
    since: Option<Instant>,
    last_error: String,
}

impl ExporterHealth {
    pub fn success(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.since = None;
            s.last_error.clear();
            drop(s);
            self.recovered.notify_waiters();
        }
    }

    pub fn failure(&self, error: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.since.get_or_insert_with(Instant::now);
        s.last_error = error.to_string();
        self.failing.store(true, Ordering::Release);
    }

    /// Whether the exporter's last call failed (and none succeeded since).
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Resolves when an export succeeds after a failure.
    pub async fn recovered(&self) {
        self.recovered.notified().await
    }

    /// How long it has failed without a success in between, and the last error.
    pub fn failing_for(&self) -> Option<(Duration, String)> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.since.map(|t| (t.elapsed(), s.last_error.clone()))
    }
}

/// Counts the export workers that are running, against how many should be.
#[derive(Default, Debug)]
pub struct WorkerCount {
    expected: AtomicUsize,
    running: AtomicUsize,
}

impl WorkerCount {
    /// Marks one worker as running until the guard drops (when its task ends, or panics).
    pub fn enter(self: &Arc<Self>) -> WorkerGuard {
        self.running.fetch_add(1, Ordering::Relaxed);
        WorkerGuard(self.clone())
    }

    fn all_running(&self) -> bool {
        self.running.load(Ordering::Relaxed) >= self.expected.load(Ordering::Relaxed)
    }
}

pub struct WorkerGuard(Arc<WorkerCount>);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The agent's health, shared by the topology, the admin server and the watchdog.
pub struct Health {
    workers: Mutex<Arc<WorkerCount>>,
    started: Instant,
    last_beat_ms: AtomicU64,
    sources_bound: AtomicBool,
    unhealthy_after: Mutex<Duration>,
    exporters: Mutex<BTreeMap<String, Arc<ExporterHealth>>>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub component: String,
    pub reason: String,
}

impl Health {
    pub fn new(unhealthy_after: Duration) -> Arc<Self> {
        Arc::new(Health {
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            sources_bound: AtomicBool::new(false),
            unhealthy_after: Mutex::new(unhealthy_after),
            exporters: Mutex::new(BTreeMap::new()),
            workers: Mutex::new(Arc::default()),
        })
    }

    /// A fresh worker count for a topology that will run `expected` workers.
    pub fn workers(&self, expected: usize) -> Arc<WorkerCount> {
        let count = Arc::new(WorkerCount {
            expected: AtomicUsize::new(expected),
            running: AtomicUsize::new(0),
        });
        *self.workers.lock().unwrap_or_else(|p| p.into_inner()) = count.clone();
        count
    }

    /// One turn of the heartbeat: beats only while every export worker is running. Returns
    /// whether it beat.
    pub fn heartbeat(&self) -> bool {
        let ok = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .all_running();
        if ok {
            self.beat();
        }
        ok
    }

    pub fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_beat_ms.store(ms.max(1), Ordering::Relaxed);
    }

    pub fn live(&self) -> bool {
        let last = self.last_beat_ms.load(Ordering::Relaxed);
        last > 0
            && (self.started.elapsed().as_millis() as u64).saturating_sub(last)
                <= LIVE_WITHIN.as_millis() as u64
    }

    pub fn set_sources_bound(&self, bound: bool) {
        self.sources_bound.store(bound, Ordering::Relaxed);
    }

    pub fn set_unhealthy_after(&self, d: Duration) {
        *self
            .unhealthy_after
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = d;
    }

    /// Registers (or replaces, after a reload) the exporters being watched.
    pub fn set_exporters(&self, exporters: BTreeMap<String, Arc<ExporterHealth>>) {
        *self.exporters.lock().unwrap_or_else(|p| p.into_inner()) = exporters;
    }

    /// Empty when ready; otherwise every reason it is not.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !self.sources_bound.load(Ordering::Relaxed) {
            out.push(Problem {
                component: "sources".into(),
                reason: "not all sources are bound yet".into(),
            });
        }
        if !self.live() {
            out.push(Problem {
                component: "pipeline".into(),
                reason: "the pipeline heartbeat has stopped".into(),
            });
        }
        let limit = *self
            .unhealthy_after
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (name, h) in self
            .exporters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if let Some((d, err)) = h.failing_for() {
                if d > limit {
                    out.push(Problem {
                        component: format!("exporter/{name}"),
                        reason: format!(
                            "exports failing for {}s (limit {}s): {err}",
                            d.as_secs(),
                            limit.as_secs()
                        ),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_bound_sources_a_beat_and_healthy_exporters() {
        let h = Health::new(Duration::from_millis(0));
        assert_eq!(h.problems().len(), 2);
        h.set_sources_bound(true);
        h.beat();
        assert!(h.problems().is_empty());
        let e = Arc::new(ExporterHealth::default());
        h.set_exporters([("out".to_string(), e.clone())].into());
        e.failure("connection refused");
        std::thread::sleep(Duration::from_millis(5));
        let p = h.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].component, "exporter/out");
        assert!(p[0].reason.contains("connection refused"));
        e.success();
        assert!(h.problems().is_empty());
    }

    /// A retry waiting out its backoff is woken by the first success after a failure.
    #[tokio::test]
    async fn a_success_after_failure_wakes_the_waiting_retries() {
        let e = Arc::new(ExporterHealth::default());
        e.failure("timed out");
        assert!(e.failing());
        let waiter = tokio::spawn({
            let e = e.clone();
            async move { e.recovered().await }
        });
        tokio::task::yield_now().await;
        e.success();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(!e.failing());
    }
}
