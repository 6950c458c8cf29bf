//! The spool's shared bookkeeping ([`State`]): which segments exist and how long, the three
//! positions (end, read, cursor), the records handed out and not yet finished with, the space in
//! use, and the records just written that a caught-up reader takes from memory.
//!
//! Invariants: `read` and `cursor` never pass the end; the cursor moves only over a contiguous
//! run of finished records (acknowledged in any order); `used` is the bytes from the cursor to
//! the end plus what appends in progress reserved. Every method leaves the state consistent and
//! does no I/O: it runs under the spool's mutex, so it must never block or panic.

use super::pos::Pos;
use super::write_error::WriteError;
use crate::pipeline::buffer::metrics::BufferGauges;
use sonde_core::Batch;
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

/// A record handed to the export worker and not yet finished with.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) start: Pos,
    /// Items of the record (what the cursor moving over it takes off `items`).
    pub(super) items: u64,
    pub(super) done: bool,
    /// Dropped by `drop_oldest` while the worker held it: if the worker gives it up at shutdown,
    /// it is lost and counted.
    pub(super) evicted: bool,
}

/// The spool's bookkeeping, behind [`super::core::Core`]'s mutex.
pub(super) struct State {
    /// Segment id → committed length.
    pub(super) segments: BTreeMap<u64, u64>,
    pub(super) active: u64,
    pub(super) read: Pos,
    pub(super) cursor: Pos,
    /// The cursor on disk; `None` when the file is missing or damaged.
    pub(super) persisted: Option<Pos>,
    pub(super) inflight: VecDeque<Entry>,
    /// Ticket id of `inflight[0]`.
    pub(super) front: u64,
    pub(super) used: u64,
    /// Items from the cursor to the end: added when the writer publishes a record, taken off
    /// when the cursor passes it or an eviction drops it. The backlog found at start-up is
    /// counted in the background and added when known, so it may lag (and is shown as at
    /// least 0) for a moment after a start with a large backlog. Records lost to damage are
    /// never taken off (their item counts cannot be trusted), so whenever the spool is empty
    /// (`used` 0) and the backlog count is in, `items` is set to 0: any drift ends there.
    pub(super) items: i64,
    /// `used` (as bytes) and `items`, published.
    pub(super) gauges: BufferGauges,
    /// The start-up backlog's items are still being counted.
    pub(super) backlog_pending: bool,
    /// Every sender is gone: the reader stops (what is left stays on disk for the next start).
    pub(super) closed: bool,
    /// Appends are refused until then after a failed write (a full disk above all), and why.
    pub(super) write_failed: Option<(Instant, WriteError)>,
    /// The records the writer made durable most recently, in log order, still in memory: a
    /// reader that has caught up with the writer takes them from here instead of reading back
    /// what was just written (see [`RECENT_BYTES`]).
    pub(super) recent: VecDeque<Recent>,
    pub(super) recent_bytes: u64,
    /// An exported segment file kept (as [`super::spare::SPARE`]) to be reused as the next segment.
    pub(super) spare: bool,
    /// Segments from this id on may be reused: they hold only frames bound to them (created by
    /// this run) and were never evicted (an eviction may still be counting its records).
    pub(super) recycle_floor: u64,
    /// Since when the spool has been empty (`used` 0), for letting an idle spare go.
    pub(super) empty_since: Option<Instant>,
}

/// Most bytes of recently written records kept in memory for a reader that has caught up.
/// Beyond it the oldest are let go and read from disk when their turn comes, so a reader that
/// falls behind costs no memory.
pub const RECENT_BYTES: u64 = 4 << 20;

/// A durable record kept in memory: where it starts, where the next one starts, and the batch.
pub(super) struct Recent {
    pub(super) pos: Pos,
    pub(super) next: u64,
    pub(super) batch: Batch,
}

impl State {
    /// The state at start-up: `segments` (the active one, `active`, included), the cursor at
    /// `cursor` (as persisted, if `persisted`), the read position with it, both moved off
    /// finished segments, and the backlog counted as used.
    pub(super) fn new(
        segments: BTreeMap<u64, u64>,
        active: u64,
        cursor: Pos,
        persisted: Option<Pos>,
        recycle_floor: u64,
        gauges: BufferGauges,
    ) -> Self {
        let mut st = State {
            segments,
            active,
            read: cursor,
            cursor,
            persisted,
            inflight: VecDeque::new(),
            front: 0,
            used: 0,
            items: 0,
            gauges,
            backlog_pending: false,
            closed: false,
            write_failed: None,
            recent: VecDeque::new(),
            recent_bytes: 0,
            spare: false,
            recycle_floor,
            empty_since: None,
        };
        st.normalize_read();
        st.cursor = st.read;
        let backlog = st.dist(st.cursor, st.end());
        st.set_used(backlog);
        st
    }

