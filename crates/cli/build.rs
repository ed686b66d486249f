//! Embeds the reference framework worker and the worker SDK into the
//! `pybridge` binary, so `pybridge call …` needs nothing but python3.
//!
//! Every runtime file under `fixtures/worker` and `fixtures/framework` (Python
//! modules and data, not tests or benchmarks) is listed with its bytes, plus a
//! content hash that names the directory they are unpacked into.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let fixtures = manifest.join("../../fixtures");
    let mut files = Vec::new();
    for dir in ["worker", "framework"] {
        let path = fixtures.join(dir);
        println!("cargo:rerun-if-changed={}", path.display());
        collect(&path, &fixtures, &mut files);
    }
    files.sort();
    // FNV-1a over names and contents: stable across toolchains, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut table = String::from(
        "/// The embedded worker files: path relative to the fixtures root, and bytes.\npub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (relative, absolute) in &files {
        let bytes = std::fs::read(absolute).expect("readable fixture");
        for b in relative.as_bytes().iter().chain(&bytes) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        println!("cargo:rerun-if-changed={}", absolute.display());
        let _ = writeln!(
            table,
            "    ({relative:?}, include_bytes!({:?})),",
            absolute.display().to_string()
        );
    }
    table.push_str("];\n");
    let _ = writeln!(
        table,
        "/// A hash of every embedded file, naming the directory they unpack into.\npub(crate) const HASH: &str = \"{hash:016x}\";"
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("embedded.rs");
    std::fs::write(out, table).expect("OUT_DIR is writable");
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if name != "__pycache__" && !name.starts_with('.') {
                collect(&path, root, out);
            }
            continue;
        }
        let runtime = (name.ends_with(".py") || name.ends_with(".json") || name.ends_with(".sql"))
            && !name.starts_with("test_")
            && !name.starts_with("bench_");
        if runtime {
            let relative = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            out.push((relative, path));
        }
    }
}
