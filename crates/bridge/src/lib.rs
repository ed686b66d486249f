//! pybridge: call Python from Rust through a supervised pool of worker
//! processes, without embedding an interpreter.
//!
//! This facade composes the layers (see `ARCHITECTURE.md`):
//!
//! ```text
//! caller ─► bridge ─► service ─► cache ─► resilience ─► pool ─► protocol ─► worker
//! ```
//!
//! A call is looked up in the method catalog and checked against the limits
//! and its JSON Schema (a bad request never reaches a worker); answered from
//! the two-tier cache when the method's policy allows, with concurrent misses
//! coalesced; admitted by the method's circuit breaker inside each attempt of
//! the retry policy (only idempotent methods, or requests no worker saw, are
//! retried, within the call's deadline and a retry budget); sent to the
//! least-loaded worker; and its result unwrapped and adapted. Every call has
//! a deadline, and every failure is a typed [`Error`] with a stable
//! [`code`](Error::code) and the JSON-RPC error it maps to.
//!
//! [`Config`] holds every setting, loaded from defaults, a preset, a TOML
//! file, `PYBRIDGE_*` variables and flags, each value remembering its source.
//!
//! # Features
//!
//! - `cache` (default): the two-tier result cache (`pybridge-cache`).
//! - `validation` (default): JSON Schema validation of params. Without it,
//!   only the limits and declared renames apply.
//! - `otel`: OpenTelemetry. `otel::Telemetry` exports the spans of every
//!   layer over OTLP/HTTP (configured by `[telemetry]` and the standard
//!   `OTEL_*` variables), and each request to a worker carries the W3C trace
//!   context in its `_meta` member, so the worker's spans join the trace.
//!   Heavy to build; off by default.
//! - `framework` (default): the SQLite Extensions Framework
//!   (`pybridge-framework`): its catalog in the method registry, the typed
//!   API ([`Bridge::framework`]) and FixiPlug result shapes. With default
//!   features off (`features = ["cache", "validation"]`), the registry holds
//!   only your catalog files, your workers' manifests and `[methods]`.
//!
//! # Example
//!
//! ```
//! use pybridge::{Bridge, Config};
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
//! assert_eq!(err.code(), "invalid_params");
//!
//! bridge.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod assemble;
mod bridge;
pub mod config;
mod error;
mod events;
mod health;
mod incidents;
#[cfg(feature = "otel")]
pub mod otel;

pub use bridge::{BatchCall, Bridge, BridgeBuilder, CallOptions, Invalidate, Reply, ResultSource};
pub use config::Config;
pub use error::{Error, Result};
pub use events::BridgeEvent;
pub use health::{Health, Stats};

#[cfg(feature = "cache")]
pub use pybridge_cache as cache;
#[cfg(feature = "framework")]
pub use pybridge_framework::{self as framework, Framework};
pub use pybridge_pool::{self as pool, HealthStatus, ShutdownReport, WorkerSpec};
pub use pybridge_protocol as protocol;
pub use pybridge_resilience as resilience;
pub use pybridge_service as service;
