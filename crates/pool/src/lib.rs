//! The pybridge worker pool: Python (or any) worker processes speaking
//! JSON-RPC 2.0 over their stdin and stdout.
//!
//! It sits on `pybridge-protocol` in the layers (see `ARCHITECTURE.md`) and
//! knows nothing of retries, caches or schemas: it runs workers and carries
//! calls to them, and it never loses one. Every call ends with an answer or a
//! typed [`Error`] by its deadline, whatever the worker does.
//!
//! - **Pipelined and multiplexed**: up to `max_in_flight` (64) calls per worker
//!   at once, or fewer if the worker's `$/ready` handshake advertises a lower
//!   `max_concurrency`, correlated by id. A writer task batches queued frames into one
//!   system call; a reader task routes answers through the protocol's pending
//!   table.
//! - **Least-loaded routing** with a bounded FIFO queue when every worker is at
//!   its cap ([`Error::QueueFull`] past it). A call whose deadline passes in
//!   the queue fails there and is never sent.
//! - **Handshake checks**: a worker announcing another protocol major than
//!   [`pybridge_protocol::PROTOCOL_VERSION`]'s, or a manifest other than the
//!   pool's ([`Pool::manifest`]), fails to start.
//! - **Deadlines and departures**: a call whose deadline passes, or whose
//!   caller drops it, sends `$/cancelRequest` and keeps its slot until the
//!   late answer; a worker that still holds it after a grace period is killed
//!   as hung.
//! - **Failure isolation**: a worker that dies fails every call it held at once
//!   with [`Error::WorkerFailed`] (its exit status and last stderr lines), and
//!   says which calls it never received, so they are safe to resend.
//! - **Supervision**: immediate replacement of workers that die after serving;
//!   exponential backoff and a crash-loop guard for workers that fail to start;
//!   pings of idle workers; recycling by request count, age or memory (the
//!   replacement is ready before the old worker drains); growth under
//!   sustained queueing and shrinking when idle.
//! - **Remote workers**: workers listening on TCP or Unix sockets
//!   ([`PoolConfigBuilder::connect`]) are dialled, authenticated with an
//!   HMAC-SHA256 challenge on a shared [`Secret`], and then served like local
//!   ones; a lost connection fails its calls as [`Error::WorkerFailed`] and
//!   the endpoint is dialled again with jittered exponential backoff.
//! - **No orphans**: each worker leads its own process group. Shutdown closes
//!   stdin, then sends SIGTERM and SIGKILL to the group; dropping the pool kills
//!   every group; and workers exit on stdin EOF if the host dies.
//!
//! Metrics go through the `metrics` facade ([`metrics`] names them), logs
//! through `tracing`, and typed [`PoolEvent`]s to [`Pool::subscribe`]rs.
//!
//! # Example
//!
//! A worker can be anything that speaks the wire contract; here, ten lines of
//! Python:
//!
//! ```
//! use pybridge_pool::{Pool, PoolConfig, WorkerSpec};
//!
//! const ECHO: &str = r#"
//! import json, sys
//! print("READY", flush=True)
//! for line in sys.stdin:
//!     req = json.loads(line)
//!     if "id" in req:
//!         print(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": req.get("params")}), flush=True)
//! "#;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = WorkerSpec::new("python3").args(["-c", ECHO]);
//! let pool = Pool::start(PoolConfig::builder(spec).workers(2).build()?).await?;
//!
//! let params = serde_json::value::RawValue::from_string(r#"{"hello":"world"}"#.into())?;
//! let result = pool.call("test.echo", Some(&params)).await?;
//! assert_eq!(result.get(), r#"{"hello": "world"}"#);
//!
//! pool.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod admission;
mod auth;
mod config;
mod endpoint;
mod error;
mod events;
mod handshake;
pub mod metrics;
mod pipe;
mod pool;
mod process;
mod remote;
mod shared;
mod stats;
mod supervisor;
mod worker;

#[cfg(test)]
mod tests;

pub use auth::ConnectError;
pub use config::{
    EnvPolicy, Handshake, HealthPolicy, PoolConfig, PoolConfigBuilder, RecyclePolicy,
    RestartPolicy, ScalePolicy, ShutdownPolicy, WorkerSpec,
};
pub use endpoint::{Endpoint, RemotePolicy, Secret};
pub use error::{ConfigError, Error, FailureReason, Result, TimeoutStage, WorkerFailure};
pub use events::{ExitReason, PoolEvent, RecycleReason};
pub use pool::{Answer, CallTime, Pool, RequestId};
pub use remote::{Connection, connect};
pub use shared::ShutdownReport;
pub use stats::{EndpointState, EndpointStats, HealthStatus, PoolStats, WorkerState, WorkerStats};
pub use worker::WorkerId;
