//! Removing items from an encoded request, level by level: an item a processor drops is
//! deleted; a scope-level message whose items are all dropped is deleted whole, and so is a
//! resource-level message whose scope-level messages all went (and, for metrics, a metric whose
//! data points all went), as the Collector's filter processor does. Messages that were empty
//! before are left as they were.
//!
//! [`Pruner`] collects the decisions of one walk and turns them into [`Editor`] deletes that
//! never overlap: the deletes of a parent's children are emitted only when the parent itself
//! stays.

use super::view::{children, Node, Origin};
use sonde_core::wire::edit::Editor;
use sonde_core::wire::WireError;
use std::ops::Range;

/// The deletions pending inside one message (a scope, a metric, a resource).
#[derive(Debug, Default)]
pub struct Level {
    /// Children seen.
    children: usize,
    /// Children deleted whole, by range.
    deleted: Vec<Range<usize>>,
    /// Edits inside kept children, held until this level's fate is known.
    inner: Vec<Range<usize>>,
}

impl Level {
    /// A child that stays (its own inner edits come through [`Level::keep_with`]).
    pub fn keep(&mut self) {
        self.children += 1;
    }

    /// A child that goes.
    pub fn drop(&mut self, child: Range<usize>) {
        self.children += 1;
        self.deleted.push(child);
    }

    /// A child that stays with deletions inside it (its own children dropped).
    pub fn keep_with(&mut self, inner: Vec<Range<usize>>) {
        self.children += 1;
        self.inner.extend(inner);
    }

    /// Whether every child went (and there was at least one).
    pub fn emptied(&self) -> bool {
        self.children > 0 && self.deleted.len() == self.children
    }

    /// The deletes this level contributes when it stays: its deleted children and the edits
    /// inside its kept ones.
    pub fn into_deletes(self) -> Vec<Range<usize>> {
        let mut all = self.deleted;
        all.extend(self.inner);
        all
    }

    /// Folds this level into its parent: deleted whole when emptied, else its deletes.
    pub fn close_into(self, whole: Range<usize>, parent: &mut Level) {
        if self.emptied() {
            parent.drop(whole);
        } else if self.deleted.is_empty() && self.inner.is_empty() {
            parent.keep();
        } else {
            parent.keep_with(self.into_deletes());
        }
    }
}

/// The top of a walk: the request's resource-level messages.
#[derive(Debug, Default)]
pub struct Pruner {
    pub top: Level,
}

impl Pruner {
    /// The deletes of the whole walk, into `editor`. A request whose every resource-level
    /// message went becomes the empty request.
    pub fn finish(self, editor: &mut Editor) {
        for r in self.top.into_deletes() {
            editor.delete(r);
        }
    }
}

/// What becomes of one item (a span, a log record, a metric).
pub enum Verdict {
    Keep,
    Drop,
    /// It stays, with these deletes inside it (none: unchanged).
    KeepWith(Vec<Range<usize>>),
}

/// Walks the items of the request `buf` (resource-level → scope-level → item, each the field 2
/// of its parent), asks `decide` about each with its origin, and returns the deletes that
/// follow — the dropped items, and the scopes and resources they leave empty — for
/// [`Pruner::finish`].
pub fn prune_items(
    buf: &[u8],
    mut decide: impl FnMut(Origin, Node) -> Result<Verdict, WireError>,
) -> Result<Pruner, WireError> {
    let mut p = Pruner::default();
    for r in children(buf, (0, buf.len()), 1) {
        let r = r?;
        let mut rl = Level::default();
        for s in children(buf, r.payload(), 2) {
            let s = s?;
            let origin = Origin {
                resource_level: r.payload(),
                scope_level: s.payload(),
            };
            let mut sl = Level::default();
            for item in children(buf, s.payload(), 2) {
                let item = item?;
                match decide(origin, item)? {
                    Verdict::Drop => sl.drop(item.range()),
                    Verdict::KeepWith(inner) if !inner.is_empty() => sl.keep_with(inner),
                    Verdict::Keep | Verdict::KeepWith(_) => sl.keep(),
                }
            }
            sl.close_into(s.range(), &mut rl);
        }
        rl.close_into(r.range(), &mut p.top);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_level_is_deleted_whole_and_a_kept_one_passes_its_deletes_up() {
        let mut top = Level::default();
        let mut scope = Level::default();
        scope.drop(10..20);
        scope.drop(20..30);
        scope.close_into(5..30, &mut top);
        let mut other = Level::default();
        other.drop(40..50);
        other.keep();
        other.close_into(35..60, &mut top);
        let mut untouched = Level::default();
        untouched.keep();
        untouched.close_into(60..70, &mut top);
        // An originally empty level is neither emptied nor changed.
        Level::default().close_into(70..72, &mut top);
        assert!(!top.emptied());
        assert_eq!(top.into_deletes(), vec![5..30, 40..50]);
    }
}
