//! `cargo xtask bench`: the full bridge against the raw limit and against
//! `ProcessPoolExecutor`, all in one session, as one table in BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo, run};

mod cold_start;
mod trace_export;

struct Row {
    figure: String,
    pybridge: String,
    baseline: String,
    ratio: String,
    goal: String,
    met: Option<bool>,
}

impl Row {
    /// Two figures in microseconds and their ratio, with no goal.
    fn micros(figure: String, ours: f64, baseline: f64) -> Row {
        Row {
            figure,
            pybridge: format!("{ours:.2} µs"),
            baseline: format!("{baseline:.2} µs"),
            ratio: format!("{:.2}×", ours / baseline),
            goal: String::new(),
            met: None,
        }
    }
}

/// Rounds of the interleaved sequential-latency run.
const SEQUENTIAL_ROUNDS: &str = "11";
/// Rounds of the interleaved throughput run, and the length of each of
/// its runs at the raw client's rate.
const THROUGHPUT_ROUNDS: &str = "11";
const THROUGHPUT_SECONDS: &str = "0.4";

/// One case of the interleaved throughput run: medians over its rounds.
struct Throughput {
    bytes: f64,
    raw_rate: f64,
    bridge_rate: f64,
    ratio: f64,
    ratio_low: f64,
    ratio_high: f64,
    raw_cpu_us: f64,
    bridge_cpu_us: f64,
    /// The workers' CPU per call, all of them summed (`None` where `/proc`
    /// could not be read).
    raw_worker_cpu_us: Option<f64>,
    bridge_worker_cpu_us: Option<f64>,
}

/// The demo worker's arguments after the interpreter: inline dispatch with a
/// deep advertised window, so the pool pipelines calls to it as the
/// benchmark intends (the SDK's default runs methods on threads).
const DEMO_WORKER: &[&str] = &[
    "-m",
    "pybridge_worker",
    "--threads",
    "0",
    "--max-concurrency",
    "64",
];

