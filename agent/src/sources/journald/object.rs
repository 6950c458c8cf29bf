//! Journal objects: reading and checking the DATA, ENTRY and ENTRY_ARRAY objects the reader
//! follows, with positioned reads (no memory map), in both the regular layout and the compact
//! one of systemd 252+ (32-bit offsets in entry items and entry arrays), and with DATA payloads
//! compressed by XZ, LZ4 or ZSTD.
//!
//! Every offset is checked before it is read: 8-byte aligned, past the header, and the whole
//! object inside the used part of the file (`Bounds`). Every size is checked against the type's
//! minimum and a maximum, and every decompression is bounded, so a corrupt or hostile file
//! yields an [`ObjectError`], never a panic or an unbounded allocation. FIELD, hash-table and
//! TAG objects are never needed to list entries and are not read.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

pub const OBJECT_DATA: u8 = 1;
pub const OBJECT_ENTRY: u8 = 3;
pub const OBJECT_ENTRY_ARRAY: u8 = 6;

const COMPRESSED_XZ: u8 = 1 << 0;
const COMPRESSED_LZ4: u8 = 1 << 1;
const COMPRESSED_ZSTD: u8 = 1 << 2;

/// The common object header: type, flags, 6 reserved bytes, size.
const OBJECT_HEADER: u64 = 16;
/// ENTRY: header, seqnum, realtime, monotonic, boot id, xor hash.
const ENTRY_HEADER: u64 = 64;
/// ENTRY_ARRAY: header, next array offset.
const ARRAY_HEADER: u64 = 24;
/// DATA: header, hash, next hash, next field, entry offset, entry array offset, n_entries
/// (+ tail entry array offset and count in compact files).
const DATA_HEADER: u64 = 64;
const DATA_HEADER_COMPACT: u64 = 72;

/// The largest DATA payload kept (stored or decompressed); larger fields are skipped.
pub const MAX_FIELD: usize = 64 << 20;
/// The largest ENTRY object read (about a million fields).
const MAX_ENTRY: u64 = 16 << 20;

/// Positioned reads of a journal file (the file itself, or bytes in tests).
pub trait Storage {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl Storage for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl Storage for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl Storage for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

/// Where objects may be: from the end of the header to the end of the used part of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub start: u64,
    pub end: u64,
    pub compact: bool,
}

/// What is wrong with an object, and where.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("offset {0} is misaligned or outside the file")]
    Offset(u64),
    #[error("object at {offset}: invalid size {size}")]
    Size { offset: u64, size: u64 },
    #[error("object at {offset}: type {found}, expected {expected}")]
    Type {
        offset: u64,
        found: u8,
        expected: u8,
    },
    #[error("object at {offset}: {what}")]
    Payload { offset: u64, what: String },
    #[error("object at {offset}: a field larger than {MAX_FIELD} bytes")]
    TooLarge { offset: u64 },
    #[error("read at {offset}: {source}")]
    Io { offset: u64, source: io::Error },
}

