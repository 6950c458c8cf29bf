//! Segment files: naming, listing, creating, and reading frames back with damage handled.
//!
//! A segment is a file `<id>.seg` (20 decimal digits, ids only grow) holding frames back to back
//! ([`super::record`]). Reading never trusts the bytes: a frame whose magic, length or CRC is
//! wrong is reported as [`Read::Damaged`] with the range to skip, found by resynchronising on the
//! next frame that checks out, so one bad record costs exactly that record and the reader never
//! loops on it. Everything here is blocking I/O, for a dedicated thread or `spawn_blocking`.

use super::record::{self, Header, HEADER_LEN};
use bytes::Bytes;
use sonde_config::Fsync;
use sonde_core::fs::sync_dir;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

pub const EXT: &str = "seg";

pub fn file_name(id: u64) -> String {
    format!("{id:020}.{EXT}")
}

pub fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(file_name(id))
}

/// The id of the segment file named `name`, if it is one.
pub fn id_of(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")
        .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u64>().ok())
}

/// The segments in `dir`: id → length in bytes. Other files are ignored.
pub fn list(dir: &Path) -> io::Result<BTreeMap<u64, u64>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(id_of) else {
            continue;
        };
        out.insert(id, entry.metadata()?.len());
    }
    Ok(out)
}

/// Creates segment `id` to append to, durably (the directory entry too, unless `fsync = never`).
/// A file left by an earlier attempt that failed after creating it holds nothing and is replaced.
pub fn create(dir: &Path, id: u64, fsync: Fsync) -> io::Result<File> {
    let path = path(dir, id);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // Not O_APPEND: a reused segment file is overwritten from its start, so every segment is
    // written at the file position, which the writer keeps at the end of its data.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    if fsync != Fsync::Never {
        sync_dir(dir)?;
    }
    Ok(file)
}

/// What is at an offset of a segment.
#[derive(Debug)]
pub enum Read {
    /// A frame that checks out: its body, and where the next frame starts.
    Frame { body: Bytes, next: u64 },
    /// Bytes that are not a valid frame: skip to `next` (the next valid frame or the end).
    Damaged { reason: Damage, next: u64 },
}

/// The kinds of damage, used as the `reason` label of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// A frame whose body does not match its checksum.
    BadCrc,
    /// Bytes that are not a frame at all (bad magic or impossible length, e.g. zeros).
    BadFrame,
    /// A frame cut short by the end of the segment.
    Truncated,
    /// A frame that checks out but that this version cannot decode.
    Undecodable,
}

impl Damage {
    pub fn as_str(self) -> &'static str {
        match self {
            Damage::BadCrc => "bad_crc",
            Damage::BadFrame => "bad_frame",
            Damage::Truncated => "truncated",
            Damage::Undecodable => "undecodable",
        }
    }
}

fn read_header(file: &File, at: u64) -> io::Result<[u8; HEADER_LEN as usize]> {
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut h, at)?;
    Ok(h)
}

fn read_body(file: &File, at: u64, header: Header) -> io::Result<Vec<u8>> {
    let mut body = vec![0u8; header.body_len as usize];
    file.read_exact_at(&mut body, at + HEADER_LEN)?;
    Ok(body)
}

/// Whether a complete, valid frame starts at `at` and ends by `limit`.
fn valid_at(file: &File, seg: u64, at: u64, limit: u64) -> io::Result<bool> {
    if limit.saturating_sub(at) < HEADER_LEN {
        return Ok(false);
    }
    let Some(h) = record::parse_header(&read_header(file, at)?) else {
        return Ok(false);
    };
    if at + HEADER_LEN + h.body_len > limit {
        return Ok(false);
    }
    Ok(record::body_ok(h, &read_body(file, at, h)?, seg))
}

