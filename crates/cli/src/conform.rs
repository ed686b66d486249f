//! `pybridge conform [--json] -- WORKER...` (or `--connect URL`): wire-level
//! conformance checks of any worker program, or of a worker listening on a
//! socket, against docs/protocol.md.
//!
//! The checks spawn the worker themselves (in its own process group, killed
//! at the end of each check) and speak NDJSON on its stdin and stdout, with
//! no pool in between, so each check sees exactly what the worker sends.
//!
//! Exit status: 0 when every check passes (n/a counts as a pass), 1 when one
//! fails, 2 on a usage error.

mod checks;
mod manifest;
mod session;
#[cfg(test)]
mod tests;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

use self::checks::{HandshakeMode, Plan, Report, Status};
use self::session::Remote;

/// `pybridge conform`.
#[derive(Debug, Args)]
pub(crate) struct ConformArgs {
    /// Print the report as a JSON array of `{check, status, seen}` objects.
    #[arg(long)]
    json: bool,
    /// How long each check waits for an answer or an exit.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", default_value = "5s")]
    timeout: Duration,
    /// How long the worker may take to become ready.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", default_value = "10s")]
    startup_timeout: Duration,
    /// How readiness is detected: the worker announces it (`READY` or
    /// `$/ready`), answers `$/ping`, or is trusted at once.
    #[arg(long, value_enum, default_value = "announce")]
    handshake: HandshakeMode,
    /// A slow method that honours `$/cancelRequest`, for the cancellation
    /// check and the stdin EOF check (without it, cancellation is n/a).
    #[arg(long, value_name = "METHOD")]
    slow_method: Option<String>,
    /// The params of the slow method: JSON, an object or an array; the call
    /// must run longer than --timeout.
    #[arg(
        long,
        value_name = "JSON",
        requires = "slow_method",
        default_value = "{}"
    )]
    slow_params: String,
    /// The shared secret for `--connect URL` (default:
    /// $PYBRIDGE_WORKER_SECRET). With `--connect`, the worker listening at
    /// URL is checked instead of a spawned one; it must serve one connection
    /// after another (no `--once`). "stdin closed" is then the connection's
    /// write side closing, and "exited" the worker closing the connection.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<std::path::PathBuf>,
    /// The worker program and its arguments.
    #[arg(last = true, value_name = "WORKER")]
    worker: Vec<String>,
}

pub(crate) async fn run(
    global: &crate::options::GlobalArgs,
    args: ConformArgs,
) -> Result<ExitCode> {
    let slow = match args.slow_method {
        Some(method) => {
            let params: Value = serde_json::from_str(&args.slow_params)
                .context("--slow-params is not valid JSON")?;
            if !(params.is_object() || params.is_array()) {
                anyhow::bail!("--slow-params must be a JSON object or array");
            }
            Some((method, params))
        }
        None => None,
    };
    let remote = match global.connect.as_slice() {
        [] => None,
        [_, _, ..] => anyhow::bail!("conform checks one worker: give --connect once"),
        [url] => {
            if !args.worker.is_empty() {
                anyhow::bail!("give either --connect URL or a worker command, not both");
            }
            let endpoint = pybridge_pool::Endpoint::parse(url)?;
            let secret = match &args.secret_file {
                Some(path) => Some(pybridge_pool::Secret::from_file(path)?),
                None => match std::env::var("PYBRIDGE_WORKER_SECRET") {
                    Ok(value) if !value.is_empty() => Some(pybridge_pool::Secret::new(value)?),
                    _ => None,
                },
            };
            Some(Remote {
                endpoint,
                secret,
                policy: pybridge_pool::RemotePolicy::default(),
            })
        }
    };
    if remote.is_none() && args.worker.is_empty() {
        anyhow::bail!("give a worker command after `--`, or --connect URL");
    }
    let plan = Plan {
        remote,
        command: args.worker,
        startup_timeout: args.startup_timeout,
        timeout: args.timeout,
        handshake: args.handshake,
        slow,
    };
    let reports = checks::run(&plan).await;
    let text = if args.json {
        let array: Vec<Value> = reports
            .iter()
            .map(|r| serde_json::json!({"check": r.check, "status": r.status.label(), "seen": r.seen}))
            .collect();
        format!("{}\n", serde_json::to_string_pretty(&array)?)
    } else {
        table(&reports)
    };
    crate::out::print(&text)?;
    let failed = reports.iter().any(|r| r.status == Status::Fail);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The report as a plain-text table, one check per line.
fn table(reports: &[Report]) -> String {
    let width = reports
        .iter()
        .map(|r| r.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut text = format!("{:<width$}  {:<6}  seen\n", "check", "result");
    for report in reports {
        text.push_str(&format!(
            "{:<width$}  {:<6}  {}\n",
            report.check,
            report.status.label(),
            report.seen
        ));
    }
    let failed = reports.iter().filter(|r| r.status == Status::Fail).count();
    if failed == 0 {
        text.push_str(&format!(
            "\nall {} checks passed (n/a counts as passed)\n",
            reports.len()
        ));
    } else {
        text.push_str(&format!("\n{failed} of {} checks failed\n", reports.len()));
    }
    text
}
