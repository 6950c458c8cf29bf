//! Checkpoints: for every file known, its fingerprint and the offset up to which its lines have
//! been delivered. Positions advance only when the batch holding the lines is acknowledged —
//! every exporter buffer that took it has finished with it — and in the order batches were sent,
//! so a position never passes a line that is still in flight (at-least-once).
//!
//! The checkpoint file is written atomically (temporary file, fsync, rename, fsync of the
//! directory): after a crash it holds either the previous or the new positions, never a mix.

use super::fingerprint::Fingerprint;
use serde::{Deserialize, Serialize};
use sonde_core::fs::write_atomic;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// One file's persisted position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// xxh3 of the first `fingerprint_len` bytes, hex.
    #[serde(with = "hex_u64")]
    pub fingerprint: u64,
    pub fingerprint_len: u32,
    pub dev: u64,
    pub ino: u64,
    /// Bytes delivered: reading resumes here.
    pub offset: u64,
    /// Where the file was last seen (for people reading the file; not used to match).
    pub path: PathBuf,
}

impl Entry {
    pub fn fp(&self) -> Fingerprint {
        Fingerprint {
            hash: self.fingerprint,
            len: self.fingerprint_len,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: Vec<Entry>,
}

mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Done,
    Failed,
}

/// A batch sent: its sequence number, the (file id, offset) positions it covers, its state.
type InFlight = (u64, Vec<(u64, u64)>, State);

/// Positions in flight and delivered, shared by the tailer (which registers files and batches)
/// and the acknowledgements (which complete batches).
#[derive(Debug, Default)]
pub struct Tracker {
    /// Delivered positions by file id.
    entries: HashMap<u64, Entry>,
    /// Batches sent and not yet completed, in order.
    inflight: VecDeque<InFlight>,
    next_seq: u64,
    dirty: bool,
}

impl Tracker {
    /// Starts from persisted entries (file ids are their index).
    pub fn with_entries(entries: Vec<Entry>) -> Self {
        Tracker {
            entries: entries
                .into_iter()
                .enumerate()
                .map(|(i, e)| (i as u64, e))
                .collect(),
            ..Default::default()
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// Registers a file (or updates what identifies it) without moving its delivered offset;
    /// `offset` is used when the file is new to the tracker.
    pub fn upsert(
        &mut self,
        id: u64,
        fp: Fingerprint,
        dev: u64,
        ino: u64,
        path: &Path,
        offset: u64,
    ) {
        match self.entries.get_mut(&id) {
            Some(e) => {
                if e.fp() != fp || e.dev != dev || e.ino != ino || e.path != path {
                    e.fingerprint = fp.hash;
                    e.fingerprint_len = fp.len;
                    e.dev = dev;
                    e.ino = ino;
                    e.path = path.to_path_buf();
                    self.dirty = true;
                }
            }
            None => {
                self.entries.insert(
                    id,
                    Entry {
                        fingerprint: fp.hash,
                        fingerprint_len: fp.len,
                        dev,
                        ino,
                        offset,
                        path: path.to_path_buf(),
                    },
                );
                self.dirty = true;
            }
        }
    }

    /// Forgets a file (no longer seen for long).
    pub fn forget(&mut self, id: u64) {
        if self.entries.remove(&id).is_some() {
            self.dirty = true;
        }
    }

    /// Records a batch leaving with these (file id, offset after its last line) positions;
    /// returns its sequence number for [`Tracker::complete`].
    pub fn begin(&mut self, positions: Vec<(u64, u64)>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.inflight.push_back((seq, positions, State::Pending));
        seq
    }

    /// A batch was acknowledged (`delivered`) or abandoned. Positions advance through every
    /// leading delivered batch; an abandoned one stops them for good (its lines are re-read on
    /// the next start).
    pub fn complete(&mut self, seq: u64, delivered: bool) {
        let Some(front) = self.inflight.front().map(|f| f.0) else {
            return;
        };
        let Some(slot) = seq
            .checked_sub(front)
            .and_then(|i| self.inflight.get_mut(i as usize))
        else {
            return;
        };
        slot.2 = if delivered {
            State::Done
        } else {
            State::Failed
        };
        while let Some((_, _, State::Done)) = self.inflight.front() {
            let Some((_, positions, _)) = self.inflight.pop_front() else {
                break;
            };
            for (id, offset) in positions {
                if let Some(e) = self.entries.get_mut(&id) {
                    if e.offset != offset {
                        e.offset = offset;
                        self.dirty = true;
                    }
                }
            }
        }
    }

    /// Batches sent and not yet acknowledged (abandoned ones excluded).
    pub fn pending(&self) -> usize {
        self.inflight
            .iter()
            .filter(|b| b.2 == State::Pending)
            .count()
    }

    /// The entries to persist when something changed since the last call.
    pub fn take_dirty(&mut self) -> Option<Vec<Entry>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some(
            self.entries
                .values()
                // A file with no bytes identified yet has nothing to resume.
                .filter(|e| e.fingerprint_len > 0)
                .cloned()
                .collect(),
        )
    }

    /// Marks the state as changed (a failed write is retried).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// The delivered offset of a file.
    pub fn offset(&self, id: u64) -> Option<u64> {
        self.entries.get(&id).map(|e| e.offset)
    }
}

/// Where a source keeps its checkpoints: `<data_dir>/file/<source>/checkpoints.json`.
pub struct Store {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("checkpoint file {path}: {source}")]
pub struct StoreError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl Store {
    const FILE: &'static str = "checkpoints.json";

