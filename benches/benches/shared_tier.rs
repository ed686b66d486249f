//! A shared-tier hit (Redis on loopback) next to a memory hit and a worker
//! round trip, in one run.
//!
//! - `shared-tier/memory-hit`: `Cache::get_or_load` answered from memory.
//! - `shared-tier/shared-hit`: the same call with a policy that skips memory
//!   (and no disk tier), so every call is a `GET` to a `redis-server` this
//!   benchmark starts on a free loopback port, plus the record's check.
//! - `shared-tier/worker`: one uncached `test.echo` through the full bridge to
//!   the SDK's demo worker: what a shared hit saves.
//!
//! 100 B values, one call at a time. `cargo xtask bench` reports the medians
//! as ratios.

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use pybridge::{Bridge, CallOptions};
use pybridge_benches::redis_server::RedisServer;
use pybridge_benches::{payload, sdk_bridge_config};
use pybridge_cache::{
    CacheBuilder, CachePolicy, Load, SharedTierConfig, SharedTierStatus, Source, Tiers,
};

fn shared_tier(c: &mut Criterion) {
    let rt = pybridge_benches::runtime().expect("runtime");
    let redis = RedisServer::start();
    let cache = rt.block_on(async {
        CacheBuilder::new()
            .memory_only()
            .shared_tier(SharedTierConfig::new(redis.url()).deployment("bench"))
            .build()
            .expect("cache")
    });
    rt.block_on(settle("the shared tier to connect", || {
        (cache.shared_tier_status() == SharedTierStatus::Active)
            .then_some(())
            .ok_or_else(|| format!("{:?}", cache.shared_tier_status()))
    }));
    let value = Bytes::from(payload(100).get().to_owned());
    let memory_key = cache.key("bench.memory", "1").expect("key");
    let shared_key = cache.key("bench.shared", "1").expect("key");
    let mut memory_policy = CachePolicy::with_ttl(Duration::from_secs(600));
    memory_policy.tiers = Tiers::L1Only;
    let mut shared_policy = CachePolicy::with_ttl(Duration::from_secs(600));
    shared_policy.tiers = Tiers::L2Only;
    let far = || tokio::time::Instant::now() + Duration::from_secs(30);
    let fill = |key, policy| {
        let value = value.clone();
        let cache = cache.clone();
        async move {
            cache
                .get_or_load(&key, &policy, far(), || async move {
                    Ok::<_, std::io::Error>(Load::Value(value))
                })
                .await
                .expect("fill")
        }
    };
    rt.block_on(fill(memory_key.clone(), memory_policy.clone()));
    rt.block_on(fill(shared_key.clone(), shared_policy.clone()));
    // Both fills are written to Redis (every policy that caches uses the
    // shared tier); wait for both.
    rt.block_on(settle("both fills to be written to Redis", || {
        let stats = cache.shared_tier_stats();
        (stats.writes >= 2)
            .then_some(())
            .ok_or_else(|| format!("{stats:?}"))
    }));
    let hit = rt.block_on(fill(shared_key.clone(), shared_policy.clone()));
    assert_eq!(
        hit.source,
        Source::Shared,
        "the benchmark measures shared hits"
    );

    let bridge: Bridge = rt
        .block_on(Bridge::from_config(sdk_bridge_config(1)))
        .unwrap_or_else(|e| panic!("bridge starts: {}", e.report()));
    let params = payload(100);
    let uncached = CallOptions::new().no_cache();

    let mut group = c.benchmark_group("shared-tier");
    group.measurement_time(Duration::from_secs(3));
    let miss = || async { Err::<Load, _>(std::io::Error::other("the benchmark measures hits")) };
    group.bench_function("memory-hit", |b| {
        b.to_async(&rt)
            .iter(|| cache.get_or_load(&memory_key, &memory_policy, far(), miss))
    });
    group.bench_function("shared-hit", |b| {
        b.to_async(&rt)
            .iter(|| cache.get_or_load(&shared_key, &shared_policy, far(), miss))
    });
    group.bench_function("worker", |b| {
        b.to_async(&rt)
            .iter(|| bridge.call_with("test.echo", Some(&params), &uncached))
    });
    group.finish();
    let stats = cache.shared_tier_stats();
    // A read that misses its 25 ms timeout on a loaded machine is a miss,
    // not a failure; more than a handful would make the figure meaningless.
    assert!(
        stats.errors * 1000 <= stats.hits.max(1),
        "shared reads failed: {stats:?}"
    );
    rt.block_on(bridge.shutdown());
    drop(redis);
}

/// Polls `ready` until it holds; panics after ten seconds with what it last
/// said, so that a set-up that never settles fails the run instead of
/// holding it forever.
async fn settle(what: &str, mut ready: impl FnMut() -> Result<(), String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match ready() {
            Ok(()) => return,
            Err(state) if tokio::time::Instant::now() >= deadline => {
                panic!("waited 10 s for {what}; last seen: {state}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

criterion_group!(benches, shared_tier);
criterion_main!(benches);
