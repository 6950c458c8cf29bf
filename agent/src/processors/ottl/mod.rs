//! OTTL conditions: the boolean subset of the OpenTelemetry Transformation Language that the
//! Collector's `filter` processor accepts, parsed once and evaluated per item.
//!
//! This module owns parsing (with `line:column` errors), compilation (paths resolved for a
//! [`Context`], enums folded to ints, regexes compiled) and evaluation against an [`Item`],
//! an accessor that answers borrowed [`Value`]s, so that a view over encoded OTLP answers
//! without allocating. It knows nothing of OTLP encoding and must never allocate or
//! re-parse anything while evaluating.
//!
//! ```
//! use sonde::processors::ottl::{Condition, Context, Field, Item, Path, Value};
//!
//! struct Span<'a> { name: &'a str }
//! impl Item for Span<'_> {
//!     fn get(&self, path: &Path) -> Value<'_> {
//!         match path.field {
//!             Field::Name => Value::Str(self.name),
//!             _ => Value::Nil,
//!         }
//!     }
//! }
//!
//! let c = Condition::parse(Context::Span, r#"IsMatch(name, "^GET /health") or kind == SPAN_KIND_INTERNAL"#)?;
//! assert_eq!(c.evaluate(&Span { name: "GET /healthz" }), Ok(true));
//! # Ok::<(), sonde::processors::ottl::ParseError>(())
//! ```
//!
//! # Supported subset
//!
//! | Context (`filter` key) | Paths (each also with the context prefix, e.g. `span.name`) |
//! |---|---|
//! | span (`traces.span`) | `trace_id`, `trace_id.string`, `span_id`, `span_id.string`, `parent_span_id`, `parent_span_id.string`, `trace_state`, `trace_state["k"]`, `name`, `kind`, `flags`, `start_time_unix_nano`, `end_time_unix_nano`, `attributes`, `attributes["k"]…`, `dropped_attributes_count`, `dropped_events_count`, `dropped_links_count`, `status.code`, `status.message` |
//! | span event (`traces.spanevent`) | `name`, `time_unix_nano`, `attributes`, `attributes["k"]…`, `dropped_attributes_count`, `event_index`, and every span path as `span.<path>` |
//! | log record (`logs.log_record`) | `time_unix_nano`, `observed_time_unix_nano`, `severity_number`, `severity_text`, `body`, `body["k"]…`, `attributes`, `attributes["k"]…`, `dropped_attributes_count`, `flags`, `trace_id`, `trace_id.string`, `span_id`, `span_id.string` |
//! | metric (`metrics.metric`) | `name`, `description`, `unit`, `type`, `aggregation_temporality`, `is_monotonic` |
//! | data point (`metrics.datapoint`) | `attributes`, `attributes["k"]…`, `start_time_unix_nano`, `time_unix_nano`, `value_double`, `value_int`, `flags`, `count`, `sum`, `scale`, `zero_count`, and `metric.<path>` for every metric path |
//! | every context | `resource.attributes`, `resource.attributes["k"]…`, `resource.dropped_attributes_count`, `instrumentation_scope.name`, `instrumentation_scope.version`, `instrumentation_scope.attributes`, `instrumentation_scope.attributes["k"]…`, `instrumentation_scope.dropped_attributes_count` |
//!
//! | Construct | Supported |
//! |---|---|
//! | Literals | `"strings"` (escapes `\" \\ \n \r \t \a \b \f \v \xHH \uHHHH \UHHHHHHHH`), ints (`1`, `-1`, `+1`), floats (`1.5`, `-.5`, `1.0e3`), `true`, `false`, `nil`, bytes `0x0a1b` |
//! | Enums | `SPAN_KIND_*`, `STATUS_CODE_*` (span, span event); `SEVERITY_NUMBER_*` incl. `…2…4` (log); `METRIC_DATA_TYPE_*`, `AGGREGATION_TEMPORALITY_*` (metric, data point); `FLAG_NONE`, `FLAG_NO_RECORDED_VALUE` (data point) |
//! | Operators | `==`, `!=`, `<`, `<=`, `>`, `>=` with OTTL's comparison rules (see [`value`]); `not` (once per boolean value, binds tightest), `and`, `or` (loosest), parentheses |
//! | Converters | `IsMatch(value, "re2")` (regex compiled at parse time; ints, doubles, bools and bytes are matched in their string form; nil never matches), `IsString`, `IsInt`, `IsDouble`, `IsBool`, `IsMap`, `IsList`, `Len(value)` (bytes of a string or byte slice), `TraceID(0x…16 bytes)`, `SpanID(0x…8 bytes)`, `IsRootSpan()` (span), `HasAttrKeyOnDatapoint("k")`, `HasAttrOnDatapoint("k", "v")` (metric) |
//!
//! Not supported (refused at parse time): math expressions (`+ - * /`), lists and maps
//! literals, named arguments, indexing a converter's result, `cache`, time-typed paths
//! (`start_time`, `time`), converters other than the ones above.
//!
//! Known differences from the Collector: maps and slices are opaque markers here, so
//! comparing two maps is "not equal" and `IsMatch` on a map is an evaluation error (the
//! Collector compares contents and matches the JSON form); a `trace_id` compares equal to a
//! plain byte literal of the same bytes (the Collector requires `TraceID(0x…)`).
//!
//! # Errors during evaluation
//! `Len` of a non-string and `IsMatch` on a map or slice return an [`EvalError`], as the
//! Collector's converters do; the filter processor decides what an error means (its
//! `error_mode: ignore` treats the condition as false).

