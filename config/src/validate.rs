//! The checks of a whole configuration once every component is deserialized: each component's
//! own checks (the `problems()` of its settings), and the ones that need several components —
//! the graph (names unique across sources and processors, `inputs` naming declared sources or
//! processors, no cycle, every processor's output taken by something) and the signals (what an exporter or processor can take actually reaching
//! it).
//!
//! Problems are reported, never fixed: the loader refuses a file with any. The order of the
//! checks is the order problems at one place are listed in.

use crate::problem::KeyPath;
use crate::report::Report;
use crate::schema::{Config, ExporterConfig, ProcessorConfig};
use sonde_core::Signal;
use std::collections::BTreeSet;

/// The component names the file declared (a component that failed to deserialize is declared
/// but absent from the config).
#[derive(Debug, Default)]
pub(crate) struct Declared {
    pub sources: BTreeSet<String>,
    pub processors: BTreeSet<String>,
}

impl Declared {
    fn has(&self, name: &str) -> bool {
        self.sources.contains(name) || self.processors.contains(name)
    }

    /// `` `a`, `b` `` or `none`, for messages.
    fn list(&self) -> String {
        let all: Vec<String> = self
            .sources
            .iter()
            .chain(&self.processors)
            .map(|k| format!("`{k}`"))
            .collect();
        if all.is_empty() {
            "none".into()
        } else {
            all.join(", ")
        }
    }
}

/// Checks `config` against what the file declared.
pub(crate) fn validate(report: &mut Report<'_>, config: &Config, declared: &Declared) {
    // Only judge the graph's signals when every component was understood.
    let understood = !config.sources.is_empty()
        && config.sources.len() == declared.sources.len()
        && config.processors.len() == declared.processors.len();
    for (name, exporter) in &config.exporters {
        let at = KeyPath::dotted("exporters").key(name.clone());
        check_exporter_inputs(report, &at, exporter, declared);
        check_signals_accepted(report, &at, exporter);
        let inputs = exporter.common.inputs.iter().flatten();
        if understood && !reaches_undeclared(config, inputs, declared) {
            check_signal_flow(report, &at, exporter, config);
        }
        report.problems(&at, exporter.kind.problems());
        report.problems(&at, exporter.common.problems());
    }
    let cyclic = cycles(config);
    for (name, processor) in &config.processors {
        let at = KeyPath::dotted("processors").key(name.clone());
        if declared.sources.contains(name) {
            // The graph is keyed by name: a batch from the source would be taken for the
            // processor's output, and an `inputs` entry could mean either.
            report.error(
                &at,
                format!("`{name}` is also the name of a source: give the processor another name"),
            );
        }
        check_processor_inputs(report, &at, name, processor, declared, &cyclic);
        if understood
            && !cyclic.contains(name)
            && !reaches_undeclared(config, &processor.inputs, declared)
        {
            check_processor_signals(report, &at, processor, config);
        }
        check_output_taken(report, &at, name, config);
        report.problems(&at, processor.kind.problems());
    }
    for (name, source) in &config.sources {
        let at = KeyPath::dotted("sources").key(name.clone());
        report.problems(&at, source.problems());
    }
}

