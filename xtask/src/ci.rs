//! `cargo xtask ci` and `cargo xtask test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
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
    // Before the tests, whose build puts the default `pybridge` binary back.
    without_otel(root)?;
    test(root)?;
    run(cargo(root)
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    eprintln!("xtask: ci passed in {:.0?}", started.elapsed());
    Ok(())
}

/// The `pybridge` binary built without its default `otel` feature, which
/// nothing else builds (the tests run with every feature): it lints clean,
/// answers a call, and refuses an OTLP endpoint, from the flag or from the
/// standard variable, with an error that says why.
fn without_otel(root: &Path) -> Result<()> {
    let lint = ["clippy", "-p", "pybridge-cli", "--no-default-features"];
    run(cargo(root).args(lint).args(["--", "-D", "warnings"]))?;
    run(cargo(root).args(["build", "-p", "pybridge-cli", "--no-default-features"]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let cli = target.join("debug/pybridge");
    let python = std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let worker = [python.as_str(), "-m", "pybridge_worker"];
    let pybridge = |args: &[&str], env: Option<(&str, &str)>| -> Result<Output> {
        let mut cmd = Command::new(&cli);
        cmd.args(args).env("PYTHONPATH", crate::python_path(root)?);
        // Only what the check sets: no configuration file or override, and
        // no OpenTelemetry variable, from the environment it runs in.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("PYBRIDGE_") || key.starts_with("OTEL_") {
                cmd.env_remove(&*key);
            }
        }
        if let Some((key, value)) = env {
            cmd.env(key, value);
        }
        cmd.output()
            .with_context(|| format!("running {}", cli.display()))
    };
    let call = ["call", "test.echo", r#"{"a":1}"#, "--"];
    let answered = pybridge(&[&call[..], &worker[..]].concat(), None)?;
    let stdout = String::from_utf8_lossy(&answered.stdout);
    if !answered.status.success() || !stdout.contains(r#""a":1"#) {
        bail!(
            "the CLI built without `otel` did not answer a call ({}): {stdout}{}",
            answered.status,
            String::from_utf8_lossy(&answered.stderr)
        );
    }
    let flag = [
        &["--otlp-endpoint", "http://127.0.0.1:9"][..],
        &call[..],
        &worker[..],
    ]
    .concat();
    let variable = [&call[..], &worker[..]].concat();
    for (args, env, source) in [
        (&flag, None, "telemetry.otlp_endpoint"),
        (
            &variable,
            Some(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")),
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
    ] {
        let refused = pybridge(args, env)?;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        if refused.status.success()
            || !stderr.contains(source)
            || !stderr.contains("built without the `otel` feature")
        {
            bail!(
                "the CLI built without `otel` did not refuse {source} ({}): {stderr}",
                refused.status
            );
        }
    }
    Ok(())
}

/// Every Rust test (unit, integration, doc, and each benchmark run once as a
/// smoke test) and every Python test.
pub(crate) fn test(root: &Path) -> Result<()> {
    crate::setup::debian_packages()?;
    let python = std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    // The CLI's MCP tests drive the server with the official Python client.
    let mcp_python = crate::setup::mcp_client_env(root, &python)?;
    run(cargo(root)
        .args(["test", "--workspace", "--all-targets", "--all-features"])
        .env("PYBRIDGE_MCP_PYTHON", &mcp_python))?;
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
