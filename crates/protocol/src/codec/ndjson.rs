//! Newline-delimited JSON framing.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::utf8_frame;
use crate::Error;

/// One JSON value per line, `\n`-terminated (a `\r` before it is dropped).
///
/// Blank lines are skipped. A line longer than the maximum is reported once as
/// [`Error::FrameTooLarge`] and then discarded as it arrives, so the buffer
/// never holds more than the maximum, plus a `\r` that may precede the
/// newline, plus one read; decoding resumes at the next line.
#[derive(Debug, Clone)]
pub struct NdjsonCodec {
    max_frame: usize,
    /// How far the buffer has been searched for a newline, so a long line that
    /// arrives in many reads is scanned once.
    scanned: usize,
    /// Whether the rest of an oversized line is being thrown away.
    discarding: bool,
    /// The first bytes of the last oversized line; see [`NdjsonCodec::take_rejected_head`].
    rejected_head: Option<Bytes>,
    /// Whether each frame is checked to be UTF-8 (see [`Codec::without_utf8_check`](super::Codec::without_utf8_check)).
    check_utf8: bool,
}

impl NdjsonCodec {
    /// A codec that rejects lines longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> NdjsonCodec {
        NdjsonCodec {
            max_frame,
            scanned: 0,
            discarding: false,
            rejected_head: None,
            check_utf8: true,
        }
    }

    /// Leaves the UTF-8 check of each frame to its reader; see
    /// [`Codec::without_utf8_check`](super::Codec::without_utf8_check).
    pub fn without_utf8_check(mut self) -> NdjsonCodec {
        self.check_utf8 = false;
        self
    }

    /// The maximum frame size.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The first bytes (at most [`REJECTED_HEAD`](super::REJECTED_HEAD)) of the
    /// last frame rejected as too large, taken once. A client reads the id of
    /// the response it lost from them, so that call can fail at once instead
    /// of at its deadline.
    pub fn take_rejected_head(&mut self) -> Option<Bytes> {
        self.rejected_head.take()
    }

    /// Appends one framed message.
    ///
    /// Compact JSON never contains a raw newline, but raw params supplied by a
    /// user may be pretty-printed; a raw `\r` or `\n` can only be whitespace
    /// between tokens in valid JSON, so it is replaced with a space.
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
        dst.reserve(payload.len() + 1);
        let start = dst.len();
        dst.put_slice(payload);
        if memchr::memchr2(b'\n', b'\r', payload).is_some() {
            for b in &mut dst[start..] {
                if *b == b'\n' || *b == b'\r' {
                    *b = b' ';
                }
            }
        }
        dst.put_u8(b'\n');
        Ok(())
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

impl Decoder for NdjsonCodec {
    type Item = Result<Bytes, Error>;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        loop {
            let Some(offset) = memchr::memchr(b'\n', &src[self.scanned..]) else {
                if self.discarding {
                    src.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                // A line exactly at the limit may be waiting for the `\n` of its
                // `\r\n`; that `\r` is part of the terminator, not the frame.
                let pending_cr =
                    src.len() == self.max_frame.saturating_add(1) && src.last() == Some(&b'\r');
                if src.len() > self.max_frame && !pending_cr {
                    self.rejected_head = Some(super::head_of(src));
                    src.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Ok(Some(Err(Error::FrameTooLarge {
                        limit: self.max_frame,
                        declared: None,
                    })));
                }
                self.scanned = src.len();
                return Ok(None);
            };
            let newline = self.scanned + offset;
            self.scanned = 0;
            if self.discarding {
                src.advance(newline + 1);
                self.discarding = false;
                continue;
            }
            let mut line = src.split_to(newline + 1).freeze();
            line.truncate(newline);
            if line.last() == Some(&b'\r') {
                line.truncate(newline - 1);
            }
            if line.len() > self.max_frame {
                self.rejected_head = Some(super::head_of(&line));
                // No size is reported: whether the whole line was in hand
                // depends only on how the reads happened to split it.
                return Ok(Some(Err(Error::FrameTooLarge {
                    limit: self.max_frame,
                    declared: None,
                })));
            }
            if is_blank(&line) {
                continue;
            }
            return Ok(Some(utf8_frame(line, self.check_utf8)));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        // An unterminated last line is still a frame: a worker that died in the
        // middle of a write leaves one, and the caller deserves to see it.
        self.scanned = 0;
        if self.discarding || is_blank(src) {
            self.discarding = false;
            src.clear();
            return Ok(None);
        }
        let mut line = src.split().freeze();
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        Ok(Some(utf8_frame(line, self.check_utf8)))
    }
}

impl Encoder<&[u8]> for NdjsonCodec {
    type Error = Error;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_frame(payload, dst)
    }
}

#[cfg(test)]
mod tests;
