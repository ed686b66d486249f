//! JSON values: a `Load::Json` comes back as checked JSON from every tier,
//! and in a cache of JSON values (`CacheBuilder::json_values`) a value read
//! back from disk or Redis that is not JSON is a corrupt entry: never served,
//! removed, reported, loaded again.

use std::path::Path;

use bytes::Bytes;
use pybridge_cache::{
    Cache, CacheBuilder, CacheEvent, CacheKey, Corruption, Fetched, Load, Source, Tiers,
};
use serde_json::value::RawValue;

use crate::support::{Boom, Runs, builder_on, far, get, key, next_event, policy};

fn json_cache_on(dir: &Path) -> Cache {
    builder_on(dir)
        .json_values(true)
        .build()
        .expect("valid settings")
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("JSON")
}

/// `get_or_load` with a loader that returns `text` as checked JSON.
async fn get_json(cache: &Cache, key: &CacheKey, tiers: Tiers, runs: &Runs, text: &str) -> Fetched {
    let runs = runs.clone();
    let value = raw(text);
    cache
        .get_or_load(key, &policy(tiers), far(), || async move {
            runs.hit();
            Ok::<_, Boom>(value)
        })
        .await
        .expect("the loader does not fail")
}

fn json_of(fetched: &Fetched) -> Option<&str> {
    fetched.json().map(RawValue::get)
}

#[tokio::test]
async fn a_json_value_comes_back_as_checked_json_from_every_tier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"{"rows":[1,2,3],"name":"é"}"#;
    let k = key("m", r#"{"q":1}"#);
    let runs = Runs::default();

    let writer = json_cache_on(dir.path());
    let loaded = get_json(&writer, &k, Tiers::Both, &runs, text).await;
    assert_eq!(loaded.source, Source::Loader);
    assert_eq!(json_of(&loaded), Some(text));
    assert_eq!(
        &loaded.value[..],
        text.as_bytes(),
        "the bytes are the same text"
    );
    let hit = get_json(&writer, &k, Tiers::Both, &runs, "0").await;
    assert_eq!((hit.source, json_of(&hit)), (Source::L1, Some(text)));
    writer.close().await;

    // A second cache on the same directory: the value is only on disk.
    let reader = json_cache_on(dir.path());
    let from_disk = get_json(&reader, &k, Tiers::Both, &runs, "0").await;
    assert_eq!(
        (from_disk.source, json_of(&from_disk)),
        (Source::L2, Some(text))
    );
    let promoted = get_json(&reader, &k, Tiers::Both, &runs, "0").await;
    assert_eq!(
        (promoted.source, json_of(&promoted)),
        (Source::L1, Some(text))
    );
    assert_eq!(runs.count(), 1, "only the first call loaded");
}

