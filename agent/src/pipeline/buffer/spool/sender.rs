//! The producers' side: reserving space, the `when_full` policies, and handing records to the
//! writer thread.
//!
//! A push returns only once its record is durable (per `fsync`) or the policy has decided:
//! `block` waits (as the producer's [`Wait`] allows), `drop_newest` drops the new batch,
//! `drop_oldest` discards the oldest sealed segment's unexported records. Every drop is counted
//! with its reason. A producer never writes to disk itself and never waits on the spool's mutex
//! for I/O.

use super::core::{Core, Handle, Reservation};
use super::pos::Pos;
use super::record::{self, Frame};
use super::segment;
use super::write_error::WriteError;
use super::writer::{self, Append};
use crate::pipeline::buffer::push::{PushError, Pushed, Wait};
use sonde_config::{SpoolCompression, WhenFull};
use sonde_core::Batch;
use std::fs::File;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::futures::Notified;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// The producers' side. Cloning is cheap; when the last clone is gone the writer stops and the
/// reader returns `None`.
#[derive(Clone)]
pub struct SpoolSender {
    inner: Arc<SenderInner>,
}

struct SenderInner {
    handle: Arc<Handle>,
    tx: mpsc::Sender<Append>,
    when_full: WhenFull,
}

impl Drop for SenderInner {
    fn drop(&mut self) {
        self.handle.core.lock().closed = true;
        self.handle.core.data.notify_one();
    }
}

/// Why a record could not be appended now.
#[derive(Clone, Copy)]
enum Refused {
    Full,
    /// A write failed a moment ago (a full disk, or an I/O error): refused until then.
    WriteFailed(Instant, WriteError),
}

impl Refused {
    /// The `reason` a batch dropped for this is counted under.
    fn reason(self) -> &'static str {
        match self {
            Refused::Full => "buffer_full",
            Refused::WriteFailed(_, e) => e.reason(),
        }
    }
}

impl SpoolSender {
    /// The producers' side of the spool behind `handle`, appending through the writer's `tx`.
    pub(super) fn new(handle: Arc<Handle>, tx: mpsc::Sender<Append>, when_full: WhenFull) -> Self {
        SpoolSender {
            inner: Arc::new(SenderInner {
                handle,
                tx,
                when_full,
            }),
        }
    }

    fn core(&self) -> &Arc<Core> {
        &self.inner.handle.core
    }

    /// Appends `batch` and returns once it is durable (per `fsync`). When the spool is full the
    /// `when_full` policy applies: `block` waits as `wait` allows and then says
    /// [`PushError::Full`]; `drop_newest` drops this batch; `drop_oldest` discards the oldest
    /// segment of unexported data (counted) to make room. A full disk is handled the same way.
    pub async fn push(&self, batch: Batch, wait: Wait) -> Result<Pushed, PushError> {
        let core = self.core();
        let Some(frame) = self.frame(&batch).await? else {
            return Ok(Pushed::Dropped);
        };
        let need = frame.disk_len();
        let when_full = self.inner.when_full;
        let wait = if when_full == WhenFull::Block {
            wait
        } else {
            Wait::No
        };
        let mut evicted_for_disk = false;
        loop {
            let notified = core.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let refused = match self.reserve(need) {
                Ok(reservation) => {
                    if self.append(&batch, &frame, reservation).await? {
                        return Ok(Pushed::Queued);
                    }
                    // The write failed; the writer paused appends: the policy applies next time
                    // round.
                    continue;
                }
                Err(refused) => refused,
            };
            let room = match when_full {
                WhenFull::DropNewest => false,
                WhenFull::DropOldest => self.make_room(refused, &mut evicted_for_disk).await,
                WhenFull::Block => {
                    self.wait_for_space(refused, wait, notified).await?;
                    true
                }
            };
            if !room {
                core.counters.drop(refused.reason(), 1, batch.items);
                return Ok(Pushed::Dropped);
            }
        }
    }

    /// The frame `batch` is stored as (compressed off the runtime's threads when large); `None`,
    /// counted and logged, when it is too large for a spool record.
    async fn frame(&self, batch: &Batch) -> Result<Option<Frame>, PushError> {
        let core = self.core();
        if record::frame_len(batch) - record::HEADER_LEN > record::MAX_BODY {
            core.counters.drop("too_large", 1, batch.items);
            warn!(exporter = %core.name, bytes = batch.payload.len(), "batch too large for the disk buffer; dropped");
            return Ok(None);
        }
        // Framed (and compressed) before reserving: the space reserved is what is written.
        if core.compression == SpoolCompression::Zstd && batch.payload.len() > 64 << 10 {
            // Large payloads are compressed off the runtime's threads.
            let (b, c) = (batch.clone(), core.compression);
            let frame = tokio::task::spawn_blocking(move || record::frame(&b, c))
                .await
                .map_err(|_| PushError::Closed)?;
            Ok(Some(frame))
        } else {
            Ok(Some(record::frame(batch, core.compression)))
        }
    }

    /// Reserves `need` bytes, or says why not: a write failed a moment ago, or the spool is full
    /// (an empty spool takes a record of any size).
    fn reserve(&self, need: u64) -> Result<Reservation, Refused> {
        let core = self.core();
        {
            let mut st = core.lock();
            match st.write_failed {
                Some((t, e)) if Instant::now() < t => return Err(Refused::WriteFailed(t, e)),
                _ => {
                    st.write_failed = None;
                    if st.used != 0 && st.used + need > core.max_size {
                        return Err(Refused::Full);
                    }
                    let used = st.used + need;
                    st.set_used(used);
                }
            }
        }
        Ok(Reservation::new(core.clone(), need))
    }