mod ast;
mod enums;
mod lexer;
mod parser;
mod path;
pub mod value;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod property_tests;

use std::fmt;

pub use parser::{CONVERTERS, MAX_DEPTH, REGEX_SIZE_LIMIT};
pub use path::{spellings as path_spellings, Context, Field, Key, Path, Subject};
pub use value::{compare, CompareOp, Literal, Value};

/// Every enum constant a context knows.
pub fn enum_names(context: Context) -> Vec<&'static str> {
    enums::names(context)
}

/// An item a condition is evaluated against: answers the value of a resolved path.
///
/// Implementations read the field the path names (see [`Field`] for the value type each
/// field answers) and return `Value::Nil` when it is absent. The returned value may borrow
/// from the item.
pub trait Item {
    /// The value at `path` in this item.
    fn get(&self, path: &Path) -> Value<'_>;
}

/// A condition that cannot be parsed, with the position of the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    /// 1-based line inside the condition string.
    pub line: u32,
    /// 1-based column (in characters) of the offending token.
    pub column: u32,
    /// What was expected, and what was found.
    pub message: String,
}

/// A converter that could not evaluate on this item (e.g. `Len` of an int).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{function}: {message}")]
pub struct EvalError {
    /// The converter that failed.
    pub function: &'static str,
    pub message: String,
}

impl EvalError {
    fn new(function: &'static str, message: impl Into<String>) -> Self {
        EvalError {
            function,
            message: message.into(),
        }
    }
}

/// A parsed, compiled condition for one context.
#[derive(Debug, Clone)]
pub struct Condition {
    context: Context,
    source: Box<str>,
    paths: Box<[Path]>,
    root: ast::Node,
}

impl Condition {
    /// Parses and compiles `source` for `context`; unknown paths, enums and converters and
    /// invalid regexes are refused here, with their position.
    pub fn parse(context: Context, source: &str) -> Result<Self, ParseError> {
        let tokens = lexer::tokenize(source)?;
        let mut parser = parser::Parser::new(&tokens, context);
        let root = parser.condition()?;
        Ok(Condition {
            context,
            source: source.into(),
            paths: parser.paths.into(),
            root,
        })
    }

    /// Evaluates against an item, reading each needed path through [`Item::get`] as
    /// evaluation reaches it (`and`/`or` short-circuit left to right).
    pub fn evaluate<I: Item + ?Sized>(&self, item: &I) -> Result<bool, EvalError> {
        struct ByItem<'a, I: ?Sized>(&'a I);
        impl<I: Item + ?Sized> ast::Source for ByItem<'_, I> {
            fn value(&self, _index: usize, path: &Path) -> Value<'_> {
                self.0.get(path)
            }
        }
        self.root.eval(&self.paths, &ByItem(item))
    }

    /// Evaluates against values read beforehand: `values[i]` is the value of `paths()[i]`
    /// (a missing entry reads as nil). Lets a caller read every needed field in one pass.
    pub fn evaluate_values(&self, values: &[Value<'_>]) -> Result<bool, EvalError> {
        struct ByIndex<'a, 'v>(&'a [Value<'v>]);
        impl ast::Source for ByIndex<'_, '_> {
            fn value(&self, index: usize, _path: &Path) -> Value<'_> {
                self.0.get(index).copied().unwrap_or(Value::Nil)
            }
        }
        self.root.eval(&self.paths, &ByIndex(values))
    }

    /// The distinct paths this condition reads, in first-use order.
    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    /// The context the condition was compiled for.
    pub fn context(&self) -> Context {
        self.context
    }

    /// The condition as the user wrote it.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Condition {
    /// The canonical OTTL form: parsing it again yields an equivalent condition.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ast::Printer {
            context: self.context,
            paths: &self.paths,
        }
        .node(f, &self.root)
    }
}
