//! Synthetic monorepos for benchmarks: N services of about 20 files each, a
//! seeded dependency DAG with a few core libraries of large fan-in, its
//! `services.toml`, and two feature branches. Deterministic for a seed.
//!
//! Objects go straight into an in-memory object database and are written
//! as one pack, with no work tree: a 20,000-service repository (400,000
//! files) takes seconds instead of the minutes loose objects would.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use git2::{Oid, Repository, RepositoryInitOptions, Signature, Time};

/// The branch every feature branch starts from.
pub const MAIN: &str = "main";
/// 50 changed files across many services: some added, one deleted, one
/// renamed across services.
pub const WIDE_BRANCH: &str = "feature-wide";
/// A handful of files changed in the core library with the largest fan-in.
pub const CORE_BRANCH: &str = "feature-core";
/// One file changed in each core library: five files that nearly every
/// service reaches, the shape of a change to a shared foundation.
pub const ALLCORE_BRANCH: &str = "feature-allcore";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Number of services.
    pub services: usize,
    /// Files per service.
    pub files_per_service: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// How the manifest is written.
    pub style: Style,
}

impl Shape {
    /// `services` services of 20 files, seed 1, as `ripple sync` keeps
    /// the manifest.
    pub fn new(services: usize) -> Shape {
        Shape {
            services,
            files_per_service: 20,
            seed: 1,
            style: Style::Synced,
        }
    }
}

/// How the manifest of a generated repository is written: the same
/// services and edges either way, so the affected sets are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// As `ripple sync` keeps it: names in the order they are written,
    /// every edge in a `discovered` key.
    Synced,
    /// As a team writes it by hand: names by team (`team12-ima-00123`),
    /// so not in the order written; every edge in `depends_on`; a glob per
    /// test suite; a sidecar on every third service. Tuning on one shape
    /// had hidden what others cost (see BENCHMARKS.md, nineteenth
    /// session).
    HandWritten,
}

impl Style {
    /// Its name on a command line and in a directory's name.
    pub fn name(self) -> &'static str {
        match self {
            Style::Synced => "synced",
            Style::HandWritten => "hand-written",
        }
    }

    /// The style of this name.
    pub fn from_name(name: &str) -> Option<Style> {
        [Style::Synced, Style::HandWritten]
            .into_iter()
            .find(|style| style.name() == name)
    }
}

/// What was generated, for reports and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Files on `main`.
    pub files: usize,
    /// Longest dependency chain, in services.
    pub depth: usize,
    /// The core library changed on [`CORE_BRANCH`].
    pub core: String,
    /// Its number of direct dependents.
    pub core_fan_in: usize,
    /// Paths changed on [`WIDE_BRANCH`] (a rename counts once).
    pub wide_changes: usize,
}

/// SplitMix64: tiny, and stable across crate versions, which a seeded
/// benchmark needs more than statistical quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Core,
    Base,
    Image,
    Library,
    Tests,
}

struct Service {
    name: String,
    dir: String,
    kind: Kind,
    level: usize,
    depends_on: Vec<usize>,
    proto_glob: Option<String>,
}

/// Number of core libraries: few, each with a large fan-in.
const CORE_LIBRARIES: usize = 5;

