//! `type = "filter"`: drops the spans, span events, log records, metrics and data points that
//! match any of the configured OTTL conditions, on the wire.
//!
//! Each condition is parsed once at build time (an error names the condition and its
//! line:column). Per item, the conditions of its context are evaluated in order against a
//! wire-level view ([`super::view`]); the first that holds drops the item. A scope-level
//! message left without items is removed, then a resource-level message left without scopes,
//! and a metric left without data points (as the Collector does). A condition that fails to
//! evaluate on an item (e.g. `Len` of an int) counts as false for that item and is counted in
//! `sonde_processor_errors_total{reason="condition"}`: the item passes.

use super::ottl::{Condition, Context, Item, ParseError};
use super::prune::{Level, Pruner};
use super::view::{
    fields, metric_data, DataPointView, EventView, LogView, MetricView, Origin, SpanView,
};
use super::{Change, Processor, ProcessorContext, ProcessorNode};
use bytes::Bytes;
use sonde_config::FilterProcessorConfig;
use sonde_core::metrics::Counter;
use sonde_core::wire::edit::Editor;
use sonde_core::wire::{WireError, LEN};
use sonde_core::BuildError;
use sonde_core::Signal;

/// A condition that does not parse: which list, which entry, and where in it.
#[derive(Debug, thiserror::Error)]
#[error("{list}[{index}]: {error}")]
pub struct FilterError {
    pub list: &'static str,
    pub index: usize,
    pub error: ParseError,
}

pub struct Filter {
    spans: Vec<Condition>,
    events: Vec<Condition>,
    logs: Vec<Condition>,
    metrics: Vec<Condition>,
    points: Vec<Condition>,
    errors: Counter,
}

fn parse(
    list: &'static str,
    context: Context,
    sources: &[String],
) -> Result<Vec<Condition>, FilterError> {
    sources
        .iter()
        .enumerate()
        .map(|(index, s)| {
            Condition::parse(context, s).map_err(|error| FilterError { list, index, error })
        })
        .collect()
}

impl Filter {
    /// Parses every condition; `errors` counts evaluation errors.
    pub fn new(c: &FilterProcessorConfig, errors: Counter) -> Result<Filter, FilterError> {
        Ok(Filter {
            spans: parse("spans", Context::Span, &c.spans)?,
            events: parse("span_events", Context::SpanEvent, &c.span_events)?,
            logs: parse("log_records", Context::Log, &c.log_records)?,
            metrics: parse("metrics", Context::Metric, &c.metrics)?,
            points: parse("datapoints", Context::DataPoint, &c.datapoints)?,
            errors,
        })
    }

    /// Whether any condition holds for `item`.
    fn matches(&self, conditions: &[Condition], item: &impl Item) -> bool {
        conditions.iter().any(|c| {
            c.evaluate(item).unwrap_or_else(|_| {
                self.errors.inc();
                false
            })
        })
    }

    fn traces(&self, buf: &[u8], editor: &mut Editor) -> Result<(u64, u64), WireError> {
        let (mut dropped, mut modified) = (0, 0);
        let mut p = Pruner::default();
        for r in resources(buf) {
            let r = r?;
            let mut rl = Level::default();
            for s in children(buf, r.payload(), 2) {
                let s = s?;
                let origin = Origin {
                    resource_level: r.payload(),
                    scope_level: s.payload(),
                };
                let mut sl = Level::default();
                for span in children(buf, s.payload(), 2) {
                    let span = span?;
                    let view = SpanView {
                        buf,
                        span: span.payload(),
                        origin,
                    };
                    if self.matches(&self.spans, &view) {
                        sl.drop(span.range());
                        dropped += 1;
                        continue;
                    }
                    if self.events.is_empty() {
                        sl.keep();
                        continue;
                    }
                    let mut el = Level::default();
                    for (index, ev) in children(buf, span.payload(), 11).enumerate() {
                        let ev = ev?;
                        let view = EventView {
                            buf,
                            event: ev.payload(),
                            index,
                            span: span.payload(),
                            origin,
                        };
                        if self.matches(&self.events, &view) {
                            el.drop(ev.range());
                        } else {
                            el.keep();
                        }
                    }
                    // A span whose events all went stays, without events.
                    let inner = el.into_deletes();
                    if inner.is_empty() {
                        sl.keep();
                    } else {
                        modified += 1;
                        sl.keep_with(inner);
                    }
                }
                sl.close_into(s.range(), &mut rl);
            }
            rl.close_into(r.range(), &mut p.top);
        }
        p.finish(editor);
        Ok((dropped, modified))
    }