impl ObjectError {
    /// True when the file is damaged (as opposed to a field too large to keep, or an I/O
    /// failure that is not about the file's content).
    pub fn is_corruption(&self) -> bool {
        match self {
            ObjectError::TooLarge { .. } => false,
            ObjectError::Io { source, .. } => source.kind() == io::ErrorKind::UnexpectedEof,
            _ => true,
        }
    }
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

fn read<S: Storage + ?Sized>(s: &S, buf: &mut [u8], offset: u64) -> Result<(), ObjectError> {
    s.read_exact_at(buf, offset)
        .map_err(|source| ObjectError::Io { offset, source })
}

/// Bytes read at once when an object is read whole: most DATA and ENTRY objects fit, so one
/// read fetches header and payload.
const SPECULATIVE: u64 = 512;

fn check_offset(b: &Bounds, offset: u64) -> Result<(), ObjectError> {
    if !offset.is_multiple_of(8) || offset < b.start || offset.saturating_add(OBJECT_HEADER) > b.end
    {
        return Err(ObjectError::Offset(offset));
    }
    Ok(())
}

/// Checks an object header `h` (type, size within `b`, at least `min`, at most `max`) and
/// returns its flags and size.
fn check_header(
    h: &[u8],
    b: &Bounds,
    offset: u64,
    expected: u8,
    (min, max): (u64, u64),
) -> Result<(u8, u64), ObjectError> {
    let (ty, flags, size) = (h[0], h[1], le64(h, 8));
    if ty != expected {
        return Err(ObjectError::Type {
            offset,
            found: ty,
            expected,
        });
    }
    if size < min || offset.saturating_add(size) > b.end {
        return Err(ObjectError::Size { offset, size });
    }
    if size > max {
        return Err(if expected == OBJECT_DATA {
            ObjectError::TooLarge { offset }
        } else {
            ObjectError::Size { offset, size }
        });
    }
    Ok((flags, size))
}

/// Reads and checks an object's header only: returns its flags and size.
fn object_header<S: Storage + ?Sized>(
    s: &S,
    b: &Bounds,
    offset: u64,
    expected: u8,
    min: u64,
    max: u64,
) -> Result<(u8, u64), ObjectError> {
    check_offset(b, offset)?;
    let mut h = [0u8; OBJECT_HEADER as usize];
    read(s, &mut h, offset)?;
    check_header(&h, b, offset, expected, (min, max))
}

/// Reads the whole object at `offset` into `buf` (checked as [`object_header`] does): one read
/// when it fits in [`SPECULATIVE`] bytes, two otherwise. Returns its flags and size.
fn read_object<S: Storage + ?Sized>(
    s: &S,
    b: &Bounds,
    offset: u64,
    expected: u8,
    limits: (u64, u64),
    buf: &mut Vec<u8>,
) -> Result<(u8, u64), ObjectError> {
    check_offset(b, offset)?;
    // At least the header: `check_offset` saw it fits before `b.end`.
    let first = (b.end - offset).min(SPECULATIVE) as usize;
    buf.resize(first, 0);
    read(s, buf, offset)?;
    let (flags, size) = check_header(buf, b, offset, expected, limits)?;
    let size_us = size as usize;
    if size_us > first {
        buf.resize(size_us, 0);
        read(s, &mut buf[first..], offset + first as u64)?;
    } else {
        buf.truncate(size_us);
    }
    Ok((flags, size))
}

/// An ENTRY object: its metadata and the offsets of its DATA objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryObject {
    pub offset: u64,
    pub seqnum: u64,
    pub realtime: u64,
    pub monotonic: u64,
    pub boot_id: [u8; 16],
    pub xor_hash: u64,
    pub items: Vec<u64>,
}

/// Reads the ENTRY object at `offset`; `buf` is scratch space.
pub fn read_entry<S: Storage + ?Sized>(
    s: &S,
    b: &Bounds,
    offset: u64,
    buf: &mut Vec<u8>,
) -> Result<EntryObject, ObjectError> {
    let (_, size) = read_object(s, b, offset, OBJECT_ENTRY, (ENTRY_HEADER, MAX_ENTRY), buf)?;
    let mut boot_id = [0u8; 16];
    boot_id.copy_from_slice(&buf[40..56]);
    let item = if b.compact { 4 } else { 16 };
    let n = (size - ENTRY_HEADER) as usize / item;
    let items = (0..n)
        .map(|i| {
            let at = ENTRY_HEADER as usize + i * item;
            if b.compact {
                u64::from(le32(buf, at))
            } else {
                le64(buf, at)
            }
        })
        .collect();
    Ok(EntryObject {
        offset,
        seqnum: le64(buf, 16),
        realtime: le64(buf, 24),
        monotonic: le64(buf, 32),
        boot_id,
        xor_hash: le64(buf, 56),
        items,
    })
}

/// An ENTRY_ARRAY's link and how many items it has room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayHead {
    pub offset: u64,
    pub next: u64,
    pub capacity: u64,
}

