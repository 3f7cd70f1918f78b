//! `python`: a `pyproject.toml` names a `[tool.uv.sources]` dependency
//! that is a workspace member (`{ workspace = true }`) or a local path
//! (`{ path = "..." }`), or a requirements file has a `-e`/path entry
//! (relative to the file's directory), that another service owns.

use std::collections::HashMap;

use toml_edit::{DocumentMut, Item};

use super::{Found, Repo, Source, join, split};

/// The python source.
pub struct Python;

impl Source for Python {
    fn name(&self) -> &'static str {
        "python"
    }

    fn discover(&self, repo: &Repo<'_>, found: &mut Found) {
        let projects: Vec<(&str, DocumentMut)> = repo
            .files
            .paths
            .iter()
            .filter(|p| split(p).1 == "pyproject.toml")
            .filter_map(|p| Some((p.as_str(), repo.text(p)?.parse().ok()?)))
            .collect();
        // Projects by normalised name (PEP 503).
        let names: HashMap<String, &str> = projects
            .iter()
            .filter_map(|(p, doc)| {
                let name = doc.get("project")?.get("name")?.as_str()?;
                Some((normalise(name), split(p).0))
            })
            .collect();
        for (path, doc) in &projects {
            let dir = split(path).0;
            let Some(sources) = doc
                .get("tool")
                .and_then(|t| t.get("uv"))
                .and_then(|u| u.get("sources"))
                .and_then(Item::as_table_like)
            else {
                continue;
            };
            for (name, source) in sources.iter() {
                let target = if let Some(local) = source.get("path").and_then(Item::as_str) {
                    join(dir, local)
                } else if source.get("workspace").and_then(Item::as_bool) == Some(true) {
                    names.get(&normalise(name)).map(|d| d.to_string())
                } else {
                    None
                };
                if let Some(target) = target.filter(|t| t != dir) {
                    let targets = repo.owners_under(&target);
                    found.link(repo, &[], path, &targets, "python", "source");
                }
            }
        }
        for path in repo.files.paths.iter().filter(|p| is_requirements(p)) {
            let Some(text) = repo.text(path) else {
                continue;
            };
            let dir = split(path).0;
            for line in text.lines() {
                let Some(local) = local_requirement(line) else {
                    continue;
                };
                if let Some(target) = join(dir, local).filter(|t| t != dir) {
                    let targets = repo.owners_under(&target);
                    found.link(repo, &[], path, &targets, "python", "requirement");
                }
            }
        }
    }
}

/// PEP 503: lower case, runs of `-`, `_` and `.` as one `-`.
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `requirements.txt`, `requirements-dev.txt`, `requirements/*.txt`.
fn is_requirements(path: &str) -> bool {
    let (dir, name) = split(path);
    name.ends_with(".txt") && (name.starts_with("requirements") || split(dir).1 == "requirements")
}

/// The local path of a requirements line: `-e ./lib`, `./lib`, `../x`,
/// `file:../x`; `None` for a requirement from an index or a URL.
fn local_requirement(line: &str) -> Option<&str> {
    let line = line.split(" #").next()?.trim();
    let line = line
        .strip_prefix("-e")
        .or_else(|| line.strip_prefix("--editable"))
        .map_or(line, |rest| rest.trim_start_matches('=').trim());
    let line = line.strip_prefix("file:").unwrap_or(line);
    let path = line.split(['[', ';', ' ']).next()?.trim();
    (path.starts_with("./") || path.starts_with("../") || path == "." || path == "..")
        .then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_lines() {
        assert_eq!(local_requirement("-e ./libs/core"), Some("./libs/core"));
        assert_eq!(
            local_requirement("--editable=../shared[extra]"),
            Some("../shared")
        );
        assert_eq!(
            local_requirement("file:../x ; python_version > '3'"),
            Some("../x")
        );
        assert_eq!(local_requirement("requests==2.31"), None);
        assert_eq!(local_requirement("-e git+https://x/y.git#egg=y"), None);
        assert_eq!(local_requirement("# ./not"), None);
        assert!(is_requirements("svc/requirements-dev.txt"));
        assert!(is_requirements("svc/requirements/base.txt"));
        assert!(!is_requirements("svc/notes.txt"));
        assert_eq!(normalise("My_Package.name"), "my-package-name");
    }
}
