//! Fuzzes NDJSON framing and message decoding together.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pybridge_protocol::NdjsonCodec;
use pybridge_protocol_fuzz::{Input, drive};

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else { return };
    let mut codec = NdjsonCodec::new(input.max_frame);
    // A partial line up to the limit, plus a `\r` that may precede its `\n`.
    drive(&mut codec, &input.reads, input.max_frame + 1);
});
