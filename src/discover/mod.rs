//! Dependency discovery: the edges the code itself states (a Dockerfile's
//! `FROM`, a Go import, ...), read from a repository's files at one
//! commit, each with the file that states it. One source a module, all
//! behind [`Source`]. Pure: the files come in as [`Files`], which the
//! caller reads from git.
//!
//! "A file of A" and "B owns" use the manifest's path rule. A file that
//! refers to a target gives an edge from each service owning the file to
//! each service owning the target that does not also own the file, so a
//! catch-all suite that owns everything never becomes a target.

use std::collections::{BTreeMap, HashMap};

use crate::graph::Matcher;
use crate::manifest::Manifest;

mod cargo;
pub mod docker;
mod go;
mod npm;
mod python;

/// The sources, by the name `[settings] discover` and `discovered` use.
pub const SOURCES: &[&str] = &["docker", "go", "npm", "cargo", "python"];

/// Whether `name` is a source.
pub fn is_source(name: &str) -> bool {
    known_source(name).is_some()
}

/// `name` as [`SOURCES`] spells it, when it is a source: kept by every
/// discovered edge of a manifest without a copy of its own.
pub fn known_source(name: &str) -> Option<&'static str> {
    SOURCES.iter().copied().find(|s| *s == name)
}

/// The source called `name`.
fn source(name: &str) -> Option<&'static dyn Source> {
    match name {
        "docker" => Some(&docker::Docker),
        "go" => Some(&go::Go),
        "npm" => Some(&npm::Npm),
        "cargo" => Some(&cargo::Cargo),
        "python" => Some(&python::Python),
        _ => None,
    }
}

/// One way the code states a dependency.
pub trait Source: Sync {
    /// Its name.
    fn name(&self) -> &'static str;

    /// Every edge it finds, through `found`.
    fn discover(&self, repo: &Repo<'_>, found: &mut Found);
}

/// Reads a file's contents, when it can.
pub type Reader<'a> = Box<dyn Fn(&str) -> Option<Vec<u8>> + 'a>;

/// A repository's tracked files at one commit, and their contents.
pub struct Files<'a> {
    /// Every tracked file, sorted.
    pub paths: Vec<String>,
    /// The contents of a file, when it can be read.
    pub read: Reader<'a>,
}

impl Files<'_> {
    /// Files from a map of paths to contents, for tests and tools.
    pub fn from_map(files: BTreeMap<String, String>) -> Files<'static> {
        let paths = files.keys().cloned().collect();
        Files {
            paths,
            read: Box::new(move |path| files.get(path).map(|t| t.as_bytes().to_vec())),
        }
    }
}

/// What a source sees: the manifest, its files and who owns what.
pub struct Repo<'a> {
    /// The manifest.
    pub manifest: &'a Manifest,
    /// The files.
    pub files: &'a Files<'a>,
    matcher: Matcher<'a>,
}

impl<'a> Repo<'a> {
    /// The manifest's files, with its matcher compiled.
    pub fn new(manifest: &'a Manifest, files: &'a Files<'a>) -> Repo<'a> {
        Repo {
            manifest,
            files,
            matcher: Matcher::new(manifest),
        }
    }
}

impl Repo<'_> {
    /// The services owning `path`, by the manifest's path rule.
    pub fn owners(&self, path: &str) -> Vec<usize> {
        let mut scratch = Vec::new();
        self.matcher.owners(path, &mut scratch).services
    }

    /// The text of `path`, when it is a tracked file and UTF-8 enough.
    pub fn text(&self, path: &str) -> Option<String> {
        (self.files.read)(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The tracked files under directory `dir` (`""`: all), sorted.
    pub fn under<'p>(&'p self, dir: &str) -> &'p [String] {
        let paths = &self.files.paths;
        if dir.is_empty() {
            return paths;
        }
        let prefix = format!("{dir}/");
        let start = paths.partition_point(|p| p.as_str() < prefix.as_str());
        let end = start + paths[start..].partition_point(|p| p.starts_with(&prefix));
        &paths[start..end]
    }

    /// The services owning `path` when it is a file, else any file under
    /// it: what a reference to a path or a directory reaches.
    pub fn owners_under(&self, path: &str) -> Vec<usize> {
        if self.is_file(path) {
            return self.owners(path);
        }
        let mut owners: Vec<usize> = self
            .under(path)
            .iter()
            .flat_map(|f| self.owners(f))
            .collect();
        owners.sort_unstable();
        owners.dedup();
        owners
    }

    /// Whether `path` is a tracked file.
    pub fn is_file(&self, path: &str) -> bool {
        self.files
            .paths
            .binary_search_by(|p| p.as_str().cmp(path))
            .is_ok()
    }
}

/// One discovered edge and where it is stated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The dependent service (position in the manifest).
    pub from: usize,
    /// The service it depends on.
    pub to: usize,
    /// The source that found it.
    pub source: &'static str,
    /// The file that states it.
    pub file: String,
    /// What in the file: `import`, `FROM`, `COPY`, ...
    pub what: &'static str,
}

