//! The processor graph's validation: a cycle, an input naming nothing, a processor fed by itself,
//! a processor no signal it acts on reaches, an output going nowhere, and a problem found late
//! inside a condition string (the agent's OTTL parser reports through `load_str_checked`) — each
//! error asserted with its key path and line:column.

use sonde_config::*;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_str_with_env(text, "test.toml", |_| None)
}

/// The errors of a failing load, in the order shown.
#[track_caller]
fn errors(text: &str) -> Vec<ConfigError> {
    match load(text) {
        Ok(_) => panic!("the config should be refused:\n{text}"),
        Err(e) => e.errors,
    }
}

#[track_caller]
fn one_error(text: &str) -> ConfigError {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected exactly one error, got: {errs:#?}");
    errs[0].clone()
}

#[track_caller]
fn check(e: &ConfigError, path: &str, line: usize, column: usize, says: &str) {
    assert_eq!(e.path, path, "{e}");
    assert_eq!((e.line, e.column), (Some(line), Some(column)), "{e}");
    assert!(e.message.contains(says), "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains(path) && shown.contains(&format!("{line}:{column}")),
        "the message shows the key path and line:column: {shown}"
    );
}

const HEAD: &str = "[sources.otlp]\ntype = \"otlp\"\n";

#[test]
fn a_valid_chain_of_processors_loads() {
    let text = format!(
        "{HEAD}\
         [processors.res]\ntype = \"resource\"\ninputs = [\"otlp\"]\nset = {{ env = \"prod\" }}\n\
         [processors.keep]\ntype = \"filter\"\ninputs = [\"res\"]\nspans = ['name == \"x\"']\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"keep\"]\n"
    );
    let c = match load(&text) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.processors["keep"].inputs, vec!["res".to_string()]);
}

#[test]
fn a_cycle_between_two_processors_is_reported_at_each_closing_input() {
    // Lines: 3 [processors.a], 5 inputs of a; 7 [processors.b], 9 inputs of b.
    let text = format!(
        "{HEAD}\
         [processors.a]\ntype = \"filter\"\ninputs = [\"otlp\", \"b\"]\nspans = ['name == \"x\"']\n\
         [processors.b]\ntype = \"filter\"\ninputs = [\"a\"]\nspans = ['name == \"y\"']\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"b\"]\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    check(
        &errs[0],
        "processors.a.inputs[1]",
        5,
        19,
        "`b` closes a cycle",
    );
    check(
        &errs[1],
        "processors.b.inputs[0]",
        9,
        11,
        "`a` closes a cycle",
    );
}

#[test]
fn a_processor_naming_itself_is_reported_at_the_entry() {
    let text = format!(
        "{HEAD}\
         [processors.a]\ntype = \"sample\"\ninputs = [\"otlp\", \"a\"]\npercentage = 10.0\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"a\"]\n"
    );
    check(
        &one_error(&text),
        "processors.a.inputs[1]",
        5,
        19,
        "`a` is this processor itself",
    );
}

/// One typo, one error: the processor's and the exporter's signals are not judged through an
/// input that names nothing (they used to add "its inputs produce []" at both).
#[test]
fn an_input_naming_nothing_is_reported_with_what_is_declared() {
    let text = format!(
        "{HEAD}\
         [processors.a]\ntype = \"redact\"\ninputs = [\"otpl\"]\npatterns = [\"email\"]\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"a\"]\n"
    );
    let e = one_error(&text);
    check(
        &e,
        "processors.a.inputs[0]",
        5,
        11,
        "`otpl` names no source or processor",
    );
    assert!(e.message.contains("`otlp`"), "{e}");
}

#[test]
fn an_input_naming_nothing_two_processors_up_is_reported_once() {
    let text = format!(
        "{HEAD}\
         [processors.a]\ntype = \"sample\"\ninputs = [\"otpl\"]\npercentage = 5.0\n\
         [processors.b]\ntype = \"filter\"\ninputs = [\"a\"]\nspans = ['name == \"x\"']\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"b\"]\n"
    );
    check(
        &one_error(&text),
        "processors.a.inputs[0]",
        5,
        11,
        "`otpl` names no source or processor",
    );
}

