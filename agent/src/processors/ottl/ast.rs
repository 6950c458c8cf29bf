//! The compiled form of a condition, its evaluation and its canonical printing.
//!
//! Owns [`Node`] and [`Operand`]: paths are already resolved to indexes into the condition's
//! path table, regexes are compiled, converters are checked. Evaluation must never allocate
//! (ids are hex-encoded and numbers formatted into stack buffers) and never re-resolve a path.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use regex::Regex;

use super::path::{self, Context, Field, Key, Path, Subject};
use super::value::{compare, write_quoted, CompareOp, Literal, Value};
use super::EvalError;

/// A value-producing operand.
#[derive(Debug, Clone)]
pub(super) enum Operand {
    Lit(Literal),
    /// A path, by index into the condition's path table; `hex` reads bytes as lowercase hex.
    Path {
        index: usize,
        hex: bool,
    },
    /// `Len(x)`: the length in bytes of a string or byte slice.
    Len(Box<Operand>),
    /// `TraceID(0x…)` / `SpanID(0x…)`: a byte literal of checked length, printed with its
    /// converter name.
    Id {
        converter: &'static str,
        bytes: Box<[u8]>,
    },
    /// A bool-returning converter used as a value (`IsMatch(name, "x") == false`).
    Bool(Box<Node>),
}

/// The type a type-check converter tests for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TypeKind {
    String,
    Int,
    Double,
    Bool,
    Map,
    List,
}

impl TypeKind {
    pub(super) fn converter(self) -> &'static str {
        match self {
            TypeKind::String => "IsString",
            TypeKind::Int => "IsInt",
            TypeKind::Double => "IsDouble",
            TypeKind::Bool => "IsBool",
            TypeKind::Map => "IsMap",
            TypeKind::List => "IsList",
        }
    }

    fn holds(self, v: Value<'_>) -> bool {
        matches!(
            (self, v),
            (TypeKind::String, Value::Str(_))
                | (TypeKind::Int, Value::Int(_))
                | (TypeKind::Double, Value::Double(_))
                | (TypeKind::Bool, Value::Bool(_))
                | (TypeKind::Map, Value::Map)
                | (TypeKind::List, Value::Slice)
        )
    }
}

/// A boolean-producing node.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Const(bool),
    Not(Box<Node>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Compare {
        left: Operand,
        op: CompareOp,
        right: Operand,
    },
    IsMatch {
        target: Operand,
        regex: Regex,
    },
    TypeIs {
        kind: TypeKind,
        target: Operand,
    },
    /// `IsRootSpan()`: the span's parent span id (a path index) is empty or all zero.
    IsRootSpan {
        parent: usize,
    },
    /// A path whose item answer is a bool (`HasAttrOnDatapoint` and friends).
    BoolPath {
        index: usize,
    },
}

/// Where evaluation reads path values from: an [`super::Item`] or a pre-read slice.
pub(super) trait Source {
    fn value(&self, index: usize, path: &Path) -> Value<'_>;
}

/// Room for hex ids (up to 32 bytes) and formatted numbers.
const SCRATCH: usize = 400;

