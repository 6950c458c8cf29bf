//! Writing protobuf by hand: the varint and length-prefix helpers every wire-level encoder and
//! editor uses (the trace split, the processors' rewrites, the hand encoders of the sources).

use super::LEN;
use bytes::{BufMut, BytesMut};

/// Appends `v` as a varint.
pub fn put_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// The bytes `v` takes as a varint.
pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends the tag and length prefix of a LEN field.
pub fn put_len_header(buf: &mut BytesMut, field: u32, len: usize) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(LEN));
    put_varint(buf, len as u64);
}

/// The bytes a LEN field with a payload of `len` bytes takes, tag and prefix included.
pub fn len_field_size(field: u32, len: usize) -> usize {
    varint_len((u64::from(field) << 3) | u64::from(LEN)) + varint_len(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::encoding::{encode_varint, encoded_len_varint};

    #[test]
    fn varints_match_prost() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut ours = BytesMut::new();
            put_varint(&mut ours, v);
            let mut theirs = Vec::new();
            encode_varint(v, &mut theirs);
            assert_eq!(&ours[..], &theirs[..]);
            assert_eq!(varint_len(v), encoded_len_varint(v));
        }
    }

    #[test]
    fn a_len_field_is_tag_length_payload() {
        let mut b = BytesMut::new();
        put_len_header(&mut b, 2, 300);
        assert_eq!(&b[..], &[0x12, 0xac, 0x02]);
        assert_eq!(len_field_size(2, 300), 3 + 300);
    }
}
