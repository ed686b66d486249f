//! `cargo xtask ci` and `cargo xtask test`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{cargo, run};

/// Everything CI checks, in order of how fast it fails.
pub(crate) fn ci(root: &Path) -> Result<()> {
    let started = Instant::now();
    // What the tests need comes first: a missing package stops the run at
    // once with the command to install it, not after the build.
    crate::setup::debian_packages()?;
    run(cargo(root).args(["fmt", "--all", "--", "--check"]))?;
    crate::tidy::run(root)?;
    run(cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    test(root)?;
    run(cargo(root)
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    eprintln!("xtask: ci passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Every Rust test (unit, integration, doc, and each benchmark run once as a
/// smoke test) and every Python test.
pub(crate) fn test(root: &Path) -> Result<()> {
    crate::setup::debian_packages()?;
    run(cargo(root).args(["test", "--workspace", "--all-targets", "--all-features"]))?;
    run(cargo(root).args(["test", "--workspace", "--doc", "--all-features"]))?;
    python_tests(root)
}

/// Runs `unittest` discovery in every folder under `python/`, `fixtures/`
/// and `benches/python/` that holds `test_*.py` files, each from its own
/// folder so imports stay local. The packages under `python/` are found
/// through `PYTHONPATH` (their `src` folders), as any user would without
/// installing them.
pub(crate) fn python_tests(root: &Path) -> Result<()> {
    let python = std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = crate::python_path(root)?;
    // The install test builds the SDK's wheel with this environment's
    // setuptools, offline, then installs it into a fresh virtual environment.
    let build_python = crate::setup::python_build_env(root, &python)?;
    let mut dirs = Vec::new();
    for tree in ["python", "fixtures", "benches/python"] {
        let before = dirs.len();
        collect_test_dirs(&root.join(tree), &mut dirs)?;
        if dirs.len() == before {
            bail!("no Python tests found under {}", root.join(tree).display());
        }
    }
    dirs.sort();
    for dir in dirs {
        run(Command::new(&python)
            .args(["-m", "unittest", "discover", "-v", "-p", "test_*.py"])
            .current_dir(&dir)
            .env("PYTHONPATH", &path)
            .env("PYBRIDGE_BUILD_PYTHON", &build_python)
            .env("PYTHONDONTWRITEBYTECODE", "1"))?;
    }
    Ok(())
}

fn collect_test_dirs(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    let mut has_tests = false;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() && !name.starts_with('.') && name != "__pycache__" {
            collect_test_dirs(&path, out)?;
        } else if name.starts_with("test_") && name.ends_with(".py") {
            has_tests = true;
        }
    }
    if has_tests {
        out.push(dir.to_path_buf());
    }
    Ok(())
}
