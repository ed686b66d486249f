//! Integration tests of the bridge against real Python workers from `fixtures/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod call_path;
mod chaos;
mod framework_worker;
#[cfg(feature = "otel")]
mod otel;
#[cfg(feature = "otel")]
mod otlp;
mod support;
