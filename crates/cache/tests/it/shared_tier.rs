//! The shared tier on a real `redis-server` (loopback only): sharing between
//! two caches, integrity, TTL, size cap, the bounded write queue, invalidation
//! across caches, and a Redis that dies or freezes.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pybridge_cache::{
    Cache, CacheBuilder, CacheEvent, CacheKey, CachePolicy, Load, SharedTierConfig,
    SharedTierEvent, SharedTierStatus, Source, Tiers,
};
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::redis_server::RedisServer;
use crate::support::{Boom, Runs, far, get, key, next_event};

/// Settings for tests that are not about timeouts: reads and writes wait
/// long enough that a loaded machine does not turn the tier off by itself.
/// The fault tests set the timeouts they are about.
pub(crate) fn tier(server_url: &str) -> SharedTierConfig {
    SharedTierConfig::new(server_url)
        .deployment("it")
        .probe_interval(Duration::from_millis(100))
        .max_read_timeout(Duration::from_millis(500))
        .write_timeout(Duration::from_secs(2))
}

pub(crate) fn build(tier: SharedTierConfig, dir: Option<&std::path::Path>) -> Cache {
    let builder = CacheBuilder::new().namespace("test").shared_tier(tier);
    let builder = match dir {
        Some(dir) => builder.l2_dir(dir),
        None => builder.memory_only(),
    };
    builder.build().expect("valid settings")
}

