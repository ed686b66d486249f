//! Unit tests of the shared tier's record and message formats.

use std::sync::Arc;

use bytes::Bytes;

use super::message::{self, Invalidation};
use super::record;
use super::redact;
use crate::key::KeyDigest;

fn digest(n: u8) -> KeyDigest {
    *crate::CacheKey::new("ns", "m", &n.to_string())
        .expect("JSON")
        .digest()
}

#[test]
fn a_record_round_trips_and_any_changed_byte_fails_its_check() {
    let d = digest(1);
    let bytes = record::encode(&d, true, 1234, b"value");
    let back = record::decode(Bytes::from(bytes.clone()), &d).expect("whole");
    assert_eq!(
        (&back.value.bytes[..], back.negative, back.expires_ms),
        (&b"value"[..], true, 1234)
    );
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        assert_eq!(record::decode(Bytes::from(bad), &d), None, "byte {i}");
    }
    assert_eq!(
        record::decode(Bytes::from(bytes.clone()), &digest(2)),
        None,
        "another key's"
    );
    assert_eq!(
        record::decode(Bytes::from(bytes[..40].to_vec()), &d),
        None,
        "truncated"
    );
}

#[test]
fn messages_round_trip_and_foreign_text_is_ignored() {
    let d = digest(3);
    for target in [
        Invalidation::Key {
            digest: d,
            method_tag: 0xdead_beef,
        },
        Invalidation::Methods(Arc::from([Arc::from("patterns find")])),
        Invalidation::Methods(Arc::from([Arc::from("a b"), Arc::from("c\n\"d\"")])),
        Invalidation::All,
    ] {
        let text = message::encode(42, &target);
        assert_eq!(message::decode(&text), Some((42, target)));
    }
    for text in [
        "",
        "v1",
        "v2 000000000000002a a",
        "v1 2a a",
        "v1 000000000000002a x",
        "v1 000000000000002a m ",
        "v1 000000000000002a M []",
        "v1 000000000000002a M [\"\"]",
        "v1 000000000000002a M nope",
    ] {
        assert_eq!(message::decode(text), None, "{text:?}");
    }
}

#[test]
fn a_url_password_is_redacted() {
    assert_eq!(
        redact("redis://user:secret@host:6379/0"),
        "redis://user:***@host:6379/0"
    );
    assert_eq!(
        redact("redis://127.0.0.1:6379/0"),
        "redis://127.0.0.1:6379/0"
    );
}
