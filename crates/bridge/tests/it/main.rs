//! Integration tests of the bridge against real Python workers from `fixtures/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod call_path;
mod chaos;
mod framework_worker;
#[cfg(feature = "redis")]
mod redis_server;
#[cfg(feature = "redis")]
mod shared_cache;
mod support;
