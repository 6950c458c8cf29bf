//! Conditions from the Collector's filter processor README and the OTTL language docs,
//! evaluated on hand-built items; every parse error with its position; precedence.

use std::collections::HashMap;

use super::{Condition, Context, EvalError, Item, ParseError, Path, Value};

/// An owned value for a test item.
#[derive(Debug, Clone)]
pub(super) enum Owned {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    Map,
    Slice,
}

/// A test item: values keyed by resolved path, built from path spellings.
#[derive(Debug, Clone)]
pub(super) struct TestItem {
    context: Context,
    values: HashMap<Path, Owned>,
}

impl TestItem {
    pub(super) fn new(context: Context) -> Self {
        TestItem {
            context,
            values: HashMap::new(),
        }
    }

    /// Sets the value at a path written in OTTL (`attributes["k"]`, `status.code`).
    pub(super) fn set(mut self, path: &str, v: Owned) -> Self {
        let probe = match Condition::parse(self.context, &format!("{path} == nil")) {
            Ok(c) => c,
            Err(e) => panic!("test path {path}: {e}"),
        };
        let Some(p) = probe.paths().first().cloned() else {
            panic!("no path in {path}")
        };
        self.values.insert(p, v);
        self
    }

    pub(super) fn s(self, path: &str, v: &str) -> Self {
        self.set(path, Owned::Str(v.to_string()))
    }

    pub(super) fn i(self, path: &str, v: i64) -> Self {
        self.set(path, Owned::Int(v))
    }
}

impl Item for TestItem {
    fn get(&self, path: &Path) -> Value<'_> {
        match self.values.get(path) {
            None => Value::Nil,
            Some(Owned::Bool(b)) => Value::Bool(*b),
            Some(Owned::Int(i)) => Value::Int(*i),
            Some(Owned::Double(d)) => Value::Double(*d),
            Some(Owned::Str(s)) => Value::Str(s),
            Some(Owned::Bytes(b)) => Value::Bytes(b),
            Some(Owned::Map) => Value::Map,
            Some(Owned::Slice) => Value::Slice,
        }
    }
}

fn parse(context: Context, src: &str) -> Condition {
    match Condition::parse(context, src) {
        Ok(c) => c,
        Err(e) => panic!("`{src}` did not parse: {e}"),
    }
}

fn eval(context: Context, src: &str, item: &TestItem) -> Result<bool, EvalError> {
    parse(context, src).evaluate(item)
}

fn check(context: Context, src: &str, item: &TestItem, expected: bool) {
    assert_eq!(
        eval(context, src, item),
        Ok(expected),
        "`{src}` on {item:?}"
    );
}

fn parse_err(context: Context, src: &str) -> ParseError {
    match Condition::parse(context, src) {
        Ok(c) => panic!("`{src}` parsed as `{c}`"),
        Err(e) => e,
    }
}

