//! Cache benchmarks (placeholder until the cache bench lands).

fn main() {}
