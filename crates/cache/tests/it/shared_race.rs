//! Loads that race invalidations from another cache on the same Redis: a
//! value loaded before an invalidation is never left behind, in Redis or in
//! memory, whichever of the invalidation's kinds it was and whichever way the
//! race goes.

use std::time::Duration;

use bytes::Bytes;
use pybridge_cache::{Cache, CacheKey, Load, Source};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::redis_proxy::RedisProxy;
use crate::redis_server::RedisServer;
use crate::shared_tier::{build, entry_keys, policy, ready, redis, tier};
use crate::support::{Boom, Runs, far, get, key};

/// What the other cache invalidates.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Key,
    Method,
    /// Several methods at once, as a write drops its family's reads.
    Methods,
    All,
}

const KINDS: [Kind; 4] = [Kind::Key, Kind::Method, Kind::Methods, Kind::All];

async fn invalidate(cache: &Cache, kind: Kind, k: &CacheKey) {
    match kind {
        Kind::Key => cache.invalidate(k).await,
        Kind::Method => cache.invalidate_method(k.method()).await,
        Kind::Methods => cache.invalidate_methods(["other", k.method()]).await,
        Kind::All => cache.invalidate_all().await,
    }
}

/// Waits (bounded) until `done` holds for `cache`'s shared-tier counters.
async fn until(cache: &Cache, what: &str, done: impl Fn(pybridge_cache::SharedTierStats) -> bool) {
    let started = Instant::now();
    while !done(cache.shared_tier_stats()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} never happened: {:?}",
            cache.shared_tier_stats()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// b loads a value, and its write to Redis is held in flight while a
/// invalidates and publishes; then the write arrives. Redis must refuse it.
async fn check_late_write(kind: Kind) {
    let server = RedisServer::start();
    let proxy = RedisProxy::start(server.port()).await;
    let a = build(tier(&server.url()), None);
    let b = build(tier(&proxy.url()), None);
    ready(&a).await;
    ready(&b).await;
    let k = key("m", r#"{"q":1}"#);

    // b misses in every tier and loads; from the moment its loader has the
    // value, whatever b sends Redis waits in the proxy: its write included.
    let loaded = b
        .get_or_load(&k, &policy(), far(), || async {
            proxy.hold();
            Ok::<_, Boom>(Load::Value(Bytes::from_static(b"old")))
        })
        .await
        .expect("the loader does not fail");
    assert_eq!(loaded.source, Source::Loader);
    proxy.wait_held().await;

    // The write that made "old" stale, and its invalidation, happen now.
    invalidate(&a, kind, &k).await;
    until(&a, "a's invalidation", |s| s.published == 1).await;
    proxy.release();
    until(&b, "b's write", |s| s.writes + s.writes_dropped >= 1).await;

    let stats = b.shared_tier_stats();
    assert_eq!(
        (stats.writes, stats.writes_dropped),
        (0, 1),
        "{kind:?}: Redis took a value loaded before the invalidation"
    );
    let mut conn = redis(&server).await;
    assert_eq!(
        entry_keys(&mut conn).await,
        Vec::<String>::new(),
        "{kind:?}"
    );
    // A cache that never saw the value loads it again.
    let c = build(tier(&server.url()), None);
    ready(&c).await;
    let fresh = get(&c, &k, &policy(), &Runs::default(), "new").await;
    assert_eq!(
        (fresh.source, &fresh.value[..]),
        (Source::Loader, &b"new"[..]),
        "{kind:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_a_value_loaded_before_another_caches_invalidation_is_refused_by_redis() {
    for kind in KINDS {
        check_late_write(kind).await;
    }
}

/// b's loader is still running when a's invalidation reaches b: b's caller
/// gets the value (it asked before the write), but no tier keeps it.
async fn check_slow_load(kind: Kind) {
    let server = RedisServer::start();
    let a = build(tier(&server.url()), None);
    let b = build(tier(&server.url()), None);
    ready(&a).await;
    ready(&b).await;
    let k = key("m", r#"{"q":2}"#);

    let (started_tx, started) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
    let load = tokio::spawn({
        let (b, k) = (b.clone(), k.clone());
        async move {
            b.get_or_load(&k, &policy(), far(), || async move {
                let _ = started_tx.send(());
                let _ = released.await;
                Ok::<_, Boom>(Load::Value(Bytes::from_static(b"old")))
            })
            .await
        }
    });
    started.await.expect("the load started");
    invalidate(&a, kind, &k).await;
    until(&b, "the invalidation's arrival", |s| s.received == 1).await;
    release.send(()).expect("the load waits");
    let old = load.await.expect("no panic").expect("no error");
    assert_eq!((old.source, &old.value[..]), (Source::Loader, &b"old"[..]));

    assert_eq!(b.stats().invalidated_during_load, 1, "{kind:?}");
    let stats = b.shared_tier_stats();
    assert_eq!(
        (stats.writes, stats.writes_dropped),
        (0, 0),
        "{kind:?}: nothing was queued"
    );
    let mut conn = redis(&server).await;
    assert_eq!(
        entry_keys(&mut conn).await,
        Vec::<String>::new(),
        "{kind:?}"
    );
    let runs = Runs::default();
    let again = get(&b, &k, &policy(), &runs, "new").await;
    assert_eq!(
        (again.source, &again.value[..], runs.count()),
        (Source::Loader, &b"new"[..], 1),
        "{kind:?}: b's memory kept the old value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_still_running_when_another_caches_invalidation_arrives_is_kept_nowhere() {
    for kind in KINDS {
        check_slow_load(kind).await;
    }
}
