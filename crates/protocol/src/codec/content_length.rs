//! `Content-Length` framing, as in the Language Server Protocol.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::utf8_frame;
use crate::{Error, HeaderProblem};

/// The default limit on one header block. LSP headers are a few dozen bytes.
pub const DEFAULT_MAX_HEADER: usize = 1024;

const TERMINATOR: &[u8] = b"\r\n\r\n";

/// `Content-Length: N\r\n` (other headers allowed and ignored) `\r\n`, then N
/// bytes of body.
///
/// A declared length above the maximum is reported once as
/// [`Error::FrameTooLarge`] and its body is skipped as it arrives, never
/// buffered. A malformed header block is reported and skipped up to its
/// terminating blank line; decoding resumes with the next header.
#[derive(Debug, Clone)]
pub struct ContentLengthCodec {
    max_frame: usize,
    max_header: usize,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    Body(usize),
    SkipBody(u64),
    SkipHeader,
}

impl ContentLengthCodec {
    /// A codec that rejects bodies longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> ContentLengthCodec {
        ContentLengthCodec {
            max_frame,
            max_header: DEFAULT_MAX_HEADER,
            state: State::Header,
        }
    }

    /// Sets the limit on one header block (default [`DEFAULT_MAX_HEADER`]).
    pub fn with_max_header(mut self, max_header: usize) -> ContentLengthCodec {
        self.max_header = max_header;
        self
    }

    /// The maximum frame size.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Appends one framed message.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] when the payload exceeds the maximum frame size.
    pub fn encode_frame(&self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        if payload.len() > self.max_frame {
            return Err(Error::FrameTooLarge {
                limit: self.max_frame,
                declared: Some(payload.len() as u64),
            });
        }
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(payload.len());
        dst.reserve(20 + digits.len() + payload.len());
        dst.put_slice(b"Content-Length: ");
        dst.put_slice(digits.as_bytes());
        dst.put_slice(TERMINATOR);
        dst.put_slice(payload);
        Ok(())
    }
}

/// Reads the body length out of a header block (without its terminator).
fn parse_header(block: &[u8]) -> Result<u64, HeaderProblem> {
    let mut length = None;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if !line.is_ascii() {
            return Err(HeaderProblem::BadLine);
        }
        let colon = memchr::memchr(b':', line).ok_or(HeaderProblem::BadLine)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if !name.trim_ascii().eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        let value = value.trim_ascii();
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return Err(HeaderProblem::BadLength);
        }
        // All digits, so only overflow can fail.
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(HeaderProblem::BadLength)?;
        if length.replace(n).is_some() {
            return Err(HeaderProblem::DuplicateLength);
        }
    }
    length.ok_or(HeaderProblem::MissingLength)
}

impl Decoder for ContentLengthCodec {
    type Item = Result<Bytes, Error>;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        loop {
            match self.state {
                State::Header => {
                    let Some(end) = memchr::memmem::find(src, TERMINATOR) else {
                        if src.len() > self.max_header {
                            self.skip_partial_header(src);
                            self.state = State::SkipHeader;
                            let problem = HeaderProblem::TooLong;
                            return Ok(Some(Err(Error::MalformedHeader { problem })));
                        }
                        return Ok(None);
                    };
                    if end > self.max_header {
                        src.advance(end + TERMINATOR.len());
                        let problem = HeaderProblem::TooLong;
                        return Ok(Some(Err(Error::MalformedHeader { problem })));
                    }
                    let parsed = parse_header(&src[..end]);
                    src.advance(end + TERMINATOR.len());
                    match parsed {
                        Err(problem) => return Ok(Some(Err(Error::MalformedHeader { problem }))),
                        Ok(len) if len > self.max_frame as u64 => {
                            self.state = State::SkipBody(len);
                            return Ok(Some(Err(Error::FrameTooLarge {
                                limit: self.max_frame,
                                declared: Some(len),
                            })));
                        }
                        Ok(len) => {
                            // Bounded by max_frame above, so the cast is lossless
                            // and the reservation is one the user allowed.
                            let len = len as usize;
                            src.reserve(len.saturating_sub(src.len()));
                            self.state = State::Body(len);
                        }
                    }
                }
                State::Body(len) => {
                    if src.len() < len {
                        return Ok(None);
                    }
                    self.state = State::Header;
                    let body = src.split_to(len).freeze();
                    return Ok(Some(utf8_frame(body)));
                }
                State::SkipBody(remaining) => {
                    let n = remaining.min(src.len() as u64);
                    // n <= src.len(), so it fits in usize.
                    src.advance(n as usize);
                    if n < remaining {
                        self.state = State::SkipBody(remaining - n);
                        return Ok(None);
                    }
                    self.state = State::Header;
                }
                State::SkipHeader => match memchr::memmem::find(src, TERMINATOR) {
                    Some(end) => {
                        src.advance(end + TERMINATOR.len());
                        self.state = State::Header;
                    }
                    None => {
                        self.skip_partial_header(src);
                        return Ok(None);
                    }
                },
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        // Whatever is left is an incomplete frame from a peer that hung up;
        // it cannot become a message.
        src.clear();
        self.state = State::Header;
        Ok(None)
    }
}

impl ContentLengthCodec {
    /// Drops everything but a possible partial terminator at the end.
    fn skip_partial_header(&mut self, src: &mut BytesMut) {
        let keep = src.len().min(TERMINATOR.len() - 1);
        src.advance(src.len() - keep);
    }
}

impl Encoder<&[u8]> for ContentLengthCodec {
    type Error = Error;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_frame(payload, dst)
    }
}