/// Builds the services and their DAG: levels 0..depth, every service above
/// level 0 depends on one service of the level below (so chains reach the
/// full depth), and on a core library or other lower services.
fn services(shape: &Shape, rng: &mut Rng) -> (Vec<Service>, usize) {
    let depth = 6 + rng.below(5);
    let n = shape.services.max(CORE_LIBRARIES + 2 + depth);
    let bases = (n / 50).max(2);
    let mut services: Vec<Service> = Vec::with_capacity(n);
    let mut by_level: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for i in 0..n {
        let (kind, level) = if i < CORE_LIBRARIES {
            (Kind::Core, 0)
        } else if i < CORE_LIBRARIES + bases {
            (Kind::Base, 0)
        } else {
            // The first few guarantee every level is populated.
            let level = if i < CORE_LIBRARIES + bases + depth - 1 {
                i - CORE_LIBRARIES - bases + 1
            } else {
                1 + rng.below(depth - 1)
            };
            let kind = match rng.below(10) {
                0..=5 => Kind::Image,
                6..=8 => Kind::Library,
                _ => Kind::Tests,
            };
            (kind, level)
        };
        let name = match shape.style {
            Style::Synced => format!("svc-{i:05}"),
            // Not from `rng`: both styles draw the same services and edges.
            Style::HandWritten => {
                let short = match kind {
                    Kind::Core => "core",
                    Kind::Base => "bas",
                    Kind::Image => "ima",
                    Kind::Library => "lib",
                    Kind::Tests => "tst",
                };
                format!("team{:02}-{short}-{i:05}", (i * 37) % 64)
            }
        };
        let dir = format!("services/g{:04}/{name}", i / 50);
        let proto_glob =
            (level > 0 && rng.chance(5)).then(|| format!("protos/p{:03}/*.proto", rng.below(40)));
        let mut depends_on = BTreeSet::new();
        if level > 0 {
            let below = &by_level[level - 1];
            depends_on.insert(below[rng.below(below.len())]);
            if rng.chance(40) {
                depends_on.insert(rng.below(CORE_LIBRARIES));
            }
            for _ in 0..rng.below(2) {
                let lower = &by_level[rng.below(level)];
                depends_on.insert(lower[rng.below(lower.len())]);
            }
            if kind == Kind::Image && rng.chance(50) {
                depends_on.insert(CORE_LIBRARIES + rng.below(bases));
            }
        }
        by_level[level].push(i);
        services.push(Service {
            name,
            dir,
            kind,
            level,
            depends_on: depends_on.into_iter().collect(),
            proto_glob,
        });
    }
    (services, depth)
}

fn manifest(services: &[Service], style: Style) -> String {
    let mut text = String::from(
        "# Synthetic monorepo generated by ripple's benchmark.\n\n[settings]\n\
         publish_branches = [\"develop\"]\nrelease_tag = \"release-*\"\n\
         global_paths = [\"services.toml\", \"ci/**\"]\n",
    );
    if style == Style::Synced {
        text.push_str("discover = [\"docker\", \"go\"]\n");
    }
    for (i, s) in services.iter().enumerate() {
        let kind = match s.kind {
            Kind::Core | Kind::Library => "library",
            Kind::Base => "base-image",
            Kind::Image => "image",
            Kind::Tests => "tests",
        };
        let _ = write!(
            text,
            "\n[[service]]\nname = \"{}\"\nkind = \"{kind}\"\n",
            s.name
        );
        // By hand, a directory is most often written as a glob of all
        // below it.
        let below = if style == Style::HandWritten {
            "/**"
        } else {
            ""
        };
        let _ = write!(text, "paths = [\"{}{below}\", \"!**/*.md\"", s.dir);
        if let Some(glob) = &s.proto_glob {
            let _ = write!(text, ", \"{glob}\"");
        }
        if style == Style::HandWritten && s.kind == Kind::Tests {
            let _ = write!(text, ", \"tests/{}/**/*.py\"", s.name);
        }
        text.push_str("]\n");
        // Synced, no `depends_on`: the code states every dependency, and
        // the `discovered` key below holds them, as in a repository that
        // adopted discovery.
        if style == Style::HandWritten && !s.depends_on.is_empty() {
            let names: Vec<String> = (s.depends_on.iter())
                .map(|&d| format!("\"{}\"", services[d].name))
                .collect();
            let _ = writeln!(text, "depends_on = [{}]", names.join(", "));
        }
        if matches!(s.kind, Kind::Image | Kind::Base) {
            let _ = write!(
                text,
                "image = \"registry.example.org/bench/{0}\"\ndockerfile = \"{1}/Dockerfile\"\ncontext = \"{1}\"\n",
                s.name, s.dir
            );
        }
        if s.kind != Kind::Base {
            text.push_str(
                "toolchain = \"golang:1.21\"\nlint = [\"go vet ./...\"]\nunit = [\"go test ./...\"]\n",
            );
        }
        if style == Style::HandWritten && s.kind != Kind::Base && i % 3 == 0 {
            text.push_str("services = [{ name = \"redis\", image = \"redis:7\" }]\n");
        }
        if style == Style::Synced
            && let Some(line) = discovered(s, services)
        {
            text.push_str(&line);
        }
    }
    text
}