/// The first offset in `[from, limit)` where a valid frame of segment `seg` starts, or `limit`.
pub fn resync(file: &File, seg: u64, from: u64, limit: u64) -> io::Result<u64> {
    first_magic(file, from, limit, |cand| valid_at(file, seg, cand, limit))
}

/// The first offset in `[from, limit)` where a frame magic starts and `accept` agrees, or
/// `limit`. Reads 1 MiB at a time.
fn first_magic(
    file: &File,
    from: u64,
    limit: u64,
    mut accept: impl FnMut(u64) -> io::Result<bool>,
) -> io::Result<u64> {
    const CHUNK: u64 = 1 << 20;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut at = from;
    while at < limit {
        let n = CHUNK.min(limit - at) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        let mut i = 0;
        while let Some(k) = find_magic(&buf[i..n]) {
            let cand = at + (i + k) as u64;
            if accept(cand)? {
                return Ok(cand);
            }
            i += k + 1;
        }
        if at + n as u64 >= limit {
            break;
        }
        // Overlap so a magic split across two chunks is still seen.
        at += (n as u64)
            .saturating_sub(record::MAGIC.len() as u64 - 1)
            .max(1);
    }
    Ok(limit)
}

fn find_magic(hay: &[u8]) -> Option<usize> {
    hay.windows(record::MAGIC.len()).position(record::is_magic)
}

/// Reads what is at `at` (`at < limit`) of segment `seg`, where `limit` is the end of the
/// committed data.
pub fn read_at(file: &File, seg: u64, at: u64, limit: u64) -> io::Result<Read> {
    if limit - at < HEADER_LEN {
        return Ok(Read::Damaged {
            reason: Damage::Truncated,
            next: limit,
        });
    }
    let Some(h) = record::parse_header(&read_header(file, at)?) else {
        return Ok(Read::Damaged {
            reason: Damage::BadFrame,
            next: resync(file, seg, at + 1, limit)?,
        });
    };
    let end = at + HEADER_LEN + h.body_len;
    if end > limit {
        let next = resync(file, seg, at + 1, limit)?;
        let reason = if next == limit {
            Damage::Truncated
        } else {
            Damage::BadFrame
        };
        return Ok(Read::Damaged { reason, next });
    }
    let body = read_body(file, at, h)?;
    if record::body_ok(h, &body, seg) {
        return Ok(Read::Frame {
            body: body.into(),
            next: end,
        });
    }
    // Trust the length only if it leads to the end or to a valid frame; the length itself may
    // be what was damaged.
    let next = if end == limit || valid_at(file, seg, end, limit)? {
        end
    } else {
        resync(file, seg, at + 1, limit)?
    };
    Ok(Read::Damaged {
        reason: Damage::BadCrc,
        next,
    })
}

/// Reads up to `budget` bytes from `at` in one call and returns every whole, valid frame in them
/// (their bodies share the chunk's memory), so that draining a backlog costs one read per chunk,
/// not two per record. Anything else at the start (damage, a frame larger than the budget) is
/// left to [`read_at`], whose single result is returned then.
pub fn read_ahead(
    file: &File,
    seg: u64,
    at: u64,
    limit: u64,
    budget: u64,
) -> io::Result<Vec<(u64, Read)>> {
    let want = (limit - at).min(budget.max(HEADER_LEN));
    let mut buf = vec![0u8; want as usize];
    file.read_exact_at(&mut buf, at)?;
    let chunk = Bytes::from(buf);
    let mut out = Vec::new();
    let mut i = 0usize;
    while chunk.len() - i >= HEADER_LEN as usize {
        let mut h = [0u8; HEADER_LEN as usize];
        h.copy_from_slice(&chunk[i..i + HEADER_LEN as usize]);
        let Some(header) = record::parse_header(&h) else {
            break;
        };
        let end = i + (HEADER_LEN + header.body_len) as usize;
        if end > chunk.len() {
            break;
        }
        let body = chunk.slice(i + HEADER_LEN as usize..end);
        if !record::body_ok(header, &body, seg) {
            break;
        }
        out.push((
            at + i as u64,
            Read::Frame {
                body,
                next: at + end as u64,
            },
        ));
        i = end;
    }
    if out.is_empty() {
        out.push((at, read_at(file, seg, at, limit)?));
    }
    Ok(out)
}

