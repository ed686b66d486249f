//! Unit tests of the disk layout, the record format and the entry metadata.

use super::layout::*;
use super::*;

fn digest(n: u8) -> KeyDigest {
    KeyDigest::from_hex(&format!("{n:02x}").repeat(32)).expect("64 hex digits")
}

#[test]
fn layout_paths_are_where_cacache_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let integrity = cacache::write_sync_with_algo(ALGORITHM, dir.path(), "some-key", b"some data")
        .expect("write");
    let bucket = bucket_path(dir.path(), "some-key");
    let content = content_path(dir.path(), &integrity);
    assert!(
        bucket.starts_with(dir.path().join(INDEX_DIR)),
        "{}",
        bucket.display()
    );
    assert!(bucket.is_file(), "no bucket at {}", bucket.display());
    assert_eq!(std::fs::read(&content).expect("content file"), b"some data");

    remove_entry(dir.path(), "some-key", &integrity).expect("remove");
    assert!(!bucket.exists() && !content.exists());
    assert_eq!(
        cacache::metadata_sync(dir.path(), "some-key").expect("lookup"),
        None
    );
    // Removing what is gone is not an error.
    remove_entry(dir.path(), "some-key", &integrity).expect("remove again");
}

#[test]
fn records_round_trip_and_name_their_key() {
    let record = encode_record(&digest(1), false, b"value");
    assert_eq!(record.len(), HEADER_LEN + 5);
    assert_eq!(
        decode_record(record.clone(), &digest(1)),
        Some((Bytes::from_static(b"value"), false))
    );
    assert_eq!(
        decode_record(record, &digest(2)),
        None,
        "another key's record"
    );

    let negative = encode_record(&digest(1), true, b"");
    assert_eq!(
        decode_record(negative, &digest(1)),
        Some((Bytes::new(), true))
    );
}

#[test]
fn damaged_records_are_refused() {
    let good = encode_record(&digest(3), false, b"value");
    let mut bad_magic = good.clone();
    bad_magic[0] ^= 0xff;
    assert_eq!(decode_record(bad_magic, &digest(3)), None);
    let mut unknown_flag = good.clone();
    unknown_flag[4] = 0x80;
    assert_eq!(decode_record(unknown_flag, &digest(3)), None);
    assert_eq!(
        decode_record(good[..HEADER_LEN - 1].to_vec(), &digest(3)),
        None
    );
}

#[test]
fn records_of_equal_values_differ_per_key() {
    // cacache stores equal content once; the digest in the record keeps two
    // keys with the same value from sharing (and co-deleting) one file.
    assert_ne!(
        encode_record(&digest(1), false, b"same"),
        encode_record(&digest(2), false, b"same")
    );
}

#[test]
fn metadata_round_trips_and_rejects_foreign_shapes() {
    let meta = meta_json(1234, "patterns.find");
    assert_eq!(
        parse_meta(&meta),
        Some(EntryMeta {
            expires_ms: 1234,
            method: "patterns.find"
        })
    );
    assert_eq!(
        parse_meta(&serde_json::json!({"v": 2, "exp": 1, "m": "x"})),
        None
    );
    assert_eq!(parse_meta(&serde_json::json!({"v": 1, "m": "x"})), None);
    assert_eq!(
        parse_meta(&serde_json::json!({"v": 1, "exp": "soon", "m": "x"})),
        None
    );
    assert_eq!(parse_meta(&serde_json::Value::Null), None);
}
