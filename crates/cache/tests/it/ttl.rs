//! TTLs in both tiers, and promotion from disk with the remaining TTL, on
//! Tokio's paused clock.

use std::time::Duration;

use bytes::Bytes;
use pybridge_cache::{CacheEvent, CachePolicy, Load, Source, Tiers};

use crate::support::{
    Boom, Runs, cache_on, content_files, far, get, key, memory_cache, next_event,
};

fn ttl_policy(tiers: Tiers, l1: u64, l2: u64) -> CachePolicy {
    let mut policy = CachePolicy::default();
    policy.tiers = tiers;
    policy.l1_ttl = Duration::from_secs(l1);
    policy.l2_ttl = Duration::from_secs(l2);
    policy
}

#[tokio::test(start_paused = true)]
async fn memory_entries_expire_after_their_ttl() {
    let cache = memory_cache();
    let (k, policy, runs) = (
        key("m", "1"),
        ttl_policy(Tiers::L1Only, 10, 10),
        Runs::default(),
    );
    assert_eq!(
        get(&cache, &k, &policy, &runs, "v1").await.source,
        Source::Loader
    );
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(
        get(&cache, &k, &policy, &runs, "v2").await.source,
        Source::L1
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    let after = get(&cache, &k, &policy, &runs, "v2").await;
    assert_eq!(
        (after.source, &after.value[..], runs.count()),
        (Source::Loader, &b"v2"[..], 2)
    );
}

/// The reading a caller passes decides a memory entry's expiry, not the
/// clock: the bridge passes its call's start so that a hit reads no clock.
#[tokio::test(start_paused = true)]
async fn a_memory_entry_is_judged_by_the_callers_clock_reading() {
    let cache = memory_cache();
    let (k, policy, runs) = (
        key("m", "1"),
        ttl_policy(Tiers::L1Only, 10, 10),
        Runs::default(),
    );
    get(&cache, &k, &policy, &runs, "v1").await;
    let stored = tokio::time::Instant::now();
    let get_at = |now: tokio::time::Instant| {
        let runs = runs.clone();
        let (cache, k, policy) = (&cache, &k, &policy);
        async move {
            cache
                .get_or_load_at(k, policy, now, far(), || async move {
                    runs.hit();
                    Ok::<_, Boom>(Load::Value(Bytes::from_static(b"v2")))
                })
                .await
                .expect("the loader does not fail")
        }
    };
    tokio::time::advance(Duration::from_secs(11)).await;
    // Read before the TTL ran out: still a hit, though the clock is past it.
    let early = get_at(stored + Duration::from_millis(9_999)).await;
    assert_eq!((early.source, &early.value[..]), (Source::L1, &b"v1"[..]));
    assert_eq!(runs.count(), 1);
    // A reading at the TTL's end: expired, and loaded again.
    let late = get_at(stored + Duration::from_secs(10)).await;
    assert_eq!(
        (late.source, &late.value[..], runs.count()),
        (Source::Loader, &b"v2"[..], 2)
    );
}

#[tokio::test(start_paused = true)]
async fn disk_entries_expire_after_their_ttl_and_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let (k, policy, runs) = (
        key("m", "1"),
        ttl_policy(Tiers::L2Only, 10, 10),
        Runs::default(),
    );
    let mut events = cache.subscribe();
    get(&cache, &k, &policy, &runs, "v1").await;
    cache.flush().await;
    assert_eq!(content_files(dir.path()).len(), 1);
    // The first sweep (a second after the start) is over before the entry
    // expires: only the read below may find it expired, so it is counted once.
    tokio::time::advance(Duration::from_secs(2)).await;
    let swept = next_event(&mut events, |e| match e {
        CacheEvent::Swept(report) => Some(*report),
        _ => None,
    })
    .await;
    assert_eq!((swept.entries, swept.expired), (1, 0), "{swept:?}");

    tokio::time::advance(Duration::from_secs(7)).await;
    let hit = get(&cache, &k, &policy, &runs, "v2").await;
    assert_eq!((hit.source, &hit.value[..]), (Source::L2, &b"v1"[..]));

    tokio::time::advance(Duration::from_secs(2)).await;
    let miss = get(&cache, &k, &policy, &runs, "v2").await;
    assert_eq!(
        (miss.source, &miss.value[..], runs.count()),
        (Source::Loader, &b"v2"[..], 2)
    );
    assert_eq!(
        cache.stats().l2_expirations,
        1,
        "the expired entry was removed on read"
    );
    cache.flush().await;
    // Only the fresh entry's content is left.
    assert_eq!(content_files(dir.path()).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_disk_hit_is_promoted_with_its_remaining_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (k, runs) = (key("m", "1"), Runs::default());
    let writer = cache_on(dir.path());
    get(&writer, &k, &ttl_policy(Tiers::Both, 60, 100), &runs, "v1").await;
    writer.close().await;

    tokio::time::advance(Duration::from_secs(90)).await;
    // A fresh process: empty memory, same directory. 10 s of disk TTL remain.
    let reader = cache_on(dir.path());
    let policy = ttl_policy(Tiers::Both, 60, 100);
    assert_eq!(
        get(&reader, &k, &policy, &runs, "v2").await.source,
        Source::L2
    );
    assert_eq!(
        get(&reader, &k, &policy, &runs, "v2").await.source,
        Source::L1,
        "promoted"
    );

    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(
        get(&reader, &k, &policy, &runs, "v2").await.source,
        Source::L1
    );
    // Past the disk TTL the promoted copy is gone too, though its memory TTL
    // alone (60 s) would have kept it.
    tokio::time::advance(Duration::from_secs(2)).await;
    let after = get(&reader, &k, &policy, &runs, "v2").await;
    assert_eq!(
        (after.source, &after.value[..]),
        (Source::Loader, &b"v2"[..])
    );
    assert_eq!(runs.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_promoted_entry_keeps_the_shorter_memory_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (k, runs) = (key("m", "1"), Runs::default());
    let writer = cache_on(dir.path());
    get(&writer, &k, &ttl_policy(Tiers::Both, 5, 100), &runs, "v1").await;
    writer.close().await;

    let reader = cache_on(dir.path());
    let policy = ttl_policy(Tiers::Both, 5, 100);
    assert_eq!(
        get(&reader, &k, &policy, &runs, "x").await.source,
        Source::L2
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    // Memory expired after 5 s; the disk still has it.
    assert_eq!(
        get(&reader, &k, &policy, &runs, "x").await.source,
        Source::L2
    );
    assert_eq!(runs.count(), 1);
}
