//! Real parts the workspace's tests start and stop themselves, shared so that
//! each exists once: a `redis-server` on a free loopback port (feature
//! `redis`), an OTLP/HTTP trace receiver on 127.0.0.1 (feature `otlp`), and
//! a `metrics` recorder that keeps every value (feature `metrics`).
//! A development dependency only; never published.

// Test support fails loudly: a part that cannot start is a broken test
// machine, and the panic says which part and why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "metrics")]
pub mod recorder;
#[cfg(feature = "redis")]
pub mod redis_server;
