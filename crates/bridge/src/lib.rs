//! pybridge: call Python from Rust through a supervised pool of worker
//! processes, without embedding an interpreter.
//!
//! This facade composes the layers (see `ARCHITECTURE.md`): service → cache →
//! resilience → pool → protocol.
//!
//! Status: skeleton. The facade arrives with the bridge issue; nothing here
//! works yet. Today only `pybridge-protocol` is complete.

#![warn(missing_docs)]
