//! Tidy check: the Python packages under `python/` carry the workspace's
//! version, in their `pyproject.toml`, in the `__version__` they report, and
//! in the pins between them.

use std::path::Path;

use anyhow::{Context, Result};

/// Adds one problem per version that differs from the workspace's.
pub(crate) fn check(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let manifest =
        std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let workspace = section_value(&manifest, "[workspace.package]", "version")
        .context("no version in [workspace.package] of Cargo.toml")?;
    let packages = root.join("python");
    let mut dirs: Vec<_> = std::fs::read_dir(&packages)
        .with_context(|| format!("reading {}", packages.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("pyproject.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
        let pyproject = std::fs::read_to_string(dir.join("pyproject.toml"))
            .with_context(|| format!("reading {shown}/pyproject.toml"))?;
        match section_value(&pyproject, "[project]", "version") {
            Some(v) if v == workspace => {}
            found => problems.push(format!(
                "{shown}/pyproject.toml: version {found:?}, the workspace's is {workspace:?}"
            )),
        }
        for pin in pyproject.split('"').filter(|s| s.starts_with("pybridge-")) {
            if let Some((name, version)) = pin.split_once("==")
                && version != workspace
            {
                problems.push(format!(
                    "{shown}/pyproject.toml: pins {name}=={version}, the workspace's version is {workspace}"
                ));
            }
        }
        check_dunder_versions(&dir.join("src"), &shown, &workspace, problems)?;
    }
    Ok(())
}

/// Every `__version__ = "..."` in the package's sources.
fn check_dunder_versions(
    src: &Path,
    shown: &str,
    workspace: &str,
    problems: &mut Vec<String>,
) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(src) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            check_dunder_versions(&path, shown, workspace, problems)?;
        } else if path.extension().is_some_and(|e| e == "py") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("__version__ = ") {
                    let value = value.trim().trim_matches('"');
                    if value != workspace {
                        problems.push(format!(
                            "{shown}: {} says __version__ {value:?}, the workspace's is {workspace:?}",
                            path.file_name().unwrap_or_default().to_string_lossy()
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The string value of `key = "..."` in the TOML `section` (a plain reader:
/// these files keep one key per line).
fn section_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == section;
            continue;
        }
        if inside
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().trim_matches('"').to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_section_value_is_read_from_its_section_only() {
        let text = "[a]\nversion = \"1\"\n[workspace.package]\nname = \"x\"\nversion = \"0.1.0\"\n";
        assert_eq!(
            super::section_value(text, "[workspace.package]", "version").as_deref(),
            Some("0.1.0")
        );
        assert_eq!(super::section_value(text, "[b]", "version"), None);
    }
}
