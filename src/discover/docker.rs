//! `docker`: a Dockerfile's `FROM` an image another service builds, and
//! `COPY`/`ADD` of a path (relative to the build context) that another
//! service owns. `COPY --from=` a stage and a copy of the whole context
//! give no edge.

use std::collections::HashMap;

use super::{Found, Repo, Source, join};

/// The docker source.
pub struct Docker;

impl Source for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn discover(&self, repo: &Repo<'_>, found: &mut Found) {
        let services = &repo.manifest.services;
        let images = Images::new(repo);
        // Read once, and only when a Dockerfile runs `go build`.
        let mut go: Option<Option<super::go::GoTree<'_>>> = None;
        for (i, service) in services.iter().enumerate() {
            let Some(build) = &service.build else {
                continue;
            };
            let Some(text) = repo.text(&build.dockerfile) else {
                continue;
            };
            let mut stages: Vec<String> = Vec::new();
            for (instruction, arguments) in instructions(&text) {
                match instruction.as_str() {
                    "FROM" => {
                        let (image, stage) = from(&arguments);
                        // `FROM build` names an earlier stage, not an image.
                        let image = image.filter(|image| !stages.contains(image));
                        stages.extend(stage);
                        let Some(image) = image else { continue };
                        let targets = images.builders(&image);
                        found.link(repo, &[i], &build.dockerfile, &targets, "docker", "FROM");
                    }
                    "RUN" => {
                        let packages = go_packages(&arguments);
                        if packages.is_empty() {
                            continue;
                        }
                        let Some(tree) = go.get_or_insert_with(|| super::go::GoTree::new(repo))
                        else {
                            continue;
                        };
                        let mut targets = Vec::new();
                        for package in packages {
                            if let Some(dir) = tree.resolve(&package, &build.context) {
                                targets.extend(tree.owners(repo, dir));
                            }
                        }
                        targets.sort_unstable();
                        targets.dedup();
                        found.link(
                            repo,
                            &[i],
                            &build.dockerfile,
                            &targets,
                            "docker",
                            "go build",
                        );
                    }
                    "COPY" | "ADD" => {
                        let targets = copied(repo, &build.context, &arguments);
                        let what = if instruction == "COPY" { "COPY" } else { "ADD" };
                        found.link(repo, &[i], &build.dockerfile, &targets, "docker", what);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A `COPY`/`ADD` that brings in a file its image's input hash does not
/// cover: no service of the image's dependency closure (itself included)
/// owns it, nor `global_paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    /// The image (position in the manifest).
    pub service: usize,
    /// Its Dockerfile.
    pub dockerfile: String,
    /// The instruction, as written (`COPY vendor /src/vendor`).
    pub instruction: String,
    /// How many files it brings in uncovered, and the first of them.
    pub files: usize,
    /// The first such file.
    pub example: String,
}

/// Every `COPY`/`ADD` of an image that brings in files its input hash
/// misses. `closure(i)` says which services image `i`'s hash covers;
/// `ignored` drops files that count for nothing anyway.
pub fn uncovered_copies(
    repo: &Repo<'_>,
    closure: &dyn Fn(usize) -> Vec<bool>,
    ignored: &dyn Fn(&str) -> bool,
) -> Vec<Uncovered> {
    let mut found = Vec::new();
    for (i, service) in repo.manifest.services.iter().enumerate() {
        let Some(build) = &service.build else {
            continue;
        };
        let Some(text) = repo.text(&build.dockerfile) else {
            continue;
        };
        let covered = closure(i);
        let mut scratch = Vec::new();
        for (instruction, arguments) in instructions(&text) {
            if instruction != "COPY" && instruction != "ADD" {
                continue;
            }
            let (flags, sources) = copy_sources(&arguments);
            if flags.iter().any(|f| f.starts_with("--from")) {
                continue;
            }
            let mut missed = sources
                .iter()
                .filter(|s| !s.contains("://") && !s.starts_with("git@"))
                .filter_map(|source| join(&build.context, source))
                .flat_map(|path| {
                    if crate::pattern::is_glob(&path) {
                        let matcher = crate::pattern::compile(&path)
                            .ok()
                            .map(|g| g.compile_matcher());
                        repo.under(literal_dir(&path))
                            .iter()
                            .filter(|f| matcher.as_ref().is_some_and(|m| m.is_match(f.as_str())))
                            .collect::<Vec<_>>()
                    } else if repo.is_file(&path) {
                        repo.files.paths.iter().filter(|f| **f == path).collect()
                    } else {
                        repo.under(&path).iter().collect()
                    }
                })
                .filter(|file| !ignored(file))
                .filter(|file| {
                    let owners = repo.matcher.owners(file, &mut scratch);
                    !owners.global && !owners.services.iter().any(|&o| covered[o])
                });
            if let Some(first) = missed.next() {
                found.push(Uncovered {
                    service: i,
                    dockerfile: build.dockerfile.to_string(),
                    instruction: format!("{instruction} {arguments}"),
                    files: 1 + missed.count(),
                    example: first.clone(),
                });
            }
        }
    }
    found
}

/// The instructions of a Dockerfile, upper-cased, with their arguments:
/// continuation lines joined, comments and blank lines left out.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if !current.is_empty() && trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (word, rest) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((current.as_str(), ""));
                out.push((word.to_ascii_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

/// `FROM [--platform=...] image [AS name]`: the image without tag or
/// digest (`None` when it names a variable), and the stage's name.
fn from(arguments: &str) -> (Option<String>, Option<String>) {
    let words: Vec<&str> = arguments
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .collect();
    let stage = match words.as_slice() {
        [_, as_, name, ..] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
        _ => None,
    };
    let image = words.first().and_then(|image| {
        if image.contains('$') || image.eq_ignore_ascii_case("scratch") {
            return None;
        }
        let image = image.split('@').next().unwrap_or(image);
        // A tag is a `:` after the last `/` (a registry port comes before).
        let name = match image.rfind(':') {
            Some(colon) if colon > image.rfind('/').unwrap_or(0) => &image[..colon],
            _ => image,
        };
        Some(name.to_ascii_lowercase())
    });
    (image, stage)
}

/// Who builds which image, looked up once per `FROM`.
struct Images {
    /// Lower-cased image name -> the services building it.
    full: HashMap<String, Vec<usize>>,
    /// The same without registry hosts.
    short: HashMap<String, Vec<usize>>,
}

impl Images {
    fn new(repo: &Repo<'_>) -> Images {
        let mut images = Images {
            full: HashMap::new(),
            short: HashMap::new(),
        };
        for (i, service) in repo.manifest.services.iter().enumerate() {
            if let Some(build) = &service.build {
                let name = build.image.as_str().to_ascii_lowercase();
                images
                    .short
                    .entry(without_registry(&name).to_string())
                    .or_default()
                    .push(i);
                images.full.entry(name).or_default().push(i);
            }
        }
        images
    }

    /// The services that build `image`: by the full name, else by the
    /// name without its registry host when exactly one service builds
    /// that.
    fn builders(&self, image: &str) -> Vec<usize> {
        if let Some(exact) = self.full.get(image) {
            return exact.clone();
        }
        match self.short.get(without_registry(image)) {
            Some(loose) if loose.len() == 1 => loose.clone(),
            _ => Vec::new(),
        }
    }
}

/// An image name without its registry host (Docker's rule: a first
/// component holding `.` or `:`, or `localhost`).
fn without_registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => image,
    }
}

/// The Go packages a `RUN` line builds by import path: the arguments of
/// `go build` and `go install` that are not flags and name a path with a
/// `/` (a relative `./x` is the context's own code).
fn go_packages(run: &str) -> Vec<String> {
    let mut packages = Vec::new();
    let words: Vec<&str> = run.split_whitespace().collect();
    for (i, pair) in words.windows(2).enumerate() {
        if pair[0] != "go" || !matches!(pair[1], "build" | "install") {
            continue;
        }
        let mut skip_value = false;
        for word in &words[i + 2..] {
            if matches!(*word, "&&" | "||" | ";" | "|") || word.ends_with(';') {
                break;
            }
            if skip_value {
                skip_value = false;
                continue;
            }
            if let Some(flag) = word.strip_prefix('-') {
                // Flags that take the next word as their value.
                skip_value = !flag.contains('=')
                    && matches!(
                        flag.trim_start_matches('-'),
                        "o" | "ldflags" | "gcflags" | "tags" | "mod" | "p" | "asmflags"
                    );
                continue;
            }
            let word = word.trim_matches(['"', '\'']);
            let word = word.split('@').next().unwrap_or(word);
            if word.contains('/') && !word.starts_with('.') && !word.starts_with('/') {
                packages.push(word.trim_end_matches("/...").to_string());
            }
        }
    }
    packages
}

/// The owners of what `COPY`/`ADD` brings in from the context.
fn copied(repo: &Repo<'_>, context: &str, arguments: &str) -> Vec<usize> {
    let (flags, sources) = copy_sources(arguments);
    if flags.iter().any(|f| f.starts_with("--from")) {
        return Vec::new(); // from a stage or an image, not the context
    }
    let mut owners = Vec::new();
    for source in sources {
        if source.contains("://") || source.starts_with("git@") {
            continue;
        }
        let Some(path) = join(context, &source) else {
            continue;
        };
        let whole = join(context, ".").unwrap_or_default();
        if path == whole || source == "*" {
            continue; // the whole context
        }
        if crate::pattern::is_glob(&path) {
            let Ok(glob) = crate::pattern::compile(&path) else {
                continue;
            };
            let matcher = glob.compile_matcher();
            let dir = literal_dir(&path);
            for file in repo.under(dir) {
                if matcher.is_match(file) {
                    owners.extend(repo.owners(file));
                }
            }
        } else {
            owners.extend(repo.owners_under(&path));
        }
    }
    owners.sort_unstable();
    owners.dedup();
    owners
}

/// The flags and the sources (every argument but the destination) of a
/// `COPY`/`ADD`, in shell or JSON form.
fn copy_sources(arguments: &str) -> (Vec<String>, Vec<String>) {
    let mut words: Vec<String> = Vec::new();
    let mut flags = Vec::new();
    let mut rest = arguments.trim();
    while let Some(flag) = rest.strip_prefix("--") {
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        flags.push(format!("--{}", &flag[..end]));
        rest = flag[end..].trim_start();
    }
    if rest.starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(rest) {
            words = list;
        }
    } else {
        words = rest.split_whitespace().map(str::to_string).collect();
    }
    words.pop(); // the destination
    (flags, words)
}

/// The directory before a glob's first glob character.
fn literal_dir(glob: &str) -> &str {
    let first = glob.find(['*', '?', '[', '{']).unwrap_or(glob.len());
    match glob[..first].rfind('/') {
        Some(slash) => &glob[..slash],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_join_continuations_and_skip_comments() {
        let text = "# syntax=docker/dockerfile:1\nFROM golang:1.22 AS build\nRUN a \\\n  # note\n  && b\ncopy --chown=1 src/ /x\n";
        let got = instructions(text);
        assert_eq!(got[0], ("FROM".into(), "golang:1.22 AS build".into()));
        assert_eq!(got[1].0, "RUN");
        assert_eq!(got[2], ("COPY".into(), "--chown=1 src/ /x".into()));
    }

    #[test]
    fn from_reads_images_and_stages() {
        assert_eq!(
            from("--platform=$BUILDPLATFORM registry.example.org:5000/base/go:1.2 AS build"),
            (
                Some("registry.example.org:5000/base/go".into()),
                Some("build".into())
            )
        );
        assert_eq!(from("base@sha256:abc"), (Some("base".into()), None));
        assert_eq!(from("${BASE}"), (None, None));
        assert_eq!(from("scratch"), (None, None));
    }

    #[test]
    fn copies_read_flags_sources_and_json() {
        assert_eq!(
            copy_sources("--from=build /out /app"),
            (vec!["--from=build".to_string()], vec!["/out".to_string()])
        );
        assert_eq!(
            copy_sources("[\"a b\", \"c\", \"/dest\"]"),
            (Vec::new(), vec!["a b".to_string(), "c".to_string()])
        );
        assert_eq!(literal_dir("src/lib/*.go"), "src/lib");
        assert_eq!(literal_dir("*.go"), "");
    }

    #[test]
    fn go_builds_name_packages() {
        assert_eq!(
            go_packages(
                "CGO_ENABLED=0 GOOS=linux go build -a -ldflags '-extldflags \"-static\"' github.com/org/repo/cmd/api"
            ),
            ["github.com/org/repo/cmd/api"]
        );
        assert_eq!(
            go_packages("go install -o /bin/x example.org/a/cmd/x@latest && go build ./..."),
            ["example.org/a/cmd/x"]
        );
        assert!(go_packages("go build ./cmd/x").is_empty());
        assert!(go_packages("apk add go").is_empty());
    }

    #[test]
    fn registry_hosts_are_dropped_like_docker_does() {
        assert_eq!(
            without_registry("registry.example.org/team/app"),
            "team/app"
        );
        assert_eq!(without_registry("localhost/app"), "app");
        assert_eq!(without_registry("team/app"), "team/app");
    }
}