/// The base image an image's Dockerfile is `FROM`: its first dependency
/// that is a base image.
fn from_base(service: &Service, services: &[Service]) -> Option<usize> {
    if !matches!(service.kind, Kind::Image | Kind::Base) {
        return None;
    }
    service
        .depends_on
        .iter()
        .copied()
        .find(|&d| services[d].kind == Kind::Base)
}

/// The dependencies a service's Go files import: all but the base image
/// its Dockerfile is `FROM`.
fn imported(service: &Service, services: &[Service]) -> Vec<usize> {
    let base = from_base(service, services);
    service
        .depends_on
        .iter()
        .copied()
        .filter(|&d| Some(d) != base)
        .collect()
}

/// The code states every dependency, as `ripple sync` reads it: each Go
/// file imports a package of each dependency but the base image the
/// Dockerfile is `FROM` (GOPATH-style: there is no go.mod).
fn go_imports(service: &Service, services: &[Service]) -> String {
    let imports: Vec<String> = imported(service, services)
        .into_iter()
        .map(|d| format!("\t\"bench.example/{}/src/mod0\"\n", services[d].dir))
        .collect();
    if imports.is_empty() {
        String::new()
    } else {
        format!("\nimport (\n{})\n", imports.concat())
    }
}

fn dockerfile(service: &Service, services: &[Service]) -> String {
    let base = from_base(service, services).map_or_else(
        || "golang:1.22".to_string(),
        |b| format!("registry.example.org/bench/{}:latest", services[b].name),
    );
    format!("FROM {base}\nCOPY src /src\n")
}

/// A service's `discovered` key, as `ripple sync` writes it: the edges
/// [`go_imports`] and [`dockerfile`] state, which are its dependencies.
fn discovered(service: &Service, services: &[Service]) -> Option<String> {
    let quoted = |d: usize| format!("\"{}\"", services[d].name);
    let mut go: Vec<String> = imported(service, services)
        .into_iter()
        .map(quoted)
        .collect();
    go.sort();
    let mut parts = Vec::new();
    if let Some(base) = from_base(service, services) {
        parts.push(format!("docker = [{}]", quoted(base)));
    }
    if !go.is_empty() {
        parts.push(format!("go = [{}]", go.join(", ")));
    }
    (!parts.is_empty()).then(|| format!("discovered = {{ {} }}\n", parts.join(", ")))
}

fn file_paths(service: &Service, count: usize) -> Vec<String> {
    let mut paths = vec![format!("{}/README.md", service.dir)];
    if matches!(service.kind, Kind::Image | Kind::Base) {
        paths.push(format!("{}/Dockerfile", service.dir));
    }
    let mut k = 0;
    while paths.len() < count {
        paths.push(format!("{}/src/mod{}/file{k:02}.go", service.dir, k % 4));
        k += 1;
    }
    paths
}

/// A directory tree of blob ids, written bottom-up.
#[derive(Default)]
struct Dir {
    files: BTreeMap<String, Oid>,
    dirs: BTreeMap<String, Dir>,
}

impl Dir {
    fn from_files(files: &BTreeMap<String, Oid>) -> Dir {
        let mut root = Dir::default();
        for (path, oid) in files {
            let mut dir = &mut root;
            let mut parts = path.split('/').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_some() {
                    dir = dir.dirs.entry(part.to_string()).or_default();
                } else {
                    dir.files.insert(part.to_string(), *oid);
                }
            }
        }
        root
    }

    fn write(&self, repo: &Repository) -> Result<Oid, git2::Error> {
        let mut builder = repo.treebuilder(None)?;
        for (name, oid) in &self.files {
            builder.insert(name, *oid, 0o100644)?;
        }
        for (name, dir) in &self.dirs {
            builder.insert(name, dir.write(repo)?, 0o040000)?;
        }
        builder.write()
    }
}

/// Writes blobs and commits through one repository handle, keeping the
/// clock of the commits.
struct Writer<'r> {
    repo: &'r Repository,
    clock: i64,
}

