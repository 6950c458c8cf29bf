//! The export worker's side: reading records back one at a time (bounded memory whatever the
//! backlog), skipping damage, and the tickets whose acknowledgements move the cursor.
//!
//! A record just written is handed out from memory; an older one is read back, at most
//! [`READ_AHEAD`] bytes at a time, on `spawn_blocking`. Damage is skipped, counted and logged —
//! never retried forever, never a panic: an I/O error is retried twice, then the rest of its
//! segment is skipped, so a bad sector never stops the queue.

use super::core::Handle;
use super::metrics;
use super::pos::Pos;
use super::{record, segment};
use sonde_core::metrics::{Counter, Registry};
use sonde_core::Batch;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, warn};

/// The export worker's side.
pub struct SpoolReceiver {
    handle: Arc<Handle>,
    file: Option<(u64, Arc<File>)>,
    last_source: Option<Arc<str>>,
    io_failures: u32,
    /// Frames read ahead of the worker (at most [`READ_AHEAD`] bytes), each with its position.
    ahead: VecDeque<(Pos, segment::Read)>,
    /// Records handed out from memory, and read back from disk.
    read_from_memory: Counter,
    read_from_disk: Counter,
}

/// How much the reader reads in one go. Bounds the memory a drain uses besides what the worker
/// holds.
pub const READ_AHEAD: u64 = 1 << 20;

/// A record handed to the export worker. [`Ticket::ack`] when it is finished with (sent, or
/// dropped for good and counted); dropping it without `ack` leaves it in the spool, to be sent
/// again after a restart.
pub struct Ticket {
    handle: Arc<Handle>,
    id: u64,
    items: u64,
    acked: bool,
}

impl Ticket {
    pub fn ack(mut self) {
        self.acked = true;
        let core = &self.handle.core;
        let moved = {
            let mut st = core.lock();
            if let Some(i) = self.id.checked_sub(st.front) {
                if let Some(e) = st.inflight.get_mut(i as usize) {
                    e.done = true;
                }
            }
            st.advance_cursor().is_some()
        };
        if moved {
            core.space.notify_waiters();
            self.handle.wake_cursor();
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.acked {
            return;
        }
        let core = &self.handle.core;
        let evicted = {
            let st = core.lock();
            match self.id.checked_sub(st.front) {
                // Already passed by the cursor without an ack: only eviction does that.
                None => true,
                Some(i) => st.inflight.get(i as usize).is_some_and(|e| e.evicted),
            }
        };
        if evicted {
            core.counters.drop("evicted", 1, self.items);
        }
    }
}

enum Claim {
    /// The record at the read position, taken from memory and handed out (its ticket id).
    Ready(Batch, u64),
    Read {
        pos: Pos,
        limit: u64,
    },
    Wait,
    Closed,
}

impl SpoolReceiver {
    /// The export worker's side of the spool behind `handle`.
    pub(super) fn new(handle: Arc<Handle>, registry: &Registry) -> Self {
        let reads = |from| metrics::read_records(registry, &handle.core.name, from);
        SpoolReceiver {
            read_from_memory: reads("memory"),
            read_from_disk: reads("disk"),
            file: None,
            last_source: None,
            io_failures: 0,
            ahead: VecDeque::new(),
            handle,
        }
    }

    /// The next record, waiting for one; `None` once every sender is gone (what is left stays on
    /// disk for the next start).
    pub async fn recv(&mut self) -> Option<(Batch, Ticket)> {
        self.next(true).await
    }

    /// The next record if one is ready now.
    pub async fn try_recv(&mut self) -> Option<(Batch, Ticket)> {
        self.next(false).await
    }

    /// Bytes from the cursor to the end of the log.
    pub fn backlog_bytes(&self) -> u64 {
        let st = self.handle.core.lock();
        st.dist(st.cursor, st.end())
    }

    /// The segment files the spool keeps now.
    pub fn segments(&self) -> Vec<u64> {
        self.handle.core.lock().segments.keys().copied().collect()
    }

