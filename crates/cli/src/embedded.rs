//! The embedded reference framework worker: the Python files are compiled
//! into the binary and unpacked once into a versioned cache directory, with
//! their bytecode, so no later start compiles them again.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Marks a fully unpacked directory; written last, so a directory without it
/// was interrupted and is never used.
const COMPLETE: &str = ".complete";

/// The worker command for the embedded framework: `python` running the
/// unpacked directory, whose `__main__.py` runs the
/// `sqlite_framework` package (Python puts the directory first on its
/// import path, so both packages import as installed ones would).
pub(crate) fn default_command(python: &str) -> Result<Vec<String>> {
    let dir = unpack(python)?;
    Ok(vec![python.to_owned(), dir.display().to_string()])
}

/// Unpacks the files unless an earlier run did; returns their directory.
fn unpack(python: &str) -> Result<PathBuf> {
    let base = pybridge::cache::platform_cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("pybridge");
    let dir = base.join(format!("worker-{}-{HASH}", env!("CARGO_PKG_VERSION")));
    if dir.join(COMPLETE).exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    // Unpack beside the target and rename into place, so concurrent first
    // runs never see a half-written directory.
    let staging = base.join(format!(".worker-{HASH}-{}", std::process::id()));
    write_files(&staging)
        .with_context(|| format!("unpacking the embedded worker into {}", staging.display()))?;
    precompile(python, &staging);
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        Err(_) if dir.join(COMPLETE).exists() => {
            // Another process won the race; its copy is identical.
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(err) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(err).with_context(|| format!("moving the embedded worker into {}", dir.display()))
        }
    }
}

/// Writes the modules' bytecode beside them, once. Python would do it on
/// the first import, but not when `PYTHONDONTWRITEBYTECODE` is set (or the
/// directory is read-only later), and then every start compiles every
/// module again: tens of milliseconds of each `pybridge call`. Python reads
/// bytecode whatever that variable says, and checks it against the source's
/// size and modification time, which the rename into place keeps. A failure
/// costs only that time, so it is not an error: a Python that cannot compile
/// the files cannot run them either, and the worker's start reports that.
fn precompile(python: &str, staging: &Path) {
    let _ = std::process::Command::new(python)
        .args(["-m", "compileall", "-q", "-j", "0"])
        .arg(staging)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn write_files(staging: &Path) -> Result<()> {
    if staging.exists() {
        std::fs::remove_dir_all(staging)?;
    }
    for (relative, bytes) in FILES {
        let path = staging.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
    }
    std::fs::write(staging.join(COMPLETE), HASH)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_worker_sdk_and_the_framework_entry_point_are_embedded() {
        let names: Vec<&str> = super::FILES.iter().map(|(name, _)| *name).collect();
        assert!(names.contains(&"__main__.py"), "{names:?}");
        assert!(names.contains(&"pybridge_worker/__init__.py"), "{names:?}");
        assert!(names.contains(&"pybridge_worker/worker.py"), "{names:?}");
        assert!(names.contains(&"sqlite_framework/__main__.py"), "{names:?}");
        assert!(
            names.contains(&"sqlite_framework/starter_patterns.json"),
            "{names:?}"
        );
        assert!(
            names.iter().all(|n| !n.contains("test_")),
            "tests are not embedded: {names:?}"
        );
        assert_eq!(super::HASH.len(), 16);
    }
}
