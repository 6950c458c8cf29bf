//! `type = "host_metrics"`: scrapes the host every `interval` on the blocking pool (the scrape
//! reads `/proc` under `root_path`, never on a runtime worker) and sends one metrics batch per
//! scrape.
//!
//! Backpressure: a sample that finds every buffer full is dropped and counted
//! (`sonde_source_dropped_items_total{reason="buffer_full"}`) — a metric sample is cheaper to lose
//! than to queue forever, and the next one will carry the cumulative values anyway.

mod scrape;
pub use scrape::{Filters, Scraper};

use super::{periodic, SourceContext, SourceTask};
use prost::Message;
use sonde_config::HostMetricsConfig;
use sonde_core::BuildError;

impl periodic::Sampler for Scraper {
    fn sample(&mut self) -> Vec<u8> {
        self.scrape().encode_to_vec()
    }
}

/// The source's task: a scrape every `interval`. Fails when a filter pattern does not compile.
pub async fn build(cfg: &HostMetricsConfig, cx: SourceContext) -> Result<SourceTask, BuildError> {
    let filters = Filters::new(cfg).map_err(|e| cx.error(e))?;
    let cfg = cfg.clone();
    let interval = cfg.interval.get();
    Ok(Box::pin(periodic::run(cx, interval, move || {
        Scraper::new(&cfg, filters.clone())
    })))
}
