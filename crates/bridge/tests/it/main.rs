//! Integration tests of the bridge against real Python workers from `fixtures/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Without the framework feature, the tests of its catalog are left out and
// some helpers they share go unused.
#![cfg_attr(not(feature = "framework"), allow(dead_code, unused_imports))]

mod call_path;
mod chaos;
mod facade;
#[cfg(feature = "framework")]
mod framework_worker;
mod http;
#[cfg(feature = "otel")]
mod otel;
#[cfg(feature = "otel")]
use pybridge_test_support::otlp;
#[cfg(feature = "redis")]
use pybridge_test_support::redis_server;
mod registry;
mod remote;
#[cfg(feature = "redis")]
mod shared_cache;
mod support;
mod tower;
