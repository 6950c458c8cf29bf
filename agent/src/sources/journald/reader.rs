//! One journal file, read forward: the entries listed by the root chain of entry arrays (the
//! header's `entry_array_offset`), in the order they were written, each with its fields.
//!
//! The reader keeps its place (the array it is in, the index in it, the entries consumed) and,
//! when the file grows, goes on from there after [`JournalFile::refresh`]. Termination and
//! bounds: every offset goes through `object.rs`'s checks; entry offsets must strictly
//! increase and so must array offsets along the chain (objects are only ever appended), so a
//! corrupt chain can neither loop nor send the reader backwards. A structural error marks the
//! file damaged: nothing more is read from it (the entries before the damage were delivered).

use super::header::{Header, HeaderError, Id128, READ_SIZE};
use super::object::{self, ArrayHead, Bounds, EntryObject, ObjectError, Storage};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Entry offsets read ahead from an entry array at a time.
const READ_AHEAD: usize = 512;
/// Small DATA payloads kept by offset (host, boot, unit … repeat in every entry).
const CACHE_SLOTS: usize = 4096;
const CACHE_MAX_PAYLOAD: usize = 512;

/// Why a file could not be opened as a journal.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Header { path: PathBuf, source: HeaderError },
}

/// What happened to one entry's fields.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FieldErrors {
    /// DATA objects damaged (the field is left out).
    pub corrupt: u64,
    /// Fields larger than the field limit (left out).
    pub too_large: u64,
}

/// A journal file being read.
pub struct JournalFile<S: Storage = File> {
    path: PathBuf,
    storage: S,
    header: Header,
    size: u64,
    /// Entries consumed from the root chain.
    consumed: u64,
    /// The entry array being read, and the index of the next slot in it.
    array: Option<ArrayHead>,
    index: u64,
    ahead: VecDeque<u64>,
    last_entry: u64,
    damaged: Option<String>,
    buf: Vec<u8>,
    cache: Vec<Option<(u64, Box<[u8]>)>>,
}

impl JournalFile<File> {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        JournalFile::with_storage(path, file, size)
    }

    /// Sees what was appended since the last look: the header's counts and the file's size.
    pub fn refresh(&mut self) -> Result<(), OpenError> {
        let size = self
            .storage
            .metadata()
            .map_err(|source| OpenError::Io {
                path: self.path.clone(),
                source,
            })?
            .len();
        self.reload(size)
    }
}

impl<S: Storage> JournalFile<S> {
    /// A journal read from `storage` of `size` bytes (`path` names it in messages).
    pub fn with_storage(path: &Path, storage: S, size: u64) -> Result<Self, OpenError> {
        let header = read_header(path, &storage, size)?;
        Ok(JournalFile {
            path: path.to_path_buf(),
            storage,
            header,
            size,
            consumed: 0,
            array: None,
            index: 0,
            ahead: VecDeque::new(),
            last_entry: 0,
            damaged: None,
            buf: Vec::new(),
            cache: vec![None; CACHE_SLOTS],
        })
    }

    /// Reads the header again, for a file now `size` bytes long.
    pub fn reload(&mut self, size: u64) -> Result<(), OpenError> {
        let header = read_header(&self.path, &self.storage, size)?;
        if header.file_id != self.header.file_id {
            // Not the file it was: treat it as damaged rather than mix two files' positions.
            self.damaged = Some("the file was replaced (its file id changed)".into());
        }
        self.header = header;
        self.size = size;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn file_id(&self) -> Id128 {
        self.header.file_id
    }

    /// Entries consumed so far (the position to resume at).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Why reading stopped for good, when the file is damaged.
    pub fn damaged(&self) -> Option<&str> {
        self.damaged.as_deref()
    }

    /// True when every entry the header announces has been consumed.
    pub fn at_end(&self) -> bool {
        self.damaged.is_some() || self.consumed >= self.header.n_entries
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            start: self.header.header_size,
            end: self.header.used_end(self.size),
            compact: self.header.compact(),
        }
    }

