//! `npm`: a `package.json` depends on a workspace package another service
//! owns: by `workspace:`, by `file:` or `link:` path, or by a version
//! range the local package's version satisfies (as Turborepo decides what
//! is internal). A same-named package from the registry, asked for by a
//! range the local one does not satisfy, is not an edge.

use std::collections::HashMap;

use serde_json::Value;

use super::{Found, Repo, Source, join, split};

/// The npm source.
pub struct Npm;

/// The dependency fields of a `package.json`.
const FIELDS: [&str; 4] = [
    "dependencies",
    "devDependencies",
    "peerDependencies",
    "optionalDependencies",
];

impl Source for Npm {
    fn name(&self) -> &'static str {
        "npm"
    }

    fn discover(&self, repo: &Repo<'_>, found: &mut Found) {
        let manifests: Vec<(&str, Value)> = repo
            .files
            .paths
            .iter()
            .filter(|p| split(p).1 == "package.json" && !p.split('/').any(|d| d == "node_modules"))
            .filter_map(|p| {
                let json: Value = serde_json::from_str(&repo.text(p)?).ok()?;
                Some((p.as_str(), json))
            })
            .collect();
        let workspaces = workspace_globs(repo, &manifests);
        // Workspace packages by name: their directory and version.
        let mut packages: HashMap<&str, (&str, &str)> = HashMap::new();
        for (path, json) in &manifests {
            let dir = split(path).0;
            let member = match &workspaces {
                Some(globs) => globs.iter().any(|g| g.is_match(dir)),
                None => true,
            };
            if let (true, Some(name)) = (member, json["name"].as_str()) {
                let version = json["version"].as_str().unwrap_or("0.0.0");
                packages.entry(name).or_insert((dir, version));
            }
        }
        for (path, json) in &manifests {
            let dir = split(path).0;
            for field in FIELDS {
                let Some(dependencies) = json[field].as_object() else {
                    continue;
                };
                for (name, spec) in dependencies {
                    let spec = spec.as_str().unwrap_or("");
                    let target = if let Some(local) = spec
                        .strip_prefix("file:")
                        .or_else(|| spec.strip_prefix("link:"))
                    {
                        join(dir, local)
                    } else {
                        packages.get(name.as_str()).and_then(|(target, version)| {
                            let internal = match spec.strip_prefix("workspace:") {
                                Some(_) => true,
                                None => satisfies(version, spec),
                            };
                            internal.then(|| target.to_string())
                        })
                    };
                    let Some(target) = target.filter(|t| t != dir) else {
                        continue;
                    };
                    let targets = repo.owners_under(&target);
                    found.link(repo, &[], path, &targets, "npm", "dependency");
                }
            }
        }
    }
}

/// The root's `workspaces` (an array, or `{packages: [...]}`) and
/// `pnpm-workspace.yaml`'s `packages`, as globs over directories; `None`
/// when the repository declares none (then every package counts).
fn workspace_globs(
    repo: &Repo<'_>,
    manifests: &[(&str, Value)],
) -> Option<Vec<globset::GlobMatcher>> {
    let mut patterns: Vec<String> = Vec::new();
    if let Some((_, root)) = manifests.iter().find(|(p, _)| *p == "package.json") {
        let list = root["workspaces"]
            .as_array()
            .or_else(|| root["workspaces"]["packages"].as_array());
        patterns.extend(
            list.into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
    }
    if let Some(text) = repo.text("pnpm-workspace.yaml") {
        // `packages:` then `- 'glob'` lines: all this source needs of YAML.
        let mut inside = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if !line.starts_with([' ', '\t', '-']) {
                inside = trimmed == "packages:";
                continue;
            }
            if let Some(item) = trimmed.strip_prefix('-').filter(|_| inside) {
                patterns.push(item.trim().trim_matches(['\'', '"']).to_string());
            }
        }
    }
    if patterns.is_empty() {
        return None;
    }
    Some(
        patterns
            .iter()
            .filter(|p| !p.starts_with('!'))
            .filter_map(|p| {
                let p = p.trim_start_matches("./").trim_end_matches('/');
                crate::pattern::compile(p).ok().map(|g| g.compile_matcher())
            })
            .collect(),
    )
}

