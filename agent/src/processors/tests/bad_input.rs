//! Bad input never costs data and never panics: a batch a processor cannot read passes
//! unchanged and is counted; an item field it cannot interpret is left and counted.

use super::{assert_metric, batch, gen, metric_value, node, same_buffer};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use proptest::prelude::*;
use prost::Message;
use sonde_core::metrics::Registry;
use sonde_core::wire::write::put_len_header;
use sonde_core::{Batch, Signal};
use std::sync::Arc;

/// One processor of each type, each doing something to every signal it handles.
fn every_processor() -> Vec<(&'static str, crate::processors::ProcessorNode, Registry)> {
    [
        (
            "filter",
            "type = \"filter\"\nspans = ['name == \"x\"']\nspan_events = ['name == \"e\"']\n\
             log_records = ['severity_number < 9']\nmetrics = ['name == \"m\"']\ndatapoints = ['value_int > 1']",
        ),
        ("redact", "type = \"redact\"\npatterns = [\"email\", \"ipv4\"]\nkeys = [\"password\"]\nbodies = true"),
        (
            "resource",
            "type = \"resource\"\nset = { env = \"prod\" }\ninsert = { \"host.name\" = \"h\" }\ndelete = [\"k\"]",
        ),
        ("sample", "type = \"sample\"\npercentage = 50.0"),
    ]
    .into_iter()
    .map(|(name, body)| {
        let (n, r) = node(name, body);
        (name, n, r)
    })
    .collect()
}