    /// The next entry, or `None` when there is none yet (or the file is damaged: see
    /// [`JournalFile::damaged`]). An error about one ENTRY object skips that entry.
    pub fn next_entry(&mut self) -> Option<EntryObject> {
        // Bounded: each turn consumes an offset or returns.
        loop {
            if self.damaged.is_some() {
                return None;
            }
            let offset = match self.ahead.pop_front() {
                Some(o) => o,
                None => match self.fill() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => {
                        self.damage(&e);
                        return None;
                    }
                },
            };
            if offset <= self.last_entry {
                self.damaged = Some(format!(
                    "entry offsets go backwards ({offset} after {})",
                    self.last_entry
                ));
                return None;
            }
            self.last_entry = offset;
            self.consumed += 1;
            let bounds = self.bounds();
            match object::read_entry(&self.storage, &bounds, offset, &mut self.buf) {
                Ok(e) => return Some(e),
                Err(e) if e.is_corruption() => self.damage(&e),
                Err(e) => tracing::debug!(path = %self.path.display(), error = %e, "entry skipped"),
            }
        }
    }

    fn damage(&mut self, e: &ObjectError) {
        self.damaged = Some(e.to_string());
    }

    /// Reads the next entry offsets from the chain into `ahead`; false when there are none yet.
    fn fill(&mut self) -> Result<bool, ObjectError> {
        let bounds = self.bounds();
        let remaining = self.header.n_entries.saturating_sub(self.consumed);
        if remaining == 0 {
            return Ok(false);
        }
        // At most one step to a new array per call (a chain is walked one array at a time).
        let head = match self.array {
            None if self.header.entry_array_offset == 0 => return Ok(false),
            None => {
                object::read_array_head(&self.storage, &bounds, self.header.entry_array_offset)?
            }
            Some(h) if self.index >= h.capacity => {
                // The next link may have been written since we last looked.
                let h = object::read_array_head(&self.storage, &bounds, h.offset)?;
                if h.next == 0 {
                    self.array = Some(h);
                    return Ok(false);
                }
                if h.next <= h.offset {
                    return Err(ObjectError::Offset(h.next));
                }
                self.index = 0;
                object::read_array_head(&self.storage, &bounds, h.next)?
            }
            Some(h) => h,
        };
        self.array = Some(head);
        let max = READ_AHEAD.min(remaining as usize);
        let mut out = Vec::with_capacity(max);
        let n = object::read_array_items(&self.storage, &bounds, &head, self.index, max, &mut out)?;
        self.index += n as u64;
        self.ahead.extend(out);
        // A full array with nothing read means "go to the next one": report progress.
        Ok(n > 0 || self.index >= head.capacity)
    }

    /// Skips the first `n` entries without reading them (a resumed position), then any entry
    /// whose sequence number is not past `seqnum` (0: none).
    pub fn skip(&mut self, n: u64, seqnum: u64) -> Option<EntryObject> {
        let target = n.min(self.header.n_entries);
        // Bounded by `target`: every turn consumes entries or stops.
        while self.consumed < target && self.damaged.is_none() {
            if let Some(h) = self.array {
                let left_in_array = h.capacity.saturating_sub(self.index) as usize;
                let want = (target - self.consumed) as usize;
                if self.ahead.is_empty() && want >= left_in_array && h.next > h.offset {
                    // Step over the rest of this array without reading its items.
                    self.consumed += left_in_array as u64;
                    self.index = h.capacity;
                    if self.fill().is_err() || self.array == Some(h) {
                        break;
                    }
                    continue;
                }
            }
            if self.ahead.is_empty() {
                match self.fill() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        self.damage(&e);
                        break;
                    }
                }
            }
            let take = ((target - self.consumed) as usize).min(self.ahead.len());
            let last = self.ahead.drain(..take).next_back();
            if let Some(l) = last {
                self.last_entry = l;
            }
            self.consumed += take as u64;
        }
        // Past the target, entries already delivered (by sequence number) are dropped too.
        while let Some(e) = self.next_entry() {
            if seqnum == 0 || e.seqnum > seqnum {
                return Some(e);
            }
        }
        None
    }

    /// The entry's fields (`NAME=value`), decompressed; damaged or oversized ones are left out
    /// and counted in the returned errors.
    pub fn fields(&mut self, entry: &EntryObject, out: &mut Vec<Vec<u8>>) -> FieldErrors {
        let bounds = self.bounds();
        let mut errs = FieldErrors::default();
        for &offset in &entry.items {
            let slot = (offset as usize >> 3) % CACHE_SLOTS;
            if let Some((o, p)) = &self.cache[slot] {
                if *o == offset {
                    out.push(p.to_vec());
                    continue;
                }
            }
            match object::read_data(&self.storage, &bounds, offset, &mut self.buf) {
                Ok(p) => {
                    if p.len() <= CACHE_MAX_PAYLOAD {
                        self.cache[slot] = Some((offset, p.clone().into_boxed_slice()));
                    }
                    out.push(p);
                }
                Err(ObjectError::TooLarge { .. }) => errs.too_large += 1,
                Err(e) => {
                    tracing::debug!(path = %self.path.display(), error = %e, "field skipped");
                    errs.corrupt += 1;
                }
            }
        }
        errs
    }
}

fn read_header<S: Storage + ?Sized>(path: &Path, s: &S, size: u64) -> Result<Header, OpenError> {
    let n = (READ_SIZE as u64).min(size) as usize;
    let mut b = vec![0u8; n];
    s.read_exact_at(&mut b, 0).map_err(|source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Header::parse(&b, size).map_err(|source| OpenError::Header {
        path: path.to_path_buf(),
        source,
    })
}

/// The journalctl-style cursor of an entry of a file with `seqnum_id`.
pub fn cursor(seqnum_id: Id128, e: &EntryObject) -> String {
    format!(
        "s={seqnum_id};i={:x};b={};m={:x};t={:x};x={:x}",
        e.seqnum,
        Id128(e.boot_id),
        e.monotonic,
        e.realtime,
        e.xor_hash
    )
}
