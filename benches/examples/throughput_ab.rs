//! Throughput of the full bridge against the raw baseline in interleaved
//! rounds, the measure of `BENCHMARKS.md`'s throughput goals.
//!
//! For 1 and 2 workers and each params size, every round runs the raw
//! client on its raw workers and the full bridge on the SDK's demo workers,
//! the same number of calls each with 64 in flight per worker, in an order
//! that alternates from one round to the next. A round's ratio is the
//! bridge's rate over the raw client's, measured seconds apart, so drift on
//! a shared machine hits both alike; each figure is the median over rounds,
//! and the ratio comes with a confidence interval of its median of at least
//! 90 % (for eleven rounds, the 3rd and the 9th of the rounds' ratios:
//! 93.5 %). The process's CPU time per call is measured around each run the
//! same way, and so is the workers' (from `/proc`, all of a run's workers
//! summed): the two ends of the pipes, whose sum bounds a ratio on a
//! machine with no spare core.
//!
//! `--workers` and `--sizes` pick cases, for a quicker look at one.
//!
//! A run's size in calls is set once per case, from a first run of the raw
//! client: `--seconds` of its rate. Both sides then make one unmeasured run
//! of that size.
//!
//! `--threads 1,2` measures every case on a runtime of each size (two by
//! default, this machine's cores): each runtime has its own raw client,
//! bridge and workers, and a round runs the sizes one after the other, in
//! an order that alternates too, so the sizes' CPU per call compare as
//! closely as the two sides do.
//!
//! ```text
//! cargo run --release -p pybridge-benches --example throughput_ab [-- --json --rounds 11 --seconds 0.3 --threads 1,2 --workers 1,2 --sizes 100B,4KiB,64KiB]
//! ```

// A benchmark's report is its output.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pybridge::Bridge;
use pybridge_benches::raw::RawPool;
use pybridge_benches::{
    args, bridge_echo_loop, cpu_time, median, payload, processes_cpu_time, python,
    sdk_bridge_config,
};
use serde_json::json;
use serde_json::value::RawValue;

/// Calls in flight per worker (the SDK worker advertises this window).
const IN_FLIGHT: usize = 64;
const SIZES: [(&str, usize); 3] = [("100B", 100), ("4KiB", 4096), ("64KiB", 65536)];

