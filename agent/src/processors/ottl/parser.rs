//! The condition parser: tokens to a compiled [`Node`] tree, in one pass.
//!
//! Owns the grammar (precedence `not` > `and` > `or`, as OTTL defines it), path resolution
//! against the context, enum lookup, converter checking and regex compilation. Every
//! refusal is a [`ParseError`] at the 1-based line:column of the offending token, naming
//! what was expected. It must never panic and never recurse deeper than [`MAX_DEPTH`].
//!
//! ```text
//! condition   = or_expr EOF
//! or_expr     = and_expr { "or" and_expr }
//! and_expr    = bool_value { "and" bool_value }
//! bool_value  = [ "not" ] ( "(" or_expr ")" | value [ op value ] )   ; a lone value must be a bool
//! value       = string | int | float | bytes | "true" | "false" | "nil" | ENUM
//!             | path | Converter "(" [ value { "," value } ] ")"
//! path        = ident { "." ident } { "[" ( string | int ) "]" }
//! op          = "==" | "!=" | "<" | "<=" | ">" | ">="
//! ```

use regex::RegexBuilder;

use super::ast::{parent_span_path, Node, Operand, TypeKind};
use super::enums;
use super::lexer::{Tok, Token};
use super::path::{self, Context, Field, Key, Path, Subject};
use super::value::Literal;
use super::ParseError;

/// The deepest nesting of parentheses and converter calls a condition may use.
pub const MAX_DEPTH: u32 = 64;

/// The compiled-size limit for an `IsMatch` regex (the `regex` crate's own default, stated
/// here so that the bound is explicit).
pub const REGEX_SIZE_LIMIT: usize = 10 * (1 << 20);

/// What a value position produced.
enum Parsed {
    Operand(Operand),
    /// A bool-returning converter; usable alone or as an operand.
    Bool(Node),
}

pub(super) struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    context: Context,
    pub paths: Vec<Path>,
    depth: u32,
}