/// The end of the valid data of a segment: where its last valid frame ends, if what follows is
/// not followed by any valid frame (a torn tail). `None` when the file ends cleanly or when the
/// damage is followed by valid frames (then it is damage for the reader to skip and count, not a
/// tail to cut).
pub fn torn_tail(file: &File, seg: u64, len: u64) -> io::Result<Option<u64>> {
    let mut at = 0;
    while at < len {
        match read_at(file, seg, at, len)? {
            Read::Frame { next, .. } => at = next,
            Read::Damaged { next, .. } if next >= len => return Ok(Some(at)),
            Read::Damaged { next, .. } => at = next,
        }
    }
    Ok(None)
}

/// Where the old content of a reused segment file starts in a tail `[from, len)` that holds no
/// valid frame. Old content is whole frames of another segment, chained by their headers
/// exactly to the end of the file (a reused file was cut at a frame boundary when its first
/// life ended), possibly after the remainder of an old frame the new data partly overwrote.
/// So: `from` when no header starts there (an old remainder) and such a chain follows; the
/// chain's start when a header starts at `from` (a torn write before the old content); `len`
/// when there is no chain (the whole tail is a torn write). Headers only; no body is read.
pub fn stale_from(file: &File, from: u64, len: u64) -> io::Result<u64> {
    let chain = chain_start(file, from, len)?;
    let header_at_from =
        len - from >= HEADER_LEN && record::parse_header(&read_header(file, from)?).is_some();
    Ok(if chain < len && !header_at_from {
        from
    } else {
        chain
    })
}

/// The first offset in `[from, len)` from which frame headers chain exactly to `len`, or `len`.
fn chain_start(file: &File, from: u64, len: u64) -> io::Result<u64> {
    first_magic(file, from, len, |mut at| {
        while at < len {
            if len - at < HEADER_LEN {
                return Ok(false);
            }
            match record::parse_header(&read_header(file, at)?) {
                Some(h) => at += HEADER_LEN + h.body_len,
                None => return Ok(false),
            }
        }
        Ok(at == len)
    })
}

/// Records and items in `[from, to)` of a segment (for counting what an eviction drops).
/// Frames are checked, so damaged metadata never inflates the count; damage is skipped.
pub fn count(file: &File, seg: u64, from: u64, to: u64) -> io::Result<(u64, u64)> {
    let (mut records, mut items) = (0, 0);
    let mut at = from;
    while at < to {
        match read_at(file, seg, at, to)? {
            Read::Frame { body, next } => {
                records += 1;
                items += record::parse_meta(&body).map_or(0, |m| m.items);
                at = next;
            }
            Read::Damaged { next, .. } => at = next,
        }
    }
    Ok((records, items))
}

/// Items in `[from, to)` of a segment, from the frames' headers and metadata alone (no body is
/// read or checked): cheap enough to count a large backlog at start-up for a gauge. Stops at
/// the first header that does not parse (damage is the reader's to find and count).
pub fn count_items(file: &File, from: u64, to: u64) -> io::Result<u64> {
    let mut items = 0u64;
    let mut at = from;
    let mut buf = [0u8; 24];
    while at + buf.len() as u64 <= to {
        file.read_exact_at(&mut buf, at)?;
        let mut h = [0u8; HEADER_LEN as usize];
        h.copy_from_slice(&buf[..HEADER_LEN as usize]);
        let Some(header) = record::parse_header(&h) else {
            break;
        };
        let Some(meta) = record::parse_meta(&buf[HEADER_LEN as usize..]) else {
            break;
        };
        items = items.saturating_add(meta.items);
        at += HEADER_LEN + header.body_len;
    }
    Ok(items)
}

