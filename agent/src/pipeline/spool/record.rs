//! The on-disk record: one [`Batch`] framed with a magic, its length and a CRC32C.
//!
//! ```text
//! frame  = magic "SDR1" | body_len: u32 LE | crc: u32 LE | body
//! crc    = CRC32C(body_len LE bytes ++ body)
//! body   = version: u8 (1) | signal: u8 | items: u64 LE | source_len: u16 LE | source | payload
//! ```
//!
//! The payload is the batch's encoded OTLP request, stored verbatim: no second serialization
//! format. The CRC covers the length, so a damaged length is caught like a damaged body. This
//! module only encodes and checks bytes; it never does I/O and never panics on what it reads.

use bytes::Bytes;
use sonde_exporters::{Batch, Signal};
use std::sync::Arc;

/// Marks the start of every frame; what a reader looks for to find its footing after damage.
pub const MAGIC: [u8; 4] = *b"SDR1";
/// magic + body length + CRC.
pub const HEADER_LEN: u64 = 12;
/// version + signal + items + source length.
const META_FIXED: usize = 12;
const VERSION: u8 = 1;
/// The largest body a frame may declare: a longer length is damage, not data.
pub const MAX_BODY: u64 = 1 << 30;

/// The length on disk of the frame holding `batch`.
pub fn frame_len(batch: &Batch) -> u64 {
    HEADER_LEN + (META_FIXED + source_bytes(batch).len() + batch.payload.len()) as u64
}

/// The source name as stored: at most `u16::MAX` bytes (names are short; this only bounds it).
fn source_bytes(batch: &Batch) -> &[u8] {
    let s = batch.source.as_bytes();
    &s[..s.len().min(u16::MAX as usize)]
}

/// Appends the frame of `batch` to `out`.
pub fn encode(batch: &Batch, out: &mut Vec<u8>) {
    let source = source_bytes(batch);
    let body_len = (META_FIXED + source.len() + batch.payload.len()) as u32;
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // CRC, filled in below
    let body = out.len();
    out.push(VERSION);
    out.push(signal_code(batch.signal));
    out.extend_from_slice(&batch.items.to_le_bytes());
    out.extend_from_slice(&(source.len() as u16).to_le_bytes());
    out.extend_from_slice(source);
    out.extend_from_slice(&batch.payload);
    let crc = body_crc(body_len, &out[body..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
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
}

/// Parses a header; `None` when the magic is wrong or the length is impossible.
pub fn parse_header(h: &[u8; HEADER_LEN as usize]) -> Option<Header> {
    if h[..4] != MAGIC {
        return None;
    }
    let body_len = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
    if !(META_FIXED as u64..=MAX_BODY).contains(&body_len) {
        return None;
    }
    Some(Header {
        body_len,
        crc: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
    })
}

/// Whether `body` is what `header` promised.
pub fn body_ok(header: Header, body: &[u8]) -> bool {
    body.len() as u64 == header.body_len && body_crc(header.body_len as u32, body) == header.crc
}

/// What a record's metadata says, without its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub signal: Signal,
    pub items: u64,
    pub source_len: usize,
}

/// Reads the metadata at the start of a body (which may be only its first bytes).
pub fn parse_meta(body: &[u8]) -> Option<Meta> {
    let fixed = body.get(..META_FIXED)?;
    if fixed[0] != VERSION {
        return None;
    }
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
    Some(Batch::from_trusted(
        meta.signal,
        body.slice(source_end..),
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
        assert!(body_ok(h, body));
        let got = decode(Bytes::copy_from_slice(body), &mut None).unwrap();
        assert_eq!(got, b);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_caught() {
        let b = Batch::from_trusted(Signal::Traces, vec![5u8; 100].into(), 3, "s".into());
        let mut frame = Vec::new();
        encode(&b, &mut frame);
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x10;
            let h: [u8; 12] = bad[..12].try_into().unwrap();
            let caught = match parse_header(&h) {
                None => true,
                Some(h) => bad.len() as u64 != 12 + h.body_len || !body_ok(h, &bad[12..]),
            };
            assert!(caught, "flip at byte {i} went unnoticed");
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
            prop_assert!(body_ok(h, body));
            prop_assert_eq!(decode(Bytes::copy_from_slice(body), &mut None), Some(b));
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_meta(&body);
            let _ = decode(Bytes::from(body), &mut None);
        }
    }
}
