//! The export worker's side: reading records back one at a time (bounded memory whatever the
//! backlog), skipping damage, and the tickets whose acknowledgements move the cursor.

use super::*;

/// The export worker's side.
pub struct SpoolReceiver {
    pub(super) handle: Arc<Handle>,
    pub(super) file: Option<(u64, Arc<File>)>,
    pub(super) last_source: Option<Arc<str>>,
    pub(super) io_failures: u32,
    /// Frames read ahead of the worker (at most [`READ_AHEAD`] bytes), each with its position.
    pub(super) ahead: VecDeque<(Pos, segment::Read)>,
    /// Records handed out from memory, and read back from disk.
    pub(super) read_from_memory: Counter,
    pub(super) read_from_disk: Counter,
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
            let (pos, limit) = match claim {
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
            let read = match self.ahead.front() {
                Some((p, _)) if *p == pos => self.ahead.pop_front().map(|(_, r)| r),
                _ => None,
            };
            let read = match read {
                Some(r) => r,
                None => {
                    self.ahead.clear();
                    let file = match &self.file {
                        Some((id, f)) if *id == pos.segment => f.clone(),
                        _ => match File::open(segment::path(&core.dir, pos.segment)) {
                            Ok(f) => {
                                let f = Arc::new(f);
                                self.file = Some((pos.segment, f.clone()));
                                f
                            }
                            Err(e) => {
                                self.read_failed(pos, limit, e).await;
                                continue;
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
                            match self.ahead.pop_front() {
                                Some((_, r)) => r,
                                None => continue,
                            }
                        }
                        Err(e) => {
                            self.read_failed(pos, limit, e).await;
                            continue;
                        }
                    }
                }
            };
            self.io_failures = 0;
            let (next, damage) = match read {
                segment::Read::Frame { body, next } => {
                    match record::decode(body, &mut self.last_source) {
                        Some(batch) => {
                            let mut st = core.lock();
                            if st.read != pos {
                                // Discarded by drop_oldest meanwhile.
                                self.ahead.clear();
                                continue;
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
        }
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
