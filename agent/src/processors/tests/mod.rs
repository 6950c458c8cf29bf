//! Wire-level tests of the processors: each processor run on encoded requests is compared with
//! the same edit done on the decoded prost messages ([`oracle`]), on canonical and on odd but
//! valid encodings ([`odd`]); acks, counters, bad input and sampling statistics.

mod gen;
mod odd;
mod oracle;

mod acks;
mod bad_input;
mod filter;
mod redact;
mod resource;
mod sample;

use super::{build, context, ProcessorNode};
use bytes::Bytes;
use sonde_core::metrics::Registry;
use sonde_core::{Ack, Batch, Signal};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A processor built from the TOML body of `[processors.<name>]` (its `type` included), with the
/// registry its metrics go to.
pub(super) fn node(name: &str, body: &str) -> (ProcessorNode, Registry) {
    let text = format!(
        "[sources.otlp]\ntype = \"otlp\"\n[processors.{name}]\ninputs = [\"otlp\"]\n{body}\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"{name}\"]\n"
    );
    let cfg = match crate::load_config(&text, "test") {
        Ok(c) => c,
        Err(e) => panic!("test config refused: {e}\n{text}"),
    };
    let registry = Registry::default();
    let cx = context(
        name,
        &cfg.agent,
        registry.clone(),
        tokio_util::sync::CancellationToken::new(),
    );
    match build(&cfg.processors[name], &cx) {
        Ok(n) => (n, registry),
        Err(e) => panic!("processor {name} did not build: {e}"),
    }
}

/// A batch of `payload` (validated, so its item count is the wire walker's).
pub(super) fn batch(signal: Signal, payload: Vec<u8>) -> Batch {
    match Batch::new(signal, Bytes::from(payload), Arc::from("otlp")) {
        Ok(b) => b,
        Err(e) => panic!("generated request does not validate: {e}"),
    }
}

/// Records what an [`Ack`] reported when its last holder let go.
#[derive(Clone, Default)]
pub(super) struct AckProbe {
    fired: Arc<AtomicUsize>,
    result: Arc<Mutex<Option<bool>>>,
}

impl AckProbe {
    pub(super) fn ack(&self) -> Ack {
        let (fired, result) = (self.fired.clone(), self.result.clone());
        Ack::new(move |done| {
            fired.fetch_add(1, Ordering::SeqCst);
            *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(done);
        })
    }

    /// How often the callback ran, and with what (the last time).
    pub(super) fn state(&self) -> (usize, Option<bool>) {
        (
            self.fired.load(Ordering::SeqCst),
            *self.result.lock().unwrap_or_else(|p| p.into_inner()),
        )
    }
}

/// The rendered registry has the sample line `line` (`name{labels} value`), exactly.
#[track_caller]
pub(super) fn assert_metric(registry: &Registry, line: &str) {
    let text = registry.render();
    assert!(
        text.lines().any(|l| l == line),
        "no line `{line}` in:\n{text}"
    );
}

/// The value of the counter sample `series` (`name{labels}`) in the rendered registry.
pub(super) fn metric_value(registry: &Registry, series: &str) -> Option<u64> {
    registry.render().lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

/// Whether `out` is `input` itself: the same bytes, not a copy.
pub(super) fn same_buffer(input: &Bytes, out: &Bytes) -> bool {
    input.as_ptr() == out.as_ptr() && input.len() == out.len()
}

/// How many times `needle` occurs in `hay`.
pub(super) fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// A decoded export request of one signal, as the generic checks need it.
pub(super) trait Request:
    prost::Message + Default + Clone + PartialEq + std::fmt::Debug + Sized
{
    const SIGNAL: Signal;
    /// Resource-level messages.
    fn resource_levels(&self) -> usize;
    /// Resource-level messages that have a `Resource`.
    fn resources_present(&self) -> usize;
    /// Items, as the wire walker counts them (spans, log records, data points).
    fn items(&self) -> usize;
    /// Items of the kinds [`odd`] marks (spans and log records; none for metrics).
    fn marked_items(&self) -> usize;
}

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

impl Request for ExportTraceServiceRequest {
    const SIGNAL: Signal = Signal::Traces;
    fn resource_levels(&self) -> usize {
        self.resource_spans.len()
    }
    fn resources_present(&self) -> usize {
        self.resource_spans
            .iter()
            .filter(|r| r.resource.is_some())
            .count()
    }
    fn items(&self) -> usize {
        self.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum()
    }
    fn marked_items(&self) -> usize {
        self.items()
    }
}

impl Request for ExportLogsServiceRequest {
    const SIGNAL: Signal = Signal::Logs;
    fn resource_levels(&self) -> usize {
        self.resource_logs.len()
    }
    fn resources_present(&self) -> usize {
        self.resource_logs
            .iter()
            .filter(|r| r.resource.is_some())
            .count()
    }
    fn items(&self) -> usize {
        self.resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum()
    }
    fn marked_items(&self) -> usize {
        self.items()
    }
}

impl Request for ExportMetricsServiceRequest {
    const SIGNAL: Signal = Signal::Metrics;
    fn resource_levels(&self) -> usize {
        self.resource_metrics.len()
    }
    fn resources_present(&self) -> usize {
        self.resource_metrics
            .iter()
            .filter(|r| r.resource.is_some())
            .count()
    }
    fn items(&self) -> usize {
        self.resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter_map(|m| m.data.as_ref())
            .map(|d| oracle::points(d).len())
            .sum()
    }
    fn marked_items(&self) -> usize {
        0
    }
}

/// One request through one processor: the input as encoded (perhaps oddly) and decoded again,
/// and what came out.
pub(super) struct Run<R> {
    /// The request as the processor saw it (decoded from the bytes it was given).
    pub input: R,
    pub payload: Bytes,
    pub items: u64,
    pub out: Option<Batch>,
}

/// Encodes `req` (re-encoded the odd ways `odd` says), checks that a decoder still reads the
/// same request, and runs it through `node`.
pub(super) fn run<R: Request>(
    node: &ProcessorNode,
    req: &R,
    odd: odd::Odd,
) -> Result<Run<R>, proptest::test_runner::TestCaseError> {
    let canonical = req.encode_to_vec();
    let bytes = if odd.any() {
        odd::reencode(R::SIGNAL, &canonical, odd)
    } else {
        canonical
    };
    let input = R::decode(&bytes[..])
        .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("odd encoding: {e}")))?;
    proptest::prop_assert_eq!(&input, req, "the odd encoding changed the request");
    let b = batch(R::SIGNAL, bytes);
    proptest::prop_assert_eq!(b.items, req.items() as u64);
    let (payload, items) = (b.payload.clone(), b.items);
    let out = node.process(b);
    Ok(Run {
        input,
        payload,
        items,
        out,
    })
}