struct Options {
    json: bool,
    rounds: usize,
    seconds: f64,
    threads: Vec<usize>,
    workers: Vec<usize>,
    sizes: Vec<String>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        json: false,
        rounds: 11,
        seconds: 0.3,
        threads: vec![2],
        workers: vec![1, 2],
        sizes: SIZES.iter().map(|(label, _)| (*label).to_owned()).collect(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<String> {
            args.next().with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--json" => options.json = true,
            "--rounds" => options.rounds = args::whole("--rounds", &value("--rounds")?)?,
            "--seconds" => options.seconds = args::seconds("--seconds", &value("--seconds")?)?,
            "--threads" => options.threads = args::counts("--threads", &value("--threads")?)?,
            "--workers" => options.workers = args::counts("--workers", &value("--workers")?)?,
            "--sizes" => {
                let sizes: Vec<String> = value("--sizes")?.split(',').map(str::to_owned).collect();
                if let Some(unknown) = sizes.iter().find(|s| !SIZES.iter().any(|(l, _)| l == s)) {
                    bail!("--sizes: unknown size {unknown:?} (the sizes are 100B, 4KiB and 64KiB)");
                }
                options.sizes = sizes;
            }
            "--bench" => {} // cargo passes it to examples run as benches
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(options)
}

/// One timed run: its calls per second and this process's CPU per call.
#[derive(Clone, Copy)]
struct Run {
    rate: f64,
    cpu_us: f64,
    /// The workers' CPU per call (all of them, summed), when `/proc` has it.
    worker_cpu_us: f64,
}

/// CPU readings of this process and of the workers at one moment.
struct Readings {
    own: Duration,
    workers: Option<Duration>,
}

impl Readings {
    fn now(workers: &[u32]) -> Readings {
        Readings {
            workers: processes_cpu_time(workers),
            own: cpu_time(),
        }
    }

    fn run_since(&self, calls: u64, elapsed: Duration, workers: &[u32]) -> Run {
        let own = cpu_time() - self.own;
        let worker_cpu = processes_cpu_time(workers)
            .zip(self.workers)
            .map_or(f64::NAN, |(after, before)| {
                (after - before).as_secs_f64() * 1e6 / calls as f64
            });
        Run {
            rate: calls as f64 / elapsed.as_secs_f64(),
            cpu_us: own.as_secs_f64() * 1e6 / calls as f64,
            worker_cpu_us: worker_cpu,
        }
    }
}

async fn raw_run(raw: &RawPool, calls: u64, params: &RawValue) -> Result<Run> {
    let pids = raw.pids();
    let before = Readings::now(&pids);
    let elapsed = raw.drive(calls, IN_FLIGHT, params).await?;
    Ok(before.run_since(calls, elapsed, &pids))
}

async fn bridge_run(bridge: &Bridge, workers: usize, calls: u64, params: &Arc<RawValue>) -> Run {
    let pids: Vec<u32> = bridge.health().pool.workers.iter().map(|w| w.pid).collect();
    let before = Readings::now(&pids);
    let elapsed = bridge_echo_loop(bridge, calls, IN_FLIGHT * workers, params).await;
    before.run_since(calls, elapsed, &pids)
}

/// A distribution-free confidence interval of the median of `n` values:
/// the `k`-th smallest and the `k`-th largest, for the largest `k` whose
/// coverage (the chance that the median lies between them,
/// 1 − 2·P(Binomial(n, ½) < k)) is still at least 90 %. Returns `k` (1 =
/// the extremes) and the coverage.
fn interval_rank(n: usize) -> (usize, f64) {
    let total = 2f64.powi(i32::try_from(n).unwrap_or(i32::MAX));
    let (mut below, mut choose, mut best) = (0.0, 1.0, (1, 1.0 - 2.0 / total));
    for k in 1..=n.div_ceil(2) {
        // `below` sums C(n, i) for i < k; `choose` is C(n, k − 1).
        below += choose;
        choose = choose * (n - (k - 1)) as f64 / k as f64;
        let coverage = 1.0 - 2.0 * below / total;
        if coverage >= 0.9 {
            best = (k, coverage);
        }
    }
    best
}

/// "1st", "2nd", "3rd", "4th"…
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The median of `ratios` and its interval (see [`interval_rank`]).
fn ratio_summary(ratios: &mut [f64]) -> (f64, f64, f64) {
    let mid = median(ratios);
    let (k, _) = interval_rank(ratios.len());
    (mid, ratios[k - 1], ratios[ratios.len() - k])
}

/// One runtime size's side of the comparison: its runtime, and the raw
/// client and bridge started on it for the case's workers.
struct Side {
    threads: usize,
    runtime: tokio::runtime::Runtime,
    raw: Option<RawPool>,
    bridge: Option<Bridge>,
}

impl Side {
    fn start(&mut self, python: &str, workers: usize) -> Result<()> {
        self.raw = Some(self.runtime.block_on(RawPool::spawn(python, workers))?);
        let bridge = self
            .runtime
            .block_on(Bridge::from_config(sdk_bridge_config(workers)))
            .map_err(|e| anyhow::anyhow!("bridge: {}", e.report()))?;
        self.bridge = Some(bridge);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(bridge) = self.bridge.take() {
            self.runtime.block_on(bridge.shutdown());
        }
        self.raw = None;
    }

    fn raw(&self, calls: u64, params: &RawValue) -> Result<Run> {
        let raw = self.raw.as_ref().context("no raw client started")?;
        self.runtime.block_on(raw_run(raw, calls, params))
    }

    fn bridge(&self, workers: usize, calls: u64, params: &Arc<RawValue>) -> Result<Run> {
        let bridge = self.bridge.as_ref().context("no bridge started")?;
        Ok(self
            .runtime
            .block_on(bridge_run(bridge, workers, calls, params)))
    }
}

fn main() -> Result<()> {
    let options = options()?;
    let python = python();
    let mut sides = options
        .threads
        .iter()
        .map(|&threads| {
            Ok(Side {
                threads,
                runtime: pybridge_benches::runtime_with(threads)?,
                raw: None,
                bridge: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut cases = Vec::new();
    for &workers in &options.workers {
        for side in &mut sides {
            side.start(&python, workers)?;
        }
        for (label, size) in SIZES
            .into_iter()
            .filter(|(label, _)| options.sizes.iter().any(|s| s == label))
        {
            let params: Arc<RawValue> = Arc::from(payload(size));
            // A first run of each side sets the run's size from the raw
            // client's rate; a second, of that size, warms both alike.
            let mut calls = Vec::new();
            for side in &sides {
                side.bridge(workers, 2000, &params)?;
                let first = side.raw(2000, &params)?;
                let n = ((first.rate * options.seconds) as u64).max(1000);
                side.raw(n, &params)?;
                side.bridge(workers, n, &params)?;
                calls.push(n);
            }
            let mut runs: Vec<(Vec<Run>, Vec<Run>)> = vec![(Vec::new(), Vec::new()); sides.len()];
            for round in 0..options.rounds {
                let mut order: Vec<usize> = (0..sides.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for index in order {
                    let (side, n) = (&sides[index], calls[index]);
                    let (r, b) = if round % 2 == 0 {
                        let r = side.raw(n, &params)?;
                        (r, side.bridge(workers, n, &params)?)
                    } else {
                        let b = side.bridge(workers, n, &params)?;
                        (side.raw(n, &params)?, b)
                    };
                    runs[index].0.push(r);
                    runs[index].1.push(b);
                }
            }
            for ((side, (raws, bridges)), n) in sides.iter().zip(&runs).zip(&calls) {
                let mut ratios: Vec<f64> = raws
                    .iter()
                    .zip(bridges)
                    .map(|(r, b)| b.rate / r.rate)
                    .collect();
                let (ratio, low, high) = ratio_summary(&mut ratios);
                let figure = |runs: &[Run], pick: fn(&Run) -> f64| {
                    median(&mut runs.iter().map(pick).collect::<Vec<_>>())
                };
                cases.push(json!({
                    "case": format!("{label}-{workers}w"),
                    "threads": side.threads,
                    "bytes": params.get().len(),
                    "calls_per_run": n,
                    "raw_rate": figure(raws, |r| r.rate),
                    "bridge_rate": figure(bridges, |r| r.rate),
                    "ratio": ratio,
                    "ratio_low": low,
                    "ratio_high": high,
                    "raw_cpu_us": figure(raws, |r| r.cpu_us),
                    "bridge_cpu_us": figure(bridges, |r| r.cpu_us),
                    "raw_worker_cpu_us": figure(raws, |r| r.worker_cpu_us),
                    "bridge_worker_cpu_us": figure(bridges, |r| r.worker_cpu_us),
                }));
            }
        }
        for side in &mut sides {
            side.stop();
        }
    }
    let (rank, coverage) = interval_rank(options.rounds);
    if options.json {
        println!(
            "{}",
            json!({
                "rounds": options.rounds,
                "threads": options.threads,
                "in_flight_per_worker": IN_FLIGHT,
                "interval_rank": rank,
                "interval_coverage": coverage,
                "cases": cases,
            })
        );
    } else {
        println!(
            "{} interleaved rounds, {IN_FLIGHT} in flight per worker; medians over rounds; \
             the ratio's interval: the {} smallest and largest of the rounds' ratios \
             ({:.1} % coverage)",
            options.rounds,
            ordinal(rank),
            coverage * 100.0
        );
        for case in &cases {
            println!(
                "{:10} {}t raw {:>9.0}/s  bridge {:>9.0}/s  ratio {:.2} ({:.2}–{:.2})  CPU per call raw {:.2} µs, bridge {:.2} µs; workers' raw {:.2} µs, SDK {:.2} µs",
                case["case"].as_str().unwrap_or_default(),
                case["threads"].as_u64().unwrap_or_default(),
                case["raw_rate"].as_f64().unwrap_or_default(),
                case["bridge_rate"].as_f64().unwrap_or_default(),
                case["ratio"].as_f64().unwrap_or_default(),
                case["ratio_low"].as_f64().unwrap_or_default(),
                case["ratio_high"].as_f64().unwrap_or_default(),
                case["raw_cpu_us"].as_f64().unwrap_or_default(),
                case["bridge_cpu_us"].as_f64().unwrap_or_default(),
                case["raw_worker_cpu_us"].as_f64().unwrap_or(f64::NAN),
                case["bridge_worker_cpu_us"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    Ok(())
}