/// Reads the head of the ENTRY_ARRAY at `offset`.
pub fn read_array_head<S: Storage + ?Sized>(
    s: &S,
    b: &Bounds,
    offset: u64,
) -> Result<ArrayHead, ObjectError> {
    let (_, size) = object_header(s, b, offset, OBJECT_ENTRY_ARRAY, ARRAY_HEADER, u64::MAX)?;
    let mut next = [0u8; 8];
    read(s, &mut next, offset + OBJECT_HEADER)?;
    let item = if b.compact { 4 } else { 8 };
    Ok(ArrayHead {
        offset,
        next: u64::from_le_bytes(next),
        capacity: (size - ARRAY_HEADER) / item,
    })
}

/// Appends to `out` up to `max` entry offsets of `head` from index `from`, stopping at the
/// first unused (zero) slot. Returns how many were appended.
pub fn read_array_items<S: Storage + ?Sized>(
    s: &S,
    b: &Bounds,
    head: &ArrayHead,
    from: u64,
    max: usize,
    out: &mut Vec<u64>,
) -> Result<usize, ObjectError> {
    let n = head.capacity.saturating_sub(from).min(max as u64) as usize;
    if n == 0 {
        return Ok(0);
    }
    let item = if b.compact { 4 } else { 8 };
    let at = head.offset + ARRAY_HEADER + from * item as u64;
    let mut buf = vec![0u8; n * item];
    read(s, &mut buf, at)?;
    let before = out.len();
    for i in 0..n {
        let v = if b.compact {
            u64::from(le32(&buf, i * item))
        } else {
            le64(&buf, i * item)
        };
        if v == 0 {
            break;
        }
        out.push(v);
    }
    Ok(out.len() - before)
}

/// Reads the DATA object at `offset` and returns its payload (`FIELD=value`), decompressed.
pub fn read_data<S: Storage + ?Sized>(
    s: &S,
    b: &Bounds,
    offset: u64,
    buf: &mut Vec<u8>,
) -> Result<Vec<u8>, ObjectError> {
    let head = if b.compact {
        DATA_HEADER_COMPACT
    } else {
        DATA_HEADER
    };
    let max = head + MAX_FIELD as u64;
    let (flags, _) = read_object(s, b, offset, OBJECT_DATA, (head, max), buf)?;
    // The payload: `read_object` checked the object is at least `head` long.
    buf.drain(..head as usize);
    let bad = |what: String| ObjectError::Payload { offset, what };
    match flags & (COMPRESSED_XZ | COMPRESSED_LZ4 | COMPRESSED_ZSTD) {
        0 => Ok(buf.clone()),
        COMPRESSED_ZSTD => {
            let d = zstd::stream::read::Decoder::new(&buf[..])
                .map_err(|e| bad(format!("zstd: {e}")))?;
            bounded_read(d, offset).map_err(|e| e.or_else(|m| bad(format!("zstd: {m}"))))
        }
        COMPRESSED_LZ4 => {
            // systemd's LZ4 payload: the decompressed size (le64), then one LZ4 block.
            let n = le64(buf, 0);
            if buf.len() < 8 {
                return Err(bad("lz4: payload shorter than its size prefix".into()));
            }
            if n > MAX_FIELD as u64 {
                return Err(ObjectError::TooLarge { offset });
            }
            lz4_flex::block::decompress(&buf[8..], n as usize).map_err(|e| bad(format!("lz4: {e}")))
        }
        COMPRESSED_XZ => {
            let mut out = Limited(Vec::new());
            let mut input = &buf[..];
            match lzma_rs::xz_decompress(&mut input, &mut out) {
                Ok(()) => Ok(out.0),
                Err(lzma_rs::error::Error::IoError(e)) if e.kind() == io::ErrorKind::Other => {
                    Err(ObjectError::TooLarge { offset })
                }
                Err(e) => Err(bad(format!("xz: {e}"))),
            }
        }
        f => Err(bad(format!("several compression flags ({f:#x})"))),
    }
}

/// The error of a bounded read: the field is too large, or the stream is bad (message).
enum Bounded {
    TooLarge(u64),
    Bad(String),
}

impl Bounded {
    fn or_else(self, f: impl FnOnce(String) -> ObjectError) -> ObjectError {
        match self {
            Bounded::TooLarge(offset) => ObjectError::TooLarge { offset },
            Bounded::Bad(m) => f(m),
        }
    }
}

