//! Integration tests of the pool against real Python workers from `fixtures/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod basic;
mod faults;
mod lifecycle;
mod support;