    /// Persists the cursor now and, when nothing else holds the spool, waits (a few seconds at
    /// most) for its threads to stop.
    pub async fn close(self) {
        let handle = self.handle.clone();
        drop(self);
        let core = handle.core.clone();
        let _ = tokio::task::spawn_blocking(move || core.persist()).await;
        let last = Arc::strong_count(&handle) == 1;
        let threads =
            std::mem::take(&mut *handle.threads.lock().unwrap_or_else(|p| p.into_inner()));
        drop(handle);
        if !last {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while threads.iter().any(|t| !t.is_finished()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn next(&mut self, wait: bool) -> Option<(Batch, Ticket)> {
        let core = self.handle.core.clone();
        loop {
            let notified = core.data.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (pos, limit) = match self.claim() {
                Claim::Closed => return None,
                Claim::Ready(batch, id) => {
                    self.read_from_memory.inc();
                    return Some(self.with_ticket(batch, id));
                }
                Claim::Wait if wait => {
                    notified.await;
                    continue;
                }
                Claim::Wait => return None,
                Claim::Read { pos, limit } => (pos, limit),
            };
            let Some(read) = self.read_at(pos, limit).await else {
                continue;
            };
            self.io_failures = 0;
            if let Some(record) = self.hand_out(pos, read) {
                return Some(record);
            }
        }
    }

    /// What the read position holds: a record still in memory (handed out at once), a place to
    /// read from disk, nothing yet, or the end (closed). Moves the cursor over what was acked
    /// meanwhile.
    fn claim(&self) -> Claim {
        let core = &self.handle.core;
        let (claim, moved) = {
            let mut st = core.lock();
            st.normalize_read();
            let moved = st.advance_cursor().is_some();
            let end = st.end();
            let claim = if st.closed {
                Claim::Closed
            } else if let Some(r) = (st.read < end).then(|| st.take_recent()).flatten() {
                // Just written and still in memory: no need to read it back.
                let id = st.hand_out(r.next, r.batch.items);
                Claim::Ready(r.batch, id)
            } else if st.read < end {
                let limit = if st.read.segment == st.active {
                    end.offset
                } else {
                    st.seg_len(st.read.segment)
                };
                Claim::Read {
                    pos: st.read,
                    limit,
                }
            } else {
                Claim::Wait
            };
            (claim, moved)
        };
        if moved {
            core.space.notify_waiters();
            self.handle.wake_cursor();
        }
        claim
    }

    /// What is at `pos` (in a segment whose readable data ends at `limit`): from the frames read
    /// ahead, or read from disk with the next ones. `None` when nothing was read (a failed read,
    /// already handled: the caller looks again).
    async fn read_at(&mut self, pos: Pos, limit: u64) -> Option<segment::Read> {
        if self.ahead.front().is_some_and(|(p, _)| *p == pos) {
            return self.ahead.pop_front().map(|(_, r)| r);
        }
        self.ahead.clear();
        let file = match &self.file {
            Some((id, f)) if *id == pos.segment => f.clone(),
            _ => match File::open(segment::path(&self.handle.core.dir, pos.segment)) {
                Ok(f) => {
                    let f = Arc::new(f);
                    self.file = Some((pos.segment, f.clone()));
                    f
                }
                Err(e) => {
                    self.read_failed(pos, limit, e).await;
                    return None;
                }
            },
        };
        let read = tokio::task::spawn_blocking(move || {
            segment::read_ahead(&file, pos.segment, pos.offset, limit, READ_AHEAD)
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        match read {
            Ok(frames) => {
                self.ahead.extend(frames.into_iter().map(|(offset, r)| {
                    (
                        Pos {
                            segment: pos.segment,
                            offset,
                        },
                        r,
                    )
                }));
                self.ahead.pop_front().map(|(_, r)| r)
            }
            Err(e) => {
                self.read_failed(pos, limit, e).await;
                None
            }
        }
    }

    /// Hands out the record `read` at `pos` with its ticket; `None` when it is damage (skipped
    /// and counted) or was discarded by `drop_oldest` meanwhile.
    fn hand_out(&mut self, pos: Pos, read: segment::Read) -> Option<(Batch, Ticket)> {
        let (next, damage) = match read {
            segment::Read::Frame { body, next } => {
                match record::decode(body, &mut self.last_source) {
                    Some(batch) => {
                        let mut st = self.handle.core.lock();
                        if st.read != pos {
                            // Discarded by drop_oldest meanwhile.
                            drop(st);
                            self.ahead.clear();
                            return None;
                        }
                        let id = st.hand_out(next, batch.items);
                        drop(st);
                        self.read_from_disk.inc();
                        return Some(self.with_ticket(batch, id));
                    }
                    None => (next, segment::Damage::Undecodable),
                }
            }
            segment::Read::Damaged { reason, next } => (next, reason),
        };
        self.skip(pos, next, damage.as_str());
        None
    }

    /// `batch` with the ticket of in-flight entry `id`.
    fn with_ticket(&self, batch: Batch, id: u64) -> (Batch, Ticket) {
        let ticket = Ticket {
            handle: self.handle.clone(),
            id,
            items: batch.items,
            acked: false,
        };
        (batch, ticket)
    }

    /// Skips the damaged stretch `[pos, next)` of one segment, counted and logged.
    fn skip(&mut self, pos: Pos, next: u64, reason: &'static str) {
        let core = &self.handle.core;
        {
            let mut st = core.lock();
            if st.read != pos {
                return;
            }
            st.read = Pos {
                segment: pos.segment,
                offset: next,
            };
        }
        let bytes = next.saturating_sub(pos.offset);
        core.counters.damaged(reason, bytes);
        error!(exporter = %core.name, file = %segment::path(&core.dir, pos.segment).display(), offset = pos.offset, bytes, reason, "damaged spool data skipped (at least one record lost)");
    }

    /// A read that failed with an I/O error: retried twice, then the rest of the segment is
    /// skipped and counted, so a bad sector never stops the queue.
    async fn read_failed(&mut self, pos: Pos, limit: u64, e: io::Error) {
        self.file = None;
        if e.kind() == io::ErrorKind::NotFound {
            // Deleted by drop_oldest's cursor move, or by hand.
            let moved = self.handle.core.lock().read != pos;
            if !moved {
                self.skip(pos, limit, "io");
            }
            return;
        }
        self.io_failures += 1;
        if self.io_failures >= 3 {
            self.io_failures = 0;
            self.skip(pos, limit, "io");
            return;
        }
        warn!(exporter = %self.handle.core.name, offset = pos.offset, error = %e, "spool read failed; retrying");
        tokio::time::sleep(Duration::from_millis(100 * u64::from(self.io_failures))).await;
    }
}