impl Writer<'_> {
    fn blob(&self, text: &str) -> Result<Oid, git2::Error> {
        self.repo.blob(text.as_bytes())
    }

    fn commit(
        &mut self,
        files: &BTreeMap<String, Oid>,
        parent: Option<Oid>,
        message: &str,
    ) -> Result<Oid, git2::Error> {
        self.clock += 60;
        let signature = Signature::new(
            "Ripple Bench",
            "bench@ripple.invalid",
            &Time::new(self.clock, 0),
        )?;
        let tree = self
            .repo
            .find_tree(Dir::from_files(files).write(self.repo)?)?;
        let parent = parent.map(|p| self.repo.find_commit(p)).transpose()?;
        let parents: Vec<_> = parent.iter().collect();
        self.repo
            .commit(None, &signature, &signature, message, &tree, &parents)
    }
}

/// Generates the repository in `dir`, with branches [`MAIN`],
/// [`WIDE_BRANCH`] and [`CORE_BRANCH`], and [`MAIN`] checked out: a work
/// tree like the one a CI clone has.
pub fn generate(dir: &Path, shape: &Shape) -> Result<Summary, git2::Error> {
    let mut rng = Rng(shape.seed);
    let (services, depth) = services(shape, &mut rng);

    let mut options = RepositoryInitOptions::new();
    options.initial_head(MAIN);
    let repo = Repository::init_opts(dir, &options)?;
    let odb = repo.odb()?;
    let mempack = odb.add_new_mempack_backend(1000)?;
    let mut writer = Writer {
        repo: &repo,
        clock: 1_700_000_000,
    };

    let mut files: BTreeMap<String, Oid> = BTreeMap::new();
    files.insert(
        "services.toml".into(),
        writer.blob(&manifest(&services, shape.style))?,
    );
    files.insert("ci/pipeline.sh".into(), writer.blob("#!/bin/sh\n")?);
    for group in 0..40 {
        let path = format!("protos/p{group:03}/api.proto");
        files.insert(path.clone(), writer.blob(&format!("// {path}\n"))?);
    }
    for service in &services {
        let go = go_imports(service, &services);
        let docker = dockerfile(service, &services);
        for path in file_paths(service, shape.files_per_service) {
            let text = if path.ends_with("/Dockerfile") {
                docker.clone()
            } else if path.ends_with(".go") {
                format!(
                    "// {path}\npackage {}\n{go}",
                    service.name.replace('-', "_")
                )
            } else {
                format!("// {path}\n")
            };
            files.insert(path, writer.blob(&text)?);
        }
    }
    let main = writer.commit(&files, None, "Synthetic monorepo")?;

    // Wide: 50 changes over many services outside the core.
    let mut wide = files.clone();
    let candidates: Vec<&Service> = services.iter().filter(|s| s.kind != Kind::Core).collect();
    let pick = |rng: &mut Rng| candidates[rng.below(candidates.len())];
    let mut changes = 0;
    let renamed_from = format!("{}/src/mod0/file00.go", pick(&mut rng).dir);
    let renamed_to = format!("{}/src/moved/file00.go", pick(&mut rng).dir);
    if let Some(blob) = wide.remove(&renamed_from) {
        wide.insert(renamed_to, blob);
        changes += 1;
    }
    let deleted = format!("{}/src/mod1/file01.go", pick(&mut rng).dir);
    if wide.remove(&deleted).is_some() {
        changes += 1;
    }
    for i in 0..5 {
        let path = format!("{}/src/new/added{i}.go", pick(&mut rng).dir);
        wide.insert(path.clone(), writer.blob(&format!("// added {path}\n"))?);
        changes += 1;
    }
    // Bounded: with very few files per service there may be too few to edit.
    let mut attempts = 0;
    while changes < 50 && attempts < 100_000 {
        attempts += 1;
        let service = pick(&mut rng);
        let k = 2 + rng.below(shape.files_per_service.saturating_sub(4).max(1));
        let path = format!("{}/src/mod{}/file{k:02}.go", service.dir, k % 4);
        if let Some(old) = wide.get(&path).copied() {
            let new = writer.blob(&format!("// {path}\n// changed on {WIDE_BRANCH}\n"))?;
            if new != old {
                wide.insert(path, new);
                changes += 1;
            }
        }
    }
    let wide_commit = writer.commit(&wide, Some(main), "Change 50 files across services")?;

    // Core: a handful of files in the core library most services use.
    let mut fan_in = [0usize; CORE_LIBRARIES];
    for service in &services {
        for &dep in &service.depends_on {
            if dep < CORE_LIBRARIES {
                fan_in[dep] += 1;
            }
        }
    }
    let core = (0..CORE_LIBRARIES)
        .max_by_key(|&c| (fan_in[c], std::cmp::Reverse(c)))
        .unwrap_or(0);
    let mut core_files = files.clone();
    for k in 2..7 {
        let path = format!("{}/src/mod{}/file{k:02}.go", services[core].dir, k % 4);
        core_files.insert(
            path.clone(),
            writer.blob(&format!("// {path}\n// changed on {CORE_BRANCH}\n"))?,
        );
    }
    let core_commit = writer.commit(&core_files, Some(main), "Change the core library")?;

    // All cores: one file in each core library.
    let mut allcore_files = files.clone();
    for service in &services[..CORE_LIBRARIES.min(services.len())] {
        let path = format!("{}/src/mod0/file00.go", service.dir);
        allcore_files.insert(
            path.clone(),
            writer.blob(&format!("// {path}\n// changed on {ALLCORE_BRANCH}\n"))?,
        );
    }
    let allcore_commit = writer.commit(&allcore_files, Some(main), "Change every core library")?;

    // One pack for everything, as a clone would have.
    let mut pack = git2::Buf::new();
    mempack.dump(&repo, &mut pack)?;
    let mut packwriter = odb.packwriter()?;
    packwriter
        .write_all(&pack)
        .map_err(|e| git2::Error::from_str(&format!("writing the pack: {e}")))?;
    packwriter.commit()?;
    mempack.reset()?;

    for (branch, commit) in [
        (MAIN, main),
        (WIDE_BRANCH, wide_commit),
        (CORE_BRANCH, core_commit),
        (ALLCORE_BRANCH, allcore_commit),
    ] {
        repo.reference(&format!("refs/heads/{branch}"), commit, true, "synth")?;
    }
    checkout(&repo, MAIN)?;
    let level_depth = services.iter().map(|s| s.level).max().unwrap_or(0) + 1;
    debug_assert_eq!(level_depth, depth);
    Ok(Summary {
        files: files.len(),
        depth: longest_chain(&services),
        core: services[core].name.clone(),
        core_fan_in: fan_in[core],
        wide_changes: changes,
    })
}

