//! `type = "sample"`: consistent probability sampling of traces and logs, on the wire.
//!
//! Spans: the decision of [`super::probability::Sampler`] — randomness from the `ot` entry's
//! `rv`, else the trace id's low 56 bits, kept when it reaches the threshold — so every span of
//! a trace gets the same decision on every host running the same percentage. A kept span's
//! `tracestate` records the threshold (`ot=th:…`) as the OpenTelemetry probability sampling
//! specification says, so a back end can compute adjusted counts; the `trace_state` field is
//! replaced (or added) and nothing else of the span is touched.
//!
//! Log records: by trace id when the record has one (the same decision as its trace's spans),
//! else a random draw. Metrics pass unchanged. Anomalies in incoming trace contexts (a malformed
//! `ot` entry, an inconsistent threshold, a trace id without the W3C random flag…) are counted
//! by reason in `sonde_processor_sampling_anomalies_total`.

use super::probability::{FastRng, Mode, SpanInput, TraceStateEdit};
use super::view::fields;
use super::{Applied, Change, Processor, ProcessorContext, ProcessorNode};
use bytes::Bytes;
use sonde_config::{SampleMode, SampleProcessorConfig};
use sonde_core::metrics::Counter;
use sonde_core::wire::edit::Editor;
use sonde_core::wire::write::put_len_header;
use sonde_core::wire::{WireError, I32, LEN};
use sonde_core::{BuildError, Signal};
use std::cell::RefCell;
use std::sync::Mutex;

use super::prune::{prune_items, Verdict};

pub struct Sample {
    sampler: super::probability::Sampler,
    rng: Mutex<FastRng>,
    anomalies: Vec<(&'static str, Counter)>,
}

thread_local! {
    static TRACE_STATE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Sample {
    fn count_anomalies(&self, a: super::probability::Anomalies) {
        if a.is_empty() {
            return;
        }
        for reason in a.reasons() {
            if let Some((_, c)) = self.anomalies.iter().find(|(r, _)| *r == reason) {
                c.inc();
            }
        }
    }

    fn traces(&self, buf: &[u8], editor: &mut Editor) -> Result<Change, WireError> {
        let mut change = Change::default();
        let pruner = TRACE_STATE.with(|cell| {
            let mut out = cell.borrow_mut();
            prune_items(buf, |_, span| {
                let (mut trace_id, mut state, mut flags) = (&[][..], None, 0u32);
                for f in fields(buf, span.payload()) {
                    let f = f?;
                    match (f.field.number, f.field.wire_type) {
                        (1, LEN) => trace_id = &buf[f.field.payload.0..f.field.payload.1],
                        (3, LEN) => state = Some(f),
                        (16, I32) => flags = f.field.value as u32,
                        _ => {}
                    }
                }
                let ts = state
                    .and_then(|f| {
                        std::str::from_utf8(&buf[f.field.payload.0..f.field.payload.1]).ok()
                    })
                    .unwrap_or("");
                out.clear();
                let input = SpanInput {
                    trace_id,
                    trace_state: ts,
                    flags,
                };
                let d = self.sampler.sample_span(input, &mut out);
                self.count_anomalies(d.anomalies);
                if !d.keep {
                    change.dropped += 1;
                    return Ok(Verdict::Drop);
                }
                if d.trace_state == TraceStateEdit::Rewritten {
                    let write = |b: &mut Vec<u8>| {
                        let mut h = bytes::BytesMut::new();
                        put_len_header(&mut h, 3, out.len());
                        b.extend_from_slice(&h);
                        b.extend_from_slice(out.as_bytes());
                    };
                    match state {
                        Some(f) => editor.replace(f.range(), write),
                        None => editor.insert(span.payload().0, write),
                    }
                    change.modified += 1;
                }
                Ok(Verdict::Keep)
            })
        })?;
        pruner.finish(editor);
        Ok(change)
    }

    fn logs(&self, buf: &[u8], editor: &mut Editor) -> Result<Change, WireError> {
        let mut change = Change::default();
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        prune_items(buf, |_, rec| {
            let trace_id = fields(buf, rec.payload())
                .map_while(Result::ok)
                .filter(|f| f.field.number == 9 && f.field.wire_type == LEN)
                .last()
                .map_or(&[][..], |f| &buf[f.field.payload.0..f.field.payload.1]);
            if self.sampler.sample_log(trace_id, &mut rng).keep {
                return Ok(Verdict::Keep);
            }
            change.dropped += 1;
            Ok(Verdict::Drop)
        })?
        .finish(editor);
        Ok(change)
    }
}

impl Processor for Sample {
    fn handles(&self, signal: Signal) -> bool {
        signal != Signal::Metrics
    }

    fn apply(&self, signal: Signal, payload: &Bytes, editor: &mut Editor) -> Applied {
        match signal {
            Signal::Traces => self.traces(payload, editor),
            Signal::Logs => self.logs(payload, editor),
            Signal::Metrics => Ok(Change::default()),
        }
    }
}

/// Why a sample processor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SampleBuildError {
    #[error(transparent)]
    Probability(#[from] super::probability::ProbabilityError),
    #[error("cannot seed the random number generator")]
    Random,
}

pub fn build(
    cfg: &SampleProcessorConfig,
    cx: &ProcessorContext,
) -> Result<ProcessorNode, BuildError> {
    let mode = match cfg.mode {
        SampleMode::Equalizing => Mode::Equalizing,
        SampleMode::Proportional => Mode::Proportional,
    };
    let sampler = super::probability::Sampler::new(cfg.percentage, mode, cfg.precision)
        .map_err(|e| cx.error(SampleBuildError::Probability(e)))?;
    let rng = FastRng::from_entropy().map_err(|_| cx.error(SampleBuildError::Random))?;
    let anomalies = super::probability::Anomalies::ALL
        .iter()
        .map(|(_, reason)| {
            (
                *reason,
                cx.metrics.counter(
                    "sonde_processor_sampling_anomalies_total",
                    "Spans whose trace context a sampler found odd, by reason (see the sample processor's reference).",
                    &[("processor", &cx.name), ("reason", reason)],
                ),
            )
        })
        .collect();
    Ok(ProcessorNode::new(
        cx,
        Some("sampled"),
        Box::new(Sample {
            sampler,
            rng: Mutex::new(rng),
            anomalies,
        }),
    ))
}
