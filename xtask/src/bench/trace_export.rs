//! What trace export costs a caller: `pybridge bench` with export off, on
//! with every trace sampled, and on with 1 % sampled, interleaved in one
//! session against an OTLP/HTTP sink in this process (so exports succeed and
//! cost what they would against a collector on the same host); and what the
//! `otel` feature costs when no endpoint is set, against a binary built
//! without it. Export off is run twice per round: the control row shows
//! what the method reads when nothing differs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::cold_start::median;
use super::{DEMO_WORKER, Row};

/// Calls per `pybridge bench` run, and rounds of the five modes. Runs of
/// 200,000 calls: the batch processor exports every 512 spans, and the
/// spans still queued when a run ends are flushed after its CPU is read,
/// so a short run at 1 % would leave most of its export uncounted; and a
/// shared machine's noise needs the rounds.
const REQUESTS: &str = "200000";
const ROUNDS: usize = 11;

/// The goals, on throughput; the CPU rows beside them show what the
/// caller's process pays per call.
#[derive(Debug, Clone, Copy)]
enum Goal {
    /// At most 5 % lost at 1 % sampling: the median ratio at least this.
    AtLeast(f64),
    /// "Nothing measurable" with the feature compiled in and unused: no
    /// difference detected, that is 1 within the bracket of the rounds'
    /// ratios (of 11 rounds, the 3rd to the 9th: a 93.5 % confidence
    /// interval of their median, free of any assumption on the noise's
    /// distribution); and, so that a large cost cannot hide in a noisy
    /// run's wide bracket, the median at least this.
    NoDifference(f64),
}

impl Goal {
    fn text(self) -> String {
        match self {
            Goal::AtLeast(floor) => format!("≥ {floor}"),
            Goal::NoDifference(floor) => format!("1 within the bracket, and ≥ {floor}"),
        }
    }

    fn met(self, ratio: f64, (low, high): (f64, f64)) -> bool {
        match self {
            Goal::AtLeast(floor) => ratio >= floor,
            Goal::NoDifference(floor) => low <= 1.0 && 1.0 <= high && ratio >= floor,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// The feature compiled in, no endpoint.
    Off,
    Sampled(f64),
    /// The binary built without the feature.
    CompiledOut,
}

/// The two builds of the CLI: the default one (with `otel`) and one built
/// with `--no-default-features`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clis<'a> {
    pub(super) with_otel: &'a Path,
    pub(super) without_otel: &'a Path,
}

/// The rows: export on at 100 % and at 1 % sampling, each against export
/// off; and export off against the feature compiled out.
pub(super) fn rows(root: &Path, clis: Clis<'_>, python: &str) -> Result<Vec<Row>> {
    let endpoint = sink()?;
    let python_path = crate::python_path(root)?;
    // Export off twice: the second is the control, whose ratio to the
    // first is what the method reads when nothing differs.
    let modes = [
        Mode::Off,
        Mode::Sampled(1.0),
        Mode::Sampled(0.01),
        Mode::CompiledOut,
        Mode::Off,
    ];
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); modes.len()];
    // Interleaved, so that a change in the machine's load hits every mode;
    // every other round in reverse order, so that no mode always runs
    // right after another (a run's position in its round moved its CPU by
    // about 1.5 % in an experiment of the same binary against itself).
    for round in 0..ROUNDS {
        let mut order: Vec<usize> = (0..modes.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let mode = modes[i];
            let cli = match mode {
                Mode::CompiledOut => clis.without_otel,
                _ => clis.with_otel,
            };
            runs[i].push(bench(cli, python, &python_path, &endpoint, mode)?);
        }
    }
    let over_rounds =
        |i: usize, figure: fn(&Run) -> f64| median(runs[i].iter().map(figure).collect());
    let rps = |i: usize| over_rounds(i, |r| r.rps);
    let cpu = |i: usize| over_rounds(i, |r| r.cpu_per_call_us);
    // The ratio is the median of each round's ratio, of two runs of the
    // same round, seconds apart: the load of a shared machine drifts over a
    // session by more than the costs measured here, and within a round far
    // less.
    let ratios = |a: usize, b: usize, figure: fn(&Run) -> f64| -> Vec<f64> {
        runs[a]
            .iter()
            .zip(&runs[b])
            .map(|(a, b)| figure(a) / figure(b))
            .collect()
    };
    let paired = |a: usize, b: usize, figure: fn(&Run) -> f64| median(ratios(a, b, figure));
    // The median with the 3rd and 9th of the rounds' ratios beside it (see
    // `Goal::NoDifference`): how far apart two runs of one round fall on
    // this machine.
    let shown = |a: usize, b: usize, figure: fn(&Run) -> f64| {
        let (low, high) = quartiles(ratios(a, b, figure));
        format!("{:.2} ({low:.2}–{high:.2})", paired(a, b, figure))
    };
    let setup = "pybridge bench, 100 B, 2 workers, 64 in flight";
    let mut rows = Vec::new();
    // (mode index, what it is, its baseline's index and name, goal on throughput)
    let pairs = [
        (
            1,
            "OTLP trace export on, every trace sampled",
            0,
            "export off",
            None,
        ),
        (
            2,
            "OTLP trace export on, 1 % of traces sampled",
            0,
            "export off",
            Some(Goal::AtLeast(0.95)),
        ),
        (
            0,
            "the `otel` feature compiled in, no endpoint set",
            3,
            "the CLI built with `--no-default-features`",
            Some(Goal::NoDifference(0.95)),
        ),
        (
            4,
            "export off (the control: the same binary and settings)",
            0,
            "export off",
            None,
        ),
    ];
    for (a, what, b, baseline, goal) in pairs {
        let ratio = paired(a, b, |r| r.rps);
        let bracket = quartiles(ratios(a, b, |r| r.rps));
        rows.push(Row {
            figure: format!("throughput with {what} ({setup}; baseline: {baseline})"),
            pybridge: format!("{:.0} calls/s", rps(a)),
            baseline: format!("{:.0} calls/s", rps(b)),
            ratio: shown(a, b, |r| r.rps),
            goal: goal.map_or_else(String::new, Goal::text),
            met: goal.map(|g| g.met(ratio, bracket)),
        });
        rows.push(Row {
            figure: format!(
                "bridge process CPU per call with {what} ({setup}; baseline: {baseline})"
            ),
            pybridge: format!("{:.2} µs", cpu(a)),
            baseline: format!("{:.2} µs", cpu(b)),
            ratio: shown(a, b, |r| r.cpu_per_call_us),
            goal: String::new(),
            met: None,
        });
    }
    Ok(rows)
}

