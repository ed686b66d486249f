//! Integration tests of pybridge-protocol, through its public API only.

mod content_length;
mod decode;
mod encode;
mod ndjson;
mod pending;
mod props;
mod spec;
mod support;
