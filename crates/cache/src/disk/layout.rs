//! How the disk tier lays out its directory, on top of cacache's own layout.
//!
//! cacache keeps an append-only index (`index-v5/`, one bucket file per key,
//! named by the key's sha1) and content-addressed blobs (`content-v2/`, named
//! by the content hash), writing through temporary files in `tmp/`. It has no
//! eviction and no size limit, and its public API does not expose the paths,
//! which the sweeper needs; the two path functions below mirror cacache 13
//! exactly, and a test pins them to what cacache writes.
//!
//! Each entry's content is a record: a magic tag, a flag byte and the key's
//! digest, then the value. The digest makes the content of every key unique,
//! which matters because cacache stores identical content once: without it,
//! removing one key's content would break another key that cached the same
//! bytes. Checking the digest on read also rejects content reached through a
//! damaged index. The TTL lives in the index entry's metadata, so expiry can be
//! decided without reading the content.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use cacache::{Algorithm, Integrity};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use crate::KeyDigest;

pub(crate) const INDEX_DIR: &str = "index-v5";
pub(crate) const CONTENT_DIR: &str = "content-v2";
pub(crate) const TMP_DIR: &str = "tmp";

/// xxh3-128: the content check is against accidental damage (bit rot, torn
/// writes, truncation), for which a non-cryptographic 128-bit hash suffices;
/// anyone able to write to the directory could forge any entry anyway.
/// It is many times faster than SHA-256 on large values.
pub(crate) const ALGORITHM: Algorithm = Algorithm::Xxh3;

const MAGIC: [u8; 4] = *b"PBC\x01";
const FLAG_NEGATIVE: u8 = 1;
pub(crate) const HEADER_LEN: usize = MAGIC.len() + 1 + 32;

/// Version of the metadata written with each index entry.
const META_VERSION: u64 = 1;

/// The index bucket that holds `key` (cacache: `index-v5/aa/bb/rest-of-sha1-hex`).
pub(crate) fn bucket_path(dir: &Path, key: &str) -> PathBuf {
    let hash = hex(&Sha1::digest(key.as_bytes()));
    dir.join(INDEX_DIR)
        .join(&hash[0..2])
        .join(&hash[2..4])
        .join(&hash[4..])
}

/// The content file of `integrity` (cacache: `content-v2/<algo>/aa/bb/rest-of-hex`).
pub(crate) fn content_path(dir: &Path, integrity: &Integrity) -> PathBuf {
    let (algorithm, hash) = integrity.to_hex();
    dir.join(CONTENT_DIR)
        .join(algorithm.to_string())
        .join(&hash[0..2])
        .join(&hash[2..4])
        .join(&hash[4..])
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

pub(crate) fn encode_record(digest: &KeyDigest, negative: bool, value: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER_LEN + value.len());
    record.extend_from_slice(&MAGIC);
    record.push(if negative { FLAG_NEGATIVE } else { 0 });
    record.extend_from_slice(digest.as_bytes());
    record.extend_from_slice(value);
    record
}

/// The value and negative flag of a record, if it is a record of `digest`.
pub(crate) fn decode_record(record: Vec<u8>, digest: &KeyDigest) -> Option<(Bytes, bool)> {
    if record.len() < HEADER_LEN || record[..MAGIC.len()] != MAGIC {
        return None;
    }
    let flags = record[MAGIC.len()];
    if flags & !FLAG_NEGATIVE != 0 || &record[MAGIC.len() + 1..HEADER_LEN] != digest.as_bytes() {
        return None;
    }
    Some((
        Bytes::from(record).slice(HEADER_LEN..),
        flags & FLAG_NEGATIVE != 0,
    ))
}

/// The index metadata of an entry: format version, expiry (Unix ms) and method.
pub(crate) fn meta_json(expires_ms: u64, method: &str) -> Value {
    json!({ "v": META_VERSION, "exp": expires_ms, "m": method })
}

/// What the cache wrote in an entry's metadata, or `None` for anything else.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EntryMeta<'a> {
    pub(crate) expires_ms: u64,
    pub(crate) method: &'a str,
}

pub(crate) fn parse_meta(meta: &Value) -> Option<EntryMeta<'_>> {
    if meta.get("v")?.as_u64()? != META_VERSION {
        return None;
    }
    Some(EntryMeta {
        expires_ms: meta.get("exp")?.as_u64()?,
        method: meta.get("m")?.as_str()?,
    })
}

/// Removes a file; a file that is already gone is not an error.
pub(crate) fn remove_file(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes an entry's index bucket, then its content. In that order a reader
/// never finds an index entry whose content was removed on purpose.
///
/// The two hash folders above each file (`aa/bb`, which cacache creates and
/// never removes) stay: another process sharing the directory may have just
/// made one of them to write into it. The sweep removes them once empty and
/// old.
pub(crate) fn remove_entry(
    dir: &Path,
    key: &str,
    integrity: &Integrity,
) -> Result<(), (io::Error, PathBuf)> {
    let bucket = bucket_path(dir, key);
    remove_file(&bucket).map_err(|e| (e, bucket))?;
    let content = content_path(dir, integrity);
    remove_file(&content).map_err(|e| (e, content))?;
    Ok(())
}

/// Runs a cacache write, and once more if it failed because a folder it had
/// just made ready was gone: another process's sweep removed an old empty
/// hash folder between cacache finding it and writing into it. The second
/// try makes the folder anew, young, which no sweep removes.
pub(crate) fn write_retrying_vanished<T>(
    write: impl Fn() -> Result<T, cacache::Error>,
) -> Result<T, cacache::Error> {
    match write() {
        Err(cacache::Error::IoError(e, _)) if e.kind() == io::ErrorKind::NotFound => write(),
        written => written,
    }
}