/// Markers of unknown fields that must have survived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Survival {
    /// Every marker of the input is in the output (nothing removed).
    All,
    /// Every marker but those of attribute values (the resource processor replaces some).
    AllButValues,
    /// Those of the messages the expected output still has (a filter or sampler).
    Kept,
}

/// The output of `run` is `expected` (decoded), with `e`'s item counts; unchanged means the same
/// buffer; the unknown-field markers survived as `survival` says.
pub(super) fn check<R: Request>(
    run: &Run<R>,
    expected: &R,
    e: &oracle::Expect,
    odd: odd::Odd,
    survival: Survival,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::{prop_assert, prop_assert_eq};
    let left = run.items - e.dropped;
    prop_assert_eq!(
        left,
        expected.items() as u64,
        "item count of the expected output"
    );
    let Some(out) = &run.out else {
        prop_assert_eq!(left, 0, "the batch went though items were left");
        return Ok(());
    };
    prop_assert!(left > 0, "an empty batch was passed on");
    prop_assert_eq!(out.items, left);
    prop_assert_eq!(out.signal, R::SIGNAL);
    let got = R::decode(&out.payload[..]).map_err(|err| {
        proptest::test_runner::TestCaseError::fail(format!("output does not decode: {err}"))
    })?;
    prop_assert_eq!(&got, expected);
    proptest::prop_assert_eq!(
        sonde_core::wire::validate(R::SIGNAL, &out.payload).ok(),
        Some(left),
        "the output validates with its item count"
    );
    if !e.changed {
        prop_assert!(
            same_buffer(&run.payload, &out.payload),
            "an unchanged batch was copied"
        );
    }
    if odd.unknown {
        let count = |b: &[u8], m: &[u8]| occurrences(b, m);
        let (i, o) = (&run.payload[..], &out.payload[..]);
        match survival {
            Survival::All | Survival::AllButValues => {
                for m in [
                    odd::MARK_REQUEST,
                    odd::MARK_RESOURCE_LEVEL,
                    odd::MARK_RESOURCE,
                    odd::MARK_ITEM,
                ] {
                    prop_assert_eq!(count(o, m), count(i, m), "marker {:?}", m);
                }
                if survival == Survival::All {
                    prop_assert_eq!(count(o, odd::MARK_VALUE), count(i, odd::MARK_VALUE));
                }
            }
            Survival::Kept => {
                prop_assert_eq!(count(o, odd::MARK_REQUEST), 1);
                prop_assert_eq!(
                    count(o, odd::MARK_RESOURCE_LEVEL),
                    expected.resource_levels()
                );
                prop_assert_eq!(count(o, odd::MARK_RESOURCE), expected.resources_present());
                prop_assert_eq!(count(o, odd::MARK_ITEM), expected.marked_items());
            }
        }
    }
    Ok(())
}

/// Odd encodings, each way alone or together.
pub(super) fn odd_encoding() -> impl proptest::strategy::Strategy<Value = odd::Odd> {
    use proptest::prelude::*;
    any::<(bool, bool, bool, bool)>().prop_map(|(reorder, unknown, pad_lengths, decoys)| odd::Odd {
        reorder,
        unknown,
        pad_lengths,
        decoys,
        split: false,
    })
}

/// [`odd_encoding`], with resources and scopes sometimes written in two pieces.
pub(super) fn odd_encoding_split() -> impl proptest::strategy::Strategy<Value = odd::Odd> {
    use proptest::prelude::*;
    (odd_encoding(), any::<bool>()).prop_map(|(odd, split)| odd::Odd { split, ..odd })
}
