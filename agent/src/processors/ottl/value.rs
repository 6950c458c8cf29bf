//! The values a condition compares and OTTL's comparison rules.
//!
//! Owns [`Value`] (borrowed, what an [`super::Item`] answers), [`Literal`] (owned, what a
//! condition carries) and [`compare`]. It must never allocate: a comparison runs once per
//! item per condition on the hot path.
//!
//! The rules follow the OTTL language definition (`pkg/ottl/LANGUAGE.md`, "Comparison
//! Rules", and the Collector's `compare.go`):
//! - `nil == nil` is true, and so are `nil <= nil` and `nil >= nil`; `nil` compared with any
//!   other value is "not equal": `!=` is true, every other operator false.
//! - Two ints compare as integers; an int and a double compare as `f64`; two doubles as `f64`
//!   (so any comparison with NaN is false except `!=`).
//! - Strings compare byte-wise (Go's string order, which is also UTF-8 code point order).
//! - Byte slices compare byte-wise with all six operators.
//! - Booleans compare with `false < true`.
//! - Any other pair of types (string vs int, bool vs int, bytes vs string, …) is "not equal".
//! - Maps and slices (which a wire-level view reports as markers without content) are "not
//!   equal" to everything, including each other: their content is never inspected.

use std::cmp::Ordering;
use std::fmt;

/// A value read from an item, borrowing from it so that a wire-level view answers without
/// allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Absent: a missing attribute, an unset optional field.
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    /// A key-value list (an attribute map, a map body). Content is not exposed.
    Map,
    /// An array value. Content is not exposed.
    Slice,
}

impl Value<'_> {
    /// The OTTL type name, used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Map => "map",
            Value::Slice => "slice",
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    /// The operator as written in OTTL.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            CompareOp::Eq => ord == Ordering::Equal,
            CompareOp::Ne => ord != Ordering::Equal,
            CompareOp::Lt => ord == Ordering::Less,
            CompareOp::Le => ord != Ordering::Greater,
            CompareOp::Gt => ord == Ordering::Greater,
            CompareOp::Ge => ord != Ordering::Less,
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares two values with OTTL's rules (see the module documentation).
pub fn compare(a: Value<'_>, b: Value<'_>, op: CompareOp) -> bool {
    use Value::*;
    match (a, b) {
        (Nil, Nil) => matches!(op, CompareOp::Eq | CompareOp::Le | CompareOp::Ge),
        (Bool(x), Bool(y)) => op.holds(x.cmp(&y)),
        (Int(x), Int(y)) => op.holds(x.cmp(&y)),
        (Int(x), Double(y)) => float_holds(op, x as f64, y),
        (Double(x), Int(y)) => float_holds(op, x, y as f64),
        (Double(x), Double(y)) => float_holds(op, x, y),
        (Str(x), Str(y)) => op.holds(x.as_bytes().cmp(y.as_bytes())),
        (Bytes(x), Bytes(y)) => op.holds(x.cmp(y)),
        _ => op == CompareOp::Ne,
    }
}

/// Go's float comparison: every ordered operator is false when a NaN is involved, `!=` true.
fn float_holds(op: CompareOp, x: f64, y: f64) -> bool {
    match op {
        CompareOp::Eq => x == y,
        CompareOp::Ne => x != y,
        CompareOp::Lt => x < y,
        CompareOp::Le => x <= y,
        CompareOp::Gt => x > y,
        CompareOp::Ge => x >= y,
    }
}

/// An owned literal carried by a compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Box<str>),
    Bytes(Box<[u8]>),
}

impl Literal {
    /// Borrows the literal as a [`Value`].
    pub fn as_value(&self) -> Value<'_> {
        match self {
            Literal::Nil => Value::Nil,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(i) => Value::Int(*i),
            Literal::Double(d) => Value::Double(*d),
            Literal::Str(s) => Value::Str(s),
            Literal::Bytes(b) => Value::Bytes(b),
        }
    }
}

