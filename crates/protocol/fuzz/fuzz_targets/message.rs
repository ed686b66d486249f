//! Fuzzes `Message::from_slice` alone, with the encode→decode round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pybridge_protocol_fuzz::check_message(data));
