//! Where the sequential-latency gap between pybridge and the raw baseline comes
//! from. Six set-ups answer one 100-byte echo at a time:
//!
//! - raw client + raw worker (the baseline of `BENCHMARKS.md`),
//! - raw client + raw worker spinning `--burn-ns` of CPU per read,
//! - raw client + the worker SDK's demo worker,
//! - the pool + raw worker,
//! - the pool + SDK worker,
//! - the full bridge + SDK worker (what `BENCHMARKS.md` calls pybridge).
//!
//! Each is timed twice: from a caller that blocks on the runtime
//! (`Runtime::block_on`, as a program's `main` does; the rows of
//! `BENCHMARKS.md`), and from a caller in a task spawned on the runtime (as
//! a server's handlers are). A blocked caller is a thread outside the
//! runtime, parked between calls, and waking it is part of every round
//! trip; a spawned caller is woken on the runtime's own threads.
//!
//! They run in interleaved rounds, so drift on a shared machine hits all of
//! them alike; each figure is the median over rounds of the round's p50.
//!
//! ```text
//! cargo run --release -p pybridge-benches --example sequential_gap [-- --json --rounds 11 --calls 2000 --burn-ns 2000]
//! ```

// A diagnostic's report is its output.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pybridge::Bridge;
use pybridge_benches::raw::{ECHO_WORKER, RawWorker, burning_echo_args};
use pybridge_benches::{
    SDK_WORKER_ARGS, median, payload, python, python_path, raw_sdk_args, sdk_bridge_config,
};
use pybridge_pool::{Pool, PoolConfig, WorkerSpec};
use serde_json::json;
use serde_json::value::RawValue;

struct Options {
    json: bool,
    rounds: usize,
    calls: usize,
    burn_ns: u64,
}

