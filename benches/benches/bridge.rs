//! The full bridge next to the raw limit, in one run.
//!
//! Every call goes through validation, the cache (test.echo is not cacheable,
//! so the cache is consulted and bypassed), the method's breaker inside the
//! retry policy, and the pool, to the SDK's demo worker; the raw baseline is
//! the minimal pipelined client and batched echo loop of `raw.rs`.
//!
//! - `bridge-throughput/{raw,bridge}-{size}-{n}w`: 64 calls in flight per worker.
//! - `bridge-sequential/{raw,bridge}-{size}`: one call at a time, one worker.
//! - `bridge-cache-hit/bridge-100B`: a call answered from the memory tier.
//! - `bridge-cache-hit-cpu/bridge-100B`: the same, timed in this process's
//!   CPU time rather than wall time.
//!
//! `cargo xtask bench` runs the sequential and cache-hit groups and
//! reports their medians as ratios. Its throughput goals and CPU per call
//! come from interleaved rounds of the same calls
//! (`examples/throughput_ab.rs`); the throughput group here is for
//! `cargo bench`, with criterion's comparison to the previous run.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pybridge::{Bridge, CallOptions, Config};
use pybridge_benches::raw::RawPool;
use pybridge_benches::{bridge_echo_loop, cpu_time, payload, python, sdk_bridge_config};
use serde_json::value::RawValue;
use tokio::runtime::Runtime;

/// Calls in flight per worker (the SDK worker advertises this window).
const IN_FLIGHT: usize = 64;
const SIZES: [(&str, usize); 3] = [("100B", 100), ("4KiB", 4096), ("64KiB", 65536)];

fn runtime() -> Runtime {
    pybridge_benches::runtime().expect("runtime")
}

async fn bridge(config: Config) -> Bridge {
    Bridge::from_config(config)
        .await
        .unwrap_or_else(|e| panic!("bridge starts: {}", e.report()))
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("bridge-throughput");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(20);
    for workers in [1usize, 2] {
        let raw = Arc::new(
            rt.block_on(RawPool::spawn(&python(), workers))
                .expect("raw workers"),
        );
        let bridge = rt.block_on(bridge(sdk_bridge_config(workers)));
        for (label, size) in SIZES {
            let params: Arc<RawValue> = Arc::from(payload(size));
            group.throughput(Throughput::Bytes(params.get().len() as u64));
            let id = format!("{label}-{workers}w");
            group.bench_function(BenchmarkId::new("raw", &id), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(raw.drive(iters, IN_FLIGHT, &params))
                        .expect("the raw baseline answers every call")
                });
            });
            group.bench_function(BenchmarkId::new("bridge", &id), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(bridge_echo_loop(
                        &bridge,
                        iters,
                        IN_FLIGHT * workers,
                        &params,
                    ))
                });
            });
        }
        rt.block_on(bridge.shutdown());
    }
    group.finish();
}

fn sequential(c: &mut Criterion) {
    let rt = runtime();
    let raw = rt
        .block_on(RawPool::spawn(&python(), 1))
        .expect("raw worker");
    let bridge = rt.block_on(bridge(sdk_bridge_config(1)));
    let mut group = c.benchmark_group("bridge-sequential");
    group.measurement_time(Duration::from_secs(4));
    for (label, size) in SIZES {
        let params = payload(size);
        group.bench_function(BenchmarkId::new("raw", label), |b| {
            b.to_async(&rt).iter(|| raw.call(&params))
        });
        group.bench_function(BenchmarkId::new("bridge", label), |b| {
            b.to_async(&rt)
                .iter(|| bridge.call_raw("test.echo", Some(&params)))
        });
    }
    group.finish();
    rt.block_on(bridge.shutdown());
}

fn cache_hit(c: &mut Criterion) {
    let rt = runtime();
    let mut config = sdk_bridge_config(1);
    let mut echo = pybridge::config::MethodSettings::default();
    echo.cache = Some(true);
    config.methods.insert("test.echo".into(), echo);
    let bridge = rt.block_on(bridge(config));
    let params = payload(100);
    let options = CallOptions::new();
    let first = rt
        .block_on(bridge.call_with("test.echo", Some(&params), &options))
        .expect("first call");
    assert_eq!(first.source, pybridge::ResultSource::Worker);
    let hit = rt
        .block_on(bridge.call_with("test.echo", Some(&params), &options))
        .expect("cached call");
    assert_eq!(
        hit.source,
        pybridge::ResultSource::CacheMemory,
        "the benchmark measures hits"
    );
    let mut group = c.benchmark_group("bridge-cache-hit");
    group.bench_function("bridge-100B", |b| {
        b.to_async(&rt)
            .iter(|| bridge.call_with("test.echo", Some(&params), &options))
    });
    group.finish();
    let mut group = c.benchmark_group("bridge-cache-hit-cpu");
    group.bench_function("bridge-100B", |b| {
        b.iter_custom(|iters| {
            let before = cpu_time();
            rt.block_on(async {
                for _ in 0..iters {
                    std::hint::black_box(
                        bridge
                            .call_with("test.echo", Some(&params), &options)
                            .await
                            .expect("hit"),
                    );
                }
            });
            cpu_time() - before
        })
    });
    group.finish();
    rt.block_on(bridge.shutdown());
}

criterion_group!(benches, throughput, sequential, cache_hit);
criterion_main!(benches);