#[test]
fn filter_processor_span_examples() {
    use Context::Span;
    let app1 = TestItem::new(Span).s(r#"attributes["container.name"]"#, "app_container_1");
    let app2 = TestItem::new(Span).s(r#"attributes["container.name"]"#, "app_container_2");
    let bare = TestItem::new(Span);
    check(
        Span,
        r#"attributes["container.name"] == "app_container_1""#,
        &app1,
        true,
    );
    check(
        Span,
        r#"attributes["container.name"] == "app_container_1""#,
        &app2,
        false,
    );
    check(
        Span,
        r#"attributes["container.name"] == "app_container_1""#,
        &bare,
        false,
    );

    let local = TestItem::new(Span).s(r#"resource.attributes["host.name"]"#, "localhost");
    check(
        Span,
        r#"resource.attributes["host.name"] == "localhost""#,
        &local,
        true,
    );
    check(
        Span,
        r#"resource.attributes["host.name"] == "localhost""#,
        &app1,
        false,
    );

    check(
        Span,
        r#"name == "app_3""#,
        &TestItem::new(Span).s("name", "app_3"),
        true,
    );
    check(
        Span,
        r#"name == "app_3""#,
        &TestItem::new(Span).s("name", "app_30"),
        false,
    );

    let pod = |n: &str| TestItem::new(Span).s(r#"resource.attributes["k8s.pod.name"]"#, n);
    let c = r#"IsMatch(resource.attributes["k8s.pod.name"], "my-pod-name.*")"#;
    check(Span, c, &pod("my-pod-name-7f9c"), true);
    check(Span, c, &pod("your-my-pod-name"), true); // unanchored, as RE2's MatchString
    check(Span, c, &pod("other"), false);
    check(Span, c, &bare, false); // nil never matches
    check(Span, &format!("not {c}"), &pod("other"), true);

    // "Dropping non-HTTP spans"
    let c = r#"attributes["http.request.method"] == nil"#;
    check(Span, c, &bare, true);
    check(
        Span,
        c,
        &TestItem::new(Span).s(r#"attributes["http.request.method"]"#, "GET"),
        false,
    );

    let err = TestItem::new(Span).i("status.code", 2).i("kind", 2);
    check(Span, "status.code == STATUS_CODE_ERROR", &err, true);
    check(
        Span,
        "status.code != STATUS_CODE_OK and kind == SPAN_KIND_SERVER",
        &err,
        true,
    );
    check(
        Span,
        "kind == SPAN_KIND_CLIENT or kind == SPAN_KIND_CONSUMER",
        &err,
        false,
    );
    check(Span, "span.kind >= SPAN_KIND_SERVER", &err, true);

    // LANGUAGE.md boolean examples
    let http = TestItem::new(Span).s("name", "http_get").i("kind", 2);
    check(Span, "not true", &http, false);
    check(Span, r#"not name == "foo""#, &http, true);
    check(
        Span,
        r#"not (IsMatch(name, "http_.*") and kind > 0)"#,
        &http,
        false,
    );
    check(
        Span,
        r#"not (IsMatch(name, "http_.*") and kind > 0)"#,
        &bare,
        true,
    );
    check(Span, "1 < 2", &bare, true);
    check(Span, r#"attributes["custom-attr"] != nil"#, &bare, false);

    // ids
    let ids = TestItem::new(Span)
        .set("trace_id", Owned::Bytes((1..=16).collect()))
        .set("parent_span_id", Owned::Bytes(vec![0; 8]));
    check(
        Span,
        r#"trace_id.string == "0102030405060708090a0b0c0d0e0f10""#,
        &ids,
        true,
    );
    check(
        Span,
        "trace_id == TraceID(0x0102030405060708090a0b0c0d0e0f10)",
        &ids,
        true,
    );
    check(
        Span,
        "trace_id == TraceID(0x0102030405060708090a0b0c0d0e0f11)",
        &ids,
        false,
    );
    check(Span, "IsRootSpan()", &ids, true);
    check(
        Span,
        "IsRootSpan()",
        &TestItem::new(Span).set("parent_span_id", Owned::Bytes(vec![1; 8])),
        false,
    );
    check(Span, "IsRootSpan()", &bare, true);
    check(
        Span,
        r#"span_id.string == """#,
        &TestItem::new(Span).set("span_id", Owned::Bytes(vec![])),
        true,
    );

    let ts = TestItem::new(Span).s(r#"trace_state["ot"]"#, "th:8");
    check(Span, r#"trace_state["ot"] == "th:8""#, &ts, true);
}

#[test]
fn filter_processor_span_event_examples() {
    use Context::SpanEvent;
    let grpc = TestItem::new(SpanEvent)
        .set(r#"attributes["grpc"]"#, Owned::Bool(true))
        .s("name", "grpc.call");
    check(SpanEvent, r#"attributes["grpc"] == true"#, &grpc, true);
    check(SpanEvent, r#"IsMatch(name, ".*grpc.*")"#, &grpc, true);
    check(SpanEvent, r#"attributes["grpc"] == "true""#, &grpc, false); // bool vs string
    let ev = TestItem::new(SpanEvent)
        .s("span.name", "checkout")
        .s("name", "exception");
    check(
        SpanEvent,
        r#"span.name == "checkout" and name == "exception""#,
        &ev,
        true,
    );
    check(SpanEvent, r#"spanevent.name == "exception""#, &ev, true);
}

#[test]
fn filter_processor_metric_and_datapoint_examples() {
    use Context::{DataPoint, Metric};
    let m = TestItem::new(Metric)
        .s("name", "my.metric")
        .s(r#"resource.attributes["my_label"]"#, "abc123")
        .i("type", 3);
    check(
        Metric,
        r#"name == "my.metric" and resource.attributes["my_label"] == "abc123""#,
        &m,
        true,
    );
    check(Metric, "type == METRIC_DATA_TYPE_HISTOGRAM", &m, true);
    check(Metric, "type == METRIC_DATA_TYPE_NONE", &m, false);
    check(
        Metric,
        "type == METRIC_DATA_TYPE_NONE",
        &TestItem::new(Metric).i("type", 0),
        true,
    );
    let has = TestItem::new(Metric)
        .set(r#"HasAttrKeyOnDatapoint("http.method")"#, Owned::Bool(true))
        .set(
            r#"HasAttrOnDatapoint("http.method", "GET")"#,
            Owned::Bool(false),
        );
    check(
        Metric,
        r#"HasAttrKeyOnDatapoint("http.method")"#,
        &has,
        true,
    );
    check(
        Metric,
        r#"HasAttrOnDatapoint("http.method", "GET")"#,
        &has,
        false,
    );

    let dp = TestItem::new(DataPoint)
        .s("metric.name", "k8s.pod.phase")
        .i("value_int", 4)
        .i("metric.type", 5)
        .s(r#"resource.attributes["service.name"]"#, "my_service_name");
    check(
        DataPoint,
        r#"metric.name == "k8s.pod.phase" and value_int == 4"#,
        &dp,
        true,
    );
    check(
        DataPoint,
        r#"metric.name == "k8s.pod.phase" and value_int == 4.0"#,
        &dp,
        true,
    );
    check(
        DataPoint,
        r#"metric.name == "k8s.pod.phase" and value_int == 3"#,
        &dp,
        false,
    );
    check(
        DataPoint,
        "metric.type == METRIC_DATA_TYPE_SUMMARY",
        &dp,
        true,
    );
    check(
        DataPoint,
        r#"resource.attributes["service.name"] == "my_service_name""#,
        &dp,
        true,
    );
    let dbl = TestItem::new(DataPoint).set("value_double", Owned::Double(0.5));
    check(
        DataPoint,
        "value_double > 0 and value_double < 1",
        &dbl,
        true,
    );
}

#[test]
fn filter_processor_log_examples() {
    use Context::Log;
    let pw = TestItem::new(Log)
        .s("body", "user password=hunter2")
        .i("severity_number", 9);
    check(Log, r#"IsMatch(body, ".*password.*")"#, &pw, true);
    check(Log, "severity_number < SEVERITY_NUMBER_WARN", &pw, true);
    check(
        Log,
        "severity_number < SEVERITY_NUMBER_WARN",
        &TestItem::new(Log).i("severity_number", 13),
        false,
    );
    check(Log, "severity_number >= SEVERITY_NUMBER_INFO2", &pw, false);
    let c =
        "severity_number != SEVERITY_NUMBER_UNSPECIFIED and severity_number < SEVERITY_NUMBER_WARN";
    check(Log, c, &TestItem::new(Log).i("severity_number", 0), false);
    check(Log, c, &pw, true);
    check(
        Log,
        r#"severity_text == "DEBUG""#,
        &TestItem::new(Log).s("severity_text", "DEBUG"),
        true,
    );
    check(
        Log,
        r#"log.body == "x""#,
        &TestItem::new(Log).s("body", "x"),
        true,
    );
    // IsMatch on non-string bodies uses their string form
    check(
        Log,
        r#"IsMatch(body, "^4\\d\\d$")"#,
        &TestItem::new(Log).i("body", 404),
        true,
    );
    check(
        Log,
        r#"IsMatch(body, "^0\\.5$")"#,
        &TestItem::new(Log).set("body", Owned::Double(0.5)),
        true,
    );
    check(
        Log,
        r#"IsMatch(body, "^true$")"#,
        &TestItem::new(Log).set("body", Owned::Bool(true)),
        true,
    );
    check(
        Log,
        r#"IsMatch(body, "^00ff$")"#,
        &TestItem::new(Log).set("body", Owned::Bytes(vec![0, 255])),
        true,
    );
    check(
        Log,
        r#"IsMatch(body["msg"], "boom")"#,
        &TestItem::new(Log).s(r#"body["msg"]"#, "boom!"),
        true,
    );
    check(
        Log,
        r#"IsMap(body)"#,
        &TestItem::new(Log).set("body", Owned::Map),
        true,
    );
    check(
        Log,
        r#"IsList(attributes["tags"])"#,
        &TestItem::new(Log).set(r#"attributes["tags"]"#, Owned::Slice),
        true,
    );
    check(Log, r#"IsString(body) and not IsInt(body)"#, &pw, true);
    check(
        Log,
        r#"IsDouble(attributes["x"]) or IsBool(attributes["x"])"#,
        &TestItem::new(Log),
        false,
    );
    check(Log, "Len(body) > 10", &pw, true);
    check(
        Log,
        r#"Len(body) == 2"#,
        &TestItem::new(Log).s("body", "é"),
        true,
    ); // bytes, as Go's len
    check(
        Log,
        r#"IsMatch(attributes["a"], "x") == false"#,
        &TestItem::new(Log).s(r#"attributes["a"]"#, "y"),
        true,
    );
}

#[test]
fn evaluation_errors_surface_and_short_circuit_hides_them() {
    use Context::Log;
    let item = TestItem::new(Log)
        .i(r#"attributes["n"]"#, 5)
        .set("body", Owned::Map);
    assert!(eval(Log, r#"Len(attributes["n"]) > 1"#, &item).is_err());
    assert_eq!(
        eval(Log, r#"true or Len(attributes["n"]) > 1"#, &item),
        Ok(true)
    );
    assert_eq!(
        eval(Log, r#"false and Len(attributes["n"]) > 1"#, &item),
        Ok(false)
    );
    assert!(eval(Log, r#"Len(attributes["n"]) > 1 or true"#, &item).is_err());
    let e = eval(Log, r#"IsMatch(body, "x")"#, &item);
    assert_eq!(e.map_err(|e| e.function), Err("IsMatch"));
}

#[test]
fn precedence_not_binds_tightest_then_and_then_or() {
    use Context::Span;
    let it = TestItem::new(Span);
    check(Span, "true or false and false", &it, true); // true or (false and false)
    check(Span, "false and false or true", &it, true); // (false and false) or true
    check(Span, "(true or false) and false", &it, false);
    check(Span, "not true and false", &it, false); // (not true) and false
    check(Span, "not (true and false)", &it, true);
    check(Span, "not false or false", &it, true); // (not false) or false
    check(Span, "not (false or true)", &it, false);
    check(Span, "false or false or true and true", &it, true);
    check(Span, "((true))", &it, true);
    let printed = |s: &str| parse(Span, s).to_string();
    assert_eq!(
        printed("true or false and false"),
        "true or false and false"
    );
    assert_eq!(
        printed("(true or false) and false"),
        "(true or false) and false"
    );
    assert_eq!(printed("not (true and false)"), "not (true and false)");
    assert_eq!(printed("((name == \"a\"))"), "name == \"a\"");
    assert_eq!(
        printed("true or (false or true)"),
        "true or (false or true)"
    );
    assert_eq!(
        printed("span.status.code == STATUS_CODE_ERROR"),
        "status.code == 2"
    );
}

#[test]
fn paths_are_deduplicated_in_first_use_order_and_values_can_be_pre_read() {
    use super::{Field, Subject};
    let c = parse(
        Context::Span,
        r#"name == "a" or resource.attributes["k"] == "v" or name == "b" or IsMatch(name, "c")"#,
    );
    let fields: Vec<(Subject, Field)> = c.paths().iter().map(|p| (p.subject, p.field)).collect();
    assert_eq!(
        fields,
        vec![
            (Subject::Item, Field::Name),
            (Subject::Resource, Field::Attributes)
        ]
    );
    assert_eq!(c.evaluate_values(&[Value::Str("b"), Value::Nil]), Ok(true));
    assert_eq!(
        c.evaluate_values(&[Value::Str("zzz"), Value::Str("v")]),
        Ok(true)
    );
    assert_eq!(
        c.evaluate_values(&[Value::Str("zzz"), Value::Str("w")]),
        Ok(false)
    );
    assert_eq!(c.evaluate_values(&[]), Ok(false));
}

#[test]
fn parse_errors_carry_position_and_expectation() {
    use Context::{DataPoint, Log, Metric, Span, SpanEvent};
    let cases: &[(Context, &str, u32, u32, &str)] = &[
        (Span, "", 1, 1, "expected a condition, found end of input"),
        (Span, "   ", 1, 4, "expected a condition"),
        (
            Span,
            "name ==",
            1,
            8,
            "expected a value after `==`, found end of input",
        ),
        (Span, "name == and", 1, 9, "expected a value after `==`"),
        (Span, "== 1", 1, 1, "expected a comparison"),
        (Span, "name", 1, 5, "expected a comparison operator"),
        (Span, "name \"x\"", 1, 6, "expected a comparison operator"),
        (
            Span,
            "name == \"a\" \"b\"",
            1,
            13,
            "expected `and`, `or` or end of input, found a string",
        ),
        (
            Span,
            "name == 1 == 2",
            1,
            11,
            "expected `and`, `or` or end of input, found `==`",
        ),
        (
            Span,
            "(name == \"a\"",
            1,
            13,
            "expected `)` to close the `(` at 1:1",
        ),
        (
            Span,
            "name == \"a\")",
            1,
            12,
            "expected `and`, `or` or end of input, found `)`",
        ),
        (Span, "not not true", 1, 5, "after `not`"),
        (Span, "true and", 1, 9, "expected a comparison"),
        (Span, "true or or", 1, 9, "expected a comparison"),
        (
            Span,
            "body == \"x\"",
            1,
            1,
            "unknown path `body` in the span context",
        ),
        (
            Log,
            "kind == 1",
            1,
            1,
            "unknown path `kind` in the log context",
        ),
        (
            Span,
            "resource.name == 1",
            1,
            1,
            "unknown path `resource.name`",
        ),
        (
            Span,
            "true and\n  attributes.x == 1",
            2,
            3,
            "unknown path `attributes.x`",
        ),
        (Span, "name. == 1", 1, 7, "expected a field name after `.`"),
        (Span, "name[\"k\"] == 1", 1, 5, "`name` cannot be indexed"),
        (
            Span,
            "attributes[] == 1",
            1,
            12,
            "expected a string or int key inside `[ ]`",
        ),
        (Span, "attributes[\"k\" == 1", 1, 16, "expected `]`"),
        (Span, "trace_state[0] == 1", 1, 13, "expected a string key"),
        (
            Span,
            "trace_state[\"a\"][\"b\"] == 1",
            1,
            17,
            "takes one key",
        ),
        (
            Span,
            "kind == SPAN_KIND_BOGUS",
            1,
            9,
            "unknown enum `SPAN_KIND_BOGUS` in the span context",
        ),
        (
            Log,
            "severity_number == SPAN_KIND_SERVER",
            1,
            20,
            "unknown enum",
        ),
        (Span, "Foo(name)", 1, 1, "unknown converter `Foo`"),
        (
            Span,
            "IsMatch(name)",
            1,
            1,
            "`IsMatch` expects 2 arguments (target, pattern), found 1",
        ),
        (
            Span,
            "IsMatch(name, name)",
            1,
            15,
            "expected a string literal as the `IsMatch` pattern",
        ),
        (
            Span,
            "IsMatch(name, \"(\")",
            1,
            15,
            "expected a valid RE2 regex",
        ),
        (
            Span,
            "IsMatch(name, \"a\"",
            1,
            18,
            "expected `,` or `)` in the arguments of `IsMatch`",
        ),
        (
            Span,
            "IsMatch(name,)",
            1,
            14,
            "expected an argument for `IsMatch`",
        ),
        (
            Span,
            "IsMatch(name, \"a\")[0]",
            1,
            19,
            "indexing the result of `IsMatch`",
        ),
        (Span, "Len(name)", 1, 10, "expected a comparison operator"),
        (
            Span,
            "TraceID(0x01) == trace_id",
            1,
            9,
            "expected a 16-byte literal",
        ),
        (
            Span,
            "span_id == SpanID(\"x\")",
            1,
            19,
            "expected a 8-byte literal",
        ),
        (
            Log,
            "IsRootSpan()",
            1,
            1,
            "only available in the span context",
        ),
        (Span, "IsRootSpan(name)", 1, 1, "expects 0 arguments"),
        (
            Span,
            "HasAttrKeyOnDatapoint(\"k\")",
            1,
            1,
            "only available in the metric context",
        ),
        (
            Metric,
            "HasAttrOnDatapoint(\"k\")",
            1,
            1,
            "expects 2 arguments (key, value)",
        ),
        (
            Metric,
            "HasAttrKeyOnDatapoint(name)",
            1,
            23,
            "expected a string literal",
        ),
        (
            DataPoint,
            "name == \"x\"",
            1,
            1,
            "unknown path `name` in the datapoint context",
        ),
        (
            SpanEvent,
            "span.body == 1",
            1,
            1,
            "unknown path `span.body`",
        ),
        (Span, "name = \"x\"", 1, 6, "expected `==`"),
        (Span, "name == \"x", 1, 9, "closing `\"`"),
        (Span, "name == 'x'", 1, 9, "unexpected character '\\''"),
        (
            Span,
            "name == and",
            1,
            9,
            "expected a value after `==`, found keyword `and`",
        ),
        (
            Span,
            "name == not",
            1,
            9,
            "expected a value, found keyword `not`",
        ),
    ];
    for (context, src, line, column, message) in cases {
        let e = parse_err(*context, src);
        assert_eq!((e.line, e.column), (*line, *column), "`{src}`: {e}");
        assert!(
            e.message.contains(message),
            "`{src}`: got `{}`, expected it to contain `{message}`",
            e.message
        );
    }
}

#[test]
fn nesting_deeper_than_the_limit_is_refused_not_overflowed() {
    let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    let e = parse_err(Context::Span, &deep);
    assert_eq!((e.line, e.column), (1, super::MAX_DEPTH + 1));
    let ok = format!("{}true{}", "(".repeat(60), ")".repeat(60));
    assert!(Condition::parse(Context::Span, &ok).is_ok());
    let calls = format!("{}name{} > 0", "Len(".repeat(100), ")".repeat(100));
    assert!(parse_err(Context::Span, &calls).message.contains("nested"));
}

#[test]
fn display_round_trips_every_construct() {
    let cases: &[(Context, &str)] = &[
        (
            Context::Span,
            r#"attributes["a"]["b"][0] == "x\"y" and trace_id == TraceID(0x0102030405060708090a0b0c0d0e0f10)"#,
        ),
        (
            Context::Span,
            r#"not IsMatch(trace_id.string, "^ab") or Len(name) >= -3 or kind != 2.5"#,
        ),
        (
            Context::Log,
            r#"IsString(body) and body != nil and attributes["b"] == 0xff and flags < 1.0e300"#,
        ),
        (
            Context::Metric,
            r#"HasAttrOnDatapoint("k", "v") or HasAttrKeyOnDatapoint("k")"#,
        ),
        (
            Context::SpanEvent,
            r#"span.status.code == STATUS_CODE_ERROR and not (name == "a" or false)"#,
        ),
        (
            Context::DataPoint,
            r#"metric.aggregation_temporality == AGGREGATION_TEMPORALITY_DELTA"#,
        ),
    ];
    for (context, src) in cases {
        let c = parse(*context, src);
        let printed = c.to_string();
        let again = parse(*context, &printed);
        assert_eq!(again.to_string(), printed, "from `{src}`");
        assert_eq!(again.paths(), c.paths());
    }
}

#[test]
fn compiled_conditions_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<Condition>();
    let c = parse(Context::Span, r#"IsMatch(name, "a")"#);
    let item = TestItem::new(Context::Span).s("name", "abc");
    let results: Vec<Result<bool, EvalError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| c.evaluate(&item))).collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    assert_eq!(results, vec![Ok(true), Ok(true)]);
}

/// The conditions of the Collector filter processor README (its "Basic Config", "Advanced
/// Config" and "Examples" sections, with their `span.` / `log.` / `metric.` / `datapoint.`
/// context prefixes) on items that match and items that do not; and those outside the subset,
/// refused at parse time with a position.
#[test]
fn filter_processor_readme_conditions_table() {
    use Context::*;
    let span = || TestItem::new(Span);
    let event = || TestItem::new(SpanEvent);
    let metric = || TestItem::new(Metric);
    let point = || TestItem::new(DataPoint);
    let log = || TestItem::new(Log);
    let table: Vec<(Context, &str, TestItem, bool)> = vec![
        (
            Span,
            r#"span.attributes["container.name"] == "app_container_1""#,
            span().s(r#"attributes["container.name"]"#, "app_container_1"),
            true,
        ),
        (
            Span,
            r#"span.attributes["container.name"] == "app_container_1""#,
            span(),
            false,
        ),
        (
            Span,
            r#"resource.attributes["host.name"] == "localhost""#,
            span().s(r#"resource.attributes["host.name"]"#, "localhost"),
            true,
        ),
        (
            Span,
            r#"span.name == "app_3""#,
            span().s("name", "app_3"),
            true,
        ),
        (
            Span,
            r#"span.name == "app_3""#,
            span().s("name", "app_4"),
            false,
        ),
        (
            Span,
            r#"resource.attributes["k8s.pod.name"] == "my-pod-name""#,
            span().s(r#"resource.attributes["k8s.pod.name"]"#, "my-pod-name"),
            true,
        ),
        (
            Span,
            r#"span.attributes["http.request.method"] == nil"#,
            span(),
            true,
        ),
        (
            Span,
            r#"span.attributes["http.request.method"] != nil"#,
            span().s(r#"attributes["http.request.method"]"#, "GET"),
            true,
        ),
        (
            Span,
            r#"span.attributes["http.request.method"] != nil"#,
            span(),
            false,
        ),
        (
            SpanEvent,
            r#"attributes["grpc"] == true"#,
            event().set(r#"attributes["grpc"]"#, Owned::Bool(true)),
            true,
        ),
        (
            SpanEvent,
            r#"IsMatch(name, ".*grpc.*")"#,
            event().s("name", "grpc.call"),
            true,
        ),
        (
            Metric,
            r#"metric.name == "my.metric" and resource.attributes["my_label"] == "abc123""#,
            metric()
                .s("name", "my.metric")
                .s(r#"resource.attributes["my_label"]"#, "abc123"),
            true,
        ),
        (
            Metric,
            r#"metric.name == "my.metric" and resource.attributes["my_label"] == "abc123""#,
            metric().s("name", "my.metric"),
            false,
        ),
        (
            Metric,
            "metric.type == METRIC_DATA_TYPE_HISTOGRAM",
            metric().i("type", 3),
            true,
        ),
        (
            Metric,
            "metric.type == METRIC_DATA_TYPE_NONE",
            metric().i("type", 0),
            true,
        ),
        (
            Metric,
            r#"resource.attributes["service.name"] == "my_service_name""#,
            metric().s(r#"resource.attributes["service.name"]"#, "my_service_name"),
            true,
        ),
        (
            DataPoint,
            "metric.type == METRIC_DATA_TYPE_SUMMARY",
            point().i("metric.type", 5),
            true,
        ),
        (
            DataPoint,
            r#"metric.name == "k8s.pod.phase" and datapoint.value_int == 4"#,
            point().s("metric.name", "k8s.pod.phase").i("value_int", 4),
            true,
        ),
        (
            DataPoint,
            r#"metric.name == "k8s.pod.phase" and datapoint.value_int == 4"#,
            point().s("metric.name", "k8s.pod.phase").i("value_int", 3),
            false,
        ),
        (
            Log,
            r#"IsMatch(log.body, ".*password.*")"#,
            log().s("body", "my password is hunter2"),
            true,
        ),
        (Log, r#"IsMatch(log.body, ".*password.*")"#, log(), false),
        (
            Log,
            "log.severity_number < SEVERITY_NUMBER_WARN",
            log().i("severity_number", 9),
            true,
        ),
        (
            Log,
            "log.severity_number < SEVERITY_NUMBER_WARN",
            log().i("severity_number", 13),
            false,
        ),
        (Log, r#"log.body == "test""#, log().s("body", "test"), true),
    ];
    for (context, condition, item, expected) in &table {
        check(*context, condition, item, *expected);
    }
    // Outside the subset: time arithmetic and `Duration`, the context-inference `scope.` prefix
    // (written `instrumentation_scope.` here), profiles.
    for (context, condition) in [
        (
            Span,
            r#"(span.end_time - span.start_time) < Duration("1s") and span.status.code != STATUS_CODE_ERROR"#,
        ),
        (Log, r#"scope.name == "my.scope""#),
        (Span, "profile.duration_nanos > 3000"),
    ] {
        let e = parse_err(context, condition);
        assert!(e.line >= 1 && e.column >= 1, "`{condition}`: {e}");
    }
}
