//! End-to-end tests of the `pybridge` binary, run as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod call;
mod conform;
mod mcp;
mod methods;
#[cfg(feature = "otel")]
mod otel;
#[cfg(feature = "otel")]
use pybridge_test_support::otlp;
use pybridge_test_support::redis_server;
mod serve;
mod shared_cache;
mod support;
mod worker_stderr;
