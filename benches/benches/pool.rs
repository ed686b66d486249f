//! Pool throughput and latency next to the raw baseline, in the same run.
//!
//! - `pool/throughput/{raw,pool}/{1,2}w`: echo calls of 100 B params with 64
//!   in flight per worker, closed loop.
//! - `pool/sequential/{raw,pool}`: one call at a time.
//!
//! At the end it prints the bench process's CPU time per call for both, the
//! pool's own cost being the difference.

// A benchmark's report is its output.
#![allow(clippy::print_stderr)]

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pybridge_benches::raw::RawPool;
use pybridge_benches::{SDK_WORKER_ARGS, cpu_time, payload, pool_echo_loop, python, python_path};
use pybridge_pool::{Pool, PoolConfig, WorkerSpec};
use tokio::runtime::Runtime;

/// Calls in flight per worker.
const IN_FLIGHT: usize = 64;

fn runtime() -> Runtime {
    pybridge_benches::runtime().expect("runtime")
}

async fn sdk_pool(workers: usize) -> Pool {
    let spec = WorkerSpec::new(python())
        .args(SDK_WORKER_ARGS)
        .env("PYTHONPATH", python_path());
    let config = PoolConfig::builder(spec)
        .workers(workers)
        .build()
        .expect("config");
    Pool::start(config).await.expect("pool starts")
}

/// CPU time and calls, summed over a benchmark's iterations.
#[derive(Default)]
struct CpuTally {
    cpu: Duration,
    calls: u64,
}

impl CpuTally {
    fn per_call(&self) -> Duration {
        self.cpu / u32::try_from(self.calls.max(1)).unwrap_or(u32::MAX)
    }
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let params: Arc<serde_json::value::RawValue> = Arc::from(payload(100));
    let mut group = c.benchmark_group("pool/throughput");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));
    let tallies: Arc<Mutex<Vec<(String, CpuTally)>>> = Arc::default();
    for workers in [1usize, 2] {
        let raw = Arc::new(
            rt.block_on(RawPool::spawn(&python(), workers))
                .expect("raw workers"),
        );
        let pool = rt.block_on(sdk_pool(workers));
        let mut raw_tally = CpuTally::default();
        group.bench_function(BenchmarkId::new("raw", format!("{workers}w")), |b| {
            b.iter_custom(|iters| {
                let before = cpu_time();
                let elapsed = rt
                    .block_on(raw.drive(iters, IN_FLIGHT, &params))
                    .expect("the raw baseline answers every call");
                raw_tally.cpu += cpu_time() - before;
                raw_tally.calls += iters;
                elapsed
            });
        });
        let mut pool_tally = CpuTally::default();
        group.bench_function(BenchmarkId::new("pool", format!("{workers}w")), |b| {
            b.iter_custom(|iters| {
                let before = cpu_time();
                let elapsed =
                    rt.block_on(pool_echo_loop(&pool, iters, IN_FLIGHT * workers, &params));
                pool_tally.cpu += cpu_time() - before;
                pool_tally.calls += iters;
                elapsed
            });
        });
        let mut tallies = tallies.lock().expect("tallies");
        tallies.push((format!("raw {workers}w"), raw_tally));
        tallies.push((format!("pool {workers}w"), pool_tally));
        rt.block_on(pool.shutdown());
    }
    group.finish();
    for (name, tally) in tallies.lock().expect("tallies").iter() {
        eprintln!(
            "cpu per call in the bench process, {name}: {:?}",
            tally.per_call()
        );
    }
}

fn sequential(c: &mut Criterion) {
    let rt = runtime();
    let params = payload(100);
    let raw = rt
        .block_on(RawPool::spawn(&python(), 1))
        .expect("raw worker");
    let pool = rt.block_on(sdk_pool(1));
    let mut group = c.benchmark_group("pool/sequential");
    group.bench_function("raw", |b| b.to_async(&rt).iter(|| raw.call(&params)));
    group.bench_function("pool", |b| {
        b.to_async(&rt)
            .iter(|| pool.call("test.echo", Some(&params)))
    });
    group.finish();
    rt.block_on(pool.shutdown());
}

criterion_group!(benches, throughput, sequential);
criterion_main!(benches);