fn bounded_read(r: impl Read, offset: u64) -> Result<Vec<u8>, Bounded> {
    let mut out = Vec::new();
    r.take(MAX_FIELD as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Bounded::Bad(e.to_string()))?;
    if out.len() > MAX_FIELD {
        return Err(Bounded::TooLarge(offset));
    }
    Ok(out)
}

/// A writer that refuses to grow past [`MAX_FIELD`] (an `Other` error).
struct Limited(Vec<u8>);

impl Write for Limited {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.0.len() + b.len() > MAX_FIELD {
            return Err(io::Error::other("field too large"));
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(compact: bool) -> Bounds {
        Bounds {
            start: 16,
            end: 4096,
            compact,
        }
    }

    fn object(ty: u8, flags: u8, body: &[u8]) -> Vec<u8> {
        let mut o = vec![ty, flags, 0, 0, 0, 0, 0, 0];
        o.extend_from_slice(&(16 + body.len() as u64).to_le_bytes());
        o.extend_from_slice(body);
        o
    }

    fn file_with(obj: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 16];
        f.extend_from_slice(obj);
        f.resize(4096, 0);
        f
    }

    #[test]
    fn data_payloads_decompress_with_each_codec() {
        let payload = b"MESSAGE="
            .iter()
            .copied()
            .chain([b'x'; 3000])
            .collect::<Vec<u8>>();
        let head = [0u8; 48];
        let zstd = zstd::bulk::compress(&payload, 3).unwrap();
        let mut lz4 = (payload.len() as u64).to_le_bytes().to_vec();
        lz4.extend_from_slice(&lz4_flex::block::compress(&payload));
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &payload[..], &mut xz).unwrap();
        for (flag, body) in [
            (0, payload.clone()),
            (COMPRESSED_ZSTD, zstd),
            (COMPRESSED_LZ4, lz4),
            (COMPRESSED_XZ, xz),
        ] {
            let mut b = head.to_vec();
            b.extend_from_slice(&body);
            let mut o = object(OBJECT_DATA, flag, &b);
            o.resize(o.len().div_ceil(8) * 8, 0);
            let f = file_with(&o);
            let got = read_data(&f[..], &bounds(false), 16, &mut vec![]).unwrap();
            assert_eq!(got, payload, "flag {flag}");
        }
    }

    #[test]
    fn bad_offsets_types_and_sizes_are_errors() {
        let f = file_with(&object(OBJECT_ENTRY, 0, &[0u8; 48]));
        let b = bounds(true);
        assert!(matches!(
            read_entry(&f[..], &b, 17, &mut vec![]),
            Err(ObjectError::Offset(17))
        ));
        assert!(matches!(
            read_entry(&f[..], &b, 8, &mut vec![]),
            Err(ObjectError::Offset(8))
        ));
        assert!(matches!(
            read_entry(&f[..], &b, 4096, &mut vec![]),
            Err(ObjectError::Offset(_))
        ));
        assert!(matches!(
            read_data(&f[..], &b, 16, &mut vec![]),
            Err(ObjectError::Type { found: 3, .. })
        ));
        let mut big = f.clone();
        big[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            read_entry(&big[..], &b, 16, &mut vec![]),
            Err(ObjectError::Size { .. })
        ));
        let e = read_entry(&f[..], &b, 16, &mut vec![]).unwrap();
        assert!(e.items.is_empty());
    }

    #[test]
    fn array_items_stop_at_the_first_unused_slot() {
        let mut body = 0u64.to_le_bytes().to_vec();
        for v in [40u32, 48, 0, 0] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        let f = file_with(&object(OBJECT_ENTRY_ARRAY, 0, &body));
        let b = bounds(true);
        let head = read_array_head(&f[..], &b, 16).unwrap();
        assert_eq!(head.capacity, 4);
        let mut out = vec![];
        assert_eq!(
            read_array_items(&f[..], &b, &head, 0, 10, &mut out).unwrap(),
            2
        );
        assert_eq!(out, [40, 48]);
        assert_eq!(
            read_array_items(&f[..], &b, &head, 4, 10, &mut out).unwrap(),
            0
        );
    }
}