impl<'t> Parser<'t> {
    pub(super) fn new(tokens: &'t [Token], context: Context) -> Self {
        Parser {
            tokens,
            pos: 0,
            context,
            paths: Vec::new(),
            depth: 0,
        }
    }

    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn at(&self) -> (u32, u32) {
        match self.tokens.get(self.pos).or(self.tokens.last()) {
            Some(t) => (t.line, t.column),
            None => (1, 1),
        }
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn error_here(&self, message: impl Into<String>) -> ParseError {
        let (line, column) = self.at();
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }

    fn expected(&self, what: &str) -> ParseError {
        self.error_here(format!("expected {what}, found {}", self.peek().describe()))
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Lower(w) if w == word)
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!(
                "expected at most {MAX_DEPTH} nested parentheses or converter calls"
            )));
        }
        Ok(())
    }

    /// Parses a whole condition.
    pub(super) fn condition(&mut self) -> Result<Node, ParseError> {
        if *self.peek() == Tok::Eof {
            return Err(self.expected("a condition"));
        }
        let node = self.or_expr()?;
        if *self.peek() != Tok::Eof {
            return Err(self.expected("`and`, `or` or end of input"));
        }
        Ok(node)
    }

    fn or_expr(&mut self) -> Result<Node, ParseError> {
        let mut items = vec![self.and_expr()?];
        while self.is_word("or") {
            self.bump();
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Const(false))
        } else {
            Node::Or(items.into())
        })
    }

    fn and_expr(&mut self) -> Result<Node, ParseError> {
        let mut items = vec![self.bool_value()?];
        while self.is_word("and") {
            self.bump();
            items.push(self.bool_value()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Const(false))
        } else {
            Node::And(items.into())
        })
    }

    fn bool_value(&mut self) -> Result<Node, ParseError> {
        let negate = self.is_word("not");
        if negate {
            self.bump();
        }
        let node = if *self.peek() == Tok::LParen {
            let (line, column) = self.at();
            self.enter()?;
            self.bump();
            let inner = self.or_expr()?;
            if *self.peek() != Tok::RParen {
                return Err(self.expected(&format!("`)` to close the `(` at {line}:{column}")));
            }
            self.bump();
            self.depth -= 1;
            inner
        } else if self.is_word("not") {
            // OTTL allows one `not` per boolean value: `not not x` is refused as upstream does.
            return Err(
                self.expected("a comparison, `true`, `false`, a converter or `(` after `not`")
            );
        } else {
            self.comparison_or_bool()?
        };
        Ok(if negate {
            Node::Not(Box::new(node))
        } else {
            node
        })
    }

    fn comparison_or_bool(&mut self) -> Result<Node, ParseError> {
        if matches!(
            self.peek(),
            Tok::Eof | Tok::RParen | Tok::Op(_) | Tok::Comma
        ) || self.is_keyword_op()
        {
            return Err(self.expected("a comparison, `true`, `false`, a converter or `(`"));
        }
        let left = self.value()?;
        if let Tok::Op(op) = *self.peek() {
            self.bump();
            if matches!(self.peek(), Tok::Eof | Tok::RParen | Tok::Op(_)) || self.is_keyword_op() {
                return Err(self.expected(&format!("a value after `{op}`")));
            }
            let right = self.value()?;
            return Ok(Node::Compare {
                left: into_operand(left),
                op,
                right: into_operand(right),
            });
        }
        match left {
            Parsed::Bool(node) => Ok(node),
            Parsed::Operand(Operand::Lit(Literal::Bool(b))) => Ok(Node::Const(b)),
            Parsed::Operand(_) => Err(self.expected(
                "a comparison operator (==, !=, <, <=, >, >=) after this value, which is not a boolean",
            )),
        }
    }

    fn is_keyword_op(&self) -> bool {
        self.is_word("and") || self.is_word("or")
    }

    fn value(&mut self) -> Result<Parsed, ParseError> {
        let (line, column) = self.at();
        let lit = |l: Literal| Ok(Parsed::Operand(Operand::Lit(l)));
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                lit(Literal::Str(s.into()))
            }
            Tok::Int(i) => {
                self.bump();
                lit(Literal::Int(i))
            }
            Tok::Float(x) => {
                self.bump();
                lit(Literal::Double(x))
            }
            Tok::Bytes(b) => {
                self.bump();
                lit(Literal::Bytes(b.into()))
            }
            Tok::Lower(w) => match w.as_str() {
                "true" | "false" => {
                    self.bump();
                    lit(Literal::Bool(w == "true"))
                }
                "nil" => {
                    self.bump();
                    lit(Literal::Nil)
                }
                "and" | "or" | "not" => Err(self.expected("a value")),
                _ => self.path(),
            },
            Tok::Upper(name) => {
                self.bump();
                if *self.peek() == Tok::LParen {
                    self.converter(&name, line, column)
                } else {
                    match enums::lookup(self.context, &name) {
                        Some(v) => lit(Literal::Int(v)),
                        None => Err(ParseError {
                            line,
                            column,
                            message: format!(
                                "unknown enum `{name}` in the {} context; expected one of: {}",
                                self.context,
                                enums::names(self.context).join(", ")
                            ),
                        }),
                    }
                }
            }
            _ => Err(self.expected("a value (a path, a literal, an enum or a converter)")),
        }
    }

    fn path(&mut self) -> Result<Parsed, ParseError> {
        let (line, column) = self.at();
        let mut dotted = match self.bump() {
            Tok::Lower(w) => w,
            _ => {
                return Err(ParseError {
                    line,
                    column,
                    message: "expected a path".into(),
                })
            }
        };
        while *self.peek() == Tok::Dot {
            self.bump();
            match self.peek().clone() {
                Tok::Lower(w) => {
                    self.bump();
                    dotted.push('.');
                    dotted.push_str(&w);
                }
                _ => return Err(self.expected("a field name after `.`")),
            }
        }
        let Some(resolved) = path::resolve(self.context, &dotted) else {
            return Err(ParseError {
                line,
                column,
                message: format!(
                    "unknown path `{dotted}` in the {} context; expected one of: {}",
                    self.context,
                    path::spellings(self.context).join(", ")
                ),
            });
        };
        let mut keys = Vec::new();
        while *self.peek() == Tok::LBracket {
            let (kl, kc) = self.at();
            let refuse = |message: String| ParseError {
                line: kl,
                column: kc,
                message,
            };
            if !resolved.nested_keys && !resolved.one_str_key {
                return Err(refuse(format!(
                    "`{dotted}` cannot be indexed; expected an operator"
                )));
            }
            if resolved.one_str_key && !keys.is_empty() {
                return Err(refuse(format!(
                    "`{dotted}` takes one key; expected an operator"
                )));
            }
            self.bump();
            let key = match self.peek().clone() {
                Tok::Str(s) => Key::Str(s.into()),
                Tok::Int(i) if !resolved.one_str_key => Key::Int(i),
                _ => {
                    let what = if resolved.one_str_key {
                        "a string key"
                    } else {
                        "a string or int key"
                    };
                    return Err(self.expected(&format!("{what} inside `[ ]`")));
                }
            };
            self.bump();
            if *self.peek() != Tok::RBracket {
                return Err(self.expected("`]`"));
            }
            self.bump();
            keys.push(key);
        }
        let index = self.intern(Path {
            subject: resolved.subject,
            field: resolved.field,
            keys: keys.into(),
        });
        Ok(Parsed::Operand(Operand::Path {
            index,
            hex: resolved.hex,
        }))
    }

    fn intern(&mut self, p: Path) -> usize {
        match self.paths.iter().position(|q| *q == p) {
            Some(i) => i,
            None => {
                self.paths.push(p);
                self.paths.len() - 1
            }
        }
    }

    /// A converter call, `name` at `line`:`column`, the next token its `(`: its arguments,
    /// then what the converter makes of them.
    fn converter(&mut self, name: &str, line: u32, column: u32) -> Result<Parsed, ParseError> {
        let args = self.converter_args(name)?;
        if *self.peek() == Tok::LBracket {
            return Err(self.error_here(format!(
                "indexing the result of `{name}` is not supported; expected an operator"
            )));
        }
        let call = Call {
            name,
            line,
            column,
            args,
        };
        match name {
            "IsMatch" => is_match(call),
            "IsString" | "IsInt" | "IsDouble" | "IsBool" | "IsMap" | "IsList" => type_is(call),
            "Len" => {
                call.arity(1, "value")?;
                Ok(Parsed::Operand(Operand::Len(Box::new(call.only_operand()))))
            }
            "TraceID" | "SpanID" => id_literal(call),
            "IsRootSpan" => self.is_root_span(call),
            "HasAttrKeyOnDatapoint" | "HasAttrOnDatapoint" => self.has_attr_on_datapoint(call),
            _ => Err(call.error(format!(
                "unknown converter `{name}`; expected one of: {}",
                CONVERTERS.join(", ")
            ))),
        }
    }

    /// `( value, … )`: the arguments, each with the position it starts at.
    fn converter_args(&mut self, name: &str) -> Result<Vec<(Parsed, u32, u32)>, ParseError> {
        self.enter()?;
        self.bump(); // `(`
        let mut args: Vec<(Parsed, u32, u32)> = Vec::new();
        if *self.peek() != Tok::RParen {
            loop {
                let (al, ac) = self.at();
                if matches!(self.peek(), Tok::Eof | Tok::RParen | Tok::Comma) {
                    return Err(self.expected(&format!("an argument for `{name}`")));
                }
                args.push((self.value()?, al, ac));
                match self.peek() {
                    Tok::Comma => {
                        self.bump();
                    }
                    Tok::RParen => break,
                    _ => {
                        return Err(
                            self.expected(&format!("`,` or `)` in the arguments of `{name}`"))
                        )
                    }
                }
            }
        }
        self.bump(); // `)`
        self.depth -= 1;
        Ok(args)
    }

    /// `IsRootSpan()`: the span has no parent span ID (span context only).
    fn is_root_span(&mut self, call: Call<'_>) -> Result<Parsed, ParseError> {
        if self.context != Context::Span {
            return Err(call.error(format!(
                "`IsRootSpan` is only available in the span context, not {}",
                self.context
            )));
        }
        call.arity(0, "no arguments")?;
        let parent = self.intern(parent_span_path());
        Ok(Parsed::Bool(Node::IsRootSpan { parent }))
    }

    /// `HasAttrKeyOnDatapoint(key)`, `HasAttrOnDatapoint(key, value)`: some data point of the
    /// metric has the attribute (metric context only).
    fn has_attr_on_datapoint(&mut self, call: Call<'_>) -> Result<Parsed, ParseError> {
        let name = call.name;
        if self.context != Context::Metric {
            return Err(call.error(format!(
                "`{name}` is only available in the metric context, not {}",
                self.context
            )));
        }
        let n = if name == "HasAttrKeyOnDatapoint" {
            1
        } else {
            2
        };
        call.arity(n, if n == 1 { "key" } else { "key, value" })?;
        let mut keys = Vec::new();
        for (arg, al, ac) in call.args {
            match arg {
                Parsed::Operand(Operand::Lit(Literal::Str(s))) => keys.push(Key::Str(s)),
                _ => {
                    return Err(ParseError {
                        line: al,
                        column: ac,
                        message: format!("expected a string literal as an argument of `{name}`"),
                    })
                }
            }
        }
        let index = self.intern(Path {
            subject: Subject::Item,
            field: Field::AnyDatapointAttribute,
            keys: keys.into(),
        });
        Ok(Parsed::Bool(Node::BoolPath { index }))
    }
}