/// The first and third quartiles, each at the rank outside the middle half
/// when it falls between two (of 11 values, the 3rd and the 9th).
fn quartiles(mut values: Vec<f64>) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let last = values.len().saturating_sub(1);
    let at = |rank: usize| values.get(rank).copied().unwrap_or(f64::NAN);
    (at(last / 4), at((last * 3).div_ceil(4)))
}

/// What one `pybridge bench` run reported.
#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    /// The bench process's CPU (all threads) per call: what tracing costs
    /// the caller, and steadier than throughput on a loaded machine.
    cpu_per_call_us: f64,
}

/// One `pybridge bench` run.
fn bench(
    cli: &Path,
    python: &str,
    python_path: &std::ffi::OsStr,
    endpoint: &str,
    mode: Mode,
) -> Result<Run> {
    let mut cmd = Command::new(cli);
    cmd.args(["--workers", "2"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("OTEL_") || key.starts_with("PYBRIDGE_TELEMETRY") {
            cmd.env_remove(key);
        }
    }
    if let Mode::Sampled(ratio) = mode {
        cmd.args(["--otlp-endpoint", endpoint])
            .env("PYBRIDGE_TELEMETRY__SAMPLE_RATIO", ratio.to_string());
    }
    let out = cmd
        .args([
            "bench",
            "--requests",
            REQUESTS,
            "--concurrency",
            "64",
            "--json",
            "--",
        ])
        .arg(python)
        .args(DEMO_WORKER)
        .env("PYTHONPATH", python_path)
        .output()
        .context("running pybridge bench")?;
    if !out.status.success() {
        bail!(
            "pybridge bench ({mode:?}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let figure = |name: &str| {
        report[name]
            .as_f64()
            .with_context(|| format!("pybridge bench printed no {name}"))
    };
    Ok(Run {
        rps: figure("rps")?,
        cpu_per_call_us: figure("cpu_per_call_us")?,
    })
}

/// An OTLP/HTTP sink: answers every request 200 after reading its body.
/// Its threads live as long as this process, which ends with the bench.
fn sink() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the OTLP sink")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = answer(stream);
            });
        }
    });
    Ok(format!("http://{addr}"))
}

fn answer(stream: TcpStream) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
    }
}

/// `cargo xtask bench --trace-export`: only these rows, printed.
pub(super) fn print(root: &Path, clis: Clis<'_>, python: &str) -> Result<()> {
    println!("| figure | pybridge | baseline | ratio | goal | met |");
    println!("|---|---|---|---|---|---|");
    for r in rows(root, clis, python)? {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.figure, r.pybridge, r.baseline, r.ratio, r.goal, met
        );
    }
    Ok(())
}
