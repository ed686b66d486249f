//! `cargo xtask tidy`: checks the rules of STYLE.md that a compiler does not.
//!
//! - every Rust source file starts with a `//!` line saying what it is for;
//! - the dependency edges between workspace crates are the ones allowed by the
//!   table in ARCHITECTURE.md;
//! - library crates do not use `anyhow`;
//! - every relative Markdown link resolves (`links.rs`);
//! - the Python packages carry the workspace's version (`versions.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Crates that are libraries: typed errors only, no `anyhow`.
const LIBRARIES: &[&str] = &[
    "pybridge-protocol",
    "pybridge-resilience",
    "pybridge-pool",
    "pybridge-cache",
    "pybridge-service",
    "pybridge-framework",
    "pybridge",
];

pub(crate) fn run(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    check_headers(root, &mut problems)?;
    check_edges(root, &mut problems)?;
    crate::links::check(root, &mut problems)?;
    crate::versions::check(root, &mut problems)?;
    if problems.is_empty() {
        eprintln!("xtask: tidy passed");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("tidy: {problem}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

fn check_headers(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "benches"] {
        collect_rust_files(&root.join(dir), &mut files)?;
    }
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        if !text.starts_with("//!") {
            let rel = file.strip_prefix(root).unwrap_or(&file);
            problems.push(format!(
                "{} does not start with a `//!` line",
                rel.display()
            ));
        }
    }
    Ok(())
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            // Build output, and the fuzz crate's generated corpus, are not sources.
            if !matches!(name, "target" | "corpus" | "artifacts") {
                collect_rust_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads the allowed edges from the table under "## Dependency edges" in
/// ARCHITECTURE.md: `| package | dep, dep |`, `any` for no restriction, `—`
/// for none.
fn allowed_edges(root: &Path) -> Result<BTreeMap<String, Option<BTreeSet<String>>>> {
    let path = root.join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).context("reading ARCHITECTURE.md")?;
    let section = text
        .split("## Dependency edges")
        .nth(1)
        .context("ARCHITECTURE.md has no `## Dependency edges` section")?;
    let mut edges = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [package, deps] = cells[..] else { continue };
        let package = package.trim_matches('`');
        if package == "package" || package.starts_with("---") {
            continue;
        }
        let deps = match deps {
            "any" => None,
            "—" | "-" | "" => Some(BTreeSet::new()),
            list => Some(
                list.split(',')
                    .map(|d| d.trim().trim_matches('`').to_string())
                    .collect(),
            ),
        };
        edges.insert(package.to_string(), deps);
    }
    if edges.is_empty() {
        bail!("the `## Dependency edges` table in ARCHITECTURE.md is empty");
    }
    Ok(edges)
}

fn check_edges(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let allowed = allowed_edges(root)?;
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?;
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let deps = package["dependencies"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let Some(rule) = allowed.get(name) else {
            problems.push(format!(
                "{name} is missing from the dependency table in ARCHITECTURE.md"
            ));
            continue;
        };
        for dep in deps {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if LIBRARIES.contains(&name) && dep_name == "anyhow" && !is_dev {
                problems.push(format!("library {name} depends on anyhow"));
            }
            if !members.contains(dep_name) || is_dev {
                continue;
            }
            if let Some(allowed) = rule
                && !allowed.contains(dep_name)
            {
                problems.push(format!(
                    "{name} depends on {dep_name}, which ARCHITECTURE.md does not allow"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Tidy runs as part of the test suite, not only through `cargo xtask`.
    #[test]
    fn the_workspace_is_tidy() {
        super::run(&crate::project_root()).expect("tidy found problems; see stderr");
    }
}
