//! Cutting a TCP byte stream into syslog messages (RFC 6587): octet counting (`LEN SP MSG`, as
//! RFC 5425 requires over TLS) or non-transparent framing (one message per line). The framing
//! is decided per connection by its first byte: a digit means octet counting, anything else
//! (normally `<`) newline framing.
//!
//! The framer owns the connection's read buffer and keeps it bounded: a message longer than
//! `max` is cut to its first `max` bytes (delivered, marked [`Cut::Oversized`]) and the rest of
//! it is discarded as it arrives, so the buffer never holds more than `max`, a length header and
//! one read. An octet-counting header that is not one (a sender that switched framing, or
//! garbage) is counted and the connection goes on with newline framing: its bytes still arrive
//! as messages rather than being thrown away.

use bytes::{Buf, Bytes, BytesMut};

/// Longest length header accepted (`LEN` is at most 10 digits).
const MAX_HEADER_DIGITS: usize = 10;

/// How a connection frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Not known before the first byte.
    Unknown,
    OctetCounting,
    Newline,
}

/// Why a message was delivered shorter than it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Longer than `max_message_size`.
    Oversized,
    /// The connection closed in the middle of an octet-counted message.
    Incomplete,
}

/// One message's bytes, and whether it was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Bytes,
    pub cut: Option<Cut>,
}

impl Frame {
    fn whole(bytes: Bytes) -> Self {
        Frame { bytes, cut: None }
    }

    fn cut(bytes: Bytes, cut: Cut) -> Self {
        Frame {
            bytes,
            cut: Some(cut),
        }
    }
}

/// The framing state of one connection.
pub struct Framer {
    buf: BytesMut,
    framing: Framing,
    max: usize,
    /// Octet counting: bytes of an oversized message still to discard.
    skip: usize,
    /// Newline framing: the rest of an oversized line is being discarded.
    discarding_line: bool,
    framing_errors: u64,
}

impl Framer {
    pub fn new(max: usize) -> Self {
        Framer {
            buf: BytesMut::new(),
            framing: Framing::Unknown,
            max,
            skip: 0,
            discarding_line: false,
            framing_errors: 0,
        }
    }

    /// The buffer to read into (`read_buf` appends). Take every frame out before reading again.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Octet-counting headers that were not, since the last call.
    pub fn take_framing_errors(&mut self) -> u64 {
        std::mem::take(&mut self.framing_errors)
    }

