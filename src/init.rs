//! `ripple init`: a first `services.toml` guessed from a repository's
//! files: an image per Dockerfile (its context from a compose file that
//! names it, else its folder), a library per Go module (or package
//! directory, in trees without modules), npm workspace package, Cargo
//! crate and Python project. Pure: files in, manifest text out; the
//! discovered edges are written after, by `sync`'s code.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::discover::{Files, split};

/// What `init` guessed, for its header and its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guess {
    /// The manifest's text, without `discovered` keys.
    pub text: String,
    /// The discovery sources whose files the repository has.
    pub sources: Vec<&'static str>,
    /// How many images and libraries.
    pub images: usize,
    /// How many libraries.
    pub libraries: usize,
}

/// One service to write.
struct Planned {
    name: String,
    dir: String,
    /// For images: (dockerfile, context, image).
    build: Option<(String, String, String)>,
    /// Extra paths (COPY sources no library owns).
    extra: Vec<String>,
}

/// Guesses a manifest for `files`, the default branch `branch` and the
/// repository's `tags`.
pub fn guess(files: &Files<'_>, branch: &str, tags: &[String]) -> Guess {
    let text = |path: &str| (files.read)(path).map(|b| String::from_utf8_lossy(&b).into_owned());
    let paths = &files.paths;
    let kept = |path: &str| {
        !path.split('/').any(|part| {
            matches!(part, "node_modules" | "vendor" | "testdata" | "target")
                || part.starts_with('.')
                || part.starts_with('_')
        })
    };
    let mut sources: Vec<&'static str> = Vec::new();

    // Images: every Dockerfile, its context from a compose file.
    let compose = compose_builds(paths, &text);
    let mut images: Vec<Planned> = Vec::new();
    // Dockerfiles per folder, counted once (not once per Dockerfile).
    let mut dockerfiles_in: HashMap<&str, usize> = HashMap::new();
    for path in paths.iter().filter(|p| kept(p) && is_dockerfile(p)) {
        *dockerfiles_in.entry(split(path).0).or_default() += 1;
    }
    for path in paths.iter().filter(|p| kept(p) && is_dockerfile(p)) {
        let (dir, file) = split(path);
        let from_compose = compose.get(path.as_str());
        let name = from_compose.map_or_else(
            || match file {
                "Dockerfile" => base(dir).to_string(),
                other => other
                    .trim_start_matches("Dockerfile.")
                    .trim_end_matches(".Dockerfile")
                    .trim_end_matches(".dockerfile")
                    .to_string(),
            },
            |c| c.0.clone(),
        );
        let context = from_compose.map_or_else(|| dir_or_dot(dir), |c| c.1.clone());
        let image = from_compose
            .and_then(|c| c.2.clone())
            .unwrap_or_else(|| format!("registry.example.org/{}", sanitise(&name)));
        // A folder of several Dockerfiles is no one image's: each owns
        // its Dockerfile (and what it copies).
        let shared = dockerfiles_in.get(dir).is_some_and(|&n| n > 1);
        images.push(Planned {
            name,
            dir: if dir.is_empty() || shared {
                path.clone()
            } else {
                dir.to_string()
            },
            build: Some((path.clone(), context, image)),
            extra: Vec::new(),
        });
    }
    if !images.is_empty() {
        sources.push("docker");
    }

    // Libraries, one per project.
    let mut libraries: Vec<Planned> = Vec::new();
    // Folders that already have a service: one lookup per candidate.
    let mut taken: std::collections::HashSet<String> =
        images.iter().map(|i| i.dir.clone()).collect();
    let mut library = |dir: &str| {
        let dir = dir.to_string();
        if taken.insert(dir.clone()) {
            libraries.push(Planned {
                name: base(&dir).to_string(),
                dir,
                build: None,
                extra: Vec::new(),
            });
        }
    };
    let modules: Vec<&str> = paths
        .iter()
        .filter(|p| kept(p) && split(p).1 == "go.mod")
        .map(|p| split(p).0)
        .collect();
    // A library per Go module; outside every module (GOPATH-style), one
    // per package directory.
    let module_dirs: std::collections::HashSet<&str> = modules.iter().copied().collect();
    let in_module = |dir: &str| {
        module_dirs.contains("")
            || crate::pattern::prefixes(dir).any(|prefix| module_dirs.contains(prefix))
    };
    let mut package_dirs: Vec<&str> = paths
        .iter()
        .filter(|p| kept(p) && p.ends_with(".go") && !p.ends_with("_test.go"))
        .map(|p| split(p).0)
        .filter(|dir| !in_module(dir))
        .collect();
    package_dirs.dedup();
    for dir in modules.iter().chain(&package_dirs) {
        library(dir);
    }
    if !modules.is_empty() || !package_dirs.is_empty() {
        sources.push("go");
    }
    let mut found = |name: &str, source: &'static str, is_project: &dyn Fn(&str) -> bool| {
        let mut any = false;
        for path in paths.iter().filter(|p| kept(p) && split(p).1 == name) {
            let (dir, _) = split(path);
            if !dir.is_empty() && is_project(path) {
                library(dir);
                any = true;
            }
        }
        if any && !sources.contains(&source) {
            sources.push(source);
        }
    };
    found("package.json", "npm", &|path| {
        text(path).is_some_and(|t| t.contains("\"name\""))
    });
    found("Cargo.toml", "cargo", &|path| {
        text(path).is_some_and(|t| t.lines().any(|l| l.trim() == "[package]"))
    });
    found("pyproject.toml", "python", &|path| {
        text(path).is_some_and(|t| t.lines().any(|l| l.trim() == "[project]"))
    });
    // setuptools projects: owned, though their `install_requires` names no
    // path for the python source to follow.
    found("setup.py", "python", &|path| {
        text(path).is_some_and(|t| t.contains("setuptools") || t.contains("distutils"))
    });
    found("setup.cfg", "python", &|path| {
        text(path).is_some_and(|t| t.lines().any(|l| l.trim() == "[metadata]"))
    });

    // Paths an image's COPY lines bring in that no library owns.
    let library_dirs: std::collections::HashSet<&str> =
        libraries.iter().map(|l| l.dir.as_str()).collect();
    // Whether `path` is a tracked file or has tracked files below it
    // (`paths` is sorted).
    let tracked = |path: &str| {
        let at = paths.partition_point(|p| p.as_str() < path);
        paths.get(at).is_some_and(|p| p == path) || {
            let below = format!("{path}/");
            let at = paths.partition_point(|p| p.as_str() < below.as_str());
            paths.get(at).is_some_and(|p| p.starts_with(&below))
        }
    };
    for image in &mut images {
        let Some((dockerfile, context, _)) = &image.build else {
            continue;
        };
        let Some(content) = text(dockerfile) else {
            continue;
        };
        for source in copy_sources(&content) {
            let Some(path) = crate::discover::join(context, &source) else {
                continue;
            };
            let owned = |dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
            if path.is_empty()
                || path == *context
                || owned(&image.dir)
                || crate::pattern::prefixes(&path).any(|dir| library_dirs.contains(dir))
                || crate::pattern::is_glob(&path)
                || !tracked(&path)
            {
                continue;
            }
            if !image.extra.contains(&path) {
                image.extra.push(path);
            }
        }
    }

    let mut all: Vec<Planned> = images.into_iter().chain(libraries).collect();
    name_uniquely(&mut all);
    let (image_count, library_count) = (
        all.iter().filter(|s| s.build.is_some()).count(),
        all.iter().filter(|s| s.build.is_none()).count(),
    );
    Guess {
        text: render(&all, branch, &release_tag(tags), &sources),
        sources,
        images: image_count,
        libraries: library_count,
    }
}

