//! Resilience policies for pybridge: retry with backoff, jitter, budgets and
//! deadlines; circuit breakers; timeouts; bulkheads.
//!
//! This crate sits beside the pool in the layers (see `ARCHITECTURE.md`) and
//! knows nothing of JSON-RPC: it works on any async operation whose error can
//! say whether it may be retried and whether it counts against a breaker.
//!
//! Status: skeleton. The policies arrive with the resilience issue; nothing
//! here works yet.

#![warn(missing_docs)]
