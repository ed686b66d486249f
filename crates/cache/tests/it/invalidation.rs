//! Invalidation by key, by method and of everything reaches both tiers, and a
//! load that runs across an invalidation is not stored.

use std::sync::Arc;

use bytes::Bytes;
use pybridge_cache::{Cache, CacheKey, Load, Source, Tiers};
use tokio::sync::Notify;

use crate::support::{Boom, Runs, cache_on, far, get, key, policy};

/// Which of `keys` a fresh cache on `dir` (empty memory) finds on disk.
async fn on_disk(dir: &std::path::Path, keys: &[&CacheKey]) -> Vec<bool> {
    let fresh = cache_on(dir);
    let mut found = Vec::new();
    for k in keys {
        // A negative result without a negative TTL is never stored, so the
        // probe leaves the directory as it found it.
        let fetched = fresh
            .get_or_load(k, &policy(Tiers::L2Only), far(), || async {
                Ok::<_, Boom>(Load::Negative(Bytes::from_static(b"absent")))
            })
            .await
            .expect("no error");
        found.push(fetched.source == Source::L2);
    }
    fresh.close().await;
    found
}

async fn fill(cache: &Cache, keys: &[&CacheKey]) {
    for k in keys {
        get(cache, k, &policy(Tiers::Both), &Runs::default(), "original").await;
    }
    cache.flush().await;
}

/// Whether `cache` answers `k` without its loader, from any tier.
async fn cached(cache: &Cache, k: &CacheKey) -> bool {
    let runs = Runs::default();
    get(cache, k, &policy(Tiers::Both), &runs, "reloaded").await;
    runs.count() == 0
}

#[tokio::test]
async fn invalidating_a_key_removes_it_from_both_tiers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let (a, b) = (key("m", "1"), key("m", "2"));
    fill(&cache, &[&a, &b]).await;
    assert_eq!(on_disk(dir.path(), &[&a, &b]).await, [true, true]);

    cache.invalidate(&a).await;
    assert_eq!(on_disk(dir.path(), &[&a, &b]).await, [false, true]);
    assert!(!cached(&cache, &a).await, "gone from memory too");
    assert!(cached(&cache, &b).await);
}

#[tokio::test]
async fn invalidating_a_method_removes_its_entries_from_both_tiers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let (a1, a2, b1) = (
        key("alpha", "1"),
        CacheKey::new("other-ns", "alpha", "2").expect("valid"),
        key("beta", "1"),
    );
    fill(&cache, &[&a1, &a2, &b1]).await;

    cache.invalidate_method("alpha").await;
    assert_eq!(
        on_disk(dir.path(), &[&a1, &a2, &b1]).await,
        [false, false, true]
    );
    assert!(!cached(&cache, &a1).await);
    assert!(!cached(&cache, &a2).await, "every namespace");
    assert!(cached(&cache, &b1).await);
}

#[tokio::test]
async fn invalidating_everything_empties_both_tiers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let keys = [key("a", "1"), key("b", "2"), key("c", "3")];
    let refs: Vec<&CacheKey> = keys.iter().collect();
    fill(&cache, &refs).await;

    cache.invalidate_all().await;
    assert_eq!(on_disk(dir.path(), &refs).await, [false, false, false]);
    for k in &keys {
        assert!(!cached(&cache, k).await);
    }
}

#[tokio::test(start_paused = true)]
async fn a_load_running_across_an_invalidation_is_returned_but_not_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let k = key("m", "1");
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let load = {
        let (cache, k, started, release) = (
            cache.clone(),
            k.clone(),
            Arc::clone(&started),
            Arc::clone(&release),
        );
        tokio::spawn(async move {
            cache
                .get_or_load(&k, &policy(Tiers::Both), far(), || async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, Boom>(Bytes::from_static(b"read before the write"))
                })
                .await
        })
    };
    started.notified().await;
    cache.invalidate(&k).await;
    release.notify_one();
    let fetched = load.await.expect("task").expect("value");
    assert_eq!(
        (fetched.source, &fetched.value[..]),
        (Source::Loader, &b"read before the write"[..])
    );
    cache.flush().await;

    assert!(!cached(&cache, &k).await, "the stale value was not stored");
    assert_eq!(cache.stats().invalidated_during_load, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_while_an_invalidation_is_applied_never_puts_the_entry_back_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let k = key("m", "1");
    fill(&cache, &[&k]).await;
    // Disk writes queued ahead of the invalidation keep it between its
    // memory part and its disk part for a while: reads then miss memory and
    // find the entry still on disk.
    let big: &'static [u8] = Box::leak(vec![7_u8; 64 * 1024].into_boxed_slice());
    for n in 0..64 {
        cache
            .get_or_load(
                &key("filler", &n.to_string()),
                &policy(Tiers::Both),
                far(),
                || async { Ok::<_, Boom>(Bytes::from_static(big)) },
            )
            .await
            .expect("value");
    }
    let stop = Arc::new(Notify::new());
    let reader = {
        let (cache, k, stop) = (cache.clone(), k.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut from_disk = 0_u32;
            let probe = async {
                loop {
                    let fetched = cache
                        .get_or_load(&k, &policy(Tiers::Both), far(), || async {
                            Ok::<_, Boom>(Load::Negative(Bytes::from_static(b"absent")))
                        })
                        .await
                        .expect("no error");
                    from_disk += u32::from(fetched.source == Source::L2);
                    tokio::task::yield_now().await;
                }
            };
            tokio::select! {
                () = probe => {}
                () = stop.notified() => {}
            }
            from_disk
        })
    };
    cache.invalidate(&k).await;
    stop.notify_one();
    let from_disk = reader.await.expect("the reader does not panic");
    assert!(
        !cached(&cache, &k).await,
        "the entry is back in memory ({from_disk} reads found it on disk meanwhile)"
    );
}
