//! Key paths and the problems found at them.
//!
//! A component's own checks (the `problems()` of each settings struct) report every problem with
//! the key path below the component; the loader puts the component's place in front
//! (`exporters.out` + `batch.max_items`), renders it (`exporters.out.inputs[1]`) and finds its
//! line:column. This module only carries paths and findings: it never judges a setting.

use std::borrow::Cow;
use std::fmt;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A key: one the schema knows (`batch`), or one taken from the file (a component's name, a
    /// header name).
    Key(Cow<'static, str>),
    /// A position in a list.
    Index(usize),
}

impl PathSeg {
    pub fn key(k: impl Into<Cow<'static, str>>) -> Self {
        PathSeg::Key(k.into())
    }
}

impl fmt::Display for PathSeg {
    /// The key, or the list position as a number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSeg::Key(k) => f.write_str(k),
            PathSeg::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A path of keys and list positions, shown as the file's reader writes it: `sources.a.include[1]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPath(Vec<PathSeg>);

impl KeyPath {
    /// The path of a dotted key written in the schema (`upload.part_size`); `""` is the empty path.
    pub fn dotted(keys: &'static str) -> Self {
        if keys.is_empty() {
            return KeyPath::default();
        }
        KeyPath(keys.split('.').map(PathSeg::key).collect())
    }

    /// This path, one key further down.
    pub fn key(mut self, k: impl Into<Cow<'static, str>>) -> Self {
        self.0.push(PathSeg::key(k));
        self
    }

    /// This path, at position `i` of the list it names.
    pub fn index(mut self, i: usize) -> Self {
        self.0.push(PathSeg::Index(i));
        self
    }

    /// `rel` below this path.
    pub fn join(&self, rel: &KeyPath) -> KeyPath {
        KeyPath(self.0.iter().chain(&rel.0).cloned().collect())
    }

    pub fn push(&mut self, seg: PathSeg) {
        self.0.push(seg);
    }

    pub fn segments(&self) -> &[PathSeg] {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    /// Keys are joined by `.` once something has been written; positions follow as `[i]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut written = false;
        for seg in &self.0 {
            match seg {
                PathSeg::Key(k) if written => write!(f, ".{k}")?,
                PathSeg::Key(k) => f.write_str(k)?,
                PathSeg::Index(i) => write!(f, "[{i}]")?,
            }
            written |= !matches!(seg, PathSeg::Key(k) if k.is_empty());
        }
        Ok(())
    }
}

/// One problem a component's checks found: where below the component (the empty path is the
/// component itself), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: KeyPath,
    pub message: String,
}

/// The problems a component's checks found, in the order they were found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// A problem at a dotted key of the schema (`upload.part_size`); `""` is the component.
    pub fn at(&mut self, keys: &'static str, message: impl Into<String>) {
        self.at_path(KeyPath::dotted(keys), message);
    }

    /// A problem at a path with list positions or keys taken from the file.
    pub fn at_path(&mut self, path: KeyPath, message: impl Into<String>) {
        self.0.push(Problem {
            path,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }
}

impl IntoIterator for Problems {
    type Item = Problem;
    type IntoIter = std::vec::IntoIter<Problem>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_as_written_in_the_file() {
        let p = KeyPath::dotted("exporters.out").key("inputs").index(1);
        assert_eq!(p.to_string(), "exporters.out.inputs[1]");
        let rel = KeyPath::dotted("batch.max_items");
        assert_eq!(
            KeyPath::dotted("exporters")
                .key("out".to_string())
                .join(&rel)
                .to_string(),
            "exporters.out.batch.max_items"
        );
        assert_eq!(KeyPath::dotted("").to_string(), "");
        assert_eq!(KeyPath::default().index(0).key("a").to_string(), "[0].a");
    }

    #[test]
    fn problems_keep_the_order_they_were_found_in() {
        let mut p = Problems::default();
        p.at("", "whole");
        p.at("upload.part_size", "nested");
        p.at_path(
            KeyPath::default().key("headers").key("x-a".to_string()),
            "owned",
        );
        let shown: Vec<String> = p
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        assert_eq!(
            shown,
            [": whole", "upload.part_size: nested", "headers.x-a: owned"]
        );
    }
}
