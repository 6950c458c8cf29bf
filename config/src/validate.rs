//! The checks of a whole configuration once every component is deserialized: each component's
//! own checks (the `problems()` of its settings), and the ones that need several components —
//! `inputs` naming declared sources, and signals an exporter can take actually reaching it.
//!
//! Problems are reported, never fixed: the loader refuses a file with any. The order of the
//! checks is the order problems at one place are listed in.

use crate::problem::KeyPath;
use crate::report::Report;
use crate::schema::{Config, ExporterConfig};
use sonde_core::Signal;
use std::collections::BTreeSet;

/// Checks `config`, whose `[sources]` declared the names in `declared` (a source that failed to
/// deserialize is declared but absent from `config.sources`).
pub(crate) fn validate(report: &mut Report<'_>, config: &Config, declared: &BTreeSet<String>) {
    // Only judge the signal flow when every source was understood.
    let sources_understood = !config.sources.is_empty() && config.sources.len() == declared.len();
    for (name, exporter) in &config.exporters {
        let at = KeyPath::dotted("exporters").key(name.clone());
        check_inputs(report, &at, exporter, declared);
        check_signals_accepted(report, &at, exporter);
        if sources_understood {
            check_signal_flow(report, &at, exporter, config);
        }
        report.problems(&at, exporter.kind.problems());
        report.problems(&at, exporter.common.problems());
    }
    for (name, source) in &config.sources {
        let at = KeyPath::dotted("sources").key(name.clone());
        report.problems(&at, source.problems());
    }
}

/// Every entry of an exporter's `inputs` names a declared source, and the list is not empty.
fn check_inputs(
    report: &mut Report<'_>,
    at: &KeyPath,
    exporter: &ExporterConfig,
    declared: &BTreeSet<String>,
) {
    let Some(inputs) = &exporter.common.inputs else {
        return;
    };
    for (i, input) in inputs.iter().enumerate() {
        if !declared.contains(input) {
            let known: Vec<String> = declared.iter().map(|k| format!("`{k}`")).collect();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            report.error(
                &at.clone().key("inputs").index(i),
                format!("`{input}` names no source (sources: {known})"),
            );
        }
    }
    if inputs.is_empty() {
        report.error(
            &at.clone().key("inputs"),
            "`inputs` is empty: the exporter would receive nothing",
        );
    }
}

/// Every signal named in an exporter's `signals` is one its type can take.
fn check_signals_accepted(report: &mut Report<'_>, at: &KeyPath, exporter: &ExporterConfig) {
    let accepts = exporter.kind.accepts();
    let Some(signals) = &exporter.common.signals else {
        return;
    };
    for (i, s) in signals.iter().enumerate() {
        if !accepts.contains(s) {
            report.error(
                &at.clone().key("signals").index(i),
                format!("a `{}` exporter cannot take {s}", exporter.kind.type_name()),
            );
        }
    }
}

/// At least one signal its inputs produce is one the exporter takes (its type and `signals`).
fn check_signal_flow(
    report: &mut Report<'_>,
    at: &KeyPath,
    exporter: &ExporterConfig,
    config: &Config,
) {
    let common = &exporter.common;
    let accepts = exporter.kind.accepts();
    let produced: BTreeSet<Signal> = config
        .sources
        .iter()
        .filter(|(n, _)| common.inputs.as_ref().is_none_or(|i| i.contains(n)))
        .flat_map(|(_, s)| s.signals().iter().copied())
        .collect();
    let taken = |s: &Signal| common.signals.as_ref().is_none_or(|sig| sig.contains(s));
    let receives = produced.iter().filter(|s| accepts.contains(s)).any(taken);
    if receives {
        return;
    }
    let produced: Vec<&str> = produced.iter().map(|s| s.as_str()).collect();
    let takes: Vec<&str> = common
        .signals
        .as_deref()
        .unwrap_or(accepts)
        .iter()
        .filter(|s| accepts.contains(s))
        .map(|s| s.as_str())
        .collect();
    report.error(
        at,
        format!(
            "receives no signal it can take: its inputs produce [{}], it takes [{}]",
            produced.join(", "),
            takes.join(", ")
        ),
    );
}
