//! File identity: a hash of a file's first bytes (its fingerprint), with device and inode as a
//! hint. The fingerprint follows a file through renames and copies; the inode tells two files
//! apart when their fingerprints are too short to be trusted alone.
//!
//! A file shorter than the configured fingerprint length has a short fingerprint (of what it
//! has); as it grows the fingerprint is extended. A short fingerprint matches a file only with
//! the same device and inode, so two young files that begin alike are not confused.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use xxhash_rust::xxh3::xxh3_64;

/// The hash of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub hash: u64,
    pub len: u32,
}

impl Fingerprint {
    /// The fingerprint of `prefix` (the file's first bytes, as many as there are up to the
    /// configured length).
    pub fn of(prefix: &[u8]) -> Self {
        Fingerprint {
            hash: xxh3_64(prefix),
            len: u32::try_from(prefix.len()).unwrap_or(u32::MAX),
        }
    }

    /// Whether a file starting with `prefix` begins with the bytes this fingerprint was taken of.
    pub fn is_prefix_of(&self, prefix: &[u8]) -> bool {
        prefix
            .get(..self.len as usize)
            .is_some_and(|p| xxh3_64(p) == self.hash)
    }
}

/// Reads up to `max` bytes from the start of `file` into `buf` (cleared first).
pub fn read_prefix(file: &File, max: usize, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.resize(max, 0);
    let mut got = 0;
    while got < max {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.clear();
                return Err(e);
            }
        }
    }
    buf.truncate(got);
    Ok(())
}

/// Whether a file starting with `prefix` is compressed (gzip, zstd, xz, bzip2, lz4, zip, 7z).
pub fn is_compressed(prefix: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        &[0x1f, 0x8b],                         // gzip
        &[0x28, 0xb5, 0x2f, 0xfd],             // zstd
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00], // xz
        b"BZh",                                // bzip2
        &[0x04, 0x22, 0x4d, 0x18],             // lz4 frame
        b"PK\x03\x04",                         // zip
        &[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c], // 7z
    ];
    MAGIC.iter().any(|m| prefix.starts_with(m))
}

/// Whether a path's name says it is compressed (checked before opening).
pub fn has_compressed_extension(name: &str) -> bool {
    const EXT: &[&str] = &[
        ".gz", ".tgz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".7z", ".br", ".lzma", ".Z",
    ];
    EXT.iter().any(|e| name.ends_with(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_matches_a_file_that_grew() {
        let short = Fingerprint::of(b"2024-01-01 hello");
        assert!(short.is_prefix_of(b"2024-01-01 hello\n2024-01-01 world\n"));
        assert!(!short.is_prefix_of(b"2024-01-02 hello\n"));
        // A file shorter than the fingerprint cannot be the same file.
        assert!(!short.is_prefix_of(b"2024-01-01"));
    }

    #[test]
    fn compressed_files_are_recognised_by_magic_and_name() {
        assert!(is_compressed(&[0x1f, 0x8b, 8, 0]));
        assert!(is_compressed(b"BZh91AY"));
        assert!(!is_compressed(b"2024-01-01 plain text"));
        assert!(has_compressed_extension("app.log.1.gz"));
        assert!(!has_compressed_extension("app.log.1"));
    }

    #[test]
    fn read_prefix_reads_at_most_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let f = File::open(&p).unwrap();
        let mut buf = Vec::new();
        read_prefix(&f, 4, &mut buf).unwrap();
        assert_eq!(buf, b"0123");
        read_prefix(&f, 100, &mut buf).unwrap();
        assert_eq!(buf, b"0123456789");
    }
}
