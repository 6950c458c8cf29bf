//! Property tests: random conditions rendered as text parse and evaluate as a reference
//! evaluator says, survive printing and re-parsing, and no input makes the parser panic.

use proptest::prelude::*;

use super::conformance_tests::{Owned, TestItem};
use super::{compare, CompareOp, Condition, Context, Item, Value};

const PATHS: &[&str] = &[
    "body",
    "severity_number",
    r#"attributes["a"]"#,
    r#"attributes["b"]"#,
    "severity_text",
];
const STRINGS: &[&str] = &["", "a", "b", "ab", "é"];
const PATTERNS: &[&str] = &["a", "^b", "^$", "[0-9]", "true"];
const OPS: &[CompareOp] = &[
    CompareOp::Eq,
    CompareOp::Ne,
    CompareOp::Lt,
    CompareOp::Le,
    CompareOp::Gt,
    CompareOp::Ge,
];

#[derive(Debug, Clone)]
enum Lit {
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(&'static str),
}

impl Lit {
    fn text(&self) -> String {
        match self {
            Lit::Nil => "nil".into(),
            Lit::Bool(b) => b.to_string(),
            Lit::Int(i) => i.to_string(),
            Lit::Double(d) => format!("{d:?}"),
            Lit::Str(s) => format!("{s:?}"),
        }
    }

    fn value(&self) -> Value<'static> {
        match self {
            Lit::Nil => Value::Nil,
            Lit::Bool(b) => Value::Bool(*b),
            Lit::Int(i) => Value::Int(*i),
            Lit::Double(d) => Value::Double(*d),
            Lit::Str(s) => Value::Str(s),
        }
    }

    fn owned(&self) -> Option<Owned> {
        match self {
            Lit::Nil => None,
            Lit::Bool(b) => Some(Owned::Bool(*b)),
            Lit::Int(i) => Some(Owned::Int(*i)),
            Lit::Double(d) => Some(Owned::Double(*d)),
            Lit::Str(s) => Some(Owned::Str(s.to_string())),
        }
    }
}

#[derive(Debug, Clone)]
enum Expr {
    Const(bool),
    /// path index, operator, literal, literal on the left?
    Cmp(usize, CompareOp, Lit, bool),
    IsMatch(usize, &'static str),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// Redundant parentheses around the inner expression.
    Paren(Box<Expr>),
}

fn lit() -> impl Strategy<Value = Lit> {
    prop_oneof![
        Just(Lit::Nil),
        any::<bool>().prop_map(Lit::Bool),
        (-3i64..=3).prop_map(Lit::Int),
        prop::sample::select(vec![-2.5, -1.0, 0.0, 0.5, 1.0, 2.0]).prop_map(Lit::Double),
        prop::sample::select(STRINGS).prop_map(Lit::Str),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Expr::Const),
        (
            0..PATHS.len(),
            prop::sample::select(OPS),
            lit(),
            any::<bool>()
        )
            .prop_map(|(p, op, l, flip)| Expr::Cmp(p, op, l, flip)),
        (0..PATHS.len(), prop::sample::select(PATTERNS)).prop_map(|(p, re)| Expr::IsMatch(p, re)),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.prop_map(|e| Expr::Paren(Box::new(e))),
        ]
    })
}

/// Renders with the parentheses OTTL's precedence needs (plus the generated redundant ones).
fn render(e: &Expr) -> String {
    match e {
        Expr::Const(b) => b.to_string(),
        Expr::Cmp(p, op, l, false) => format!("{} {} {}", PATHS[*p], op, l.text()),
        Expr::Cmp(p, op, l, true) => format!("{} {} {}", l.text(), op, PATHS[*p]),
        Expr::IsMatch(p, re) => format!("IsMatch({}, {re:?})", PATHS[*p]),
        Expr::Paren(inner) => format!("({})", render(inner)),
        Expr::Not(inner) => match inner.as_ref() {
            Expr::And(_) | Expr::Or(_) | Expr::Not(_) => format!("not ({})", render(inner)),
            _ => format!("not {}", render(inner)),
        },
        Expr::And(items) => items
            .iter()
            .map(|i| match i {
                Expr::Or(_) => format!("({})", render(i)),
                _ => render(i),
            })
            .collect::<Vec<_>>()
            .join(" and "),
        Expr::Or(items) => items.iter().map(render).collect::<Vec<_>>().join(" or "),
    }
}

