//! The pybridge result cache: two tiers, moka in memory and cacache on disk,
//! with canonical keys and single-flight loading.
//!
//! It knows nothing of JSON-RPC: keys are hashes of a method name and
//! canonical JSON params, values are bytes (see `ARCHITECTURE.md`).
//!
//! Status: skeleton. The cache arrives with the cache issue; nothing here works yet.

#![warn(missing_docs)]