fn is_dockerfile(path: &str) -> bool {
    let name = split(path).1;
    name == "Dockerfile"
        || name.starts_with("Dockerfile.")
        || name.ends_with(".Dockerfile")
        || name.ends_with(".dockerfile")
}

fn base(dir: &str) -> &str {
    match split(dir).1 {
        "" => "root",
        name => name,
    }
}

fn dir_or_dot(dir: &str) -> String {
    if dir.is_empty() {
        ".".into()
    } else {
        dir.into()
    }
}

/// A valid service name: `[a-z0-9][a-z0-9._-]*`.
fn sanitise(name: &str) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_start_matches(['.', '_', '-']).to_string();
    if out.is_empty() {
        "service".into()
    } else {
        out
    }
}

/// Names from folders, made valid and unique: a clash takes its parent
/// folder's name in front, then a number.
fn name_uniquely(services: &mut [Planned]) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for s in services.iter() {
        *counts.entry(sanitise(&s.name)).or_default() += 1;
    }
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    // The next number to try after each name: many services of one name
    // take one try each, not one per earlier namesake.
    let mut next: HashMap<String, usize> = HashMap::new();
    for s in services.iter_mut() {
        let mut name = sanitise(&s.name);
        if counts[&name] > 1 {
            let parent = split(split(&s.dir).0).1;
            if !parent.is_empty() {
                name = sanitise(&format!("{parent}-{name}"));
            }
        }
        let mut unique = name.clone();
        if taken.contains(&unique) {
            let n = next.entry(name.clone()).or_insert(2);
            loop {
                unique = format!("{name}-{n}");
                *n += 1;
                if !taken.contains(&unique) {
                    break;
                }
            }
        }
        taken.insert(unique.clone());
        s.name = unique;
    }
}

