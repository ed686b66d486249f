//! The same worker over its pipes, over TCP on 127.0.0.1 and over a Unix
//! socket, measured in the same run: what a remote worker's transport costs
//! before any real network is involved.
//!
//! - `transport-throughput/{pipes,tcp,unix}`: echo calls of 100 B params,
//!   64 in flight, one worker, closed loop.
//! - `transport-sequential/{pipes,tcp,unix}`: one call at a time.
//!
//! The worker is the SDK's demo worker with the same flags each time; on the
//! sockets it runs `--listen` (TCP with the HMAC challenge on a secret, as
//! deployed; the challenge costs only at connect time).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pybridge_benches::{SDK_WORKER_ARGS, payload, pool_echo_loop, python, python_path};
use pybridge_pool::{Endpoint, Pool, PoolConfig, Secret, WorkerSpec};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::runtime::Runtime;

const IN_FLIGHT: usize = 64;
const SECRET: &str = "transport benchmark secret";

fn spec() -> WorkerSpec {
    WorkerSpec::new(python())
        .args(SDK_WORKER_ARGS)
        .env("PYTHONPATH", python_path())
}

/// Starts the demo worker listening on `url`; returns it and where it listens.
async fn listener(url: &str) -> (Child, String) {
    let mut child = Command::new(python())
        .args(SDK_WORKER_ARGS)
        .args(["--listen", url])
        .env("PYTHONPATH", python_path())
        .env("PYBRIDGE_WORKER_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(url) = line.split("listening on ").nth(1) {
            let url = url.trim().to_string();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, url);
        }
    }
    panic!("the listener did not start");
}

/// The three pools, one worker each, and the listeners behind two of them.
struct Pools {
    pools: Vec<(&'static str, Pool)>,
    _listeners: Vec<Child>,
    _dir: tempfile::TempDir,
}

async fn pools() -> Pools {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tcp, tcp_url) = listener("tcp://127.0.0.1:0").await;
    let sock = dir.path().join("w.sock");
    let (unix, unix_url) = listener(&format!("unix:{}", sock.display())).await;
    let start = |builder: pybridge_pool::PoolConfigBuilder| async move {
        Pool::start(builder.build().expect("config"))
            .await
            .expect("pool starts")
    };
    let secret = Secret::new(SECRET).expect("not empty");
    let pipes = start(PoolConfig::builder(spec()).workers(1)).await;
    let remote = |url: &str| {
        PoolConfig::builder(spec())
            .workers(0)
            .connect(Endpoint::parse(url).expect("a url"))
            .secret(secret.clone())
    };
    let tcp_pool = start(remote(&tcp_url)).await;
    let unix_pool = start(remote(&unix_url)).await;
    Pools {
        pools: vec![("pipes", pipes), ("tcp", tcp_pool), ("unix", unix_pool)],
        _listeners: vec![tcp, unix],
        _dir: dir,
    }
}

fn runtime() -> Runtime {
    pybridge_benches::runtime().expect("runtime")
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let set = rt.block_on(pools());
    let params: Arc<serde_json::value::RawValue> = Arc::from(payload(100));
    let mut group = c.benchmark_group("transport-throughput");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(4));
    for (name, pool) in &set.pools {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| rt.block_on(pool_echo_loop(pool, iters, IN_FLIGHT, &params)));
        });
    }
    group.finish();
    for (_, pool) in &set.pools {
        rt.block_on(pool.shutdown());
    }
}

fn sequential(c: &mut Criterion) {
    let rt = runtime();
    let set = rt.block_on(pools());
    let params = payload(100);
    let mut group = c.benchmark_group("transport-sequential");
    for (name, pool) in &set.pools {
        group.bench_function(*name, |b| {
            b.to_async(&rt)
                .iter(|| pool.call("test.echo", Some(&params)))
        });
    }
    group.finish();
    for (_, pool) in &set.pools {
        rt.block_on(pool.shutdown());
    }
}

criterion_group!(benches, throughput, sequential);
criterion_main!(benches);
