//! Concurrent misses of one key run one load; its value or error reaches all.

use std::sync::Arc;

use bytes::Bytes;
use pybridge_cache::{Cache, Load, Source, Tiers};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::support::{Boom, Runs, cache_on, get, key, memory_cache, policy};

const CALLERS: usize = 100;

/// Starts `CALLERS` calls of one key whose loader waits for `release`, lets
/// them all reach the cache, then releases the loader.
async fn hundred_callers(
    cache: &Cache,
    tiers: Tiers,
    outcome: Result<&'static str, &'static str>,
) -> (Runs, Vec<Result<pybridge_cache::Fetched, Arc<Boom>>>) {
    let runs = Runs::default();
    let release = Arc::new(Notify::new());
    let mut set = JoinSet::new();
    for _ in 0..CALLERS {
        let (cache, runs, release) = (cache.clone(), runs.clone(), Arc::clone(&release));
        set.spawn(async move {
            cache
                .get_or_load(&key("m", r#"{"q":1}"#), &policy(tiers), || async move {
                    runs.hit();
                    release.notified().await;
                    outcome
                        .map(|v| Load::Value(Bytes::from_static(v.as_bytes())))
                        .map_err(Boom)
                })
                .await
        });
    }
    // On this single-threaded runtime every task runs until it waits; yielding
    // enough times lets all of them reach the cache.
    for _ in 0..(4 * CALLERS) {
        tokio::task::yield_now().await;
    }
    assert_eq!(runs.count(), 1, "one loader started");
    release.notify_one();
    let results = set.join_all().await;
    (runs, results)
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_misses_run_one_load() {
    let cache = memory_cache();
    let (runs, results) = hundred_callers(&cache, Tiers::Both, Ok("value")).await;
    assert_eq!(runs.count(), 1);
    assert_eq!(results.len(), CALLERS);
    let mut coalesced = 0;
    for result in results {
        let fetched = result.expect("every caller gets the value");
        assert_eq!(fetched.value, Bytes::from_static(b"value"));
        assert_eq!(fetched.source, Source::Loader);
        coalesced += usize::from(fetched.coalesced);
    }
    assert_eq!(coalesced, CALLERS - 1);
    let stats = cache.stats();
    assert_eq!(
        (stats.loads, stats.misses, stats.coalesced),
        (1, CALLERS as u64, CALLERS as u64 - 1)
    );
    // And the value is now cached.
    let again = get(
        &cache,
        &key("m", r#"{"q":1}"#),
        &policy(Tiers::Both),
        &runs,
        "other",
    )
    .await;
    assert_eq!((again.source, runs.count()), (Source::L1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_hundred_concurrent_misses_share_one_error_which_is_not_cached() {
    let cache = memory_cache();
    let (runs, results) = hundred_callers(&cache, Tiers::Both, Err("worker crashed")).await;
    assert_eq!(runs.count(), 1);
    let errors: Vec<Arc<Boom>> = results
        .into_iter()
        .map(|r| r.expect_err("every caller gets the error"))
        .collect();
    assert_eq!(*errors[0], Boom("worker crashed"));
    assert!(
        errors.iter().all(|e| Arc::ptr_eq(e, &errors[0])),
        "one shared error"
    );
    assert_eq!(cache.stats().load_errors, 1);

    let next = get(
        &cache,
        &key("m", r#"{"q":1}"#),
        &policy(Tiers::Both),
        &runs,
        "recovered",
    )
    .await;
    assert_eq!(
        (next.source, &next.value[..], runs.count()),
        (Source::Loader, &b"recovered"[..], 2)
    );
}

#[tokio::test(start_paused = true)]
async fn waiters_on_a_disk_hit_all_get_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = cache_on(dir.path());
    let runs = Runs::default();
    get(
        &writer,
        &key("m", r#"{"q":1}"#),
        &policy(Tiers::L2Only),
        &runs,
        "on disk",
    )
    .await;
    writer.close().await;

    let reader = cache_on(dir.path());
    let (runs, results) = hundred_callers_on_disk(&reader).await;
    assert_eq!(runs.count(), 0, "the disk answered");
    for result in results {
        let fetched = result.expect("value");
        assert_eq!(&fetched.value[..], b"on disk");
        // A caller that first runs after the read finished finds the promoted copy.
        assert!(
            matches!(fetched.source, Source::L2 | Source::L1),
            "{fetched:?}"
        );
    }
    let stats = reader.stats();
    assert_eq!(stats.l2_hits + stats.l1_hits, CALLERS as u64, "{stats:?}");
    assert_eq!(
        stats.coalesced,
        stats.l2_hits - 1,
        "one disk read: {stats:?}"
    );
    assert_eq!(stats.loads, 0);
}

async fn hundred_callers_on_disk(
    cache: &Cache,
) -> (Runs, Vec<Result<pybridge_cache::Fetched, Arc<Boom>>>) {
    let runs = Runs::default();
    let mut set = JoinSet::new();
    for _ in 0..CALLERS {
        let (cache, runs) = (cache.clone(), runs.clone());
        set.spawn(async move {
            cache
                .get_or_load(
                    &key("m", r#"{"q":1}"#),
                    &policy(Tiers::Both),
                    || async move {
                        runs.hit();
                        Ok::<_, Boom>(Bytes::from_static(b"loaded"))
                    },
                )
                .await
        });
    }
    let results = set.join_all().await;
    (runs, results)
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_leader_hands_the_load_to_a_waiter() {
    let cache = memory_cache();
    let k = key("m", "[]");
    let started = Arc::new(Notify::new());
    let leader = {
        let (cache, k, started) = (cache.clone(), k.clone(), Arc::clone(&started));
        tokio::spawn(async move {
            cache
                .get_or_load(&k, &policy(Tiers::Both), || async move {
                    started.notify_one();
                    std::future::pending::<Result<Bytes, Boom>>().await
                })
                .await
        })
    };
    started.notified().await;
    let runs = Runs::default();
    let waiter = {
        let (cache, k, runs) = (cache.clone(), k.clone(), runs.clone());
        tokio::spawn(async move { get(&cache, &k, &policy(Tiers::Both), &runs, "second").await })
    };
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(runs.count(), 0, "the waiter waits for the leader");
    leader.abort();
    let fetched = waiter.await.expect("waiter finishes");
    assert_eq!(
        (fetched.source, &fetched.value[..], runs.count()),
        (Source::Loader, &b"second"[..], 1)
    );
}
