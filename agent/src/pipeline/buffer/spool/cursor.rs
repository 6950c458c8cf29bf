//! The cursor file: where the next unexported record starts, persisted atomically.
//!
//! ```text
//! cursor = magic "SCU1" | segment: u64 LE | offset: u64 LE | crc: u32 LE (CRC32C of the 20 before)
//! ```
//!
//! [`store`] writes `cursor.tmp`, fsyncs it, renames it over `cursor` and fsyncs the directory,
//! so a crash leaves either the old cursor or the new one, never a mix. A missing or damaged
//! cursor is reported, never fatal: the spool then starts from its oldest segment (resend rather
//! than lose).

use super::pos::Pos;
use sonde_core::fs::write_atomic;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

pub const FILE: &str = "cursor";
pub const TEMP: &str = "cursor.tmp";
const MAGIC: [u8; 4] = *b"SCU1";
const LEN: usize = 24;

fn encode(pos: Pos) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..4].copy_from_slice(&MAGIC);
    b[4..12].copy_from_slice(&pos.segment.to_le_bytes());
    b[12..20].copy_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32c::crc32c(&b[..20]);
    b[20..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Why a cursor file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is damaged ({what})")]
    Damaged { path: String, what: &'static str },
}

/// Reads the cursor of the spool in `dir`: `Ok(None)` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<Pos>, CursorError> {
    let path = dir.join(FILE);
    let shown = || path.display().to_string();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CursorError::Io {
                path: shown(),
                source,
            })
        }
    };
    let damaged = |what| CursorError::Damaged {
        path: shown(),
        what,
    };
    let b: [u8; LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| damaged("wrong length"))?;
    if b[..4] != MAGIC {
        return Err(damaged("bad magic"));
    }
    let crc = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
    if crc32c::crc32c(&b[..20]) != crc {
        return Err(damaged("bad checksum"));
    }
    let mut seg = [0u8; 8];
    let mut off = [0u8; 8];
    seg.copy_from_slice(&b[4..12]);
    off.copy_from_slice(&b[12..20]);
    Ok(Some(Pos {
        segment: u64::from_le_bytes(seg),
        offset: u64::from_le_bytes(off),
    }))
}

/// Persists `pos` atomically: temp file, fsync, rename, directory fsync (the fsyncs only when
/// `sync`).
pub fn store(dir: &Path, pos: Pos, sync: bool) -> io::Result<()> {
    write_atomic(&dir.join(FILE), &encode(pos), sync)
}

/// Overwrites the existing cursor file in place. Used only when [`store`] failed for lack of
/// space (a new file needs a block; rewriting 24 bytes of an existing one does not). Not atomic,
/// but a torn write fails the checksum and falls back to resending, never to losing.
pub fn store_in_place(dir: &Path, pos: Pos, sync: bool) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(dir.join(FILE))?;
    f.write_all_at(&encode(pos), 0)?;
    if sync {
        f.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_cursor_loads_back() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(d.path()).unwrap().is_none());
        let p = Pos {
            segment: 7,
            offset: 1234,
        };
        store(d.path(), p, true).unwrap();
        assert_eq!(load(d.path()).unwrap(), Some(p));
        assert!(!d.path().join(TEMP).exists());
        let q = Pos {
            segment: 8,
            offset: 0,
        };
        store_in_place(d.path(), q, true).unwrap();
        assert_eq!(load(d.path()).unwrap(), Some(q));
    }

    #[test]
    fn a_damaged_cursor_is_an_error_not_a_position() {
        let d = tempfile::tempdir().unwrap();
        store(d.path(), Pos::default(), false).unwrap();
        let path = d.path().join(FILE);
        let mut b = std::fs::read(&path).unwrap();
        b[10] ^= 1;
        std::fs::write(&path, &b).unwrap();
        assert!(matches!(load(d.path()), Err(CursorError::Damaged { .. })));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(load(d.path()), Err(CursorError::Damaged { .. })));
    }
}
