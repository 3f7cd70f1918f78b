//! `ripple check`'s typo hunt: what the manifest names that the commit does
//! not have. A `dockerfile` or `context` that does not exist fails the
//! first publish; a path pattern that matches no tracked file silently
//! never triggers. Pure: the caller lists the commit's files.

use globset::GlobSetBuilder;

use crate::manifest::{Finding, Manifest, Place};
use crate::pattern::{self, PathPattern, PatternBody};

/// Every name in `manifest` that `files` (the commit's tracked files,
/// sorted) does not have.
pub fn typos(manifest: &Manifest, files: &[String]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let is_file = |path: &str| files.binary_search_by(|f| f.as_str().cmp(path)).is_ok();
    let is_dir = |path: &str| {
        let below = format!("{path}/");
        let at = files.partition_point(|f| f.as_str() < below.as_str());
        files.get(at).is_some_and(|f| f.starts_with(&below))
    };
    for (i, service) in manifest.services.iter().enumerate() {
        let Some(build) = &service.build else {
            continue;
        };
        let place = |key| Place::Service {
            service: i,
            key,
            item: None,
        };
        if !is_file(&build.dockerfile) {
            findings.push((
                place("dockerfile"),
                format!(
                    "`{}.dockerfile`: `{}` is not a file in this commit",
                    service.name, build.dockerfile
                ),
                Some("paths are relative to the repository root".into()),
            ));
        }
        if let Some(file) = &build.extras().build_args_file
            && !is_file(file)
        {
            findings.push((
                place("build_args_file"),
                format!(
                    "`{}.build_args_file`: `{file}` is not a file in this commit",
                    service.name
                ),
                Some("paths are relative to the repository root".into()),
            ));
        }
        let context = build.context.trim_end_matches('/');
        if context != "." && !context.is_empty() && !is_dir(context) {
            findings.push((
                place("context"),
                format!(
                    "`{}.context`: `{}` is not a directory in this commit",
                    service.name, build.context
                ),
                Some("paths are relative to the repository root".into()),
            ));
        }
    }

    // Every pattern that must match something, with its place.
    let mut wanted: Vec<(&PathPattern, Place, String)> = Vec::new();
    for (i, pattern) in manifest.settings.global_paths.iter().enumerate() {
        let place = Place::Setting {
            key: "global_paths",
            item: Some(i),
        };
        wanted.push((pattern, place, "`global_paths`".into()));
    }
    for (i, service) in manifest.services.iter().enumerate() {
        for (item, pattern) in service.paths.iter().enumerate() {
            let place = Place::Service {
                service: i,
                key: "paths",
                item: Some(item),
            };
            wanted.push((pattern, place, format!("`{}.paths`", service.name)));
        }
    }
    // One pass over the files for every glob at once.
    let mut globs = GlobSetBuilder::new();
    let mut glob_of = Vec::new();
    for (at, (pattern, ..)) in wanted.iter().enumerate() {
        if let PatternBody::Glob(source) = &pattern.body
            && !pattern.exclude
            && let Ok(glob) = pattern::compile(source)
        {
            globs.add(glob);
            glob_of.push(at);
        }
    }
    let mut matched = vec![false; wanted.len()];
    if let Ok(set) = globs.build() {
        let mut hits = Vec::new();
        for file in files {
            set.matches_into(file.as_str(), &mut hits);
            for &hit in &hits {
                matched[glob_of[hit]] = true;
            }
        }
    }
    for (at, (pattern, place, owner)) in wanted.into_iter().enumerate() {
        if pattern.exclude {
            continue;
        }
        let found = match &pattern.body {
            PatternBody::Prefix(prefix) => is_file(prefix) || is_dir(prefix),
            PatternBody::Glob(_) => matched[at],
        };
        if !found {
            findings.push((
                place,
                format!("{owner}: `{pattern}` matches no tracked file, so it never triggers"),
                Some("check the spelling; paths are relative to the repository root".into()),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_the_commit_lacks_are_found() {
        let manifest = Manifest::parse(
            r#"[settings]
global_paths = ["ci/**", "servces.toml", "!nothing/**"]

[[service]]
name = "api"
kind = "image"
paths = ["src/api", "src/ap", "src/**/*.go", "src/**/*.rs", "!src/none"]
image = "r/api"
dockerfile = "src/api/Dockerfile"
context = "src"

[[service]]
name = "web"
kind = "image"
paths = ["web/"]
image = "r/web"
dockerfile = "web/Dockerfile.prod"
context = "wbe"
"#,
            "services.toml",
        )
        .unwrap();
        let mut files: Vec<String> = [
            "ci/run",
            "services.toml",
            "src/api/Dockerfile",
            "src/api/main.go",
            "web/Dockerfile",
            "web/app.ts",
        ]
        .map(String::from)
        .to_vec();
        files.sort();
        let messages: Vec<String> = typos(&manifest, &files)
            .into_iter()
            .map(|(_, message, _)| message)
            .collect();
        assert_eq!(
            messages,
            [
                "`web.dockerfile`: `web/Dockerfile.prod` is not a file in this commit",
                "`web.context`: `wbe` is not a directory in this commit",
                "`global_paths`: `servces.toml` matches no tracked file, so it never triggers",
                "`api.paths`: `src/ap` matches no tracked file, so it never triggers",
                "`api.paths`: `src/**/*.rs` matches no tracked file, so it never triggers",
            ]
        );
    }
}
