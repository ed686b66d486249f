//! Unit tests of the service crate's internals.