impl Node {
    pub(super) fn eval<S: Source + ?Sized>(
        &self,
        paths: &[Path],
        src: &S,
    ) -> Result<bool, EvalError> {
        match self {
            Node::Const(b) => Ok(*b),
            Node::Not(inner) => Ok(!inner.eval(paths, src)?),
            Node::And(items) => {
                for n in items.iter() {
                    if !n.eval(paths, src)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Node::Or(items) => {
                for n in items.iter() {
                    if n.eval(paths, src)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Node::Compare { left, op, right } => {
                let mut lbuf = [0u8; 64];
                let mut rbuf = [0u8; 64];
                let l = left.eval(paths, src, &mut lbuf)?;
                let r = right.eval(paths, src, &mut rbuf)?;
                Ok(compare(l, r, *op))
            }
            Node::IsMatch { target, regex } => {
                let mut buf = [0u8; 64];
                let v = target.eval(paths, src, &mut buf)?;
                let mut text = [0u8; SCRATCH];
                match string_like(v, &mut text)? {
                    Some(s) => Ok(regex.is_match(s)),
                    None => Ok(false),
                }
            }
            Node::TypeIs { kind, target } => {
                let mut buf = [0u8; 64];
                Ok(kind.holds(target.eval(paths, src, &mut buf)?))
            }
            Node::IsRootSpan { parent } => match read(paths, src, *parent) {
                Value::Bytes(b) => Ok(b.iter().all(|&x| x == 0)),
                Value::Nil => Ok(true),
                other => Err(EvalError::new(
                    "IsRootSpan",
                    format!("parent_span_id is a {}", other.type_name()),
                )),
            },
            Node::BoolPath { index } => match read(paths, src, *index) {
                Value::Bool(b) => Ok(b),
                other => Err(EvalError::new(
                    "HasAttrOnDatapoint",
                    format!(
                        "the item answered a {} instead of a bool",
                        other.type_name()
                    ),
                )),
            },
        }
    }
}

fn read<'a, S: Source + ?Sized>(paths: &[Path], src: &'a S, index: usize) -> Value<'a> {
    match paths.get(index) {
        Some(p) => src.value(index, p),
        None => Value::Nil,
    }
}

/// OTTL's "string-like" conversion used by `IsMatch`: strings as they are, ints and doubles
/// in decimal, bools as `true`/`false`, bytes as lowercase hex. `None` for nil (no match).
fn string_like<'a>(v: Value<'a>, buf: &'a mut [u8; SCRATCH]) -> Result<Option<&'a str>, EvalError> {
    let formatted = |buf: &'a mut [u8; SCRATCH], args: fmt::Arguments<'_>| {
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let ok = cursor.write_fmt(args).is_ok();
        let n = usize::try_from(cursor.position()).unwrap_or(0);
        match (ok, buf.get(..n).map(std::str::from_utf8)) {
            (true, Some(Ok(s))) => Ok(Some(s)),
            _ => Err(EvalError::new(
                "IsMatch",
                "the value is too long to convert to a string",
            )),
        }
    };
    match v {
        Value::Nil => Ok(None),
        Value::Str(s) => Ok(Some(s)),
        Value::Bool(true) => Ok(Some("true")),
        Value::Bool(false) => Ok(Some("false")),
        Value::Int(i) => formatted(buf, format_args!("{i}")),
        Value::Double(d) => formatted(buf, format_args!("{d}")),
        Value::Bytes(b) => hex_into(b, buf).map(Some).ok_or_else(|| {
            EvalError::new(
                "IsMatch",
                "the byte value is too long to convert to a string",
            )
        }),
        Value::Map | Value::Slice => Err(EvalError::new(
            "IsMatch",
            format!("cannot convert a {} to a string", v.type_name()),
        )),
    }
}

/// Lowercase hex of `bytes` into `buf`, or `None` when it does not fit.
fn hex_into<'a>(bytes: &[u8], buf: &'a mut [u8]) -> Option<&'a str> {
    let out = buf.get_mut(..bytes.len() * 2)?;
    hex::encode_to_slice(bytes, out).ok()?;
    std::str::from_utf8(out).ok()
}

impl Operand {
    fn eval<'a, S: Source + ?Sized>(
        &'a self,
        paths: &'a [Path],
        src: &'a S,
        buf: &'a mut [u8; 64],
    ) -> Result<Value<'a>, EvalError> {
        match self {
            Operand::Lit(l) => Ok(l.as_value()),
            Operand::Id { bytes, .. } => Ok(Value::Bytes(bytes)),
            Operand::Bool(node) => Ok(Value::Bool(node.eval(paths, src)?)),
            Operand::Path { index, hex: false } => Ok(read(paths, src, *index)),
            Operand::Path { index, hex: true } => match read(paths, src, *index) {
                // An id longer than 32 bytes is malformed; it reads as nil.
                Value::Bytes(b) => Ok(hex_into(b, buf).map_or(Value::Nil, Value::Str)),
                other => Ok(other),
            },
            Operand::Len(inner) => {
                let mut inner_buf = [0u8; 64];
                match inner.eval(paths, src, &mut inner_buf)? {
                    Value::Str(s) => Ok(Value::Int(i64::try_from(s.len()).unwrap_or(i64::MAX))),
                    Value::Bytes(b) => Ok(Value::Int(i64::try_from(b.len()).unwrap_or(i64::MAX))),
                    other => Err(EvalError::new(
                        "Len",
                        format!("expected a string or bytes, got {}", other.type_name()),
                    )),
                }
            }
        }
    }
}