/// One frame found by [`frames`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    pub offset: u64,
    pub len: u64,
}

/// The valid frames of a segment file, in order (for tests and inspection tools).
/// The segment id comes from the file name (a file named otherwise is read as segment 0).
pub fn frames(path: &Path) -> io::Result<Vec<FrameInfo>> {
    let seg = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(id_of)
        .unwrap_or(0);
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut out = Vec::new();
    let mut at = 0;
    while at < len {
        match read_at(&file, seg, at, len)? {
            Read::Frame { next, .. } => {
                out.push(FrameInfo {
                    offset: at,
                    len: next - at,
                });
                at = next;
            }
            Read::Damaged { next, .. } => at = next,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_core::{Batch, Signal};
    use std::io::Write as _;

    /// The segment the test files play.
    const SEG: u64 = 5;

    /// Appends the frame of `b` as the writer writes it in segment `seg`.
    fn put(b: &Batch, seg: u64, out: &mut Vec<u8>) {
        let f = record::frame(b, sonde_config::SpoolCompression::None);
        record::bind(&f.head, seg, out);
        out.extend_from_slice(&f.data);
    }

    /// `n` frames of segment `seg` of `size` payload bytes each, and their offsets.
    fn frames_of(seg: u64, n: usize, size: usize) -> (Vec<u8>, Vec<u64>) {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for i in 0..n {
            offsets.push(buf.len() as u64);
            let b = Batch::from_trusted(Signal::Logs, vec![i as u8; size].into(), 1, "s".into());
            put(&b, seg, &mut buf);
        }
        (buf, offsets)
    }

    fn write_frames(n: usize) -> (tempfile::NamedTempFile, Vec<u64>) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let (buf, offsets) = frames_of(SEG, n, 50);
        f.write_all(&buf).unwrap();
        (f, offsets)
    }

    #[test]
    fn a_frame_of_another_segment_is_damage_and_unbound_frames_are_read_anywhere() {
        let (f, _) = write_frames(2);
        let file = f.reopen().unwrap();
        let len = file.metadata().unwrap().len();
        assert!(matches!(
            read_at(&file, SEG, 0, len).unwrap(),
            Read::Frame { .. }
        ));
        match read_at(&file, SEG + 1, 0, len).unwrap() {
            Read::Damaged { reason, next } => {
                assert_eq!(reason, Damage::BadCrc);
                assert_eq!(next, len, "no frame of segment {} in the file", SEG + 1);
            }
            other => panic!("{other:?}"),
        }
        // What versions before bound frames wrote.
        let mut old = Vec::new();
        let b = Batch::from_trusted(Signal::Logs, vec![1u8; 20].into(), 1, "s".into());
        record::encode(&b, &mut old);
        let f = tempfile::NamedTempFile::new().unwrap();
        let file = f.reopen().unwrap();
        file.write_all_at(&old, 0).unwrap();
        for seg in [0, SEG, 77] {
            assert!(matches!(
                read_at(&file, seg, 0, old.len() as u64).unwrap(),
                Read::Frame { .. }
            ));
        }
    }

    #[test]
    fn a_reused_file_ends_where_its_new_frames_end_and_the_old_content_is_told_apart() {
        // The file's first life: 8 frames of segment 3 (cut at a frame boundary when it ended).
        let (old, old_off) = frames_of(3, 8, 200);
        // Its second life as segment 11: 3 frames of another size over the start, then a torn
        // write (a header and part of a body) at the crash.
        let (new, new_off) = frames_of(11, 3, 150);
        let (torn, _) = frames_of(11, 1, 150);
        let f = tempfile::NamedTempFile::new().unwrap();
        let file = f.reopen().unwrap();
        file.write_all_at(&old, 0).unwrap();
        file.write_all_at(&new, 0).unwrap();
        let good = new.len() as u64;
        file.write_all_at(&torn[..40], good).unwrap();
        let len = old.len() as u64;
        assert_eq!(torn_tail(&file, 11, len).unwrap(), Some(good));
        let stale = stale_from(&file, good, len).unwrap();
        let first_old = *old_off.iter().find(|o| **o >= good + 40).unwrap();
        assert_eq!(
            stale, first_old,
            "the torn write ends where whole old frames start"
        );
        assert!(new_off
            .iter()
            .all(|o| matches!(read_at(&file, 11, *o, good).unwrap(), Read::Frame { .. })));
        // Nothing of the old life reads as a frame of the new one.
        assert_eq!(count(&file, 11, good, len).unwrap(), (0, 0));
        // Without the torn write, everything past the new frames is old content, starting
        // with the remainder of the old frame they partly overwrote.
        file.write_all_at(&old[good as usize..good as usize + 40], good)
            .unwrap();
        assert_eq!(torn_tail(&file, 11, len).unwrap(), Some(good));
        assert!(!old_off.contains(&good));
        assert_eq!(stale_from(&file, good, len).unwrap(), good);

        // A tail that is only a torn write (a file in its first life) has no old content.
        let (f2, _) = write_frames(3);
        let file = f2.reopen().unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len - 5).unwrap();
        let good = torn_tail(&file, SEG, len - 5).unwrap().unwrap();
        assert_eq!(stale_from(&file, good, len - 5).unwrap(), len - 5);
    }

    #[test]
    fn a_bad_crc_skips_exactly_that_frame() {
        let (f, off) = write_frames(3);
        let file = f.reopen().unwrap();
        file.write_all_at(&[0xff], off[1] + 30).unwrap();
        let len = file.metadata().unwrap().len();
        assert!(
            matches!(read_at(&file, SEG, off[0], len).unwrap(), Read::Frame { next, .. } if next == off[1])
        );
        match read_at(&file, SEG, off[1], len).unwrap() {
            Read::Damaged { reason, next } => {
                assert_eq!(reason, Damage::BadCrc);
                assert_eq!(next, off[2]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_damaged_length_resyncs_on_the_next_valid_frame() {
        let (f, off) = write_frames(3);
        let file = f.reopen().unwrap();
        // A length pointing into the middle of the next frame.
        file.write_all_at(&70u32.to_le_bytes(), off[0] + 4).unwrap();
        let len = file.metadata().unwrap().len();
        match read_at(&file, SEG, 0, len).unwrap() {
            Read::Damaged { next, .. } => assert_eq!(next, off[1]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_ahead_returns_whole_frames_and_leaves_damage_to_read_at() {
        let (f, off) = write_frames(4);
        let file = f.reopen().unwrap();
        let len = file.metadata().unwrap().len();
        // A budget of two and a half frames: two frames.
        let got = read_ahead(&file, SEG, 0, len, off[2] + 10).unwrap();
        assert_eq!(got.iter().map(|(o, _)| *o).collect::<Vec<_>>(), off[..2]);
        file.write_all_at(&[0xff], off[2] + 30).unwrap();
        let got = read_ahead(&file, SEG, off[2], len, 1 << 20).unwrap();
        assert_eq!(got.len(), 1);
        assert!(
            matches!(got[0], (o, Read::Damaged { reason: Damage::BadCrc, next })
            if o == off[2] && next == off[3])
        );
        // A budget smaller than one frame still makes progress.
        let got = read_ahead(&file, SEG, 0, len, 5).unwrap();
        assert!(matches!(got[0], (0, Read::Frame { next, .. }) if next == off[1]));
    }

    #[test]
    fn zeros_are_skipped_to_the_end() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let file = f.reopen().unwrap();
        file.write_all_at(&[0u8; 4096], 0).unwrap();
        match read_at(&file, SEG, 0, 4096).unwrap() {
            Read::Damaged { reason, next } => {
                assert_eq!(reason, Damage::BadFrame);
                assert_eq!(next, 4096);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_torn_tail_is_found_but_mid_file_damage_is_not_a_tail() {
        let (f, off) = write_frames(3);
        let file = f.reopen().unwrap();
        let len = file.metadata().unwrap().len();
        assert_eq!(torn_tail(&file, SEG, len).unwrap(), None);
        file.set_len(len - 5).unwrap();
        assert_eq!(torn_tail(&file, SEG, len - 5).unwrap(), Some(off[2]));
        let (f, off) = write_frames(3);
        let file = f.reopen().unwrap();
        file.write_all_at(&[0xff], off[1] + 20).unwrap();
        let len = file.metadata().unwrap().len();
        assert_eq!(torn_tail(&file, SEG, len).unwrap(), None);
        assert_eq!(count(&file, SEG, 0, len).unwrap(), (2, 2));
    }

    use proptest::prelude::*;

    proptest! {
        /// Valid frames mixed with garbage and cut anywhere: reading always moves forward,
        /// never panics, and finds every valid frame that garbage did not overwrite.
        #[test]
        fn reading_damaged_segments_always_progresses(
            chunks in proptest::collection::vec(
                prop_oneof![
                    (0u8..255, 1usize..300).prop_map(|(id, n)| (true, id, n)),
                    (0u8..255, 1usize..64).prop_map(|(b, n)| (false, b, n)),
                ],
                1..20,
            ),
            cut in 0usize..2000,
        ) {
            let mut bytes = Vec::new();
            let mut valid = Vec::new();
            for (frame, v, n) in chunks {
                if frame {
                    let b = Batch::from_trusted(Signal::Logs, vec![v; n].into(), 1, "s".into());
                    valid.push(bytes.len() as u64);
                    put(&b, SEG, &mut bytes);
                } else {
                    bytes.extend(std::iter::repeat_n(v, n));
                }
            }
            let len = bytes.len().saturating_sub(cut % (bytes.len() + 1)) as u64;
            let f = tempfile::NamedTempFile::new().unwrap();
            let file = f.reopen().unwrap();
            file.write_all_at(&bytes[..len as usize], 0).unwrap();
            let mut at = 0;
            let mut found = Vec::new();
            while at < len {
                let next = match read_at(&file, SEG, at, len).unwrap() {
                    Read::Frame { next, .. } => { found.push(at); next }
                    Read::Damaged { next, .. } => next,
                };
                prop_assert!(next > at && next <= len);
                at = next;
            }
            let _ = torn_tail(&file, SEG, len).unwrap();
            let _ = count(&file, SEG, 0, len).unwrap();
            // Every frame that is whole is found (garbage never hides a frame after it).
            for v in valid {
                let whole = frames_whole(&bytes[..len as usize], v);
                prop_assert!(!whole || found.contains(&v), "frame at {} missed", v);
            }
        }
    }

    /// Whether a complete valid frame starts at `at` of `bytes`.
    fn frames_whole(bytes: &[u8], at: u64) -> bool {
        let at = at as usize;
        let Some(h) = bytes.get(at..at + 12) else {
            return false;
        };
        let h: [u8; 12] = h.try_into().unwrap();
        record::parse_header(&h).is_some_and(|h| {
            bytes
                .get(at + 12..at + 12 + h.body_len as usize)
                .is_some_and(|b| record::body_ok(h, b, SEG))
        })
    }

    #[test]
    fn names_sort_like_ids() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(path(d.path(), 3), b"abc").unwrap();
        std::fs::write(d.path().join("cursor"), b"x").unwrap();
        std::fs::write(d.path().join("12.seg"), b"x").unwrap();
        assert_eq!(
            list(d.path()).unwrap().into_iter().collect::<Vec<_>>(),
            [(3, 3)]
        );
    }
}