#[tokio::test]
async fn a_value_on_disk_that_is_not_json_is_a_corrupt_entry_of_a_json_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = key("m", "1");
    // A byte cache on the same directory and namespace writes bytes that
    // are intact (their checksum holds) but are not JSON.
    let bytes_cache = builder_on(dir.path()).build().expect("valid settings");
    get(
        &bytes_cache,
        &k,
        &policy(Tiers::Both),
        &Runs::default(),
        "{not json",
    )
    .await;
    bytes_cache.close().await;

    let cache = json_cache_on(dir.path());
    let mut events = cache.subscribe();
    cache.flush().await;
    let runs = Runs::default();
    let fetched = get_json(&cache, &k, Tiers::Both, &runs, r#"["fresh"]"#).await;
    assert_eq!(
        (fetched.source, json_of(&fetched)),
        (Source::Loader, Some(r#"["fresh"]"#)),
        "the value that is not JSON is never served"
    );
    assert_eq!(runs.count(), 1);
    assert_eq!(cache.stats().l2_corrupt, 1);
    let kind = next_event(&mut events, |e| match e {
        CacheEvent::CorruptEntryRemoved { key: d, kind } if d == k.digest() => Some(*kind),
        _ => None,
    })
    .await;
    assert_eq!(kind, Corruption::NotJson);
    cache.close().await;

    // The fresh value replaced it on disk.
    let again = get_json(&json_cache_on(dir.path()), &k, Tiers::L2Only, &runs, "0").await;
    assert_eq!(
        (again.source, json_of(&again)),
        (Source::L2, Some(r#"["fresh"]"#))
    );
}

#[tokio::test]
async fn a_byte_cache_serves_any_bytes_and_gives_no_json_view_of_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = key("m", "1");
    let writer = builder_on(dir.path()).build().expect("valid settings");
    let loaded = get(&writer, &k, &policy(Tiers::Both), &Runs::default(), "{}").await;
    assert_eq!(
        json_of(&loaded),
        None,
        "bytes that happen to be JSON stay bytes"
    );
    writer.close().await;
    let reader = builder_on(dir.path()).build().expect("valid settings");
    let from_disk = get(&reader, &k, &policy(Tiers::Both), &Runs::default(), "x").await;
    assert_eq!(
        (from_disk.source, &from_disk.value[..], json_of(&from_disk)),
        (Source::L2, &b"{}"[..], None)
    );

    // A byte cache given a JSON load keeps its view.
    let memory = CacheBuilder::new()
        .namespace("test")
        .memory_only()
        .build()
        .expect("valid settings");
    let k = key("m", "2");
    get_json(&memory, &k, Tiers::L1Only, &Runs::default(), "[true]").await;
    let hit = get_json(&memory, &k, Tiers::L1Only, &Runs::default(), "0").await;
    assert_eq!((hit.source, json_of(&hit)), (Source::L1, Some("[true]")));
}

#[test]
fn loads_are_equal_when_they_would_cache_the_same_bytes() {
    assert_eq!(
        Load::Json(raw("[1]")),
        Load::Value(Bytes::from_static(b"[1]"))
    );
    assert_ne!(
        Load::Json(raw("[1]")),
        Load::Negative(Bytes::from_static(b"[1]"))
    );
    assert_ne!(Load::Json(raw("[1]")), Load::Json(raw("[2]")));
}

#[cfg(feature = "redis")]
mod shared {
    use pybridge_cache::{SharedTierEvent, Source};

    use super::{get_json, json_of};
    use crate::redis_server::RedisServer;
    use crate::shared_tier::{build, policy, ready, tier, wait_writes};
    use crate::support::{Runs, get, key, next_event};

    /// A cache of JSON values on the shared tier at `url`, in memory only.
    fn shared_json_cache(url: &str) -> pybridge_cache::Cache {
        pybridge_cache::CacheBuilder::new()
            .namespace("test")
            .shared_tier(tier(url))
            .memory_only()
            .json_values(true)
            .build()
            .expect("valid settings")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_value_that_is_not_json_is_a_corrupt_entry_of_a_json_cache() {
        let server = RedisServer::start();
        let bytes_cache = build(tier(&server.url()), None);
        let json_cache = shared_json_cache(&server.url());
        ready(&bytes_cache).await;
        ready(&json_cache).await;
        let mut events = json_cache.subscribe();
        let k = key("m", "1");
        get(&bytes_cache, &k, &policy(), &Runs::default(), "{not json").await;
        wait_writes(&bytes_cache, 1).await;

        let runs = Runs::default();
        let fetched = get_json(&json_cache, &k, policy().tiers, &runs, r#"{"ok":1}"#).await;
        assert_eq!(
            (fetched.source, json_of(&fetched)),
            (Source::Loader, Some(r#"{"ok":1}"#))
        );
        assert_eq!(json_cache.shared_tier_stats().corrupt, 1);
        let removed = next_event(&mut events, |e| match e {
            pybridge_cache::CacheEvent::SharedTier(SharedTierEvent::CorruptEntryRemoved {
                key,
            }) => Some(*key),
            _ => None,
        })
        .await;
        assert_eq!(&removed, k.digest());

        // Its own write replaced the entry; another JSON cache reads it as
        // checked JSON.
        wait_writes(&json_cache, 1).await;
        let other = shared_json_cache(&server.url());
        ready(&other).await;
        let shared = get_json(&other, &k, policy().tiers, &runs, "0").await;
        assert_eq!(
            (shared.source, json_of(&shared)),
            (Source::Shared, Some(r#"{"ok":1}"#))
        );
    }
}
