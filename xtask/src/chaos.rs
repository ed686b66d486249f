//! `cargo xtask chaos`: the bridge's chaos tests (`crates/bridge/tests/it/chaos.rs`)
//! in release mode at full length, or with `--soak`, the soak for minutes.
//!
//! The test suite runs the same tests briefly; here only their length
//! changes, through the environment variables they read.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::{cargo, run};

/// Seconds each chaos scenario runs (issue 9).
const SCENARIO_SECS: u64 = 30;
/// Minutes the soak runs unless `--minutes` says otherwise (issue 9).
const SOAK_MINUTES: u64 = 10;

const USAGE: &str = "usage: cargo xtask chaos [--soak [--minutes M]]";

/// Runs the chaos scenarios for 30 s each, or the soak for `--minutes`.
pub(crate) fn chaos(root: &Path, args: &[String]) -> Result<()> {
    let mut soak = false;
    let mut minutes = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--soak" => soak = true,
            "--minutes" => {
                let value = args.next().context("--minutes needs a number")?;
                let value: u64 = value
                    .parse()
                    .with_context(|| format!("--minutes must be a whole number, not {value:?}"))?;
                if value == 0 {
                    bail!("--minutes must be at least 1");
                }
                minutes = Some(value);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if minutes.is_some() && !soak {
        bail!("--minutes applies to --soak only\n{USAGE}");
    }
    let mut cmd = cargo(root);
    cmd.args(["test", "--release", "-p", "pybridge", "--test", "it"]);
    if soak {
        let secs = minutes.unwrap_or(SOAK_MINUTES) * 60;
        cmd.arg("chaos::soak")
            .env("PYBRIDGE_SOAK_SECS", secs.to_string());
    } else {
        cmd.arg("chaos::")
            .env("PYBRIDGE_CHAOS_SECS", SCENARIO_SECS.to_string());
    }
    // The tests measure recovery times and the process's own memory: one at a time.
    cmd.args(["--", "--nocapture", "--test-threads=1"]);
    run(&mut cmd)
}
