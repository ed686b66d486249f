//! Protocol benchmarks (placeholder until the protocol bench lands).

fn main() {}
