//! Embeds the reference framework worker and the worker SDK into the
//! `pybridge` binary, so `pybridge call …` needs nothing but python3.
//!
//! The runtime files (Python modules and data, not tests) of the packages
//! `python/pybridge-worker/src/pybridge_worker` and
//! `python/sqlite-framework/src/sqlite_framework` are listed with their bytes,
//! as `pybridge_worker/…` and `sqlite_framework/…`, plus a generated
//! `__main__.py` beside them: `python3 DIR` then runs the framework with both
//! packages importable (Python puts DIR first on its path), and a content
//! hash names the directory they are unpacked into.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The packages embedded: (source folder under the repository, name).
const PACKAGES: &[(&str, &str)] = &[
    ("python/pybridge-worker/src", "pybridge_worker"),
    ("python/sqlite-framework/src", "sqlite_framework"),
];

/// The entry point `python3 DIR` runs.
/// Python never caches the main script's bytecode, so it only imports. Once
/// `main()` has returned (the store is closed), the interpreter's teardown
/// would only delay `pybridge call`, which waits for the worker to exit:
/// nothing is registered to run at exit, so it flushes and leaves.
const MAIN: &str = "\"\"\"The embedded reference framework worker: `python3 <this directory>`.\"\"\"\n\n\
import os\n\
import sys\n\n\
from sqlite_framework.server import main\n\n\
code = main()\n\
sys.stdout.flush()\n\
sys.stderr.flush()\n\
os._exit(code)\n";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let repository = manifest.join("../..");
    let mut files = Vec::new();
    for (src, package) in PACKAGES {
        let root = repository.join(src);
        let path = root.join(package);
        println!("cargo:rerun-if-changed={}", path.display());
        collect(&path, &root, &mut files);
    }
    let main_py = out_dir.join("__main__.py");
    write_if_changed(&main_py, MAIN.as_bytes());
    files.push(("__main__.py".to_owned(), main_py));
    files.sort();
    // FNV-1a over names and contents: stable across toolchains, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut table = String::from(
        "/// The embedded worker files: path relative to the unpacked directory, and bytes.\npub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (relative, absolute) in &files {
        let bytes = std::fs::read(absolute).expect("readable package file");
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
    write_if_changed(&out_dir.join("embedded.rs"), table.as_bytes());
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
        let runtime = (name.ends_with(".py")
            || name.ends_with(".json")
            || name.ends_with(".sql")
            || name == "py.typed")
            && !name.starts_with("test_");
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

/// Writes `bytes` unless the file already holds them: a rewrite would give
/// it a new modification time, and the binary, which embeds it, would be
/// rebuilt each time this script runs (each change of the crate's features).
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return;
    }
    std::fs::write(path, bytes).expect("OUT_DIR is writable");
}
