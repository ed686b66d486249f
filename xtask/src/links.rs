//! Tidy check: every relative link in the repository's Markdown files points
//! at a file or folder that exists.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Folders never searched for Markdown files.
const SKIP: &[&str] = &["target", ".git", "node_modules", "__pycache__"];

/// Adds one problem per broken relative link.
pub(crate) fn check(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    let mut files = Vec::new();
    collect(root, &mut files)?;
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let dir = file.parent().unwrap_or(root);
        for (line, target) in relative_links(&text) {
            let path = target.split(['#', '?']).next().unwrap_or_default();
            if path.is_empty() {
                continue; // an anchor in the same file
            }
            if !dir.join(path).exists() {
                let shown = file.strip_prefix(root).unwrap_or(&file);
                problems.push(format!(
                    "{}:{line}: the link `{target}` points at nothing",
                    shown.display()
                ));
            }
        }
    }
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !SKIP.contains(&name) && !name.starts_with('.') {
                collect(&path, out)?;
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
    Ok(())
}

/// `(line number, target)` of every link outside code: inline links
/// `[text](target)` and reference definitions `[name]: target`, keeping
/// only relative targets (no scheme, not absolute, not a bare anchor).
pub(crate) fn relative_links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut fenced = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let prose = without_code_spans(line);
        let mut targets = Vec::new();
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
        if let Some(definition) = prose.trim_start().strip_prefix('[')
            && let Some((_, target)) = definition.split_once("]:")
        {
            targets.push(target.trim().to_owned());
        }
        for target in targets {
            // `<path with spaces>` and `path "title"` forms.
            let target = match target.strip_prefix('<') {
                Some(inner) => inner.split('>').next(),
                None => target.split(' ').next(),
            }
            .unwrap_or_default()
            .to_owned();
            if is_relative(&target) {
                links.push((index + 1, target));
            }
        }
    }
    links
}

fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

fn is_relative(target: &str) -> bool {
    !target.is_empty()
        && !target.starts_with('#')
        && !target.starts_with('/')
        && !target.contains("://")
        && !target.starts_with("mailto:")
}

#[cfg(test)]
mod tests {
    use super::relative_links;

    fn check(text: &str, expected: &[(usize, &str)]) {
        let got = relative_links(text);
        let got: Vec<(usize, &str)> = got.iter().map(|(l, t)| (*l, t.as_str())).collect();
        assert_eq!(got, expected, "{text}");
    }

    #[test]
    fn relative_links_are_found_outside_code() {
        check(
            "see [a](docs/a.md) and [b](../b.md#part)",
            &[(1, "docs/a.md"), (1, "../b.md#part")],
        );
        check("[web](https://example.com) [top](#top) [abs](/etc)", &[]);
        check(
            "```\n[x](nope.md)\n```\n`[y](nope.md)` [z](z.md)",
            &[(4, "z.md")],
        );
        check("[ref]: ./guide.md \"Guide\"", &[(1, "./guide.md")]);
        check("[spaced](<my file.md>)", &[(1, "my file.md")]);
    }
}
