//! The loop of the sources that sample on a timer (host metrics, internal metrics): every
//! `interval`, produce one encoded metrics request on the blocking pool, check and count it, and
//! send it without waiting ([`super::send_sample`]: a sample that finds the buffers full is
//! dropped and counted).
//!
//! A sampler that panics is a bug; the loop logs it and starts from a fresh sampler rather than
//! stop reporting.

use super::{dropped_counter, received_counter, send_sample, SourceContext};
use sonde_core::{wire, Batch, Signal};
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tracing::warn;

/// Something that produces an encoded `ExportMetricsServiceRequest` each time it is asked.
pub trait Sampler: Send + 'static {
    fn sample(&mut self) -> Vec<u8>;
}

/// Runs until `cx.shutdown`; `fresh` makes the sampler (again, after a panic).
pub async fn run<S: Sampler>(cx: SourceContext, interval: Duration, fresh: impl Fn() -> S) {
    let name: &str = &cx.name;
    let samples = cx.metrics.counter(
        "sonde_source_scrapes_total",
        "Samples a periodic source (host or internal metrics) took.",
        &[("source", name)],
    );
    let received = received_counter(&cx);
    let dropped = dropped_counter(&cx, "buffer_full");
    let mut sampler = Some(fresh());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cx.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let Some(mut s) = sampler.take() else { break };
        let payload = match tokio::task::spawn_blocking(move || {
            let payload = s.sample();
            (s, payload)
        })
        .await
        {
            Ok((s, payload)) => {
                sampler = Some(s);
                payload
            }
            Err(e) => {
                warn!(source = name, error = %e, "sampling failed; starting again from a fresh sampler");
                sampler = Some(fresh());
                continue;
            }
        };
        samples.inc();
        let items = match wire::validate(Signal::Metrics, &payload) {
            Ok(n) => n,
            Err(e) => {
                warn!(source = name, error = %e, "a sample was encoded badly; dropped");
                continue;
            }
        };
        if items == 0 {
            continue;
        }
        received.add(items);
        let batch = Batch::from_trusted(Signal::Metrics, payload.into(), items, cx.name.clone());
        if !send_sample(&cx, batch, &dropped).await {
            break;
        }
    }
}