/// Prints a compiled condition back as OTTL: canonical spelling, minimal parentheses.
pub(super) struct Printer<'a> {
    pub context: Context,
    pub paths: &'a [Path],
}

impl Printer<'_> {
    pub(super) fn node(&self, f: &mut fmt::Formatter<'_>, n: &Node) -> fmt::Result {
        match n {
            Node::Const(b) => write!(f, "{b}"),
            Node::Not(inner) => {
                f.write_str("not ")?;
                match inner.as_ref() {
                    // `not` binds to a single boolean value, and only once.
                    Node::And(_) | Node::Or(_) | Node::Not(_) => self.paren(f, inner),
                    other => self.node(f, other),
                }
            }
            Node::And(items) => self.joined(f, items, " and ", |n| {
                matches!(n, Node::Or(_) | Node::And(_))
            }),
            Node::Or(items) => self.joined(f, items, " or ", |n| matches!(n, Node::Or(_))),
            Node::Compare { left, op, right } => {
                self.operand(f, left)?;
                write!(f, " {op} ")?;
                self.operand(f, right)
            }
            Node::IsMatch { target, regex } => {
                f.write_str("IsMatch(")?;
                self.operand(f, target)?;
                f.write_str(", ")?;
                write_quoted(f, regex.as_str())?;
                f.write_str(")")
            }
            Node::TypeIs { kind, target } => {
                write!(f, "{}(", kind.converter())?;
                self.operand(f, target)?;
                f.write_str(")")
            }
            Node::IsRootSpan { .. } => f.write_str("IsRootSpan()"),
            Node::BoolPath { index } => {
                let keys = self.paths.get(*index).map(|p| &p.keys[..]).unwrap_or(&[]);
                match keys {
                    [Key::Str(k)] => {
                        f.write_str("HasAttrKeyOnDatapoint(")?;
                        write_quoted(f, k)?;
                    }
                    [Key::Str(k), Key::Str(v)] => {
                        f.write_str("HasAttrOnDatapoint(")?;
                        write_quoted(f, k)?;
                        f.write_str(", ")?;
                        write_quoted(f, v)?;
                    }
                    _ => f.write_str("HasAttrKeyOnDatapoint(\"\"")?,
                }
                f.write_str(")")
            }
        }
    }

    fn paren(&self, f: &mut fmt::Formatter<'_>, n: &Node) -> fmt::Result {
        f.write_char('(')?;
        self.node(f, n)?;
        f.write_char(')')
    }

    fn joined(
        &self,
        f: &mut fmt::Formatter<'_>,
        items: &[Node],
        sep: &str,
        needs_paren: impl Fn(&Node) -> bool,
    ) -> fmt::Result {
        for (i, n) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(sep)?;
            }
            if needs_paren(n) {
                self.paren(f, n)?;
            } else {
                self.node(f, n)?;
            }
        }
        Ok(())
    }

    fn operand(&self, f: &mut fmt::Formatter<'_>, o: &Operand) -> fmt::Result {
        match o {
            Operand::Lit(l) => write!(f, "{l}"),
            Operand::Id { converter, bytes } => {
                write!(f, "{converter}({})", Literal::Bytes(bytes.clone()))
            }
            Operand::Bool(node) => self.node(f, node),
            Operand::Len(inner) => {
                f.write_str("Len(")?;
                self.operand(f, inner)?;
                f.write_str(")")
            }
            Operand::Path { index, hex } => match self.paths.get(*index) {
                Some(p) => self.path(f, p, *hex),
                None => f.write_str("nil"),
            },
        }
    }

    fn path(&self, f: &mut fmt::Formatter<'_>, p: &Path, hex: bool) -> fmt::Result {
        f.write_str(&path::spelling(self.context, p.subject, p.field, hex))?;
        for k in p.keys.iter() {
            match k {
                Key::Str(s) => {
                    f.write_char('[')?;
                    write_quoted(f, s)?;
                    f.write_char(']')?;
                }
                Key::Int(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// The path `IsRootSpan()` reads.
pub(super) fn parent_span_path() -> Path {
    Path {
        subject: Subject::Item,
        field: Field::ParentSpanId,
        keys: Box::new([]),
    }
}