/// A converter call as parsed: its name, where the name is, and its arguments with where each
/// starts.
struct Call<'a> {
    name: &'a str,
    line: u32,
    column: u32,
    args: Vec<(Parsed, u32, u32)>,
}

impl Call<'_> {
    /// An error at the converter's name.
    fn error(&self, message: String) -> ParseError {
        ParseError {
            line: self.line,
            column: self.column,
            message,
        }
    }

    /// Exactly `n` arguments, or an error naming the `signature`.
    fn arity(&self, n: usize, signature: &str) -> Result<(), ParseError> {
        if self.args.len() == n {
            Ok(())
        } else {
            Err(self.error(format!(
                "`{}` expects {n} argument{} ({signature}), found {}",
                self.name,
                if n == 1 { "" } else { "s" },
                self.args.len()
            )))
        }
    }

    /// The first argument as an operand (nil when there is none).
    fn only_operand(self) -> Operand {
        self.args
            .into_iter()
            .next()
            .map_or(Operand::Lit(Literal::Nil), |a| into_operand(a.0))
    }
}

/// `IsMatch(target, pattern)`: the pattern a string literal, compiled once as an RE2 regex.
fn is_match(call: Call<'_>) -> Result<Parsed, ParseError> {
    call.arity(2, "target, pattern")?;
    let (line, column) = (call.line, call.column);
    let mut it = call.args.into_iter();
    let (target, pattern) = match (it.next(), it.next()) {
        (Some((t, _, _)), Some(p)) => (t, p),
        _ => {
            return Err(ParseError {
                line,
                column,
                message: "`IsMatch` expects 2 arguments".into(),
            })
        }
    };
    let (pl, pc) = (pattern.1, pattern.2);
    let Parsed::Operand(Operand::Lit(Literal::Str(src))) = pattern.0 else {
        return Err(ParseError {
            line: pl,
            column: pc,
            message: "expected a string literal as the `IsMatch` pattern".into(),
        });
    };
    let regex = RegexBuilder::new(&src)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| ParseError {
            line: pl,
            column: pc,
            message: format!("expected a valid RE2 regex as the `IsMatch` pattern: {e}"),
        })?;
    Ok(Parsed::Bool(Node::IsMatch {
        target: into_operand(target),
        regex,
    }))
}