impl Edge {
    /// How `explain` names it: `go import in src/x/main.go`.
    pub fn evidence(&self) -> String {
        format!("{} {} in {}", self.source, self.what, self.file)
    }
}

/// The edges found so far, the first statement of each kept.
#[derive(Debug, Default)]
pub struct Found {
    edges: Vec<Edge>,
    seen: HashMap<(usize, usize, &'static str), ()>,
}

impl Found {
    /// `file`, owned by `from` (and by whoever owns it), refers to
    /// something that `targets` own: an edge from each owner of the file
    /// to each target that does not own the file too. An owner that owns
    /// the target as well gets none: its own paths already cover it.
    pub fn link(
        &mut self,
        repo: &Repo<'_>,
        from: &[usize],
        file: &str,
        targets: &[usize],
        source: &'static str,
        what: &'static str,
    ) {
        self.link_owned(&repo.owners(file), from, file, targets, source, what);
    }

    /// [`Found::link`] with the file's owners already looked up.
    pub fn link_owned(
        &mut self,
        owners: &[usize],
        from: &[usize],
        file: &str,
        targets: &[usize],
        source: &'static str,
        what: &'static str,
    ) {
        let mut sources: Vec<usize> = from.iter().chain(owners).copied().collect();
        sources.sort_unstable();
        sources.dedup();
        for &a in sources.iter().filter(|a| !targets.contains(a)) {
            for &b in targets {
                if a == b || owners.contains(&b) || from.contains(&b) {
                    continue;
                }
                if self.seen.insert((a, b, source), ()).is_none() {
                    self.edges.push(Edge {
                        from: a,
                        to: b,
                        source,
                        file: file.to_string(),
                        what,
                    });
                }
            }
        }
    }
}

/// Runs `sources` over `files`: every edge the code states, sorted by
/// dependent, source and dependency.
pub fn discover(manifest: &Manifest, files: &Files<'_>, sources: &[String]) -> Vec<Edge> {
    let repo = Repo::new(manifest, files);
    let mut found = Found::default();
    for name in sources {
        if let Some(source) = source(name) {
            source.discover(&repo, &mut found);
        }
    }
    let mut edges = found.edges;
    edges.sort_by(|a, b| (a.from, a.source, a.to).cmp(&(b.from, b.source, b.to)));
    edges
}

/// Globs of the files whose change can change what `source` finds (beyond
/// the manifest itself, which names Dockerfiles and owners).
pub fn watched(source: &str) -> &'static [&'static str] {
    match source {
        "docker" => &[
            "**/Dockerfile",
            "**/Dockerfile.*",
            "**/*.Dockerfile",
            "**/*.dockerfile",
        ],
        "go" => &["**/*.go", "**/go.mod"],
        "npm" => &["**/package.json", "pnpm-workspace.yaml"],
        "cargo" => &["**/Cargo.toml"],
        "python" => &[
            "**/pyproject.toml",
            "**/requirements*.txt",
            "**/requirements/*.txt",
        ],
        _ => &[],
    }
}

/// `(dir, name)` of a path.
pub(crate) fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

/// `base` joined with a relative `path`, `.` and `..` resolved; `None`
/// when it leaves the repository.
pub(crate) fn join(base: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        base.split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect()
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dockerfile_that_builds_a_go_package_depends_on_its_owner() {
        let manifest = Manifest::parse(
            "[[service]]\nname = \"api\"\nkind = \"image\"\npaths = [\"docker/api\"]\n\
             image = \"r/api\"\ndockerfile = \"docker/api/Dockerfile\"\ncontext = \".\"\n\n\
             [[service]]\nname = \"server\"\nkind = \"library\"\npaths = [\"src/server\"]\n",
            "services.toml",
        )
        .unwrap();
        let files = Files::from_map(
            [
                (
                    "docker/api/Dockerfile",
                    "FROM golang AS b\nADD . /go/src/x\nRUN go build -o /api github.com/org/mono/src/server/cmd/api\n",
                ),
                ("src/server/cmd/api/main.go", "package main\n"),
            ]
            .into_iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect(),
        );
        let edges = discover(&manifest, &files, &["docker".to_string()]);
        assert_eq!(edges.len(), 1, "{edges:?}");
        assert_eq!((edges[0].from, edges[0].to), (0, 1));
        assert_eq!(
            edges[0].evidence(),
            "docker go build in docker/api/Dockerfile"
        );
    }

    #[test]
    fn paths_join_like_a_file_system() {
        assert_eq!(join("a/b", "../c").as_deref(), Some("a/c"));
        assert_eq!(join("a", "./x/./y/").as_deref(), Some("a/x/y"));
        assert_eq!(join("", "x").as_deref(), Some("x"));
        assert_eq!(join("a", "../../x"), None);
        assert_eq!(join(".", "src").as_deref(), Some("src"));
    }
}
