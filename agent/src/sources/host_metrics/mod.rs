//! `type = "host_metrics"`: scrapes the host every `interval` on the blocking pool (the scrape
//! reads `/proc` and calls sysinfo, never on a runtime worker) and sends one metrics batch per
//! scrape.
//!
//! Backpressure: a sample that finds every buffer full is dropped and counted
//! (`sonde_source_dropped_items_total{reason="buffer_full"}`) — a metric sample is cheaper to lose
//! than to queue forever, and the next one will carry the cumulative values anyway.

mod scrape;
pub use scrape::Scraper;

use super::SourceContext;
use prost::Message;
use sonde_config::HostMetricsConfig;
use sonde_exporters::{wire, Batch, Signal};
use tokio::time::MissedTickBehavior;
use tracing::warn;

pub async fn run(cfg: HostMetricsConfig, cx: SourceContext) {
    let name: &str = &cx.name;
    let labels = [("source", name)];
    let scrapes = cx.metrics.counter(
        "sonde_source_scrapes_total",
        "Host metric scrapes done.",
        &labels,
    );
    let received = cx.metrics.counter(
        "sonde_source_received_items_total",
        "Items a source produced or received.",
        &labels,
    );
    let dropped = cx.dropped_counter("buffer_full");
    let mut scraper = Some(Scraper::new(&cfg));
    let mut ticker = tokio::time::interval(cfg.interval.get());
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = cx.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let Some(mut s) = scraper.take() else { break };
        let scraped = tokio::task::spawn_blocking(move || {
            let req = s.scrape();
            (s, req.encode_to_vec())
        })
        .await;
        let payload = match scraped {
            Ok((s, payload)) => {
                scraper = Some(s);
                payload
            }
            Err(e) => {
                // The scraper panicked: a bug. Start a fresh one rather than stop reporting.
                warn!(source = name, error = %e, "host metrics scrape failed; restarting the scraper");
                scraper = Some(Scraper::new(&cfg));
                continue;
            }
        };
        scrapes.inc();
        let items = match wire::validate(Signal::Metrics, &payload) {
            Ok(n) => n,
            Err(e) => {
                warn!(source = name, error = %e, "host metrics scrape encoded badly; dropped");
                continue;
            }
        };
        if items == 0 {
            continue;
        }
        received.add(items);
        let batch = Batch::from_trusted(Signal::Metrics, payload.into(), items, cx.name.clone());
        if !cx.send_sample(batch, &dropped).await {
            break;
        }
    }
}
