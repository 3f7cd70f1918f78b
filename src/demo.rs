//! `ripple demo`: builds an example monorepo with real git history and a
//! feature branch, then plans its pull request through the same code path
//! as `ripple plan`. Lets a newcomer see a real plan with nothing installed.

use std::path::Path;

use crate::backend::{Backend, drone};
use crate::changes::{self, Event, Request};
use crate::error::{Error, Result, git};
use crate::fixture::RepoBuilder;
use crate::graph::{ServiceGraph, Why};
use crate::manifest::Manifest;
use crate::plan;
use crate::render;

/// The demo's manifest, also a worked example of the format.
pub const MANIFEST: &str = include_str!("demo/services.toml");

/// The feature branch whose pull request the demo plans.
pub const FEATURE_BRANCH: &str = "feature/faster-search";

const FILES: &[(&str, &str)] = &[
    ("README.md", "# demo monorepo\n"),
    ("docker/go/Dockerfile", "FROM golang:1.21\n"),
    ("docker/python/Dockerfile", "FROM python:3.12\n"),
    ("src/backend/go.main/store.go", "package main\n"),
    (
        "src/backend/go.main/search.go",
        "package main\n\nfunc Search() {}\n",
    ),
    ("src/backend/api/main.go", "package main\n"),
    (
        "src/backend/api/Dockerfile",
        "FROM registry.example.org/demo/base-go\n",
    ),
    ("src/backend/lmtpd/main.go", "package main\n"),
    (
        "src/backend/lmtpd/Dockerfile",
        "FROM registry.example.org/demo/base-go\n",
    ),
    ("src/worker/worker.py", "def run():\n    pass\n"),
    ("src/worker/requirements.txt", "pytest\n"),
    (
        "src/worker/Dockerfile",
        "FROM registry.example.org/demo/base-python\n",
    ),
    ("src/web/package.json", "{}\n"),
    ("src/web/README.md", "# web\n"),
    ("src/web/Dockerfile", "FROM node:20\n"),
];

/// Builds the example repository in `root`: `main` with every service,
/// `develop` from it, and a feature branch that changes the shared Go
/// library and a README.
pub fn build(root: &Path) -> std::result::Result<RepoBuilder, git2::Error> {
    let mut repo = RepoBuilder::init(root)?;
    repo.write("services.toml", MANIFEST);
    for (path, contents) in FILES {
        repo.write(path, contents);
    }
    repo.commit("Initial import of the monorepo")?;
    repo.branch("develop")?;
    repo.checkout("main")?;
    repo.branch(FEATURE_BRANCH)?;
    repo.write(
        "src/backend/go.main/search.go",
        "package main\n\nfunc Search() { /* now with an index */ }\n",
    )
    .write("src/web/README.md", "# web\n\nHow to run the front end.\n");
    repo.commit("Faster search in the shared Go library")?;
    Ok(repo)
}

/// Runs the demo: in `dir` (kept) or a temporary directory (removed).
pub fn run(dir: Option<&Path>, out: &mut dyn std::io::Write) -> Result<()> {
    let temp;
    let root = match dir {
        // A second run into the same directory would commit onto the
        // first one's branches: start from nothing or not at all.
        Some(dir) if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) => {
            return Err(Error::Usage {
                message: format!("`{}` is not empty", dir.display()),
                hint: Some(format!(
                    "the demo builds its repository in a new or empty directory: remove `{}` \
                     or pass another `--dir`",
                    dir.display()
                )),
            });
        }
        Some(dir) => dir.to_path_buf(),
        None => {
            temp = tempfile::tempdir().map_err(|source| Error::Io {
                action: "create a temporary directory",
                path: std::env::temp_dir(),
                source,
            })?;
            temp.path().to_path_buf()
        }
    };
    let built = build(&root).map_err(git("building the demo repository"))?;
    let manifest = Manifest::parse(MANIFEST, "services.toml")?;
    let request = Request {
        event: Some(Event::PullRequest),
        base: Some("main".into()),
        ..Request::default()
    };
    let changes = changes::collect(built.repo(), &manifest.settings, &request)?;
    let graph = ServiceGraph::new(&manifest);
    let set = graph.affected_set(&changes, Why::Kept);
    let listed = render::affected_text(&changes, &set);
    let affected = set.into_affected();
    let plan = std::sync::Arc::new(plan::plan(&manifest, &changes, &affected));
    let yaml = drone::render(&drone::Drone.load(Vec::new())?, &plan)?;

    let mut text = format!(
        "# ripple demo: an example monorepo with {} services, built with git in {}\n\
         # branch `{FEATURE_BRANCH}` changes these files against `main`:\n",
        manifest.services.len(),
        if dir.is_some() {
            root.display().to_string()
        } else {
            "a temporary directory".into()
        },
    );
    for path in &changes.paths {
        text.push_str(&format!("#   {path}\n"));
    }
    text.push_str("#\n# affected services:\n");
    for line in listed.lines() {
        text.push_str(&format!("#   {line}\n"));
    }
    text.push_str(&format!(
        "#\n# why apiv2:\n#   {}\
         #\n# The Drone YAML for the pull request follows.\n",
        graph
            .explain("apiv2", &changes, &affected, &crate::graph::no_evidence)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned()
            + "\n",
    ));
    if dir.is_some() {
        text.push_str(&format!(
            "# Explore it: ripple --repo {} affected --event pull_request --base main\n",
            root.display()
        ));
    }
    text.push_str(&yaml);
    out.write_all(text.as_bytes()).map_err(|source| Error::Io {
        action: "write",
        path: "<stdout>".into(),
        source,
    })
}
