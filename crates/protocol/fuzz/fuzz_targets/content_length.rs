//! Fuzzes Content-Length framing and message decoding together.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pybridge_protocol::ContentLengthCodec;
use pybridge_protocol_fuzz::{Input, drive};

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else { return };
    let mut codec = ContentLengthCodec::new(input.max_frame).with_max_header(input.max_header);
    // A partial body, a header block short of its blank line, or a possible
    // `Content-Length` name being searched for while skipping garbage.
    let retained = input
        .max_frame
        .max(input.max_header + 3)
        .max("content-length".len() - 1);
    drive(&mut codec, &input.reads, retained);
});
