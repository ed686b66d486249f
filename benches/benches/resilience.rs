//! Resilience benchmarks (placeholder until the resilience bench lands).

fn main() {}
