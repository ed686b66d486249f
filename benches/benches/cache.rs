//! Cache benchmarks: a memory (L1) hit, a disk (L2) hit with a cold memory
//! tier, and a miss with a no-op loader, for 100 B and 64 KiB values, each
//! next to its raw baseline measured in the same run: a bare `moka` get and a
//! bare `cacache::read` of the same values.
//!
//! Goals (issue 5): an L1 hit within 1.5x of bare moka and under 1 µs at
//! 100 B; an L2 hit within 1.3x of bare cacache.
//!
//! - L1 hit and bare moka complete on their first poll, so both are driven by
//!   the same minimal poll loop, without a runtime: the difference is the
//!   cache's own work (TTL check, counters, building the answer).
//! - L2 hit and bare cacache both need Tokio (the blocking pool); both run on
//!   the same current-thread runtime. The cache reads with a policy that uses
//!   only the disk tier, so nothing is promoted and every read goes to disk.
//!   The baseline's entries are written with the same content hash (xxh3).
//! - Miss: a fresh key per iteration (built outside the timing); the memory
//!   and disk lookups miss, the loader returns a prebuilt value, the value is
//!   stored in memory and queued for disk. Shown for both tiers and for the
//!   memory tier alone.
//! - Key: building a key from 100 bytes of JSON params (hash of canonical form).
//!
//! Run: `cargo bench -p pybridge-benches --bench cache`.

use std::future::Future;
use std::hint::black_box;
use std::num::{NonZeroU64, NonZeroUsize};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pybridge_cache::{Cache, CacheBuilder, CacheKey, CachePolicy, Source, Tiers};
use tokio::time::Instant;

const SIZES: [(usize, &str); 2] = [(100, "100B"), (64 * 1024, "64KiB")];

#[derive(Debug)]
struct NoError;

/// Polls a future that is ready without waiting (it never registers a wake-up
/// that matters), with no runtime in the way.
fn run_ready<F: Future>(future: F) -> F::Output {
    let mut context = Context::from_waker(Waker::noop());
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn value(size: usize) -> Bytes {
    Bytes::from(vec![b'v'; size])
}

fn params(i: u64) -> String {
    // About 100 bytes, keys deliberately out of order.
    format!(
        r#"{{"query":"find sqlite extension patterns","limit":10,"offset":{i},"filters":{{"lang":"rust","min":0.5}}}}"#
    )
}

fn policy(tiers: Tiers) -> CachePolicy {
    let mut policy = CachePolicy::with_ttl(Duration::from_secs(3600));
    policy.tiers = tiers;
    policy.max_entry_bytes = 1 << 20;
    policy
}

/// A deadline no benchmark reaches, taken once so that reading the clock is
/// not part of what is measured.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(24 * 3600)
}

fn cache_in(dir: &std::path::Path) -> Cache {
    CacheBuilder::new()
        .namespace("bench")
        .l2_dir(dir)
        .l1_max_bytes(NonZeroU64::new(256 << 20).expect("nonzero"))
        .l2_max_bytes(NonZeroU64::new(1 << 30).expect("nonzero"))
        .write_queue_capacity(NonZeroUsize::new(1 << 16).expect("nonzero"))
        .sweep_interval(Duration::from_secs(3600))
        .build()
        .expect("valid settings")
}

fn l1_hit(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = rt.block_on(async { cache_in(dir.path()) });
    let bare: moka::future::Cache<[u8; 32], Bytes> = moka::future::Cache::new(1 << 20);
    let both = policy(Tiers::Both);
    let far = far();
    let mut group = c.benchmark_group("cache/l1_hit");
    for (size, label) in SIZES {
        let key = CacheKey::new("bench", "patterns.find", &params(size as u64)).expect("valid");
        let v = value(size);
        rt.block_on(async {
            let loaded = v.clone();
            cache
                .get_or_load(&key, &both, far, || async move { Ok::<_, NoError>(loaded) })
                .await
                .expect("loaded");
            bare.insert(*key.digest().as_bytes(), v).await;
        });
        let hit = run_ready(cache.get_or_load(&key, &both, far, || async {
            Ok::<_, NoError>(Bytes::new())
        }));
        assert_eq!(hit.expect("hit").source, Source::L1);
        group.bench_function(format!("bare_moka/{label}"), |b| {
            b.iter(|| run_ready(bare.get(black_box(key.digest().as_bytes()))).expect("present"))
        });
        group.bench_function(format!("cache/{label}"), |b| {
            b.iter(|| {
                run_ready(cache.get_or_load(black_box(&key), &both, far, || async {
                    Ok::<_, NoError>(Bytes::new())
                }))
                .expect("hit")
            })
        });
        group.bench_function(format!("key_and_cache/{label}"), |b| {
            let text = params(size as u64);
            b.iter(|| {
                let key = CacheKey::new("bench", "patterns.find", black_box(&text)).expect("valid");
                run_ready(cache.get_or_load(&key, &both, far, || async {
                    Ok::<_, NoError>(Bytes::new())
                }))
                .expect("hit")
            })
        });
    }
    group.finish();
    rt.block_on(cache.close());
}

