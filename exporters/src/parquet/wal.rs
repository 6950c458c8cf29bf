//! The staging log of one open Parquet file: every batch the file holds, as it arrived
//! (zstd-compressed OTLP bytes), appended and fsynced before `export` returns. It is what makes
//! an acknowledged batch durable while the Parquet file it goes into is still being built in
//! memory, and what a file is rebuilt from after a crash.
//!
//! Layout: a header (magic, signal, open time, host; CRC32C), then records of
//! `data_len u32 | raw_len u32 | crc32c(data) u32 | data` (little-endian). A reader stops at the
//! first record that is torn or fails its CRC: everything before it was fsynced intact.
//!
//! The file's identity is the XXH3-128 hash of the log's bytes up to its last good record:
//! the same batches in the same order give the same identity, whoever computes it.

use sonde_core::fs::sync_dir;
use sonde_core::Signal;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::Xxh3;

const MAGIC: &[u8; 8] = b"SONDEPQ1";
const RECORD_HEADER: usize = 12;
/// A record claiming more than this is treated as damage, not allocated.
const MAX_RECORD: u32 = 1 << 30;
/// zstd level for records: fast, and OTLP compresses several times.
const LEVEL: i32 = 1;

/// What the log says about its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub signal: Signal,
    pub opened_unix_nanos: i64,
    pub host: String,
}

fn signal_byte(s: Signal) -> u8 {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let host = self.host.as_bytes();
        let host = &host[..host.len().min(u16::MAX as usize)];
        let mut v = Vec::with_capacity(8 + 1 + 8 + 2 + host.len() + 4);
        v.extend_from_slice(MAGIC);
        v.push(signal_byte(self.signal));
        v.extend_from_slice(&self.opened_unix_nanos.to_le_bytes());
        v.extend_from_slice(&(host.len() as u16).to_le_bytes());
        v.extend_from_slice(host);
        let crc = crc32c::crc32c(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    }
}

/// Appends records to a new log.
pub struct WalWriter {
    file: File,
    path: PathBuf,
    len: u64,
    hasher: Xxh3,
}

impl WalWriter {
    /// Creates the log with its header and makes it durable (file and directory entry).
    pub fn create(path: &Path, header: &Header) -> io::Result<WalWriter> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let bytes = header.encode();
        file.write_all(&bytes)?;
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        let mut hasher = Xxh3::new();
        hasher.update(&bytes);
        Ok(WalWriter {
            file,
            path: path.to_path_buf(),
            len: bytes.len() as u64,
            hasher,
        })
    }

    /// Appends one payload and fsyncs. On failure the log is cut back to where it was, so a
    /// failed append never leaves a torn record in front of later ones; if even that fails the
    /// error says so and the log must not be appended to again.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), AppendError> {
        let data = zstd::bulk::compress(payload, LEVEL).map_err(AppendError::Retry)?;
        let mut rec = Vec::with_capacity(RECORD_HEADER + data.len());
        rec.extend_from_slice(&(data.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32c::crc32c(&data).to_le_bytes());
        rec.extend_from_slice(&data);
        let written = self
            .file
            .write_all(&rec)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += rec.len() as u64;
                self.hasher.update(&rec);
                Ok(())
            }
            Err(e) => {
                let cut = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(|_| ()));
                match cut {
                    Ok(()) => Err(AppendError::Retry(e)),
                    Err(_) => Err(AppendError::Broken(e)),
                }
            }
        }
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity of the batches appended so far.
    pub fn id(&self) -> String {
        id_hex(self.hasher.digest128())
    }
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Nothing was kept; the same payload may be appended again.
    #[error("cannot append to the staging log: {0}")]
    Retry(io::Error),
    /// The log could not be cut back after a failed write: close this file and start another.
    #[error("staging log damaged and cannot be cut back: {0}")]
    Broken(io::Error),
}

fn id_hex(h: u128) -> String {
    format!("{h:032x}")
}

/// Reads a log from the start, record by record.
pub struct WalReader {
    file: io::BufReader<File>,
    pub header: Header,
    hasher: Xxh3,
    good_len: u64,
    file_len: u64,
}

