//! Integration tests of pybridge-resilience, through the public API only.
//! Every timing test runs on paused tokio time.

// Test helpers outside `#[test]` functions are test code too; clippy's
// `allow-unwrap-in-tests` does not see them.
#![allow(clippy::unwrap_used)]

mod alloc;
mod breaker;
mod bulkhead;
mod handles;
mod model;
mod registry;
mod regressions;
mod retry;
mod support;
mod timeout;
#[cfg(feature = "tower")]
mod tower;
