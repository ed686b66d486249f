//! The bytes stored in Redis for one entry: a header that names the key and
//! carries a blake3 hash of the value, so that a read can tell a value that is
//! whole and belongs to its key from anything else.
//!
//! Layout: `PBR1` | flags (1 byte: bit 0 = negative) | expiry (8 bytes, unix
//! ms, big-endian) | key digest (32) | check (32) | value, where the check is
//! blake3 over flags, expiry, digest and value: no byte goes unchecked.
//! Redis expires the entry by its own TTL; the expiry in the record lets a
//! reader cap the memory copy's TTL at what is left.

use bytes::Bytes;

use crate::key::KeyDigest;
use crate::value::Stored;

const MAGIC: &[u8; 4] = b"PBR1";
const HEADER: usize = 4 + 1 + 8 + 32 + 32;

/// A record that passed its checks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) value: Stored,
    pub(crate) negative: bool,
    pub(crate) expires_ms: u64,
}

pub(crate) fn encode(digest: &KeyDigest, negative: bool, expires_ms: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    out.extend_from_slice(MAGIC);
    out.push(u8::from(negative));
    out.extend_from_slice(&expires_ms.to_be_bytes());
    out.extend_from_slice(digest.as_bytes());
    let check = checksum(&out[4..45], value);
    out.extend_from_slice(check.as_bytes());
    out.extend_from_slice(value);
    out
}

fn checksum(header: &[u8], value: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(header);
    hasher.update(value);
    hasher.finalize()
}

/// The record's value if it is whole and belongs to `digest`; `None` if it is
/// corrupt, truncated, another key's, or of an unknown layout.
pub(crate) fn decode(record: Bytes, digest: &KeyDigest) -> Option<Record> {
    if record.len() < HEADER || &record[..4] != MAGIC {
        return None;
    }
    let flags = record[4];
    if flags > 1 {
        return None;
    }
    let expires_ms = u64::from_be_bytes(record[5..13].try_into().ok()?);
    if &record[13..45] != digest.as_bytes() {
        return None;
    }
    let value = record.slice(HEADER..);
    if checksum(&record[4..45], &value).as_bytes() != &record[45..77] {
        return None;
    }
    Some(Record {
        value: Stored::bytes(value),
        negative: flags == 1,
        expires_ms,
    })
}
