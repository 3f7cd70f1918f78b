//! Shared helpers: temporary git repositories, running the binary in a
//! clean environment, snapshots, and structural checks of rendered YAML.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use ripple::fixture::RepoBuilder;
use serde_norway::Value;

/// The manifest most tests use: Caliopen's shape in miniature.
pub const MANIFEST: &str = r#"
[settings]
publish_branches = ["develop"]
release_tag = "release-*"
global_paths = ["services.toml"]

[[service]]
name = "base-go"
kind = "base-image"
paths = ["docker/go"]
image = "registry.example.org/base-go"
dockerfile = "docker/go/Dockerfile"
context = "docker/go"

[[service]]
name = "go-main"
kind = "library"
paths = ["src/go.main", "!**/*.md"]
depends_on = ["base-go"]
toolchain = "golang:1.21"
unit = ["go test ./src/go.main/..."]

[[service]]
name = "apiv2"
kind = "image"
paths = ["src/api"]
depends_on = ["go-main"]
image = "registry.example.org/apiv2"
dockerfile = "src/api/Dockerfile"
context = "src"
toolchain = "golang:1.21"
lint = ["go vet ./src/api/..."]
unit = ["go test ./src/api/..."]
functional = ["go test -tags functional ./src/api/..."]
services = [{ name = "redis", image = "redis:7" }]

[[service]]
name = "lmtpd"
kind = "image"
paths = ["src/lmtpd"]
depends_on = ["go-main"]
image = "registry.example.org/lmtpd"
dockerfile = "src/lmtpd/Dockerfile"

[[service]]
name = "worker"
kind = "image"
paths = ["src/worker"]
image = "caliopen/worker"
dockerfile = "src/worker/Dockerfile"
toolchain = "python:3.12"
unit = ["pytest src/worker"]

[[service]]
name = "web"
kind = "image"
paths = ["src/web", "!src/web/**/*.md"]
image = "registry.example.org/web"
dockerfile = "src/web/Dockerfile"
toolchain = "node:20"
lint = ["npm run lint"]
unit = ["npm test"]

[[service]]
name = "py-tests"
kind = "tests"
depends_on = ["worker"]
toolchain = "python:3.12"
unit = ["pytest tests/python"]
"#;

/// Files of the initial commit, one or more per service.
pub const FILES: &[(&str, &str)] = &[
    ("README.md", "# monorepo\n"),
    ("docker/go/Dockerfile", "FROM golang\n"),
    ("src/go.main/store.go", "package main\n"),
    ("src/go.main/README.md", "# go.main\n"),
    ("src/api/main.go", "package main\n"),
    ("src/api/Dockerfile", "FROM base-go\n"),
    ("src/lmtpd/main.go", "package main\n"),
    ("src/lmtpd/Dockerfile", "FROM base-go\n"),
    ("src/worker/worker.py", "pass\n"),
    ("src/worker/util.py", "pass\n"),
    ("src/worker/Dockerfile", "FROM python\n"),
    ("src/web/app.ts", "export {}\n"),
    ("src/web/README.md", "# web\n"),
    ("src/web/Dockerfile", "FROM node\n"),
];

/// A temporary repository, removed on drop.
pub struct TestRepo {
    pub builder: RepoBuilder,
    _dir: tempfile::TempDir,
}

/// Keeps libgit2 away from the user's and the system's git configuration.
pub fn hermetic() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for level in [
            git2::ConfigLevel::System,
            git2::ConfigLevel::XDG,
            git2::ConfigLevel::Global,
        ] {
            // SAFETY: called once, before any other libgit2 use in this process.
            unsafe {
                git2::opts::set_search_path(level, "").expect("reset git search path");
            }
        }
    });
}

impl TestRepo {
    /// An empty repository on `main`.
    pub fn empty() -> TestRepo {
        hermetic();
        let dir = tempfile::tempdir().expect("temporary directory");
        let builder = RepoBuilder::init(dir.path()).expect("git init");
        TestRepo { builder, _dir: dir }
    }

    /// `main` with [`MANIFEST`] and [`FILES`] committed, and `develop` from it.
    pub fn standard() -> TestRepo {
        let mut repo = TestRepo::empty();
        repo.write("services.toml", MANIFEST);
        for (path, contents) in FILES {
            repo.write(path, contents);
        }
        repo.commit("initial import");
        repo.branch("develop");
        repo.checkout("main");
        repo
    }

    /// [`TestRepo::standard`] with one commit on `develop` that writes
    /// `path`; returns the repository, the commit before and the new one.
    pub fn develop_change(path: &str, contents: &str) -> (TestRepo, String, String) {
        let mut repo = TestRepo::standard();
        repo.checkout("develop");
        let before = repo.rev("HEAD");
        repo.write(path, contents);
        let after = repo.commit(&format!("change {path}"));
        (repo, before, after)
    }

    pub fn path(&self) -> &Path {
        self.builder.root()
    }

    pub fn write(&mut self, path: &str, contents: &str) -> &mut TestRepo {
        self.builder.write(path, contents);
        self
    }

    pub fn remove(&mut self, path: &str) -> &mut TestRepo {
        self.builder.remove(path);
        self
    }

    pub fn rename(&mut self, from: &str, to: &str) -> &mut TestRepo {
        self.builder.rename(from, to);
        self
    }

