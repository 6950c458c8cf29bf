//! A place in the log: a segment and a byte offset in it. Plain data, ordered as the log is;
//! it knows nothing of what is at that place.

use super::segment;

/// A place in the log: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", segment::file_name(self.segment), self.offset)
    }
}
