//! The filter on the wire against the filter on decoded requests; acks and counters.

use super::oracle::{self, Conditions};
use super::{gen, metric_value, node, odd_encoding, run, Survival};
use crate::processors::ottl::{Condition, Context};
use proptest::prelude::*;
use proptest::sample::subsequence;

const SPANS: &[&str] = &[
    r#"name == "GET /healthz""#,
    r#"attributes["http.route"] == "/ping""#,
    "kind == SPAN_KIND_INTERNAL",
    "status.code == STATUS_CODE_ERROR",
    r#"resource.attributes["env"] == "dev""#,
    r#"instrumentation_scope.name == "lib-a""#,
    r#"IsMatch(name, "^GET")"#,
    r#"trace_state["ot"] != nil"#,
    "dropped_attributes_count > 1",
    r#"Len(attributes["k"]) > 3"#,
    "flags == 1",
    "IsRootSpan()",
    r#"attributes["k"] == 3 or attributes["k"] == true"#,
    r#"not IsString(attributes["env"]) and attributes["env"] != nil"#,
    r#"status.message == "boom" and end_time_unix_nano > 50"#,
    r#"instrumentation_scope.attributes["env"] == "prod""#,
    r#"attributes["k"][0] == "dev" or attributes["k"]["env"] == "dev""#,
    "trace_id == TraceID(0x00000000000000000000000000000000)",
];

const EVENTS: &[&str] = &[
    r#"name == "exception""#,
    r#"attributes["k"] == "v""#,
    "event_index == 0",
    r#"span.name == "db""#,
    r#"resource.attributes["env"] == "prod" and time_unix_nano < 2"#,
];

const LOGS: &[&str] = &[
    "severity_number < SEVERITY_NUMBER_WARN",
    r#"body == "secret debug line""#,
    r#"IsMatch(body, "tok-")"#,
    r#"body["env"] == "dev""#,
    r#"attributes["env"] == "dev""#,
    r#"severity_text == "DEBUG""#,
    "IsMap(body)",
    r#"Len(body) > 10"#,
    "trace_id == TraceID(0x00000000000000000000000000000000)",
    r#"span_id.string == """#,
    r#"resource.attributes["service.name"] != nil"#,
    "flags == 1 and observed_time_unix_nano >= 50",
];

const METRICS: &[&str] = &[
    r#"name == "m.cpu""#,
    "type == METRIC_DATA_TYPE_SUM",
    r#"HasAttrKeyOnDatapoint("k")"#,
    r#"HasAttrOnDatapoint("env", "dev")"#,
    "is_monotonic == true",
    r#"unit == "By""#,
    "aggregation_temporality == AGGREGATION_TEMPORALITY_DELTA",
];

const POINTS: &[&str] = &[
    "value_int > 5",
    "value_double < 0.5",
    r#"attributes["env"] == "dev""#,
    r#"metric.name == "m.mem""#,
    "count > 2",
    "flags == FLAG_NO_RECORDED_VALUE",
    "sum > 1.0",
    "scale == 2",
    "zero_count == 1 and start_time_unix_nano < 3",
    "metric.type == METRIC_DATA_TYPE_SUMMARY",
];

fn parse(context: Context, list: &[&str]) -> Vec<Condition> {
    list.iter()
        .map(|c| match Condition::parse(context, c) {
            Ok(c) => c,
            Err(e) => panic!("`{c}`: {e}"),
        })
        .collect()
}