    pub fn commit(&mut self, message: &str) -> String {
        self.builder.commit(message).expect("commit").to_string()
    }

    pub fn branch(&mut self, name: &str) -> &mut TestRepo {
        self.builder.branch(name).expect("branch");
        self
    }

    pub fn checkout(&mut self, name: &str) -> &mut TestRepo {
        self.builder.checkout(name).expect("checkout");
        self
    }

    pub fn merge(&mut self, other: &str, message: &str) -> String {
        self.builder
            .merge(other, message)
            .expect("merge")
            .to_string()
    }

    pub fn detach(&mut self, commit: &str) -> &mut TestRepo {
        let oid = git2::Oid::from_str(commit).expect("commit id");
        self.builder.detach(oid).expect("detach");
        self
    }

    pub fn rev(&self, rev: &str) -> String {
        self.builder.rev(rev).expect("revision").to_string()
    }

    /// Sets a reference such as `refs/remotes/origin/main`.
    pub fn set_ref(&self, name: &str, commit: &str) {
        let oid = git2::Oid::from_str(commit).expect("commit id");
        self.builder
            .repo()
            .reference(name, oid, true, "test")
            .expect("set reference");
    }

    /// `ripple` run in this repository with only `env` set.
    pub fn ripple(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        ripple_in(self.path(), args, env)
    }
}

/// Clones `origin` into `parent/clone` with the git command, as Drone's
/// clone step does (shallow and single-branch clones need it).
pub fn git_clone(origin: &TestRepo, parent: &Path, args: &[&str]) -> PathBuf {
    let clone = parent.join("clone");
    let url = format!("file://{}", origin.path().display());
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .args(args)
        .arg(&url)
        .arg(&clone)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("run git clone");
    assert!(status.success(), "git clone {args:?} failed");
    clone
}

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "ripple failed:\n{}", self.stderr);
        &self.stdout
    }

    /// Parses stdout as JSON after asserting success.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).expect("stdout is JSON")
    }
}

/// Runs the binary in `dir` with a cleared environment, as in a Drone step
/// where only the variables we set exist.
pub fn ripple_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    ripple_fed(dir, args, env, "")
}

/// [`ripple_in`] with `stdin` on its standard input.
pub fn ripple_fed(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Run {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ripple"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ripple");
    let mut input = child.stdin.take().expect("stdin");
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let output = child.wait_with_output().expect("run ripple");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Names of the affected services in `affected --format json` output.
pub fn services(json: &serde_json::Value) -> Vec<String> {
    json["services"]
        .as_array()
        .expect("services array")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_string())
        .collect()
}

/// Snapshots into `tests/snapshots/NAME.snap`.
pub fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// Where rendered YAML is kept for CI's drone-lint pass.
pub fn rendered_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rendered")
}

/// Checks rendered Drone YAML the way Drone's linter would, keeps a copy
/// for drone-lint, and returns the parsed documents.
pub fn check_yaml(name: &str, yaml: &str) -> Vec<Value> {
    let dir = rendered_dir();
    std::fs::create_dir_all(&dir).expect("create rendered dir");
    std::fs::write(dir.join(format!("{name}.yml")), yaml).expect("keep rendered YAML");

    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let value = Value::deserialize(doc).expect("rendered YAML parses");
        if !value.is_null() {
            docs.push(value);
        }
    }
    assert!(!docs.is_empty(), "Drone rejects an empty configuration");
    let mut seen: HashSet<String> = HashSet::new();
    for doc in &docs {
        assert_eq!(doc["kind"].as_str(), Some("pipeline"));
        let name = doc["name"].as_str().expect("pipeline name").to_string();
        if let Some(deps) = doc.get("depends_on") {
            for dep in deps.as_sequence().expect("depends_on is a list") {
                let dep = dep.as_str().expect("dependency name");
                // Defined earlier also rules out cycles and unknown names.
                assert!(
                    seen.contains(dep),
                    "{name} depends on {dep}, not defined before it"
                );
            }
        }
        let steps = doc["steps"].as_sequence().expect("steps");
        assert!(!steps.is_empty(), "{name} has no steps");
        let mut step_names = HashSet::new();
        for step in steps {
            assert!(step.get("image").is_some(), "every step has an image");
            assert!(
                step.get("depends_on").is_none(),
                "steps run in order, no depends_on"
            );
            assert!(step_names.insert(step["name"].as_str().expect("step name").to_string()));
            if let Some(settings) = step.get("settings") {
                assert!(settings.get("auto_tag").is_none(), "never auto_tag");
            }
        }
        if let Some(trigger) = doc.get("trigger") {
            for (_, condition) in trigger.as_mapping().expect("trigger map") {
                assert!(condition.is_sequence(), "conditions are lists");
            }
        }
        assert!(seen.insert(name.clone()), "duplicate pipeline name {name}");
    }
    docs
}

use serde::Deserialize as _;

/// A loopback port nothing listens on (for a server the test starts).
#[cfg(any(feature = "server", feature = "registry"))]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `done` every `every` until it holds, failing with `what` after
/// `within`.
#[cfg(feature = "server")]
pub fn eventually(
    within: std::time::Duration,
    every: std::time::Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(every);
    }
}
