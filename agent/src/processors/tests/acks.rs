//! Acknowledgements stay exact through the processors, and the counters say what happened.

use super::{assert_metric, batch, node, AckProbe};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use sonde_core::{Batch, Signal};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// Spans named `names`, each with a trace id ending in its index (all distinct and valid).
fn spans(names: &[&str]) -> Vec<u8> {
    let spans = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut trace_id = vec![0x11u8; 16];
            trace_id[15] = i as u8;
            Span {
                trace_id,
                span_id: vec![1; 8],
                name: n.to_string(),
                attributes: vec![kv("user.email", "a@example.com"), kv("peer", "10.0.0.1")],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn with_ack(b: Batch, probe: &AckProbe) -> Batch {
    b.with_ack(probe.ack())
}

#[test]
fn a_batch_a_filter_empties_releases_its_ack_as_finished() {
    let (f, reg) = node(
        "f",
        "type = \"filter\"\nspans = ['name == \"GET /healthz\"']",
    );
    let probe = AckProbe::default();
    let b = with_ack(
        batch(Signal::Traces, spans(&["GET /healthz", "GET /healthz"])),
        &probe,
    );
    assert!(f.process(b).is_none(), "every span matched");
    assert_eq!(
        probe.state(),
        (1, Some(true)),
        "the ack is released, finished"
    );
    assert_metric(
        &reg,
        r#"sonde_processor_items_total{processor="f",signal="traces"} 2"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_dropped_items_total{processor="f",reason="filtered"} 2"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_modified_items_total{processor="f"} 0"#,
    );
    assert_metric(&reg, r#"sonde_processor_seconds_count{processor="f"} 1"#);
}

#[test]
fn a_batch_a_filter_rewrites_keeps_its_ack_until_the_rewritten_batch_goes() {
    let (f, reg) = node(
        "f",
        "type = \"filter\"\nspans = ['name == \"GET /healthz\"']",
    );
    let probe = AckProbe::default();
    let b = with_ack(
        batch(
            Signal::Traces,
            spans(&["GET /healthz", "checkout", "GET /healthz"]),
        ),
        &probe,
    );
    let ack = b.ack.clone();
    let Some(out) = f.process(b) else {
        panic!("one span is left")
    };
    assert_eq!(out.items, 1);
    assert_eq!(out.ack, ack, "the rewritten batch carries the same ack");
    assert_eq!(&*out.source, "otlp");
    drop(ack);
    assert_eq!(probe.state(), (0, None), "held by the rewritten batch");
    drop(out);
    assert_eq!(probe.state(), (1, Some(true)));
    assert_metric(
        &reg,
        r#"sonde_processor_items_total{processor="f",signal="traces"} 3"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_dropped_items_total{processor="f",reason="filtered"} 2"#,
    );
}

#[test]
fn a_batch_a_sampler_empties_releases_its_ack_and_one_it_keeps_holds_it() {
    let (none, reg) = node("s0", "type = \"sample\"\npercentage = 0.0");
    let probe = AckProbe::default();
    assert!(none
        .process(with_ack(
            batch(Signal::Traces, spans(&["a", "b", "c"])),
            &probe
        ))
        .is_none());
    assert_eq!(probe.state(), (1, Some(true)));
    assert_metric(
        &reg,
        r#"sonde_processor_dropped_items_total{processor="s0",reason="sampled"} 3"#,
    );

    let (all, reg) = node("s100", "type = \"sample\"\npercentage = 100.0");
    let probe = AckProbe::default();
    let Some(out) = all.process(with_ack(batch(Signal::Traces, spans(&["a", "b"])), &probe)) else {
        panic!("100% keeps everything")
    };
    assert_eq!(out.items, 2);
    assert_eq!(probe.state(), (0, None), "held by the kept batch");
    drop(out);
    assert_eq!(probe.state(), (1, Some(true)));
    assert_metric(
        &reg,
        r#"sonde_processor_dropped_items_total{processor="s100",reason="sampled"} 0"#,
    );
    // Both kept spans had no threshold: each gets `ot=th:0` written.
    assert_metric(
        &reg,
        r#"sonde_processor_modified_items_total{processor="s100"} 2"#,
    );
}

#[test]
fn a_redacted_batch_keeps_its_ack_and_counts_each_pattern() {
    let (r, reg) = node(
        "red",
        "type = \"redact\"\npatterns = [\"email\", \"ipv4\", \"credit_card\", \"tok-[0-9]+\"]\nkeys = [\"peer\"]",
    );
    let probe = AckProbe::default();
    let b = with_ack(batch(Signal::Traces, spans(&["a", "b", "c"])), &probe);
    let ack = b.ack.clone();
    let Some(out) = r.process(b) else {
        panic!("redaction drops nothing")
    };
    assert_eq!(out.ack, ack);
    assert_eq!(out.items, 3);
    drop((ack, out));
    assert_eq!(probe.state(), (1, Some(true)));
    // Three e-mail addresses; the three IPv4 addresses are under `peer`, a key in `keys`: they
    // go whole and count as `key`, not `ipv4`.
    assert_metric(
        &reg,
        r#"sonde_processor_redactions_total{processor="red",pattern="email"} 3"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_redactions_total{processor="red",pattern="key"} 3"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_redactions_total{processor="red",pattern="ipv4"} 0"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_redactions_total{processor="red",pattern="credit_card"} 0"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_redactions_total{processor="red",pattern="regex_3"} 0"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_modified_items_total{processor="red"} 3"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_items_total{processor="red",signal="traces"} 3"#,
    );
    assert!(
        !reg.render().contains("sonde_processor_dropped_items_total"),
        "a redactor drops nothing and has no drop counter"
    );
}

#[test]
fn a_resource_edit_keeps_the_ack_and_counts_the_items_under_each_changed_resource() {
    let (r, reg) = node(
        "res",
        "type = \"resource\"\nset = { \"deployment.environment.name\" = \"prod\" }",
    );
    let probe = AckProbe::default();
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(), LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    };
    let b = with_ack(batch(Signal::Logs, logs.encode_to_vec()), &probe);
    let ack = b.ack.clone();
    let Some(out) = r.process(b) else {
        panic!("nothing dropped")
    };
    assert_eq!(out.ack, ack);
    drop((ack, out));
    assert_eq!(probe.state(), (1, Some(true)));
    assert_metric(
        &reg,
        r#"sonde_processor_modified_items_total{processor="res"} 3"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_items_total{processor="res",signal="logs"} 3"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_items_total{processor="res",signal="traces"} 0"#,
    );
}

#[test]
fn an_abandoned_ack_is_reported_unfinished_even_when_a_filter_empties_the_batch() {
    let (f, _) = node("f", "type = \"filter\"\nspans = ['true']");
    let probe = AckProbe::default();
    let b = with_ack(batch(Signal::Traces, spans(&["a"])), &probe);
    if let Some(a) = &b.ack {
        a.abandon();
    }
    assert!(f.process(b).is_none());
    assert_eq!(probe.state(), (1, Some(false)));
}

#[test]
fn a_signal_a_processor_does_not_handle_passes_with_its_ack_and_is_not_counted() {
    let (f, reg) = node("f", "type = \"filter\"\nlog_records = ['true']");
    let probe = AckProbe::default();
    let b = with_ack(batch(Signal::Traces, spans(&["a"])), &probe);
    let payload = b.payload.clone();
    let Some(out) = f.process(b) else {
        panic!("traces pass a logs filter")
    };
    assert!(super::same_buffer(&payload, &out.payload));
    drop(out);
    assert_eq!(probe.state(), (1, Some(true)));
    assert_metric(
        &reg,
        r#"sonde_processor_items_total{processor="f",signal="traces"} 0"#,
    );
    assert_metric(&reg, r#"sonde_processor_seconds_count{processor="f"} 0"#);
}
