//! The `pybridge` command: `call`, `serve` (an HTTP gateway with `/rpc`,
//! `/health` and `/metrics`), `bench`, `config`, `methods`/`describe` (the
//! method registry, also as OpenRPC), over the bridge, and `conform`, which
//! checks any worker program against docs/protocol.md; `mcp` serves the
//! methods as MCP tools over stdio (and `serve` at `/mcp`).
//!
//! Without a worker command it runs the embedded reference SQLite Extensions
//! Framework worker; after `--`, any program and its arguments become the
//! worker (never run through a shell).

// Reporting errors on stderr is this binary's job; results go through `out`.
#![allow(clippy::print_stderr)]

mod bench;
mod call;
mod conform;
mod describe;
mod embedded;
mod logging;
mod mcp;
mod methods;
mod options;
mod out;
mod runtime;
mod serve;
mod signals;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::options::GlobalArgs;

/// Call Python from Rust and from anything that speaks HTTP, through a
/// supervised pool of worker processes.
#[derive(Debug, Parser)]
#[command(name = "pybridge", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Call one method and print its result as JSON on stdout.
    Call(call::CallArgs),
    /// Serve JSON-RPC 2.0 over HTTP: POST /rpc, GET /health, GET /metrics.
    Serve(serve::ServeArgs),
    /// Drive the bridge with load and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Print the effective configuration with the source of each value.
    Config(options::ConfigArgs),
    /// Check that a worker program speaks the wire protocol (docs/protocol.md).
    Conform(conform::ConformArgs),
    /// List every method: source, description, policy, schemas.
    Methods(methods::MethodsArgs),
    /// Show one method: schemas, policy and example params.
    Describe(describe::DescribeArgs),
    /// Serve the methods as MCP tools over stdio (for AI agents).
    Mcp(mcp::McpArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let work = match cli.command {
        Command::Serve(_) => runtime::Work::Gateway,
        Command::Bench(_) | Command::Mcp(_) | Command::Config(_) => runtime::Work::Pool,
        Command::Call(_) | Command::Methods(_) | Command::Describe(_) | Command::Conform(_) => {
            runtime::Work::OneWorker
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime::threads(&cli.global, work))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pybridge: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Call(args) => call::run(&cli.global, args).await,
            Command::Serve(args) => serve::run(&cli.global, args).await,
            Command::Bench(args) => bench::run(&cli.global, args).await,
            Command::Config(args) => options::print_config(&cli.global, &args),
            Command::Conform(args) => conform::run(&cli.global, args).await,
            Command::Methods(args) => methods::run(&cli.global, args).await,
            Command::Describe(args) => describe::run(&cli.global, args).await,
            Command::Mcp(args) => mcp::run(&cli.global, args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pybridge: {err:#}");
            ExitCode::from(2)
        }
    }
}