pub(crate) fn bench(root: &Path, args: &[String]) -> Result<()> {
    // The shared-tier benchmark starts its own redis-server, as the tests do.
    crate::setup::debian_packages()?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let python = std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let (cli, without_otel) = (
        target.join("release/pybridge"),
        target.join("release/pybridge-without-otel"),
    );
    // The build without trace export first, kept aside under its own name;
    // the default build then overwrites `pybridge`. Both reuse every
    // dependency compiled for the other.
    run(cargo(root).args([
        "build",
        "--release",
        "-p",
        "pybridge-cli",
        "--no-default-features",
    ]))?;
    std::fs::copy(&cli, &without_otel)
        .with_context(|| format!("copying {} aside", cli.display()))?;
    run(cargo(root).args(["build", "--release", "-p", "pybridge-cli"]))?;
    let clis = trace_export::Clis {
        with_otel: &cli,
        without_otel: &without_otel,
    };
    if args.iter().any(|a| a == "--trace-export") {
        return trace_export::print(root, clis, &python);
    }
    if args.iter().any(|a| a == "--cold-start") {
        for row in cold_start::rows(&target, &cli, root, &python)? {
            println!(
                "{}: {} against {} ({}, goal {})",
                row.figure, row.pybridge, row.baseline, row.ratio, row.goal
            );
        }
        return Ok(());
    }

    // 1. Criterion: the bridge and the raw baseline one after the other,
    // for sequential latency by size and the cache hit. Throughput has its
    // interleaved rounds below.
    let output = cargo(root)
        .args([
            "bench",
            "-p",
            "pybridge-benches",
            "--bench",
            "bridge",
            "--",
            "--noplot",
            "^(bridge-sequential|bridge-cache-hit)/",
        ])
        .output()
        .context("running cargo bench")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        bail!("cargo bench failed:\n{stderr}");
    }
    // Remote workers' transports against pipes: the same worker, one run.
    let output = cargo(root)
        .args([
            "bench",
            "-p",
            "pybridge-benches",
            "--bench",
            "transport",
            "--",
            "--noplot",
        ])
        .output()
        .context("running cargo bench (transport)")?;
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        bail!(
            "cargo bench (transport) failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let median = |group: &str, function: &str, param: &str| -> Result<f64> {
        let path = target
            .join("criterion")
            .join(group)
            .join(function)
            .join(param)
            .join("new/estimates.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_str(&text)?;
        v["median"]["point_estimate"]
            .as_f64()
            .context("no median in estimates.json")
    };

    // 1a. Throughput and CPU per call in interleaved rounds (the goals'
    // measure): the raw client and the full bridge, round by round.
    let ab = example_json(
        root,
        "throughput_ab",
        &[
            "--rounds",
            THROUGHPUT_ROUNDS,
            "--seconds",
            THROUGHPUT_SECONDS,
            "--threads",
            "2,1",
        ],
    )?;
    let ab_case = |case: &str, threads: u64| -> Result<Throughput> {
        let found = ab["cases"]
            .as_array()
            .and_then(|cases| {
                cases
                    .iter()
                    .find(|c| c["case"] == case && c["threads"] == threads)
            })
            .with_context(|| format!("throughput_ab gave no case {case:?} on {threads} threads"))?;
        let number = |key: &str| {
            found[key]
                .as_f64()
                .with_context(|| format!("throughput_ab's case {case:?} has no {key}"))
        };
        Ok(Throughput {
            bytes: number("bytes")?,
            raw_rate: number("raw_rate")?,
            bridge_rate: number("bridge_rate")?,
            ratio: number("ratio")?,
            ratio_low: number("ratio_low")?,
            ratio_high: number("ratio_high")?,
            raw_cpu_us: number("raw_cpu_us")?,
            bridge_cpu_us: number("bridge_cpu_us")?,
            raw_worker_cpu_us: found["raw_worker_cpu_us"].as_f64(),
            bridge_worker_cpu_us: found["bridge_worker_cpu_us"].as_f64(),
        })
    };

    // 1b. Sequential latency in interleaved rounds (the goal's measure):
    // the raw client and raw worker against the full bridge and SDK worker,
    // with the set-ups between them that say where a gap comes from.
    let gap = example_json(
        root,
        "sequential_gap",
        &["--rounds", SEQUENTIAL_ROUNDS, "--calls", "2000"],
    )?;
    let setup_p50 = |name: &str| -> Result<f64> {
        gap["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["setup"] == name))
            .and_then(|r| r["p50_us"].as_f64())
            .with_context(|| format!("sequential_gap gave no row {name:?}"))
    };
    let (sequential_bridge, sequential_raw) = (
        setup_p50("bridge + SDK worker")?,
        setup_p50("raw client + raw worker")?,
    );
    // The same calls from a task spawned on the runtime, as a server's
    // handlers make them: no parked thread outside the runtime to wake.
    let spawned = ", caller in a spawned task";
    let (spawned_bridge, spawned_raw) = (
        setup_p50(&format!("bridge + SDK worker{spawned}"))?,
        setup_p50(&format!("raw client + raw worker{spawned}"))?,
    );

    // 1c. The HTTP gateway on runtimes of two threads and of one, which
    // decides how `pybridge serve` sizes its runtime.
    let cli_path = cli.to_str().context("the CLI's path is not UTF-8")?;
    let gateway = example_json(
        root,
        "gateway_threads",
        &["--rounds", "7", "--seconds", "2", "--cli", cli_path],
    )?;
    let gateway_row = |threads: u64| -> Result<(f64, f64, f64)> {
        let row = gateway["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["threads"] == threads))
            .with_context(|| format!("gateway_threads gave no row for {threads} threads"))?;
        let number = |key: &str| {
            row[key]
                .as_f64()
                .with_context(|| format!("gateway_threads' row has no {key}"))
        };
        Ok((
            number("requests_per_s")?,
            number("cpu_us_per_request")?,
            number("rate_ratio_to_first")?,
        ))
    };

    // 1d. The shared cache tier: a hit from Redis on loopback against a
    // memory hit and a worker round trip, interleaved in one run.
    run(cargo(root).args([
        "bench",
        "-p",
        "pybridge-benches",
        "--bench",
        "shared_tier",
        "--",
        "--noplot",
    ]))?;

    // 2. What a Python user would reach for, in the same session.
    let ppe = python_json(
        &python,
        root,
        &root.join("benches/python/ppe_echo.py"),
        &["--workers", "2", "--tasks", "20000"],
    )?;
    let ppe_rate = ppe["tasks_per_sec"].as_f64().context("ppe tasks_per_sec")?;

    // The worker SDK's own CPU per message against the minimal loop's: the
    // Python half of the throughput gap, without round-trip noise.
    let sdk = python_json(
        &python,
        root,
        &root.join("benches/python/sdk_overhead.py"),
        &["--json"],
    )?;

    // 3. The bridge process's memory at full load: the CLI's own bench.
    let load = Command::new(&cli)
        .args([
            "bench",
            "--requests",
            "200000",
            "--concurrency",
            "64",
            "--json",
            "--",
        ])
        .arg(&python)
        .args(DEMO_WORKER)
        .env("PYTHONPATH", crate::python_path(root)?)
        .output()
        .context("running pybridge bench")?;
    if !load.status.success() {
        bail!(
            "pybridge bench failed: {}",
            String::from_utf8_lossy(&load.stderr)
        );
    }
    let load: Value = serde_json::from_slice(&load.stdout)?;

    // 4. What trace export costs, in the same session.
    let trace_rows = trace_export::rows(root, clis, &python)?;

    // 5. What one `pybridge call` costs from exec to exit.
    let cold_rows = cold_start::rows(&target, &cli, root, &python)?;

    let mut rows = Vec::new();
    let rate = |ns: f64| 1e9 / ns;
    // The runtime of two threads, as many as this machine's cores, then
    // the runtime of one, which `pybridge bench` itself takes on it for two
    // workers (crates/cli/src/runtime.rs).
    for (threads, runtime) in [(2, ""), (1, ", one runtime thread")] {
        for workers in ["1w", "2w"] {
            for size in ["100B", "4KiB", "64KiB"] {
                let t = ab_case(&format!("{size}-{workers}"), threads)?;
                let figure = format!(
                    "throughput, {size} params, {workers}, 64 in flight{runtime} (median of {THROUGHPUT_ROUNDS} interleaved rounds)"
                );
                let (ours, theirs) = if size == "100B" {
                    (
                        format!("{:.0} calls/s", t.bridge_rate),
                        format!("{:.0} calls/s", t.raw_rate),
                    )
                } else {
                    let mbs = |rate: f64| rate * t.bytes / 1e6;
                    (
                        format!("{:.1} MB/s", mbs(t.bridge_rate)),
                        format!("{:.1} MB/s", mbs(t.raw_rate)),
                    )
                };
                // Issue 21's goals, against the strong raw baseline.
                let goal = match (size, workers) {
                    ("100B", "2w") => 0.85,
                    _ => 0.9,
                };
                rows.push(Row {
                    figure,
                    pybridge: ours,
                    baseline: theirs,
                    ratio: format!("{:.2} ({:.2}–{:.2})", t.ratio, t.ratio_low, t.ratio_high),
                    goal: format!("≥ {goal}"),
                    met: Some(t.ratio >= goal),
                });
            }
        }
    }
    let extra_us = sequential_bridge - sequential_raw;
    rows.push(Row {
        figure: format!(
            "sequential latency, 100B params, 1 worker (median of {SEQUENTIAL_ROUNDS} interleaved rounds' p50)"
        ),
        pybridge: format!("{sequential_bridge:.1} µs"),
        baseline: format!("{sequential_raw:.1} µs"),
        ratio: format!("{extra_us:+.1} µs"),
        goal: "≤ +5 µs".into(),
        met: Some(extra_us <= 5.0),
    });
    rows.push(Row {
        figure: format!(
            "sequential latency, 100B params, 1 worker, caller in a spawned task (median of {SEQUENTIAL_ROUNDS} interleaved rounds' p50)"
        ),
        pybridge: format!("{spawned_bridge:.1} µs"),
        baseline: format!("{spawned_raw:.1} µs"),
        ratio: format!("{:+.1} µs", spawned_bridge - spawned_raw),
        goal: String::new(),
        met: None,
    });
    for size in ["100B", "4KiB", "64KiB"] {
        let (bridge, raw) = (
            median("bridge-sequential", "bridge", size)?,
            median("bridge-sequential", "raw", size)?,
        );
        rows.push(Row {
            figure: format!(
                "sequential latency (criterion's median of sample means), {size} params, 1 worker"
            ),
            pybridge: format!("{:.1} µs", bridge / 1e3),
            baseline: format!("{:.1} µs", raw / 1e3),
            ratio: format!("{:+.1} µs", (bridge - raw) / 1e3),
            goal: String::new(),
            met: None,
        });
    }
    for (transport, label) in [("tcp", "TCP on 127.0.0.1"), ("unix", "Unix socket")] {
        let (ours, pipes) = (
            median("transport-throughput", transport, "")?,
            median("transport-throughput", "pipes", "")?,
        );
        rows.push(Row {
            figure: format!(
                "pool throughput over {label} vs pipes, same worker, 100 B, 1 worker, 64 in flight"
            ),
            pybridge: format!("{:.0} calls/s", rate(ours)),
            baseline: format!("{:.0} calls/s", rate(pipes)),
            ratio: format!("{:.2}", pipes / ours),
            goal: String::new(),
            met: None,
        });
        let (ours, pipes) = (
            median("transport-sequential", transport, "")?,
            median("transport-sequential", "pipes", "")?,
        );
        rows.push(Row {
            figure: format!("pool sequential latency (median) over {label} vs pipes, 100 B"),
            pybridge: format!("{:.1} µs", ours / 1e3),
            baseline: format!("{:.1} µs", pipes / 1e3),
            ratio: format!("{:.2}×", ours / pipes),
            goal: String::new(),
            met: None,
        });
    }
    let ((two_rate, two_cpu, _), (one_rate, one_cpu, one_ratio)) =
        (gateway_row(2)?, gateway_row(1)?);
    rows.push(Row {
        figure: "gateway (`pybridge serve`, 2 workers), 100 B `/rpc` calls, 64 keep-alive connections (median of 7 interleaved rounds): one runtime thread; baseline: two".into(),
        pybridge: format!("{one_rate:.0} requests/s, {one_cpu:.1} µs CPU each"),
        baseline: format!("{two_rate:.0} requests/s, {two_cpu:.1} µs CPU each"),
        ratio: format!("{one_ratio:.2}"),
        goal: String::new(),
        met: None,
    });
    let hit = median("bridge-cache-hit", "bridge-100B", "")
        .or_else(|_| median("bridge-cache-hit", "bridge-100B", "."))?;
    let (memory, shared, worker) = (
        median("shared-tier", "memory-hit", "")?,
        median("shared-tier", "shared-hit", "")?,
        median("shared-tier", "worker", "")?,
    );
    // The goal is absolute; the memory tier's lookup, from the same run,
    // tells a slow host from a slow bridge (this host's speed varies by half
    // from one hour to the next).
    rows.push(Row {
        goal: "< 1 µs".into(),
        met: Some(hit < 1000.0),
        ..Row::micros(
            "cache hit through the full bridge (median), 100 B; baseline: a memory-tier lookup alone (`Cache::get_or_load`, its key built once)".into(),
            hit / 1e3,
            memory / 1e3,
        )
    });
    rows.push(Row {
        figure: "shared-tier hit (Redis on loopback, median), 100 B; baseline: memory hit / worker round trip".into(),
        pybridge: format!("{:.1} µs", shared / 1e3),
        baseline: format!("{:.2} µs / {:.1} µs", memory / 1e3, worker / 1e3),
        ratio: format!(
            "{:.0}× a memory hit; {:.2}× a worker round trip",
            shared / memory,
            shared / worker
        ),
        goal: String::new(),
        met: None,
    });
    let two_workers = ab_case("100B-2w", 2)?;
    let ours_2w = two_workers.bridge_rate;
    rows.push(Row {
        figure: "vs ProcessPoolExecutor, 2 workers, 100 B echo".into(),
        pybridge: format!("{ours_2w:.0} calls/s"),
        baseline: format!("{ppe_rate:.0} tasks/s"),
        ratio: format!("{:.1}×", ours_2w / ppe_rate),
        goal: "≥ 10×".into(),
        met: Some(ours_2w / ppe_rate >= 10.0),
    });
    let rss = load["rss_peak_bytes"].as_f64().unwrap_or(0.0) / 1048576.0;
    rows.push(Row {
        figure:
            "bridge process peak RSS at full load (pybridge bench, 64 in flight), workers excluded"
                .into(),
        pybridge: format!("{rss:.1} MiB"),
        baseline: String::new(),
        ratio: String::new(),
        goal: "< 30 MB".into(),
        met: Some(rss * 1.048576 < 30.0),
    });
    for (threads, runtime) in [(2, ""), (1, ", one runtime thread")] {
        let t = ab_case("100B-2w", threads)?;
        rows.push(Row {
            goal: "≤ 1.5 µs".into(),
            met: Some(t.bridge_cpu_us <= 1.5),
            ..Row::micros(
                format!(
                    "CPU per call in the benchmark process, 100 B, 2 workers{runtime} (median of {THROUGHPUT_ROUNDS} interleaved rounds); baseline: the raw client"
                ),
                t.bridge_cpu_us,
                t.raw_cpu_us,
            )
        });
    }
    // Where a 2-worker ratio comes from on a machine with as many cores as
    // processes: the whole call path's CPU, both ends of the pipes.
    for (case, size) in [("100B-2w", "100 B"), ("4KiB-2w", "4 KiB")] {
        let t = ab_case(case, 1)?;
        let (Some(sdk), Some(raw_worker)) = (t.bridge_worker_cpu_us, t.raw_worker_cpu_us) else {
            continue;
        };
        rows.push(Row::micros(
            format!(
                "workers' CPU per call under load, {size}, 2 workers, one runtime thread (median of {THROUGHPUT_ROUNDS} interleaved rounds); baseline: the raw echo loop"
            ),
            sdk,
            raw_worker,
        ));
        let (ours, raw) = (t.bridge_cpu_us + sdk, t.raw_cpu_us + raw_worker);
        rows.push(Row {
            ratio: format!("{:.2}× (the throughput ratio's bound: {:.2})", ours / raw, raw / ours),
            ..Row::micros(
                format!(
                    "CPU per call of the whole call path (benchmark process and workers), {size}, 2 workers, one runtime thread; baseline: the raw client and echo loop"
                ),
                ours,
                raw,
            )
        });
    }
    // What the runtime's size costs the bridge, each case measured on both
    // runtimes in the same rounds.
    for workers in ["1w", "2w"] {
        let (one, two) = (
            ab_case(&format!("100B-{workers}"), 1)?,
            ab_case(&format!("100B-{workers}"), 2)?,
        );
        rows.push(Row::micros(
            format!(
                "bridge CPU per call, 100 B, {workers}: one runtime thread; baseline: two (the same rounds)"
            ),
            one.bridge_cpu_us,
            two.bridge_cpu_us,
        ));
    }

    for (shape, label) in [
        ("batched", "64 KiB reads"),
        ("one_per_read", "one request per read"),
    ] {
        let figure = &sdk[shape];
        let (ours, minimal) = (
            figure["sdk_us"].as_f64().context("sdk_us")?,
            figure["minimal_us"].as_f64().context("minimal_us")?,
        );
        rows.push(Row::micros(
            format!("worker CPU per message, 100 B echo, {label} (SDK vs minimal loop)"),
            ours,
            minimal,
        ));
    }

    rows.extend(trace_rows);
    rows.extend(cold_rows);

    let report = render(root, &rows, &load, ppe_rate)?;
    println!("{report}");
    std::fs::write(root.join("BENCHMARKS.md"), report).context("writing BENCHMARKS.md")?;
    eprintln!("xtask: wrote BENCHMARKS.md");
    Ok(())
}

/// Runs a Python benchmark script and parses the JSON line it prints.
fn python_json(python: &str, root: &Path, script: &Path, args: &[&str]) -> Result<Value> {
    let out = Command::new(python)
        .env("PYTHONPATH", crate::python_path(root)?)
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{} printed no JSON", script.display()))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(
            || "unknown".into(),
            |kb| format!("{:.0} GiB", kb as f64 / 1048576.0),
        );
    let version = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .map(|o| {
                String::from_utf8_lossy(if o.stdout.is_empty() {
                    &o.stderr
                } else {
                    &o.stdout
                })
                .trim()
                .to_string()
            })
            .unwrap_or_else(|_| format!("{cmd}: unknown"))
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "- CPU: {cpu}, {cores} cores available; memory {memory}\n- Linux {}; load average at the end: {}\n- {}; {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        version("rustc", "--version"),
        version(
            &std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into()),
            "--version"
        ),
    )
}

