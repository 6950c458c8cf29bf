//! The redact processor on the wire against the same redaction of decoded requests, with its
//! per-pattern counters.

use super::oracle::{Redaction, Tally};
use super::{gen, metric_value, node, odd_encoding_split, run, Survival};
use crate::processors::patterns::{Action, Builtin, Pattern, Redactor};
use proptest::prelude::*;
use proptest::sample::subsequence;

/// Pattern entries of the config: built-in names and regular expressions.
const PATTERNS: &[&str] = &["email", "ipv4", "credit_card", "tok-[0-9]+", "secret"];

const KEYS: &[&str] = &["password", "k", "user.email"];

/// The redactor the processor builds from `patterns` (built-ins by name, the rest as
/// `regex_<index>`), for the oracle.
fn redactor(patterns: &[&str], action: Action) -> Redactor {
    let ps: Vec<Pattern> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| match Builtin::from_name(p) {
            Some(b) => Pattern::Builtin(b),
            None => Pattern::Custom {
                name: format!("regex_{i}"),
                regex: p.to_string(),
            },
        })
        .collect();
    let ps = if ps.is_empty() {
        vec![Pattern::Custom {
            name: "none".into(),
            regex: "[^\\s\\S]".into(),
        }]
    } else {
        ps
    };
    match Redactor::new(&ps, action) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

#[derive(Debug, Clone)]
struct Config {
    patterns: Vec<&'static str>,
    keys: Vec<&'static str>,
    bodies: bool,
    hash: bool,
}