fn options() -> Result<Options> {
    let mut options = Options {
        json: false,
        rounds: 11,
        calls: 2000,
        burn_ns: 2000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64> {
            let text = args
                .next()
                .with_context(|| format!("{name} needs a value"))?;
            text.parse()
                .with_context(|| format!("{name}: {text:?} is not a whole number"))
        };
        match arg.as_str() {
            "--json" => options.json = true,
            "--rounds" => options.rounds = usize::try_from(value("--rounds")?)?.max(1),
            "--calls" => options.calls = usize::try_from(value("--calls")?)?.max(1),
            "--burn-ns" => options.burn_ns = value("--burn-ns")?,
            "--bench" => {} // cargo passes it to examples run as benches
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(options)
}

enum Setup {
    Raw(Box<RawWorker>),
    Pool(Pool),
    Bridge(Bridge),
}

impl Setup {
    async fn call(&self, params: &RawValue) -> Result<()> {
        match self {
            Setup::Raw(worker) => {
                worker.call(params).await?;
            }
            Setup::Pool(pool) => {
                pool.call("test.echo", Some(params)).await?;
            }
            Setup::Bridge(bridge) => {
                bridge.call_raw("test.echo", Some(params)).await?;
            }
        }
        Ok(())
    }
}

/// `calls` sequential calls of `setups[index]`, each call's latency in µs.
async fn time_calls(
    setups: &[(String, Setup)],
    index: usize,
    calls: usize,
    params: &RawValue,
) -> Result<Vec<f64>> {
    let setup = &setups[index].1;
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        setup.call(params).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(latencies)
}

/// The suffix of a row timed from a spawned task.
const SPAWNED: &str = ", caller in a spawned task";

async fn pool_of(spec: WorkerSpec) -> Result<Pool> {
    Ok(Pool::start(PoolConfig::builder(spec).workers(1).build()?).await?)
}

fn main() -> Result<()> {
    let options = options()?;
    let runtime = pybridge_benches::runtime()?;
    let python = python();
    let burn_label = format!(
        "raw client + raw worker spinning {:.1} µs per read",
        options.burn_ns as f64 / 1000.0
    );
    let setups: Vec<(&str, Setup)> = runtime.block_on(async {
        // As in the `bridge` benchmark: test.echo is not cacheable, so the
        // cache is consulted and bypassed.
        let bridge_config = sdk_bridge_config(1);
        anyhow::Ok(vec![
            (
                "raw client + raw worker",
                Setup::Raw(Box::new(RawWorker::spawn(&python).await?)),
            ),
            (
                burn_label.as_str(),
                Setup::Raw(Box::new(
                    RawWorker::spawn_program(&python, burning_echo_args(options.burn_ns), "echo")
                        .await?,
                )),
            ),
            (
                "raw client + SDK worker",
                Setup::Raw(Box::new(
                    RawWorker::spawn_program(&python, raw_sdk_args(), "test.echo").await?,
                )),
            ),
            (
                "pool + raw worker",
                Setup::Pool(pool_of(WorkerSpec::new(&python).args(["-c", ECHO_WORKER])).await?),
            ),
            (
                "pool + SDK worker",
                Setup::Pool(
                    pool_of(
                        WorkerSpec::new(&python)
                            .args(SDK_WORKER_ARGS)
                            .env("PYTHONPATH", python_path()),
                    )
                    .await?,
                ),
            ),
            (
                "bridge + SDK worker",
                Setup::Bridge(
                    Bridge::from_config(bridge_config)
                        .await
                        .map_err(|e| anyhow::anyhow!("bridge: {}", e.report()))?,
                ),
            ),
        ])
    })?;
    let setups: Arc<Vec<(String, Setup)>> = Arc::new(
        setups
            .into_iter()
            .map(|(name, setup)| (name.to_owned(), setup))
            .collect(),
    );
    let params: Arc<RawValue> = Arc::from(payload(100));
    // Per setup: the rounds' p50 from a blocked caller, then from a spawned one.
    let mut p50s: Vec<[Vec<f64>; 2]> = (0..setups.len())
        .map(|_| {
            [
                Vec::with_capacity(options.rounds),
                Vec::with_capacity(options.rounds),
            ]
        })
        .collect();
    for _ in 0..options.rounds {
        for (index, p50) in p50s.iter_mut().enumerate() {
            let mut blocked =
                runtime.block_on(time_calls(&setups, index, options.calls, &params))?;
            p50[0].push(median(&mut blocked));
            let (all, params, calls) = (Arc::clone(&setups), Arc::clone(&params), options.calls);
            let mut spawned = runtime.block_on(async move {
                tokio::spawn(async move { time_calls(&all, index, calls, &params).await }).await
            })??;
            p50[1].push(median(&mut spawned));
        }
    }
    let mut rows: Vec<(String, f64)> = Vec::with_capacity(setups.len() * 2);
    for (mode, suffix) in [(0, ""), (1, SPAWNED)] {
        for ((name, _), p50) in setups.iter().zip(&mut p50s) {
            rows.push((format!("{name}{suffix}"), median(&mut p50[mode])));
        }
    }
    if options.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(name, us)| json!({ "setup": name, "p50_us": us }))
            .collect();
        let out = json!({
            "rounds": options.rounds,
            "calls_per_round": options.calls,
            "burn_ns": options.burn_ns,
            "rows": rows,
        });
        println!("{out}");
    } else {
        println!(
            "{} rounds of {} sequential calls; median of the rounds' p50; \
             each against the raw client and worker timed the same way",
            options.rounds, options.calls
        );
        for half in rows.chunks(setups.len()) {
            let base = half[0].1;
            for (name, us) in half {
                println!("{name:74} {us:7.1} µs  {:+6.1} µs", us - base);
            }
        }
    }
    let setups = Arc::try_unwrap(setups)
        .map_err(|_| anyhow::anyhow!("a timing task still holds the set-ups"))?;
    for (_, setup) in setups {
        match setup {
            Setup::Bridge(bridge) => drop(runtime.block_on(bridge.shutdown())),
            Setup::Pool(pool) => drop(runtime.block_on(pool.shutdown())),
            Setup::Raw(_) => {}
        }
    }
    Ok(())
}