/// Waits (bounded) until the tier reports `status`.
pub(crate) async fn wait_for(cache: &Cache, status: SharedTierStatus) {
    let started = Instant::now();
    while cache.shared_tier_status() != status {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the shared tier stayed {} instead of {status}",
            cache.shared_tier_status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (bounded) until the tier is active and subscribed to invalidations
/// (its first subscription flushes memory once).
pub(crate) async fn ready(cache: &Cache) {
    wait_for(cache, SharedTierStatus::Active).await;
    let started = Instant::now();
    while cache.shared_tier_stats().memory_flushes == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded) until the tier's write counter reaches `n`.
pub(crate) async fn wait_writes(cache: &Cache, n: u64) {
    let started = Instant::now();
    while cache.shared_tier_stats().writes < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "writes never reached {n}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn policy() -> CachePolicy {
    CachePolicy::with_ttl(Duration::from_secs(600))
}

pub(crate) async fn redis(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// The entry keys (not the method indexes or the invalidation epochs) the
/// tier wrote for deployment `it`.
pub(crate) async fn entry_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("pybridge:it:*")
        .query_async(conn)
        .await
        .expect("KEYS");
    keys.into_iter()
        .filter(|k| !k.contains(":idx:") && !k.ends_with(":epochs"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_loaded_by_one_cache_is_a_shared_hit_in_another_and_fills_its_memory() {
    let server = RedisServer::start();
    let (a, b) = (
        build(tier(&server.url()), None),
        build(tier(&server.url()), None),
    );
    ready(&a).await;
    ready(&b).await;
    let k = key("m", r#"{"q":1}"#);
    let runs = Runs::default();

    let first = get(&a, &k, &policy(), &runs, "value").await;
    assert_eq!(first.source, Source::Loader);
    wait_writes(&a, 1).await;

    let second = get(&b, &k, &policy(), &runs, "other").await;
    assert_eq!(
        (second.source, &second.value[..]),
        (Source::Shared, &b"value"[..])
    );
    let third = get(&b, &k, &policy(), &runs, "other").await;
    assert_eq!(third.source, Source::L1, "a shared hit fills memory");
    assert_eq!(runs.count(), 1);
    assert_eq!(b.shared_tier_stats().hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_of_different_producers_never_read_each_others_entries() {
    let server = RedisServer::start();
    // The key namespace carries the producer's identity (the bridge puts the
    // worker's manifest or command in it); the deployment is the same.
    let for_producer = |producer: &str| {
        CacheBuilder::new()
            .namespace(producer)
            .memory_only()
            .shared_tier(tier(&server.url()))
            .build()
            .expect("valid settings")
    };
    let (a, b) = (for_producer("worker-a"), for_producer("worker-b"));
    ready(&a).await;
    ready(&b).await;
    let (ka, kb) = (a.key("m", "1").expect("key"), b.key("m", "1").expect("key"));
    get(&a, &ka, &policy(), &Runs::default(), "from a").await;
    wait_writes(&a, 1).await;
    let runs = Runs::default();
    let fetched = get(&b, &kb, &policy(), &runs, "from b").await;
    assert_eq!(
        (fetched.source, &fetched.value[..]),
        (Source::Loader, &b"from b"[..])
    );
    assert_eq!(runs.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_carry_the_policy_ttl_and_entries_over_the_cap_are_not_written() {
    let server = RedisServer::start();
    let cache = build(tier(&server.url()), None);
    ready(&cache).await;
    let mut conn = redis(&server).await;

    let mut short = CachePolicy::with_ttl(Duration::from_secs(7));
    short.tiers = Tiers::L1Only;
    get(&cache, &key("ttl", "1"), &short, &Runs::default(), "v").await;
    wait_writes(&cache, 1).await;
    let keys = entry_keys(&mut conn).await;
    assert_eq!(keys.len(), 1);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!(
        (6_000..=7_000).contains(&pttl),
        "PTTL {pttl} is the policy's 7 s"
    );

    let mut capped = policy();
    capped.max_entry_bytes = 4;
    let big = get(
        &cache,
        &key("big", "1"),
        &capped,
        &Runs::default(),
        "too long",
    )
    .await;
    assert_eq!(
        &big.value[..],
        b"too long",
        "an oversized value is still returned"
    );
    // A later write proves the queue has moved past where the big one would be.
    get(&cache, &key("after", "1"), &policy(), &Runs::default(), "v").await;
    wait_writes(&cache, 2).await;
    assert_eq!(
        entry_keys(&mut conn).await.len(),
        2,
        "the oversized entry was not written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_entry_is_a_miss_is_never_served_and_is_deleted() {
    let server = RedisServer::start();
    let (a, b) = (
        build(tier(&server.url()), None),
        build(tier(&server.url()), None),
    );
    ready(&a).await;
    ready(&b).await;
    let mut events = b.subscribe();
    let k = key("m", "1");
    get(&a, &k, &policy(), &Runs::default(), "genuine").await;
    wait_writes(&a, 1).await;
    let mut conn = redis(&server).await;
    let name = entry_keys(&mut conn).await.pop().expect("one entry");
    // Flip the last byte of the value: the header still names the key.
    let len: usize = redis::cmd("STRLEN")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .expect("STRLEN");
    let _: usize = redis::cmd("SETRANGE")
        .arg(&name)
        .arg(len - 1)
        .arg("X")
        .query_async(&mut conn)
        .await
        .expect("SETRANGE");

    let runs = Runs::default();
    let fetched = get(&b, &k, &policy(), &runs, "reloaded").await;
    assert_eq!(
        (fetched.source, &fetched.value[..]),
        (Source::Loader, &b"reloaded"[..])
    );
    assert_eq!(b.shared_tier_stats().corrupt, 1);
    let removed = next_event(&mut events, |e| match e {
        CacheEvent::SharedTier(SharedTierEvent::CorruptEntryRemoved { key }) => Some(*key),
        _ => None,
    })
    .await;
    assert_eq!(&removed, k.digest());
    // The corrupt entry was deleted; then b's own write put the good value back.
    wait_writes(&b, 1).await;
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert!(value.ends_with(b"reloaded"), "the corrupt value is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_drops_writes_and_counts_them() {
    let server = RedisServer::start();
    let cache = build(
        tier(&server.url())
            .write_queue_capacity(NonZeroUsize::new(1).expect("nonzero"))
            .failure_threshold(NonZeroU32::new(1000).expect("nonzero"))
            .write_timeout(Duration::from_secs(3))
            .max_read_timeout(Duration::from_millis(20)),
        None,
    );
    // Subscribed: its first flush cannot cancel one of the stores below.
    ready(&cache).await;
    // Ten loads read Redis (a write needs the epochs its read saw), then
    // Redis freezes before any of them stores: their writes pile up.
    let server = Arc::new(server);
    let (read, frozen) = (Arc::new(Barrier::new(10)), Arc::new(Barrier::new(10)));
    let mut loads = tokio::task::JoinSet::new();
    for n in 0..10 {
        let (cache, server) = (cache.clone(), Arc::clone(&server));
        let (read, frozen) = (Arc::clone(&read), Arc::clone(&frozen));
        loads.spawn(async move {
            cache
                .get_or_load(&key("m", &n.to_string()), &policy(), far(), || async move {
                    if read.wait().await.is_leader() {
                        server.freeze();
                    }
                    frozen.wait().await;
                    Ok::<_, Boom>(Load::Value(Bytes::from_static(b"v")))
                })
                .await
                .expect("the loader does not fail")
        });
    }
    while let Some(load) = loads.join_next().await {
        assert_eq!(load.expect("no panic").source, Source::Loader);
    }
    let stats = cache.shared_tier_stats();
    // One write is with the (frozen) server, one waits in the queue.
    assert!(stats.writes_dropped >= 8, "{stats:?}");
    server.thaw();
    wait_writes(&cache, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_reaches_the_other_cache_memory_and_disk_and_redis() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let a = build(tier(&server.url()), None);
    let b = build(tier(&server.url()), Some(dir.path()));
    ready(&a).await;
    ready(&b).await;
    let (k1, k2, other) = (key("m", "1"), key("m", "2"), key("n", "1"));
    for k in [&k1, &k2, &other] {
        get(&b, k, &policy(), &Runs::default(), "old").await;
    }
    b.flush().await;
    wait_writes(&b, 3).await;

    async fn cached(cache: &Cache, k: &CacheKey) -> bool {
        let runs = Runs::default();
        get(cache, k, &policy(), &runs, "new").await;
        runs.count() == 0
    }
    async fn until_gone(cache: &Cache, k: &CacheKey) -> Duration {
        let started = Instant::now();
        loop {
            let probe = cache
                .get_or_load(k, &policy(), far(), || async {
                    Ok::<_, Boom>(Load::Negative(Bytes::from_static(b"probe")))
                })
                .await
                .expect("no error");
            if probe.source == Source::Loader {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never invalidated: {:?} from {:?}, {:?}",
                k.digest(),
                probe.source,
                cache.shared_tier_stats()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    a.invalidate(&k1).await;
    let took = until_gone(&b, &k1).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(cached(&b, &k2).await && cached(&b, &other).await);

    a.invalidate_method("m").await;
    until_gone(&b, &k2).await;
    assert!(cached(&b, &other).await, "another method keeps its entries");

    a.invalidate_all().await;
    until_gone(&b, &other).await;
    let mut conn = redis(&server).await;
    // b's probes stored nothing (negative results without a negative TTL).
    assert_eq!(entry_keys(&mut conn).await, Vec::<String>::new());
    assert_eq!(
        a.shared_tier_stats().received,
        0,
        "a ignores its own messages"
    );
    assert_eq!(b.shared_tier_stats().received, 3);
    assert_eq!(a.shared_tier_stats().published, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_made_while_redis_is_unreachable_is_sent_when_it_comes_back() {
    let server = RedisServer::start();
    let fast = |t: SharedTierConfig| t.write_timeout(Duration::from_millis(200));
    let (a, b) = (
        build(fast(tier(&server.url())), None),
        build(fast(tier(&server.url())), None),
    );
    ready(&a).await;
    ready(&b).await;
    let k = key("m", "1");
    get(&a, &k, &policy(), &Runs::default(), "old").await;
    wait_writes(&a, 1).await;
    assert_eq!(
        get(&b, &k, &policy(), &Runs::default(), "x").await.source,
        Source::Shared
    );

    server.freeze();
    a.invalidate(&k).await;
    wait_for(&a, SharedTierStatus::Off).await;
    // b did nothing meanwhile: its tier and subscription never noticed.
    assert_eq!(b.shared_tier_status(), SharedTierStatus::Active);
    server.thaw();
    ready(&a).await;

    // b's memory copy goes only if a's kept invalidation reached it.
    let started = Instant::now();
    loop {
        let runs = Runs::default();
        get(&b, &k, &policy(), &runs, "new").await;
        if runs.count() == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the kept invalidation never arrived: a {:?} b {:?}",
            a.shared_tier_stats(),
            b.shared_tier_stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.shared_tier_stats().published, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_turns_the_tier_off_without_failing_calls_and_it_comes_back() {
    let mut server = RedisServer::start();
    let port = server.port();
    let cache = build(tier(&server.url()), None);
    ready(&cache).await;
    let mut events = cache.subscribe();
    server.kill();

    for n in 0..20 {
        let fetched = get(
            &cache,
            &key("m", &n.to_string()),
            &policy(),
            &Runs::default(),
            "v",
        )
        .await;
        assert_eq!(&fetched.value[..], b"v");
    }
    wait_for(&cache, SharedTierStatus::Off).await;
    // The first subscriber also sees the start-up change to active.
    let (from, reason) = next_event(&mut events, |e| match e {
        CacheEvent::SharedTier(SharedTierEvent::StateChanged { from, to, reason })
            if *to == SharedTierStatus::Off =>
        {
            Some((*from, reason.clone()))
        }
        _ => None,
    })
    .await;
    assert_eq!(from, SharedTierStatus::Active);
    assert!(!reason.is_empty());
    let flushes = cache.shared_tier_stats().memory_flushes;

    let _server = RedisServer::start_on(port);
    ready(&cache).await;
    // Memory is flushed twice: when the tier comes back, and when the
    // subscription is back. Wait for both, or the second could cancel the
    // store of the load below (it would not be written).
    let started = Instant::now();
    while cache.shared_tier_stats().memory_flushes < flushes + 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "memory is flushed when the tier and its subscription come back: {:?}",
            cache.shared_tier_stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = cache.shared_tier_stats();
    assert!(stats.errors >= 3, "{stats:?}");
    get(&cache, &key("m", "1000"), &policy(), &Runs::default(), "v").await;
    wait_writes(&cache, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_a_call_at_most_the_read_timeout() {
    let server = RedisServer::start();
    let read_timeout = Duration::from_millis(30);
    let cache = build(tier(&server.url()).max_read_timeout(read_timeout), None);
    ready(&cache).await;
    server.freeze();
    let mut slowest = Duration::ZERO;
    for n in 0..20 {
        let started = Instant::now();
        get(
            &cache,
            &key("m", &n.to_string()),
            &policy(),
            &Runs::default(),
            "v",
        )
        .await;
        slowest = slowest.max(started.elapsed());
    }
    // Generous bound for a loaded machine: the timeout plus scheduling.
    assert!(slowest < read_timeout * 10, "slowest call {slowest:?}");
    assert_eq!(cache.shared_tier_status(), SharedTierStatus::Off);
    server.thaw();
    ready(&cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waits_no_longer_than_the_callers_remaining_time() {
    let server = RedisServer::start();
    // A configured maximum far above the caller's time left.
    let cache = build(
        tier(&server.url()).max_read_timeout(Duration::from_millis(900)),
        None,
    );
    ready(&cache).await;
    server.freeze();
    let started = Instant::now();
    let fetched = cache
        .get_or_load(
            &key("m", "1"),
            &policy(),
            started + Duration::from_millis(60),
            || async { Ok::<_, Boom>(Load::Value(Bytes::from_static(b"v"))) },
        )
        .await;
    let took = started.elapsed();
    server.thaw();
    // The read gave up at the deadline; the loader, started after it, is cut
    // off too: either way the call ends near 60 ms, far from 900.
    assert!(took < Duration::from_millis(600), "took {took:?}");
    assert!(fetched.is_err() || fetched.is_ok_and(|f| f.source == Source::Loader));
    assert_eq!(cache.shared_tier_stats().errors, 1);
}

#[tokio::test]
async fn a_bad_url_or_timeout_is_a_configuration_error() {
    let bad = CacheBuilder::new()
        .memory_only()
        .shared_tier(SharedTierConfig::new("http://nope"))
        .build();
    assert!(bad.is_err());
    let slow = CacheBuilder::new()
        .memory_only()
        .shared_tier(
            SharedTierConfig::new("redis://127.0.0.1/0").max_read_timeout(Duration::from_secs(5)),
        )
        .build();
    assert!(slow.is_err());
    let none = CacheBuilder::new().memory_only().build().expect("valid");
    assert_eq!(none.shared_tier_status(), SharedTierStatus::NotConfigured);
}
