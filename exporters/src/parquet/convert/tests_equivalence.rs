//! The wire-level trace and log converters against the prost-based ones they replaced
//! ([`super::oracle`]): the same bytes must give equal record batches, or both must be refused.

use super::oracle;
use super::{convert, ConvertError, DecodeError};
use crate::parquet::testdata;
use arrow_array::RecordBatch;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use prost::Message;
use sonde_core::wire::WireErrorKind;
use sonde_core::Signal;

fn oracle(signal: Signal, bytes: &[u8]) -> Result<RecordBatch, ConvertError> {
    match signal {
        Signal::Traces => oracle::traces::convert(bytes),
        Signal::Logs => oracle::logs::convert(bytes),
        Signal::Metrics => unreachable!("metrics are converted by prost only"),
    }
}

/// Both converters accept `bytes` and give equal batches.
fn assert_same(signal: Signal, bytes: &[u8]) -> RecordBatch {
    let old = oracle(signal, bytes).expect("prost path accepts");
    let new = convert(signal, bytes).expect("wire path accepts");
    assert_eq!(old.schema(), new.schema());
    for (i, (a, b)) in old.columns().iter().zip(new.columns()).enumerate() {
        assert_eq!(
            a.to_data(),
            b.to_data(),
            "{signal} column {} differs",
            old.schema().field(i).name()
        );
    }
    assert_eq!(old, new);
    new
}

/// Whatever the bytes: the wire path accepts only what prost accepts, and then gives the same
/// batch; it refuses what prost refuses, except protobuf groups (which prost skips in unknown
/// fields and the wire path, like the receiver's validator, refuses).
fn assert_agree(signal: Signal, bytes: &[u8]) {
    match (oracle(signal, bytes), convert(signal, bytes)) {
        (Ok(old), Ok(new)) => assert_eq!(old, new),
        (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => match e {
            ConvertError::Decode {
                source: DecodeError::Wire(w),
                ..
            } if matches!(w.kind, WireErrorKind::InvalidWireType(3 | 4)) => {}
            other => panic!("prost accepts, the wire path refuses: {other}"),
        },
        (Err(e), Ok(_)) => panic!("prost refuses ({e}), the wire path accepts"),
    }
}

fn av(v: Value) -> AnyValue {
    AnyValue { value: Some(v) }
}

fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v,
        ..Default::default()
    }
}

/// Every value kind, with the corner cases of their text and JSON forms.
fn odd_attributes() -> Vec<KeyValue> {
    let s = |x: &str| av(Value::StringValue(x.into()));
    vec![
        kv("empty", None),
        kv("unset", Some(AnyValue { value: None })),
        kv("str", Some(s("ünïcødé \"quoted\" \\ \n\t\u{1}"))),
        kv("int.min", Some(av(Value::IntValue(i64::MIN)))),
        kv("dbl.nan", Some(av(Value::DoubleValue(f64::NAN)))),
        kv("dbl.inf", Some(av(Value::DoubleValue(f64::NEG_INFINITY)))),
        kv("dbl.big", Some(av(Value::DoubleValue(1e300)))),
        kv("dbl.small", Some(av(Value::DoubleValue(-1.5e-7)))),
        kv("dbl.whole", Some(av(Value::DoubleValue(3.0)))),
        kv("bool", Some(av(Value::BoolValue(false)))),
        kv("bytes.empty", Some(av(Value::BytesValue(vec![])))),
        kv(
            "bytes",
            Some(av(Value::BytesValue(vec![0, 1, 2, 0xff, 0xfe]))),
        ),
        kv("strindex", Some(av(Value::StringValueStrindex(-3)))),
        kv(
            "nested",
            Some(av(Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue { value: None },
                    av(Value::DoubleValue(f64::INFINITY)),
                    av(Value::BytesValue(b"xyz".to_vec())),
                    av(Value::StringValueStrindex(4)),
                    av(Value::KvlistValue(KeyValueList {
                        values: vec![
                            kv("a\"b", Some(s("é"))),
                            kv("none", None),
                            kv(
                                "deeper",
                                Some(av(Value::ArrayValue(ArrayValue { values: vec![] }))),
                            ),
                        ],
                    })),
                ],
            }))),
        ),
        kv(
            "empty.map",
            Some(av(Value::KvlistValue(KeyValueList { values: vec![] }))),
        ),
        kv("", Some(s(""))),
    ]
}

