//! Project automation for pybridge: `cargo xtask <command>`.
//!
//! This is the only place for automation; `.ci/run` merely calls the README's
//! test command, which is `cargo xtask ci`.

// Printing is xtask's job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod chaos;
mod ci;
mod links;
mod setup;
mod tidy;
mod versions;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci       fmt check, clippy -D warnings, tidy, the CLI without `otel`, every Rust and Python test, docs
  test     every Rust and Python test (no lints)
  tidy     file headers, crate dependency edges, no anyhow in libraries, Markdown links, Python versions
  bench    the full bridge against the raw limit and ProcessPoolExecutor; writes BENCHMARKS.md
           --trace-export: only what OTLP trace export costs, printed
  chaos    workers killed, hung and spewing garbage under load, 30 s each; --soak [--minutes M] (10)
  python   the Python tests under python/, fixtures/ and benches/python/
  setup    install what the tests need (ci and test do it themselves)
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    match args.first().map(String::as_str) {
        Some("ci") => ci::ci(&root),
        Some("test") => ci::test(&root),
        Some("tidy") => tidy::run(&root),
        Some("bench") => bench::bench(&root, &args[1..]),
        Some("chaos") => chaos::chaos(&root, &args[1..]),
        Some("python") => ci::python_tests(&root),
        Some("setup") => setup::all(&root),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root: xtask lives one level below it.
fn project_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Runs a command to completion, failing with its name if it fails.
fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// The Python packages of the repository (`python/<package>/src`), as a
/// `PYTHONPATH` value: how tests and benchmarks import them without
/// installing them.
pub(crate) fn python_path(root: &Path) -> Result<std::ffi::OsString> {
    let mut dirs = Vec::new();
    let packages = root.join("python");
    for entry in
        std::fs::read_dir(&packages).with_context(|| format!("reading {}", packages.display()))?
    {
        let src = entry?.path().join("src");
        if src.is_dir() {
            dirs.push(src);
        }
    }
    dirs.sort();
    std::env::join_paths(dirs).context("joining the Python package paths")
}

fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root);
    // A CI run builds once from a clean checkout: incremental state would
    // only take disk (gigabytes for this workspace) and time to write.
    if std::env::var_os("CI").is_some() && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    cmd
}
