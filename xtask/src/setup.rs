//! What the tests need from outside the repository, set up by the test
//! commands themselves so `cargo xtask ci` works on a fresh machine:
//! Debian packages (installed when running as root, otherwise a stop at once
//! with the exact command to run), a Python build environment under
//! `target/` (for the test that installs the worker SDK with pip), and the
//! official Python MCP client in its own environment under `target/` (for
//! the CLI's MCP tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run;

/// A program some test runs, and the Debian package that provides it.
struct DebianNeed {
    program: &'static str,
    package: &'static str,
    why: &'static str,
}

/// Every program the tests (and `cargo xtask bench`) need from Debian. Add a
/// line to need another.
const DEBIAN: &[DebianNeed] = &[
    DebianNeed {
        program: "promtool",
        package: "prometheus",
        why: "the gateway test checks /metrics with promtool",
    },
    DebianNeed {
        program: "redis-server",
        package: "redis-server",
        why: "the shared cache tier's tests start their own Redis on a loopback port",
    },
];

/// What the Python build environment must import to build a wheel offline.
const PYTHON_BUILD_REQUIREMENTS: &[&str] = &["setuptools>=61", "wheel"];

/// The MCP client the CLI's MCP tests drive `pybridge mcp` with (Python 3.10+).
const MCP_CLIENT_REQUIREMENT: &str = "mcp>=2.3,<2.4";

/// Everything: the Debian packages, then the Python environments.
pub(crate) fn all(root: &Path) -> Result<()> {
    debian_packages()?;
    let python = std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let interpreter = python_build_env(root, &python)?;
    let mcp = mcp_client_env(root, &python)?;
    eprintln!(
        "xtask: setup done (Python build environment: {}; MCP client: {})",
        interpreter.display(),
        mcp.display()
    );
    Ok(())
}

/// A virtual environment under `target/python/mcp-venv` with the official
/// MCP client from the package index, created the first time only. Returns
/// its interpreter; the tests find it there or through `PYBRIDGE_MCP_PYTHON`.
pub(crate) fn mcp_client_env(root: &Path, python: &str) -> Result<PathBuf> {
    let venv = target_dir(root).join("python").join("mcp-venv");
    let interpreter = venv.join("bin").join("python");
    let ready = |interpreter: &Path| {
        Command::new(interpreter)
            .args(["-c", "import mcp.client.streamable_http, httpx2"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if interpreter.exists() && ready(&interpreter) {
        return Ok(interpreter);
    }
    let version = Command::new(python)
        .args(["-c", "import sys; print(sys.version_info >= (3, 10))"])
        .output()
        .with_context(|| format!("running {python}"))?;
    if String::from_utf8_lossy(&version.stdout).trim() != "True" {
        bail!(
            "the MCP client ({MCP_CLIENT_REQUIREMENT}) needs Python 3.10 or later; \
             set PYBRIDGE_PYTHON to such an interpreter"
        );
    }
    if !interpreter.exists() {
        std::fs::create_dir_all(venv.parent().unwrap_or(&venv))
            .with_context(|| format!("creating {}", venv.display()))?;
        run(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&interpreter).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        MCP_CLIENT_REQUIREMENT,
    ]))
    .context("installing the Python MCP client into its environment")?;
    if !ready(&interpreter) {
        bail!(
            "{} still cannot import the MCP client",
            interpreter.display()
        );
    }
    Ok(interpreter)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Installs the missing Debian packages when running as root; otherwise
/// fails at once with the command that installs them.
pub(crate) fn debian_packages() -> Result<()> {
    let missing: Vec<&DebianNeed> = DEBIAN.iter().filter(|n| !on_path(n.program)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    let reasons: Vec<String> = missing
        .iter()
        .map(|n| format!("{} (package {}): {}", n.program, n.package, n.why))
        .collect();
    if !is_root() {
        bail!(
            "the tests and benchmarks need programs that are not installed:\n  {}\ninstall them with:\n  sudo apt-get update && sudo apt-get install -y --no-install-recommends {}",
            reasons.join("\n  "),
            packages.join(" ")
        );
    }
    eprintln!("xtask: installing {}", reasons.join("; "));
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if let Some(still) = missing.iter().find(|n| !on_path(n.program)) {
        bail!(
            "installed {} but {} is still not on PATH",
            still.package,
            still.program
        );
    }
    Ok(())
}

/// A virtual environment under `target/python/build-venv` that can build
/// the SDK's wheel without network access (`pip wheel --no-build-isolation`);
/// created, and given setuptools and wheel from the package index, the first
/// time only. Returns its interpreter.
pub(crate) fn python_build_env(root: &Path, python: &str) -> Result<PathBuf> {
    let target = target_dir(root);
    let venv = target.join("python").join("build-venv");
    let interpreter = venv.join("bin").join("python");
    let ready = |interpreter: &Path| {
        Command::new(interpreter)
            .args(["-c", "import setuptools, wheel"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if interpreter.exists() && ready(&interpreter) {
        return Ok(interpreter);
    }
    if !interpreter.exists() {
        std::fs::create_dir_all(target.join("python"))
            .with_context(|| format!("creating {}", target.join("python").display()))?;
        run(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&interpreter)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON_BUILD_REQUIREMENTS))
    .context("installing the Python build requirements into the build environment")?;
    if !ready(&interpreter) {
        bail!(
            "{} still cannot import setuptools and wheel",
            interpreter.display()
        );
    }
    Ok(interpreter)
}

/// Whether `program` is an executable file in a `PATH` directory.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// Whether this process runs as root (effective uid 0), from /proc.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}