/// Spans with what the fixtures lack: no resource, no scope, empty and malformed ids, unknown
/// enum values, times of 0 and past 2262, every value kind in every attribute set.
fn odd_traces() -> ExportTraceServiceRequest {
    let span = |i: u8| Span {
        trace_id: match i % 3 {
            0 => vec![],
            1 => vec![i; 16],
            _ => vec![i; 5],
        },
        span_id: if i.is_multiple_of(2) {
            vec![i; 8]
        } else {
            vec![]
        },
        parent_span_id: vec![i; 3],
        trace_state: if i == 0 { String::new() } else { "k=v".into() },
        flags: u32::MAX - u32::from(i),
        name: format!("span {i}"),
        kind: [0, 1, 2, 3, 4, 5, 6, -1][usize::from(i) % 8],
        start_time_unix_nano: if i == 1 { 0 } else { u64::MAX - 5 },
        end_time_unix_nano: u64::from(i),
        attributes: odd_attributes(),
        dropped_attributes_count: u32::MAX,
        events: vec![span::Event {
            time_unix_nano: 0,
            name: String::new(),
            attributes: odd_attributes(),
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 2,
        links: vec![
            span::Link::default(),
            span::Link {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                trace_state: "t".into(),
                attributes: odd_attributes(),
                dropped_attributes_count: 3,
                flags: 9,
            },
        ],
        dropped_links_count: 4,
        status: (i % 2 == 1).then(|| Status {
            message: "m".into(),
            code: i32::from(i) - 1,
        }),
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: (0..8).map(span).collect(),
                    schema_url: String::new(),
                }],
                schema_url: "r".into(),
            },
            ResourceSpans {
                resource: Some(Resource {
                    attributes: [
                        vec![
                            kv("service.name", Some(av(Value::IntValue(1)))),
                            kv("service.name", Some(av(Value::StringValue("svc".into())))),
                        ],
                        odd_attributes(),
                    ]
                    .concat(),
                    dropped_attributes_count: 7,
                    ..Default::default()
                }),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: String::new(),
                            version: "v".into(),
                            attributes: odd_attributes(),
                            dropped_attributes_count: 8,
                        }),
                        spans: vec![],
                        schema_url: "s".into(),
                    },
                    ScopeSpans {
                        scope: Some(InstrumentationScope::default()),
                        spans: (8..10).map(span).collect(),
                        schema_url: String::new(),
                    },
                ],
                schema_url: String::new(),
            },
            ResourceSpans::default(),
        ],
    }
}

/// Log records with every body kind and the corner cases of [`odd_traces`].
fn odd_logs() -> ExportLogsServiceRequest {
    let bodies: Vec<Option<AnyValue>> = [None, Some(AnyValue { value: None })]
        .into_iter()
        .chain(odd_attributes().into_iter().map(|kv| kv.value))
        .chain([Some(av(Value::BoolValue(true)))])
        .collect();
    let records = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| LogRecord {
            time_unix_nano: i as u64,
            observed_time_unix_nano: u64::MAX,
            severity_number: i as i32 - 2,
            severity_text: if i.is_multiple_of(2) {
                String::new()
            } else {
                "x".into()
            },
            body,
            attributes: if i == 0 { odd_attributes() } else { vec![] },
            dropped_attributes_count: i as u32,
            flags: u32::MAX,
            trace_id: vec![1; if i.is_multiple_of(2) { 16 } else { 4 }],
            span_id: vec![2; if i.is_multiple_of(3) { 8 } else { 0 }],
            event_name: if i == 3 { "e".into() } else { String::new() },
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: records,
                    schema_url: "s".into(),
                }],
                schema_url: String::new(),
            },
            ResourceLogs::default(),
        ],
    }
}

#[test]
fn fixtures_convert_the_same_on_the_wire_as_through_prost() {
    let t = assert_same(Signal::Traces, &testdata::traces().encode_to_vec());
    assert_eq!(t.num_rows(), 2);
    let l = assert_same(Signal::Logs, &testdata::logs().encode_to_vec());
    assert_eq!(l.num_rows(), 5);
    for seed in 1..4 {
        let t = assert_same(
            Signal::Traces,
            &testdata::bulk_traces(1000, seed, testdata::T0).encode_to_vec(),
        );
        assert_eq!(t.num_rows(), 1000);
        let l = assert_same(
            Signal::Logs,
            &testdata::bulk_logs(1000, seed, testdata::T0).encode_to_vec(),
        );
        assert_eq!(l.num_rows(), 1000);
    }
    assert_same(
        Signal::Traces,
        &testdata::bulk_traces_padded(50, 9, testdata::T0, 40).encode_to_vec(),
    );
}

