//! The one gRPC codec: message bytes in, message bytes out. tonic does the framing, the
//! `grpc-encoding` (de)compression and the status trailers; this codec hands a message on exactly
//! as it came. The receiver takes requests with it without decoding them; the OTLP exporter sends
//! a batch's payload as it is and reads the response's partial success from the bytes
//! ([`super::status::partial_success`]).
//!
//! It must never decode or copy: the decoder takes the message out of tonic's receive buffer as
//! a `Bytes` that shares that buffer.

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// A [`Codec`] whose messages are their own encoding.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        // `DecodeBuf` holds exactly one message; taking it splits tonic's buffer, no copy.
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}
