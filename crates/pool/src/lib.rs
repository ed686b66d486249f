//! The pybridge worker pool: Python worker processes speaking JSON-RPC 2.0 over
//! their stdin and stdout, with pipelined and multiplexed I/O, least-loaded
//! routing, a bounded queue, health checks, restarts, recycling, and a
//! shutdown that leaves no orphan.
//!
//! It sits on `pybridge-protocol` in the layers (see `ARCHITECTURE.md`).
//!
//! Status: skeleton. The pool arrives with the pool issue; nothing here works yet.

#![warn(missing_docs)]
