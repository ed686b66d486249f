//! pybridge: call Python from Rust through a supervised pool of worker
//! processes, without embedding an interpreter.
//!
//! This facade composes the layers (see `ARCHITECTURE.md`):
//!
//! ```text
//! caller ─► bridge ─► service ─► cache ─► resilience ─► pool ─► protocol ─► worker
//! ```
//!
//! A call is looked up in the method registry and checked against the
//! limits and its JSON Schema (a bad request never reaches a worker);
//! answered from the two-tier cache when the method's policy allows, with
//! concurrent misses coalesced; admitted by the method's circuit breaker
//! inside each attempt of the retry policy (only idempotent methods, or
//! requests no worker saw, are retried, within the call's deadline and a
//! retry budget); sent to the least-loaded worker; and its result unwrapped
//! and adapted. Every call has a deadline, and every failure is a typed
//! [`Error`] with an [`ErrorKind`] and the JSON-RPC error it maps to.
//!
//! # Entry points
//!
//! - [`Bridge::from_config`] or [`Bridge::builder`] (with a [`WorkerSpec`]
//!   of one's own) start a [`Bridge`]: a cheap, cloneable handle.
//! - [`Bridge::call`], [`call_as`](Bridge::call_as) (typed),
//!   [`call_raw`](Bridge::call_raw) (raw JSON in and out),
//!   [`call_with`](Bridge::call_with) ([`CallOptions`] → [`Reply`]),
//!   [`notify`](Bridge::notify), [`batch`](Bridge::batch),
//!   [`invalidate`](Bridge::invalidate); [`health`](Bridge::health),
//!   [`stats`](Bridge::stats), [`events`](Bridge::events),
//!   [`catalog`](Bridge::catalog) and [`shutdown`](Bridge::shutdown).
//! - `Bridge` is a [`tower::Service`] of [`CallRequest`]s, for tower
//!   middleware (see [`Bridge`]).
//! - [`http::router`] (feature `http`) serves JSON-RPC over HTTP at `/rpc`
//!   as an axum `Router` to mount in one's own application.
//! - [`Config`] holds every setting, loaded by [`Config::load`] from
//!   defaults, a preset, a TOML file, `PYBRIDGE_*` variables and flags,
//!   each value remembering its source.
//!
//! # Features
//!
//! - `cache` (default): the two-tier result cache (`pybridge-cache`).
//! - `validation` (default): JSON Schema validation of params. Without it,
//!   only the limits and declared renames apply.
//! - `framework` (default): the SQLite Extensions Framework
//!   (`pybridge-framework`): its catalog in the method registry, the typed
//!   API ([`Bridge::framework`]) and FixiPlug result shapes. With default
//!   features off (`features = ["cache", "validation"]`), the registry holds
//!   only your catalog files, your workers' manifests and `[methods]`.
//! - `redis`: the cache's shared tier on Redis (`cache.redis_url`).
//! - `http`: [`http::router`], JSON-RPC 2.0 over HTTP on axum.
//! - `otel`: OpenTelemetry. `otel::Telemetry` exports the spans of every
//!   layer over OTLP/HTTP (configured by `[telemetry]` and the standard
//!   `OTEL_*` variables), and each request to a worker carries the W3C trace
//!   context in its `_meta` member, so the worker's spans join the trace.
//!   Heavy to build; off by default.
//! - `test-util`: hooks for tests, such as `Bridge::kill_worker`.
//!
//! # Example
//!
//! ```
//! use pybridge::{Bridge, Config, ErrorKind};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The worker SDK's demo worker, importable from the repository's sources.
//! let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python/pybridge-worker/src");
//! let mut config = Config::default();
//! config.worker.command = vec!["python3".into(), "-m".into(), "pybridge_worker".into()];
//! config.worker.env.insert("PYTHONPATH".into(), sdk.into());
//! config.pool.min_workers = 1;
//! config.cache.enabled = false;
//! let bridge = Bridge::from_config(config).await?;
//!
//! let echoed = bridge.call("test.echo", json!({"hello": "world"})).await?;
//! assert_eq!(echoed, json!({"hello": "world"}));
//!
//! // Params that break the method's schema never reach a worker.
//! let err = bridge.call("test.sleep", json!({"seconds": "soon"})).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::InvalidParams);
//!
//! bridge.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod assemble;
mod bridge;
mod builder;
pub mod config;
mod error;
mod events;
mod health;
#[cfg(feature = "http")]
pub mod http;
mod incidents;
pub mod openrpc;
mod options;
#[cfg(feature = "otel")]
pub mod otel;

pub use bridge::Bridge;
pub use builder::BridgeBuilder;
pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use events::BridgeEvent;
pub use health::{Health, Stats};
pub use options::{BatchCall, CallOptions, CallRequest, Invalidate, Reply, ResultSource};

/// Sizes in [`Config`] (`worker.max_frame`, `cache.memory`, …).
pub use bytesize::ByteSize;
/// A worker of one's own for [`BridgeBuilder::worker`].
pub use pybridge_pool::{EnvPolicy, Handshake, WorkerSpec};
/// The overall status in [`Health`], and what [`Bridge::shutdown`] reports.
pub use pybridge_pool::{HealthStatus, ShutdownReport};
/// How a worker frames its messages, for [`WorkerSpec::framing`].
pub use pybridge_protocol::Framing;
/// JSON-RPC error objects, as [`Error::to_error_object`] builds them.
pub use pybridge_protocol::{ErrorCode, ErrorObject};
/// The method registry as [`Bridge::catalog`] shows it.
pub use pybridge_service::{Catalog, FieldSource, MethodSpec};

/// The worker pool's types that appear in [`Health`], [`BridgeEvent`] and
/// [`Error`]; the pool itself stays behind the bridge.
pub mod pool {
    pub use pybridge_pool::{
        EndpointState, EndpointStats, Error, ExitReason, FailureReason, PoolEvent, PoolStats,
        RecycleReason, TimeoutStage, WorkerFailure, WorkerId, WorkerState, WorkerStats,
    };
}

/// The resilience layer's types that appear in [`Health`], [`BridgeEvent`]
/// and [`Error`].
pub mod resilience {
    pub use pybridge_resilience::{
        Event, Rejected, RetryEvent, RetryStopped, State as BreakerState, StateChange,
    };
}

/// The cache's types that appear in [`Health`] and [`BridgeEvent`].
#[cfg(feature = "cache")]
pub mod cache {
    pub use pybridge_cache::{
        CacheEvent, Corruption, DiskFault, DiskOperation, SharedTierEvent, SharedTierStats,
        SharedTierStatus, SweepReport, platform_cache_dir,
    };
}

/// The method registry's error, the source of [`Error::Rejected`], and the
/// histogram buckets of the call metrics.
pub mod service {
    pub use pybridge_service::{Error, Violation};
    /// The call metrics' names are `pybridge_service_*`; a recorder such as
    /// Prometheus takes these buckets for their latency histograms.
    pub mod telemetry {
        pub use pybridge_service::telemetry::LATENCY_BUCKETS_SECONDS;
    }
}

/// The SQLite Extensions Framework's typed API ([`Bridge::framework`]) and
/// its request and result types.
#[cfg(feature = "framework")]
pub mod framework {
    pub use pybridge_framework::api::*;
    pub use pybridge_framework::{Framework, UNAVAILABLE_FAMILIES, catalog};
}
#[cfg(feature = "framework")]
pub use pybridge_framework::Framework;
