//! The problems of one file, each placed: its key path rendered as the reader writes it
//! (`exporters.out.inputs[1]`) and, found through a span-keeping parse of the same text, its
//! line:column.
//!
//! Only collects and locates; what is a problem is decided by the loader, the whole-file checks
//! and each component's own checks.

use crate::error::{line_col, ConfigError};
use crate::problem::{KeyPath, PathSeg, Problems};
use std::cell::OnceCell;
use toml_edit::{Item, TableLike, Value};

pub(crate) struct Report<'a> {
    text: &'a str,
    /// The text parsed again, keeping positions: only an error needs it, so it is parsed on the
    /// first error (a valid file, the common case, is parsed once).
    doc: OnceCell<Option<toml_edit::Document<String>>>,
    errors: Vec<ConfigError>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Report {
            text,
            doc: OnceCell::new(),
            errors: Vec::new(),
        }
    }

    /// Records a problem at `path`, locating it in the file.
    pub(crate) fn error(&mut self, path: &KeyPath, message: impl Into<String>) {
        let pos = self.position(path);
        self.errors.push(ConfigError {
            path: path.to_string(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message: message.into(),
        });
    }

    /// Records a problem found inside the string value at `path`, at `within` (1-based line and
    /// column inside the string's content, as a parser of that string reports them).
    pub(crate) fn error_within(
        &mut self,
        path: &KeyPath,
        within: (usize, usize),
        message: impl Into<String>,
    ) {
        let pos = self
            .span(path)
            .and_then(|s| inside_string(self.text, s.start, within))
            .map(|offset| line_col(self.text, offset))
            .or_else(|| self.position(path));
        self.errors.push(ConfigError {
            path: path.to_string(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message: message.into(),
        });
    }

    /// Records each problem a component's checks found, below the component at `at`.
    pub(crate) fn problems(&mut self, at: &KeyPath, problems: Problems) {
        for p in problems {
            self.error(&at.join(&p.path), p.message);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Every problem recorded, in the order found.
    pub(crate) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    /// The line:column of the key (or, for an array element, the value) at `path`; falls back to
    /// the nearest ancestor that exists in the file.
    fn position(&self, path: &KeyPath) -> Option<(usize, usize)> {
        self.span(path).map(|s| line_col(self.text, s.start))
    }

    /// The span of the key (or, for an array element, the value) at `path`, or of the nearest
    /// ancestor that exists in the file.
    fn span(&self, path: &KeyPath) -> Option<std::ops::Range<usize>> {
        let doc = self
            .doc
            .get_or_init(|| toml_edit::Document::parse(self.text.to_string()).ok())
            .as_ref()?;
        let mut best = None;
        let mut node = Node::Item(doc.as_item());
        for seg in path.segments() {
            let (span, next) = node.step(seg);
            if span.is_some() {
                best = span;
            }
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        best
    }
}

/// The byte offset in `text` of (line, column) of the content of the TOML string starting at
/// `start` (its opening quote). Exact for literal strings and for basic strings without escapes
/// before the place; a multi-line string's content lines are the file's lines.
fn inside_string(text: &str, start: usize, (line, column): (usize, usize)) -> Option<usize> {
    let rest = text.get(start..)?;
    let delim = ["\"\"\"", "'''", "\"", "'"]
        .into_iter()
        .find(|d| rest.starts_with(d))?;
    let mut at = start + delim.len();
    if delim.len() == 3 && text.get(at..)?.starts_with('\n') {
        at += 1;
    }
    let content = text.get(at..)?;
    let (mut l, mut c) = (1, 1);
    for (i, ch) in content.char_indices() {
        if (l, c) == (line, column) {
            return Some(at + i);
        }
        if ch == '\n' {
            l += 1;
            c = 1;
        } else {
            c += 1;
        }
    }
    ((l, c) == (line, column)).then_some(text.len())
}

/// A place in the span-keeping parse: a table entry, or an element of an array.
enum Node<'d> {
    Item(&'d Item),
    Value(&'d Value),
}

impl<'d> Node<'d> {
    /// One step down `seg`: the span that names it (the key, else its value) and the node there.
    fn step(&self, seg: &PathSeg) -> (Option<std::ops::Range<usize>>, Option<Node<'d>>) {
        match seg {
            PathSeg::Key(k) => {
                let Some((key, item)) = self.table().and_then(|t| t.get_key_value(k)) else {
                    return (None, None);
                };
                (key.span().or_else(|| item.span()), Some(Node::Item(item)))
            }
            PathSeg::Index(i) => match self.value() {
                Some(Value::Array(a)) => {
                    let next = a.get(*i);
                    (next.and_then(|v| v.span()), next.map(Node::Value))
                }
                _ => (None, None),
            },
        }
    }

    fn value(&self) -> Option<&'d Value> {
        match *self {
            Node::Item(Item::Value(v)) | Node::Value(v) => Some(v),
            Node::Item(_) => None,
        }
    }

    fn table(&self) -> Option<&'d dyn TableLike> {
        match *self {
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }
}