#[test]
fn odd_values_missing_resources_and_bad_ids_convert_the_same() {
    let t = assert_same(Signal::Traces, &odd_traces().encode_to_vec());
    assert_eq!(t.num_rows(), 10);
    let l = assert_same(Signal::Logs, &odd_logs().encode_to_vec());
    assert_eq!(l.num_rows(), 19);
    // Empty requests and concatenated requests (what a merged batch is).
    assert_eq!(assert_same(Signal::Traces, &[]).num_rows(), 0);
    assert_eq!(assert_same(Signal::Logs, &[]).num_rows(), 0);
    let mut two = testdata::traces().encode_to_vec();
    two.extend(odd_traces().encode_to_vec());
    assert_eq!(assert_same(Signal::Traces, &two).num_rows(), 12);
}

/// A length-delimited field.
fn len_field(tag: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::bytes::encode(tag, &payload.to_vec(), &mut out);
    out
}

fn request_of_span_bytes(span: &[u8], resource: &[u8]) -> Vec<u8> {
    let scope_spans = len_field(2, span);
    let rs = [resource.to_vec(), len_field(2, &scope_spans)].concat();
    len_field(1, &rs)
}

#[test]
fn repeated_fields_merge_as_in_prost() {
    // Two encodings of a span back to back are one span: scalars from the second, repeated
    // fields from both, the status merged.
    let full = testdata::traces().resource_spans[0].scope_spans[0].spans[0].clone();
    let other = Span {
        name: "second".into(),
        kind: 3,
        attributes: vec![kv(
            "list",
            Some(av(Value::ArrayValue(ArrayValue {
                values: vec![av(Value::IntValue(9))],
            }))),
        )],
        status: Some(Status {
            message: String::new(),
            code: 1,
        }),
        ..Default::default()
    };
    let span = [full.encode_to_vec(), other.encode_to_vec()].concat();
    // The resource twice, each with attributes; after the scope spans.
    let res = |n: &str| {
        len_field(
            1,
            &Resource {
                attributes: vec![kv("service.name", Some(av(Value::StringValue(n.into()))))],
                dropped_attributes_count: n.len() as u32,
                ..Default::default()
            }
            .encode_to_vec(),
        )
    };
    let req = request_of_span_bytes(&span, &[res("a"), res("bb")].concat());
    let b = assert_same(Signal::Traces, &req);
    assert_eq!(b.num_rows(), 1);

    // A value given twice: array + array merge, array then string replaces.
    let arr = |i: i64| {
        len_field(
            2,
            &len_field(
                5,
                &ArrayValue {
                    values: vec![av(Value::IntValue(i))],
                }
                .encode_to_vec(),
            ),
        )
    };
    let key = len_field(1, b"k");
    for kv_bytes in [
        [key.clone(), arr(1), arr(2)].concat(),
        [arr(1), key.clone(), len_field(2, &len_field(1, b"s"))].concat(),
        [
            key.clone(),
            len_field(2, &[arr(1)[2..].to_vec(), len_field(1, b"s")].concat()),
        ]
        .concat(),
    ] {
        let span = [len_field(5, b"n"), len_field(9, &kv_bytes)].concat();
        assert_same(Signal::Traces, &request_of_span_bytes(&span, &[]));
        let record = len_field(6, &kv_bytes);
        let scope_logs = len_field(2, &record);
        let logs = len_field(1, &len_field(2, &scope_logs));
        assert_same(Signal::Logs, &logs);
    }
}

/// Arrays nested `levels` deep around a string, or around nothing (an empty innermost array:
/// then the deepest message is the array itself).
fn nested(levels: usize, leaf: bool) -> AnyValue {
    let mut v = av(Value::ArrayValue(ArrayValue {
        values: if leaf {
            vec![av(Value::StringValue("leaf".into()))]
        } else {
            vec![]
        },
    }));
    for _ in 1..levels {
        v = av(Value::ArrayValue(ArrayValue { values: vec![v] }));
    }
    v
}

/// The first nesting level the wire path refuses, checking prost agrees at every level.
fn first_refused(leaf: bool) -> (Option<usize>, Option<usize>) {
    let mut refused = (None, None);
    for levels in 40..=52 {
        let mut t = testdata::traces();
        t.resource_spans[0].scope_spans[0].spans[1].attributes =
            vec![kv("n", Some(nested(levels, leaf)))];
        let tb = t.encode_to_vec();
        assert_agree(Signal::Traces, &tb);
        if refused.0.is_none() && convert(Signal::Traces, &tb).is_err() {
            refused.0 = Some(levels);
        }
        let mut l = testdata::logs();
        l.resource_logs[0].scope_logs[0].log_records[1].body = Some(nested(levels, leaf));
        let lb = l.encode_to_vec();
        assert_agree(Signal::Logs, &lb);
        if refused.1.is_none() && convert(Signal::Logs, &lb).is_err() {
            refused.1 = Some(levels);
        }
    }
    refused
}

