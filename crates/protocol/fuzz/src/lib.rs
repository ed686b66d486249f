//! Checks shared by the fuzz targets: drive a decoder over input cut into
//! reads, and hold every decoded message to the encode→decode round trip.

use bytes::BytesMut;
use pybridge_protocol::{Error, Message};
use tokio_util::codec::Decoder;

/// Decodes `bytes` as a message; whatever decodes must re-encode to JSON that
/// decodes again to the same encoding. Never panics on any input otherwise.
pub fn check_message(bytes: &[u8]) {
    let decoded = Message::from_slice(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let from_str = text.parse::<Message>();
        assert_eq!(
            decoded.as_ref().map(Message::to_vec).map_err(ToString::to_string),
            from_str.as_ref().map(Message::to_vec).map_err(ToString::to_string),
            "from_slice and from_str disagree"
        );
    }
    let Ok(message) = decoded else { return };
    // A batch whose entries are all invalid encodes as `[]`, which is itself invalid.
    if let Message::Batch(entries) = &message
        && entries.iter().all(Result::is_err)
    {
        return;
    }
    let encoded = message.to_vec();
    let again = Message::from_slice(&encoded)
        .unwrap_or_else(|err| panic!("re-encoded message fails to decode: {err}"));
    assert_eq!(again.to_vec(), encoded, "encoding is not stable");
}

/// Splits fuzz input into a decoder configuration and reads: the first byte
/// picks the frame limit, the second the header limit, and each later byte
/// below 16 ends a read, so one input explores many read boundaries.
pub struct Input<'a> {
    /// Maximum frame size for the codec.
    pub max_frame: usize,
    /// Maximum header size (Content-Length only).
    pub max_header: usize,
    /// The reads, in order.
    pub reads: Vec<&'a [u8]>,
}

impl<'a> Input<'a> {
    /// Parses raw fuzz input; `None` when it is too short to configure anything.
    pub fn parse(data: &'a [u8]) -> Option<Input<'a>> {
        let (&frame, rest) = data.split_first()?;
        let (&header, rest) = rest.split_first()?;
        let reads = rest.split_inclusive(|&b| b < 16).collect();
        Some(Input {
            max_frame: usize::from(frame) * 4,
            max_header: usize::from(header) + 16,
            reads,
        })
    }
}

/// Feeds the reads to `codec`, checking that the buffer never holds more
/// than `retained` bytes between reads (plus the read being fed while
/// decoding), and runs every frame through [`check_message`].
pub fn drive<D>(codec: &mut D, reads: &[&[u8]], retained: usize)
where
    D: Decoder<Item = Result<bytes::Bytes, Error>, Error = Error>,
{
    let mut buf = BytesMut::new();
    for read in reads {
        assert!(buf.len() <= retained, "{} bytes held between reads", buf.len());
        buf.extend_from_slice(read);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Ok(frame))) => check_message(&frame),
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(err) => panic!("the stream failed: {err}"),
            }
            assert!(buf.len() <= retained + read.len(), "{} bytes held", buf.len());
        }
    }
    // At most one more frame per byte left, plus one report.
    for _ in 0..=buf.len() + 1 {
        match codec.decode_eof(&mut buf) {
            Ok(Some(Ok(frame))) => check_message(&frame),
            Ok(Some(Err(_))) => {}
            Ok(None) => {
                assert!(buf.is_empty(), "end of stream left bytes behind");
                return;
            }
            Err(err) => panic!("the stream failed at its end: {err}"),
        }
    }
    panic!("decode_eof does not terminate");
}