/// `release_tag` fitting the repository's tags: `v*` when most look like
/// `v1.2.3`, else `release-*`.
fn release_tag(tags: &[String]) -> String {
    let v = tags
        .iter()
        .filter(|t| t.starts_with('v') && t[1..].starts_with(|c: char| c.is_ascii_digit()))
        .count();
    let bare = tags
        .iter()
        .filter(|t| t.starts_with(|c: char| c.is_ascii_digit()))
        .count();
    let release = tags.iter().filter(|t| t.starts_with("release-")).count();
    if v > release && v >= bare && v > 0 {
        "v*".into()
    } else if bare > release && bare > 0 {
        "*".into()
    } else {
        "release-*".into()
    }
}

/// The sources of a Dockerfile's COPY/ADD lines that copy from the
/// context (no `--from`).
fn copy_sources(dockerfile: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        let Some((word, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if !matches!(word.to_ascii_uppercase().as_str(), "COPY" | "ADD") || rest.contains("--from")
        {
            continue;
        }
        let mut words: Vec<&str> = rest
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        words.pop();
        out.extend(
            words
                .into_iter()
                .filter(|w| *w != "." && *w != "./")
                .map(str::to_string),
        );
    }
    out
}

/// Compose services that build: Dockerfile path -> (name, context, image).
fn compose_builds(
    paths: &[String],
    text: &dyn Fn(&str) -> Option<String>,
) -> HashMap<String, (String, String, Option<String>)> {
    let mut found = HashMap::new();
    for path in paths.iter().filter(|p| {
        matches!(
            split(p).1,
            "docker-compose.yml" | "docker-compose.yaml" | "compose.yml" | "compose.yaml"
        )
    }) {
        let Some(content) = text(path) else { continue };
        let Ok(doc) = serde_norway::from_str::<serde_norway::Value>(&content) else {
            continue;
        };
        let dir = split(path).0;
        let Some(services) = doc.get("services").and_then(|s| s.as_mapping()) else {
            continue;
        };
        for (name, service) in services {
            let Some(name) = name.as_str() else { continue };
            let (context, dockerfile) = match service.get("build") {
                Some(serde_norway::Value::String(context)) => {
                    (context.clone(), "Dockerfile".into())
                }
                Some(build) => (
                    build
                        .get("context")
                        .and_then(|c| c.as_str())
                        .unwrap_or(".")
                        .to_string(),
                    build
                        .get("dockerfile")
                        .and_then(|d| d.as_str())
                        .unwrap_or("Dockerfile")
                        .to_string(),
                ),
                None => continue,
            };
            let Some(context) = crate::discover::join(dir, &context) else {
                continue;
            };
            let Some(file) = crate::discover::join(&context, &dockerfile) else {
                continue;
            };
            let image = service.get("image").and_then(|i| i.as_str()).map(|i| {
                // Without its tag: ripple tags images itself.
                match i.rfind(':') {
                    Some(colon) if colon > i.rfind('/').unwrap_or(0) => i[..colon].to_string(),
                    _ => i.to_string(),
                }
            });
            found.insert(file, (name.to_string(), dir_or_dot(&context), image));
        }
    }
    found
}

/// The manifest's text.
fn render(services: &[Planned], branch: &str, release: &str, sources: &[&str]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let list = |items: &[String]| {
        format!(
            "[{}]",
            items
                .iter()
                .map(|i| quote(i))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut out = String::from(
        "# Written by `ripple init` from this repository's files. Guessed, so check:\n\
         # - service names (from folder names) and kinds (each Dockerfile an image,\n\
         #   each Go module, npm package, Cargo crate or Python project a library);\n\
         # - images (`registry.example.org/<name>` unless a compose file names one);\n\
         # - publish_branches (the default branch) and release_tag (from the tags).\n\
         # The `discovered` keys come from the code: `ripple sync` rewrites them.\n\n",
    );
    let _ = writeln!(out, "[settings]");
    let _ = writeln!(out, "publish_branches = {}", list(&[branch.to_string()]));
    let _ = writeln!(out, "release_tag = {}", quote(release));
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let _ = writeln!(out, "discover = {}", list(&sources));
    // Each service's own folder, less the folders of services inside it.
    let dirs: BTreeMap<&str, &str> = services
        .iter()
        .map(|s| (s.dir.as_str(), s.name.as_str()))
        .collect();
    for service in services {
        let mut paths = vec![service.dir.clone()];
        paths.extend(service.extra.iter().cloned());
        let mut excluded: Vec<&str> = Vec::new();
        for (dir, _) in dirs.range::<str, _>((
            std::ops::Bound::Excluded(service.dir.as_str()),
            std::ops::Bound::Unbounded,
        )) {
            if !dir.starts_with(&format!("{}/", service.dir)) {
                break;
            }
            // Only the outermost: excluding a folder excludes what it holds.
            if excluded.iter().any(|e| dir.starts_with(&format!("{e}/"))) {
                continue;
            }
            excluded.push(dir);
            paths.push(format!("!{dir}"));
        }
        let _ = writeln!(out, "\n[[service]]");
        let _ = writeln!(out, "name = {}", quote(&service.name));
        match &service.build {
            Some((dockerfile, context, image)) => {
                let _ = writeln!(out, "kind = \"image\"");
                let _ = writeln!(out, "paths = {}", list(&paths));
                let _ = writeln!(out, "image = {}", quote(image));
                let _ = writeln!(out, "dockerfile = {}", quote(dockerfile));
                let _ = writeln!(out, "context = {}", quote(context));
            }
            None => {
                let _ = writeln!(out, "kind = \"library\"");
                let _ = writeln!(out, "paths = {}", list(&paths));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_tags_follow_the_repository() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(release_tag(&tags(&["v1.0.0", "v1.1.0", "release-2"])), "v*");
        assert_eq!(release_tag(&tags(&["1.0", "2.0"])), "*");
        assert_eq!(release_tag(&tags(&[])), "release-*");
        assert_eq!(release_tag(&tags(&["release-1", "v1"])), "release-*");
    }

    #[test]
    fn names_are_valid_and_unique() {
        assert_eq!(sanitise("My App!"), "my-app-");
        assert_eq!(sanitise("_x"), "x");
        let mut services = vec![
            Planned {
                name: "api".into(),
                dir: "go/api".into(),
                build: None,
                extra: vec![],
            },
            Planned {
                name: "api".into(),
                dir: "js/api".into(),
                build: None,
                extra: vec![],
            },
        ];
        name_uniquely(&mut services);
        assert_eq!(services[0].name, "go-api");
        assert_eq!(services[1].name, "js-api");
    }

    #[test]
    fn a_folder_of_dockerfiles_and_nested_libraries() {
        let files = Files::from_map(
            [
                ("backend/Dockerfile.api", "FROM x\nADD . /src\n"),
                ("backend/Dockerfile.worker", "FROM x\n"),
                ("backend/main/go.mod", "module example.org/main\n"),
                ("backend/main/a.go", "package main\n"),
                ("backend/main/sub/go.mod", "module example.org/main/sub\n"),
                ("backend/main/sub/b.go", "package sub\n"),
                ("web/Dockerfile", "FROM node\nCOPY shared/ /s\n"),
                ("web/app/package.json", "{\"name\": \"app\"}"),
                ("web/app/inner/package.json", "{\"name\": \"inner\"}"),
                (
                    "py/core/setup.py",
                    "from setuptools import setup\nsetup(name='core')\n",
                ),
                ("py/core/cli/setup.py", "def setup(args):\n    pass\n"),
            ]
            .into_iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect(),
        );
        let guess = guess(&files, "main", &[]);
        let manifest = crate::manifest::Manifest::parse(&guess.text, "services.toml").unwrap();
        let paths = |name: &str| -> Vec<String> {
            manifest
                .service(name)
                .unwrap()
                .paths
                .iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(paths("api"), ["backend/Dockerfile.api"], "{}", guess.text);
        assert_eq!(paths("worker"), ["backend/Dockerfile.worker"]);
        assert_eq!(paths("main"), ["backend/main", "!backend/main/sub"]);
        assert_eq!(
            paths("web"),
            ["web", "!web/app"],
            "only the outermost nested folder"
        );
        assert_eq!(paths("app"), ["web/app", "!web/app/inner"]);
        assert_eq!(
            paths("core"),
            ["py/core"],
            "a setuptools project; cli/setup.py is no project"
        );
        assert_eq!(guess.sources, ["docker", "go", "npm", "python"]);
    }
}
