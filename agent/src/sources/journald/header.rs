//! The journal file header: the fixed fields at the start of a journal file that say what the
//! file holds (its identity, its flags, how many entries, where the root entry array is).
//!
//! Only what the reader needs is decoded. Every field past the 208 bytes that exist in every
//! revision of the format is read only when `header_size` says it is there. Nothing here
//! follows an offset: the header's offsets are checked where they are used (`object.rs`).

use std::fmt;

/// The first 8 bytes of every journal file.
pub const SIGNATURE: &[u8; 8] = b"LPKSHHRH";
/// The header fields every revision has (up to and including `tail_entry_monotonic`).
pub const MIN_HEADER_SIZE: u64 = 208;
/// The bytes read to decode a header (the largest header known, systemd 254).
pub const READ_SIZE: usize = 272;

pub const INCOMPATIBLE_COMPRESSED_XZ: u32 = 1 << 0;
pub const INCOMPATIBLE_COMPRESSED_LZ4: u32 = 1 << 1;
pub const INCOMPATIBLE_KEYED_HASH: u32 = 1 << 2;
pub const INCOMPATIBLE_COMPRESSED_ZSTD: u32 = 1 << 3;
pub const INCOMPATIBLE_COMPACT: u32 = 1 << 4;
const INCOMPATIBLE_KNOWN: u32 = INCOMPATIBLE_COMPRESSED_XZ
    | INCOMPATIBLE_COMPRESSED_LZ4
    | INCOMPATIBLE_KEYED_HASH
    | INCOMPATIBLE_COMPRESSED_ZSTD
    | INCOMPATIBLE_COMPACT;

/// A 128-bit id (file, machine, boot, seqnum id).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Id128(pub [u8; 16]);

impl fmt::Display for Id128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Id128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Id128 {
    /// Parses 32 hex digits.
    pub fn parse(s: &str) -> Option<Id128> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Id128(out))
    }
}

/// The decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub compatible_flags: u32,
    pub incompatible_flags: u32,
    /// 0 offline, 1 online (being written), 2 archived.
    pub state: u8,
    pub file_id: Id128,
    pub machine_id: Id128,
    pub seqnum_id: Id128,
    pub header_size: u64,
    pub arena_size: u64,
    pub n_objects: u64,
    pub n_entries: u64,
    pub tail_entry_seqnum: u64,
    pub head_entry_seqnum: u64,
    /// The root of the chain of entry arrays listing every entry in order.
    pub entry_array_offset: u64,
    pub head_entry_realtime: u64,
    pub tail_entry_realtime: u64,
    /// `n_entry_arrays` when the header has it.
    pub n_entry_arrays: Option<u64>,
}

/// Why a header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("file shorter than a journal header ({0} bytes)")]
    Short(u64),
    #[error("not a journal file (bad signature)")]
    Signature,
    #[error("unsupported incompatible flags {0:#x} (a newer journal format)")]
    Incompatible(u32),
    #[error("header size {0} is out of range")]
    HeaderSize(u64),
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

fn id(b: &[u8], at: usize) -> Id128 {
    let mut v = [0u8; 16];
    if let Some(s) = b.get(at..at + 16) {
        v.copy_from_slice(s);
    }
    Id128(v)
}

impl Header {
    /// Decodes the header from the first bytes of a file (`bytes` may be shorter than
    /// [`READ_SIZE`] for a short file; `file_size` is the whole file's size).
    pub fn parse(bytes: &[u8], file_size: u64) -> Result<Header, HeaderError> {
        if (bytes.len() as u64) < MIN_HEADER_SIZE || file_size < MIN_HEADER_SIZE {
            return Err(HeaderError::Short(file_size.min(bytes.len() as u64)));
        }
        if bytes.get(..8) != Some(&SIGNATURE[..]) {
            return Err(HeaderError::Signature);
        }
        let incompatible_flags = le32(bytes, 12);
        if incompatible_flags & !INCOMPATIBLE_KNOWN != 0 {
            return Err(HeaderError::Incompatible(
                incompatible_flags & !INCOMPATIBLE_KNOWN,
            ));
        }
        let header_size = le64(bytes, 88);
        if header_size < MIN_HEADER_SIZE
            || header_size > file_size
            || !header_size.is_multiple_of(8)
        {
            return Err(HeaderError::HeaderSize(header_size));
        }
        // Fields past the first 208 bytes exist only when the header is that long.
        let has = |end: u64| header_size >= end && bytes.len() as u64 >= end;
        Ok(Header {
            compatible_flags: le32(bytes, 8),
            incompatible_flags,
            state: bytes.get(16).copied().unwrap_or(0),
            file_id: id(bytes, 24),
            machine_id: id(bytes, 40),
            seqnum_id: id(bytes, 72),
            header_size,
            arena_size: le64(bytes, 96),
            n_objects: le64(bytes, 144),
            n_entries: le64(bytes, 152),
            tail_entry_seqnum: le64(bytes, 160),
            head_entry_seqnum: le64(bytes, 168),
            entry_array_offset: le64(bytes, 176),
            head_entry_realtime: le64(bytes, 184),
            tail_entry_realtime: le64(bytes, 192),
            n_entry_arrays: has(240).then(|| le64(bytes, 232)),
        })
    }

    pub fn compact(&self) -> bool {
        self.incompatible_flags & INCOMPATIBLE_COMPACT != 0
    }

    /// The end of the part of the file in use: objects are only valid before it (and before
    /// the file's actual end, whichever comes first).
    pub fn used_end(&self, file_size: u64) -> u64 {
        self.header_size
            .saturating_add(self.arena_size)
            .min(file_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u64) -> Vec<u8> {
        let mut b = vec![0u8; READ_SIZE];
        b[..8].copy_from_slice(SIGNATURE);
        b[12..16].copy_from_slice(&INCOMPATIBLE_COMPACT.to_le_bytes());
        b[88..96].copy_from_slice(&size.to_le_bytes());
        b[96..104].copy_from_slice(&1000u64.to_le_bytes());
        b[152..160].copy_from_slice(&7u64.to_le_bytes());
        b
    }

    #[test]
    fn a_header_decodes_with_its_flags_and_counts() {
        let h = Header::parse(&header(272), 4096).unwrap();
        assert!(h.compact());
        assert_eq!(h.n_entries, 7);
        assert_eq!(h.used_end(4096), 1272);
        assert_eq!(h.used_end(500), 500);
        assert_eq!(h.n_entry_arrays, Some(0));
        let old = Header::parse(&header(208), 4096).unwrap();
        assert_eq!(old.n_entry_arrays, None);
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut b = header(272);
        assert_eq!(Header::parse(&b[..100], 100), Err(HeaderError::Short(100)));
        b[12] = 0x80;
        assert_eq!(
            Header::parse(&b, 4096),
            Err(HeaderError::Incompatible(0x80))
        );
        let mut b = header(272);
        b[0] = b'X';
        assert_eq!(Header::parse(&b, 4096), Err(HeaderError::Signature));
        assert_eq!(
            Header::parse(&header(9000), 4096),
            Err(HeaderError::HeaderSize(9000))
        );
        assert_eq!(
            Header::parse(&header(211), 4096),
            Err(HeaderError::HeaderSize(211))
        );
    }
}
