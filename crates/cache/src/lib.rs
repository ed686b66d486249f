//! The pybridge result cache: moka in memory (L1), cacache on disk (L2) and,
//! optionally, Redis shared between processes, with canonical keys and
//! single-flight loading.
//!
//! # Place in the layers
//!
//! `caller → bridge → service → `**`cache`**` → resilience → pool → protocol`.
//! The service asks the cache for a method's result before a call reaches the
//! resilience layer and a worker. The cache knows nothing of JSON-RPC: a key
//! is a hash of a method name and canonical JSON params, a value is
//! [`bytes::Bytes`], and a loader is any future that produces bytes (or JSON,
//! [`Load::Json`]) or an error.
//!
//! # What it does
//!
//! - **Keys** ([`CacheKey`]): blake3 of the method and the canonical params,
//!   keyed by the namespace (the catalog version; hashed once, when the cache
//!   is built): object keys sorted at every depth,
//!   numbers by exact decimal value (`1`, `1.0` and `1e0` agree), whitespace
//!   and escapes normalised. Building a key from 100 bytes of params takes a
//!   few hundred nanoseconds and does not allocate beyond the method name.
//! - **Read path** ([`Cache::get_or_load`]): memory, then disk (a disk hit is
//!   promoted to memory with the rest of its disk TTL), then the loader. The
//!   answer says which tier gave it ([`Source`]). A caller that has just read
//!   the clock passes its reading to [`Cache::get_or_load_at`], which judges
//!   the memory entry's expiry by it instead of reading the clock again.
//! - **Single-flight**: concurrent misses of one key run the loader once; every
//!   caller gets its value or its error (one shared `Arc<E>`). Errors are never
//!   stored; a loader may return a [`Load::Negative`] result, which is stored
//!   only if the policy sets a negative TTL.
//! - **Deadlines**: every read has the caller's deadline and ends by it
//!   ([`LoadError::DeadlineExceeded`]). A caller that waits on another's load
//!   stops waiting at its own deadline; a leader whose deadline passes (or
//!   whose future is dropped) hands the load to a waiter that still has time
//!   instead of passing its timeout on.
//! - **Policy** per method ([`CachePolicy`]): enabled, TTL per tier, tiers
//!   used, maximum entry size (larger values are returned but not stored),
//!   negative TTL.
//! - **Memory tier**: bounded by bytes, a TTL per entry, evictions counted.
//! - **JSON values**: a loader's [`Load::Json`] is kept as checked JSON, and
//!   every hit on it carries that JSON ([`Fetched::json`]), which the bridge
//!   hands out without reading it again. With
//!   [`CacheBuilder::json_values`], a value read back from disk or the shared
//!   tier is checked once, on its way into memory (one that is not JSON is a
//!   corrupt entry), and carries it too.
//! - **Disk tier**: entries integrity-checked on every read, TTL kept in the
//!   index metadata, writes atomic (temporary file, then rename) and made by a
//!   background task off the caller's path, a byte budget enforced by removing
//!   expired entries, then the least recently used, and orphaned files.
//!   Entries survive restarts.
//! - **Invalidation** by key, by method or all, in both tiers; a load running
//!   across an invalidation is returned to its callers but not stored.
//! - **Faults**: a corrupt or truncated disk entry is a miss, is counted, is
//!   removed, and is never returned. A directory that is missing, read-only or
//!   full turns the disk tier off with one warning and one
//!   [`CacheEvent::DiskTierDisabled`]; no call fails because of the disk. The
//!   tier comes back by itself when the directory works again.
//! - **Observability**: [`Cache::stats`], [`Cache::subscribe`] for
//!   [`CacheEvent`]s, [`Cache::l2_status`], and metrics through the `metrics`
//!   facade (names in [`metrics`]).
//!
//! - **Shared tier** (feature `redis`, [`SharedTierConfig`]): Redis after
//!   memory and disk, shared by every process of a deployment. Entries carry
//!   an integrity check (a corrupt one is a miss and is deleted), the policy's
//!   TTL, and never exceed its size cap; a hit fills memory. Reads wait at
//!   most a few tens of milliseconds; writes and invalidations go through one
//!   bounded background queue (a full queue drops writes, counted). After a
//!   few failures in a row the tier turns itself off, probes in the
//!   background and comes back ([`SharedTierStatus`], [`SharedTierEvent`]).
//!   Every invalidation is also deleted from Redis and published on the
//!   deployment's channel; each process applies what others publish to its
//!   memory and disk tiers, and flushes its memory tier whenever it
//!   (re)subscribes or the tier comes back, since pub/sub loses messages.
//!
//! # Features
//!
//! - `redis`: the shared tier. Without it, configuring one is a build error.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use pybridge_cache::{CacheBuilder, CachePolicy, Source};
//! use tokio::time::Instant;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let cache = CacheBuilder::new().namespace("catalog-v1").l2_dir(dir.path()).build()?;
//! let policy = CachePolicy::with_ttl(Duration::from_secs(60));
//!
//! // Key order and number spelling do not matter.
//! let key = cache.key("patterns.find", r#"{"limit": 10, "query": "sqlite"}"#)?;
//! assert_eq!(key, cache.key("patterns.find", r#"{"query":"sqlite","limit":1e1}"#)?);
//!
//! // Every read ends by its caller's deadline.
//! let deadline = Instant::now() + Duration::from_secs(5);
//! let first = cache
//!     .get_or_load(&key, &policy, deadline, || async {
//!         Ok::<_, std::io::Error>(Bytes::from_static(b"[1,2]"))
//!     })
//!     .await?;
//! assert_eq!(first.source, Source::Loader);
//!
//! let second = cache
//!     .get_or_load(&key, &policy, deadline, || async { Ok::<_, std::io::Error>(Bytes::new()) })
//!     .await?;
//! assert_eq!((second.source, &second.value[..]), (Source::L1, &b"[1,2]"[..]));
//! cache.close().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod cache;
mod clock;
mod config;
mod disk;
mod error;
mod event;
mod flight;
mod key;
mod l1;
pub mod metrics;
mod policy;
mod shared;
mod shared_tier;
mod stats;
mod value;

pub use cache::{Cache, Fetched, Load, Source};
pub use config::{CacheBuilder, DiskLocation, platform_cache_dir};
pub use error::{Error, LoadError, ParamsProblem, Result};
pub use event::{CacheEvent, Corruption, DiskFault, DiskOperation, L2Status, SweepReport};
pub use key::{CacheKey, JsonText, KeyDigest, ProducerId};
pub use policy::{CachePolicy, Tiers};
pub use shared_tier::{SharedTierConfig, SharedTierEvent, SharedTierStats, SharedTierStatus};
pub use stats::CacheStats;

#[cfg(test)]
mod tests;
