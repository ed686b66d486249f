//! Per-method policy, the builder's validation, and the handle's properties.

use std::fmt::Debug;
use std::num::NonZeroU64;
use std::time::Duration;

use bytes::Bytes;
use pybridge_cache::{
    Cache, CacheBuilder, CacheEvent, CacheKey, CachePolicy, CacheStats, Error, Fetched, L2Status,
    Load, Source, Tiers,
};

use crate::support::{Boom, Runs, cache_on, far, get, key, memory_cache, policy};

#[test]
fn handles_are_cheap_clone_send_sync_and_debug() {
    fn check<T: Clone + Send + Sync + Debug + 'static>() {}
    check::<Cache>();
    check::<CacheKey>();
    check::<CachePolicy>();
    check::<Fetched>();
    check::<CacheEvent>();
    check::<CacheStats>();
    check::<L2Status>();
    fn errors<T: Send + Sync + Debug + std::error::Error + 'static>() {}
    errors::<Error>();
    let cache = memory_cache();
    assert!(format!("{cache:?}").contains("namespace: \"test\""));
}

#[tokio::test]
async fn a_disabled_policy_always_loads_and_stores_nothing() {
    let cache = memory_cache();
    let (k, runs) = (key("m", "1"), Runs::default());
    for _ in 0..3 {
        assert_eq!(
            get(&cache, &k, &CachePolicy::disabled(), &runs, "v")
                .await
                .source,
            Source::Loader
        );
    }
    assert_eq!(runs.count(), 3);
    assert_eq!(
        get(&cache, &k, &policy(Tiers::Both), &runs, "v")
            .await
            .source,
        Source::Loader,
        "nothing was stored"
    );
    assert_eq!(cache.stats().bypassed, 3);
}

#[tokio::test]
async fn values_above_the_size_limit_are_returned_but_not_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let mut small = policy(Tiers::Both);
    small.max_entry_bytes = 4;
    let runs = Runs::default();
    let big = get(&cache, &key("m", "1"), &small, &runs, "12345").await;
    assert_eq!(&big.value[..], b"12345");
    assert_eq!(
        get(&cache, &key("m", "1"), &small, &runs, "12345")
            .await
            .source,
        Source::Loader
    );
    assert_eq!(
        get(&cache, &key("m", "2"), &small, &runs, "1234")
            .await
            .source,
        Source::Loader
    );
    assert_eq!(
        get(&cache, &key("m", "2"), &small, &runs, "1234")
            .await
            .source,
        Source::L1
    );
    cache.flush().await;
    assert_eq!(cache.stats().oversized, 2);
    assert_eq!(cache.stats().l2_writes, 1);
}

#[tokio::test]
async fn tiers_decide_where_values_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let runs = Runs::default();
    let (mem, disk) = (key("m", "\"memory\""), key("m", "\"disk\""));
    get(&cache, &mem, &policy(Tiers::L1Only), &runs, "m").await;
    get(&cache, &disk, &policy(Tiers::L2Only), &runs, "d").await;
    cache.flush().await;
    assert_eq!(
        get(&cache, &mem, &policy(Tiers::L1Only), &runs, "x")
            .await
            .source,
        Source::L1
    );
    assert_eq!(
        get(&cache, &disk, &policy(Tiers::L2Only), &runs, "x")
            .await
            .source,
        Source::L2,
        "not kept in memory"
    );
    assert_eq!(
        get(&cache, &disk, &policy(Tiers::L2Only), &runs, "x")
            .await
            .source,
        Source::L2
    );

    let fresh = cache_on(dir.path());
    assert_eq!(
        get(&fresh, &mem, &policy(Tiers::Both), &runs, "x")
            .await
            .source,
        Source::Loader,
        "never on disk"
    );
    assert_eq!(runs.count(), 3);
}

#[tokio::test]
async fn negative_results_are_stored_only_with_a_negative_ttl() {
    let cache = memory_cache();
    let negative =
        || async { Ok::<_, Boom>(Load::Negative(Bytes::from_static(b"no such pattern"))) };
    let k = key("m", "1");

    let plain = policy(Tiers::Both);
    assert!(
        cache
            .get_or_load(&k, &plain, far(), negative)
            .await
            .expect("ok")
            .negative
    );
    let runs = Runs::default();
    assert_eq!(
        get(&cache, &k, &plain, &runs, "v").await.source,
        Source::Loader,
        "not stored"
    );

    let k = key("m", "2");
    let mut remembering = policy(Tiers::Both);
    remembering.negative_ttl = Some(Duration::from_secs(5));
    assert!(
        cache
            .get_or_load(&k, &remembering, far(), negative)
            .await
            .expect("ok")
            .negative
    );
    let hit = get(&cache, &k, &remembering, &runs, "v").await;
    assert_eq!(
        (hit.source, hit.negative, &hit.value[..]),
        (Source::L1, true, &b"no such pattern"[..])
    );
}

