//! `Content-Length` framing, as in the Language Server Protocol.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::utf8_frame;
use crate::{Error, HeaderProblem};

/// The default limit on one header block. LSP headers are a few dozen bytes.
pub const DEFAULT_MAX_HEADER: usize = 1024;

const TERMINATOR: &[u8] = b"\r\n\r\n";

/// The header the decoder resynchronises on, lowercased.
const LENGTH_NAME: &[u8] = b"content-length";

/// `Content-Length: N\r\n` (other headers allowed and ignored) `\r\n`, then N
/// bytes of body.
///
/// A declared length above the maximum is reported once as
/// [`Error::FrameTooLarge`] and its body is skipped as it arrives, never
/// buffered.
///
/// A malformed header block is reported once as [`Error::MalformedHeader`].
/// Its body's length is then unknown, so that body arrives where the next
/// header block should start, glued to it. Skipping to the next blank line
/// would merge every later body with the header after it and lose the rest
/// of the stream; instead the decoder resumes at the next `Content-Length`
/// name that follows garbage (a line that is not a header, or text glued in
/// front of the name), or, if there is none, after the bad block's blank line.
/// A header block with no blank line within the header limit is reported as
/// [`HeaderProblem::TooLong`] and skipped up to the next `Content-Length` name.
#[derive(Debug, Clone)]
pub struct ContentLengthCodec {
    max_frame: usize,
    max_header: usize,
    state: State,
    /// The first bytes of the last oversized body that had arrived with its
    /// header; see [`ContentLengthCodec::take_rejected_head`].
    rejected_head: Option<Bytes>,
    /// Whether each body is checked to be UTF-8 (see [`Codec::without_utf8_check`](super::Codec::without_utf8_check)).
    check_utf8: bool,
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
            rejected_head: None,
            check_utf8: true,
        }
    }

    /// Leaves the UTF-8 check of each body to its reader; see
    /// [`Codec::without_utf8_check`](super::Codec::without_utf8_check).
    pub fn without_utf8_check(mut self) -> ContentLengthCodec {
        self.check_utf8 = false;
        self
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

    /// The first bytes (at most [`REJECTED_HEAD`](super::REJECTED_HEAD)) of the
    /// last body rejected as too large, as far as they had arrived with its
    /// header, taken once. A client reads the id of the response it lost from
    /// them, so that call can fail at once instead of at its deadline.
    pub fn take_rejected_head(&mut self) -> Option<Bytes> {
        self.rejected_head.take()
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
        let (name, value) = header_line(line)?;
        if !name.eq_ignore_ascii_case(LENGTH_NAME) {
            continue;
        }
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

/// Splits a header line into its trimmed name and value. The name must be an
/// HTTP token, so that the tail of a lost body (JSON, say) in front of a
/// header is recognised as garbage rather than taken for an unknown header.
fn header_line(line: &[u8]) -> Result<(&[u8], &[u8]), HeaderProblem> {
    if !line.is_ascii() {
        return Err(HeaderProblem::BadLine);
    }
    let colon = memchr::memchr(b':', line).ok_or(HeaderProblem::BadLine)?;
    let name = line[..colon].trim_ascii();
    let is_token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if name.is_empty() || !name.iter().all(is_token) {
        return Err(HeaderProblem::BadLine);
    }
    Ok((name, line[colon + 1..].trim_ascii()))
}

/// The first `Content-Length` name in `haystack`, in any case.
fn find_length_name(haystack: &[u8]) -> Option<usize> {
    memchr::memchr2_iter(b'c', b'C', haystack).find(|&at| {
        haystack
            .get(at..at + LENGTH_NAME.len())
            .is_some_and(|name| name.eq_ignore_ascii_case(LENGTH_NAME))
    })
}

/// Where the real header may start inside a block that failed to parse: a
/// `Content-Length` name glued behind other text on its line, or starting a
/// line that follows a line which is not a header. Never 0, so skipping to
/// it always makes progress.
fn resync_point(block: &[u8]) -> Option<usize> {
    let mut after_garbage = false;
    let mut start = 0;
    for line in block.split(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        if after_garbage
            && content
                .get(..LENGTH_NAME.len())
                .is_some_and(|name| name.eq_ignore_ascii_case(LENGTH_NAME))
        {
            return Some(start);
        }
        if let Some(at) = content.get(1..).and_then(find_length_name) {
            return Some(start + 1 + at);
        }
        after_garbage |= !content.is_empty() && header_line(content).is_err();
        start += line.len() + 1;
    }
    None
}

impl Decoder for ContentLengthCodec {
    type Item = Result<Bytes, Error>;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        loop {
            match self.state {
                State::Header => {
                    let window_limit = self.max_header.saturating_add(TERMINATOR.len());
                    let window = src.len().min(window_limit);
                    let Some(end) = memchr::memmem::find(&src[..window], TERMINATOR) else {
                        if window < window_limit {
                            return Ok(None);
                        }
                        // No blank line within the limit: drop at least one
                        // byte, so the search for the next header moves on.
                        src.advance(1);
                        self.state = State::SkipHeader;
                        let problem = HeaderProblem::TooLong;
                        return Ok(Some(Err(Error::MalformedHeader { problem })));
                    };
                    match parse_header(&src[..end]) {
                        Err(problem) => {
                            let skip = resync_point(&src[..end]).unwrap_or(end + TERMINATOR.len());
                            src.advance(skip);
                            return Ok(Some(Err(Error::MalformedHeader { problem })));
                        }
                        Ok(len) if len > self.max_frame as u64 => {
                            src.advance(end + TERMINATOR.len());
                            // Whatever of the body has arrived with its header.
                            let body = src.len().min(usize::try_from(len).unwrap_or(usize::MAX));
                            self.rejected_head = Some(super::head_of(&src[..body]));
                            self.state = State::SkipBody(len);
                            return Ok(Some(Err(Error::FrameTooLarge {
                                limit: self.max_frame,
                                declared: Some(len),
                            })));
                        }
                        Ok(len) => {
                            src.advance(end + TERMINATOR.len());
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
                    return Ok(Some(utf8_frame(body, self.check_utf8)));
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
                State::SkipHeader => match find_length_name(src) {
                    Some(at) => {
                        src.advance(at);
                        self.state = State::Header;
                    }
                    None => {
                        // Keep what may be the start of a name cut by the read.
                        let keep = src.len().min(LENGTH_NAME.len() - 1);
                        src.advance(src.len() - keep);
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

impl Encoder<&[u8]> for ContentLengthCodec {
    type Error = Error;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_frame(payload, dst)
    }
}

#[cfg(test)]
mod tests;