/// Every entry of an exporter's `inputs` names a declared source or processor, and the list is
/// not empty.
fn check_exporter_inputs(
    report: &mut Report<'_>,
    at: &KeyPath,
    exporter: &ExporterConfig,
    declared: &Declared,
) {
    let Some(inputs) = &exporter.common.inputs else {
        return;
    };
    for (i, input) in inputs.iter().enumerate() {
        if !declared.has(input) {
            report.error(
                &at.clone().key("inputs").index(i),
                format!(
                    "`{input}` names no source or processor (declared: {})",
                    declared.list()
                ),
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

/// A processor's `inputs`: not empty, each a declared source or another processor, none in a
/// cycle.
fn check_processor_inputs(
    report: &mut Report<'_>,
    at: &KeyPath,
    name: &str,
    processor: &ProcessorConfig,
    declared: &Declared,
    cyclic: &BTreeSet<String>,
) {
    if processor.inputs.is_empty() {
        report.error(
            &at.clone().key("inputs"),
            "`inputs` is empty: the processor would receive nothing",
        );
    }
    for (i, input) in processor.inputs.iter().enumerate() {
        let here = at.clone().key("inputs").index(i);
        if input == name {
            report.error(&here, format!("`{input}` is this processor itself"));
        } else if !declared.has(input) {
            report.error(
                &here,
                format!(
                    "`{input}` names no source or processor (declared: {})",
                    declared.list()
                ),
            );
        } else if cyclic.contains(name) && cyclic.contains(input) {
            report.error(
                &here,
                format!("`{input}` closes a cycle: processors must not feed themselves"),
            );
        }
    }
}

/// Whether `inputs`, or the inputs of the processors they name (transitively), name something
/// not declared. Such an input is reported where it is written; what reaches the component
/// through it is unknown, so its signals are not judged (one typo, one error).
fn reaches_undeclared<'a>(
    config: &'a Config,
    inputs: impl IntoIterator<Item = &'a String>,
    declared: &Declared,
) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = inputs.into_iter().map(String::as_str).collect();
    while let Some(n) = todo.pop() {
        if !seen.insert(n) {
            continue;
        }
        if !declared.has(n) {
            return true;
        }
        if let Some(p) = config.processors.get(n) {
            todo.extend(p.inputs.iter().map(String::as_str));
        }
    }
    false
}

/// The processors that are part of a cycle (self-loops included).
fn cycles(config: &Config) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for start in config.processors.keys() {
        // Is `start` reachable from itself through processor inputs?
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = config.processors[start]
            .inputs
            .iter()
            .map(String::as_str)
            .collect();
        while let Some(n) = todo.pop() {
            if n == start {
                out.insert(start.clone());
                break;
            }
            if !seen.insert(n) {
                continue;
            }
            if let Some(p) = config.processors.get(n) {
                todo.extend(p.inputs.iter().map(String::as_str));
            }
        }
    }
    out
}

/// At least one signal a processor acts on reaches it.
fn check_processor_signals(
    report: &mut Report<'_>,
    at: &KeyPath,
    processor: &ProcessorConfig,
    config: &Config,
) {
    let produced: BTreeSet<Signal> = processor
        .inputs
        .iter()
        .flat_map(|i| config.produces(i))
        .collect();
    let acts_on = processor.kind.signals();
    if acts_on.is_empty() || acts_on.iter().any(|s| produced.contains(s)) {
        return;
    }
    report.error(
        at,
        format!(
            "no signal it acts on reaches it: its inputs produce [{}], a `{}` processor acts on [{}]",
            names(produced.iter()),
            processor.kind.type_name(),
            names(acts_on.iter())
        ),
    );
}

/// What a processor passes on goes somewhere.
fn check_output_taken(report: &mut Report<'_>, at: &KeyPath, name: &str, config: &Config) {
    let by_exporter = config.exporters.values().any(|e| {
        e.common
            .inputs
            .as_ref()
            .is_some_and(|i| i.iter().any(|x| x == name))
    });
    let by_processor = config
        .processors
        .iter()
        .any(|(other, p)| other != name && p.inputs.iter().any(|x| x == name));
    if !by_exporter && !by_processor {
        report.error(
            at,
            format!(
                "its output goes nowhere: name `{name}` in the `inputs` of an exporter or processor"
            ),
        );
    }
}

fn names<'a>(signals: impl Iterator<Item = &'a Signal>) -> String {
    signals.map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
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
    let produced: BTreeSet<Signal> = match &common.inputs {
        Some(inputs) => inputs.iter().flat_map(|i| config.produces(i)).collect(),
        None => config
            .sources
            .values()
            .flat_map(|s| s.signals().iter().copied())
            .collect(),
    };
    let taken = |s: &Signal| common.signals.as_ref().is_none_or(|sig| sig.contains(s));
    let receives = produced.iter().filter(|s| accepts.contains(s)).any(taken);
    if receives {
        return;
    }
    let takes: Vec<&Signal> = common
        .signals
        .as_deref()
        .unwrap_or(accepts)
        .iter()
        .filter(|s| accepts.contains(s))
        .collect();
    report.error(
        at,
        format!(
            "receives no signal it can take: its inputs produce [{}], it takes [{}]",
            names(produced.iter()),
            names(takes.into_iter())
        ),
    );
}