/// The reference: structure evaluated directly, leaves by the comparison rules.
fn reference(e: &Expr, item: &TestItem, paths: &[super::Path]) -> bool {
    let get = |p: usize| -> Value<'_> {
        match paths.get(p) {
            Some(path) => item.get(path),
            None => Value::Nil,
        }
    };
    match e {
        Expr::Const(b) => *b,
        Expr::Cmp(p, op, l, false) => compare(get(*p), l.value(), *op),
        Expr::Cmp(p, op, l, true) => compare(l.value(), get(*p), *op),
        Expr::IsMatch(p, re) => {
            let text = match get(*p) {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Double(d) => d.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return false,
            };
            regex::Regex::new(re)
                .map(|r| r.is_match(&text))
                .unwrap_or(false)
        }
        Expr::Paren(inner) => reference(inner, item, paths),
        Expr::Not(inner) => !reference(inner, item, paths),
        Expr::And(items) => items.iter().all(|i| reference(i, item, paths)),
        Expr::Or(items) => items.iter().any(|i| reference(i, item, paths)),
    }
}

fn item() -> impl Strategy<Value = Vec<Lit>> {
    prop::collection::vec(lit(), PATHS.len())
}

fn build_item(values: &[Lit]) -> TestItem {
    let mut it = TestItem::new(Context::Log);
    for (path, v) in PATHS.iter().zip(values) {
        if let Some(o) = v.owned() {
            it = it.set(path, o);
        }
    }
    it
}

/// The resolved form of each of `PATHS`, in order.
fn resolved_paths() -> Vec<super::Path> {
    PATHS
        .iter()
        .filter_map(|p| Condition::parse(Context::Log, &format!("{p} == nil")).ok())
        .filter_map(|c| c.paths().first().cloned())
        .collect()
}

const TOKENS: &[&str] = &[
    "name",
    "body",
    "attributes",
    "[",
    "]",
    "\"k\"",
    "(",
    ")",
    "==",
    "!=",
    "<",
    ">=",
    "and",
    "or",
    "not",
    "true",
    "nil",
    "1",
    "-2",
    ".5",
    "0x0a",
    "IsMatch",
    "Len",
    ",",
    ".",
    "SEVERITY_NUMBER_WARN",
    "resource",
    "\n",
    "\"",
    "\\",
    "=",
    "!",
    "é",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rendered_conditions_evaluate_as_the_reference(e in expr(), values in item()) {
        let src = render(&e);
        let c = Condition::parse(Context::Log, &src);
        prop_assert!(c.is_ok(), "`{}` failed: {:?}", src, c.err());
        let Ok(c) = c else { return Ok(()) };
        let it = build_item(&values);
        let paths = resolved_paths();
        let want = reference(&e, &it, &paths);
        prop_assert_eq!(c.evaluate(&it), Ok(want), "`{}`", src);

        // The canonical print parses back to a condition that agrees.
        let printed = c.to_string();
        let again = Condition::parse(Context::Log, &printed);
        prop_assert!(again.is_ok(), "reprint `{}` of `{}` failed: {:?}", printed, src, again.err());
        let Ok(again) = again else { return Ok(()) };
        prop_assert_eq!(again.evaluate(&it), Ok(want), "reprint `{}`", printed);
        prop_assert_eq!(again.to_string(), printed);
    }

    #[test]
    fn arbitrary_text_never_panics_and_errors_point_inside(src in any::<String>()) {
        check_no_panic(&src)?;
    }

    #[test]
    fn token_soup_never_panics_and_errors_point_inside(
        toks in prop::collection::vec(prop::sample::select(TOKENS), 0..24)
    ) {
        check_no_panic(&toks.join(" "))?;
    }
}

fn check_no_panic(src: &str) -> Result<(), TestCaseError> {
    for context in [
        Context::Span,
        Context::SpanEvent,
        Context::Log,
        Context::Metric,
        Context::DataPoint,
    ] {
        match Condition::parse(context, src) {
            Ok(c) => {
                let _ = c.evaluate(&TestItem::new(context));
                let printed = c.to_string();
                prop_assert!(
                    Condition::parse(context, &printed).is_ok(),
                    "reprint `{}`",
                    printed
                );
            }
            Err(e) => {
                let lines = src.split('\n').count() as u32;
                prop_assert!(
                    e.line >= 1 && e.line <= lines,
                    "line {} of {}",
                    e.line,
                    lines
                );
                let line_len = src
                    .split('\n')
                    .nth(e.line as usize - 1)
                    .map_or(0, |l| l.chars().count());
                prop_assert!(
                    e.column >= 1 && e.column as usize <= line_len + 1,
                    "{} in `{}`",
                    e,
                    src
                );
            }
        }
    }
    Ok(())
}