    /// The stretches `(segment, from, to)` of the log between the cursor and the end.
    pub(super) fn backlog_ranges(&self) -> Vec<(u64, u64, u64)> {
        let end = self.end();
        self.segments
            .range(self.cursor.segment..=end.segment)
            .map(|(id, len)| {
                let from = if *id == self.cursor.segment {
                    self.cursor.offset
                } else {
                    0
                };
                (*id, from, *len)
            })
            .filter(|(_, from, to)| from < to)
            .collect()
    }

    pub(super) fn seg_len(&self, id: u64) -> u64 {
        self.segments.get(&id).copied().unwrap_or(0)
    }

    pub(super) fn end(&self) -> Pos {
        Pos {
            segment: self.active,
            offset: self.seg_len(self.active),
        }
    }

    /// Bytes of log between `a` and `b`.
    pub(super) fn dist(&self, a: Pos, b: Pos) -> u64 {
        if b <= a {
            return 0;
        }
        if a.segment == b.segment {
            return b.offset - a.offset;
        }
        let middle: u64 = self
            .segments
            .range(a.segment + 1..b.segment)
            .map(|(_, l)| *l)
            .sum();
        self.seg_len(a.segment).saturating_sub(a.offset) + middle + b.offset
    }

    /// Keeps the durable record at `pos` (ending at `next`) for the reader, letting the oldest
    /// go past [`RECENT_BYTES`].
    pub(super) fn remember(&mut self, pos: Pos, next: u64, batch: Batch) {
        self.recent_bytes += batch.payload.len() as u64;
        self.recent.push_back(Recent { pos, next, batch });
        while self.recent_bytes > RECENT_BYTES {
            match self.recent.pop_front() {
                Some(r) => self.recent_bytes -= r.batch.payload.len() as u64,
                None => break,
            }
        }
    }

    /// Hands out the record at the read position (ending at `next` in the same segment): the
    /// read position moves past it and it becomes an in-flight entry; returns its ticket id.
    pub(super) fn hand_out(&mut self, next: u64, items: u64) -> u64 {
        let start = self.read;
        self.read = Pos {
            segment: start.segment,
            offset: next,
        };
        let id = self.front + self.inflight.len() as u64;
        self.inflight.push_back(Entry {
            start,
            items,
            done: false,
            evicted: false,
        });
        id
    }

    /// The record at the read position if it is still in memory (older ones are dropped).
    pub(super) fn take_recent(&mut self) -> Option<Recent> {
        while let Some(r) = self.recent.front() {
            if r.pos > self.read {
                return None;
            }
            let r = self.recent.pop_front()?;
            self.recent_bytes -= r.batch.payload.len() as u64;
            if r.pos == self.read {
                return Some(r);
            }
        }
        None
    }

    pub(super) fn add_items(&mut self, n: i64) {
        self.items = self.items.saturating_add(n);
        self.settle_items();
    }

    /// Publishes `items`; an empty spool holds no items, whatever damage made the count drift.
    pub(super) fn settle_items(&mut self) {
        if self.used == 0 && !self.backlog_pending {
            self.items = 0;
        }
        self.gauges.items.set(self.items.max(0));
    }

    pub(super) fn set_used(&mut self, used: u64) {
        self.used = used;
        self.gauges
            .bytes
            .set(i64::try_from(used).unwrap_or(i64::MAX));
        if used == 0 {
            self.settle_items();
            self.empty_since.get_or_insert_with(Instant::now);
        } else {
            self.empty_since = None;
        }
    }

    /// Moves the read position off the end of finished segments.
    pub(super) fn normalize_read(&mut self) {
        while self.read.segment < self.active {
            match self.segments.get(&self.read.segment) {
                Some(len) if self.read.offset < *len => return,
                _ => {
                    let next = self
                        .segments
                        .range(self.read.segment + 1..)
                        .next()
                        .map_or(self.active, |(id, _)| *id);
                    self.read = Pos {
                        segment: next,
                        offset: 0,
                    };
                }
            }
        }
    }

    /// Moves the cursor over finished records; returns the bytes freed, or `None` when it did
    /// not move (it may move by zero bytes, from the end of a segment to the start of the next:
    /// that still lets the finished segment be deleted).
    pub(super) fn advance_cursor(&mut self) -> Option<u64> {
        let mut passed = 0u64;
        while self.inflight.front().is_some_and(|e| e.done) {
            passed += self.inflight.pop_front().map_or(0, |e| e.items);
            self.front += 1;
        }
        if passed > 0 {
            self.add_items(-(passed.min(i64::MAX as u64) as i64));
        }
        let new = self.inflight.front().map_or(self.read, |e| e.start);
        if new <= self.cursor {
            return None;
        }
        let freed = self.dist(self.cursor, new);
        self.cursor = new;
        self.set_used(self.used.saturating_sub(freed));
        Some(freed)
    }
}
