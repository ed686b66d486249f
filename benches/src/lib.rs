//! Shared helpers for pybridge's criterion benchmarks.
