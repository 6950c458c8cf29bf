//! The OTTL tokenizer: turns a condition string into tokens that carry their position.
//!
//! Owns [`Token`], [`Tok`] and [`tokenize`]. It decodes string escapes and numbers; it must
//! never panic on any input and always reports the 1-based `line:column` (columns count
//! characters) of what it could not read.

use super::ParseError;

/// A token kind.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A lowercase identifier (`name`, `attributes`, and the keywords `and`, `or`, `not`,
    /// `true`, `false`, `nil`).
    Lower(String),
    /// An identifier starting with an uppercase letter (a converter or an enum).
    Upper(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    Op(super::CompareOp),
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Eof,
}

impl Tok {
    /// How the token is named in "expected …, found …" messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Lower(s) if is_keyword(s) => format!("keyword `{s}`"),
            Tok::Lower(s) | Tok::Upper(s) => format!("`{s}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Int(i) => format!("`{i}`"),
            Tok::Float(f) => format!("`{f}`"),
            Tok::Bytes(_) => "a byte string".to_string(),
            Tok::Op(op) => format!("`{op}`"),
            Tok::Dot => "`.`".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::LParen => "`(`".to_string(),
            Tok::RParen => "`)`".to_string(),
            Tok::LBracket => "`[`".to_string(),
            Tok::RBracket => "`]`".to_string(),
            Tok::Eof => "end of input".to_string(),
        }
    }
}

fn is_keyword(s: &str) -> bool {
    matches!(s, "and" | "or" | "not" | "true" | "false" | "nil")
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub tok: Tok,
    pub line: u32,
    pub column: u32,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    src: &'a str,
    line: u32,
    column: u32,
}

impl Lexer<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|&(_, c)| c)
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.chars.clone();
        it.next();
        it.next().map(|(_, c)| c)
    }

    fn bump(&mut self) -> Option<char> {
        let (_, c) = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn offset(&mut self) -> usize {
        self.chars.peek().map_or(self.src.len(), |&(i, _)| i)
    }

    fn err(&self, line: u32, column: u32, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Splits a condition into tokens, ending with [`Tok::Eof`].
pub(super) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer {
        chars: src.char_indices().peekable(),
        src,
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    loop {
        while lx.peek().is_some_and(char::is_whitespace) {
            lx.bump();
        }
        let (line, column) = (lx.line, lx.column);
        let Some(c) = lx.peek() else {
            out.push(Token {
                tok: Tok::Eof,
                line,
                column,
            });
            return Ok(out);
        };
        let tok = match c {
            '(' | ')' | '[' | ']' | ',' => {
                lx.bump();
                match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    _ => Tok::Comma,
                }
            }
            '.' if lx.peek2().is_some_and(|d| d.is_ascii_digit()) => number(&mut lx, line, column)?,
            '.' => {
                lx.bump();
                Tok::Dot
            }
            '=' | '!' | '<' | '>' => operator(&mut lx, line, column)?,
            '"' => Tok::Str(string(&mut lx, line, column)?),
            '0' if matches!(lx.peek2(), Some('x' | 'X')) => bytes(&mut lx, line, column)?,
            '0'..='9' => number(&mut lx, line, column)?,
            '+' | '-' if lx.peek2().is_some_and(|d| d.is_ascii_digit() || d == '.') => {
                number(&mut lx, line, column)?
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = lx.offset();
                while lx
                    .peek()
                    .is_some_and(|d| d.is_ascii_alphanumeric() || d == '_')
                {
                    lx.bump();
                }
                let end = lx.offset();
                let word = src.get(start..end).unwrap_or_default().to_string();
                if c.is_ascii_uppercase() {
                    Tok::Upper(word)
                } else {
                    Tok::Lower(word)
                }
            }
            other => {
                return Err(lx.err(line, column, format!("unexpected character {other:?}")));
            }
        };
        out.push(Token { tok, line, column });
    }
}

fn operator(lx: &mut Lexer<'_>, line: u32, column: u32) -> Result<Tok, ParseError> {
    use super::CompareOp::*;
    let first = lx.bump();
    let eq_follows = lx.peek() == Some('=');
    let op = match (first, eq_follows) {
        (Some('='), true) => Eq,
        (Some('!'), true) => Ne,
        (Some('<'), true) => Le,
        (Some('>'), true) => Ge,
        (Some('<'), false) => return Ok(Tok::Op(Lt)),
        (Some('>'), false) => return Ok(Tok::Op(Gt)),
        (Some('='), false) => {
            return Err(lx.err(
                line,
                column,
                "expected `==` (a single `=` is not an operator)",
            ))
        }
        _ => return Err(lx.err(line, column, "expected `!=` (`!` alone is not an operator)")),
    };
    lx.bump();
    Ok(Tok::Op(op))
}

/// Reads `[+-]digits`, `[+-]digits.digits`, `[+-].digits`, with an optional exponent after
/// a fraction, as OTTL does (an int has no exponent).
fn number(lx: &mut Lexer<'_>, line: u32, column: u32) -> Result<Tok, ParseError> {
    let start = lx.offset();
    if matches!(lx.peek(), Some('+' | '-')) {
        lx.bump();
    }
    while lx.peek().is_some_and(|d| d.is_ascii_digit()) {
        lx.bump();
    }
    let mut float = false;
    if lx.peek() == Some('.') && lx.peek2().is_some_and(|d| d.is_ascii_digit()) {
        float = true;
        lx.bump();
        while lx.peek().is_some_and(|d| d.is_ascii_digit()) {
            lx.bump();
        }
        if matches!(lx.peek(), Some('e' | 'E')) {
            let signed = matches!(lx.peek2(), Some('+' | '-'));
            let mut probe = lx.chars.clone();
            probe.next();
            if signed {
                probe.next();
            }
            if probe.next().is_some_and(|(_, d)| d.is_ascii_digit()) {
                lx.bump();
                if signed {
                    lx.bump();
                }
                while lx.peek().is_some_and(|d| d.is_ascii_digit()) {
                    lx.bump();
                }
            }
        }
    }
    if lx
        .peek()
        .is_some_and(|d| d.is_ascii_alphabetic() || d == '_')
    {
        return Err(lx.err(lx.line, lx.column, "expected a separator after the number"));
    }
    let end = lx.offset();
    let text = lx.src.get(start..end).unwrap_or_default();
    if float {
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Tok::Float(v)),
            _ => Err(lx.err(line, column, format!("float `{text}` is out of range"))),
        }
    } else {
        text.parse::<i64>().map(Tok::Int).map_err(|_| {
            lx.err(
                line,
                column,
                format!("int `{text}` does not fit in 64 bits"),
            )
        })
    }
}

