//! The on-disk record: one [`Batch`] framed with a magic, its length and a CRC32C.
//!
//! ```text
//! frame  = magic "SDR2" | body_len: u32 LE | crc: u32 LE | body      (bound: what is written)
//!        | magic "SDR1" | body_len: u32 LE | crc: u32 LE | body      (unbound: still read)
//! crc    = CRC32C(body_len LE bytes ++ body ++ segment_id: u64 LE)  (SDR2)
//!        | CRC32C(body_len LE bytes ++ body)                          (SDR1)
//! body   = version: u8 | signal: u8 | items: u64 LE | source_len: u16 LE | source | data
//! data   = payload                                  (version 1: stored as is)
//!        | payload_len: u32 LE | zstd(payload)       (version 2: compressed)
//! ```
//!
//! The payload is the batch's encoded OTLP request, stored verbatim or zstd-compressed at a fast
//! level (`buffer.compression`, default `none`; a payload that does not shrink is stored as is):
//! no second serialization format. Both versions are always readable, so a spool written with
//! either setting drains after the setting changes. The CRC covers the length and the stored
//! bytes, so a damaged length is caught like a damaged body, before anything is decompressed.
//!
//! A frame is **bound** to the segment it is written in: its CRC ends with the segment's id.
//! That is what lets an exported segment file be reused as a later segment (its blocks are
//! already allocated and written, so an `fdatasync` of an overwrite journals nothing): after a
//! crash, the old content past the new end is frames of another segment, which fail the check
//! instead of being replayed. The producer computes the unbound CRC off the writer thread
//! ([`frame`]); the writer binds it with [`bind`], which only continues that CRC over the 8
//! bytes of the id. Unbound frames (`SDR1`, what versions before bound frames wrote) stay
//! readable; a segment that may hold them is never reused.
//!
//! This module only encodes and checks bytes; it never does I/O and never panics on what it
//! reads.

use bytes::Bytes;
use sonde_config::SpoolCompression;
use sonde_core::{Batch, Signal};
use std::cell::RefCell;
use std::sync::Arc;

/// Marks the start of an unbound frame (the producer's form, and what older versions wrote).
pub const MAGIC: [u8; 4] = *b"SDR1";
/// Marks the start of a frame bound to its segment (what the writer writes). A reader looks for
/// either magic to find its footing after damage.
pub const MAGIC_BOUND: [u8; 4] = *b"SDR2";
/// magic + body length + CRC.
pub const HEADER_LEN: u64 = 12;
/// version + signal + items + source length.
const META_FIXED: usize = 12;
/// The payload stored as is.
const VERSION_RAW: u8 = 1;
/// The payload stored zstd-compressed, after its length.
const VERSION_ZSTD: u8 = 2;
/// The largest body a frame may declare: a longer length is damage, not data.
pub const MAX_BODY: u64 = 1 << 30;
/// zstd's fast level -3: about 1 GB/s per core and 5–6× smaller on OTLP requests of ~40 KiB
/// measured here (level 1: 0.55 GB/s, 6.5×). Writing and fsyncing is what bounds a disk buffer,
/// so the cheaper level wins.
pub const ZSTD_LEVEL: i32 = -3;

/// The length on disk of the frame holding `batch` uncompressed.
pub fn frame_len(batch: &Batch) -> u64 {
    HEADER_LEN + (META_FIXED + source_bytes(batch).len() + batch.payload.len()) as u64
}

/// The source name as stored: at most `u16::MAX` bytes (names are short; this only bounds it).
fn source_bytes(batch: &Batch) -> &[u8] {
    let s = batch.source.as_bytes();
    &s[..s.len().min(u16::MAX as usize)]
}

/// A record's frame in two parts: `head` (magic, length, CRC and the metadata) and `data` (the
/// payload, or its compressed form). An uncompressed payload is the batch's own buffer, so the
/// writer hands both parts to one `writev` and the payload is never copied in user space.
#[derive(Debug, Clone)]
pub struct Frame {
    pub head: Bytes,
    pub data: Bytes,
}

impl Frame {
    /// Bytes on disk.
    pub fn disk_len(&self) -> u64 {
        (self.head.len() + self.data.len()) as u64
    }

    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        [&self.head[..], &self.data[..]].concat()
    }
}

/// Appends the frame of `batch`, uncompressed, to `out`.
pub fn encode(batch: &Batch, out: &mut Vec<u8>) {
    let f = make(batch, VERSION_RAW, None, batch.payload.clone());
    out.extend_from_slice(&f.head);
    out.extend_from_slice(&f.data);
}