impl fmt::Display for Literal {
    /// Writes the literal in OTTL syntax, so that parsing the output yields the same literal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Nil => f.write_str("nil"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Double(d) => write_double(f, *d),
            Literal::Str(s) => write_quoted(f, s),
            Literal::Bytes(b) => {
                f.write_str("0x")?;
                for byte in b.iter() {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// Writes a double so that it reads back as a float literal (always with a '.').
fn write_double(f: &mut fmt::Formatter<'_>, d: f64) -> fmt::Result {
    // Rust's `{:?}` is the shortest representation that round-trips; it uses an exponent
    // for very large and very small magnitudes, which the OTTL float syntax accepts.
    let text = format!("{d:?}");
    if text.contains('.') || text.contains("inf") || text.contains("NaN") {
        f.write_str(&text)
    } else if let Some((mantissa, exp)) = text.split_once('e') {
        write!(f, "{mantissa}.0e{exp}")
    } else {
        write!(f, "{text}.0")
    }
}

/// Writes a string literal with the escapes the lexer understands.
pub(super) fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::CompareOp::*;
    use super::Value::*;
    use super::*;

    const OPS: [CompareOp; 6] = [Eq, Ne, Lt, Le, Gt, Ge];

    /// Expected results for the six operators, in the order `== != < <= > >=`.
    fn check(a: Value<'_>, b: Value<'_>, expected: [bool; 6]) {
        for (op, want) in OPS.iter().zip(expected) {
            assert_eq!(compare(a, b, *op), want, "{a:?} {op} {b:?}");
        }
    }

    const NOT_EQUAL: [bool; 6] = [false, true, false, false, false, false];

    #[test]
    fn comparison_table_matches_ottl_rules() {
        // nil
        check(Nil, Nil, [true, false, false, true, false, true]);
        check(Nil, Int(0), NOT_EQUAL);
        check(Str(""), Nil, NOT_EQUAL);
        check(Nil, Bytes(b""), NOT_EQUAL);
        check(Bool(false), Nil, NOT_EQUAL);
        // ints and doubles
        check(Int(1), Int(2), [false, true, true, true, false, false]);
        check(Int(2), Int(2), [true, false, false, true, false, true]);
        check(Int(-3), Int(-4), [false, true, false, false, true, true]);
        check(Int(1), Double(1.0), [true, false, false, true, false, true]);
        check(Double(1.5), Int(1), [false, true, false, false, true, true]);
        check(
            Double(0.1),
            Double(0.2),
            [false, true, true, true, false, false],
        );
        check(Double(f64::NAN), Double(f64::NAN), NOT_EQUAL);
        check(Int(3), Double(f64::NAN), NOT_EQUAL);
        // strings: byte order, case-sensitive
        check(Str("a"), Str("b"), [false, true, true, true, false, false]);
        check(Str("B"), Str("a"), [false, true, true, true, false, false]);
        check(
            Str("abc"),
            Str("abc"),
            [true, false, false, true, false, true],
        );
        check(Str("é"), Str("z"), [false, true, false, false, true, true]);
        // bytes
        check(
            Bytes(&[1, 2]),
            Bytes(&[1, 3]),
            [false, true, true, true, false, false],
        );
        check(
            Bytes(&[1]),
            Bytes(&[1]),
            [true, false, false, true, false, true],
        );
        // bools: false < true
        check(
            Bool(false),
            Bool(true),
            [false, true, true, true, false, false],
        );
        check(
            Bool(true),
            Bool(true),
            [true, false, false, true, false, true],
        );
        // mismatched types are "not equal"
        check(Str("1"), Int(1), NOT_EQUAL);
        check(Int(1), Bool(true), NOT_EQUAL);
        check(Bytes(b"a"), Str("a"), NOT_EQUAL);
        check(Double(0.0), Bool(false), NOT_EQUAL);
        // maps and slices never compare equal, not even to each other
        check(Map, Map, NOT_EQUAL);
        check(Slice, Slice, NOT_EQUAL);
        check(Map, Nil, NOT_EQUAL);
    }

    #[test]
    fn literals_display_as_ottl_syntax() {
        assert_eq!(
            Literal::Str("a\"b\\c\n".into()).to_string(),
            r#""a\"b\\c\n""#
        );
        assert_eq!(Literal::Bytes(Box::new([0xab, 0x01])).to_string(), "0xab01");
        assert_eq!(Literal::Double(2.0).to_string(), "2.0");
        assert_eq!(Literal::Double(1e300).to_string(), "1.0e300");
        assert_eq!(Literal::Double(-0.5).to_string(), "-0.5");
        assert_eq!(Literal::Int(-7).to_string(), "-7");
        assert_eq!(Literal::Nil.to_string(), "nil");
    }
}
