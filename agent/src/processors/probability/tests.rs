//! Sampler tests: statistics over random trace ids, consistency, tracestate edits, modes,
//! anomalies, log records.

use proptest::prelude::*;

use super::*;

fn sampler(percent: f64, mode: Mode) -> Sampler {
    match Sampler::new(percent, mode, DEFAULT_PRECISION) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn trace_id(rng: &mut FastRng) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    id[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    id
}

/// A trace id whose low 56 bits are `r`.
fn id_with_randomness(r: u64) -> [u8; 16] {
    let mut id = [0xabu8; 16];
    id[8..].copy_from_slice(&r.to_be_bytes());
    id[8] = 0x77;
    id
}

fn span<'a>(id: &'a [u8], ts: &'a str) -> SpanInput<'a> {
    SpanInput {
        trace_id: id,
        trace_state: ts,
        flags: RANDOM_TRACE_FLAG,
    }
}

#[test]
fn ten_percent_of_100k_random_trace_ids_is_within_five_sigma() {
    let s = sampler(10.0, Mode::Equalizing);
    assert_eq!(
        s.threshold().th().map(|t| t.to_string()).as_deref(),
        Some("e666")
    );
    let p = s.threshold().probability(); // 0.100006…
    let mut rng = FastRng::from_seed(0x5eed);
    let n = 100_000u32;
    let mut out = String::new();
    let kept = (0..n)
        .filter(|_| {
            let id = trace_id(&mut rng);
            s.sample_span(span(&id, ""), &mut out).keep
        })
        .count() as f64;
    let mean = f64::from(n) * p;
    let sigma = (f64::from(n) * p * (1.0 - p)).sqrt();
    assert!(
        (kept - mean).abs() < 5.0 * sigma,
        "kept {kept}, expected {mean} ± {}",
        5.0 * sigma
    );
}

#[test]
fn identical_trace_ids_get_identical_decisions() {
    let a = sampler(25.0, Mode::Equalizing);
    let b = sampler(25.0, Mode::Equalizing);
    let mut rng = FastRng::from_seed(7);
    let (mut o1, mut o2) = (String::new(), String::new());
    for _ in 0..1000 {
        let id = trace_id(&mut rng);
        let d1 = a.sample_span(span(&id, "vendor=x"), &mut o1);
        let d2 = b.sample_span(span(&id, "vendor=x"), &mut o2);
        assert_eq!(d1, d2);
        if d1.keep {
            assert_eq!(o1, o2);
        }
        let log = a.sample_log(&id, &mut rng);
        assert_eq!(log.keep, d1.keep, "a log record follows its trace");
        assert_eq!(log.randomness, RandomnessSource::TraceId);
    }
}

#[test]
fn decisions_are_consistent_across_probabilities() {
    let low = sampler(1.0, Mode::Equalizing);
    let high = sampler(10.0, Mode::Equalizing);
    let mut rng = FastRng::from_seed(99);
    let mut out = String::new();
    let mut kept_low = 0;
    for _ in 0..20_000 {
        let id = trace_id(&mut rng);
        if low.sample_span(span(&id, ""), &mut out).keep {
            kept_low += 1;
            assert!(high.sample_span(span(&id, ""), &mut out).keep);
        }
    }
    assert!(kept_low > 100, "{kept_low}");
}

#[test]
fn the_decision_is_r_at_or_above_the_threshold() {
    let s = sampler(50.0, Mode::Equalizing); // T = 0x80000000000000
    let mut out = String::new();
    let at = id_with_randomness(0x80000000000000);
    let below = id_with_randomness(0x7fffffffffffff);
    let d = s.sample_span(span(&at, ""), &mut out);
    assert!(d.keep);
    assert_eq!(d.trace_state, TraceStateEdit::Rewritten);
    assert_eq!(out, "ot=th:8");
    assert!(!s.sample_span(span(&below, ""), &mut out).keep);
}

#[test]
fn explicit_rv_overrides_the_trace_id() {
    let s = sampler(50.0, Mode::Equalizing);
    let low_id = id_with_randomness(1);
    let mut out = String::new();
    let d = s.sample_span(span(&low_id, "ot=rv:ffffffffffffff"), &mut out);
    assert!(d.keep);
    assert_eq!(d.randomness, RandomnessSource::Explicit);
    assert_eq!(out, "ot=th:8;rv:ffffffffffffff");
    // An invalid rv is absent: the trace id decides (and drops), the anomaly is reported.
    let d = s.sample_span(span(&low_id, "ot=rv:fff"), &mut out);
    assert!(!d.keep);
    assert_eq!(d.randomness, RandomnessSource::TraceId);
    assert!(d.anomalies.contains(Anomalies::INVALID_RV));
    // Without a trace id, rv alone decides.
    let d = s.sample_span(span(&[], "ot=rv:ffffffffffffff"), &mut out);
    assert!(d.keep);
}

#[test]
fn equalizing_never_lowers_a_stricter_incoming_threshold() {
    let s = sampler(50.0, Mode::Equalizing);
    let high = id_with_randomness(0xf0000000000000);
    let mut out = String::from("untouched");
    // Incoming 1/16 (th:f) is stricter than 1/2: passes unchanged.
    let d = s.sample_span(span(&high, "ot=th:f"), &mut out);
    assert!(d.keep);
    assert_eq!(
        d.threshold,
        Some(Threshold::parse_th("f").unwrap_or(Threshold::NEVER))
    );
    assert_eq!(d.trace_state, TraceStateEdit::Unchanged);
    assert_eq!(out, "untouched");
    // Incoming 100% (th:0) is raised to ours.
    let d = s.sample_span(span(&high, "a=1,ot=th:0;x:y"), &mut out);
    assert_eq!(d.trace_state, TraceStateEdit::Rewritten);
    assert_eq!(out, "ot=th:8;x:y,a=1");
    // Same threshold already recorded: nothing to write.
    let d = s.sample_span(span(&high, "ot=th:8"), &mut out);
    assert_eq!(d.trace_state, TraceStateEdit::Unchanged);
}

#[test]
fn inconsistent_incoming_threshold_is_erased() {
    let s = sampler(50.0, Mode::Equalizing);
    // R = 0x90… is below th:f (0xf0…): that span could not have been sampled at th:f.
    let id = id_with_randomness(0x90000000000000);
    let mut out = String::new();
    let d = s.sample_span(span(&id, "ot=th:f"), &mut out);
    assert!(d.anomalies.contains(Anomalies::INCONSISTENT_TH));
    assert!(d.keep, "erased, then judged at 50%");
    assert_eq!(out, "ot=th:8");
}

#[test]
fn proportional_multiplies_probabilities() {
    let s = sampler(50.0, Mode::Proportional);
    let id = id_with_randomness(0xffffffffffffff);
    let mut out = String::new();
    // 50% of an incoming 50% is 25%: th:c.
    let d = s.sample_span(span(&id, "ot=th:8"), &mut out);
    assert_eq!(
        d.threshold
            .and_then(Threshold::th)
            .map(|t| t.to_string())
            .as_deref(),
        Some("c")
    );
    assert_eq!(out, "ot=th:c");
    // 50% of 1/16 is 1/32: th:f8.
    let d = s.sample_span(span(&id, "ot=th:f"), &mut out);
    assert_eq!(
        d.threshold
            .and_then(Threshold::th)
            .map(|t| t.to_string())
            .as_deref(),
        Some("f8")
    );
    // No incoming threshold: as if 100%.
    s.sample_span(span(&id, ""), &mut out);
    assert_eq!(out, "ot=th:8");
    // A tiny incoming probability times 50% falls below 2^-56: dropped.
    let d = s.sample_span(span(&id, "ot=th:ffffffffffffff"), &mut out);
    assert!(!d.keep);
}

#[test]
fn missing_randomness_drops_and_says_why() {
    let s = sampler(100.0, Mode::Equalizing);
    let mut out = String::new();
    for id in [&[0u8; 16][..], &[1u8; 8][..], &[][..]] {
        let d = s.sample_span(span(id, ""), &mut out);
        assert!(!d.keep);
        assert_eq!(d.randomness, RandomnessSource::Missing);
        assert!(d.anomalies.contains(Anomalies::MISSING_RANDOMNESS));
        assert_eq!(
            d.anomalies.reasons().collect::<Vec<_>>(),
            vec!["missing_randomness"]
        );
    }
}

#[test]
fn malformed_tracestate_is_ignored_and_left_alone() {
    let s = sampler(100.0, Mode::Equalizing);
    let id = id_with_randomness(5);
    let mut out = String::from("untouched");
    let d = s.sample_span(span(&id, "BAD KEY=1"), &mut out);
    assert!(d.keep);
    assert_eq!(d.trace_state, TraceStateEdit::Unchanged);
    assert_eq!(d.threshold, None);
    assert!(d.anomalies.contains(Anomalies::MALFORMED_TRACESTATE));
    assert_eq!(out, "untouched");
}

#[test]
fn bad_th_and_malformed_ot_are_replaced_on_rewrite() {
    let s = sampler(100.0, Mode::Equalizing);
    let id = id_with_randomness(5);
    let mut out = String::new();
    let d = s.sample_span(span(&id, "ot=th:nothex"), &mut out);
    assert!(d.anomalies.contains(Anomalies::INVALID_TH));
    assert_eq!(out, "ot=th:0");
    let d = s.sample_span(span(&id, "x=1,ot=;;"), &mut out);
    assert!(d.anomalies.contains(Anomalies::MALFORMED_OT));
    assert_eq!(out, "ot=th:0,x=1");
}

#[test]
fn overlong_ot_value_keeps_the_span_without_a_threshold() {
    let s = sampler(100.0, Mode::Equalizing);
    let id = id_with_randomness(5);
    let ts = format!("ot=k:{}", "a".repeat(250));
    let mut out = String::new();
    let d = s.sample_span(span(&id, &ts), &mut out);
    assert!(d.keep);
    assert_eq!(d.trace_state, TraceStateEdit::Unchanged);
    assert_eq!(d.threshold, None);
    assert!(d.anomalies.contains(Anomalies::OT_TOO_LONG));
}

#[test]
fn unflagged_trace_ids_are_presumed_random_and_counted() {
    let s = sampler(100.0, Mode::Equalizing);
    let id = id_with_randomness(5);
    let mut out = String::new();
    let d = s.sample_span(
        SpanInput {
            trace_id: &id,
            trace_state: "",
            flags: 0x01,
        },
        &mut out,
    );
    assert!(d.keep);
    assert!(d.anomalies.contains(Anomalies::PRESUMED_RANDOM_TRACE_ID));
    let d = s.sample_span(
        SpanInput {
            trace_id: &id,
            trace_state: "",
            flags: 0x03,
        },
        &mut out,
    );
    assert!(d.anomalies.is_empty());
}

#[test]
fn zero_percent_keeps_nothing_and_hundred_keeps_everything() {
    let none = sampler(0.0, Mode::Equalizing);
    let all = sampler(100.0, Mode::Equalizing);
    let mut rng = FastRng::from_seed(3);
    let mut out = String::new();
    for _ in 0..1000 {
        let id = trace_id(&mut rng);
        assert!(!none.sample_span(span(&id, ""), &mut out).keep);
        assert!(all.sample_span(span(&id, ""), &mut out).keep);
        assert_eq!(out, "ot=th:0");
    }
    assert!(Sampler::new(100.5, Mode::Equalizing, 4).is_err());
    assert!(Sampler::new(-1.0, Mode::Equalizing, 4).is_err());
}

#[test]
fn logs_without_trace_id_are_drawn_at_the_configured_rate() {
    let s = sampler(10.0, Mode::Equalizing);
    let mut rng = FastRng::from_seed(42);
    let n = 100_000u32;
    let kept = (0..n)
        .filter(|_| {
            let d = s.sample_log(&[], &mut rng);
            assert_eq!(d.randomness, RandomnessSource::Drawn);
            d.keep
        })
        .count() as f64;
    let p = s.threshold().probability();
    let sigma = (f64::from(n) * p * (1.0 - p)).sqrt();
    assert!((kept - f64::from(n) * p).abs() < 5.0 * sigma, "{kept}");
    assert!(FastRng::from_entropy().is_ok());
}

proptest! {
    #[test]
    fn arbitrary_tracestates_never_panic_and_rewrites_reparse(ts in "[ -~]{0,300}", r in any::<u64>()) {
        let s = sampler(30.0, Mode::Equalizing);
        let id = id_with_randomness(r & 0xffffffffffffff);
        let mut out = String::new();
        let d = s.sample_span(span(&id, &ts), &mut out);
        if d.trace_state == TraceStateEdit::Rewritten {
            let again = TraceState::parse(&out);
            prop_assert!(again.is_ok(), "{} -> {}", ts, out);
            if let Ok(again) = again {
                prop_assert_eq!(again.th, d.threshold);
                prop_assert!(again.ot().is_some_and(|ot| ot.len() <= MAX_VALUE_LEN));
            }
        }
    }

    #[test]
    fn equalizing_outgoing_threshold_is_never_below_incoming(th in "[0-9a-f]{1,14}", r in any::<u64>(), pct in 1u32..=100) {
        let s = sampler(f64::from(pct), Mode::Equalizing);
        let id = id_with_randomness(r & 0xffffffffffffff);
        let mut out = String::new();
        let incoming = Threshold::parse_th(&th);
        let d = s.sample_span(span(&id, &format!("ot=th:{th}")), &mut out);
        if let (Some(i), Some(o)) = (incoming, d.threshold) {
            if !d.anomalies.contains(Anomalies::INCONSISTENT_TH) {
                prop_assert!(o >= i);
            }
            prop_assert!(o >= s.threshold());
        }
    }
}

#[test]
fn samplers_are_plain_shareable_values() {
    fn shareable<T: Send + Sync + Copy>() {}
    shareable::<Sampler>();
    shareable::<SpanDecision>();
}
