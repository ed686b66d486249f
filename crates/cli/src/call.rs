//! `pybridge call METHOD [PARAMS]`: one call, the result on stdout.
//!
//! Exit status: 0 with the result on stdout; 1 with the error (code, message,
//! data, in full: this is the caller's own machine) as JSON on stderr, also
//! when no worker can start; 2 for usage errors (flags, params, configuration).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use pybridge::CallOptions;
use serde_json::value::RawValue;

use crate::options::{self, GlobalArgs};

/// `pybridge call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The method: a public name (`pattern_learning.get_recommendations`), an
    /// alias, or any name the worker serves.
    method: String,
    /// The params as JSON (an object or an array); `-` reads them from stdin.
    params: Option<String>,
    /// Pretty-print the result.
    #[arg(long)]
    pretty: bool,
    /// The time the call may take (default: the method's, or `call.timeout`).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Neither read nor write the cache.
    #[arg(long)]
    no_cache: bool,
    /// The worker program and its arguments (default: the embedded framework).
    #[arg(last = true, value_name = "WORKER")]
    worker: Vec<String>,
}

pub(crate) async fn run(global: &GlobalArgs, args: CallArgs) -> Result<ExitCode> {
    let params = match args.params.as_deref() {
        None => None,
        Some("-") => {
            let mut text = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut text)
                .await
                .context("reading params from stdin")?;
            Some(text)
        }
        Some(text) => Some(text.to_string()),
    };
    let params = params
        .map(|text| RawValue::from_string(text).context("PARAMS is not valid JSON"))
        .transpose()?;
    // One call needs one worker, whatever the configuration says, unless asked.
    let mut extra = Vec::new();
    if global.workers.is_none() {
        extra.push(("pool.min_workers", toml::Value::Integer(1), "call"));
        extra.push(("pool.max_workers", toml::Value::Integer(1), "call"));
    }
    let config = options::load(global, &extra, &args.worker)?;
    let telemetry = crate::telemetry::start(&config.telemetry)?;
    crate::logging::init(&config.log, &telemetry);
    let code = call(config, &args, params.as_deref()).await;
    crate::telemetry::shutdown(telemetry).await;
    code
}

async fn call(
    config: pybridge::Config,
    args: &CallArgs,
    params: Option<&RawValue>,
) -> Result<ExitCode> {
    let bridge = match pybridge::Bridge::from_config(config).await {
        Ok(bridge) => bridge,
        // A worker that cannot start is a failed call, not a usage error;
        // a program that does not exist is a mistake on the command line.
        Err(err)
            if matches!(&err, pybridge::Error::Start(source)
                if !matches!(source, pybridge::pool::Error::ProgramNotFound { .. })) =>
        {
            return report(&err);
        }
        Err(err) => return Err(anyhow::anyhow!(err.report()).context("starting the bridge")),
    };
    let mut call_options = CallOptions::new();
    if let Some(timeout) = args.timeout {
        call_options = call_options.timeout(timeout);
    }
    if args.no_cache {
        call_options = call_options.no_cache();
    }
    let outcome = bridge.call_with(&args.method, params, &call_options).await;
    // The answer is printed as soon as it is known: whoever reads it need
    // not wait for the workers to exit. The shutdown still runs to its end
    // (stdin closed, then SIGTERM and SIGKILL of the group if need be)
    // before the process exits, so no worker outlives it.
    let code = answer(outcome, args);
    bridge.shutdown().await;
    code
}

/// Prints the result on stdout, or the error on stderr.
fn answer(outcome: Result<pybridge::Reply, pybridge::Error>, args: &CallArgs) -> Result<ExitCode> {
    match outcome {
        Ok(reply) => {
            if args.pretty {
                let value: serde_json::Value = serde_json::from_str(reply.result.get())?;
                crate::out::print(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
            } else {
                crate::out::print(&format!("{}\n", reply.result.get()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            // A human line first (the JSON error stays the last line): an
            // unknown method says which names are close.
            if err.kind() == pybridge::ErrorKind::MethodNotFound {
                eprintln!("pybridge: {}", err.report());
            }
            report(&err)
        }
    }
}

/// Prints the whole error object on stderr; exit status 1.
fn report(err: &pybridge::Error) -> Result<ExitCode> {
    let object = err.to_error_object();
    eprintln!("{}", serde_json::to_string(&object)?);
    Ok(ExitCode::from(1))
}