    /// The next complete message in the buffer, if any.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if self.buf.is_empty() {
                return None;
            }
            if self.framing == Framing::Unknown {
                self.framing = if self.buf[0].is_ascii_digit() {
                    Framing::OctetCounting
                } else {
                    Framing::Newline
                };
            }
            let step = match self.framing {
                Framing::OctetCounting => self.octet_counted(),
                _ => self.line(),
            };
            match step {
                Step::Frame(f) => return Some(f),
                Step::NeedMore => return None,
                Step::Again => continue,
            }
        }
    }

    /// What is left when the connection closes: a last line without its newline, or the part
    /// of an octet-counted message that arrived.
    pub fn finish(&mut self) -> Option<Frame> {
        if self.buf.is_empty() || self.discarding_line || self.skip > 0 {
            return None;
        }
        let rest = self.buf.split().freeze();
        match self.framing {
            Framing::OctetCounting => {
                let body = match header(&rest) {
                    Header::Len { header, .. } => rest.slice(header..),
                    _ => rest,
                };
                Some(Frame::cut(body, Cut::Incomplete))
            }
            _ => Some(Frame::whole(rest)),
        }
    }

    fn line(&mut self) -> Step {
        if self.discarding_line {
            match memchr::memchr(b'\n', &self.buf) {
                Some(i) => {
                    self.buf.advance(i + 1);
                    self.discarding_line = false;
                    return Step::Again;
                }
                None => {
                    self.buf.clear();
                    return Step::NeedMore;
                }
            }
        }
        match memchr::memchr(b'\n', &self.buf) {
            Some(i) if i <= self.max => {
                let line = self.buf.split_to(i + 1).freeze().slice(..i);
                Step::Frame(Frame::whole(line))
            }
            Some(i) => {
                let line = self.buf.split_to(i + 1).freeze().slice(..self.max);
                Step::Frame(Frame::cut(line, Cut::Oversized))
            }
            None if self.buf.len() > self.max => {
                let line = self.buf.split_to(self.max).freeze();
                self.buf.clear();
                self.discarding_line = true;
                Step::Frame(Frame::cut(line, Cut::Oversized))
            }
            None => Step::NeedMore,
        }
    }

    fn octet_counted(&mut self) -> Step {
        if self.skip > 0 {
            let n = self.skip.min(self.buf.len());
            self.buf.advance(n);
            self.skip -= n;
            return if self.skip > 0 {
                Step::NeedMore
            } else {
                Step::Again
            };
        }
        let (header, len) = match header(&self.buf) {
            Header::Len { header, len } => (header, len),
            Header::Partial => return Step::NeedMore,
            Header::Invalid => {
                // Not a length: go on reading lines, so these bytes still arrive.
                self.framing_errors += 1;
                self.framing = Framing::Newline;
                return Step::Again;
            }
        };
        if len <= self.max {
            if self.buf.len() < header + len {
                return Step::NeedMore;
            }
            self.buf.advance(header);
            return Step::Frame(Frame::whole(self.buf.split_to(len).freeze()));
        }
        if self.buf.len() < header + self.max {
            return Step::NeedMore;
        }
        self.buf.advance(header);
        let kept = self.buf.split_to(self.max).freeze();
        self.skip = len - self.max;
        Step::Frame(Frame::cut(kept, Cut::Oversized))
    }
}

enum Step {
    Frame(Frame),
    NeedMore,
    Again,
}

enum Header {
    /// `header` bytes (digits and the space) announcing a message of `len` bytes.
    Len {
        header: usize,
        len: usize,
    },
    Partial,
    Invalid,
}