/// The frame of `batch` as `compression` asks; with `zstd`, the payload is stored compressed
/// when that makes it smaller.
pub fn frame(batch: &Batch, compression: SpoolCompression) -> Frame {
    if compression == SpoolCompression::Zstd && !batch.payload.is_empty() {
        if let Some(z) = compress(&batch.payload) {
            if z.len() + 4 < batch.payload.len() {
                let raw_len = batch.payload.len() as u32;
                return make(batch, VERSION_ZSTD, Some(raw_len), Bytes::from(z));
            }
        }
    }
    make(batch, VERSION_RAW, None, batch.payload.clone())
}

thread_local! {
    /// One compression context per thread, reused (creating one per call costs more than a
    /// small payload's compression).
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// `payload` zstd-compressed, or `None` if the compressor fails (then it is stored as is).
fn compress(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() as u64 > MAX_BODY {
        return None;
    }
    COMPRESSOR.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?);
        }
        c.as_mut()?.compress(payload).ok()
    })
}

fn make(batch: &Batch, version: u8, raw_len: Option<u32>, data: Bytes) -> Frame {
    let source = source_bytes(batch);
    let len_field = if raw_len.is_some() { 4 } else { 0 };
    let meta_len = META_FIXED + source.len() + len_field;
    let body_len = (meta_len + data.len()) as u32;
    let mut head = Vec::with_capacity(HEADER_LEN as usize + meta_len);
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&body_len.to_le_bytes());
    head.extend_from_slice(&[0; 4]); // CRC, filled in below
    head.push(version);
    head.push(signal_code(batch.signal));
    head.extend_from_slice(&batch.items.to_le_bytes());
    head.extend_from_slice(&(source.len() as u16).to_le_bytes());
    head.extend_from_slice(source);
    if let Some(n) = raw_len {
        head.extend_from_slice(&n.to_le_bytes());
    }
    let crc = crc32c::crc32c_append(body_crc(body_len, &head[HEADER_LEN as usize..]), &data);
    head[8..12].copy_from_slice(&crc.to_le_bytes());
    Frame {
        head: Bytes::from(head),
        data,
    }
}

fn signal_code(s: Signal) -> u8 {
    match s {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

fn body_crc(body_len: u32, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&body_len.to_le_bytes()), body)
}

/// A frame header as read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub body_len: u64,
    pub crc: u32,
    /// The CRC ends with the id of the segment the frame was written in.
    pub bound: bool,
}

/// Whether `w` (4 bytes) is a frame magic of either kind.
pub fn is_magic(w: &[u8]) -> bool {
    w == MAGIC_BOUND || w == MAGIC
}

/// Parses a header; `None` when the magic is wrong or the length is impossible.
pub fn parse_header(h: &[u8; HEADER_LEN as usize]) -> Option<Header> {
    let bound = match h[..4] {
        [b'S', b'D', b'R', b'2'] => true,
        [b'S', b'D', b'R', b'1'] => false,
        _ => return None,
    };
    let body_len = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
    if !(META_FIXED as u64..=MAX_BODY).contains(&body_len) {
        return None;
    }
    Some(Header {
        body_len,
        crc: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
        bound,
    })
}

/// Whether `body` is what `header` promised, for a frame read from segment `segment`.
pub fn body_ok(header: Header, body: &[u8], segment: u64) -> bool {
    if body.len() as u64 != header.body_len {
        return false;
    }
    let crc = body_crc(header.body_len as u32, body);
    let crc = if header.bound {
        crc32c::crc32c_append(crc, &segment.to_le_bytes())
    } else {
        crc
    };
    crc == header.crc
}

