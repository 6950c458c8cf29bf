//! All the journal files of a directory (and its machine-id subdirectories) read as one stream
//! in time order: each file's next entry waits as its head, and the earliest head (realtime,
//! then sequence number) goes next — entries of different files interleave as journalctl shows
//! them. Files are found by scanning the directories; a file is known by its device and inode,
//! so an archived file (renamed to `…@….journal`) keeps its place, a new file (rotation) is
//! read from its start, and a deleted file (vacuum) is read to its end and then closed.

use super::header::Id128;
use super::object::EntryObject;
use super::reader::{JournalFile, OpenError};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Journal files followed at once; more are left for a later scan.
const MAX_FILES: usize = 4096;

/// Where to resume a file known to the checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub entries: u64,
    pub seqnum: u64,
}

/// Where files never seen before start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Beginning,
    End,
}

struct Slot {
    file: JournalFile,
    dev: u64,
    ino: u64,
    head: Option<EntryObject>,
    /// Nothing more to read until the next refresh.
    idle: bool,
    /// No longer found by the scan (deleted): closed once read to the end.
    gone: bool,
    damage_reported: bool,
}

/// What a scan or read found worth telling.
#[derive(Debug, Default)]
pub struct Events {
    pub opened: Vec<PathBuf>,
    pub closed: Vec<PathBuf>,
    /// Files that could not be opened as journals (path, why), each reported once.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The files being read and their merged order.
#[derive(Default)]
pub struct Merge {
    slots: Vec<Slot>,
    warned: HashSet<PathBuf>,
}

/// The journal files in `dir` and its direct subdirectories (`*.journal`, `*.journal~`).
pub fn list(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    let mut walked = Vec::new();
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        walked.push(d.clone());
        for e in rd.flatten().take(MAX_FILES * 2) {
            let p = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() && d == dir {
                dirs.push(p);
            } else if t.is_file() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".journal") || name.ends_with(".journal~") {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    files.truncate(MAX_FILES);
    (files, walked)
}

impl Merge {
    /// Matches the files found in `dir` against those open: opens new ones (at `resume`'s
    /// position when the checkpoints know their file id, else as `start` says), follows
    /// renames, marks deleted ones. Returns the directories walked (to watch) and the events.
    pub fn scan(
        &mut self,
        dir: &Path,
        resume: impl Fn(Id128) -> Option<Resume>,
        start: Start,
    ) -> (Vec<PathBuf>, Events) {
        let (paths, dirs) = list(dir);
        let mut ev = Events::default();
        let mut seen = HashSet::new();
        for path in paths {
            let Ok(md) = std::fs::metadata(&path) else {
                continue;
            };
            let key = (md.dev(), md.ino());
            seen.insert(key);
            if let Some(s) = self.slots.iter_mut().find(|s| (s.dev, s.ino) == key) {
                if s.file.path() != path {
                    s.file.set_path(path);
                }
                continue;
            }
            match self.open(&path, key, &resume, start) {
                Ok(()) => ev.opened.push(path),
                Err(e) => {
                    if self.warned.insert(path.clone()) {
                        ev.unreadable.push((path, e.to_string()));
                    }
                }
            }
        }
        for s in &mut self.slots {
            if !seen.contains(&(s.dev, s.ino)) {
                s.gone = true;
            }
        }
        self.refresh(&mut ev);
        (dirs, ev)
    }

    fn open(
        &mut self,
        path: &Path,
        (dev, ino): (u64, u64),
        resume: &impl Fn(Id128) -> Option<Resume>,
        start: Start,
    ) -> Result<(), OpenError> {
        let mut file = JournalFile::open(path)?;
        if self
            .slots
            .iter()
            .any(|s| s.file.file_id() == file.file_id())
        {
            // A copy of a file already read (same file id): reading it would duplicate.
            return Ok(());
        }
        let head = match (resume(file.file_id()), start) {
            (Some(r), _) => file.skip(r.entries, r.seqnum),
            (None, Start::End) => file.skip(file.header().n_entries, 0),
            (None, Start::Beginning) => file.next_entry(),
        };
        self.slots.push(Slot {
            idle: head.is_none(),
            file,
            dev,
            ino,
            head,
            gone: false,
            damage_reported: false,
        });
        Ok(())
    }

    /// Looks again at every file for new entries; closes deleted files read to their end.
    pub fn refresh(&mut self, ev: &mut Events) {
        self.slots.retain_mut(|s| {
            if let Err(e) = s.file.refresh() {
                // Gone or unreadable: nothing more can be read from it.
                tracing::debug!(path = %s.file.path().display(), error = %e, "journal file not refreshed");
                if s.head.is_none() {
                    ev.closed.push(s.file.path().to_path_buf());
                    return false;
                }
            }
            s.idle = false;
            if s.gone && s.head.is_none() {
                s.head = s.file.next_entry();
                if s.head.is_none() {
                    ev.closed.push(s.file.path().to_path_buf());
                    return false;
                }
            }
            true
        });
    }

    /// The earliest next entry of all files, with the index of its file.
    pub fn next_entry(&mut self) -> Option<(usize, EntryObject)> {
        let mut best: Option<(usize, (u64, u64))> = None;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.head.is_none() && !s.idle {
                s.head = s.file.next_entry();
                s.idle = s.head.is_none();
            }
            if let Some(h) = &s.head {
                let key = (h.realtime, h.seqnum);
                if best.is_none_or(|(_, k)| key < k) {
                    best = Some((i, key));
                }
            }
        }
        let (i, _) = best?;
        let head = self.slots[i].head.take()?;
        Some((i, head))
    }

    pub fn file_mut(&mut self, i: usize) -> Option<&mut JournalFile> {
        self.slots.get_mut(i).map(|s| &mut s.file)
    }

    /// Files damaged since the last call: (path, what is wrong).
    pub fn take_damaged(&mut self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        for s in &mut self.slots {
            if let (Some(d), false) = (s.file.damaged(), s.damage_reported) {
                s.damage_reported = true;
                out.push((s.file.path().to_path_buf(), d.to_string()));
            }
        }
        out
    }

    pub fn open_files(&self) -> usize {
        self.slots.len()
    }

    /// Every open file's id, path, and the entries consumed before its waiting head.
    pub fn positions(&self) -> Vec<(Id128, PathBuf, u64)> {
        self.slots
            .iter()
            .map(|s| {
                let before = s.file.consumed() - u64::from(s.head.is_some());
                (s.file.file_id(), s.file.path().to_path_buf(), before)
            })
            .collect()
    }

    /// The file ids of the files open.
    pub fn file_ids(&self) -> HashSet<Id128> {
        self.slots.iter().map(|s| s.file.file_id()).collect()
    }
}