/// Switches the work tree and HEAD to `branch`.
pub fn checkout(repo: &Repository, branch: &str) -> Result<(), git2::Error> {
    repo.set_head(&format!("refs/heads/{branch}"))?;
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
}

/// Services on the longest `depends_on` chain.
fn longest_chain(services: &[Service]) -> usize {
    // Dependencies always have lower indices, so one forward pass suffices.
    let mut length = vec![1usize; services.len()];
    for (i, service) in services.iter().enumerate() {
        length[i] = 1 + service
            .depends_on
            .iter()
            .map(|&d| length[d])
            .max()
            .unwrap_or(0);
    }
    length.into_iter().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::{self, Event, Request};
    use crate::graph::ServiceGraph;
    use crate::manifest::Manifest;

    /// The manifest's `discovered` keys are what `ripple sync` finds in the
    /// code, so the benchmark's `sync --check` measures a clean check.
    #[test]
    fn the_code_states_the_discovered_edges() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &Shape::new(300)).unwrap();
        let repo = Repository::open(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("services.toml")).unwrap();
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        let files = changes::files_at(&repo, MAIN).unwrap();
        let edges = crate::discover::discover(&manifest, &files, &manifest.settings.discover);
        assert!(edges.len() > 300, "{} edges", edges.len());
        assert!(edges.iter().any(|e| e.source == "docker"));
        assert_eq!(
            crate::sync::with_discovered(&text, &manifest, &edges).unwrap(),
            text
        );
    }

    /// A pull request from `branch` into [`MAIN`].
    fn pull_request(branch: &str) -> Request {
        Request {
            event: Some(Event::PullRequest),
            head: Some(branch.into()),
            base: Some(MAIN.into()),
            ..Request::default()
        }
    }

    /// A hand-written manifest holds the same services and edges as a
    /// synced one, written the other way: the affected sets are as large.
    #[test]
    fn hand_written_manifests_hold_the_same_graph() {
        let read = |style: Style| {
            let dir = tempfile::tempdir().unwrap();
            let shape = Shape {
                style,
                ..Shape::new(300)
            };
            generate(dir.path(), &shape).unwrap();
            let repo = Repository::open(dir.path()).unwrap();
            let text = std::fs::read_to_string(dir.path().join("services.toml")).unwrap();
            let manifest = Manifest::parse(&text, "services.toml").unwrap();
            let counts: Vec<usize> = [WIDE_BRANCH, CORE_BRANCH, ALLCORE_BRANCH]
                .iter()
                .map(|&branch| {
                    let changes =
                        changes::collect(&repo, &manifest.settings, &pull_request(branch)).unwrap();
                    ServiceGraph::new(&manifest)
                        .affected(&changes)
                        .services
                        .len()
                })
                .collect();
            (text, manifest, counts)
        };
        let (_, synced, synced_counts) = read(Style::Synced);
        let (text, hand, hand_counts) = read(Style::HandWritten);
        assert_eq!(hand_counts, synced_counts);
        assert!(hand_counts[1] > 100, "{hand_counts:?}");
        assert!(!text.contains("discovered") && text.contains("depends_on = ["));
        assert!(text.contains("\"tests/team") && text.contains("image = \"redis:7\""));
        assert!(text.contains("/**\", \"!**/*.md\"]"));
        assert!(hand.services.iter().all(|s| s.discovery.is_none()));
        let names: Vec<&str> = hand.services.iter().map(|s| s.name.as_str()).collect();
        assert!(!names.is_sorted(), "names out of the order written");
        let edges =
            |m: &Manifest| -> usize { (0..m.services.len()).map(|i| m.edges(i).count()).sum() };
        assert_eq!(edges(&hand), edges(&synced));
        let with_sidecar = |i: usize| !hand.services[i].tests.sidecars.is_empty();
        let not_base = |i: &usize| hand.services[*i].kind != crate::manifest::Kind::BaseImage;
        assert!(
            (0..300)
                .filter(not_base)
                .all(|i| with_sidecar(i) == (i % 3 == 0))
        );
        assert_eq!(Style::from_name("hand-written"), Some(Style::HandWritten));
        assert_eq!(Style::from_name(Style::Synced.name()), Some(Style::Synced));
    }

    #[test]
    fn generation_is_deterministic_and_has_the_promised_shape() {
        let shape = Shape::new(200);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let summary = generate(a.path(), &shape).unwrap();
        assert_eq!(summary, generate(b.path(), &shape).unwrap());
        let (ra, rb) = (
            Repository::open(a.path()).unwrap(),
            Repository::open(b.path()).unwrap(),
        );
        for branch in [MAIN, WIDE_BRANCH, CORE_BRANCH, ALLCORE_BRANCH] {
            let id = |r: &Repository| r.revparse_single(branch).unwrap().id();
            assert_eq!(id(&ra), id(&rb), "{branch}");
        }
        assert!((6..=10).contains(&summary.depth), "{summary:?}");
        assert!(summary.files >= 200 * 20);
        assert_eq!(summary.wide_changes, 50);
        assert!(summary.core_fan_in >= 20, "{summary:?}");

        // The manifest is valid and the branches change what they promise.
        let head = ra.revparse_single(MAIN).unwrap().peel_to_commit().unwrap();
        let entry = head
            .tree()
            .unwrap()
            .get_path(Path::new("services.toml"))
            .unwrap();
        let text = String::from_utf8(ra.find_blob(entry.id()).unwrap().content().to_vec()).unwrap();
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        assert_eq!(manifest.services.len(), 200);
        let wide = changes::collect(&ra, &manifest.settings, &pull_request(WIDE_BRANCH)).unwrap();
        assert_eq!(wide.paths.len(), 51, "50 changes, the rename listed twice");
        let core = changes::collect(&ra, &manifest.settings, &pull_request(CORE_BRANCH)).unwrap();
        assert_eq!(core.paths.len(), 5);
        let graph = ServiceGraph::new(&manifest);
        let affected = graph.affected(&core);
        assert!(
            affected.services.len() > summary.core_fan_in,
            "dependents of dependents too"
        );
        let allcore =
            changes::collect(&ra, &manifest.settings, &pull_request(ALLCORE_BRANCH)).unwrap();
        assert_eq!(allcore.paths.len(), 5);
        let reached = graph.affected(&allcore).services.len();
        assert!(
            reached > affected.services.len() && reached > 200 / 2,
            "every core library reaches most services: {reached}"
        );
    }
}