fn bytes(lx: &mut Lexer<'_>, line: u32, column: u32) -> Result<Tok, ParseError> {
    lx.bump(); // 0
    lx.bump(); // x
    let start = lx.offset();
    while lx.peek().is_some_and(|d| d.is_ascii_hexdigit()) {
        lx.bump();
    }
    let end = lx.offset();
    if lx
        .peek()
        .is_some_and(|d| d.is_ascii_alphanumeric() || d == '_')
    {
        return Err(lx.err(
            lx.line,
            lx.column,
            "expected a hex digit in the byte string",
        ));
    }
    let digits = lx.src.get(start..end).unwrap_or_default();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return Err(lx.err(
            line,
            column,
            "expected an even, non-zero number of hex digits after `0x`",
        ));
    }
    hex::decode(digits)
        .map(Tok::Bytes)
        .map_err(|_| lx.err(line, column, "expected hex digits after `0x`"))
}

/// Reads a double-quoted string with Go-style escapes: `\" \\ \n \r \t \a \b \f \v`,
/// `\xHH` (ASCII only), `\uHHHH`, `\UHHHHHHHH`.
fn string(lx: &mut Lexer<'_>, line: u32, column: u32) -> Result<String, ParseError> {
    lx.bump(); // opening quote
    let mut out = String::new();
    loop {
        let (el, ec) = (lx.line, lx.column);
        match lx.bump() {
            None => return Err(lx.err(line, column, "expected a closing `\"` for this string")),
            Some('"') => return Ok(out),
            Some('\\') => {
                let c = match lx.bump() {
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some('t') => '\t',
                    Some('a') => '\u{7}',
                    Some('b') => '\u{8}',
                    Some('f') => '\u{c}',
                    Some('v') => '\u{b}',
                    Some('x') => escaped_code(lx, 2, el, ec, true)?,
                    Some('u') => escaped_code(lx, 4, el, ec, false)?,
                    Some('U') => escaped_code(lx, 8, el, ec, false)?,
                    _ => {
                        return Err(lx.err(
                            el,
                            ec,
                            "expected an escape (\\\" \\\\ \\n \\r \\t \\a \\b \\f \\v \\xHH \\uHHHH \\UHHHHHHHH) after `\\`",
                        ))
                    }
                };
                out.push(c);
            }
            Some(c) => out.push(c),
        }
    }
}

