//! The pybridge service layer: the method catalog, JSON Schema validation,
//! request and response adapters, telemetry names, and the typed API for the
//! SQLite Extensions Framework.
//!
//! It sits on `pybridge-protocol` in the layers (see `ARCHITECTURE.md`).
//!
//! Status: skeleton. The service layer arrives with the service issue; nothing
//! here works yet.

#![warn(missing_docs)]
