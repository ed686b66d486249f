//! `pybridge mcp [-- WORKER...]`: the method registry as an MCP server over
//! stdio, and the same server as streamable HTTP at `/mcp` in `pybridge serve`.
//!
//! Every available method of the registry is a tool (`tools.rs`: names,
//! schemas, annotations, the `[mcp]` allow and deny lists); a call goes
//! through the whole bridge (validation, cache, breaker, retry, pool), and a
//! client's cancellation drops the call, which the pool turns into
//! `$/cancelRequest` (`server.rs`). The framework's four families are also
//! prompts, and the catalog a resource (`prompts.rs`). A method's `$/log`
//! lines reach a client that asked for log messages (`logs.rs`).
//!
//! Over stdio, stdout carries only MCP messages and logs go to stderr; stdin
//! EOF (or SIGINT/SIGTERM) ends the server, and the workers are drained within
//! a second or two, because MCP clients kill a server 2 s after closing its
//! stdin.

mod logs;
mod prompts;
mod server;
mod tools;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::options::{self, GlobalArgs};

pub(crate) use logs::layer as log_layer;
pub(crate) use server::Server;

/// The longest the workers may take to finish after the client leaves.
const MAX_DRAIN: Duration = Duration::from_secs(1);
/// The longest each stop step (stdin closed, SIGTERM) waits for a worker.
const MAX_EXIT_GRACE: Duration = Duration::from_millis(400);

/// `pybridge mcp`.
#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// The worker program and its arguments (default: the embedded framework).
    #[arg(last = true, value_name = "WORKER")]
    worker: Vec<String>,
}

pub(crate) async fn run(global: &GlobalArgs, args: McpArgs) -> Result<ExitCode> {
    let mut config = options::load(global, &[], &args.worker)?;
    let telemetry = crate::telemetry::start(&config.telemetry)?;
    crate::logging::init_with(&config.log, &telemetry, Some(Box::new(logs::layer())));
    // The client kills the server 2 s after closing its stdin: stopping must
    // fit in that, whatever the configuration says for a long-lived gateway.
    config.pool.drain_timeout = config.pool.drain_timeout.min(MAX_DRAIN);
    config.pool.exit_grace = config.pool.exit_grace.min(MAX_EXIT_GRACE);
    let bridge = options::start(config.clone()).await?;
    // Finite CPU work, done long before the process stops; held to the end.
    let _schemas = options::compile_schemas_ahead(&bridge);
    let closing = CancellationToken::new();
    let server = Server::new(bridge.clone(), &config, closing.clone());
    tracing::info!(tools = server.tool_count(), "serving MCP on stdio");
    let outcome = tokio::select! {
        started = server.serve(rmcp::transport::io::stdio_pipes()) => match started {
            Ok(running) => {
                tokio::select! {
                    quit = running.waiting() => {
                        tracing::info!(?quit, "MCP client gone");
                    }
                    () = crate::signals::shutdown_signal() => {}
                }
                Ok(())
            }
            // A client that leaves before initializing is not a failure of ours.
            Err(err) => {
                tracing::info!(error = %err, "MCP client left before the session started");
                Ok(())
            }
        },
        () = crate::signals::shutdown_signal() => Ok(()),
    };
    // Calls still running are dropped, so their workers get `$/cancelRequest`.
    closing.cancel();
    let report = bridge.shutdown().await;
    tracing::info!(drained = report.drained, "shut down");
    crate::telemetry::shutdown(telemetry).await;
    outcome.map(|()| ExitCode::SUCCESS)
}

/// What `/mcp` needs from the gateway.
#[derive(Debug, Clone)]
pub(crate) struct HttpOptions {
    /// The largest request body, as the gateway's own limit.
    pub(crate) body_limit: usize,
    /// Cancelled when the gateway stops: sessions and calls end.
    pub(crate) closing: CancellationToken,
}

/// The streamable HTTP service for `/mcp`. Host, origin and token are
/// checked by the gateway's guard before a request gets here, so the SDK's
/// own host and origin lists are turned off (they would refuse the names
/// `gateway.allowed_hosts` lets through).
pub(crate) fn http_service(
    bridge: pybridge::Bridge,
    config: &pybridge::Config,
    options: HttpOptions,
) -> StreamableHttpService<Server, LocalSessionManager> {
    let server = Server::new(bridge, config, options.closing.clone());
    // One handler per session: each keeps its own `logging/setLevel`.
    let http = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(options.body_limit)
        .with_cancellation_token(options.closing);
    StreamableHttpService::new(
        move || Ok(server.session()),
        LocalSessionManager::default().into(),
        http,
    )
}
