//! The reader thread: scans the journal directory, reads the merged entries, filters and
//! encodes them, and hands batches (with the positions they reach) to the source's async loop.
//! When every file is at its end it waits for inotify or `poll_interval`, then looks again.

use super::checkpoint::{Position, Tracker};
use super::encode::Encoder;
use super::header::Id128;
use super::map::{Filter, Mapper};
use super::merge::{Events, Merge, Resume, Start};
use super::reader::cursor;
use super::{lock, Counters, Outgoing};
use crate::sources::file::watch::{Stop, Waiter};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

pub struct Reader {
    pub dir: PathBuf,
    pub start_at_end: bool,
    pub poll: Duration,
    pub filter: Filter,
    pub mapper: Mapper,
    pub encoder: Encoder,
    pub tracker: Arc<Mutex<Tracker>>,
    pub counters: Counters,
    pub stop: Stop,
    pub batch_items: u64,
    pub batch_bytes: usize,
}

/// The batch being built: positions reached per file.
#[derive(Default)]
struct Pending {
    positions: HashMap<Id128, Position>,
    entries: u64,
    newest_realtime: u64,
}

impl Reader {
    pub fn run(mut self, tx: mpsc::Sender<Outgoing>) {
        let mut merge = Merge::default();
        let mut waiter = Waiter::new(self.stop.clone(), true);
        let mut start = if self.start_at_end {
            Start::End
        } else {
            Start::Beginning
        };
        let mut pending = Pending::default();
        let mut newest = 0u64;
        let mut missing_warned = false;
        while !self.stop.is_stopped() {
            if !self.dir.is_dir() && !missing_warned {
                missing_warned = true;
                warn!(directory = %self.dir.display(), "journal directory not found; waiting for it");
            }
            let tracker = self.tracker.clone();
            let resume = move |id: Id128| {
                lock(&tracker).get(id).map(|p| Resume {
                    entries: p.entries,
                    seqnum: p.seqnum,
                })
            };
            let (dirs, events) = merge.scan(&self.dir, resume, start);
            start = Start::Beginning;
            self.report(&events);
            if !events.opened.is_empty() {
                let mut t = lock(&self.tracker);
                for (id, path, entries) in merge.positions() {
                    t.seed(id, &path, entries);
                }
            }
            waiter.set_dirs(dirs.into_iter().collect());
            if !self.read_all(&mut merge, &mut pending, &tx) {
                return;
            }
            newest = newest.max(pending.newest_realtime);
            if !self.flush(&mut pending, &tx) {
                return;
            }
            for (path, why) in merge.take_damaged() {
                self.counters.corrupt_files.inc();
                warn!(path = %path.display(), error = %why, "journal file damaged; skipped from the damage on");
            }
            self.counters.open_files.set(merge.open_files() as i64);
            lock(&self.tracker).retain_files(&merge.file_ids());
            let delivered = lock(&self.tracker).delivered_realtime();
            let lag = newest.saturating_sub(delivered.max(1)) / 1_000_000;
            self.counters
                .checkpoint_lag
                .set(if delivered == 0 { 0 } else { lag as i64 });
            let _ = waiter.wait(self.poll);
        }
    }

    fn report(&self, ev: &Events) {
        for p in &ev.opened {
            info!(path = %p.display(), "journal file opened");
        }
        for p in &ev.closed {
            info!(path = %p.display(), "journal file closed (deleted and read to its end)");
        }
        for (p, why) in &ev.unreadable {
            warn!(path = %p.display(), error = %why, "not a readable journal file; skipped");
        }
    }

    /// Reads every entry available now. False when the pipeline is gone (stop).
    fn read_all(
        &mut self,
        merge: &mut Merge,
        pending: &mut Pending,
        tx: &mpsc::Sender<Outgoing>,
    ) -> bool {
        let mut fields = Vec::new();
        let mut record = Vec::new();
        while let Some((i, entry)) = merge.next_entry() {
            let Some(file) = merge.file_mut(i) else {
                continue;
            };
            fields.clear();
            let errs = file.fields(&entry, &mut fields);
            self.counters.corrupt_fields.add(errs.corrupt);
            self.counters.large_fields.add(errs.too_large);
            self.counters.entries.inc();
            let bytes: usize = fields.iter().map(Vec::len).sum();
            self.counters.bytes.add(bytes as u64);
            let h = file.header();
            pending.positions.insert(
                h.file_id,
                Position {
                    file_id: h.file_id.to_string(),
                    entries: file.consumed(),
                    seqnum: entry.seqnum,
                    realtime: entry.realtime,
                    cursor: cursor(h.seqnum_id, &entry),
                    path: file.path().to_path_buf(),
                },
            );
            pending.entries += 1;
            pending.newest_realtime = pending.newest_realtime.max(entry.realtime);
            if self.filter.keeps(&fields) {
                record.clear();
                self.mapper.encode(&entry, &fields, &mut record);
                self.encoder.push_encoded(&record);
            } else {
                self.counters.filtered.inc();
            }
            let full = self.encoder.items() >= self.batch_items
                || self.encoder.len() >= self.batch_bytes
                || pending.entries >= self.batch_items * 4;
            if full && !self.flush(pending, tx) {
                return false;
            }
            if self.stop.is_stopped() {
                return false;
            }
        }
        true
    }

    /// Hands the batch (or, when every entry was filtered out, its positions) over.
    fn flush(&mut self, pending: &mut Pending, tx: &mpsc::Sender<Outgoing>) -> bool {
        if pending.positions.is_empty() {
            return true;
        }
        let payload = self.encoder.finish();
        if let Some((_, n)) = &payload {
            self.counters.records.add(*n);
        }
        let out = Outgoing {
            payload,
            positions: pending.positions.drain().map(|(_, p)| p).collect(),
        };
        pending.entries = 0;
        tx.blocking_send(out).is_ok()
    }
}