fn malformed(reg: &Registry, name: &str) -> u64 {
    metric_value(
        reg,
        &format!(r#"sonde_processor_errors_total{{processor="{name}",reason="malformed"}}"#),
    )
    .unwrap_or(0)
}

/// A request whose only resource-level message claims more bytes than there are.
fn truncated() -> Vec<u8> {
    vec![0x0a, 0x20, 0x12, 0x02, 0x0a, 0x00]
}

#[test]
fn a_batch_no_processor_can_read_passes_unchanged_and_is_counted() {
    for (name, node, reg) in every_processor() {
        for signal in Signal::ALL {
            let payload = Bytes::from(truncated());
            let b = Batch::from_trusted(signal, payload.clone(), 3, Arc::from("otlp"));
            let before = malformed(&reg, name);
            let out = node.process(b);
            let handled = !(name == "sample" && signal == Signal::Metrics);
            match out {
                Some(out) => {
                    assert!(same_buffer(&payload, &out.payload), "{name} {signal}");
                    assert_eq!(out.items, 3, "{name} {signal}: the count stays");
                }
                None => panic!("{name} dropped an unreadable {signal} batch"),
            }
            assert_eq!(
                malformed(&reg, name) - before,
                u64::from(handled),
                "{name} {signal}"
            );
        }
    }
}

#[test]
fn a_string_that_is_not_utf8_is_left_and_counted_while_the_rest_is_redacted() {
    // A log record with attributes a = <0xff 0xfe> (not UTF-8) and b = "x@example.com".
    let kv = |k: &[u8], v: &[u8]| {
        let mut any = bytes::BytesMut::new();
        put_len_header(&mut any, 1, v.len());
        any.extend_from_slice(v);
        let mut kv = bytes::BytesMut::new();
        put_len_header(&mut kv, 1, k.len());
        kv.extend_from_slice(k);
        put_len_header(&mut kv, 2, any.len());
        kv.extend_from_slice(&any);
        kv
    };
    let wrap = |number: u32, inner: &[u8]| {
        let mut b = bytes::BytesMut::new();
        put_len_header(&mut b, number, inner.len());
        b.extend_from_slice(inner);
        b.to_vec()
    };
    let mut record = wrap(6, &kv(b"a", &[0xff, 0xfe]));
    record.extend(wrap(6, &kv(b"b", b"x@example.com")));
    let request = wrap(1, &wrap(2, &wrap(2, &record)));
    let (node, reg) = node("red", "type = \"redact\"\npatterns = [\"email\"]");
    let Some(out) = node.process(batch(Signal::Logs, request.clone())) else {
        panic!("the record went")
    };
    assert_eq!(out.items, 1);
    let out = &out.payload[..];
    assert!(
        super::occurrences(out, &[0xff, 0xfe]) == 1,
        "the bad string is left as it was"
    );
    assert!(
        super::occurrences(out, b"x@example.com") == 0,
        "the good one is redacted"
    );
    assert!(super::occurrences(out, b"****") == 1);
    assert_metric(
        &reg,
        r#"sonde_processor_errors_total{processor="red",reason="malformed"} 1"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_redactions_total{processor="red",pattern="email"} 1"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_modified_items_total{processor="red"} 1"#,
    );
}

#[test]
fn a_condition_that_cannot_evaluate_keeps_the_item_and_is_counted() {
    // `Len` of an int is an evaluation error: false for that item, which stays.
    let (node, reg) = node(
        "f",
        "type = \"filter\"\nlog_records = ['Len(attributes[\"n\"]) > 1', 'severity_text == \"DEBUG\"']",
    );
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let rec = |n: any_value::Value, sev: &str| LogRecord {
        attributes: vec![KeyValue {
            key: "n".into(),
            value: Some(AnyValue { value: Some(n) }),
            ..Default::default()
        }],
        severity_text: sev.into(),
        ..Default::default()
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    rec(any_value::Value::IntValue(5), "INFO"),
                    rec(any_value::Value::IntValue(6), "DEBUG"),
                    rec(any_value::Value::StringValue("long".into()), "INFO"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let Some(out) = node.process(batch(Signal::Logs, req.encode_to_vec())) else {
        panic!("one record is left")
    };
    assert_eq!(out.items, 1, "the int one that is not DEBUG stays");
    assert_metric(
        &reg,
        r#"sonde_processor_errors_total{processor="f",reason="condition"} 2"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_dropped_items_total{processor="f",reason="filtered"} 2"#,
    );
    assert_metric(
        &reg,
        r#"sonde_processor_errors_total{processor="f",reason="malformed"} 0"#,
    );
}

/// Runs `payload` through every processor as every signal; nothing panics. A batch a processor
/// calls malformed passes as it came (the redactor also counts a single string that is not
/// UTF-8 there, and edits the rest: not checked for it). A request that is valid for the signal
/// comes out valid, with the item count the batch says.
fn survive(
    processors: &[(&'static str, crate::processors::ProcessorNode, Registry)],
    payload: &[u8],
) {
    let payload = Bytes::copy_from_slice(payload);
    for (name, node, reg) in processors {
        for signal in Signal::ALL {
            let before = malformed(reg, name);
            let valid = sonde_core::wire::validate(signal, &payload).ok();
            let b = Batch::from_trusted(
                signal,
                payload.clone(),
                valid.unwrap_or(7),
                Arc::from("otlp"),
            );
            let out = node.process(b);
            if *name != "redact" && malformed(reg, name) > before {
                let out = out.as_ref().map(|o| o.payload.clone());
                assert!(
                    out.is_some_and(|o| same_buffer(&payload, &o)),
                    "{name} {signal}: a malformed batch must pass unchanged"
                );
            }
            if let (Some(_), Some(out)) = (valid, &out) {
                assert_eq!(
                    sonde_core::wire::validate(signal, &out.payload).ok(),
                    Some(out.items),
                    "{name} {signal}: a valid request comes out valid, with its count"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_a_processor(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        survive(&every_processor(), &bytes);
    }

    #[test]
    fn damaged_requests_never_panic_a_processor(
        req in prop_oneof![
            gen::traces().prop_map(|r| r.encode_to_vec()),
            gen::logs().prop_map(|r| r.encode_to_vec()),
            gen::metrics().prop_map(|r| r.encode_to_vec()),
        ],
        // No flip at all: a valid request, read by every processor as every signal.
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = req;
        if !bytes.is_empty() {
            for (at, v) in &flips {
                let i = at.index(bytes.len());
                bytes[i] = *v;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len()));
            }
        }
        survive(&every_processor(), &bytes);
    }
}