/// Runs one of `benches/examples/` in release with `--json` and `args`, and
/// reads what it prints.
fn example_json(root: &Path, name: &str, args: &[&str]) -> Result<Value> {
    let output = cargo(root)
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "pybridge-benches",
            "--example",
            name,
            "--",
            "--json",
        ])
        .args(args)
        .output()
        .with_context(|| format!("running the {name} example"))?;
    if !output.status.success() {
        bail!(
            "the {name} example failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| format!("{name}'s JSON"))
}

fn render(_root: &Path, rows: &[Row], load: &Value, ppe_rate: f64) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "# Benchmarks\n")?;
    writeln!(
        out,
        "Produced by `cargo xtask bench` in one session: criterion's `bridge` benchmark for sequential \
         latency by size and the cache hit (the full bridge and the raw baseline, one after the other for \
         each case), its `transport` benchmark, the `throughput_ab`, `sequential_gap` and `gateway_threads` \
         examples (interleaved rounds), the `shared_tier` benchmark, then `benches/python/ppe_echo.py` and \
         `benches/python/sdk_overhead.py`, then `pybridge bench`, trace export and cold start. Every \
         figure is the median of its run; ratios compare figures from the same run, and those measured in \
         interleaved rounds are the median of the rounds' ratios. The machine is shared, so compare \
         ratios, not absolute numbers.\n"
    )?;
    writeln!(out, "## Machine\n\n{}\n", machine())?;
    writeln!(out, "## Results\n")?;
    writeln!(out, "| figure | pybridge | baseline | ratio | goal | met |")?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.figure, r.pybridge, r.baseline, r.ratio, r.goal, met
        )?;
    }
    writeln!(
        out,
        "\n`pybridge bench` in the same session: {} calls, {:.0} calls/s, p50 {} µs, p99 {} µs, {} errors, \
         on {} runtime thread(s) of its own choosing; ProcessPoolExecutor: {ppe_rate:.0} tasks/s.\n",
        load["requests"],
        load["rps"].as_f64().unwrap_or(0.0),
        load["p50_us"],
        load["p99_us"],
        load["errors"],
        load["runtime_threads"]
    )?;
    writeln!(
        out,
        "## What is measured\n\n\
         - **pybridge**: `Bridge::call_raw(\"test.echo\", params)` through validation (limits; test.echo has \
         no schema), the cache layer (consulted; test.echo is not cacheable), the method's circuit breaker \
         inside the retry policy, and the pool, to the worker SDK's demo worker.\n\
         - **raw baseline** (`benches/src/raw.rs`): the least code that pipelines JSON-RPC to Python over \
         pipes, the limit: per worker one writer task writing frames through a `BufWriter` (flushed when \
         the window is full), one reader task reading answers with `read_until` and parsing them without \
         allocating, and a semaphore for the window; no task, channel or allocation per call; one call at \
         a time, the caller's task writes and reads. On the Python side a loop that answers everything it \
         read with one write.\n\
         - **throughput** (`cargo run --release -p pybridge-benches --example throughput_ab -- --rounds \
         {THROUGHPUT_ROUNDS} --seconds {THROUGHPUT_SECONDS} --threads 2,1`): closed loop with 64 calls in flight per \
         worker; params of the given size (`{{\"data\":\"xx…\"}}`). {THROUGHPUT_ROUNDS} rounds, each \
         running the raw client and the full bridge for the same number of calls ({THROUGHPUT_SECONDS} s \
         of the raw client's rate in a first run; then one unmeasured run of each), in an order that \
         alternates from round to round; each rate is the median over the rounds, each ratio the median \
         of the rounds' ratios with a confidence interval of that median in brackets, of at least 90 % \
         (for 11 rounds the 3rd and the 9th of their ratios: 93.5 %). CPU per call: this process's CPU \
         time (all threads) around each run, divided by its calls, the median over the rounds; the \
         workers' the same way, read from `/proc` (each thread's scheduler account, in nanoseconds), \
         all of a run's workers summed. The goals \
         are issue 21's. Every case runs on a runtime of two threads (as many as this machine's cores) and \
         on one of one thread (what `pybridge bench` itself takes here for two workers: the cores the \
         local workers leave free, one at least), each with its own raw client, bridge and \
         workers, in the same rounds (`--threads 2,1`, in an order that alternates too); the rows without \
         a runtime named are the two threads'.\n\
         - **sequential**: one call at a time. The goal's row: `cargo run --release -p pybridge-benches --example \
         sequential_gap -- --rounds 11 --calls 2000`, the raw client and raw worker and the full bridge and SDK \
         worker (with the set-ups between them, which say where a gap comes from) in interleaved rounds of \
         2,000 calls, the median of the rounds' p50, each call made by a caller blocked on the runtime \
         (`block_on`, as a program's `main` makes it); the next row, the same calls from a task spawned on the \
         runtime (as a server's handlers make them), where no parked thread outside the runtime is woken per \
         answer. The rows by size: criterion's median of per-sample means, raw then bridge.\n\
         - **transports** (`benches/benches/transport.rs`): the pool and the SDK's demo worker over its \
         pipes, over TCP on 127.0.0.1 (`--listen`, with the HMAC challenge at connect time) and over a \
         Unix socket; one worker each, 100 B echo; the ratio is the socket's rate (or latency) to the \
         pipes'.\n\
         - **gateway** (`cargo run --release -p pybridge-benches --example gateway_threads -- --rounds 7 \
         --seconds 2`): `pybridge serve` with two SDK demo workers, started with `--runtime-threads 2` and \
         with `--runtime-threads 1`, each driven in turn by 64 keep-alive connections from the benchmark's \
         own thread on 127.0.0.1, one 100 B `test.echo` request in flight each; seven rounds in an order \
         that alternates; requests per second and the gateway process's own CPU time per request (from \
         /proc, workers excluded), the medians over rounds, and the median of the rounds' ratios.\n\
         - **cache hit**: the same call answered from the memory tier: validation, key hashing, lookup; its \
         baseline is the lookup alone, in the shared-tier benchmark of the same run.\n\
         - **ProcessPoolExecutor**: 2 processes, 64 tasks in flight, `chunksize` 1, the same payload.\n\
         - **worker CPU per message** (`benches/python/sdk_overhead.py`): the process CPU of the SDK's loop \
         and of the baseline's Python loop answering the same requests from a file (64 KiB reads) or a \
         SOCK_SEQPACKET socket (one request per read), writing to /dev/null.\n\
         - **trace export** (`xtask/src/bench/trace_export.rs`): `pybridge bench` (200,000 calls, 2 workers) \
         with export off, then to an OTLP/HTTP sink in the xtask process with every trace sampled and with \
         1 % sampled (`telemetry.sample_ratio`), and with the CLI built with `--no-default-features` \
         (no `otel` feature), and export off once more as a control (its ratio to the first is the method's \
         noise), eleven interleaved rounds, every other one in reverse order; each figure is the median over \
         the rounds, each ratio the median of the rounds' ratios (of two runs of the same round, seconds apart) \
         with the 3rd and the 9th of those eleven ratios in brackets (a 93.5 % confidence interval of the \
         median); its throughput (the goals) and its own CPU per call. \"Nothing measurable\" reads as 1 \
         within that bracket, with the median at least 0.95.\n\
         - **cold start** (`xtask/src/bench/cold_start.rs`): the whole `pybridge call test.echo '{{}}'` \
         process, exec to exit, against `python -c pass` of the same interpreter file (resolved past any \
         shim), interleaved; the demo worker from a copy of the SDK with compiled bytecode (as installed), \
         the framework worker as `pybridge` unpacked it (bytecode included), after one unmeasured run.\n"
    )?;
    Ok(out)
}