fn toml_list(list: &[&str]) -> String {
    let quoted: Vec<String> = list.iter().map(|c| format!("'{c}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A filter with these lists (a list left empty is not configured); `spare`: a condition for
/// a list of another signal, so that the configuration always has one.
fn filter(
    lists: [&[&str]; 5],
) -> (
    crate::processors::ProcessorNode,
    sonde_core::metrics::Registry,
    Conditions,
) {
    let keys = [
        "spans",
        "span_events",
        "log_records",
        "metrics",
        "datapoints",
    ];
    let mut body = String::from("type = \"filter\"\n");
    for (k, l) in keys.iter().zip(lists) {
        if !l.is_empty() {
            body.push_str(&format!("{k} = {}\n", toml_list(l)));
        }
    }
    let (n, r) = node("f", &body);
    let c = Conditions {
        spans: parse(Context::Span, lists[0]),
        events: parse(Context::SpanEvent, lists[1]),
        logs: parse(Context::Log, lists[2]),
        metrics: parse(Context::Metric, lists[3]),
        points: parse(Context::DataPoint, lists[4]),
    };
    (n, r, c)
}

/// The counters after one batch agree with the oracle.
fn check_counters(
    r: &sonde_core::metrics::Registry,
    signal: &str,
    items: u64,
    e: &oracle::Expect,
    errors: u64,
) -> Result<(), TestCaseError> {
    let v = |s: &str| metric_value(r, s).unwrap_or(0);
    prop_assert_eq!(
        v(&format!(
            r#"sonde_processor_items_total{{processor="f",signal="{signal}"}}"#
        )),
        items
    );
    prop_assert_eq!(
        v(r#"sonde_processor_dropped_items_total{processor="f",reason="filtered"}"#),
        e.dropped
    );
    prop_assert_eq!(
        v(r#"sonde_processor_modified_items_total{processor="f"}"#),
        e.modified
    );
    prop_assert_eq!(
        v(r#"sonde_processor_errors_total{processor="f",reason="condition"}"#),
        errors
    );
    prop_assert_eq!(
        v(r#"sonde_processor_errors_total{processor="f",reason="malformed"}"#),
        0
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn traces_filtered_on_the_wire_equal_traces_filtered_decoded(
        req in gen::traces(),
        odd in odd_encoding(),
        spans in subsequence(SPANS, 0..=3),
        events in subsequence(EVENTS, 0..=2),
    ) {
        // A filter needs one condition: a spare one for logs when both lists are empty.
        let spare: &[&str] = if spans.is_empty() && events.is_empty() { &["flags == 9"] } else { &[] };
        let (node, reg, c) = filter([&spans, &events, spare, &[], &[]]);
        let r = run(&node, &req, odd)?;
        let mut expected = r.input.clone();
        let mut errors = 0;
        let e = oracle::filter_traces(&mut expected, &c, &mut errors);
        let handled = spare.is_empty();
        if !handled {
            // A signal the filter has no condition for passes as it is, even empty.
            let out = r.out.as_ref().map(|b| b.payload.clone());
            prop_assert!(out.is_some_and(|p| super::same_buffer(&r.payload, &p)));
        } else {
            super::check(&r, &expected, &e, odd, Survival::Kept)?;
        }
        check_counters(&reg, "traces", if handled { r.items } else { 0 }, &e, errors)?;
    }

    #[test]
    fn logs_filtered_on_the_wire_equal_logs_filtered_decoded(
        req in gen::logs(),
        odd in odd_encoding(),
        logs in subsequence(LOGS, 1..=3),
    ) {
        let (node, reg, c) = filter([&[], &[], &logs, &[], &[]]);
        let r = run(&node, &req, odd)?;
        let mut expected = r.input.clone();
        let mut errors = 0;
        let e = oracle::filter_logs(&mut expected, &c, &mut errors);
        super::check(&r, &expected, &e, odd, Survival::Kept)?;
        check_counters(&reg, "logs", r.items, &e, errors)?;
    }

    #[test]
    fn metrics_filtered_on_the_wire_equal_metrics_filtered_decoded(
        req in gen::metrics(),
        odd in odd_encoding(),
        metrics in subsequence(METRICS, 0..=2),
        points in subsequence(POINTS, 0..=3),
    ) {
        let spare: &[&str] = if metrics.is_empty() && points.is_empty() { &["flags == 9"] } else { &[] };
        let (node, reg, c) = filter([&[], &[], spare, &metrics, &points]);
        let r = run(&node, &req, odd)?;
        let mut expected = r.input.clone();
        let mut errors = 0;
        let e = oracle::filter_metrics(&mut expected, &c, &mut errors);
        let handled = spare.is_empty();
        if !handled {
            let out = r.out.as_ref().map(|b| b.payload.clone());
            prop_assert!(out.is_some_and(|p| super::same_buffer(&r.payload, &p)));
        } else {
            super::check(&r, &expected, &e, odd, Survival::Kept)?;
        }
        check_counters(&reg, "metrics", if handled { r.items } else { 0 }, &e, errors)?;
    }
}
