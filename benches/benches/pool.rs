//! Pool benchmarks (placeholder until the pool bench lands).

fn main() {}
