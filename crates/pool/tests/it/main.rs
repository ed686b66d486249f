//! Integration tests of the pool against real Python workers from `fixtures/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod basic;
mod dropped;
mod faults;
mod handshake;
mod lifecycle;
mod remote;
mod remote_support;
mod support;
