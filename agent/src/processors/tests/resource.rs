//! The resource processor's set/insert/delete on the wire against the same edit on decoded
//! requests.

use super::oracle::{self, Expect, ResourceEdit};
use super::{gen, metric_value, node, odd_encoding_split, run, Request, Run, Survival};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;
use proptest::sample::subsequence;
use std::collections::BTreeMap;

/// A configured attribute value, as TOML writes it and as the processor encodes it.
#[derive(Debug, Clone)]
enum Val {
    Str(&'static str),
    Int(i64),
    Bool(bool),
    Double(f64),
}

impl Val {
    fn toml(&self) -> String {
        match self {
            Val::Str(s) => format!("{s:?}"),
            Val::Int(i) => i.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Double(d) => format!("{d:?}"),
        }
    }
    fn any(&self) -> AnyValue {
        AnyValue {
            value: Some(match self {
                Val::Str(s) => any_value::Value::StringValue(s.to_string()),
                Val::Int(i) => any_value::Value::IntValue(*i),
                Val::Bool(b) => any_value::Value::BoolValue(*b),
                Val::Double(d) => any_value::Value::DoubleValue(*d),
            }),
        }
    }
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        prop::sample::select(&["prod", "dev", ""][..]).prop_map(Val::Str),
        (-2i64..3).prop_map(Val::Int),
        any::<bool>().prop_map(Val::Bool),
        Just(Val::Double(0.5)),
    ]
}

fn attrs() -> impl Strategy<Value = BTreeMap<&'static str, Val>> {
    prop::collection::btree_map(prop::sample::select(gen::KEYS), val(), 0..3)
}

#[derive(Debug, Clone)]
struct Edit {
    delete: Vec<&'static str>,
    set: BTreeMap<&'static str, Val>,
    insert: BTreeMap<&'static str, Val>,
}

fn edit() -> impl Strategy<Value = Edit> {
    (subsequence(gen::KEYS, 0..=3), attrs(), attrs())
        .prop_filter("the processor must do something", |(d, s, i)| {
            !(d.is_empty() && s.is_empty() && i.is_empty())
        })
        .prop_map(|(delete, set, insert)| Edit {
            delete,
            set,
            insert,
        })
}

impl Edit {
    fn toml(&self) -> String {
        let table = |m: &BTreeMap<&str, Val>| {
            let entries: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k:?} = {}", v.toml()))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        };
        let delete: Vec<String> = self.delete.iter().map(|k| format!("{k:?}")).collect();
        format!(
            "type = \"resource\"\ndelete = [{}]\nset = {}\ninsert = {}\n",
            delete.join(", "),
            table(&self.set),
            table(&self.insert)
        )
    }

    fn oracle(&self) -> ResourceEdit {
        let kvs = |m: &BTreeMap<&str, Val>| {
            m.iter()
                .map(|(k, v)| KeyValue {
                    key: k.to_string(),
                    value: Some(v.any()),
                    ..Default::default()
                })
                .collect()
        };
        ResourceEdit {
            delete: self.delete.iter().map(|k| k.to_string()).collect(),
            set: kvs(&self.set),
            insert: kvs(&self.insert),
        }
    }
}

/// The edit applied to every resource-level message's `Resource`.
fn expect<R: Request>(
    r: &Run<R>,
    edit: &ResourceEdit,
    resources: impl Fn(&mut R) -> Vec<(&mut Option<Resource>, usize)>,
) -> (R, Expect) {
    let mut expected = r.input.clone();
    let mut e = Expect::default();
    for (res, items) in resources(&mut expected) {
        if oracle::edit_resource(res, edit) {
            e.changed = true;
            e.modified += items as u64;
        }
    }
    (expected, e)
}

fn counters(
    reg: &sonde_core::metrics::Registry,
    signal: &str,
    items: u64,
    e: &Expect,
) -> Result<(), TestCaseError> {
    let v = |s: &str| metric_value(reg, s).unwrap_or(0);
    prop_assert_eq!(
        v(&format!(
            r#"sonde_processor_items_total{{processor="res",signal="{signal}"}}"#
        )),
        items
    );
    prop_assert_eq!(
        v(r#"sonde_processor_modified_items_total{processor="res"}"#),
        e.modified
    );
    prop_assert!(!reg.render().contains("sonde_processor_dropped_items_total"));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn resource_edits_on_the_wire_equal_edits_decoded_traces(
        req in gen::traces(), odd in odd_encoding_split(), edit in edit(),
    ) {
        let (node, reg) = node("res", &edit.toml());
        let r = run(&node, &req, odd)?;
        let (expected, e) = expect(&r, &edit.oracle(), |q: &mut ExportTraceServiceRequest| {
            q.resource_spans.iter_mut().map(|rs| {
                let n = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
                (&mut rs.resource, n)
            }).collect()
        });
        let expected = untouched_absent(&r.input, expected, |q| q.resource_spans.iter_mut().map(|x| &mut x.resource).collect());
        super::check(&r, &expected, &e, odd, Survival::AllButValues)?;
        counters(&reg, "traces", r.items, &e)?;
    }

    #[test]
    fn resource_edits_on_the_wire_equal_edits_decoded_logs(
        req in gen::logs(), odd in odd_encoding_split(), edit in edit(),
    ) {
        let (node, reg) = node("res", &edit.toml());
        let r = run(&node, &req, odd)?;
        let (expected, e) = expect(&r, &edit.oracle(), |q: &mut ExportLogsServiceRequest| {
            q.resource_logs.iter_mut().map(|rl| {
                let n = rl.scope_logs.iter().map(|s| s.log_records.len()).sum();
                (&mut rl.resource, n)
            }).collect()
        });
        let expected = untouched_absent(&r.input, expected, |q| q.resource_logs.iter_mut().map(|x| &mut x.resource).collect());
        super::check(&r, &expected, &e, odd, Survival::AllButValues)?;
        counters(&reg, "logs", r.items, &e)?;
    }

    #[test]
    fn resource_edits_on_the_wire_equal_edits_decoded_metrics(
        req in gen::metrics(), odd in odd_encoding_split(), edit in edit(),
    ) {
        let (node, reg) = node("res", &edit.toml());
        let r = run(&node, &req, odd)?;
        let (expected, e) = expect(&r, &edit.oracle(), |q: &mut ExportMetricsServiceRequest| {
            q.resource_metrics.iter_mut().map(|rm| {
                let n = rm.scope_metrics.iter().flat_map(|s| &s.metrics)
                    .filter_map(|m| m.data.as_ref()).map(|d| oracle::points(d).len()).sum();
                (&mut rm.resource, n)
            }).collect()
        });
        let expected = untouched_absent(&r.input, expected, |q| q.resource_metrics.iter_mut().map(|x| &mut x.resource).collect());
        super::check(&r, &expected, &e, odd, Survival::AllButValues)?;
        counters(&reg, "metrics", r.items, &e)?;
    }
}

/// A resource-level message without a `Resource` that the edit does not change (a `delete`
/// only) keeps having none: the oracle's edit creates an empty one to work on, undone here.
fn untouched_absent<R: Request>(
    input: &R,
    mut expected: R,
    resources: impl Fn(&mut R) -> Vec<&mut Option<Resource>>,
) -> R {
    let mut input = input.clone();
    let before: Vec<bool> = resources(&mut input).iter().map(|r| r.is_none()).collect();
    for (r, was_absent) in resources(&mut expected).into_iter().zip(before) {
        if was_absent && r.as_ref().is_some_and(|x| x.attributes.is_empty()) {
            *r = None;
        }
    }
    expected
}