    /// Hands the record to the writer and waits for it to be durable: true once it is, false
    /// when the write failed (the writer then pauses appends).
    async fn append(
        &self,
        batch: &Batch,
        frame: &Frame,
        reservation: Reservation,
    ) -> Result<bool, PushError> {
        let (reply, answer) = oneshot::channel();
        let append = Append {
            batch: batch.clone(),
            frame: frame.clone(),
            reservation,
            reply,
        };
        let handed = Instant::now();
        if self.inner.tx.send(append).await.is_err() {
            return Err(PushError::Closed);
        }
        let answer = answer.await;
        self.core()
            .counters
            .append_seconds
            .observe(handed.elapsed().as_secs_f64());
        match answer {
            Ok(Ok(())) => Ok(true),
            Ok(Err(_)) => Ok(false),
            Err(_) => Err(PushError::Closed),
        }
    }

    /// `drop_oldest`: evicts the oldest sealed segment to make room; false when the new batch
    /// must be dropped instead (nothing to evict, or the disk is still full after an eviction).
    async fn make_room(&self, refused: Refused, evicted_for_disk: &mut bool) -> bool {
        let core = self.core();
        let disk = matches!(refused, Refused::WriteFailed(..));
        if disk && *evicted_for_disk {
            return false;
        }
        // On a full disk, space returns when the cursor thread has deleted the evicted segment
        // (which also lifts the pause on appends): listen before evicting so that news is not
        // missed.
        let deleted = core.space.notified();
        tokio::pin!(deleted);
        deleted.as_mut().enable();
        if !self.evict_oldest().await {
            return false;
        }
        if disk {
            *evicted_for_disk = true;
            let _ = tokio::time::timeout(writer::DISK_FULL_PAUSE, deleted).await;
        }
        true
    }

    /// `block`: waits for space (`notified`), or until a paused append may be retried, within
    /// what `wait` allows; [`PushError::Full`] once that has passed.
    async fn wait_for_space(
        &self,
        refused: Refused,
        wait: Wait,
        notified: Pin<&mut Notified<'_>>,
    ) -> Result<(), PushError> {
        let until = match wait {
            Wait::No => return Err(PushError::Full),
            Wait::Until(d) => Some(d),
            Wait::Forever => None,
        };
        let retry = match refused {
            Refused::WriteFailed(t, _) => Some(tokio::time::Instant::from_std(t)),
            Refused::Full => None,
        };
        let wake = match (until, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match wake {
            Some(t) => {
                let _ = tokio::time::timeout_at(t, notified).await;
            }
            None => notified.await,
        }
        if until.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Err(PushError::Full);
        }
        Ok(())
    }

    /// Discards the oldest sealed segment's unexported records (`drop_oldest`); false when there
    /// is nothing to discard (all unexported data is in the segment being written).
    async fn evict_oldest(&self) -> bool {
        let core = self.core().clone();
        let Some(Eviction {
            segment: s,
            held,
            unread,
        }) = Self::plan_eviction(&core)
        else {
            return false;
        };
        // Every producer of this spool is under drop_oldest: none waits for space, so only the
        // cursor thread is told (it deletes the segment, then wakes whoever waits for disk).
        self.inner.handle.wake_cursor();
        let (records, items) = match unread {
            Some((f, from, to)) => tokio::task::spawn_blocking(move || {
                segment::count(&f, s, from, to).unwrap_or((0, 0))
            })
            .await
            .unwrap_or((0, 0)),
            None => (0, 0),
        };
        core.counters.drop("evicted", records, items);
        core.lock().add_items(-(items.min(i64::MAX as u64) as i64));
        if core.warn_full.check().is_some() {
            warn!(exporter = %core.name, segment = %segment::file_name(s), batches = records, items, in_flight = held, "disk buffer full: dropped the oldest unexported data (when_full = drop_oldest)");
        }
        true
    }

    /// Moves the cursor past the oldest sealed segment: its records in flight are marked done
    /// (and evicted), the read position skips it. `None` when there is no sealed segment.
    fn plan_eviction(core: &Core) -> Option<Eviction> {
        let mut st = core.lock();
        let s = st.cursor.segment;
        if s >= st.active {
            return None;
        }
        // Counted below from its file, which must not be reused meanwhile.
        st.recycle_floor = st.recycle_floor.max(s + 1);
        let mut held = 0u64;
        for e in st.inflight.iter_mut() {
            if e.start.segment != s {
                break;
            }
            if !e.done {
                e.done = true;
                e.evicted = true;
                held += 1;
            }
        }
        let unread = if st.read.segment == s {
            let (from, to) = (st.read.offset, st.seg_len(s));
            st.read = Pos {
                segment: s + 1,
                offset: 0,
            };
            st.normalize_read();
            // Opened now, before the cursor thread can delete it.
            File::open(segment::path(&core.dir, s))
                .ok()
                .map(|f| (f, from, to))
        } else {
            None
        };
        st.advance_cursor();
        Some(Eviction {
            segment: s,
            held,
            unread,
        })
    }
}

/// The oldest sealed segment, discarded by `drop_oldest`.
struct Eviction {
    segment: u64,
    /// Its records the export worker held (now marked done and evicted).
    held: u64,
    /// Its file and the range `[from, to)` never read, whose records are to be counted.
    unread: Option<(File, u64, u64)>,
}