    fn logs(&self, buf: &[u8], editor: &mut Editor) -> Result<(u64, u64), WireError> {
        let mut dropped = 0;
        let mut p = Pruner::default();
        for r in resources(buf) {
            let r = r?;
            let mut rl = Level::default();
            for s in children(buf, r.payload(), 2) {
                let s = s?;
                let origin = Origin {
                    resource_level: r.payload(),
                    scope_level: s.payload(),
                };
                let mut sl = Level::default();
                for rec in children(buf, s.payload(), 2) {
                    let rec = rec?;
                    let view = LogView {
                        buf,
                        record: rec.payload(),
                        origin,
                    };
                    if self.matches(&self.logs, &view) {
                        sl.drop(rec.range());
                        dropped += 1;
                    } else {
                        sl.keep();
                    }
                }
                sl.close_into(s.range(), &mut rl);
            }
            rl.close_into(r.range(), &mut p.top);
        }
        p.finish(editor);
        Ok((dropped, 0))
    }

    fn metrics(&self, buf: &[u8], editor: &mut Editor) -> Result<(u64, u64), WireError> {
        let (mut dropped, mut modified) = (0, 0);
        let mut p = Pruner::default();
        for r in resources(buf) {
            let r = r?;
            let mut rl = Level::default();
            for s in children(buf, r.payload(), 2) {
                let s = s?;
                let origin = Origin {
                    resource_level: r.payload(),
                    scope_level: s.payload(),
                };
                let mut sl = Level::default();
                for m in children(buf, s.payload(), 2) {
                    let m = m?;
                    let data = metric_data(buf, m.payload());
                    let points = match data {
                        Some((_, d)) => children(buf, d, 1).count() as u64,
                        None => 0,
                    };
                    let view = MetricView {
                        buf,
                        metric: m.payload(),
                        origin,
                    };
                    if self.matches(&self.metrics, &view) {
                        sl.drop(m.range());
                        dropped += points;
                        continue;
                    }
                    let (Some((kind, d)), false) = (data, self.points.is_empty()) else {
                        sl.keep();
                        continue;
                    };
                    let mut pl = Level::default();
                    for pt in children(buf, d, 1) {
                        let pt = pt?;
                        let view = DataPointView {
                            buf,
                            point: pt.payload(),
                            data: kind,
                            metric: m.payload(),
                            origin,
                        };
                        if self.matches(&self.points, &view) {
                            pl.drop(pt.range());
                            dropped += 1;
                        } else {
                            pl.keep();
                        }
                    }
                    // A metric left without data points goes, as in the Collector.
                    if pl.emptied() {
                        sl.drop(m.range());
                    } else {
                        let inner = pl.into_deletes();
                        if inner.is_empty() {
                            sl.keep();
                        } else {
                            modified += 1;
                            sl.keep_with(inner);
                        }
                    }
                }
                sl.close_into(s.range(), &mut rl);
            }
            rl.close_into(r.range(), &mut p.top);
        }
        p.finish(editor);
        Ok((dropped, modified))
    }
}

/// The OTTL context of a condition list of the filter's config.
pub fn context_of(list: &str) -> Context {
    match list {
        "span_events" => Context::SpanEvent,
        "log_records" => Context::Log,
        "metrics" => Context::Metric,
        "datapoints" => Context::DataPoint,
        _ => Context::Span,
    }
}

/// The resource-level messages of a request (field 1).
fn resources(buf: &[u8]) -> impl Iterator<Item = Result<super::view::Node, WireError>> + '_ {
    children(buf, (0, buf.len()), 1)
}

/// The length-delimited fields `number` of a message.
pub(super) fn children(
    buf: &[u8],
    p: (usize, usize),
    number: u32,
) -> impl Iterator<Item = Result<super::view::Node, WireError>> + '_ {
    fields(buf, p).filter(move |n| {
        n.as_ref().map_or(true, |n| {
            n.field.number == number && n.field.wire_type == LEN
        })
    })
}

impl Processor for Filter {
    fn handles(&self, signal: Signal) -> bool {
        match signal {
            Signal::Traces => !self.spans.is_empty() || !self.events.is_empty(),
            Signal::Logs => !self.logs.is_empty(),
            Signal::Metrics => !self.metrics.is_empty() || !self.points.is_empty(),
        }
    }

    fn apply(
        &self,
        signal: Signal,
        payload: &Bytes,
        editor: &mut Editor,
    ) -> Result<Change, WireError> {
        let (dropped, modified) = match signal {
            Signal::Traces => self.traces(payload, editor)?,
            Signal::Logs => self.logs(payload, editor)?,
            Signal::Metrics => self.metrics(payload, editor)?,
        };
        Ok(Change { dropped, modified })
    }
}

/// Parses the conditions; a condition that does not parse fails the build with its list, index
/// and line:column (`sonde validate` reports the same).
pub fn build(
    cfg: &FilterProcessorConfig,
    cx: &ProcessorContext,
) -> Result<ProcessorNode, BuildError> {
    let errors = cx.metrics.counter(
        "sonde_processor_errors_total",
        "Batches or items a processor could not interpret and passed on unchanged, by reason.",
        &[("processor", &cx.name), ("reason", "condition")],
    );
    let filter = Filter::new(cfg, errors).map_err(|e| cx.error(e))?;
    Ok(ProcessorNode::new(cx, Some("filtered"), Box::new(filter)))
}