#[test]
fn nesting_is_refused_exactly_where_prost_refuses_it() {
    // prost refuses a message nested more than 100 deep. A span attribute's value is at depth
    // 5 (a log body at 4); each level of nesting is an ArrayValue and an AnyValue.
    assert_eq!(first_refused(true), (Some(48), Some(49)));
    assert_eq!(first_refused(false), (Some(49), Some(49)));
}

#[test]
fn malformed_requests_are_refused_with_the_offset() {
    let good = testdata::traces().encode_to_vec();
    // A span name that is not UTF-8.
    let span = [len_field(5, &[0x66, 0xff])].concat();
    let bad = request_of_span_bytes(&span, &[]);
    assert_agree(Signal::Traces, &bad);
    let e = convert(Signal::Traces, &bad).unwrap_err();
    assert!(e.to_string().contains("not valid UTF-8 at byte"), "{e}");
    // An attribute key that is not UTF-8, in the common layout, after rows whose keys were
    // fine (keys are checked only when they are not the previous row's).
    let attr = |key: &[u8]| len_field(9, &[len_field(1, key), len_field(2, &[])].concat());
    let request = |last_key: &[u8]| {
        let spans = [
            len_field(2, &attr(b"k")),
            len_field(2, &attr(b"k")),
            len_field(2, &[attr(b"k"), attr(last_key)].concat()),
        ];
        len_field(1, &len_field(2, &spans.concat()))
    };
    let bad = request(&[0x6b, 0xff]);
    assert_agree(Signal::Traces, &bad);
    let e = convert(Signal::Traces, &bad).unwrap_err();
    assert!(
        e.to_string().contains("string field 1 is not valid UTF-8"),
        "{e}"
    );
    let fine = request(b"k2");
    assert_eq!(assert_same(Signal::Traces, &fine).num_rows(), 3);
    // A known field with the wrong wire type (name as a varint).
    let bad = request_of_span_bytes(&[0x28, 0x01], &[]);
    assert_agree(Signal::Traces, &bad);
    assert!(convert(Signal::Traces, &bad).is_err());
    // A 10-byte varint whose last byte carries more than the 64th bit.
    let bad = request_of_span_bytes(
        &[
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ],
        &[],
    );
    assert_agree(Signal::Traces, &bad);
    assert!(convert(Signal::Traces, &bad).is_err());
    // Every prefix.
    for cut in 0..good.len() {
        assert_agree(Signal::Traces, &good[..cut]);
    }
    let logs = testdata::logs().encode_to_vec();
    for cut in 0..logs.len() {
        assert_agree(Signal::Logs, &logs[..cut]);
    }
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        Just(AnyValue { value: None }),
        ".{0,6}".prop_map(|s| av(Value::StringValue(s))),
        any::<bool>().prop_map(|b| av(Value::BoolValue(b))),
        any::<i64>().prop_map(|i| av(Value::IntValue(i))),
        any::<f64>().prop_map(|d| av(Value::DoubleValue(d))),
        proptest::collection::vec(any::<u8>(), 0..5).prop_map(|b| av(Value::BytesValue(b))),
        any::<i32>().prop_map(|i| av(Value::StringValueStrindex(i))),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3)
                .prop_map(|values| av(Value::ArrayValue(ArrayValue { values }))),
            proptest::collection::vec(("[a-z.]{0,4}", proptest::option::of(inner)), 0..3).prop_map(
                |kvs| av(Value::KvlistValue(KeyValueList {
                    values: kvs.into_iter().map(|(k, v)| kv(&k, v)).collect(),
                }))
            ),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(
        ("[a-z.]{0,6}", proptest::option::of(any_value())).prop_map(|(k, v)| kv(&k, v)),
        0..4,
    )
}

fn id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![]),
        proptest::collection::vec(any::<u8>(), 8),
        proptest::collection::vec(any::<u8>(), 16),
        proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

fn resource_and_scope() -> impl Strategy<Value = (Option<Resource>, Option<InstrumentationScope>)> {
    (
        proptest::option::of(
            (attributes(), any::<u32>()).prop_map(|(attributes, d)| Resource {
                attributes,
                dropped_attributes_count: d,
                ..Default::default()
            }),
        ),
        proptest::option::of((".{0,4}", ".{0,4}", attributes(), any::<u32>()).prop_map(
            |(name, version, attributes, d)| InstrumentationScope {
                name,
                version,
                attributes,
                dropped_attributes_count: d,
            },
        )),
    )
}

