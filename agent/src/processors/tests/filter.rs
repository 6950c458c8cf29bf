//! The filter on the wire against the filter on decoded requests; acks and counters.

use super::oracle::{self, Conditions};
use super::{gen, metric_value, node, odd_encoding_split, run, Survival};
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
    r#"HasAttrOnDatapoint("k", "")"#,
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
        odd in odd_encoding_split(),
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
        odd in odd_encoding_split(),
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
        odd in odd_encoding_split(),
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

/// `HasAttrOnDatapoint(key, value)` reads a value that is not a string as `""`, as the
/// Collector does (pdata's `Value.Str()`); a present key without a value counts as present.
#[test]
fn has_attr_on_datapoint_compares_a_non_string_value_as_empty() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use prost::Message;
    let metric = |name: &str, value: Option<any_value::Value>| Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes: vec![KeyValue {
                    key: "k".into(),
                    value: value.map(|v| AnyValue { value: Some(v) }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric("int", Some(any_value::Value::IntValue(3))),
                    metric("str", Some(any_value::Value::StringValue("3".into()))),
                    metric("none", None),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let names = |cond: &str| -> Vec<String> {
        let (f, _) = node("f", &format!("type = \"filter\"\nmetrics = ['{cond}']"));
        let out = f.process(super::batch(
            sonde_core::Signal::Metrics,
            req.encode_to_vec(),
        ));
        let kept = out.map(
            |b| match ExportMetricsServiceRequest::decode(&b.payload[..]) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            },
        );
        kept.into_iter()
            .flat_map(|r| r.resource_metrics)
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics)
            .map(|m| m.name)
            .collect()
    };
    // Dropped: the int (reads as "") and the one without a value.
    assert_eq!(names(r#"HasAttrOnDatapoint("k", "")"#), ["str"]);
    assert_eq!(names(r#"HasAttrOnDatapoint("k", "3")"#), ["int", "none"]);
    assert_eq!(names(r#"HasAttrKeyOnDatapoint("k")"#), Vec::<String>::new());
    assert_eq!(
        names(r#"HasAttrKeyOnDatapoint("j")"#),
        ["int", "str", "none"]
    );
}

/// A condition that does not parse is refused when the configuration is loaded, at its key and
/// at the line:column of the offending token inside the string.
#[test]
fn a_condition_that_does_not_parse_is_placed_in_the_file() {
    let condition = r#"name == "x" and"#;
    let Err(e) = Condition::parse(Context::Span, condition) else {
        panic!("`{condition}` parsed")
    };
    let text = format!(
        "[sources.otlp]\ntype = \"otlp\"\n[processors.f]\ntype = \"filter\"\ninputs = [\"otlp\"]\n\
         spans = ['name == \"a\"', '{condition}']\n[exporters.out]\ntype = \"stdout\"\ninputs = [\"f\"]\n"
    );
    let errs = match crate::load_config(&text, "test.toml") {
        Ok(_) => panic!("a bad condition was accepted"),
        Err(errs) => errs.errors,
    };
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let err = &errs[0];
    assert_eq!(err.path, "processors.f.spans[1]");
    // Line 6; the second string's text starts at column 26.
    assert_eq!(
        (err.line, err.column),
        (Some(6), Some(26 + e.column as usize - 1)),
        "{err}"
    );
    assert!(err.message.contains("invalid OTTL condition"), "{err}");
    assert!(err.to_string().contains("processors.f.spans[1]"), "{err}");
}