/// Whether `version` satisfies npm range `range`: `*`, `x` ranges, exact,
/// `^`, `~`, comparisons, hyphen ranges, spaces for "and", `||` for "or".
/// Anything else (a tag such as `latest`, a URL) is not satisfied.
pub fn satisfies(version: &str, range: &str) -> bool {
    let Some(v) = parse(version) else {
        return false;
    };
    range.split("||").any(|alternative| {
        let alternative = alternative.trim();
        if let Some((low, high)) = alternative.split_once(" - ") {
            return compare(v, ">=", low.trim()) && compare(v, "<=", high.trim());
        }
        let mut any = false;
        let mut words = alternative.split_whitespace().peekable();
        while let Some(word) = words.next() {
            // `>= 1.2` written with a space.
            let word = if matches!(word, ">" | ">=" | "<" | "<=" | "=") {
                match words.next() {
                    Some(next) => format!("{word}{next}"),
                    None => return false,
                }
            } else {
                word.to_string()
            };
            let (op, rest) = split_op(&word);
            if !compare(v, op, rest) {
                return false;
            }
            any = true;
        }
        any || alternative.is_empty()
    })
}

type Version = (u64, u64, u64);

fn split_op(word: &str) -> (&str, &str) {
    for op in [">=", "<=", ">", "<", "=", "^", "~"] {
        if let Some(rest) = word.strip_prefix(op) {
            return (op, rest.trim_start_matches('v'));
        }
    }
    ("", word.trim_start_matches('v'))
}

/// A full version; pre-release and build parts are left out.
fn parse(text: &str) -> Option<Version> {
    let core = text
        .trim()
        .trim_start_matches('v')
        .split(['-', '+'])
        .next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// A partial version: `1`, `1.2`, `1.x`, `*`: the numbers given.
fn partial(text: &str) -> Option<Vec<u64>> {
    let core = text.split(['-', '+']).next()?;
    let mut numbers = Vec::new();
    for part in core.split('.') {
        match part {
            "x" | "X" | "*" | "" => break,
            n => numbers.push(n.parse().ok()?),
        }
    }
    Some(numbers)
}

fn compare(v: Version, op: &str, text: &str) -> bool {
    let Some(p) = partial(text) else {
        return false;
    };
    let get = |i: usize| p.get(i).copied().unwrap_or(0);
    let low = (get(0), get(1), get(2));
    // The first version past a partial one: `1.2` ends before `1.3.0`.
    let next = |n: u64| n.saturating_add(1);
    let past = match p.len() {
        0 => (u64::MAX, 0, 0),
        1 => (next(get(0)), 0, 0),
        2 => (get(0), next(get(1)), 0),
        _ => (get(0), get(1), next(get(2))),
    };
    match op {
        "" | "=" => low <= v && v < past,
        ">" => v >= past,
        ">=" => v >= low,
        "<" => v < low,
        "<=" => v < past,
        "~" => {
            let end = if p.len() >= 2 {
                (get(0), next(get(1)), 0)
            } else {
                past
            };
            low <= v && v < end
        }
        "^" => {
            let end = match (get(0), get(1), p.len()) {
                (0, 0, 3) => (0, 0, next(get(2))),
                (0, _, n) if n >= 2 => (0, next(get(1)), 0),
                (major, ..) => (next(major), 0, 0),
            };
            low <= v && v < end
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_ranges() {
        for (version, range, ok) in [
            ("1.2.3", "^1.0.0", true),
            ("2.0.0", "^1.0.0", false),
            ("0.2.5", "^0.2.1", true),
            ("0.3.0", "^0.2.1", false),
            ("1.2.9", "~1.2.3", true),
            ("1.3.0", "~1.2.3", false),
            ("1.2.3", "1.2.3", true),
            ("1.2.3", "1.x", true),
            ("1.2.3", "*", true),
            ("1.2.3", "", true),
            ("1.2.3", ">=1.0.0 <1.2.0", false),
            ("1.2.3", ">= 1.0.0 < 2", true),
            ("1.2.3", "1.0.0 - 1.2.3", true),
            ("1.2.3", "^2 || ^1", true),
            ("1.2.3", "latest", false),
            ("1.2.3", "github:org/repo", false),
            ("1.0.0", "2.0.0", false),
            ("1.0.0", "^18446744073709551615", false),
            ("1.0.0", "~0.18446744073709551615", false),
        ] {
            assert_eq!(satisfies(version, range), ok, "{version} {range}");
        }
    }
}