impl WalReader {
    pub fn open(path: &Path) -> io::Result<WalReader> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        let mut file = io::BufReader::new(file);
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let mut fixed = [0u8; 8 + 1 + 8 + 2];
        file.read_exact(&mut fixed)?;
        if &fixed[..8] != MAGIC {
            return Err(bad("not a Sonde Parquet staging log"));
        }
        let signal = match fixed[8] {
            0 => Signal::Traces,
            1 => Signal::Metrics,
            2 => Signal::Logs,
            _ => return Err(bad("unknown signal in the staging log header")),
        };
        let mut n = [0u8; 8];
        n.copy_from_slice(&fixed[9..17]);
        let opened_unix_nanos = i64::from_le_bytes(n);
        let host_len = u16::from_le_bytes([fixed[17], fixed[18]]) as usize;
        let mut host = vec![0u8; host_len];
        file.read_exact(&mut host)?;
        let mut crc = [0u8; 4];
        file.read_exact(&mut crc)?;
        let mut head = fixed.to_vec();
        head.extend_from_slice(&host);
        if crc32c::crc32c(&head) != u32::from_le_bytes(crc) {
            return Err(bad("staging log header fails its CRC"));
        }
        head.extend_from_slice(&crc);
        let mut hasher = Xxh3::new();
        hasher.update(&head);
        Ok(WalReader {
            file,
            header: Header {
                signal,
                opened_unix_nanos,
                host: String::from_utf8_lossy(&host).into_owned(),
            },
            hasher,
            good_len: head.len() as u64,
            file_len,
        })
    }

    /// The next payload, or `None` at the end or at the first damaged record.
    pub fn next_payload(&mut self) -> Option<Vec<u8>> {
        let mut h = [0u8; RECORD_HEADER];
        self.file.read_exact(&mut h).ok()?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (data_len, raw_len, crc) = (word(0), word(4), word(8));
        if data_len > MAX_RECORD || raw_len > MAX_RECORD {
            return None;
        }
        if self.good_len + (RECORD_HEADER as u64) + u64::from(data_len) > self.file_len {
            return None;
        }
        let mut data = vec![0u8; data_len as usize];
        self.file.read_exact(&mut data).ok()?;
        if crc32c::crc32c(&data) != crc {
            return None;
        }
        let payload = zstd::bulk::decompress(&data, raw_len as usize).ok()?;
        if payload.len() != raw_len as usize {
            return None;
        }
        self.hasher.update(&h);
        self.hasher.update(&data);
        self.good_len += (RECORD_HEADER + data.len()) as u64;
        Some(payload)
    }

    /// Identity of the good records read so far (call after the last `next_payload`).
    pub fn id(&self) -> String {
        id_hex(self.hasher.digest128())
    }

    /// Bytes past the last good record (a torn or damaged tail), once reading has ended.
    pub fn dropped_bytes(&self) -> u64 {
        self.file_len.saturating_sub(self.good_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            signal: Signal::Logs,
            opened_unix_nanos: 1_700_000_000_000_000_000,
            host: "h1".into(),
        }
    }

    #[test]
    fn records_round_trip_and_identity_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wal");
        let mut w = WalWriter::create(&path, &header()).unwrap();
        w.append(b"first payload").unwrap();
        w.append(&vec![7u8; 100_000]).unwrap();
        let id = w.id();
        drop(w);
        let mut r = WalReader::open(&path).unwrap();
        assert_eq!(r.header, header());
        assert_eq!(r.next_payload().unwrap(), b"first payload");
        assert_eq!(r.next_payload().unwrap(), vec![7u8; 100_000]);
        assert!(r.next_payload().is_none());
        assert_eq!(r.id(), id);
        assert_eq!(r.dropped_bytes(), 0);
    }

    #[test]
    fn torn_tail_is_dropped_and_identity_covers_the_good_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wal");
        let mut w = WalWriter::create(&path, &header()).unwrap();
        w.append(b"kept").unwrap();
        let id_after_first = w.id();
        let good_len = w.len();
        w.append(b"torn away by a crash").unwrap();
        drop(w);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(good_len + 7).unwrap();
        let mut r = WalReader::open(&path).unwrap();
        assert_eq!(r.next_payload().unwrap(), b"kept");
        assert!(r.next_payload().is_none());
        assert_eq!(r.id(), id_after_first);
        assert_eq!(r.dropped_bytes(), 7);
    }

    #[test]
    fn a_flipped_bit_stops_reading_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wal");
        let mut w = WalWriter::create(&path, &header()).unwrap();
        w.append(b"one").unwrap();
        let len = w.len();
        w.append(b"two").unwrap();
        w.append(b"three").unwrap();
        drop(w);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[len as usize + RECORD_HEADER] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let mut r = WalReader::open(&path).unwrap();
        assert_eq!(r.next_payload().unwrap(), b"one");
        assert!(r.next_payload().is_none());
        assert!(r.dropped_bytes() > 0);
    }

    #[test]
    fn garbage_is_not_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wal");
        std::fs::write(&path, b"definitely not a staging log").unwrap();
        assert!(WalReader::open(&path).is_err());
    }
}