#[test]
fn a_processor_no_signal_it_acts_on_reaches_is_reported() {
    // host_metrics produces metrics only; a span filter acts on traces only.
    let text = "[sources.host]\ntype = \"host_metrics\"\n\
                [processors.spans]\ntype = \"filter\"\ninputs = [\"host\"]\nspans = ['name == \"x\"']\n\
                [exporters.out]\ntype = \"stdout\"\ninputs = [\"spans\"]\n";
    let e = one_error(text);
    check(
        &e,
        "processors.spans",
        3,
        13,
        "no signal it acts on reaches it",
    );
    assert!(
        e.message.contains("[metrics]") && e.message.contains("[traces]"),
        "{e}"
    );
}

#[test]
fn a_processor_whose_output_goes_nowhere_is_reported() {
    let text = format!(
        "{HEAD}\
         [processors.lost]\ntype = \"sample\"\ninputs = [\"otlp\"]\npercentage = 10.0\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"otlp\"]\n"
    );
    check(
        &one_error(&text),
        "processors.lost",
        3,
        13,
        "its output goes nowhere",
    );
}

#[test]
fn an_empty_inputs_list_is_reported() {
    let text = format!(
        "{HEAD}\
         [processors.a]\ntype = \"sample\"\ninputs = []\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"a\"]\n"
    );
    let errs = errors(&text);
    assert!(
        errs.iter().any(|e| e.path == "processors.a.inputs"
            && e.line == Some(5)
            && e.message.contains("`inputs` is empty")),
        "{errs:#?}"
    );
}

/// The problem a condition parser would report for a condition: `within` the string.
fn late(list: &'static str, within: (usize, usize)) -> impl Fn(&Config) -> Vec<LateProblem> {
    move |c: &Config| {
        c.processors
            .keys()
            .map(|name| LateProblem {
                path: KeyPath::dotted("processors")
                    .key(name.clone())
                    .key(list)
                    .index(0),
                within: Some(within),
                message: "invalid OTTL condition: expected a value, found end of input".into(),
            })
            .collect()
    }
}

#[test]
fn a_bad_condition_is_placed_inside_its_string() {
    // Line 6: `spans = ['name == "x" and']`; the string's text starts at column 11.
    let text = format!(
        "{HEAD}\
         [processors.f]\ntype = \"filter\"\ninputs = [\"otlp\"]\nspans = ['name == \"x\" and']\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"f\"]\n"
    );
    let errs = match load_str_checked(&text, "test.toml", &late("spans", (1, 15))) {
        Ok(_) => panic!("refused by the late check"),
        Err(e) => e.errors,
    };
    assert_eq!(errs.len(), 1, "{errs:#?}");
    check(
        &errs[0],
        "processors.f.spans[0]",
        6,
        25,
        "invalid OTTL condition",
    );
}

#[test]
fn a_bad_condition_on_the_second_line_of_a_multi_line_string_is_placed_on_its_line() {
    // Lines 6-8: log_records = ['''<newline>severity_number < 9 or<newline>  body == ''']
    let text = format!(
        "{HEAD}\
         [processors.f]\ntype = \"filter\"\ninputs = [\"otlp\"]\n\
         log_records = ['''\nseverity_number < 9 or\n  body == ''']\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"f\"]\n"
    );
    let errs = match load_str_checked(&text, "test.toml", &late("log_records", (2, 11))) {
        Ok(_) => panic!("refused by the late check"),
        Err(e) => e.errors,
    };
    assert_eq!(errs.len(), 1, "{errs:#?}");
    check(
        &errs[0],
        "processors.f.log_records[0]",
        8,
        11,
        "invalid OTTL condition",
    );
}

#[test]
fn a_late_check_does_not_run_on_a_file_with_other_problems() {
    let text = format!(
        "{HEAD}\
         [processors.f]\ntype = \"filter\"\ninputs = [\"nothing\"]\nspans = ['name == \"x\" and']\n\
         [exporters.out]\ntype = \"stdout\"\ninputs = [\"f\"]\n"
    );
    let errs = match load_str_checked(&text, "test.toml", &late("spans", (1, 15))) {
        Ok(_) => panic!("refused"),
        Err(e) => e.errors,
    };
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].path, "processors.f.inputs[0]");
}