fn l2_hit(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let bare_dir = tempfile::tempdir().expect("tempdir");
    let cache = rt.block_on(async { cache_in(dir.path()) });
    let disk_only = policy(Tiers::L2Only);
    let far = far();
    let mut group = c.benchmark_group("cache/l2_hit");
    for (size, label) in SIZES {
        let key = CacheKey::new("bench", "patterns.find", &params(size as u64)).expect("valid");
        let bare_key = key.digest().to_hex();
        let v = value(size);
        rt.block_on(async {
            let loaded = v.clone();
            cache
                .get_or_load(
                    &key,
                    &disk_only,
                    far,
                    || async move { Ok::<_, NoError>(loaded) },
                )
                .await
                .expect("loaded");
            cache.flush().await;
            cacache::write_with_algo(cacache::Algorithm::Xxh3, bare_dir.path(), &bare_key, &v)
                .await
                .expect("write");
            let hit = cache
                .get_or_load(&key, &disk_only, far, || async {
                    Ok::<_, NoError>(Bytes::new())
                })
                .await;
            assert_eq!(hit.expect("hit").source, Source::L2);
        });
        group.bench_function(format!("bare_cacache/{label}"), |b| {
            b.to_async(&rt).iter(|| async {
                cacache::read(bare_dir.path(), black_box(&bare_key))
                    .await
                    .expect("present")
            })
        });
        group.bench_function(format!("cache/{label}"), |b| {
            b.to_async(&rt).iter(|| async {
                let hit = cache
                    .get_or_load(black_box(&key), &disk_only, far, || async {
                        Ok::<_, NoError>(Bytes::new())
                    })
                    .await
                    .expect("hit");
                debug_assert_eq!(hit.source, Source::L2);
                hit
            })
        });
    }
    group.finish();
    rt.block_on(cache.close());
}

fn miss(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = rt.block_on(async { cache_in(dir.path()) });
    let next = AtomicU64::new(1 << 32);
    let far = far();
    let mut group = c.benchmark_group("cache/miss");
    for (tiers, tiers_label) in [(Tiers::Both, "both_tiers"), (Tiers::L1Only, "l1_only")] {
        let p = policy(tiers);
        for (size, label) in SIZES {
            let v = value(size);
            group.bench_function(format!("{tiers_label}/{label}"), |b| {
                b.to_async(&rt).iter_batched(
                    || {
                        CacheKey::new(
                            "bench",
                            "patterns.find",
                            &params(next.fetch_add(1, Ordering::Relaxed)),
                        )
                        .expect("valid")
                    },
                    |key| {
                        let (cache, p, v) = (&cache, &p, v.clone());
                        async move {
                            let fetched = cache
                                .get_or_load(&key, p, far, || async move { Ok::<_, NoError>(v) })
                                .await
                                .expect("loaded");
                            debug_assert_eq!(fetched.source, Source::Loader);
                            fetched
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
            // Keep the disk queue from growing across samples.
            rt.block_on(cache.flush());
        }
    }
    group.finish();
    rt.block_on(cache.close());
}

fn key(c: &mut Criterion) {
    let text = params(0);
    assert!((90..=110).contains(&text.len()), "{} bytes", text.len());
    let mut group = c.benchmark_group("cache/key");
    group.bench_function("new/100B", |b| {
        b.iter(|| CacheKey::new("bench", "patterns.find", black_box(&text)).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, key, l1_hit, l2_hit, miss);
criterion_main!(benches);