#[tokio::test(start_paused = true)]
async fn negative_results_expire_after_the_negative_ttl() {
    let cache = memory_cache();
    let mut remembering = policy(Tiers::Both);
    remembering.negative_ttl = Some(Duration::from_secs(5));
    let k = key("m", "1");
    cache
        .get_or_load(&k, &remembering, far(), || async {
            Ok::<_, Boom>(Load::Negative(Bytes::new()))
        })
        .await
        .expect("ok");
    tokio::time::advance(Duration::from_secs(6)).await;
    let runs = Runs::default();
    let after = get(&cache, &k, &remembering, &runs, "found now").await;
    assert_eq!((after.source, after.negative), (Source::Loader, false));
}

#[tokio::test]
async fn stats_count_each_tier_and_their_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let runs = Runs::default();
    let k = key("m", "1");
    get(&cache, &k, &policy(Tiers::Both), &runs, "0123456789").await;
    get(&cache, &k, &policy(Tiers::Both), &runs, "x").await;
    cache.flush().await;
    get(&cache, &k, &policy(Tiers::L2Only), &runs, "x").await;
    let _ = cache
        .get_or_load(&key("m", "2"), &policy(Tiers::Both), far(), || async {
            Err::<Bytes, _>(Boom("failed"))
        })
        .await;
    cache.flush().await;
    cache.run_pending_tasks().await;
    let stats = cache.stats();
    assert_eq!(
        (
            stats.l1_hits,
            stats.l2_hits,
            stats.misses,
            stats.loads,
            stats.load_errors
        ),
        (1, 1, 2, 2, 1),
        "{stats:?}"
    );
    assert_eq!(
        (stats.l1_entries, stats.l2_entries, stats.l2_writes),
        (1, 1, 1),
        "{stats:?}"
    );
    assert!(stats.l1_bytes >= 10 && stats.l2_bytes >= 10, "{stats:?}");
}

#[test]
fn policies_validate_their_fields() {
    let mut p = CachePolicy::default();
    assert!(p.validate().is_ok());
    p.l1_ttl = Duration::ZERO;
    assert!(matches!(
        p.validate(),
        Err(Error::InvalidConfig {
            field: "l1_ttl",
            ..
        })
    ));
    p.tiers = Tiers::L2Only;
    assert!(p.validate().is_ok(), "L1 is not used");
    p.negative_ttl = Some(Duration::ZERO);
    assert!(matches!(
        p.validate(),
        Err(Error::InvalidConfig {
            field: "negative_ttl",
            ..
        })
    ));
    let mut off = CachePolicy::disabled();
    off.l2_ttl = Duration::ZERO;
    assert!(off.validate().is_ok(), "a disabled policy stores nothing");
}

#[tokio::test]
async fn the_builder_validates_its_settings() {
    let field = |b: CacheBuilder| match b.memory_only().build() {
        Err(Error::InvalidConfig { field, .. }) => field,
        other => panic!("expected an invalid config, got {other:?}"),
    };
    assert_eq!(field(CacheBuilder::new().namespace("")), "namespace");
    assert_eq!(
        field(CacheBuilder::new().namespace("x".repeat(257))),
        "namespace"
    );
    assert_eq!(
        field(CacheBuilder::new().sweep_interval(Duration::from_millis(10))),
        "sweep_interval"
    );
    assert_eq!(
        field(CacheBuilder::new().l2_max_bytes(NonZeroU64::new(1000).expect("nonzero"))),
        "l2_max_bytes"
    );
    let err = CacheBuilder::new()
        .namespace("")
        .memory_only()
        .build()
        .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "invalid cache configuration: `namespace` must not be empty"
    );
    assert!(!err.is_retryable());
}

#[test]
fn a_disk_tier_needs_a_runtime_and_memory_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        CacheBuilder::new().l2_dir(dir.path()).build(),
        Err(Error::NoRuntime)
    ));
    assert!(CacheBuilder::new().memory_only().build().is_ok());
}

#[tokio::test]
async fn closing_flushes_and_keeps_memory_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = cache_on(dir.path());
    let runs = Runs::default();
    get(&cache, &key("m", "1"), &policy(Tiers::Both), &runs, "v").await;
    cache.close().await;
    assert_eq!(cache.l2_status(), L2Status::Closed);
    assert_eq!(cache.stats().l2_writes, 1, "the queued write was flushed");
    assert_eq!(
        get(&cache, &key("m", "1"), &policy(Tiers::Both), &runs, "v")
            .await
            .source,
        Source::L1
    );
    assert_eq!(
        get(&cache, &key("m", "2"), &policy(Tiers::Both), &runs, "v")
            .await
            .source,
        Source::Loader
    );
    cache.close().await;
}

#[test]
fn get_or_load_futures_are_send_when_their_loader_is() {
    // The bridge spawns calls onto a multi-threaded runtime.
    fn assert_send<T: Send>(_: &T) {}
    let cache = memory_cache();
    let (k, p) = (key("m", "1"), policy(Tiers::Both));
    let call = cache.get_or_load(&k, &p, far(), || async { Ok::<_, Boom>(Bytes::new()) });
    assert_send(&call);
    assert_send(&cache.invalidate(&k));
    assert_send(&cache.invalidate_method("m"));
    assert_send(&cache.flush());
}