fn span_strategy() -> impl Strategy<Value = Span> {
    (
        (
            id(),
            id(),
            id(),
            ".{0,4}",
            any::<u32>(),
            ".{0,6}",
            any::<i32>(),
        ),
        (any::<u64>(), any::<u64>(), attributes(), any::<u32>()),
        proptest::collection::vec((any::<u64>(), ".{0,4}", attributes(), any::<u32>()), 0..3),
        proptest::collection::vec((id(), id(), ".{0,3}", attributes(), any::<u32>()), 0..2),
        proptest::option::of((".{0,4}", any::<i32>())),
    )
        .prop_map(|(a, b, events, links, status)| Span {
            trace_id: a.0,
            span_id: a.1,
            parent_span_id: a.2,
            trace_state: a.3,
            flags: a.4,
            name: a.5,
            kind: a.6,
            start_time_unix_nano: b.0,
            end_time_unix_nano: b.1,
            attributes: b.2,
            dropped_attributes_count: b.3,
            events: events
                .into_iter()
                .map(|(t, name, attributes, d)| span::Event {
                    time_unix_nano: t,
                    name,
                    attributes,
                    dropped_attributes_count: d,
                })
                .collect(),
            dropped_events_count: b.3 / 3,
            links: links
                .into_iter()
                .map(
                    |(trace_id, span_id, trace_state, attributes, d)| span::Link {
                        trace_id,
                        span_id,
                        trace_state,
                        attributes,
                        dropped_attributes_count: d,
                        flags: d / 7,
                    },
                )
                .collect(),
            dropped_links_count: b.3 / 5,
            status: status.map(|(message, code)| Status { message, code }),
        })
}

fn log_strategy() -> impl Strategy<Value = LogRecord> {
    (
        (any::<u64>(), any::<u64>(), any::<i32>(), ".{0,4}"),
        proptest::option::of(any_value()),
        (
            attributes(),
            any::<u32>(),
            any::<u32>(),
            id(),
            id(),
            ".{0,3}",
        ),
    )
        .prop_map(|(a, body, b)| LogRecord {
            time_unix_nano: a.0,
            observed_time_unix_nano: a.1,
            severity_number: a.2,
            severity_text: a.3,
            body,
            attributes: b.0,
            dropped_attributes_count: b.1,
            flags: b.2,
            trace_id: b.3,
            span_id: b.4,
            event_name: b.5,
        })
}

fn traces_strategy() -> impl Strategy<Value = ExportTraceServiceRequest> {
    proptest::collection::vec(
        (
            resource_and_scope(),
            proptest::collection::vec(span_strategy(), 0..4),
            ".{0,3}",
        )
            .prop_map(|((resource, scope), spans, url)| ResourceSpans {
                resource,
                scope_spans: vec![ScopeSpans {
                    scope,
                    spans,
                    schema_url: url.clone(),
                }],
                schema_url: url,
            }),
        0..3,
    )
    .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

fn logs_strategy() -> impl Strategy<Value = ExportLogsServiceRequest> {
    proptest::collection::vec(
        (
            resource_and_scope(),
            proptest::collection::vec(log_strategy(), 0..4),
        )
            .prop_map(|((resource, scope), log_records)| ResourceLogs {
                resource,
                scope_logs: vec![ScopeLogs {
                    scope,
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: "u".into(),
            }),
        0..3,
    )
    .prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_trace_requests_convert_the_same(req in traces_strategy()) {
        assert_same(Signal::Traces, &req.encode_to_vec());
    }

    #[test]
    fn random_log_requests_convert_the_same(req in logs_strategy()) {
        assert_same(Signal::Logs, &req.encode_to_vec());
    }

    #[test]
    fn random_bytes_never_panic_and_agree(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        assert_agree(Signal::Traces, &data);
        assert_agree(Signal::Logs, &data);
    }

    #[test]
    fn mutated_requests_never_panic_and_agree(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut t = odd_traces().encode_to_vec();
        let mut l = odd_logs().encode_to_vec();
        for (pos, byte) in &edits {
            let i = pos % t.len();
            t[i] = *byte;
            let j = pos % l.len();
            l[j] = *byte;
        }
        assert_agree(Signal::Traces, &t);
        assert_agree(Signal::Logs, &l);
    }
}
