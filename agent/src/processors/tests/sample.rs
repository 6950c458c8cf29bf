//! The sampler on the wire against the kernel's decisions applied to decoded requests.

use super::{gen, metric_value, node, odd_encoding_split, oracle, run, Survival};
use crate::processors::probability::{Mode, Sampler};
use proptest::prelude::*;

fn sampler(percentage: f64, proportional: bool, precision: u8) -> Sampler {
    let mode = if proportional {
        Mode::Proportional
    } else {
        Mode::Equalizing
    };
    match Sampler::new(percentage, mode, precision) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn toml(percentage: f64, proportional: bool, precision: u8) -> String {
    let mode = if proportional {
        "proportional"
    } else {
        "equalizing"
    };
    format!("type = \"sample\"\npercentage = {percentage:?}\nmode = \"{mode}\"\nprecision = {precision}\n")
}

fn percentage() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(100.0),
        Just(50.0),
        Just(10.0),
        Just(1.0),
        0.0f64..=100.0,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn traces_sampled_on_the_wire_equal_traces_sampled_decoded(
        req in gen::traces(),
        odd in odd_encoding_split(),
        pct in percentage(),
        proportional in any::<bool>(),
        precision in 1u8..=14,
    ) {
        let (node, reg) = node("s", &toml(pct, proportional, precision));
        let r = run(&node, &req, odd)?;
        let mut expected = r.input.clone();
        let e = oracle::sample_traces(&mut expected, &sampler(pct, proportional, precision));
        super::check(&r, &expected, &e, odd, Survival::Kept)?;
        let v = |s: &str| metric_value(&reg, s).unwrap_or(0);
        prop_assert_eq!(v(r#"sonde_processor_items_total{processor="s",signal="traces"}"#), r.items);
        prop_assert_eq!(v(r#"sonde_processor_dropped_items_total{processor="s",reason="sampled"}"#), e.dropped);
        prop_assert_eq!(v(r#"sonde_processor_modified_items_total{processor="s"}"#), e.modified);
    }

    #[test]
    fn logs_with_trace_ids_sampled_on_the_wire_equal_logs_sampled_decoded(
        req in gen::logs(),
        odd in odd_encoding_split(),
        pct in percentage(),
        fill in any::<[u8; 16]>(),
    ) {
        // Every record gets a usable trace id: the decision is then a function of it.
        let mut req = req;
        for (i, rec) in req.resource_logs.iter_mut().flat_map(|r| &mut r.scope_logs).flat_map(|s| &mut s.log_records).enumerate() {
            if rec.trace_id.iter().all(|b| *b == 0) {
                let mut id = fill;
                id[15] = id[15].wrapping_add(i as u8) | 1;
                rec.trace_id = id.to_vec();
            }
        }
        let (node, reg) = node("s", &toml(pct, false, 4));
        let r = run(&node, &req, odd)?;
        let mut expected = r.input.clone();
        let e = oracle::sample_logs(&mut expected, &sampler(pct, false, 4));
        super::check(&r, &expected, &e, odd, Survival::Kept)?;
        let v = |s: &str| metric_value(&reg, s).unwrap_or(0);
        prop_assert_eq!(v(r#"sonde_processor_dropped_items_total{processor="s",reason="sampled"}"#), e.dropped);
    }

    #[test]
    fn metrics_pass_a_sampler_untouched(req in gen::metrics(), pct in percentage()) {
        let (node, reg) = node("s", &toml(pct, false, 4));
        let r = run(&node, &req, super::odd::Odd::default())?;
        let out = r.out.as_ref().map(|b| b.payload.clone());
        prop_assert!(out.is_some_and(|p| super::same_buffer(&r.payload, &p)));
        prop_assert_eq!(metric_value(&reg, r#"sonde_processor_items_total{processor="s",signal="metrics"}"#).unwrap_or(0), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Decisions, rates and tracestates on the wire

use super::batch;
use crate::processors::probability::FastRng;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use sonde_core::Signal;

fn random_ids(rng: &mut FastRng, n: usize) -> Vec<[u8; 16]> {
    (0..n)
        .map(|_| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
            id[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
            id
        })
        .collect()
}

/// One span per trace id, each with `trace_state`, the W3C random flag set.
fn traces_request(ids: &[[u8; 16]], trace_state: &str) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: ids
                    .iter()
                    .map(|id| Span {
                        trace_id: id.to_vec(),
                        span_id: id[..8].to_vec(),
                        trace_state: trace_state.into(),
                        flags: 0x02,
                        name: "op".into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn logs_request(ids: &[[u8; 16]]) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: ids
                    .iter()
                    .map(|id| LogRecord {
                        trace_id: id.to_vec(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn kept_spans(out: Option<sonde_core::Batch>) -> Vec<Span> {
    out.map(
        |b| match ExportTraceServiceRequest::decode(&b.payload[..]) {
            Ok(r) => r
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans)
                .collect(),
            Err(e) => panic!("{e}"),
        },
    )
    .unwrap_or_default()
}

/// The randomness the specification takes from a trace id: its 56 low bits.
fn randomness(id: &[u8]) -> u64 {
    id[9..].iter().fold(0u64, |r, b| (r << 8) | u64::from(*b))
}

/// The rejection threshold of `th` hex digits: `th` padded to 14 digits.
fn threshold(th: &str) -> u64 {
    let padded = format!("{th:0<14}");
    match u64::from_str_radix(&padded, 16) {
        Ok(t) => t,
        Err(e) => panic!("{th}: {e}"),
    }
}

#[test]
fn two_samplers_decide_identically_for_the_same_trace_ids_and_logs_follow_their_traces() {
    let ids = random_ids(&mut FastRng::from_seed(0x5a5a), 4000);
    let (a, _) = node("a", &toml(25.0, false, 4));
    let (b, _) = node("b", &toml(25.0, false, 4));
    let out_a = a.process(batch(Signal::Traces, traces_request(&ids, "vendor=x")));
    let out_b = b.process(batch(Signal::Traces, traces_request(&ids, "vendor=x")));
    let (Some(out_a), Some(out_b)) = (out_a, out_b) else {
        panic!("a quarter of 4000 spans is kept")
    };
    assert_eq!(
        out_a.payload, out_b.payload,
        "identical decisions and tracestates"
    );
    let spans: Vec<[u8; 16]> = kept_spans(Some(out_a))
        .iter()
        .filter_map(|s| s.trace_id.as_slice().try_into().ok())
        .collect();
    let logs = a.process(batch(Signal::Logs, logs_request(&ids)));
    let records: Vec<[u8; 16]> = logs
        .map(|b| match ExportLogsServiceRequest::decode(&b.payload[..]) {
            Ok(r) => r
                .resource_logs
                .into_iter()
                .flat_map(|r| r.scope_logs)
                .flat_map(|s| s.log_records)
                .filter_map(|l| l.trace_id.as_slice().try_into().ok())
                .collect(),
            Err(e) => panic!("{e}"),
        })
        .unwrap_or_default();
    assert_eq!(records, spans, "a log record gets its trace's decision");
}

#[test]
fn ten_percent_of_100k_trace_ids_is_kept_within_four_sigma_each_by_the_specification_rule() {
    let (s, reg) = node("s", &toml(10.0, false, 4));
    // 10 % at 4 hex digits: th = e666, T = 0xe666 << 40, p = 1 - T / 2^56.
    let t = threshold("e666");
    let p = 1.0 - t as f64 / (1u64 << 56) as f64;
    let mut rng = FastRng::from_seed(0x10);
    let (n, mut kept) = (100_000usize, 0usize);
    for _ in 0..(n / 1000) {
        let ids = random_ids(&mut rng, 1000);
        let spans = kept_spans(s.process(batch(Signal::Traces, traces_request(&ids, ""))));
        let expected: Vec<&[u8; 16]> = ids.iter().filter(|id| randomness(&id[..]) >= t).collect();
        assert_eq!(
            spans.len(),
            expected.len(),
            "kept exactly the spans with R >= T"
        );
        for (span, id) in spans.iter().zip(expected) {
            assert_eq!(span.trace_id, id.to_vec());
            assert_eq!(span.trace_state, "ot=th:e666");
        }
        kept += spans.len();
    }
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (kept as f64 - mean).abs() < 4.0 * sigma,
        "kept {kept} of {n}, expected {mean:.0} ± {:.0}",
        4.0 * sigma
    );
    super::assert_metric(
        &reg,
        &format!(
            r#"sonde_processor_dropped_items_total{{processor="s",reason="sampled"}} {}"#,
            n - kept
        ),
    );
    super::assert_metric(
        &reg,
        &format!(r#"sonde_processor_modified_items_total{{processor="s"}} {kept}"#),
    );
}

#[test]
fn kept_spans_carry_the_threshold_in_tracestate_as_the_specification_says() {
    // An id whose randomness (low 56 bits) is the maximum: kept at any percentage above 0.
    let mut id = [0xffu8; 16];
    id[0] = 0x01;
    let cases: &[(f64, &str, &str)] = &[
        // (percentage, incoming tracestate, outgoing tracestate)
        (50.0, "", "ot=th:8"),
        (10.0, "", "ot=th:e666"),
        (100.0, "", "ot=th:0"),
        // Other vendors' entries stay, after `ot` (a modified entry moves to the left).
        (10.0, "vendor=x,other=y", "ot=th:e666,vendor=x,other=y"),
        (10.0, "vendor=x,ot=th:8", "ot=th:e666,vendor=x"),
        // Equalizing: an incoming stricter threshold (1 %) is kept as it is: no rewrite.
        (10.0, "ot=th:fd70a4", "ot=th:fd70a4"),
        // An explicit `rv` is kept; other `ot` sub-keys follow it.
        (
            10.0,
            "ot=rv:ffffffffffffff;x:1",
            "ot=th:e666;rv:ffffffffffffff;x:1",
        ),
    ];
    for (pct, incoming, outgoing) in cases {
        let (s, _) = node("s", &toml(*pct, false, 4));
        let spans = kept_spans(s.process(batch(Signal::Traces, traces_request(&[id], incoming))));
        assert_eq!(spans.len(), 1, "{pct}% {incoming:?}");
        assert_eq!(&spans[0].trace_state, outgoing, "{pct}% {incoming:?}");
    }
    // Proportional: 50 % after an earlier 50 % stage is 25 %: th = c.
    let (s, _) = node("s", &toml(50.0, true, 4));
    let spans = kept_spans(s.process(batch(Signal::Traces, traces_request(&[id], "ot=th:8"))));
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].trace_state, "ot=th:c");
    // An explicit `rv` decides, not the trace id: rv below T drops a span whose id would pass.
    let (s, _) = node("s", &toml(10.0, false, 4));
    let out = s.process(batch(
        Signal::Traces,
        traces_request(&[id], "ot=rv:00000000000001"),
    ));
    assert!(out.is_none(), "rv 1 < T: dropped");
}
