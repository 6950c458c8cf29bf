//! The producers' side: reserving space, the `when_full` policies, and handing records to the
//! writer thread.

use super::*;

/// The producers' side. Cloning is cheap; when the last clone is gone the writer stops and the
/// reader returns `None`.
#[derive(Clone)]
pub struct SpoolSender {
    pub(super) inner: Arc<SenderInner>,
}

pub(super) struct SenderInner {
    pub(super) handle: Arc<Handle>,
    pub(super) tx: mpsc::Sender<Append>,
    pub(super) when_full: WhenFull,
}

impl Drop for SenderInner {
    fn drop(&mut self) {
        self.handle.core.lock().closed = true;
        self.handle.core.data.notify_one();
    }
}

enum Refused {
    Full,
    /// A write failed a moment ago (a full disk, or an I/O error): refused until then.
    WriteFailed(Instant, WriteError),
}

impl SpoolSender {
    /// Appends `batch` and returns once it is durable (per `fsync`). When the spool is full the
    /// `when_full` policy applies: `block` waits as `wait` allows and then says
    /// [`PushError::Full`]; `drop_newest` drops this batch; `drop_oldest` discards the oldest
    /// segment of unexported data (counted) to make room. A full disk is handled the same way.
    pub async fn push(&self, batch: Batch, wait: Wait) -> Result<Pushed, PushError> {
        let core = &self.inner.handle.core;
        if record::frame_len(&batch) - record::HEADER_LEN > record::MAX_BODY {
            core.counters.drop("too_large", 1, batch.items);
            warn!(exporter = %core.name, bytes = batch.payload.len(), "batch too large for the disk buffer; dropped");
            return Ok(Pushed::Dropped);
        }
        // Framed (and compressed) before reserving: the space reserved is what is written.
        let frame = if core.compression == SpoolCompression::Zstd && batch.payload.len() > 64 << 10
        {
            // Large payloads are compressed off the runtime's threads.
            let (b, c) = (batch.clone(), core.compression);
            tokio::task::spawn_blocking(move || record::frame(&b, c))
                .await
                .map_err(|_| PushError::Closed)?
        } else {
            record::frame(&batch, core.compression)
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
            let refused = {
                let mut st = core.lock();
                match st.write_failed {
                    Some((t, e)) if Instant::now() < t => Some(Refused::WriteFailed(t, e)),
                    _ => {
                        st.write_failed = None;
                        if st.used == 0 || st.used + need <= core.max_size {
                            let used = st.used + need;
                            st.set_used(used);
                            None
                        } else {
                            Some(Refused::Full)
                        }
                    }
                }
            };
            let Some(refused) = refused else {
                let reservation = Reservation {
                    core: core.clone(),
                    bytes: need,
                    armed: true,
                };
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
                core.counters
                    .append_seconds
                    .observe(handed.elapsed().as_secs_f64());
                match answer {
                    Ok(Ok(())) => return Ok(Pushed::Queued),
                    // The write failed; the writer paused appends: the policy applies below.
                    Ok(Err(_)) => continue,
                    Err(_) => return Err(PushError::Closed),
                }
            };
            let reason = match refused {
                Refused::Full => "buffer_full",
                Refused::WriteFailed(_, e) => e.reason(),
            };
            match when_full {
                WhenFull::DropNewest => {
                    core.counters.drop(reason, 1, batch.items);
                    return Ok(Pushed::Dropped);
                }
                WhenFull::DropOldest => {
                    let disk = matches!(refused, Refused::WriteFailed(..));
                    if disk && evicted_for_disk {
                        core.counters.drop(reason, 1, batch.items);
                        return Ok(Pushed::Dropped);
                    }
                    // On a full disk, space returns when the cursor thread has deleted the
                    // evicted segment (which also lifts the pause on appends): listen before
                    // evicting so that news is not missed.
                    let deleted = core.space.notified();
                    tokio::pin!(deleted);
                    deleted.as_mut().enable();
                    if !self.evict_oldest().await {
                        core.counters.drop(reason, 1, batch.items);
                        return Ok(Pushed::Dropped);
                    }
                    if disk {
                        evicted_for_disk = true;
                        let _ = tokio::time::timeout(writer::DISK_FULL_PAUSE, deleted).await;
                    }
                }
                WhenFull::Block => {
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
                }
            }
        }
    }

    /// Discards the oldest sealed segment's unexported records (`drop_oldest`); false when there
    /// is nothing to discard (all unexported data is in the segment being written).
    async fn evict_oldest(&self) -> bool {
        let core = self.inner.handle.core.clone();
        let plan = {
            let mut st = core.lock();
            let s = st.cursor.segment;
            if s >= st.active {
                return false;
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
                let range = (st.read.offset, st.seg_len(s));
                st.read = Pos {
                    segment: s + 1,
                    offset: 0,
                };
                st.normalize_read();
                // Opened now, before the cursor thread can delete it.
                File::open(segment::path(&core.dir, s))
                    .ok()
                    .map(|f| (f, range))
            } else {
                None
            };
            st.advance_cursor();
            (s, held, unread)
        };
        let (s, held, unread) = plan;
        // Every producer of this spool is under drop_oldest: none waits for space, so only the
        // cursor thread is told (it deletes the segment, then wakes whoever waits for disk).
        self.inner.handle.wake_cursor();
        let (records, items) = match unread {
            Some((f, (from, to))) => tokio::task::spawn_blocking(move || {
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
}
