//! The `pybridge` command: `call`, `serve` and `bench` over the bridge.
//!
//! Status: skeleton. The commands arrive with the bridge and CLI issue.

fn main() {
    std::process::exit(2);
}