/// Appends `head` (an unbound frame's head, as [`frame`] makes it) to `out`, bound to segment
/// `segment`: the bound magic, and the unbound CRC continued over the segment id (the payload
/// is not read again).
pub fn bind(head: &[u8], segment: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(head);
    let Some(h) = out.get_mut(start..start + HEADER_LEN as usize) else {
        return;
    };
    let unbound = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    let crc = crc32c::crc32c_append(unbound, &segment.to_le_bytes());
    h[..4].copy_from_slice(&MAGIC_BOUND);
    h[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// What a record's metadata says, without its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub signal: Signal,
    pub items: u64,
    pub source_len: usize,
    /// The payload is zstd-compressed (after its length).
    pub compressed: bool,
}

/// Reads the metadata at the start of a body (which may be only its first bytes).
pub fn parse_meta(body: &[u8]) -> Option<Meta> {
    let fixed = body.get(..META_FIXED)?;
    let compressed = match fixed[0] {
        VERSION_RAW => false,
        VERSION_ZSTD => true,
        _ => return None,
    };
    let signal = match fixed[1] {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        2 => Signal::Logs,
        _ => return None,
    };
    let mut items = [0u8; 8];
    items.copy_from_slice(&fixed[2..10]);
    Some(Meta {
        signal,
        items: u64::from_le_bytes(items),
        source_len: usize::from(u16::from_le_bytes([fixed[10], fixed[11]])),
        compressed,
    })
}

/// Turns a checked body back into the batch it holds; the payload shares `body`'s memory.
/// `None` when the body is not one this version wrote (counted as damage by the caller).
pub fn decode(body: Bytes, last_source: &mut Option<Arc<str>>) -> Option<Batch> {
    let meta = parse_meta(&body)?;
    let source_end = META_FIXED.checked_add(meta.source_len)?;
    let name = std::str::from_utf8(body.get(META_FIXED..source_end)?).ok()?;
    // Consecutive records nearly always come from the same source: share its name.
    let source = match last_source {
        Some(s) if &**s == name => s.clone(),
        _ => {
            let s: Arc<str> = Arc::from(name);
            *last_source = Some(s.clone());
            s
        }
    };
    let payload = if meta.compressed {
        let len = body.get(source_end..source_end + 4)?;
        let raw_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if raw_len as u64 > MAX_BODY {
            return None;
        }
        // The output is bounded by the length the checked frame declares.
        let raw = zstd::bulk::decompress(body.get(source_end + 4..)?, raw_len).ok()?;
        if raw.len() != raw_len {
            return None;
        }
        Bytes::from(raw)
    } else {
        body.slice(source_end..)
    };
    Some(Batch::from_trusted(
        meta.signal,
        payload,
        meta.items,
        source,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(frame: &[u8]) -> (Header, &[u8]) {
        let h: [u8; 12] = frame[..12].try_into().unwrap();
        (parse_header(&h).unwrap(), &frame[12..])
    }

    #[test]
    fn a_frame_decodes_to_the_batch_it_was_made_from() {
        let b = Batch::from_trusted(Signal::Logs, Bytes::from_static(b"xyz"), 7, "src".into());
        let mut out = Vec::new();
        encode(&b, &mut out);
        assert_eq!(out.len() as u64, frame_len(&b));
        let (h, body) = split(&out);
        assert!(body_ok(h, body, 0));
        let got = decode(Bytes::copy_from_slice(body), &mut None).unwrap();
        assert_eq!(got, b);
    }

    /// Whether the frame `bad`, read in segment `segment`, fails the header or the body check.
    fn is_caught(bad: &[u8], segment: u64) -> bool {
        let h: [u8; 12] = bad[..12].try_into().unwrap();
        match parse_header(&h) {
            None => true,
            Some(h) => bad.len() as u64 != 12 + h.body_len || !body_ok(h, &bad[12..], segment),
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_caught() {
        let b = Batch::from_trusted(Signal::Traces, vec![5u8; 100].into(), 3, "s".into());
        let mut frame = Vec::new();
        encode(&b, &mut frame);
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x10;
            assert!(is_caught(&bad, 0), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn a_compressible_payload_is_stored_compressed_and_an_incompressible_one_as_is() {
        let text: Vec<u8> = b"span name=GET /api/orders status=200 ".repeat(1000);
        let b = Batch::from_trusted(Signal::Traces, text.into(), 9, "otlp".into());
        let z = frame(&b, SpoolCompression::Zstd).to_vec();
        assert!(z.len() * 10 < b.payload.len(), "{} bytes", z.len());
        let (_, body) = split(&z);
        assert!(parse_meta(body).unwrap().compressed);
        assert_eq!(
            decode(Bytes::copy_from_slice(body), &mut None),
            Some(b.clone())
        );
        let parts = frame(&b, SpoolCompression::None);
        assert_eq!(
            parts.data.as_ptr(),
            b.payload.as_ptr(),
            "an uncompressed payload is written from the batch's own buffer"
        );
        let raw = parts.to_vec();
        assert_eq!(raw.len() as u64, frame_len(&b));
        assert!(!parse_meta(&raw[12..]).unwrap().compressed);

        // Random bytes do not shrink: stored as is, as with `none`.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let n = Batch::from_trusted(Signal::Logs, noise.into(), 1, "f".into());
        assert_eq!(
            frame(&n, SpoolCompression::Zstd).to_vec(),
            frame(&n, SpoolCompression::None).to_vec()
        );
    }

    #[test]
    fn a_compressed_body_that_lies_about_its_length_is_undecodable() {
        let text: Vec<u8> = b"abcabcabc".repeat(500);
        let b = Batch::from_trusted(Signal::Logs, text.into(), 1, "s".into());
        let z = frame(&b, SpoolCompression::Zstd).to_vec();
        let body = &z[12..];
        let at = META_FIXED + 1; // the payload length, after the one-byte source name
        for len in [0u32, 10, 4499, 4501, u32::MAX] {
            let mut bad = body.to_vec();
            bad[at..at + 4].copy_from_slice(&len.to_le_bytes());
            assert_eq!(decode(Bytes::from(bad), &mut None), None, "length {len}");
        }
        // Garbage where the zstd frame should be.
        let mut bad = body.to_vec();
        for b in &mut bad[at + 4..] {
            *b = 0x55;
        }
        assert_eq!(decode(Bytes::from(bad), &mut None), None);
    }

    /// The frame of `b` as the writer puts it in segment `seg`.
    fn bound(b: &Batch, c: SpoolCompression, seg: u64) -> Vec<u8> {
        let f = frame(b, c);
        let mut out = Vec::new();
        bind(&f.head, seg, &mut out);
        out.extend_from_slice(&f.data);
        out
    }

    #[test]
    fn a_bound_frame_checks_out_in_its_own_segment_only() {
        let b = Batch::from_trusted(Signal::Traces, vec![7u8; 300].into(), 4, "otlp".into());
        for seg in [0u64, 1, 41, u64::MAX] {
            let out = bound(&b, SpoolCompression::None, seg);
            assert_eq!(&out[..4], b"SDR2");
            let (h, body) = split(&out);
            assert!(h.bound);
            assert!(body_ok(h, body, seg), "segment {seg}");
            // What a reused segment file holds past its new end: frames of another segment.
            assert!(!body_ok(h, body, seg.wrapping_add(1)), "segment {seg} + 1");
            assert!(!body_ok(h, body, seg ^ (1 << 40)), "segment {seg} ^ 2^40");
            assert_eq!(
                decode(Bytes::copy_from_slice(body), &mut None),
                Some(b.clone())
            );
        }
        // Unbound frames (what earlier versions wrote) check out wherever they are.
        let raw = frame(&b, SpoolCompression::None).to_vec();
        let (h, body) = split(&raw);
        assert!(!h.bound && body_ok(h, body, 3) && body_ok(h, body, 4));
    }

    #[test]
    fn a_flipped_bit_in_a_bound_frame_is_caught() {
        let b = Batch::from_trusted(Signal::Logs, vec![5u8; 100].into(), 3, "s".into());
        let frame = bound(&b, SpoolCompression::None, 9);
        for i in 0..frame.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut bad = frame.clone();
                bad[i] ^= bit;
                assert!(
                    is_caught(&bad, 9),
                    "flip {bit:#x} at byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn an_impossible_length_is_not_a_header() {
        let mut h = [0u8; 12];
        h[..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_header(&h), None);
        h[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(parse_header(&h), None);
    }

    proptest! {
        #[test]
        fn framing_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..2000),
                               items in any::<u64>(), sig in 0u8..3, source in "[a-z_]{0,20}") {
            let signal = [Signal::Traces, Signal::Metrics, Signal::Logs][sig as usize];
            let b = Batch::from_trusted(signal, payload.into(), items, source.as_str().into());
            let mut out = vec![9u8; 3];
            encode(&b, &mut out);
            let (h, body) = split(&out[3..]);
            prop_assert!(body_ok(h, body, 0));
            prop_assert_eq!(decode(Bytes::copy_from_slice(body), &mut None), Some(b));
        }

        #[test]
        fn compressed_framing_round_trips(text in "[a-z ]{0,3000}", items in any::<u64>()) {
            let b = Batch::from_trusted(Signal::Logs, Bytes::from(text.into_bytes()), items, "s".into());
            let out = frame(&b, SpoolCompression::Zstd).to_vec();
            let (h, body) = split(&out);
            prop_assert!(body_ok(h, body, 0));
            prop_assert_eq!(decode(Bytes::copy_from_slice(body), &mut None), Some(b));
        }

        #[test]
        fn bound_framing_round_trips(text in "[a-z ]{0,3000}", items in any::<u64>(),
                                     seg in any::<u64>(), zstd in any::<bool>()) {
            let c = if zstd { SpoolCompression::Zstd } else { SpoolCompression::None };
            let b = Batch::from_trusted(Signal::Logs, Bytes::from(text.into_bytes()), items, "s".into());
            let out = bound(&b, c, seg);
            let (h, body) = split(&out);
            prop_assert!(body_ok(h, body, seg));
            prop_assert!(!body_ok(h, body, seg.wrapping_sub(1)));
            prop_assert_eq!(decode(Bytes::copy_from_slice(body), &mut None), Some(b));
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_meta(&body);
            let _ = decode(Bytes::from(body), &mut None);
        }
    }
}
