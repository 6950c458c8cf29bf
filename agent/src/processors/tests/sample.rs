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