    /// Creates the directory if needed and checks it is writable.
    pub fn open(data_dir: &Path, source: &str) -> Result<Store, StoreError> {
        let dir = data_dir.join("file").join(source);
        std::fs::create_dir_all(&dir).map_err(|e| StoreError {
            path: dir.clone(),
            source: e,
        })?;
        let probe = dir.join(".probe");
        File::create(&probe)
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|e| StoreError {
                path: dir.clone(),
                source: e,
            })?;
        Ok(Store { dir })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(Self::FILE)
    }

    /// The saved entries: `Ok(None)` when there is no checkpoint file yet (a first start).
    pub fn load(&self) -> Result<Option<Vec<Entry>>, StoreError> {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError { path, source: e }),
        };
        match serde_json::from_slice::<OnDisk>(&text) {
            Ok(d) => Ok(Some(d.files)),
            Err(e) => Err(StoreError {
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
        }
    }

    /// Moves an unreadable checkpoint file aside (kept for a person to look at).
    pub fn set_aside(&self) -> PathBuf {
        let to = self.dir.join(format!("{}.corrupt", Self::FILE));
        let _ = std::fs::rename(self.path(), &to);
        to
    }

    /// Writes the entries atomically: temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self, files: Vec<Entry>) -> Result<(), StoreError> {
        let path = self.path();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let body = serde_json::to_vec(&OnDisk { version: 1, files })
            .map_err(|e| err(io::Error::other(e)))?;
        write_atomic(&path, &body, true).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u64) -> Fingerprint {
        Fingerprint { hash: n, len: 8 }
    }

    #[test]
    fn positions_advance_only_through_acknowledged_batches_in_order() {
        let mut t = Tracker::default();
        t.upsert(1, fp(1), 0, 1, Path::new("/a"), 0);
        let a = t.begin(vec![(1, 100)]);
        let b = t.begin(vec![(1, 200)]);
        let c = t.begin(vec![(1, 300)]);
        t.complete(b, true);
        assert_eq!(t.offset(1), Some(0), "b is done but a is not");
        t.complete(a, true);
        assert_eq!(t.offset(1), Some(200));
        assert_eq!(t.pending(), 1);
        t.complete(c, false);
        let d = t.begin(vec![(1, 400)]);
        t.complete(d, true);
        assert_eq!(t.offset(1), Some(200), "nothing passes an abandoned batch");
    }

    #[test]
    fn the_store_round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "src").unwrap();
        assert!(s.load().unwrap().is_none());
        let mut t = Tracker::default();
        t.upsert(1, fp(0xabc), 3, 4, Path::new("/var/log/x"), 42);
        let entries = t.take_dirty().unwrap();
        assert!(t.take_dirty().is_none());
        s.save(entries.clone()).unwrap();
        assert_eq!(s.load().unwrap().unwrap(), entries);
        std::fs::write(s.path(), b"{not json").unwrap();
        assert!(s.load().is_err());
        let aside = s.set_aside();
        assert!(aside.exists());
        assert!(s.load().unwrap().is_none());
    }
}
