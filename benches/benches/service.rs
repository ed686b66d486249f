//! Service-layer benchmarks: params validation next to a plain `serde_json` parse.

fn main() {}