/// `IsString(value)`, `IsInt`, `IsDouble`, `IsBool`, `IsMap`, `IsList`: the value's type.
fn type_is(call: Call<'_>) -> Result<Parsed, ParseError> {
    call.arity(1, "value")?;
    let kind = match call.name {
        "IsString" => TypeKind::String,
        "IsInt" => TypeKind::Int,
        "IsDouble" => TypeKind::Double,
        "IsBool" => TypeKind::Bool,
        "IsMap" => TypeKind::Map,
        _ => TypeKind::List,
    };
    let target = call.only_operand();
    Ok(Parsed::Bool(Node::TypeIs { kind, target }))
}

/// `TraceID(0x…)` (16 bytes), `SpanID(0x…)` (8 bytes): an ID literal of the right length.
fn id_literal(call: Call<'_>) -> Result<Parsed, ParseError> {
    call.arity(1, "bytes")?;
    let name = call.name;
    let want = if name == "TraceID" { 16 } else { 8 };
    let converter = if name == "TraceID" {
        "TraceID"
    } else {
        "SpanID"
    };
    let (line, column) = (call.line, call.column);
    match call.args.into_iter().next() {
        Some((Parsed::Operand(Operand::Lit(Literal::Bytes(b))), _, _)) if b.len() == want => {
            Ok(Parsed::Operand(Operand::Id {
                converter,
                bytes: b,
            }))
        }
        Some((_, al, ac)) => Err(ParseError {
            line: al,
            column: ac,
            message: format!(
                "expected a {want}-byte literal (0x + {} hex digits) for `{name}`",
                want * 2
            ),
        }),
        None => Err(ParseError {
            line,
            column,
            message: format!("`{name}` expects 1 argument"),
        }),
    }
}

/// The converters a condition may call.
pub const CONVERTERS: &[&str] = &[
    "IsMatch",
    "IsString",
    "IsInt",
    "IsDouble",
    "IsBool",
    "IsMap",
    "IsList",
    "Len",
    "TraceID",
    "SpanID",
    "IsRootSpan",
    "HasAttrKeyOnDatapoint",
    "HasAttrOnDatapoint",
];

fn into_operand(p: Parsed) -> Operand {
    match p {
        Parsed::Operand(o) => o,
        Parsed::Bool(node) => Operand::Bool(Box::new(node)),
    }
}
