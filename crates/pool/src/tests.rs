//! Unit tests for the pool internals.