fn config() -> impl Strategy<Value = Config> {
    (
        subsequence(PATTERNS, 0..=3),
        subsequence(KEYS, 0..=2),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_filter("redacts something", |(p, k, _, _)| {
            !(p.is_empty() && k.is_empty())
        })
        .prop_map(|(patterns, keys, bodies, hash)| Config {
            patterns,
            keys,
            bodies,
            hash,
        })
}

const HASH_KEY: &str = "0123456789abcdef-test";

impl Config {
    fn toml(&self) -> String {
        let list = |l: &[&str]| {
            l.iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let action = if self.hash {
            format!("action = \"hash\"\nhash_key = \"{HASH_KEY}\"\n")
        } else {
            "mask = \"<redacted>\"\n".to_string()
        };
        format!(
            "type = \"redact\"\npatterns = [{}]\nkeys = [{}]\nbodies = {}\n{action}",
            list(&self.patterns),
            list(&self.keys),
            self.bodies
        )
    }

    fn redactor(&self) -> Redactor {
        let action = if self.hash {
            Action::Hash(HASH_KEY.as_bytes().to_vec())
        } else {
            Action::Mask("<redacted>".into())
        };
        redactor(&self.patterns, action)
    }
}

/// The redaction counters agree with the oracle's tally.
fn counters(
    reg: &sonde_core::metrics::Registry,
    signal: &str,
    items: u64,
    modified: u64,
    redactor: &Redactor,
    t: &Tally,
) -> Result<(), TestCaseError> {
    let v = |s: &str| metric_value(reg, s).unwrap_or(0);
    prop_assert_eq!(
        v(&format!(
            r#"sonde_processor_items_total{{processor="red",signal="{signal}"}}"#
        )),
        items
    );
    prop_assert_eq!(
        v(r#"sonde_processor_modified_items_total{processor="red"}"#),
        modified
    );
    prop_assert_eq!(
        v(r#"sonde_processor_redactions_total{processor="red",pattern="key"}"#),
        t.by_key
    );
    for (i, name) in redactor.names().enumerate() {
        prop_assert_eq!(
            v(&format!(
                r#"sonde_processor_redactions_total{{processor="red",pattern="{name}"}}"#
            )),
            t.counts.get(i),
            "pattern {}",
            name
        );
    }
    prop_assert_eq!(
        v(r#"sonde_processor_errors_total{processor="red",reason="malformed"}"#),
        0
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn traces_redacted_on_the_wire_equal_traces_redacted_decoded(
        req in gen::traces(), odd in odd_encoding_split(), cfg in config(),
    ) {
        let (node, reg) = node("red", &cfg.toml());
        let r = run(&node, &req, odd)?;
        let redactor = cfg.redactor();
        let oracle = Redaction { redactor: &redactor, keys: &cfg.keys, bodies: cfg.bodies };
        let mut t = Tally { counts: redactor.new_counts(), by_key: 0 };
        let mut expected = r.input.clone();
        let e = oracle.traces(&mut expected, &mut t);
        super::check(&r, &expected, &e, odd, Survival::All)?;
        counters(&reg, "traces", r.items, e.modified, &redactor, &t)?;
    }

    #[test]
    fn logs_redacted_on_the_wire_equal_logs_redacted_decoded(
        req in gen::logs(), odd in odd_encoding_split(), cfg in config(),
    ) {
        let (node, reg) = node("red", &cfg.toml());
        let r = run(&node, &req, odd)?;
        let redactor = cfg.redactor();
        let oracle = Redaction { redactor: &redactor, keys: &cfg.keys, bodies: cfg.bodies };
        let mut t = Tally { counts: redactor.new_counts(), by_key: 0 };
        let mut expected = r.input.clone();
        let e = oracle.logs(&mut expected, &mut t);
        super::check(&r, &expected, &e, odd, Survival::All)?;
        counters(&reg, "logs", r.items, e.modified, &redactor, &t)?;
    }

    #[test]
    fn metrics_redacted_on_the_wire_equal_metrics_redacted_decoded(
        req in gen::metrics(), odd in odd_encoding_split(), cfg in config(),
    ) {
        let (node, reg) = node("red", &cfg.toml());
        let r = run(&node, &req, odd)?;
        let redactor = cfg.redactor();
        let oracle = Redaction { redactor: &redactor, keys: &cfg.keys, bodies: cfg.bodies };
        let mut t = Tally { counts: redactor.new_counts(), by_key: 0 };
        let mut expected = r.input.clone();
        let e = oracle.metrics(&mut expected, &mut t);
        super::check(&r, &expected, &e, odd, Survival::All)?;
        counters(&reg, "metrics", r.items, e.modified, &redactor, &t)?;
    }
}

/// A key in `keys` whose value is a map: every string inside goes, whatever the map's own keys
/// (they used to be matched against `keys` alone, so `password = {user, pass}` leaked both).
#[test]
fn a_redacted_key_masks_every_string_of_a_map_or_array_value() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value::Value as V, AnyValue, ArrayValue, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;
    let s = |v: &str| AnyValue {
        value: Some(V::StringValue(v.into())),
    };
    let kv = |k: &str, v: AnyValue| KeyValue {
        key: k.into(),
        value: Some(v),
        ..Default::default()
    };
    let secret = AnyValue {
        value: Some(V::KvlistValue(KeyValueList {
            values: vec![
                kv("user", s("bob")),
                kv("pass", s("hunter2")),
                kv(
                    "ttl",
                    AnyValue {
                        value: Some(V::IntValue(3)),
                    },
                ),
                kv(
                    "old",
                    AnyValue {
                        value: Some(V::ArrayValue(ArrayValue {
                            values: vec![s("a"), s("b")],
                        })),
                    },
                ),
            ],
        })),
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    attributes: vec![kv("password", secret), kv("user", s("bob"))],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (node, reg) = node("red", "type = \"redact\"\nkeys = [\"password\"]\n");
    let Some(out) = node.process(super::batch(sonde_core::Signal::Logs, req.encode_to_vec()))
    else {
        panic!("the batch went")
    };
    let got = match ExportLogsServiceRequest::decode(&out.payload[..]) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let attrs = &got.resource_logs[0].scope_logs[0].log_records[0].attributes;
    let Some(V::KvlistValue(map)) = attrs[0].value.as_ref().and_then(|v| v.value.as_ref()) else {
        panic!("not a map: {attrs:?}")
    };
    let strings: Vec<String> = map
        .values
        .iter()
        .flat_map(|kv| match kv.value.as_ref().and_then(|v| v.value.clone()) {
            Some(V::StringValue(s)) => vec![s],
            Some(V::ArrayValue(a)) => a
                .values
                .into_iter()
                .filter_map(|v| match v.value {
                    Some(V::StringValue(s)) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        })
        .collect();
    // The int under the key goes too (the mask of its text form).
    assert_eq!(strings, ["****"; 5], "{map:?}");
    assert_eq!(attrs[1].value, Some(s("bob")), "another key is untouched");
    super::assert_metric(
        &reg,
        r#"sonde_processor_redactions_total{processor="red",pattern="key"} 5"#,
    );
    super::assert_metric(
        &reg,
        r#"sonde_processor_modified_items_total{processor="red"} 1"#,
    );
}
