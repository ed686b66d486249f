//! What one `pybridge call` costs an agent or a script that runs it once per
//! question: the whole process, from exec to exit, for `pybridge call
//! test.echo '{}'` with the SDK's demo worker and with the embedded framework
//! worker, interleaved with a bare `python -c pass` of the same interpreter.
//!
//! The interpreter is resolved once (`sys.executable`), and every variant
//! runs that file: a version manager's shim in front of `python3` would
//! otherwise add its own start to one side only. The demo worker runs from
//! a copy of the SDK with its bytecode compiled, as `pip install` leaves it;
//! the framework worker from the directory `pybridge` unpacks it into (a run
//! before the measured ones unpacks it and creates its database), so every
//! variant starts as it would on a user's machine the second time. That run
//! also makes the disk cache's directory and its sweep (on close, as nobody
//! swept it yet); the measured runs, within the sweep interval, skip the
//! sweep as any call after the first one would.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Row;

/// Interleaved rounds; each figure is the median over them.
const ROUNDS: usize = 21;

/// The goals of issue 21, as ratios to the bare interpreter's start.
const DEMO_GOAL: f64 = 1.3;
const FRAMEWORK_GOAL: f64 = 2.0;

/// One measured command line.
struct Variant {
    label: &'static str,
    command: Command,
}

/// The rows: each worker's whole-process call against the bare start, in
/// wall time (the goal: the median of the rounds' ratios) and in CPU time
/// of the process tree.
pub(super) fn rows(target: &Path, cli: &Path, root: &Path, python: &str) -> Result<Vec<Row>> {
    let interpreter = resolve(python)?;
    let scratch = Scratch::new(target)?;
    let sdk = scratch.path.join("sdk");
    copy_dir(
        &root.join("python/pybridge-worker/src/pybridge_worker"),
        &sdk.join("pybridge_worker"),
    )?;
    let compiled = Command::new(&interpreter)
        .args(["-m", "compileall", "-q"])
        .arg(&sdk)
        .stdout(Stdio::null())
        .status()
        .context("compiling the SDK copy")?;
    if !compiled.success() {
        bail!("compileall failed on {}", sdk.display());
    }
    let call = |worker: &[&str]| {
        let mut command = Command::new(cli);
        command
            // The embedded framework worker runs on the same interpreter
            // file as the bare start it is compared with.
            .arg("--python")
            .arg(&interpreter)
            .args(["call", "test.echo", "{}"])
            .env("XDG_CACHE_HOME", scratch.path.join("cache"))
            .env("PYBRIDGE_DATA_DIR", scratch.path.join("data"))
            .env_remove("PYBRIDGE_LOG")
            .env_remove("RUST_LOG");
        if !worker.is_empty() {
            command.arg("--").arg(&interpreter).args(worker);
            command.env("PYTHONPATH", &sdk);
        }
        command
    };
    let mut bare = Command::new(&interpreter);
    bare.args(["-c", "pass"]);
    let mut variants = [
        Variant {
            label: "bare",
            command: bare,
        },
        Variant {
            label: "demo",
            command: call(&["-m", "pybridge_worker"]),
        },
        Variant {
            label: "framework",
            command: call(&[]),
        },
    ];
    // The first runs unpack the framework, create its database and warm the
    // page cache; they are not measured.
    for variant in &mut variants {
        run(variant)?;
    }
    let mut wall: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    for _ in 0..ROUNDS {
        for (i, variant) in variants.iter_mut().enumerate() {
            let (w, c) = run(variant)?;
            wall[i].push(w);
            cpu[i].push(c);
        }
    }
    let ratio_to_bare = |times: &[Vec<Duration>], i: usize| {
        median(
            times[i]
                .iter()
                .zip(&times[0])
                .map(|(ours, bare)| ours.as_secs_f64() / bare.as_secs_f64().max(1e-9))
                .collect(),
        )
    };
    let ms = |times: &[Duration]| median(times.iter().map(|d| d.as_secs_f64() * 1e3).collect());
    let mut rows = Vec::new();
    for (i, worker, goal) in [
        (1, "the SDK's demo worker", DEMO_GOAL),
        (2, "the embedded framework worker", FRAMEWORK_GOAL),
    ] {
        let ratio = ratio_to_bare(&wall, i);
        rows.push(Row {
            figure: format!(
                "cold start, `pybridge call test.echo '{{}}'` with {worker}, whole process (median of {ROUNDS} interleaved rounds); baseline: `python -c pass`"
            ),
            pybridge: format!("{:.1} ms", ms(&wall[i])),
            baseline: format!("{:.1} ms", ms(&wall[0])),
            ratio: format!("{ratio:.2}×"),
            goal: format!("≤ {goal}×"),
            met: Some(ratio <= goal),
        });
        // The kernel counts children's CPU in 10 ms ticks: the mean over
        // all rounds resolves what one round's figure cannot.
        let mean = |times: &[Duration]| {
            times.iter().sum::<Duration>().as_secs_f64() * 1e3 / times.len().max(1) as f64
        };
        rows.push(Row {
            figure: format!(
                "cold start CPU (user + system, process tree, mean of the rounds), the same call with {worker}"
            ),
            pybridge: format!("{:.1} ms", mean(&cpu[i])),
            baseline: format!("{:.1} ms", mean(&cpu[0])),
            ratio: format!("{:.2}×", mean(&cpu[i]) / mean(&cpu[0]).max(1e-9)),
            goal: String::new(),
            met: None,
        });
    }
    Ok(rows)
}

/// The interpreter's own file, behind any shim.
fn resolve(python: &str) -> Result<PathBuf> {
    let out = Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .with_context(|| format!("running {python}"))?;
    let path = String::from_utf8(out.stdout)?.trim().to_owned();
    if !out.status.success() || path.is_empty() {
        bail!("{python} does not say where its interpreter is");
    }
    Ok(PathBuf::from(path))
}

/// Runs one variant to its end: wall time, and CPU time of the process and
/// every descendant it waited for.
fn run(variant: &mut Variant) -> Result<(Duration, Duration)> {
    let before = children_cpu()?;
    let started = Instant::now();
    let out = variant
        .command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running the {} variant", variant.label))?;
    let wall = started.elapsed();
    if !out.status.success() {
        bail!(
            "the {} variant failed: {}",
            variant.label,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((wall, children_cpu()?.saturating_sub(before)))
}

/// User and system time of this process's waited-for children
/// (`cutime + cstime` in /proc/self/stat), in clock ticks of 10 ms: summed
/// over rounds, a median of a few tens of milliseconds is still resolved.
fn children_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .context("an unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of stat(5), 14 and 15 here.
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .context("a short /proc/self/stat")?
            .parse()
            .context("a tick count")
    };
    Ok(Duration::from_millis((ticks(13)? + ticks(14)?) * 10))
}

/// The middle value (the upper one of an even count); NaN when empty.
pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &target)?;
            }
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A directory under the target directory for one measurement, removed
/// afterwards.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(target: &Path) -> Result<Scratch> {
        let path = target
            .join("tmp")
            .join(format!("cold-start-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
