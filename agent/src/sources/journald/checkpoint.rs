//! Positions in the journal: for every file (by its file id) the entries consumed, the last
//! sequence number and realtime, and that entry's journalctl-style cursor. A batch's positions
//! are applied only when the batch is acknowledged (every exporter that took it has finished
//! with it), in the order batches were sent, so a position never passes an entry still in
//! flight. The file `<data_dir>/journald/<source>/checkpoints.json` is written atomically
//! (`sonde_core::fs::write_atomic`): after a crash it holds the previous or the new positions.

use super::header::Id128;
use serde::{Deserialize, Serialize};
use sonde_core::fs::write_atomic;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

/// One file's delivered position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub file_id: String,
    /// Entries of the file delivered (or filtered out): reading resumes after them.
    pub entries: u64,
    pub seqnum: u64,
    /// Realtime of the last entry, µs since the epoch.
    pub realtime: u64,
    /// The last entry's cursor, as journalctl writes them (for people; not used to resume).
    pub cursor: String,
    /// Where the file was (for people reading this file).
    pub path: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: Vec<Position>,
}

/// Positions in flight and delivered.
#[derive(Debug, Default)]
pub struct Tracker {
    delivered: HashMap<String, Position>,
    /// Batches sent, in order: (sequence, positions, outcome: delivered or abandoned).
    inflight: VecDeque<(u64, Vec<Position>, Option<bool>)>,
    next_seq: u64,
    dirty: bool,
}

impl Tracker {
    pub fn new(positions: Vec<Position>) -> Self {
        Tracker {
            delivered: positions
                .into_iter()
                .map(|p| (p.file_id.clone(), p))
                .collect(),
            ..Default::default()
        }
    }

    /// The delivered position of a file.
    pub fn get(&self, file_id: Id128) -> Option<&Position> {
        self.delivered.get(&file_id.to_string())
    }

    #[cfg(test)]
    fn get_str(&self, file_id: &str) -> Option<&Position> {
        self.delivered.get(file_id)
    }

    /// Records where a file newly opened starts, unless its position is known: a file opened
    /// at its end (a first start) must not be read from its beginning after a restart.
    pub fn seed(&mut self, file_id: Id128, path: &Path, entries: u64) {
        let key = file_id.to_string();
        if self.delivered.contains_key(&key)
            || self
                .inflight
                .iter()
                .any(|b| b.1.iter().any(|p| p.file_id == key))
        {
            return;
        }
        self.delivered.insert(
            key.clone(),
            Position {
                file_id: key,
                entries,
                seqnum: 0,
                realtime: 0,
                cursor: String::new(),
                path: path.to_path_buf(),
            },
        );
        self.dirty = true;
    }

    /// Registers a batch covering `positions`; returns its sequence number.
    pub fn begin(&mut self, positions: Vec<Position>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.inflight.push_back((seq, positions, None));
        seq
    }

    /// Marks batch `seq` finished and applies every delivered batch at the front, in order.
    /// `delivered` is false for a batch abandoned before the buffers took it (a stop): its
    /// positions, and all after it, never apply, so its entries are read again after a restart.
    pub fn complete(&mut self, seq: u64, delivered: bool) {
        if let Some(b) = self.inflight.iter_mut().find(|b| b.0 == seq) {
            b.2 = Some(delivered);
        }
        while self.inflight.front().is_some_and(|b| b.2 == Some(true)) {
            if let Some((_, positions, _)) = self.inflight.pop_front() {
                for p in positions {
                    self.delivered.insert(p.file_id.clone(), p);
                }
                self.dirty = true;
            }
        }
    }

    /// Batches not yet finished.
    pub fn pending(&self) -> usize {
        self.inflight.iter().filter(|b| b.2.is_none()).count()
    }

    /// Realtime (µs) of the newest delivered entry.
    pub fn delivered_realtime(&self) -> u64 {
        self.delivered
            .values()
            .map(|p| p.realtime)
            .max()
            .unwrap_or(0)
    }

    /// Forgets files that no longer exist (vacuumed), keeping those still in flight.
    pub fn retain_files(&mut self, ids: &HashSet<Id128>) {
        let live: HashSet<String> = ids.iter().map(|i| i.to_string()).collect();
        let before = self.delivered.len();
        self.delivered.retain(|k, _| live.contains(k));
        self.dirty |= self.delivered.len() != before;
    }

    /// The positions to write, when they changed since the last call.
    pub fn take_dirty(&mut self) -> Option<Vec<Position>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let mut v: Vec<Position> = self.delivered.values().cloned().collect();
        v.sort_by(|a, b| a.file_id.cmp(&b.file_id));
        Some(v)
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }
}

/// Why checkpoints cannot be kept.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a checkpoint file: {source}")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The checkpoint file of one source.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// Creates `<data_dir>/journald/<source>/`.
    pub fn open(data_dir: &Path, source: &str) -> Result<Store, StoreError> {
        let dir = data_dir.join("journald").join(source);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Store {
            path: dir.join("checkpoints.json"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved positions; `None` when there are none yet (a first start).
    pub fn load(&self) -> Result<Option<Vec<Position>>, StoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let d: OnDisk = serde_json::from_slice(&bytes).map_err(|source| StoreError::Format {
            path: self.path.clone(),
            source,
        })?;
        Ok(Some(d.files))
    }

    /// Writes `positions` atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn save(&self, positions: Vec<Position>) -> Result<(), StoreError> {
        let d = OnDisk {
            version: 1,
            files: positions,
        };
        let json = serde_json::to_vec_pretty(&d).map_err(|source| StoreError::Format {
            path: self.path.clone(),
            source,
        })?;
        write_atomic(&self.path, &json, true).map_err(|source| StoreError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(id: &str, entries: u64) -> Position {
        Position {
            file_id: id.into(),
            entries,
            seqnum: entries,
            realtime: entries * 10,
            cursor: String::new(),
            path: PathBuf::from("/x"),
        }
    }

    #[test]
    fn positions_apply_in_send_order_once_acknowledged() {
        let mut t = Tracker::new(vec![]);
        let a = t.begin(vec![pos("f", 2)]);
        let b = t.begin(vec![pos("f", 5)]);
        t.complete(b, true);
        assert!(t.take_dirty().is_none(), "b waits for a");
        t.complete(a, true);
        assert_eq!(t.take_dirty().unwrap(), [pos("f", 5)]);
        assert_eq!(t.pending(), 0);
        assert_eq!(t.delivered_realtime(), 50);
        let c = t.begin(vec![pos("f", 6)]);
        let d = t.begin(vec![pos("f", 7)]);
        t.complete(c, false);
        t.complete(d, true);
        assert!(
            t.take_dirty().is_none(),
            "an abandoned batch holds the position back"
        );
        assert_eq!(t.get_str("f").unwrap().entries, 5);
    }

    #[test]
    fn positions_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), "j").unwrap();
        assert!(s.load().unwrap().is_none());
        s.save(vec![pos("a", 3)]).unwrap();
        assert_eq!(s.load().unwrap().unwrap(), [pos("a", 3)]);
    }
}
