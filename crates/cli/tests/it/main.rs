//! End-to-end tests of the `pybridge` binary, run as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod call;
mod conform;
mod methods;
mod otel;
mod otlp;
mod serve;
mod support;
mod worker_stderr;