fn escaped_code(
    lx: &mut Lexer<'_>,
    digits: usize,
    line: u32,
    column: u32,
    ascii_only: bool,
) -> Result<char, ParseError> {
    let mut code: u32 = 0;
    for _ in 0..digits {
        let d = lx.bump().and_then(|c| c.to_digit(16));
        let Some(d) = d else {
            return Err(lx.err(
                line,
                column,
                format!("expected {digits} hex digits in this escape"),
            ));
        };
        code = code * 16 + d;
    }
    if ascii_only && code > 0x7f {
        return Err(lx.err(
            line,
            column,
            "expected an ASCII code (at most \\x7f) in a `\\x` escape",
        ));
    }
    char::from_u32(code).ok_or_else(|| {
        lx.err(
            line,
            column,
            format!("escape U+{code:X} is not a Unicode scalar value"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        match tokenize(src) {
            Ok(t) => t.into_iter().map(|t| t.tok).collect(),
            Err(e) => panic!("{src}: {e}"),
        }
    }

    fn err(src: &str) -> (u32, u32, String) {
        match tokenize(src) {
            Ok(t) => panic!("{src} tokenized to {t:?}"),
            Err(e) => (e.line, e.column, e.message),
        }
    }

    #[test]
    fn numbers_ints_floats_and_signs() {
        assert_eq!(
            toks("1 -1 +2 1.5 -.5 .25 1.0e3 2.5E-2"),
            vec![
                Tok::Int(1),
                Tok::Int(-1),
                Tok::Int(2),
                Tok::Float(1.5),
                Tok::Float(-0.5),
                Tok::Float(0.25),
                Tok::Float(1000.0),
                Tok::Float(0.025),
                Tok::Eof
            ]
        );
        assert_eq!(toks("9223372036854775807")[0], Tok::Int(i64::MAX));
        assert_eq!(toks("-9223372036854775808")[0], Tok::Int(i64::MIN));
    }

    #[test]
    fn strings_decode_escapes() {
        assert_eq!(
            toks(r#""a\"b\\c\n\t\x41\u00e9\U0001F600""#)[0],
            Tok::Str("a\"b\\c\n\tAé😀".into())
        );
        assert_eq!(toks(r#""""#)[0], Tok::Str(String::new()));
        assert_eq!(toks(r#""ünï""#)[0], Tok::Str("ünï".into()));
    }

    #[test]
    fn bytes_and_operators() {
        assert_eq!(toks("0x0aFF")[0], Tok::Bytes(vec![0x0a, 0xff]));
        use crate_ops::*;
        assert_eq!(
            toks("== != < <= > >="),
            vec![
                Tok::Op(EQ),
                Tok::Op(NE),
                Tok::Op(LT),
                Tok::Op(LE),
                Tok::Op(GT),
                Tok::Op(GE),
                Tok::Eof
            ]
        );
    }

    mod crate_ops {
        use super::super::super::CompareOp;
        pub const EQ: CompareOp = CompareOp::Eq;
        pub const NE: CompareOp = CompareOp::Ne;
        pub const LT: CompareOp = CompareOp::Lt;
        pub const LE: CompareOp = CompareOp::Le;
        pub const GT: CompareOp = CompareOp::Gt;
        pub const GE: CompareOp = CompareOp::Ge;
    }

    #[test]
    fn positions_count_characters_and_lines() {
        let t = match tokenize("\"é\" == 1\n  and x") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let pos: Vec<(u32, u32)> = t.iter().map(|t| (t.line, t.column)).collect();
        assert_eq!(pos, vec![(1, 1), (1, 5), (1, 8), (2, 3), (2, 7), (2, 8)]);
    }

    #[test]
    fn lexical_errors_name_position_and_expectation() {
        let (l, c, m) = err("name = 1");
        assert_eq!((l, c), (1, 6));
        assert!(m.contains("`==`"));
        let (l, c, m) = err("é == 1");
        assert_eq!((l, c), (1, 1));
        assert!(m.contains("'é'"));
        let (l, c, m) = err("name == \"abc");
        assert_eq!((l, c), (1, 9));
        assert!(m.contains("closing"));
        let (l, c, m) = err("x == \"a\\qb\"");
        assert_eq!((l, c), (1, 8));
        assert!(m.contains("escape"));
        let (l, c, _) = err("x == 0x123");
        assert_eq!((l, c), (1, 6));
        let (l, c, _) = err("x == 99999999999999999999");
        assert_eq!((l, c), (1, 6));
        let (l, c, m) = err("x ==\n  1.5e999");
        assert_eq!((l, c), (2, 3));
        assert!(m.contains("out of range"));
        let (l, c, _) = err("x == 12abc");
        assert_eq!((l, c), (1, 8));
        let (l, c, m) = err("x # 1");
        assert_eq!((l, c), (1, 3));
        assert!(m.contains("'#'"));
        let (_, _, m) = err(r#"x == "\xff""#);
        assert!(m.contains("ASCII"));
        let (_, _, m) = err(r#"x == "\ud800""#);
        assert!(m.contains("Unicode scalar"));
    }
}
