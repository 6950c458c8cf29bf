//! Bounded decompression of OTLP/HTTP bodies (`Content-Encoding: gzip | zstd`).
//!
//! The output never grows past the limit: reading stops one byte after it, so a zip bomb costs at
//! most `limit` bytes of memory and is refused, never inflated. (gRPC's `grpc-encoding` is
//! decompressed by tonic, which enforces the same limit.)

use bytes::Bytes;
use std::io::Read;

/// A body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// Parses a `Content-Encoding` header value; `None` for a coding this receiver does not take.
    pub fn parse(value: Option<&[u8]>) -> Option<Encoding> {
        let Some(v) = value else {
            return Some(Encoding::Identity);
        };
        let v = std::str::from_utf8(v).ok()?.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("identity") {
            Some(Encoding::Identity)
        } else if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
            Some(Encoding::Gzip)
        } else if v.eq_ignore_ascii_case("zstd") {
            Some(Encoding::Zstd)
        } else {
            None
        }
    }
}

/// Why a body could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    #[error("the request is larger than max_request_size ({limit} bytes) after decompression")]
    TooLarge { limit: usize },
    #[error("invalid {encoding} data: {message}")]
    Corrupt {
        encoding: &'static str,
        message: String,
    },
}

/// Decompresses `data` into at most `limit` bytes.
pub fn decompress(encoding: Encoding, data: Bytes, limit: usize) -> Result<Bytes, DecompressError> {
    match encoding {
        Encoding::Identity => Ok(data),
        Encoding::Gzip => read_bounded(
            flate2::read::MultiGzDecoder::new(&data[..]),
            limit,
            "gzip",
            data.len(),
        ),
        Encoding::Zstd => {
            let corrupt = |e: std::io::Error| DecompressError::Corrupt {
                encoding: "zstd",
                message: e.to_string(),
            };
            let mut decoder = zstd::stream::read::Decoder::new(&data[..]).map_err(corrupt)?;
            // A frame may ask for a window far larger than anything we would accept: cap the
            // window at the smallest power of two that holds `limit`, but never below 8 MiB
            // (what encoders use by default up to level 19 when the size is not known ahead).
            let window_log = usize::BITS - limit.max(1024).saturating_sub(1).leading_zeros();
            decoder
                .window_log_max(window_log.clamp(23, 31))
                .map_err(corrupt)?;
            read_bounded(decoder, limit, "zstd", data.len())
        }
    }
}

fn read_bounded(
    reader: impl Read,
    limit: usize,
    encoding: &'static str,
    compressed_len: usize,
) -> Result<Bytes, DecompressError> {
    let mut out = Vec::with_capacity(compressed_len.saturating_mul(4).min(limit).max(256));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Corrupt {
            encoding,
            message: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    #[test]
    fn content_encodings_parse() {
        assert_eq!(Encoding::parse(None), Some(Encoding::Identity));
        assert_eq!(Encoding::parse(Some(b"GZIP")), Some(Encoding::Gzip));
        assert_eq!(Encoding::parse(Some(b"x-gzip")), Some(Encoding::Gzip));
        assert_eq!(Encoding::parse(Some(b" zstd ")), Some(Encoding::Zstd));
        assert_eq!(Encoding::parse(Some(b"br")), None);
        assert_eq!(Encoding::parse(Some(b"gzip, zstd")), None);
    }

    #[test]
    fn gzip_and_zstd_round_trip() {
        let data = b"hello hello hello hello".repeat(100);
        assert_eq!(
            decompress(Encoding::Gzip, gzip(&data), 1 << 20).unwrap(),
            data
        );
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(decompress(Encoding::Zstd, z.into(), 1 << 20).unwrap(), data);
    }

    #[test]
    fn a_zip_bomb_is_refused_at_the_limit() {
        // 64 MiB of zeros compresses to ~64 KiB; the limit is 1 MiB.
        let zeros = vec![0u8; 64 << 20];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 1 << 20);
        assert_eq!(
            decompress(Encoding::Gzip, bomb, 1 << 20),
            Err(DecompressError::TooLarge { limit: 1 << 20 })
        );
        let zbomb = zstd::encode_all(&zeros[..], 3).unwrap();
        assert_eq!(
            decompress(Encoding::Zstd, zbomb.into(), 1 << 20),
            Err(DecompressError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let data = vec![7u8; 4096];
        assert_eq!(
            decompress(Encoding::Gzip, gzip(&data), 4096).unwrap().len(),
            4096
        );
    }

    #[test]
    fn corrupt_data_is_an_error_not_a_panic() {
        let mut g = gzip(b"some text to compress").to_vec();
        g.truncate(g.len() - 6);
        assert!(matches!(
            decompress(Encoding::Gzip, g.into(), 1024),
            Err(DecompressError::Corrupt { .. })
        ));
        assert!(matches!(
            decompress(Encoding::Zstd, Bytes::from_static(b"not zstd at all"), 1024),
            Err(DecompressError::Corrupt { .. })
        ));
        assert!(matches!(
            decompress(Encoding::Gzip, Bytes::from_static(b"\x1f\x8bgarbage"), 1024),
            Err(DecompressError::Corrupt { .. })
        ));
    }
}