/// An octet-counting header `LEN SP` (a non-zero digit first) at the start of `b`.
fn header(b: &[u8]) -> Header {
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'1'..=b'9' => {}
            b'0' if i > 0 => {}
            b' ' if i > 0 => {
                let len = b[..i].iter().fold(0usize, |n, d| {
                    n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
                });
                return Header::Len { header: i + 1, len };
            }
            _ => return Header::Invalid,
        }
        if i >= MAX_HEADER_DIGITS {
            return Header::Invalid;
        }
    }
    Header::Partial
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one read at a time and collects the frames.
    fn frames(max: usize, chunks: &[&[u8]]) -> (Vec<(String, Option<Cut>)>, Framer) {
        let mut f = Framer::new(max);
        let mut out = vec![];
        for c in chunks {
            f.buffer().extend_from_slice(c);
            while let Some(fr) = f.next_frame() {
                out.push((String::from_utf8_lossy(&fr.bytes).into_owned(), fr.cut));
            }
            assert!(f.buffer().len() <= max + MAX_HEADER_DIGITS + 1 + c.len());
        }
        if let Some(fr) = f.finish() {
            out.push((String::from_utf8_lossy(&fr.bytes).into_owned(), fr.cut));
        }
        (out, f)
    }

    fn whole(s: &str) -> (String, Option<Cut>) {
        (s.to_string(), None)
    }

    #[test]
    fn octet_counting_is_detected_from_a_leading_digit() {
        let (out, f) = frames(100, &[b"5 <1>ab10 <13>hello\n"]);
        assert_eq!(f.framing(), Framing::OctetCounting);
        // The newline inside a counted message belongs to it.
        assert_eq!(out, vec![whole("<1>ab"), whole("<13>hello\n")]);
    }

    #[test]
    fn newline_framing_is_detected_from_a_leading_bracket() {
        let (out, f) = frames(100, &[b"<1>a\n<2>b\r\n\n<3>c"]);
        assert_eq!(f.framing(), Framing::Newline);
        // The last line arrives at the close; the empty line is an empty frame.
        assert_eq!(
            out,
            vec![whole("<1>a"), whole("<2>b\r"), whole(""), whole("<3>c")]
        );
    }

    #[test]
    fn frames_split_across_reads_are_joined() {
        let (out, _) = frames(100, &[b"9", b" <13>", b"hel", b"lo9", b" <13>world"]);
        assert_eq!(out, vec![whole("<13>hello"), whole("<13>world")]);
        let (out, _) = frames(100, &[b"<13>hel", b"lo\n<13>wo", b"rld\n"]);
        assert_eq!(out, vec![whole("<13>hello"), whole("<13>world")]);
        // Byte by byte.
        let stream = b"12 <13>message!3 <1>";
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        let (out, _) = frames(100, &chunks);
        assert_eq!(out, vec![whole("<13>message!"), whole("<1>")]);
    }

    #[test]
    fn an_oversized_counted_message_is_cut_and_its_rest_skipped() {
        let (out, f) = frames(8, &[b"20 <13>0123456789abc", b"def", b"4 <1>x"]);
        assert_eq!(
            out,
            vec![
                ("<13>0123".to_string(), Some(Cut::Oversized)),
                whole("<1>x")
            ]
        );
        assert_eq!(f.skip, 0);
    }

    #[test]
    fn an_oversized_line_is_cut_and_its_rest_skipped() {
        let (out, _) = frames(8, &[b"<13>0123456789", b"abcdef", b"ghi\n<1>ok\n"]);
        assert_eq!(
            out,
            vec![
                ("<13>0123".to_string(), Some(Cut::Oversized)),
                whole("<1>ok")
            ]
        );
        // Long line complete in one read.
        let (out, _) = frames(8, &[b"<13>0123456789\n<1>ok\n"]);
        assert_eq!(
            out,
            vec![
                ("<13>0123".to_string(), Some(Cut::Oversized)),
                whole("<1>ok")
            ]
        );
    }

    #[test]
    fn a_connection_closed_mid_message_delivers_what_arrived() {
        let (out, _) = frames(100, &[b"50 <13>partial"]);
        assert_eq!(
            out,
            vec![("<13>partial".to_string(), Some(Cut::Incomplete))]
        );
    }

    proptest::proptest! {
        /// Whatever the messages and wherever the reads cut the stream, each framing gives back
        /// exactly the messages sent.
        #[test]
        fn any_split_of_a_stream_gives_back_its_messages(
            msgs in proptest::collection::vec("<[0-9]{1,3}>[^\n]{0,40}", 1..20),
            cuts in proptest::collection::vec(1usize..30, 1..50),
            octet in proptest::bool::ANY,
        ) {
            let mut stream = Vec::new();
            for m in &msgs {
                if octet {
                    stream.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
                } else {
                    stream.extend_from_slice(format!("{m}\n").as_bytes());
                }
            }
            let mut chunks = vec![];
            let mut rest = &stream[..];
            for c in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at((*c).min(rest.len()));
                chunks.push(a);
                rest = b;
            }
            let (out, _) = frames(1000, &chunks);
            let want: Vec<(String, Option<Cut>)> = msgs.iter().map(|m| whole(m)).collect();
            proptest::prop_assert_eq!(out, want);
        }
    }

    #[test]
    fn a_bad_length_header_falls_back_to_lines_and_is_counted() {
        let (out, mut f) = frames(100, &[b"5 <1>ab", b"7x <13>y\n<2>z\n"]);
        assert_eq!(out, vec![whole("<1>ab"), whole("7x <13>y"), whole("<2>z")]);
        assert_eq!(f.take_framing_errors(), 1);
        assert_eq!(f.framing(), Framing::Newline);
        // Too many digits.
        let (out, mut f) = frames(100, &[b"123456789012 x\n"]);
        assert_eq!(out, vec![whole("123456789012 x")]);
        assert_eq!(f.take_framing_errors(), 1);
    }
}
