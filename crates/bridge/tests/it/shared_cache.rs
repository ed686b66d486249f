//! Two bridges on one Redis (`cache.redis_url`): a result computed by one is
//! served by the other, and `Bridge::invalidate` reaches both; the setting
//! comes from the environment too.

use std::time::Duration;

use pybridge::cache::SharedTierStatus;
use pybridge::config::LoadOptions;
use pybridge::{Bridge, CallOptions, Config, Invalidate, ResultSource};

use crate::redis_server::RedisServer;
use crate::support::{bridge, fixtures, python, raw, sdk_config};

fn counting(redis: &RedisServer) -> Config {
    let worker = fixtures().join("worker");
    let mut config = sdk_config();
    config.worker.command = vec![
        python(),
        worker.join("counting_worker.py").display().to_string(),
        "A".into(),
    ];
    config.service.catalog_files = vec![worker.join("counting_catalog.json")];
    config.cache.namespace = "bridge-it".into();
    config.cache.redis_url = Some(redis.url());
    // The longest allowed: a read that times out on a loaded test machine
    // leaves its load without the epochs to write under, so the write the
    // test waits for is dropped (250 ms was once not enough, in a full run
    // of the suite on a fresh clone).
    config.cache.redis_read_timeout = Duration::from_secs(1);
    config
}

async fn active(bridge: &Bridge) {
    let started = std::time::Instant::now();
    while bridge.health().cache_shared_tier != SharedTierStatus::Active {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "tier never active"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn source(bridge: &Bridge, x: i64) -> ResultSource {
    let params = raw(&format!(r#"{{"x":{x}}}"#));
    bridge
        .call_with("count.get", Some(&params), &CallOptions::default())
        .await
        .unwrap()
        .source
}

/// Waits (bounded) until `bridge` answers `x` from anywhere but the cache
/// tiers that held it: its worker ran again.
async fn recomputed(bridge: &Bridge, x: i64) {
    let started = std::time::Instant::now();
    while source(bridge, x).await != ResultSource::Worker {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never invalidated"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Loads `x` through `bridge`'s worker until its result is written to
/// Redis. A miss whose read of Redis failed (a timeout on a loaded test
/// machine) or was skipped (the tier was off after failures) loads without
/// the epochs to write under, and so by design writes nothing: then the
/// local copy is dropped and the call made again. A write missing without
/// such a failure fails the test.
async fn stored(bridge: &Bridge, x: i64) {
    let started = std::time::Instant::now();
    loop {
        let before = bridge.health().cache_shared_stats;
        let failures = before.errors + before.skipped;
        assert_eq!(source(bridge, x).await, ResultSource::Worker);
        let waiting = std::time::Instant::now();
        loop {
            let stats = bridge.health().cache_shared_stats;
            if stats.writes > before.writes {
                return;
            }
            if stats.errors + stats.skipped > failures {
                break;
            }
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "no write landed for x={x}: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "x={x} was never written: {:?}",
            bridge.health().cache_shared_stats
        );
        let params = raw(&format!(r#"{{"x":{x}}}"#));
        bridge
            .invalidate(Invalidate::Call {
                method: "count.get",
                params: Some(&params),
            })
            .await
            .unwrap();
        active(bridge).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_of_one_bridge_is_served_by_another_and_invalidate_reaches_both() {
    let redis = RedisServer::start();
    let (a, b) = tokio::join!(bridge(counting(&redis)), bridge(counting(&redis)));
    active(&a).await;
    active(&b).await;

    for x in [1, 2, 3] {
        stored(&a, x).await;
    }
    for x in [1, 2, 3] {
        assert_eq!(source(&b, x).await, ResultSource::CacheShared);
        assert_eq!(source(&b, x).await, ResultSource::CacheMemory);
    }
    assert_eq!(b.stats().cache_shared_hits, 3);

    let one = raw(r#"{"x":1}"#);
    a.invalidate(Invalidate::Call {
        method: "count.get",
        params: Some(&one),
    })
    .await
    .unwrap();
    recomputed(&b, 1).await;
    assert_eq!(
        source(&b, 2).await,
        ResultSource::CacheMemory,
        "only x=1 was dropped"
    );

    a.invalidate(Invalidate::Method("count.get")).await.unwrap();
    recomputed(&b, 2).await;
    b.invalidate(Invalidate::All).await.unwrap();
    recomputed(&a, 3).await;

    let bad = raw(r#"{"x":"not a number"}"#);
    let rejected = a
        .invalidate(Invalidate::Call {
            method: "count.get",
            params: Some(&bad),
        })
        .await;
    assert!(rejected.is_err(), "params a call would be rejected for");
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn the_redis_url_comes_from_the_environment_and_a_bad_read_timeout_is_refused() {
    let config = Config::load(
        &LoadOptions::new().env_vars([("PYBRIDGE_CACHE__REDIS_URL", "redis://127.0.0.1:6390/2")]),
    )
    .unwrap()
    .config;
    assert_eq!(
        config.cache.redis_url.as_deref(),
        Some("redis://127.0.0.1:6390/2")
    );
    let refused =
        Config::load(&LoadOptions::new().env_vars([("PYBRIDGE_CACHE__REDIS_READ_TIMEOUT", "5s")]));
    let error = refused.unwrap_err();
    assert_eq!(error.key.as_deref(), Some("cache.redis_read_timeout"));
}
