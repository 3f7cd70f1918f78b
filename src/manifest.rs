//! `services.toml` text → [`Manifest`], with every problem found in one pass.
//!
//! The TOML is read into toml-spanner's spanned tree and walked by hand
//! rather than through `serde(deny_unknown_fields)`, because serde stops at
//! the first problem and a user fixing a manifest wants them all, each with
//! a line and column. Service tables in the common form are read by a
//! scanner that builds no tree ([`scan`]), checked by the same code. No I/O
//! here: the caller reads the file.

use std::collections::BTreeMap;

// Most of a manifest's strings (names, prefixes, commands) are short: kept
// inline, they cost no allocation each (see BENCHMARKS.md).
use compact_str::CompactString;

// Fx: the hot maps here are keyed by short strings from a trusted file.
use rustc_hash::FxHashMap as HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use crate::pattern::{self, PathPattern};
use crate::tags::{TagTemplate, Use};

mod scan;

use crate::parallel::fill;

/// A validated manifest: every name unique, every dependency known, no cycles.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The `[settings]` table, defaults filled in.
    pub settings: Settings,
    /// Services in the order the file declares them.
    pub services: Vec<Service>,
    /// The `[[environment]]` tables.
    pub environments: Vec<Environment>,
    /// Each service's name and kind, in the order of `services`: the
    /// graph reads them for every service, and a dense list is read from
    /// cache where the services themselves are not.
    names: Vec<CompactString>,
    kinds: Vec<Kind>,
    /// Position of each service by name.
    index: NameIndex,
    /// Every service's position, in the order of their names: sorted
    /// when first asked for, which the graph does beside a serial step of
    /// its own (see [`Manifest::by_name`]).
    by_name: std::sync::OnceLock<Vec<u32>>,
    /// The positions of the services whose image has a
    /// `build_args_file`, in order.
    with_args_file: Vec<u32>,
    /// The services of each include pattern's key.
    pattern_keys: Vec<PatternKeys>,
    /// Each service's dependencies as positions, resolved once.
    dependencies: Dependencies,
}

/// Dependencies as positions, every service's in one list: service `i`'s
/// are `positions[starts[i]..starts[i + 1]]`, each with its origin at the
/// same place in `origins`.
#[derive(Debug, Clone, Default)]
struct Dependencies {
    starts: Vec<u32>,
    positions: Vec<u32>,
    origins: Vec<OriginCode>,
    /// Some name was unknown: the caller looks for it to say where.
    unresolved: bool,
    /// Some service drops discovered edges (`"!name"`): the caller checks
    /// that each names a service.
    drops: bool,
    /// Every service, each after what it depends on (when there is no
    /// cycle): the file's order when it is one, else the cycle search's.
    order: Vec<u32>,
}

impl Dependencies {
    /// Resolves every `depends_on` and, but for those dropped with
    /// `"!name"` or declared too, every discovered edge, from the names
    /// the services give (`named`, in order); unknown names are left out
    /// (and reported by the caller).
    fn resolve(noted: &[Noted], names: &[CompactString], index: &NameIndex) -> Dependencies {
        // A large manifest's parts are resolved a half on each thread:
        // they only read the index.
        let edges: Vec<usize> = noted.iter().map(|part| part.named.names.len()).collect();
        let total: usize = edges.iter().sum();
        let mut cut = 0;
        let mut before = 0;
        while cut < edges.len() && 2 * (before + edges[cut]) <= total {
            before += edges[cut];
            cut += 1;
        }
        let (first, second) = noted.split_at(cut);
        let (mut resolved, rest) = if first.is_empty() || second.is_empty() {
            (Dependencies::resolve_parts(noted, names, index), None)
        } else {
            let (first, second) = crate::parallel::join(
                || Dependencies::resolve_parts(first, names, index),
                || Dependencies::resolve_parts(second, names, index),
            );
            (first, Some(second))
        };
        if let Some(rest) = rest {
            let offset = resolved.positions.len() as u32;
            resolved
                .starts
                .extend(rest.starts[1..].iter().map(|&start| start + offset));
            resolved.positions.extend_from_slice(&rest.positions);
            resolved.origins.extend_from_slice(&rest.origins);
            resolved.unresolved |= rest.unresolved;
        }
        resolved.drops = noted.iter().any(|part| part.named.drops);
        resolved
    }

    /// [`Dependencies::resolve`] for consecutive parts, as if they were all.
    fn resolve_parts(noted: &[Noted], names: &[CompactString], index: &NameIndex) -> Dependencies {
        let named = noted.iter().map(|part| &part.named);
        let edges = named.clone().map(|part| part.names.len()).sum();
        let services = named.clone().map(|part| part.counts.len()).sum::<usize>();
        let mut resolved = Dependencies {
            starts: Vec::with_capacity(services + 1),
            positions: Vec::with_capacity(edges),
            origins: Vec::with_capacity(edges),
            unresolved: false,
            drops: false,
            order: Vec::new(),
        };
        resolved.starts.push(0);
        for part in named {
            let mut given = part.names.iter().zip(&part.origins);
            for &count in &part.counts {
                let start = resolved.positions.len();
                for (name, &origin) in given.by_ref().take(count as usize) {
                    let Some(d) = index.get(names, name) else {
                        resolved.unresolved = true;
                        continue;
                    };
                    // A discovered edge the service declares too is kept once.
                    if origin != OriginCode::DECLARED
                        && resolved.positions[start..].contains(&(d as u32))
                    {
                        continue;
                    }
                    resolved.positions.push(d as u32);
                    resolved.origins.push(origin);
                }
                resolved.starts.push(resolved.positions.len() as u32);
            }
        }
        resolved
    }

    fn of(&self, service: usize) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.slice(service).iter().map(|&d| d as usize)
    }

    /// Service `i`'s dependencies with their origins.
    fn edges(&self, service: usize) -> impl Iterator<Item = (usize, Origin)> + '_ {
        let (start, end) = (self.starts[service], self.starts[service + 1]);
        self.positions[start as usize..end as usize]
            .iter()
            .zip(&self.origins[start as usize..end as usize])
            .map(|(&d, &o)| (d as usize, o.origin()))
    }

    fn slice(&self, service: usize) -> &[u32] {
        let (start, end) = (self.starts[service], self.starts[service + 1]);
        &self.positions[start as usize..end as usize]
    }
}

/// The dependencies services name, as resolving reads them: service
/// after service, its declared names, then its discovered ones that it
/// does not drop. The reading threads write them beside the services, so
/// that resolving reads a few bytes per edge instead of every service.
#[derive(Debug, Default)]
struct Named {
    /// How many names each service gives, in order.
    counts: Vec<u32>,
    names: Vec<CompactString>,
    /// Where each of `names` comes from.
    origins: Vec<OriginCode>,
    /// Some service drops a discovered edge (`"!name"`).
    drops: bool,
}

impl Named {
    /// Adds the names `service` gives.
    fn push(&mut self, service: &Service) {
        let before = self.names.len();
        self.names.extend(service.depends_on.iter().cloned());
        self.origins.resize(self.names.len(), OriginCode::DECLARED);
        if let Some(discovery) = &service.discovery {
            self.drops |= !discovery.dropped.is_empty();
            let kept = discovery
                .edges
                .iter()
                .filter(|(_, target)| !discovery.dropped.contains(target));
            for (source, target) in kept {
                self.names.push(target.clone());
                self.origins.push(OriginCode::discovered(source));
            }
        }
        self.counts.push((self.names.len() - before) as u32);
    }
}

/// Which services each include pattern's key (see [`PathPattern::key`])
/// belongs to, by the key's hash, in buckets: a diff's few directories
/// find the services they can touch without reading all the services.
/// One list for each part of a reading.
#[derive(Debug, Clone, Default)]
struct PatternKeys {
    /// `(hash, position)`, as added until [`PatternKeys::finish`], then
    /// by bucket, each bucket in the order added.
    entries: Vec<(u64, u32)>,
    /// Where each bucket starts in `entries`, and where the last ends.
    buckets: Vec<u32>,
}

impl PatternKeys {
    /// Adds the include patterns of the service at `position`.
    fn push(&mut self, position: usize, service: &Service) {
        let includes = service.paths.iter().filter(|p| !p.exclude);
        self.entries
            .extend(includes.map(|p| (NameIndex::hash(p.key()), position as u32)));
    }

    /// Puts what was added into buckets by the hash's low bits, about one
    /// entry a bucket, to be looked up: a counting sort, in two passes,
    /// where sorting the entries by hash cost 5.6M instructions at 20,000
    /// services, and each lookup a binary search.
    fn finish(&mut self) {
        if !self.buckets.is_empty() {
            // Finished already (by the thread that read the part).
            return;
        }
        let bits = usize::BITS - self.entries.len().leading_zeros();
        let mask = (1u64 << bits) - 1;
        // Each bucket's end, then, filled from the back, its start: no
        // second list of where the next entry of each goes.
        let mut buckets = vec![0u32; (1 << bits) + 1];
        for &(hash, _) in &self.entries {
            buckets[(hash & mask) as usize] += 1;
        }
        for b in 1..buckets.len() {
            buckets[b] += buckets[b - 1];
        }
        let mut sorted = vec![(0, 0); self.entries.len()];
        for &(hash, position) in self.entries.iter().rev() {
            let at = &mut buckets[(hash & mask) as usize];
            *at -= 1;
            sorted[*at as usize] = (hash, position);
        }
        (self.entries, self.buckets) = (sorted, buckets);
    }

    /// The positions of services with an include pattern whose key has
    /// this hash (and, rarely, another key of the same hash), ascending.
    fn with(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let bucket = match self.buckets.len() {
            // Not finished: nothing was added.
            0 => 0..0,
            // A power of two buckets and the end: the mask is len - 2.
            len => {
                let b = (hash & (len as u64 - 2)) as usize;
                self.buckets[b] as usize..self.buckets[b + 1] as usize
            }
        };
        (self.entries[bucket].iter())
            .filter(move |&&(h, _)| h == hash)
            .map(|&(_, position)| position as usize)
    }
}

/// What the checks across services and the graph read of each service,
/// noted as the services are read (by the reading threads, for their
/// parts), so that those serial steps do not walk the services.
#[derive(Debug, Default)]
struct Noted {
    /// The services that name an environment, by position: the checks
    /// across services look at these only.
    with_environment: Vec<usize>,
    /// The services whose image has a `build_args_file`, by position:
    /// every build reads those files, and few services have one.
    with_args_file: Vec<u32>,
    /// The dependencies they name.
    named: Named,
    /// Their include patterns' keys.
    keys: PatternKeys,
}

/// How much room a part's [`Noted`] lists get: at first a few
/// dependencies and two include patterns a table, then as many a table as
/// the parts this thread read before had, and an eighth more. Room is
/// memory the regions hand out once, on huge pages that are zeroed
/// whether it is used or not: four names a table where a manifest had 2.7
/// was 0.6 MB at 20,000 services.
#[derive(Default)]
struct Room {
    tables: usize,
    names: usize,
    keys: usize,
}

impl Room {
    /// Room for `tables` tables: `(names, pattern keys)`.
    fn for_tables(&self, tables: usize) -> (usize, usize) {
        if self.tables == 0 {
            return (tables * 4, tables * 2);
        }
        let like_before = |count: usize| count.saturating_mul(tables) / self.tables * 9 / 8 + 16;
        (like_before(self.names), like_before(self.keys))
    }

    /// Counts what a part of `tables` tables noted.
    fn add(&mut self, tables: usize, noted: &Noted) {
        self.tables += tables;
        self.names += noted.named.names.len();
        self.keys += noted.keys.entries.len();
    }
}

impl Noted {
    /// Room for `tables` services as `room` says. Growing these lists by
    /// doubling copied them into fresh pages again and again.
    fn with_capacity(tables: usize, room: &Room) -> Noted {
        let (names, keys) = room.for_tables(tables);
        Noted {
            with_environment: Vec::new(),
            with_args_file: Vec::new(),
            named: Named {
                counts: Vec::with_capacity(tables),
                names: Vec::with_capacity(names),
                origins: Vec::with_capacity(names),
                drops: false,
            },
            keys: PatternKeys {
                entries: Vec::with_capacity(keys),
                buckets: Vec::new(),
            },
        }
    }

    /// Notes the service at `position`.
    fn note(&mut self, position: usize, service: &Service) {
        if service.tests.environment.is_some() {
            self.with_environment.push(position);
        }
        if let Some(build) = &service.build
            && build.extras().build_args_file.is_some()
        {
            self.with_args_file.push(position as u32);
        }
        self.named.push(service);
        self.keys.push(position, service);
    }
}

/// The manifest's file name, at the repository root.
pub const MANIFEST_FILE: &str = "services.toml";

/// The largest manifest read: 20,000 services take about 6 MB.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Repository-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Pushes to these branches build and publish the affected images.
    pub publish_branches: Vec<String>,
    /// Tags matching this build and publish every image.
    pub release_tag: ReleaseTag,
    /// A change under any of these affects every service.
    pub global_paths: Vec<PathPattern>,
    /// A changed path matching these affects nothing: it is dropped before
    /// any service or `global_paths` is matched.
    pub ignore: Vec<PathPattern>,
    /// The image that runs `ripple gate` in a generated `.drone.yml`.
    pub ripple_image: String,
    /// Tag templates for every image that has none of its own.
    pub tags: Tags,
    /// The CI system to plan for (`--ci` wins; else recognised from the
    /// environment; else the first backend).
    pub ci: Option<String>,
    /// The discovery sources `ripple sync` runs.
    pub discover: Vec<String>,
    /// How a release publishes its images.
    pub release: Release,
}

/// `[settings] release`: how a release tag publishes its images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Release {
    /// Build every image again from the tagged commit.
    #[default]
    Rebuild,
    /// Retag the image a publish push built from the same inputs
    /// (`in-<hash>`); build only the images no push built.
    Promote,
}

impl Default for Settings {
    /// What a manifest without `[settings]` gets.
    fn default() -> Settings {
        Settings {
            publish_branches: vec!["develop".to_string()],
            release_tag: ReleaseTag {
                patterns: vec![("release-".to_string(), String::new())],
                semver: false,
            },
            global_paths: Vec::new(),
            ignore: Vec::new(),
            ripple_image: DEFAULT_RIPPLE_IMAGE.to_string(),
            tags: Tags::default(),
            ci: None,
            discover: Vec::new(),
            release: Release::Rebuild,
        }
    }
}

/// What `ripple_image` is when not set: the image the repository's
/// `Dockerfile` builds, under the name the README gives it.
pub const DEFAULT_RIPPLE_IMAGE: &str = "ripple:latest";

/// `release_tag`: one or more patterns, each a literal prefix, one `*` and
/// a literal suffix; the first that matches gives the version. With
/// `release_version = "semver"` the version must also be a semver.org 2.0
/// version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTag {
    patterns: Vec<(String, String)>,
    semver: bool,
}

impl ReleaseTag {
    /// Parses one pattern (`release-*`); the error says what shape is
    /// expected.
    pub fn parse(pattern: &str) -> Result<ReleaseTag, String> {
        ReleaseTag::new(&[pattern], false)
    }

    /// Parses every pattern of a list.
    pub fn new(patterns: &[&str], semver: bool) -> Result<ReleaseTag, String> {
        let mut parsed = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let Some((prefix, suffix)) = pattern.split_once('*') else {
                return Err(format!(
                    "release_tag `{pattern}` has no `*` to mark where the version is"
                ));
            };
            if suffix.contains('*') || pattern.contains(['?', '[', ']', '{', '}']) {
                return Err(format!(
                    "release_tag `{pattern}` may hold only one `*` and no other glob characters"
                ));
            }
            parsed.push((prefix.to_string(), suffix.to_string()));
        }
        if parsed.is_empty() {
            return Err("release_tag names no pattern".into());
        }
        Ok(ReleaseTag {
            patterns: parsed,
            semver,
        })
    }

    /// The version a release tag carries (`release-1.4.0` → `1.4.0`), or
    /// `None` when the tag is not a release.
    pub fn version<'t>(&self, tag: &'t str) -> Option<&'t str> {
        self.release(tag).ok()
    }

    /// The version of a release tag, or why the tag is not one.
    pub fn release<'t>(&self, tag: &'t str) -> Result<&'t str, String> {
        let matched = self.patterns.iter().find_map(|(prefix, suffix)| {
            let version = tag
                .strip_prefix(prefix.as_str())?
                .strip_suffix(suffix.as_str())?;
            (!version.is_empty()).then_some(version)
        });
        match matched {
            None => Err(format!("tag `{tag}` does not match release_tag {self}")),
            Some(version) if self.semver && !is_semver(version) => Err(format!(
                "tag `{tag}` gives version `{version}`, which is not a semver.org 2.0 version \
                 (release_version = \"semver\")"
            )),
            Some(version) => Ok(version),
        }
    }

    /// Each pattern as a glob, for triggers on tag refs.
    pub fn globs(&self) -> impl Iterator<Item = String> + '_ {
        self.patterns.iter().map(|(p, s)| format!("{p}*{s}"))
    }
}

impl fmt::Display for ReleaseTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.globs().map(|g| format!("`{g}`")).collect();
        f.write_str(&shown.join(", "))
    }
}

/// Whether `version` is a semver.org 2.0 version: `1.4.0`, `1.5.0-rc.1`,
/// `2.0.0+build.7`; not `v1.2.3`, `1.2`, `01.2.3`.
pub fn is_semver(version: &str) -> bool {
    let is_identifier = |part: &str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let is_number = |part: &str| {
        !part.is_empty()
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
    };
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers.iter().all(|n| is_number(n))
        && pre.is_none_or(|pre| {
            pre.split('.').all(|part| {
                is_identifier(part)
                    && (!part.bytes().all(|b| b.is_ascii_digit()) || is_number(part))
            })
        })
        && build.is_none_or(|build| build.split('.').all(is_identifier))
}

/// What a service is, which decides what runs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Builds and publishes a Docker image.
    Image,
    /// An image others build FROM; built before its dependents.
    BaseImage,
    /// No artifact; its changes flow to its dependents.
    Library,
    /// A test suite not tied to an artifact.
    Tests,
}

impl Kind {
    const NAMES: [(&'static str, Kind); 4] = [
        ("image", Kind::Image),
        ("base-image", Kind::BaseImage),
        ("library", Kind::Library),
        ("tests", Kind::Tests),
    ];

    /// Builds a Docker image on push and release.
    pub fn is_artifact(self) -> bool {
        matches!(self, Kind::Image | Kind::BaseImage)
    }

    /// The name used in `services.toml` and JSON.
    pub fn as_str(self) -> &'static str {
        Kind::NAMES
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("image", |(name, _)| name)
    }
}

/// One `[[service]]`. Lists are boxed slices and the build is boxed: a
/// large manifest holds thousands of services, and each byte of one is
/// 20 KB at 20,000.
#[derive(Debug, Clone)]
pub struct Service {
    /// Unique, `[a-z0-9][a-z0-9._-]*`.
    pub name: CompactString,
    /// What it is.
    pub kind: Kind,
    /// The files it owns.
    pub paths: Box<[PathPattern]>,
    /// Services it is built from or on; their changes affect it.
    pub depends_on: Box<[CompactString]>,
    /// Edges `ripple sync` found in the code, and the discovered edges
    /// `depends_on` drops; boxed and only when set.
    pub discovery: Option<Box<Discovery>>,
    /// How to build its image; set exactly for image and base-image.
    pub build: Option<Box<ImageBuild>>,
    /// How its tests run.
    pub tests: Arc<TestSetup>,
}

/// How a service's tests run. Shared by the services of a reading that
/// write the same, as most services of one language do (`golang:1.21`,
/// `go vet ./...`): 20,000 copies would be much of what a reading
/// allocates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestSetup {
    /// The container its lint/unit/functional commands run in.
    pub toolchain: Option<CompactString>,
    /// Lint commands, in order.
    pub lint: Box<[CompactString]>,
    /// Unit-test commands, in order.
    pub unit: Box<[CompactString]>,
    /// Functional-test commands, in order.
    pub functional: Box<[CompactString]>,
    /// Containers started beside the functional tests.
    pub sidecars: Box<[Sidecar]>,
    /// The `[[environment]]` whose slot its functional tests hold.
    pub environment: Option<CompactString>,
}

/// An `[[environment]]`: shared test environments whose slots functional
/// tests take turns on (see `ripple slots serve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Its name.
    pub name: String,
    /// Its slots, each a pre-provisioned environment.
    pub slots: Vec<String>,
    /// A lease not renewed within this many seconds is freed.
    pub ttl_s: u64,
}

/// The ttl of an environment that sets none: ten minutes.
pub const DEFAULT_ENVIRONMENT_TTL_S: u64 = 600;

/// A service's discovered edges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// `(source, service)` from the generated `discovered` key, in order;
    /// the source one of [`crate::discover::SOURCES`].
    pub edges: Vec<(&'static str, CompactString)>,
    /// `"!name"` entries of `depends_on`: discovered edges to these are
    /// dropped.
    pub dropped: Vec<CompactString>,
}

/// Where an edge of the graph comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Written in `depends_on`.
    Declared,
    /// Found by the discovery source of this name.
    Discovered(&'static str),
}

/// An [`Origin`] in a byte, as the lists of every edge keep it: 0 for
/// declared, else one more than the source's place in
/// [`crate::discover::SOURCES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OriginCode(u8);

impl OriginCode {
    const DECLARED: OriginCode = OriginCode(0);

    fn discovered(source: &str) -> OriginCode {
        // Only known sources are read: another is a problem.
        let k = crate::discover::SOURCES.iter().position(|s| *s == source);
        OriginCode(k.map_or(u8::MAX, |k| k as u8 + 1))
    }

    fn origin(self) -> Origin {
        match self.0 {
            0 => Origin::Declared,
            k => Origin::Discovered(
                (crate::discover::SOURCES.get(usize::from(k) - 1))
                    .copied()
                    .unwrap_or("discovered"),
            ),
        }
    }
}

impl Origin {
    /// `declared`, or the source's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Declared => "declared",
            Origin::Discovered(source) => source,
        }
    }
}

impl TestSetup {
    /// Whether it has commands but no toolchain to run them in.
    fn lacks_toolchain(&self) -> bool {
        let has_commands =
            !(self.lint.is_empty() && self.unit.is_empty() && self.functional.is_empty());
        has_commands && self.toolchain.is_none()
    }
}

impl Service {
    /// The test stages that have commands, in the order they run.
    pub fn test_stages(&self) -> impl Iterator<Item = (&'static str, &[CompactString])> {
        let tests = &*self.tests;
        [
            ("lint", tests.lint.as_ref()),
            ("unit", tests.unit.as_ref()),
            ("functional", tests.functional.as_ref()),
        ]
        .into_iter()
        .filter(|(_, commands)| !commands.is_empty())
    }
}

/// The Docker build of an image or base-image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuild {
    /// Repository to publish to, e.g. `registry.example.org/app`.
    pub image: CompactString,
    /// Path of the Dockerfile from the repository root.
    pub dockerfile: CompactString,
    /// Build context from the repository root; `.` when not set.
    pub context: CompactString,
    /// The rest, boxed and only when set: most images have none of it, and
    /// a large manifest copies every service as it is read.
    pub extras: Option<Box<BuildExtras>>,
}

/// What an image build may add to image, Dockerfile and context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildExtras {
    /// `--build-arg`s, sorted by key.
    pub build_args: Vec<(String, String)>,
    /// A dotenv file of build arguments, read at the commit built.
    pub build_args_file: Option<CompactString>,
    /// Target platforms (`linux/amd64`); more than one is a multi-platform
    /// build.
    pub platforms: Vec<String>,
    /// Tag templates of its own; each absent key falls back to `[settings]`.
    pub tags: Tags,
}

/// The extras of a build that sets none.
static NO_EXTRAS: BuildExtras = BuildExtras {
    build_args: Vec::new(),
    build_args_file: None,
    platforms: Vec::new(),
    tags: Tags {
        push: None,
        release: None,
    },
};

impl ImageBuild {
    /// Its build arguments, file, platforms and tags (all empty when unset).
    pub fn extras(&self) -> &BuildExtras {
        self.extras.as_deref().unwrap_or(&NO_EXTRAS)
    }
}

/// Tag templates by use; `None`: fall back (service, then `[settings]`,
/// then the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    /// For publish pushes.
    pub push: Option<Arc<[TagTemplate]>>,
    /// For releases.
    pub release: Option<Arc<[TagTemplate]>>,
}

impl Manifest {
    /// The tag templates of `build` for `use_`: its own, else `[settings]`,
    /// else the defaults (`{branch}`, `{sha}` / `latest`, `{version}`).
    pub fn tag_templates(&self, build: &ImageBuild, use_: Use) -> Vec<TagTemplate> {
        let pick = |tags: &Tags| match use_ {
            Use::Push => tags.push.as_deref().map(<[_]>::to_vec),
            Use::Release => tags.release.as_deref().map(<[_]>::to_vec),
        };
        pick(&build.extras().tags)
            .or_else(|| pick(&self.settings.tags))
            .unwrap_or_else(|| TagTemplate::defaults(use_))
    }
}

/// A container started for the functional tests (Drone `services`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// Host name the tests reach it by.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Its environment.
    pub environment: BTreeMap<String, String>,
}

/// Every problem found in a manifest; displayed with file, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// In file order.
    pub problems: Vec<Problem>,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The manifest's path as the user named it.
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The source line, for the excerpt.
    pub source_line: String,
    /// How many characters to underline.
    pub width: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "invalid manifest: {count} problem{plural}")?;
        for problem in &self.problems {
            write!(f, "\n{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// The most characters of a source line an excerpt shows.
const EXCERPT_CHARS: usize = 120;

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = self.line.to_string();
        let pad = " ".repeat(number.len());
        writeln!(f, "{pad}--> {}:{}:{}", self.path, self.line, self.column)?;
        writeln!(f, "{pad} |")?;
        // A long line is shown as a window around the problem: a manifest
        // line can be megabytes long, and it is not worth echoing whole.
        let chars = self.source_line.chars().count();
        let at = self.column - 1;
        let (first, last) = if chars <= EXCERPT_CHARS {
            (0, chars)
        } else {
            let first = at.saturating_sub(EXCERPT_CHARS / 3);
            (first, (first + EXCERPT_CHARS).min(chars))
        };
        let shown: String = self
            .source_line
            .chars()
            .skip(first)
            .take(last - first)
            .collect();
        let before = if first > 0 { "…" } else { "" };
        let after = if last < chars { "…" } else { "" };
        writeln!(f, "{number} | {before}{shown}{after}")?;
        let indent: String = before
            .chars()
            .map(|_| ' ')
            .chain(
                shown
                    .chars()
                    .take(at - first)
                    .map(|c| if c == '\t' { '\t' } else { ' ' }),
            )
            .collect();
        let width = self.width.min(last.saturating_sub(at)).max(1);
        writeln!(f, "{pad} | {indent}{}", "^".repeat(width))?;
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

const TOP_KEYS: &[&str] = &["settings", "service", "environment"];
const ENVIRONMENT_KEYS: &[&str] = &["name", "slots", "ttl"];
const SETTINGS_KEYS: &[&str] = &[
    "publish_branches",
    "release_tag",
    "release_version",
    "global_paths",
    "ignore",
    "ripple_image",
    "tags",
    "ci",
    "discover",
    "release",
];
/// The keys of a `[[service]]` table. `services` (sidecars, inline tables)
/// comes last: the [`scan`]ner reads all the others.
const SERVICE_KEYS: &[&str] = &[
    "name",
    "kind",
    "paths",
    "depends_on",
    "image",
    "dockerfile",
    "context",
    "toolchain",
    "lint",
    "unit",
    "functional",
    "build_args_file",
    "platforms",
    "environment",
    "build_args",
    "tags",
    "discovered",
    "services",
];

/// How many keys at the end of [`SERVICE_KEYS`] hold inline tables, which
/// only toml-spanner reads.
const TREE_KEYS: usize = 4;
const SIDECAR_KEYS: &[&str] = &["name", "image", "environment"];
const STAGES: [&str; 3] = ["lint", "unit", "functional"];

impl Manifest {
    /// Parses and validates manifest text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse_text(&Text::new(text), path)
    }

    /// [`Manifest::parse`] of a [`Text`].
    pub fn parse_text(text: &Text<'_>, path: &str) -> Result<Manifest, ManifestError> {
        match parse_tables(text, path) {
            Some(manifest) => Ok(manifest),
            None => Manifest::parse_whole(text, path),
        }
    }

    /// [`Manifest::parse`] in one piece, on one thread.
    fn parse_whole(text: &str, path: &str) -> Result<Manifest, ManifestError> {
        let mut reader = Reader::new(text, path, 0);
        // Recovering parse: every syntax error at once. The tree it recovers
        // is not checked further, as its problems would only echo them.
        let arena = toml_spanner::Arena::new();
        let document = toml_spanner::parse_recoverable(text, &arena);
        for err in document.errors() {
            let message = format!("TOML syntax: {}", err.message(text).trim());
            reader.problem(range(err.span()), message, None);
        }
        let manifest = if document.errors().is_empty() {
            let (settings, drafts) = reader.document(document.table(), TOP_KEYS);
            reader.assemble(settings, drafts)
        } else {
            None
        };
        match manifest {
            Some(manifest) if reader.problems.is_empty() => Ok(manifest),
            _ => {
                let mut problems = reader.problems;
                problems.sort_by_key(|p| (p.line, p.column));
                Err(ManifestError { problems })
            }
        }
    }

    /// The settings of a manifest whose `[[service]]` tables follow them,
    /// read alone (a fraction of the whole): for work that needs only
    /// them, to start while the rest is read. `None` when they cannot be
    /// read apart, or have a problem (the whole reading reports it). A
    /// whole reading can still find other settings (a `[settings]` table
    /// after the services): compare before relying on these.
    pub fn leading_settings(text: &Text<'_>, path: &str) -> Option<Settings> {
        let first = text.service_headers().next()?;
        read_document(text, 0..first, path, TOP_KEYS, &mut Globs::default())?.0
    }

    /// The service with this name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.position(name).map(|i| &self.services[i])
    }

    /// The position of the service with this name in `services`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(&self.names, name)
    }

    /// Every service's name, in the order of `services`.
    pub fn names(&self) -> &[CompactString] {
        &self.names
    }

    /// Every service's kind, in the order of `services`.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The services whose image has a `build_args_file`, in order.
    pub fn with_build_args_file(&self) -> impl Iterator<Item = &Service> + '_ {
        (self.with_args_file.iter()).map(|&i| &self.services[i as usize])
    }

    /// Every service's position in `services`, in the order of their
    /// names (which are unique). Sorted on the first call: only a graph
    /// reads it, and sorting 20,000 names while the checks across
    /// services ran kept the other thread from taking half of those (see
    /// BENCHMARKS.md, twenty-first session).
    pub fn by_name(&self) -> &[u32] {
        self.by_name.get_or_init(|| name_order(&self.names))
    }

    /// Whether [`Manifest::by_name`] is worth sorting beside other work:
    /// a large manifest, on two cores.
    pub fn sorts_names_beside(&self) -> bool {
        self.by_name.get().is_none()
            && self.names.len() >= 2 * TABLES_PER_THREAD
            && crate::parallel::two_cores()
    }

    /// The positions of the services with an include pattern whose key
    /// (see [`PathPattern::key`]) is `key`, ascending: only these can own
    /// a path that `key` is a directory of, or that is `key` (or any path,
    /// for the key `""`).
    pub fn including_under(&self, key: &str) -> Vec<usize> {
        let hash = NameIndex::hash(key);
        let mut found: Vec<usize> = (self.pattern_keys.iter())
            .flat_map(|keys| keys.with(hash))
            .filter(|&i| {
                let paths = self.services[i].paths.iter();
                paths.filter(|p| !p.exclude).any(|p| p.key() == key)
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The positions of the services `services[service]` depends on, in
    /// the order of its `depends_on`, then its discovered edges.
    pub fn dependencies(&self, service: usize) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.dependencies.of(service)
    }

    /// Every service's position, each after the services it depends on.
    pub fn order(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.dependencies.order.iter().map(|&i| i as usize)
    }

    /// [`Manifest::dependencies`] with where each edge comes from.
    pub fn edges(&self, service: usize) -> impl Iterator<Item = (usize, Origin)> + '_ {
        self.dependencies.edges(service)
    }
}

/// Where in the manifest a finding of a later check belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// `key` of the `service`-th `[[service]]` (its `item`-th entry when
    /// the value is an array).
    Service {
        /// Position in [`Manifest::services`].
        service: usize,
        /// The key.
        key: &'static str,
        /// The entry of an array value.
        item: Option<usize>,
    },
    /// `key` of `[settings]` (its `item`-th entry when an array).
    Setting {
        /// The key.
        key: &'static str,
        /// The entry of an array value.
        item: Option<usize>,
    },
}

/// A finding of a check made after parsing (say, against the files of a
/// commit): where it is, what is wrong, what to do.
pub type Finding = (Place, String, Option<String>);

/// Locates `findings` in the manifest's text, as parsing locates its own
/// problems: the same form, file, line and column. Manifests do not keep
/// their spans (that would cost every run); a check that needs them reads
/// the text again.
pub fn locate(text: &str, path: &str, findings: Vec<Finding>) -> ManifestError {
    let arena = toml_spanner::Arena::new();
    let document = toml_spanner::parse_recoverable(text, &arena);
    let root = document.table();
    let mut reader = Reader::new(text, path, 0);
    for (place, message, hint) in findings {
        let (table, key, item) = match place {
            Place::Service { service, key, item } => (
                root.get("service")
                    .and_then(|s| s.as_array())
                    .and_then(|a| a.get(service)),
                key,
                item,
            ),
            Place::Setting { key, item } => (root.get("settings"), key, item),
        };
        let value = table.and_then(|t| t.as_table()).and_then(|t| t.get(key));
        let entry = match (value, item) {
            (Some(value), Some(i)) => value.as_array().and_then(|a| a.get(i)).or(Some(value)),
            (value, _) => value,
        };
        let span = entry.or(table).map_or(0..0, |item| range(item.span()));
        reader.problem(span, message, hint);
    }
    reader.problems.sort_by_key(|p| (p.line, p.column));
    ManifestError {
        problems: reader.problems,
    }
}

/// The header line that starts each service, after a newline.
const SERVICE_HEADER: &str = "\n[[service]]";

/// A manifest's text, with where its `[[service]]` header lines are: the
/// places a large manifest is cut at to be read on two threads.
#[derive(Debug)]
pub struct Text<'t> {
    text: &'t str,
    /// Where each [`SERVICE_HEADER`] that [`opens_header_line`] starts,
    /// ascending.
    headers: Vec<usize>,
}

impl<'t> Text<'t> {
    /// `bytes` as a manifest's text when they are UTF-8. The headers are
    /// found in the same pass, on both threads: searched for afterwards,
    /// on one thread, they took 0.7 ms at 20,000 services while the other
    /// waited, and checking each took 0.3 ms more once out of the cache.
    pub fn check(bytes: &'t [u8]) -> Result<Text<'t>, std::str::Utf8Error> {
        let (text, headers) =
            crate::parallel::utf8_finding(bytes, SERVICE_HEADER.as_bytes(), |at| {
                opens_header_line(bytes, at)
            })?;
        Ok(Text { text, headers })
    }

    /// Text already checked (a small file, a blob from git): its headers
    /// found by the same search, whose check of ASCII blocks comes free.
    pub fn new(text: &'t str) -> Text<'t> {
        let bytes = text.as_bytes();
        let headers = crate::parallel::finding(bytes, SERVICE_HEADER.as_bytes(), |at| {
            opens_header_line(bytes, at)
        });
        Text { text, headers }
    }

    /// The text itself.
    pub fn as_str(&self) -> &'t str {
        self.text
    }

    /// Where each `[[service]]` header line starts, in the common form (at
    /// the start of a line, alone on it).
    fn service_headers(&self) -> impl Iterator<Item = usize> + '_ {
        // The first line too: a manifest without `[settings]` may start
        // with its first service, and a table left in the text before the
        // first cut sends the whole manifest to the slow reading.
        let first_line = is_header_line(self.text.as_bytes(), 0).then_some(0);
        first_line
            .into_iter()
            .chain(self.headers.iter().map(|&at| at + 1))
    }
}

/// Whether the [`SERVICE_HEADER`] at `at` (its newline) opens a header
/// line in the common form.
fn opens_header_line(bytes: &[u8], at: usize) -> bool {
    is_header_line(bytes, at + 1)
}

/// Whether a `[[service]]` header line in the common form (alone on its
/// line) starts at `at`.
fn is_header_line(bytes: &[u8], at: usize) -> bool {
    let header = &SERVICE_HEADER.as_bytes()[1..];
    bytes[at..].starts_with(header) && {
        let after = &bytes[at + header.len()..];
        after.starts_with(b"\n") || after.starts_with(b"\r\n")
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.text
    }
}

/// The fewest tables worth a thread of their own: a manifest with fewer
/// than twice as many is read on one thread, as a thread would cost more
/// than it saves.
const TABLES_PER_THREAD: usize = 500;

/// The most tables a part holds when a manifest is read by two threads:
/// large enough that taking a part costs nothing beside reading it.
const TABLES_PER_PART: usize = 1_000;

/// The fewest tables a part holds (but the last): the parts shrink
/// towards the end, so that the thread left with the last one does not
/// keep the other waiting long (up to 1 ms, 0.44 ms on average, with
/// parts of 1,000 at 20,000 services).
const LAST_PART: usize = 250;

/// Where the parts of `tables` tables start, and where the last ends:
/// each an eighth of the tables left, within [`LAST_PART`] and
/// [`TABLES_PER_PART`].
fn part_bounds(tables: usize) -> Vec<usize> {
    let mut bounds = vec![0];
    let mut at = 0;
    while at < tables {
        let left = tables - at;
        at += (left / 8).clamp(LAST_PART, TABLES_PER_PART).min(left);
        bounds.push(at);
    }
    bounds
}

/// Reads the manifest one `[[service]]` table at a time. The [`scan`]ner
/// reads the common form of a table without building a document tree; a
/// table it declines, and the text before the first table, are read with
/// toml-spanner as documents of their own. Tables are independent, so a
/// large manifest is cut into parts that two threads take in turn.
///
/// Returns `None` whenever that might not mean the same as the whole
/// document, or anything is wrong, so that the caller reads the whole text
/// in one piece and reports problems with their true positions. Tables are
/// cut at lines that are exactly a `[[service]]` header: a cut inside a
/// multi-line string leaves the piece that opens the string unterminated
/// (a syntax error), and a later piece that sets anything but a service
/// (say a late `[settings]`) is refused.
fn parse_tables(text: &Text<'_>, path: &str) -> Option<Manifest> {
    let mut starts: Vec<usize> = text.service_headers().collect();
    let text = text.as_str();
    let first = *starts.first()?;
    let tail = tail_start(text, *starts.last()?);
    starts.push(tail.unwrap_or(text.len()));
    let tables = starts.len() - 1;
    // `starts[i]..starts[i + 1]` is a table. The tables are cut into
    // parts that the threads take in turn, so that a thread slowed by
    // another (the diff runs beside them) takes fewer: part `k` holds
    // tables `bounds[k]..bounds[k + 1]`.
    let bounds = if crate::parallel::two_cores() && tables >= 2 * TABLES_PER_THREAD {
        part_bounds(tables)
    } else {
        vec![0, tables]
    };
    let parts = bounds.len() - 1;
    let inner = &bounds[1..parts];
    let (services, (names, (kinds, (preamble, read_parts)))) =
        fill::in_parts(tables, inner, |services| {
            fill::in_parts(tables, inner, |names| {
                fill::in_parts(tables, inner, |kinds| {
                    let work: Vec<std::sync::Mutex<PartLists>> = services
                        .iter_mut()
                        .zip(names.iter_mut().zip(kinds.iter_mut()))
                        .map(|(services, (names, kinds))| {
                            std::sync::Mutex::new((services, names, kinds))
                        })
                        .collect();
                    read_parts(text, path, first, &starts, &bounds, &work)
                })
            })
        });
    let (mut settings, mut read) = preamble?;
    if let Some(tail) = tail {
        // `[settings]` after the services (where some TOML writers put
        // it), and environments.
        let (late, environments) = read_tail(text, tail..text.len(), path, &text[..first])?;
        settings = late.or(settings);
        read.environments.extend(environments);
    }
    for part in read_parts? {
        read.environments.extend(part.environments);
        read.noted.push(part.noted);
    }
    read.services = services?;
    read.names = names?;
    read.kinds = kinds?;
    let mut reader = Reader::new(text, path, 0);
    let manifest = reader.assemble(settings, read)?;
    reader.problems.is_empty().then_some(manifest)
}

/// Where the text after the last `[[service]]` table (which starts at
/// `last`) begins: the first table header past the header at `last` that
/// is not one the scanner leaves to that service (see
/// [`scan::is_sub_table_header`]). `None` when the table runs to the end.
/// Whatever this misjudges fails to read in its piece and sends the
/// manifest to a whole reading: a header-like line inside a multi-line
/// value cuts the value, and a tail that sets a service is refused.
fn tail_start(text: &str, last: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut lines = memchr::memchr_iter(b'\n', &bytes[last..]).map(|n| last + n + 1);
    lines.find(|&line| {
        let blanks = bytes[line..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t');
        let at = line + blanks.count();
        bytes.get(at) == Some(&b'[') && !scan::is_sub_table_header(&bytes[at..])
    })
}

/// Reads the tail of a manifest (see [`tail_start`]): settings and
/// environments only. The settings when it sets them, which `preamble`
/// (the text before the first service) must not; `None` on any problem.
fn read_tail(
    text: &str,
    tail: Range<usize>,
    path: &str,
    preamble: &str,
) -> Option<(Option<Settings>, Environments)> {
    let sets_settings = |piece: &str| {
        let arena = toml_spanner::Arena::new();
        toml_spanner::parse(piece, &arena)
            .ok()
            .map(|document| document.table().get("settings").is_some())
    };
    let late = sets_settings(&text[tail.clone()])?;
    if late && sets_settings(preamble)? {
        return None;
    }
    let (settings, read) = read_document(
        text,
        tail,
        path,
        &["settings", "environment"],
        &mut Globs::default(),
    )?;
    Some((settings.filter(|_| late), read.environments))
}

/// Reads the text before the first table on this thread while two
/// threads read the tables, part `k` (tables `bounds[k]..bounds[k + 1]`)
/// into `lists[k]`, each taking the next part left until none is: so a
/// thread slowed by another (the diff runs beside them) takes fewer.
/// Returns the preamble and what each part holds beside its services, in
/// order; `None` for the parts when any of them has a problem.
fn read_parts<'a>(
    text: &'a str,
    path: &'a str,
    first: usize,
    starts: &[usize],
    bounds: &[usize],
    lists: &[std::sync::Mutex<impl Destination + Send>],
) -> (Option<Preamble>, Option<Vec<PartRead>>) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    // What the tables are read into lives until the process ends.
    let take_parts = || {
        crate::arena::region(|| {
            // Holds what the scanner's inline values are read into (a few
            // hundred bytes a table that has them) until the reading ends.
            let arena = toml_spanner::Arena::new();
            let mut lines = InlineLines::default();
            let mut reader = Reader::new(text, path, 0);
            reader.dependency_spans = false;
            let mut scanner = scan::Scanner::new(text);
            let mut done = Vec::new();
            loop {
                let k = next.fetch_add(1, Relaxed);
                if k >= lists.len() || failed.load(Relaxed) {
                    break;
                }
                let mut part = lists[k].lock().unwrap_or_else(|e| e.into_inner());
                let tables = &starts[bounds[k]..=bounds[k + 1]];
                let read = read_part(
                    &mut reader,
                    &mut scanner,
                    &arena,
                    &mut lines,
                    tables,
                    bounds[k],
                    &mut *part,
                );
                failed.fetch_or(read.is_none(), Relaxed);
                done.push((k, read));
            }
            done
        })
    };
    let ((preamble, mut done), more) = crate::parallel::join(
        || {
            let preamble = read_document(text, 0..first, path, TOP_KEYS, &mut Globs::default());
            (preamble, take_parts())
        },
        // A reading that panicked is done again whole, on this thread.
        || match lists.len() > 1 {
            true => std::panic::catch_unwind(std::panic::AssertUnwindSafe(take_parts)).ok(),
            false => Some(Vec::new()),
        },
    );
    let Some(more) = more else {
        return (preamble, None);
    };
    done.extend(more);
    done.sort_unstable_by_key(|(k, _)| *k);
    (preamble, done.into_iter().map(|(_, read)| read).collect())
}

/// Reads the tables between consecutive `starts` into their places in
/// the lists, the first at `position`, each table one service (a table
/// holding more is refused, for the whole reading to take); what they
/// hold beside, or `None` on any problem.
fn read_part<'a>(
    reader: &mut Reader<'a>,
    scanner: &mut scan::Scanner<'a>,
    arena: &'a toml_spanner::Arena,
    lines: &mut InlineLines<'a>,
    starts: &[usize],
    mut position: usize,
    lists: &mut impl Destination,
) -> Option<PartRead> {
    // A thread's reader has the whole text.
    let (text, path) = (reader.text, reader.path);
    let tables = starts.len().saturating_sub(1);
    let mut read = PartRead {
        environments: Vec::new(),
        noted: Noted::with_capacity(tables, &reader.room),
    };
    let mut place = |service: Service| {
        read.noted.note(position, &service);
        position += 1;
        lists.place(service)
    };
    for table in starts.windows(2).map(|w| w[0]..w[1]) {
        // Scanned: with the values of the lines read alone, if any.
        let scanned = match scanner.service(table.clone()) {
            false => None,
            true if scanner.inline.iter().all(Option::is_none) && scanner.rest.is_none() => {
                Some(None)
            }
            true => inline_values(text, &scanner.inline, &scanner.rest, arena, lines).map(Some),
        };
        // Read where the fields are made: handed out of this closure, the
        // fields (about 560 bytes) were copied twice a service.
        let read_scanned = scanned.and_then(|inline| {
            let mut fields = ServiceFields::default();
            fields.take_scanned(scanner);
            if let Some((lines, rest)) = &inline {
                fields.inline(lines, text, &scanner.inline);
                if let Some(rest) = rest {
                    fields.rest(rest, text.get(scanner.rest.clone()?)?)?;
                }
            }
            Some(reader.service(&fields, table.clone()))
        });
        if let Some(read_scanned) = read_scanned {
            let (service, _) = read_scanned?;
            place(service).then_some(())?;
        } else {
            // The thread's globs: `!**/*.md` in every table the scanner
            // declines (sidecars, `build_args`) is compiled once, not once
            // a table (a fifth of reading such a table).
            let document = read_document(text, table, path, &["service"], &mut reader.patterns)?.1;
            for service in document.services {
                place(service).then_some(())?;
            }
            read.environments.extend(document.environments);
        }
    }
    reader.room.add(tables, &read.noted);
    read.noted.keys.finish();
    reader.problems.is_empty().then_some(read)
}

/// Each `key = value` line of [`scan::INLINE_KEYS`] a reading has met, by
/// its text, read alone with toml-spanner (`None`: not TOML). Manifests
/// repeat these lines (the same sidecars, the same tags on many
/// services), and reading one alone costs about 2,000 instructions.
type InlineLines<'a> = HashMap<&'a str, Option<toml_spanner::Document<'a>>>;

/// What [`inline_values`] read: each inline key's line, and the
/// sub-tables that end the table.
type InlineValues<'l, 'a> = (
    [Option<&'l toml_spanner::Document<'a>>; scan::INLINE_KEYS.len()],
    Option<&'l toml_spanner::Document<'a>>,
);

/// Environments with where each is written.
type Environments = Vec<(Environment, Range<usize>)>;

/// The lines `key = value` of the scanner's [`scan::INLINE_KEYS`], and
/// the sub-tables that end the table (`rest`), each read alone with
/// toml-spanner (once a text, kept in `lines`); `None` when one is not
/// TOML (the table is then read whole, for the problem to be found
/// there). What a text holds is the same wherever it is: spans in it
/// count from its start.
fn inline_values<'l, 'a>(
    text: &'a str,
    spans: &[Option<Range<usize>>; scan::INLINE_KEYS.len()],
    rest: &Option<Range<usize>>,
    arena: &'a toml_spanner::Arena,
    lines: &'l mut InlineLines<'a>,
) -> Option<InlineValues<'l, 'a>> {
    let texts = spans.clone().map(|span| span.map(|span| text.get(span)));
    let rest = rest.clone().map(|span| text.get(span));
    for line in texts.iter().flatten().chain(&rest) {
        let line = (*line)?;
        lines
            .entry(line)
            .or_insert_with(|| toml_spanner::parse(line, arena).ok());
    }
    let lines = &*lines;
    let read = |line: Option<&'a str>| lines.get(line?)?.as_ref();
    let mut values = [None, None, None];
    for (value, line) in values.iter_mut().zip(texts) {
        if let Some(line) = line {
            *value = Some(read(line)?);
        }
    }
    let rest = match rest {
        Some(text) => Some(read(text)?),
        None => None,
    };
    Some((values, rest))
}

/// Reads `text[piece]` with toml-spanner as a document of its own, which
/// may set only the keys `top` (the first piece any; a table only
/// `service`; the tail after the last service all else). `None` if it has
/// any problem.
fn read_document(
    text: &str,
    piece: Range<usize>,
    path: &str,
    top: &[&str],
    globs: &mut Globs,
) -> Option<(Option<Settings>, Services)> {
    let is_first = piece.start == 0;
    let part = &text[piece.clone()];
    let arena = toml_spanner::Arena::new();
    let document = toml_spanner::parse(part, &arena).ok()?;
    // Any `service` before the first cut (`service = [...]`, an indented
    // `[[service]]`) meets the `[[service]]` tables after it, which the
    // whole document may refuse (a static array cannot be extended) or
    // join: only a whole reading knows.
    if is_first && document.table().get("service").is_some() {
        return None;
    }
    let mut reader = Reader::new(part, path, piece.start);
    std::mem::swap(&mut reader.patterns, globs);
    let read = reader.document(document.table(), top);
    std::mem::swap(&mut reader.patterns, globs);
    reader.problems.is_empty().then_some(read)
}

/// Globs checked, by their text, and what checking made of each.
type Globs = HashMap<CompactString, Result<PathPattern, String>>;

/// Text made only when shown: what a service is called in a problem
/// (`` `name` ``), which every service would otherwise format whether or
/// not anything is wrong.
#[derive(Clone, Copy)]
struct Lazy<'l>(&'l dyn Fn() -> String);

impl fmt::Display for Lazy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)())
    }
}

type Item<'de> = toml_spanner::Item<'de>;
type Table<'de> = toml_spanner::Table<'de>;

fn range(span: toml_spanner::Span) -> Range<usize> {
    span.start as usize..span.end as usize
}

/// A string from the document and where it stands.
type Located<'de> = (&'de str, Range<usize>);

/// Walks the spanned tree, collecting problems instead of stopping.
struct Reader<'a> {
    text: &'a str,
    path: &'a str,
    /// Where `text` starts in the whole manifest: spans kept for later
    /// checks are moved by this much.
    offset: usize,
    problems: Vec<Problem>,
    // Manifests repeat globs (`!**/*.md` in every service): check each once.
    patterns: Globs,
    /// The [`TestSetup`]s read, by the text of their keys: see
    /// [`Reader::tests`].
    tests: HashMap<[Option<&'a str>; 6], Arc<TestSetup>>,
    /// The tags read, by the text of their `tags = {...}` line: manifests
    /// repeat it on every image, and reading its templates cost 3,700
    /// instructions a service.
    tags: HashMap<&'a str, Tags>,
    /// Whether to keep where each dependency is written. A reading that
    /// only needs to know whether anything is wrong (the table reader,
    /// which leaves reporting to a whole reading) does without.
    dependency_spans: bool,
    /// `text`, when it is kept until the process exits (see
    /// [`Reader::own`]).
    kept: Option<&'static str>,
    /// How much room the next part's noted lists get.
    room: Room,
}

/// A value in a `[[service]]` table, from either reader: toml-spanner's
/// tree or the [`scan`]ner, so that one set of checks serves both.
#[derive(Clone, Copy)]
enum Field<'t, 'a> {
    /// A value of toml-spanner's tree.
    Item(&'t Item<'a>),
    /// A string the scanner read.
    Str(&'t Located<'a>),
    /// An array of strings the scanner read, and where the array is.
    List(&'t [Located<'a>], &'t Range<usize>),
}

/// A scanned `discovered` key: each source with its array, and the
/// strings the arrays point into.
type ScannedDiscovered<'t, 'a> = (&'t [(Located<'a>, scan::Slot)], &'t [Located<'a>]);

/// The values of a `[[service]]` table, by key.
#[derive(Default)]
struct ServiceFields<'t, 'a> {
    name: Option<Field<'t, 'a>>,
    kind: Option<Field<'t, 'a>>,
    paths: Option<Field<'t, 'a>>,
    depends_on: Option<Field<'t, 'a>>,
    image: Option<Field<'t, 'a>>,
    dockerfile: Option<Field<'t, 'a>>,
    context: Option<Field<'t, 'a>>,
    toolchain: Option<Field<'t, 'a>>,
    lint: Option<Field<'t, 'a>>,
    unit: Option<Field<'t, 'a>>,
    functional: Option<Field<'t, 'a>>,
    build_args_file: Option<Field<'t, 'a>>,
    platforms: Option<Field<'t, 'a>>,
    environment: Option<Field<'t, 'a>>,
    /// Inline tables, which only toml-spanner reads.
    build_args: Option<&'t Item<'a>>,
    tags: Option<&'t Item<'a>>,
    discovered: Option<&'t Item<'a>>,
    /// `discovered` as the scanner read it: each source and its array,
    /// and the strings the arrays point into.
    discovered_scanned: Option<ScannedDiscovered<'t, 'a>>,
    /// Sidecars: inline tables, which only toml-spanner reads.
    services: Option<&'t Item<'a>>,
    /// The line `services = [...]` as written, when the scanner found it.
    sidecars_line: Option<&'a str>,
    /// The line `tags = {...}` as written, when the scanner found it.
    tags_line: Option<&'a str>,
}

impl<'t, 'a> ServiceFields<'t, 'a> {
    /// Takes the fields of the table the scanner last read into these
    /// (empty) ones. Filled where they are, not returned: the fields are
    /// about 560 bytes, which returning them copied once a service.
    fn take_scanned(&mut self, scanner: &'t scan::Scanner<'a>) {
        self.discovered_scanned =
            (scanner.discovered.as_deref()).map(|entries| (entries, scanner.strings.as_slice()));
        // Only the keys the table sets are looked up.
        let set =
            (scanner.slots.iter().enumerate()).filter_map(|(k, slot)| Some((k, slot.as_ref()?)));
        for (k, slot) in set {
            if let Some(field) = self.slot_at(k) {
                let strings = &scanner.strings[slot.strings.clone()];
                *field = Some(match (slot.list, strings) {
                    (false, [string]) => Field::Str(string),
                    _ => Field::List(strings, &slot.span),
                });
            }
        }
    }

    /// Where the value of [`scan::KEYS`]`[k]` goes: by position, so that
    /// the scanner's values are placed without comparing names again.
    fn slot_at(&mut self, k: usize) -> Option<&mut Option<Field<'t, 'a>>> {
        Some(match k {
            0 => &mut self.name,
            1 => &mut self.kind,
            2 => &mut self.paths,
            3 => &mut self.depends_on,
            4 => &mut self.image,
            5 => &mut self.dockerfile,
            6 => &mut self.context,
            7 => &mut self.toolchain,
            8 => &mut self.lint,
            9 => &mut self.unit,
            10 => &mut self.functional,
            11 => &mut self.build_args_file,
            12 => &mut self.platforms,
            13 => &mut self.environment,
            _ => return None,
        })
    }

    /// Takes the values of [`scan::INLINE_KEYS`] from the lines
    /// [`inline_values`] read. Their spans count from the line's start:
    /// any problem sends the manifest to a whole reading, which reports
    /// it where it is, and none of them is kept.
    ///
    /// `spans` are where the lines are in `text`: the sidecars' line is
    /// kept as written, for services that write the same to share a
    /// [`TestSetup`].
    fn inline(
        &mut self,
        lines: &[Option<&'t toml_spanner::Document<'a>>; scan::INLINE_KEYS.len()],
        text: &'a str,
        spans: &[Option<Range<usize>>; scan::INLINE_KEYS.len()],
    ) {
        let [build_args, tags, services] = std::array::from_fn(|k| {
            let line = lines[k].as_ref()?;
            line.table().get(scan::INLINE_KEYS[k])
        });
        (self.build_args, self.tags, self.services) = (build_args, tags, services);
        let [_, tags, sidecars] = spans;
        self.sidecars_line = sidecars.clone().and_then(|span| text.get(span));
        self.tags_line = tags.clone().and_then(|span| text.get(span));
    }

    /// Takes the sub-tables that end a scanned table, read alone as the
    /// document `rest` (`[service.build_args]` makes it
    /// `{ service = { build_args = {...} } }`), written as `text`. `None`
    /// when it holds anything else, or a key the table set already: the
    /// table is then read whole, which says what is wrong.
    fn rest(&mut self, rest: &'t toml_spanner::Document<'a>, text: &'a str) -> Option<()> {
        let root = rest.table();
        let service = match root.len() {
            1 => root.get("service")?.as_table()?,
            _ => return None,
        };
        for (key, item) in service.iter() {
            let (slot, line) = match key.name {
                "build_args" => (&mut self.build_args, None),
                "tags" => (&mut self.tags, Some(&mut self.tags_line)),
                "services" => (&mut self.services, Some(&mut self.sidecars_line)),
                "discovered" if self.discovered_scanned.is_none() => (&mut self.discovered, None),
                _ => return None,
            };
            if slot.replace(item).is_some() {
                return None;
            }
            // Shared by the text of all the sub-tables: the same text is
            // the same value.
            if let Some(line) = line {
                *line = Some(text);
            }
        }
        Some(())
    }

    /// Where the value of `key` goes; `None` for `services` and unknown keys.
    fn slot(&mut self, key: &str) -> Option<&mut Option<Field<'t, 'a>>> {
        self.slot_at(scan::KEYS.iter().position(|k| *k == key)?)
    }
}

/// Where a service's name and dependencies stand, for the checks across
/// services; kept beside the services rather than in them.
struct Spans {
    name: Range<usize>,
    depends_on: Vec<Range<usize>>,
    /// The `"!name"` entries of `depends_on`, then the names in
    /// `discovered`, in the order of [`Discovery`].
    others: Vec<Range<usize>>,
}

impl Spans {
    /// Where the `k`th dependency is written; where the name is when its
    /// place was not kept.
    fn dependency(&self, k: usize) -> Range<usize> {
        self.depends_on.get(k).unwrap_or(&self.name).clone()
    }

    /// Moves spans read from a later part of the text.
    fn shift(&mut self, offset: usize) {
        let shift = |span: &mut Range<usize>| *span = span.start + offset..span.end + offset;
        shift(&mut self.name);
        self.depends_on.iter_mut().for_each(shift);
        self.others.iter_mut().for_each(shift);
    }
}

/// The services of a document (or a part of one) and their spans.
#[derive(Default)]
struct Services {
    services: Vec<Service>,
    spans: Vec<Spans>,
    /// Each service's name and kind (see [`Manifest::names`]).
    names: Vec<CompactString>,
    kinds: Vec<Kind>,
    /// `[[environment]]` tables, each with where its name is written.
    environments: Vec<(Environment, Range<usize>)>,
    /// What is noted of the services, a part at a time, in order.
    noted: Vec<Noted>,
}

impl Services {
    /// Where service `i` stands; nowhere when spans were not kept (the
    /// table reading reports no problem itself).
    fn spans(&self, i: usize) -> &Spans {
        static NOWHERE: Spans = Spans {
            name: 0..0,
            depends_on: Vec::new(),
            others: Vec::new(),
        };
        self.spans.get(i).unwrap_or(&NOWHERE)
    }

    fn push(&mut self, service: Service, spans: Spans) {
        if self.noted.is_empty() {
            self.noted.push(Noted::default());
        }
        if let Some(noted) = self.noted.last_mut() {
            noted.note(self.services.len(), &service);
        }
        self.names.push(service.name.clone());
        self.kinds.push(service.kind);
        self.services.push(service);
        self.spans.push(spans);
    }
}

/// Where the services of one part of the tables go.
trait Destination {
    /// Writes the next service; `false` when the part is already full.
    fn place(&mut self, service: Service) -> bool;
}

/// A part of each list: services, names and kinds. Spans are not kept:
/// a problem found in any part sends the caller to the whole reading,
/// which reports it.
type PartLists<'p, 's, 'n, 'k> = (
    &'p mut fill::Part<'s, Service>,
    &'p mut fill::Part<'n, CompactString>,
    &'p mut fill::Part<'k, Kind>,
);

impl Destination for PartLists<'_, '_, '_, '_> {
    fn place(&mut self, service: Service) -> bool {
        let (services, names, kinds) = self;
        names.push(service.name.clone()) && kinds.push(service.kind) && services.push(service)
    }
}

/// The text before the first table, read: settings, and environments.
type Preamble = (Option<Settings>, Services);

/// What one part's tables hold beside their services.
struct PartRead {
    environments: Vec<(Environment, Range<usize>)>,
    /// Positions in the whole list.
    noted: Noted,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str, path: &'a str, offset: usize) -> Reader<'a> {
        Reader {
            text,
            path,
            offset,
            problems: Vec::new(),
            patterns: HashMap::default(),
            tests: HashMap::default(),
            tags: HashMap::default(),
            dependency_spans: true,
            kept: crate::arena::kept_text(text),
            room: Room::default(),
        }
    }

    /// `value`, read from the text, as an owned string: a piece of a text
    /// kept until the process exits is referred to, not copied. Copies
    /// of images, Dockerfiles and paths longer than a string holds inline
    /// were most of a large manifest's allocations (four a service).
    fn own(&self, value: &str) -> CompactString {
        // A short string is inline either way, and `const_new` copies it a
        // byte at a time.
        if value.len() > std::mem::size_of::<CompactString>()
            && let Some(piece) = self
                .kept
                .and_then(|kept| crate::arena::piece_of(kept, value))
        {
            return CompactString::const_new(piece);
        }
        CompactString::from(value)
    }

    /// How the service of `fields` tests: the same [`TestSetup`] as every
    /// earlier service of this reading whose test keys are written the
    /// same (and read without a problem), else new.
    fn tests(
        &mut self,
        fields: &ServiceFields<'_, 'a>,
        label: impl Fn() -> String,
    ) -> Arc<TestSetup> {
        // Only values the scanner read, which have no escapes: the same
        // text is the same value. So is a sidecars line.
        let text = |field: Option<Field<'_, 'a>>| match field {
            None => Some(None),
            Some(Field::Str((_, span)) | Field::List(_, span)) => {
                self.text.get(span.clone()).map(Some)
            }
            Some(Field::Item(_)) => None,
        };
        // Sidecars count as written on their line; read from the tree
        // (the whole table read by toml-spanner), they are not shared.
        let sidecars = match (fields.services, fields.sidecars_line) {
            (None, _) => Some(None),
            (Some(_), line) => line.map(Some),
        };
        let key = (|| {
            Some([
                text(fields.toolchain)?,
                text(fields.lint)?,
                text(fields.unit)?,
                text(fields.functional)?,
                text(fields.environment)?,
                sidecars?,
            ])
        })();
        if let Some(shared) = key.as_ref().and_then(|key| self.tests.get(key)) {
            return Arc::clone(shared);
        }
        let problems = self.problems.len();
        let mut optional = |value: Option<Field<'_, 'a>>, key: &str| {
            value
                .and_then(|v| self.string(v, key))
                .map(|(s, _)| CompactString::from(s))
        };
        let toolchain = optional(fields.toolchain, "toolchain");
        let environment = optional(fields.environment, "environment");
        let tests = Arc::new(TestSetup {
            toolchain,
            lint: self
                .owned_strings::<CompactString>(fields.lint, "lint")
                .into(),
            unit: self
                .owned_strings::<CompactString>(fields.unit, "unit")
                .into(),
            functional: (self.owned_strings::<CompactString>(fields.functional, "functional"))
                .into(),
            sidecars: match fields.services {
                Some(item) => self.sidecars(item, Lazy(&label)).into(),
                None => Box::default(),
            },
            environment,
        });
        if let Some(key) = key
            && self.problems.len() == problems
        {
            self.tests.insert(key, Arc::clone(&tests));
        }
        tests
    }

    fn problem(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        // An error at the very end points at the last line, not past it.
        let end_of_text = self.text.trim_end_matches(['\n', '\r']).len();
        // Parser spans may end inside a multi-byte character: round down.
        let boundary = |mut at: usize| {
            while !self.text.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        let start = boundary(span.start.min(end_of_text));
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let source_line = self.text[line_start..line_end].trim_end_matches('\r');
        let line = self.text[..start].matches('\n').count() + 1;
        let column = self.text[line_start..start].chars().count() + 1;
        let end = boundary(span.end.clamp(start, line_end));
        let width = self.text[start..end].chars().count();
        self.problems.push(Problem {
            path: self.path.to_string(),
            line,
            column,
            source_line: source_line.to_string(),
            width,
            message,
            hint,
        });
    }

    /// Reports keys outside `allowed`, naming where they are.
    /// Reports each key of `table` not in `allowed`. `context` is shown
    /// only then: built for every table, it was a `format!` a service.
    fn check_keys(&mut self, table: &Table<'_>, allowed: &[&str], context: impl fmt::Display) {
        for (key, _) in table.iter() {
            if !allowed.contains(&key.name) {
                self.unknown_key(key, allowed, &context);
            }
        }
    }

    fn unknown_key(
        &mut self,
        key: &toml_spanner::Key<'_>,
        allowed: &[&str],
        context: &dyn fmt::Display,
    ) {
        let expected = allowed
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.problem(
            range(key.span),
            format!("unknown key `{}` in {context}", key.name),
            Some(format!("expected one of {expected}")),
        );
    }

    /// The string `value` is. A scanned one, as nearly every value is, is
    /// taken where it is asked for: a call for each cost a service about
    /// 150 instructions.
    #[inline(always)]
    fn string(&mut self, value: Field<'_, 'a>, what: &str) -> Option<Located<'a>> {
        match value {
            Field::Str(located) => Some(located.clone()),
            value => self.string_read(value, what),
        }
    }

    /// [`Reader::string`] of a value the scanner did not take.
    fn string_read(&mut self, value: Field<'_, 'a>, what: &str) -> Option<Located<'a>> {
        let (span, found) = match value {
            Field::Item(item) => match item.value() {
                toml_spanner::Value::String(s) => return Some((*s, range(item.span()))),
                _ => (range(item.span()), *item.type_str()),
            },
            Field::Str(located) => return Some(located.clone()),
            Field::List(_, span) => (span.clone(), "array"),
        };
        self.problem(
            span,
            format!("`{what}` must be a string, found {found}"),
            None,
        );
        None
    }

    fn strings(&mut self, value: Field<'_, 'a>, what: &str) -> Vec<Located<'a>> {
        self.strings_as(value, what, |_, s, span| Some((s, span)))
    }

    /// The strings of an array, each made into a `T` as it is read (or
    /// left out, when `make` finds a problem with it): one list, however
    /// the caller keeps them.
    fn strings_as<T>(
        &mut self,
        value: Field<'_, 'a>,
        what: &str,
        mut make: impl FnMut(&mut Self, &'a str, Range<usize>) -> Option<T>,
    ) -> Vec<T> {
        let (span, found) = match value {
            Field::List(strings, _) => {
                let mut made = Vec::with_capacity(strings.len());
                for (s, span) in strings {
                    made.extend(make(self, s, span.clone()));
                }
                return made;
            }
            Field::Item(item) => match item.as_array() {
                Some(items) => return self.item_strings(items, what, make),
                None => (range(item.span()), *item.type_str()),
            },
            Field::Str((_, span)) => (span.clone(), "string"),
        };
        self.problem(
            span,
            format!("`{what}` must be an array of strings, found {found}"),
            Some(format!("write it as `{what} = [\"...\"]`")),
        );
        Vec::new()
    }

    fn item_strings<T>(
        &mut self,
        items: &toml_spanner::Array<'a>,
        what: &str,
        mut make: impl FnMut(&mut Self, &'a str, Range<usize>) -> Option<T>,
    ) -> Vec<T> {
        let mut strings = Vec::with_capacity(items.len());
        for element in items.iter() {
            match element.value() {
                toml_spanner::Value::String(s) => {
                    strings.extend(make(self, s, range(element.span())));
                }
                _ => self.problem(
                    range(element.span()),
                    format!("`{what}` must hold strings, found {}", element.type_str()),
                    None,
                ),
            }
        }
        strings
    }

    fn owned_strings<T: From<&'a str>>(
        &mut self,
        value: Option<Field<'_, 'a>>,
        key: &str,
    ) -> Vec<T> {
        match value {
            Some(value) => self.strings_as(value, key, |_, s, _| Some(T::from(s))),
            None => Vec::new(),
        }
    }

    fn patterns(&mut self, value: Field<'_, 'a>, what: &str) -> Vec<PathPattern> {
        self.strings_as(value, what, |reader, text, span| {
            // A service's own `DIR/**` is not looked up: hashing it is
            // most of its reading, and no other service repeats it.
            let scanned = pattern::Scanned::of(text);
            let parsed = if scanned.shape == pattern::Shape::Glob {
                match reader.patterns.get(text) {
                    Some(parsed) => parsed.clone(),
                    None => {
                        // Pieces of a kept text, not copies: most globs are
                        // a service's own (`tests/NAME/**/*.py`), and
                        // copying each for the table and the pattern made
                        // three copies of it.
                        let parsed =
                            PathPattern::parse_scanned(text, scanned, |text| reader.own(text));
                        reader.patterns.insert(reader.own(text), parsed.clone());
                        parsed
                    }
                }
            } else {
                PathPattern::parse_scanned(text, scanned, |text| reader.own(text))
            };
            parsed
                .map_err(|message| {
                    let hint = message.starts_with("invalid glob").then(|| {
                        "`*` and `?` stay within one directory, `**` spans directories, \
                         `{a,b}` alternates; escape a literal with `\\`"
                            .to_string()
                    });
                    reader.problem(span, format!("`{what}`: {message}"), hint);
                })
                .ok()
        })
    }

    /// Reads a whole document, or a piece of one that may set only the
    /// keys `top`.
    fn document(&mut self, root: &Table<'a>, top: &[&str]) -> (Option<Settings>, Services) {
        self.check_keys(root, top, "the manifest");
        let settings = match root.get("settings") {
            Some(item) => match item.as_table() {
                Some(table) => self.settings(table),
                None => {
                    self.problem(
                        range(item.span()),
                        format!("`settings` must be a table, found {}", item.type_str()),
                        None,
                    );
                    None
                }
            },
            None => Some(Settings::default()),
        };

        let mut read = Services::default();
        if let Some(item) = root.get("service") {
            match item.as_array() {
                Some(items) => {
                    read.services.reserve(items.len());
                    read.spans.reserve(items.len());
                    read.names.reserve(items.len());
                    read.kinds.reserve(items.len());
                    for element in items.iter() {
                        match element.as_table() {
                            Some(table) => {
                                let fields = self.service_fields(table);
                                if let Some((service, spans)) =
                                    self.service(&fields, range(element.span()))
                                {
                                    read.push(service, spans);
                                }
                            }
                            None => self.problem(
                                range(element.span()),
                                format!("a service must be a table, found {}", element.type_str()),
                                Some("declare each service with `[[service]]`".into()),
                            ),
                        }
                    }
                }
                None => self.problem(
                    range(item.span()),
                    format!(
                        "`service` must be an array of tables, found {}",
                        item.type_str()
                    ),
                    Some("declare each service with `[[service]]`".into()),
                ),
            }
        }
        if let Some(item) = root.get("environment") {
            match item.as_array() {
                Some(items) => {
                    for element in items.iter() {
                        match element.as_table() {
                            Some(table) => {
                                if let Some(environment) =
                                    self.environment(table, range(element.span()))
                                {
                                    read.environments.push(environment);
                                }
                            }
                            None => self.problem(
                                range(element.span()),
                                format!(
                                    "an environment must be a table, found {}",
                                    element.type_str()
                                ),
                                Some("declare each environment with `[[environment]]`".into()),
                            ),
                        }
                    }
                }
                None => self.problem(
                    range(item.span()),
                    format!(
                        "`environment` must be an array of tables, found {}",
                        item.type_str()
                    ),
                    Some("declare each environment with `[[environment]]`".into()),
                ),
            }
        }
        if self.offset > 0 {
            for spans in &mut read.spans {
                spans.shift(self.offset);
            }
            for (_, span) in &mut read.environments {
                *span = span.start + self.offset..span.end + self.offset;
            }
        }
        (settings, read)
    }

    /// One `[[environment]]`: `name`, `slots`, `ttl` (default 10m).
    fn environment(
        &mut self,
        table: &Table<'a>,
        span: Range<usize>,
    ) -> Option<(Environment, Range<usize>)> {
        self.check_keys(table, ENVIRONMENT_KEYS, "an `[[environment]]`");
        let Some(item) = table.get("name") else {
            self.problem(span, "an `[[environment]]` has no `name`".into(), None);
            return None;
        };
        let (name, name_span) = self.string(Field::Item(item), "name")?;
        if !is_valid_name(name) {
            self.problem(
                name_span.clone(),
                format!("environment name `{name}` is not valid"),
                Some("use lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit".into()),
            );
        }
        let slots: Vec<String> = match table.get("slots") {
            Some(item) => {
                let mut slots = Vec::new();
                for (slot, slot_span) in self.strings(Field::Item(item), "slots") {
                    if !is_valid_name(slot) {
                        self.problem(
                            slot_span,
                            format!("slot name `{slot}` is not valid"),
                            Some("use lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit".into()),
                        );
                    } else if slots.iter().any(|s| s == slot) {
                        self.problem(slot_span, format!("slot `{slot}` is listed twice"), None);
                    } else {
                        slots.push(slot.to_string());
                    }
                }
                slots
            }
            None => Vec::new(),
        };
        if slots.is_empty() {
            self.problem(
                name_span.clone(),
                format!("environment `{name}` has no slots"),
                Some("list them: `slots = [\"uat-1\", \"uat-2\"]`".into()),
            );
        }
        let ttl_s = match table.get("ttl") {
            None => DEFAULT_ENVIRONMENT_TTL_S,
            Some(item) => {
                let (text, ttl_span) = self.string(Field::Item(item), "ttl")?;
                match parse_duration(text) {
                    Ok(seconds) => seconds,
                    Err(message) => {
                        self.problem(ttl_span, format!("ttl: {message}"), None);
                        return None;
                    }
                }
            }
        };
        Some((
            Environment {
                name: name.to_string(),
                slots,
                ttl_s,
            },
            name_span,
        ))
    }

    /// The checks across services, then the manifest.
    fn assemble(&mut self, settings: Option<Settings>, mut read: Services) -> Option<Manifest> {
        // Parts read on the reading threads are finished already.
        read.noted.iter_mut().for_each(|noted| noted.keys.finish());
        let (index, dependencies) = self.cross_check(&read);
        let mut environments: Vec<Environment> = Vec::with_capacity(read.environments.len());
        for (environment, span) in std::mem::take(&mut read.environments) {
            if environments.iter().any(|e| e.name == environment.name) {
                self.problem(
                    span,
                    format!("duplicate environment name `{}`", environment.name),
                    None,
                );
            } else {
                environments.push(environment);
            }
        }
        for &i in read.noted.iter().flat_map(|noted| &noted.with_environment) {
            let (service, spans) = (&read.services[i], read.spans(i));
            if let Some(name) = &service.tests.environment
                && !environments.iter().any(|e| e.name == name.as_str())
            {
                let known: Vec<String> = environments
                    .iter()
                    .map(|e| format!("`{}`", e.name))
                    .collect();
                self.problem(
                    spans.name.clone(),
                    format!(
                        "{} names environment `{name}`, which no `[[environment]]` defines",
                        service.name
                    ),
                    Some(if known.is_empty() {
                        "add an `[[environment]]` table with its `name` and `slots`".into()
                    } else {
                        format!("known environments are {}", known.join(", "))
                    }),
                );
            }
        }
        Some(Manifest {
            settings: settings?,
            services: read.services,
            environments,
            names: read.names,
            kinds: read.kinds,
            index,
            by_name: std::sync::OnceLock::new(),
            with_args_file: (read.noted.iter())
                .flat_map(|noted| noted.with_args_file.iter().copied())
                .collect(),
            pattern_keys: read.noted.into_iter().map(|noted| noted.keys).collect(),
            dependencies,
        })
    }

    fn settings(&mut self, table: &Table<'a>) -> Option<Settings> {
        self.check_keys(table, SETTINGS_KEYS, "`[settings]`");
        let defaults = Settings::default();
        let publish_branches = match table.get("publish_branches") {
            Some(item) => self.owned_strings(Some(Field::Item(item)), "publish_branches"),
            None => defaults.publish_branches,
        };
        let semver = match table.get("release_version") {
            None => false,
            Some(item) => match self.string(Field::Item(item), "release_version")? {
                ("semver", _) => true,
                ("any", _) => false,
                (other, span) => {
                    self.problem(
                        span,
                        format!("release_version `{other}` is not `semver` or `any`"),
                        Some(
                            "`semver`: a tag is a release only when its version is a semver.org \
                             2.0 version"
                                .into(),
                        ),
                    );
                    return None;
                }
            },
        };
        let release_tag = match table.get("release_tag") {
            Some(item) => {
                let (patterns, span): (Vec<&str>, Range<usize>) = match item.as_array() {
                    Some(_) => {
                        let located = self.strings(Field::Item(item), "release_tag");
                        (
                            located.iter().map(|(s, _)| *s).collect(),
                            range(item.span()),
                        )
                    }
                    None => {
                        let (raw, span) = self.string(Field::Item(item), "release_tag")?;
                        (vec![raw], span)
                    }
                };
                match ReleaseTag::new(&patterns, semver) {
                    Ok(tag) => tag,
                    Err(message) => {
                        self.problem(
                            span,
                            message,
                            Some(
                                "write it like `release-*`, or a list like `[\"v*\", \"*\"]`"
                                    .into(),
                            ),
                        );
                        return None;
                    }
                }
            }
            None => ReleaseTag {
                semver,
                ..defaults.release_tag
            },
        };
        let global_paths = match table.get("global_paths") {
            Some(item) => self.patterns(Field::Item(item), "global_paths"),
            None => Vec::new(),
        };
        let ignore = match table.get("ignore") {
            Some(item) => self.patterns(Field::Item(item), "ignore"),
            None => Vec::new(),
        };
        let ripple_image = match table.get("ripple_image") {
            Some(item) => self
                .string(Field::Item(item), "ripple_image")?
                .0
                .to_string(),
            None => defaults.ripple_image,
        };
        let tags = match table.get("tags") {
            Some(item) => self.tags(item, Lazy(&|| "`[settings]`".into()))?,
            None => Tags::default(),
        };
        let ci = match table.get("ci") {
            Some(item) => {
                let (name, span) = self.string(Field::Item(item), "ci")?;
                if crate::backend::by_name(name).is_none() {
                    let known: Vec<String> =
                        crate::backend::names().map(|n| format!("`{n}`")).collect();
                    self.problem(
                        span,
                        format!("ci `{name}` is not a CI system ripple renders for"),
                        Some(format!("use one of {}", known.join(", "))),
                    );
                    return None;
                }
                Some(name.to_string())
            }
            None => None,
        };
        let mut discover: Vec<String> = Vec::new();
        if let Some(item) = table.get("discover") {
            for (source, span) in self.strings(Field::Item(item), "discover") {
                if !crate::discover::is_source(source) {
                    let known: Vec<String> = crate::discover::SOURCES
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect();
                    self.problem(
                        span,
                        format!("unknown discovery source `{source}`"),
                        Some(format!("sources are {}", known.join(", "))),
                    );
                } else if !discover.iter().any(|d| d == source) {
                    discover.push(source.to_string());
                }
            }
        }
        let release = match table.get("release") {
            None => Release::Rebuild,
            Some(item) => match self.string(Field::Item(item), "release")? {
                ("rebuild", _) => Release::Rebuild,
                ("promote", _) => Release::Promote,
                (other, span) => {
                    self.problem(
                        span,
                        format!("release `{other}` is not `rebuild` or `promote`"),
                        Some(
                            "`promote`: a release retags the images publish pushes built \
                             (`in-<hash>`) instead of building them again"
                                .into(),
                        ),
                    );
                    return None;
                }
            },
        };
        Some(Settings {
            publish_branches,
            release_tag,
            global_paths,
            ignore,
            ripple_image,
            tags,
            ci,
            discover,
            release,
        })
    }

    /// One pass over a service's keys: known ones by name, unknown ones
    /// reported.
    fn service_fields<'t>(&mut self, table: &'t Table<'a>) -> ServiceFields<'t, 'a> {
        let mut fields = ServiceFields::default();
        for (key, item) in table.iter() {
            if key.name == "services" {
                fields.services = Some(item);
            } else if key.name == "build_args" {
                fields.build_args = Some(item);
            } else if key.name == "tags" {
                fields.tags = Some(item);
            } else if key.name == "discovered" {
                fields.discovered = Some(item);
            } else if let Some(slot) = fields.slot(key.name) {
                *slot = Some(Field::Item(item));
            } else {
                self.unknown_key(key, SERVICE_KEYS, &"a `[[service]]`");
            }
        }
        fields
    }

    fn service(
        &mut self,
        fields: &ServiceFields<'_, 'a>,
        span: Range<usize>,
    ) -> Option<(Service, Spans)> {
        let name = match fields.name {
            Some(item) => self.string(item, "name"),
            None => {
                self.problem(span.clone(), "a service has no `name`".into(), None);
                None
            }
        };
        let label = || {
            name.as_ref()
                .map_or_else(|| "service".to_string(), |(n, _)| format!("`{n}`"))
        };
        if let Some((name, span)) = &name
            && !is_valid_name(name)
        {
            self.problem(
                span.clone(),
                format!("invalid service name `{name}`"),
                Some(
                    "names start with a lowercase letter or digit, then use only \
                     `a-z`, `0-9`, `.`, `_` and `-`"
                        .into(),
                ),
            );
        }
        let anchor = name.as_ref().map_or(span.clone(), |(_, s)| s.clone());
        let kind = match fields.kind {
            Some(item) => self.string(item, "kind").and_then(|(k, span)| {
                let found = Kind::NAMES
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, kind)| *kind);
                if found.is_none() {
                    self.problem(
                        span,
                        format!("unknown kind `{k}` for {}", label()),
                        Some("expected `image`, `base-image`, `library` or `tests`".into()),
                    );
                }
                found
            }),
            None => {
                self.problem(
                    anchor.clone(),
                    format!("{} has no `kind`", label()),
                    Some("add `kind = \"image\"` (or `base-image`, `library`, `tests`)".into()),
                );
                None
            }
        };
        let paths = match fields.paths {
            Some(item) => self.patterns(item, "paths"),
            None => Vec::new(),
        };
        // The scanner's strings as they are: a list of them made here would
        // be dropped at the end of this service, into a reading's arena,
        // which keeps it (1.3 MB at 20,000 services).
        let depends: std::borrow::Cow<'_, [Located<'a>]> = match fields.depends_on {
            Some(Field::List(strings, _)) => strings.into(),
            Some(item) => self.strings(item, "depends_on").into(),
            None => (&[][..]).into(),
        };
        let mut optional =
            |value: Option<Field<'_, 'a>>, key: &str| value.and_then(|v| self.string(v, key));
        let (image, dockerfile, context, build_args_file) = (
            optional(fields.image, "image"),
            optional(fields.dockerfile, "dockerfile"),
            optional(fields.context, "context"),
            optional(fields.build_args_file, "build_args_file"),
        );
        let tests = self.tests(fields, label);

        let platforms = fields
            .platforms
            .map(|item| (self.owned_strings(Some(item), "platforms"), item));
        let build_args = fields
            .build_args
            .map(|item| (self.build_args(item, Lazy(&label)), item));
        let tags = match fields.tags {
            Some(item) => {
                (self.tags_written(item, fields.tags_line, Lazy(&label))).map(|t| (t, item))
            }
            None => None,
        };

        let build = match kind {
            Some(k) if k.is_artifact() => match (&image, &dockerfile) {
                (Some((image, _)), Some((dockerfile, _))) => Some(ImageBuild {
                    image: self.own(image),
                    dockerfile: self.own(dockerfile),
                    context: self.own(context.as_ref().map_or(".", |(c, _)| c)),
                    extras: if build_args.is_none()
                        && build_args_file.is_none()
                        && platforms.is_none()
                        && tags.is_none()
                    {
                        None
                    } else {
                        Some(Box::new(BuildExtras {
                            build_args: build_args.map(|(a, _)| a).unwrap_or_default(),
                            build_args_file: build_args_file.as_ref().map(|(f, _)| self.own(f)),
                            platforms: platforms
                                .map(|(p, _): (Vec<String>, _)| p)
                                .unwrap_or_default(),
                            tags: tags.map(|(t, _)| t).unwrap_or_default(),
                        }))
                    },
                }),
                _ => {
                    let missing: Vec<&str> = [("image", &image), ("dockerfile", &dockerfile)]
                        .iter()
                        .filter(|(_, v)| v.is_none())
                        .map(|(k, _)| *k)
                        .collect();
                    self.problem(
                        anchor.clone(),
                        format!(
                            "{} (kind `{}`) has no `{}`",
                            label(),
                            k.as_str(),
                            missing.join("` or `")
                        ),
                        Some(
                            "set `image = \"registry/name\"` and `dockerfile = \"path/Dockerfile\"`"
                                .into(),
                        ),
                    );
                    None
                }
            },
            Some(k) => {
                let tree_span = |item: Option<Field<'_, 'a>>| match item {
                    Some(Field::Item(item)) => Some(range(item.span())),
                    Some(Field::Str((_, span))) | Some(Field::List(_, span)) => Some(span.clone()),
                    None => None,
                };
                let spans = [
                    ("image", image.as_ref().map(|(_, s)| s.clone())),
                    ("dockerfile", dockerfile.as_ref().map(|(_, s)| s.clone())),
                    ("context", context.as_ref().map(|(_, s)| s.clone())),
                    (
                        "build_args_file",
                        build_args_file.as_ref().map(|(_, s)| s.clone()),
                    ),
                    ("platforms", tree_span(platforms.as_ref().map(|(_, i)| *i))),
                    (
                        "build_args",
                        build_args.as_ref().map(|(_, i)| range(i.span())),
                    ),
                    ("tags", tags.as_ref().map(|(_, i)| range(i.span()))),
                ];
                for (key, value) in spans {
                    if let Some(span) = value {
                        self.problem(
                            span.clone(),
                            format!(
                                "{} (kind `{}`) builds no image but sets `{key}`",
                                label(),
                                k.as_str()
                            ),
                            Some("use kind `image` or `base-image`, or remove the key".into()),
                        );
                    }
                }
                None
            }
            None => None,
        };
        if tests.lacks_toolchain() {
            self.problem(
                anchor,
                format!(
                    "{} has lint/unit/functional commands but no `toolchain` to run them in",
                    label()
                ),
                Some("set `toolchain = \"image:tag\"`, e.g. `golang:1.21`".into()),
            );
        }

        // `(source, service)` and, when kept, where each name is. Sized
        // once: nearly every service of a synced manifest has a few, and a
        // list grown by pushing starts with room for four.
        let scanned_edges = fields.discovered_scanned.map_or(0, |(entries, _)| {
            entries.iter().map(|(_, slot)| slot.strings.len()).sum()
        });
        let mut discovered: Vec<(&'static str, CompactString)> = Vec::with_capacity(scanned_edges);
        let mut discovered_spans: Vec<Range<usize>> = Vec::new();
        match (fields.discovered, fields.discovered_scanned) {
            (Some(item), _) => match item.as_table() {
                Some(table) => {
                    for (key, value) in table.iter() {
                        let Some(source) = crate::discover::known_source(key.name) else {
                            self.unknown_source(key.name, range(key.span), &label());
                            continue;
                        };
                        for (target, span) in self.strings(Field::Item(value), "discovered") {
                            discovered.push((source, self.own(target)));
                            discovered_spans.push(span);
                        }
                    }
                }
                None => self.problem(
                    range(item.span()),
                    format!(
                        "`discovered` of {} must be a table of lists, by source",
                        label()
                    ),
                    Some("it is written by `ripple sync`; run it again".into()),
                ),
            },
            (None, Some((entries, strings))) => {
                for ((name, span), slot) in entries {
                    let Some(source) = crate::discover::known_source(name) else {
                        self.unknown_source(name, span.clone(), &label());
                        continue;
                    };
                    for (target, span) in &strings[slot.strings.clone()] {
                        discovered.push((source, self.own(target)));
                        if self.dependency_spans {
                            discovered_spans.push(span.clone());
                        }
                    }
                }
            }
            (None, None) => {}
        }

        let ((name, name_span), kind) = (name?, kind?);
        let mut depends_on: Vec<CompactString> = Vec::with_capacity(depends.len());
        let mut depends_spans = Vec::new();
        let mut discovery = Discovery {
            edges: discovered,
            dropped: Vec::new(),
        };
        let mut other_spans = Vec::new();
        for (dep, span) in depends.iter().cloned() {
            // `"!b"`: no discovered edge to `b`.
            if let Some(dropped) = dep.strip_prefix('!') {
                if !discovery.dropped.iter().any(|d| d == dropped) {
                    discovery.dropped.push(self.own(dropped));
                    other_spans.push(span);
                }
            } else if !depends_on.iter().any(|d| d == dep) {
                if self.dependency_spans {
                    depends_spans.push(span);
                }
                depends_on.push(self.own(dep));
            }
        }
        if self.dependency_spans {
            other_spans.append(&mut discovered_spans);
        }
        let discovery = (discovery != Discovery::default()).then(|| Box::new(discovery));
        let service = Service {
            name: self.own(name),
            kind,
            paths: paths.into(),
            depends_on: depends_on.into(),
            discovery,
            build: build.map(Box::new),
            tests,
        };
        let spans = Spans {
            name: name_span,
            depends_on: depends_spans,
            others: other_spans,
        };
        Some((service, spans))
    }

    /// A `discovered` key that names no source.
    fn unknown_source(&mut self, source: &str, span: Range<usize>, label: &str) {
        self.problem(
            span,
            format!("unknown discovery source `{source}` in `discovered` of {label}"),
            Some(format!(
                "sources are {}; `ripple sync` writes this key",
                crate::discover::SOURCES.join(", ")
            )),
        );
    }

    fn sidecars(&mut self, item: &Item<'a>, label: Lazy<'_>) -> Vec<Sidecar> {
        let Some(items) = item.as_array() else {
            self.problem(
                range(item.span()),
                format!("`services` of {label} must be an array of tables"),
                Some("write `services = [{ name = \"redis\", image = \"redis:7\" }]`".into()),
            );
            return Vec::new();
        };
        let mut sidecars: Vec<Sidecar> = Vec::new();
        for element in items.iter() {
            let Some(table) = element.as_table() else {
                self.problem(
                    range(element.span()),
                    format!(
                        "a sidecar of {label} must be a table like `{{ name = \"redis\", image = \"redis:7\" }}`"
                    ),
                    None,
                );
                continue;
            };
            self.check_keys(table, SIDECAR_KEYS, format_args!("a sidecar of {label}"));
            let name = table
                .get("name")
                .and_then(|v| self.string(Field::Item(v), "name"));
            let image = table
                .get("image")
                .and_then(|v| self.string(Field::Item(v), "image"));
            let mut environment = BTreeMap::new();
            if let Some(env) = table.get("environment") {
                match env.as_table() {
                    Some(vars) => {
                        for (key, value) in vars.iter() {
                            if !is_variable_name(key.name) {
                                let shown: String = key.name.chars().take(40).collect();
                                let cut = if shown.len() < key.name.len() {
                                    "…"
                                } else {
                                    ""
                                };
                                self.problem(
                                    range(key.span),
                                    format!(
                                        "sidecar environment variable `{shown}{cut}` of {label} \
                                         is not a variable name"
                                    ),
                                    Some(format!(
                                        "use letters, digits, `_`, `.` and `-`, starting with a \
                                         letter or `_`, at most {MAX_VARIABLE_NAME} bytes"
                                    )),
                                );
                                continue;
                            }
                            if let Some((value, _)) = self.string(Field::Item(value), key.name) {
                                environment.insert(key.name.to_string(), value.to_string());
                            }
                        }
                    }
                    None => self.problem(
                        range(env.span()),
                        "sidecar `environment` must be a table of strings".into(),
                        None,
                    ),
                }
            }
            match (name, image) {
                (Some((name, span)), Some((image, _))) => {
                    if STAGES.contains(&name)
                        || sidecars.iter().any(|s| s.name == name)
                        || !is_valid_name(name)
                    {
                        self.problem(
                            span,
                            format!("sidecar name `{name}` of {label} is invalid or taken"),
                            Some(
                                "sidecar names are unique, not `lint`, `unit` or `functional`, \
                                 and use `a-z0-9._-`"
                                    .into(),
                            ),
                        );
                    }
                    sidecars.push(Sidecar {
                        name: name.to_string(),
                        image: image.to_string(),
                        environment,
                    });
                }
                _ => self.problem(
                    range(element.span()),
                    format!("a sidecar of {label} needs both `name` and `image`"),
                    None,
                ),
            }
        }
        sidecars
    }

    /// `build_args = { KEY = "value" }`, sorted by key.
    fn build_args(&mut self, item: &Item<'a>, label: Lazy<'_>) -> Vec<(String, String)> {
        let Some(table) = item.as_table() else {
            self.problem(
                range(item.span()),
                format!(
                    "`build_args` of {label} must be a table like `{{ NODE_VERSION = \"20\" }}`"
                ),
                None,
            );
            return Vec::new();
        };
        let mut args = BTreeMap::new();
        for (key, value) in table.iter() {
            if !is_variable_name(key.name) || key.name.contains(['.', '-']) {
                let shown: String = key.name.chars().take(40).collect();
                self.problem(
                    range(key.span),
                    format!("build argument `{shown}` of {label} is not an `ARG` name"),
                    Some("use letters, digits and `_`, not starting with a digit".into()),
                );
                continue;
            }
            if let Some((value, _)) = self.string(Field::Item(value), key.name) {
                args.insert(key.name.to_string(), value.to_string());
            }
        }
        args.into_iter().collect()
    }

    /// [`Reader::tags`] of a service, shared with every earlier service
    /// whose `tags` line (`line`, when the scanner found one) is written
    /// the same and was read without a problem.
    fn tags_written(
        &mut self,
        item: &Item<'a>,
        line: Option<&'a str>,
        label: Lazy<'_>,
    ) -> Option<Tags> {
        if let Some(tags) = line.and_then(|line| self.tags.get(line)) {
            return Some(tags.clone());
        }
        let problems = self.problems.len();
        let tags = self.tags(item, label)?;
        if let Some(line) = line
            && self.problems.len() == problems
        {
            self.tags.insert(line, tags.clone());
        }
        Some(tags)
    }

    /// `tags = { push = [...], release = [...] }`; `None` when a template is
    /// invalid (reported, naming `label`).
    fn tags(&mut self, item: &Item<'a>, label: Lazy<'_>) -> Option<Tags> {
        let Some(table) = item.as_table() else {
            self.problem(
                range(item.span()),
                format!("`tags` of {label} must be a table like `{{ push = [\"{{branch}}\"] }}`"),
                None,
            );
            return None;
        };
        self.check_keys(
            table,
            &["push", "release"],
            format_args!("`tags` of {label}"),
        );
        let mut tags = Tags::default();
        let mut valid = true;
        for (key, use_) in [("push", Use::Push), ("release", Use::Release)] {
            let Some(value) = table.get(key) else {
                continue;
            };
            let mut templates = Vec::new();
            for (source, span) in self.strings(Field::Item(value), key) {
                match TagTemplate::parse(source, use_) {
                    Ok(template) => templates.push(template),
                    Err(message) => {
                        valid = false;
                        self.problem(span, format!("`tags.{key}` of {label}: {message}"), None);
                    }
                }
            }
            match use_ {
                Use::Push => tags.push = Some(templates.into()),
                Use::Release => tags.release = Some(templates.into()),
            }
        }
        valid.then_some(tags)
    }

    /// Checks that need every service: duplicate names, unknown dependencies
    /// and cycles.
    fn cross_check(&mut self, read: &Services) -> (NameIndex, Dependencies) {
        let (services, names) = (&read.services, &read.names);
        let mut first_seen = NameIndex::with_capacity(services.len());
        for (index, service) in services.iter().enumerate() {
            if let Err(first) = first_seen.insert(names, index) {
                let name = service.name.as_str();
                let line = self.text[..read.spans(first).name.start]
                    .matches('\n')
                    .count()
                    + 1;
                self.problem(
                    read.spans(index).name.clone(),
                    format!("duplicate service name `{name}`"),
                    Some(format!(
                        "`{name}` is already defined on line {line}; rename one"
                    )),
                );
            }
        }
        let known = || {
            let mut known: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
            known.sort_unstable();
            known.dedup();
            known
        };
        let mut dependencies = Dependencies::resolve(&read.noted, names, &first_seen);
        let check_names = dependencies.unresolved || dependencies.drops;
        for (i, service) in services.iter().enumerate() {
            if !check_names {
                break;
            }
            let spans = read.spans(i);
            if let Some(discovery) = &service.discovery {
                // Where each name is written, said only for unknown ones.
                let named = discovery
                    .dropped
                    .iter()
                    .map(|d| (d, None))
                    .chain(discovery.edges.iter().map(|(source, d)| (d, Some(source))));
                for (k, (dep, source)) in named.enumerate() {
                    if first_seen.get(names, dep).is_none() {
                        let place = match source {
                            None => format!("`{}.depends_on` (\"!{dep}\")", service.name),
                            Some(source) => format!("`{}.discovered.{source}`", service.name),
                        };
                        let list = known().iter().map(|k| format!("`{k}`")).collect::<Vec<_>>();
                        self.problem(
                            spans.others.get(k).unwrap_or(&spans.name).clone(),
                            format!("unknown service `{dep}` in {place}"),
                            Some(format!(
                                "known services are {}; `ripple sync` rewrites `discovered`",
                                list.join(", ")
                            )),
                        );
                    }
                }
            }
            let declared = dependencies
                .edges(i)
                .filter(|(_, o)| *o == Origin::Declared)
                .count();
            if declared == service.depends_on.len() {
                continue;
            }
            for (k, dep) in service.depends_on.iter().enumerate() {
                if first_seen.get(names, dep).is_none() {
                    let list = known().iter().map(|k| format!("`{k}`")).collect::<Vec<_>>();
                    self.problem(
                        spans.dependency(k),
                        format!("unknown service `{dep}` in `{}.depends_on`", service.name),
                        Some(format!("known services are {}", list.join(", "))),
                    );
                }
            }
        }
        match find_cycle(services.len(), &dependencies, services) {
            Err(order) => dependencies.order = order,
            Ok(cycle) => self.cycle(&cycle, read),
        }
        (first_seen, dependencies)
    }

    /// Reports a dependency cycle at its first edge.
    fn cycle(&mut self, cycle: &[usize], read: &Services) {
        let services = &read.services;
        let (first, first_spans) = (&services[cycle[0]], read.spans(cycle[0]));
        let next = &services[cycle[1 % cycle.len()]].name;
        let span = first
            .depends_on
            .iter()
            .position(|d| d == next)
            .map_or(first_spans.name.clone(), |i| first_spans.dependency(i));
        let mut names: Vec<&str> = cycle.iter().map(|&i| services[i].name.as_str()).collect();
        names.push(names[0]);
        self.problem(
            span,
            format!("dependency cycle: {}", names.join(" -> ")),
            Some(
                "`depends_on` must not lead back to the service; remove one of these edges".into(),
            ),
        );
    }
}

/// One dependency cycle as service indices, starting at its smallest name;
/// with none, every service in an order that puts each after what it
/// depends on (the order the search finishes them). Iterative DFS with
/// colours so deep graphs cannot overflow the stack.
fn find_cycle(
    count: usize,
    dependencies: &Dependencies,
    services: &[Service],
) -> Result<Vec<usize>, Vec<u32>> {
    // Manifests are often written, and generated, in dependency order:
    // then the file's order is the one the search would finish them in,
    // and there is no cycle. Told in one pass over the edges in memory
    // order, where the search read each service's edges where its walk
    // led, 0.9 ms at 20,000 services.
    if (0..count).all(|i| dependencies.slice(i).iter().all(|&d| (d as usize) < i)) {
        return Err((0..count as u32).collect());
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; count];
    // Each service as it is finished: after everything it depends on.
    let mut order: Vec<u32> = Vec::with_capacity(count);
    // The path searched, and the next edge of each: one list for every
    // root, not one allocated and freed for each.
    let mut stack: Vec<(usize, usize)> = Vec::new();
    // In file order: the search visits each service and edge once.
    for root in 0..count {
        if colour[root] != Colour::White {
            continue;
        }
        stack.push((root, 0));
        colour[root] = Colour::Grey;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            // Unknown dependencies are left out: they are reported on their own.
            if let Some(&child) = dependencies.slice(node).get(*next) {
                let child = child as usize;
                *next += 1;
                match colour[child] {
                    Colour::White => {
                        colour[child] = Colour::Grey;
                        stack.push((child, 0));
                    }
                    Colour::Grey => {
                        let Some(start) = stack.iter().position(|&(n, _)| n == child) else {
                            continue;
                        };
                        let mut cycle: Vec<usize> =
                            stack[start..].iter().map(|&(n, _)| n).collect();
                        let smallest = (0..cycle.len())
                            .min_by(|&a, &b| services[cycle[a]].name.cmp(&services[cycle[b]].name))
                            .unwrap_or(0);
                        cycle.rotate_left(smallest);
                        return Ok(cycle);
                    }
                    Colour::Black => {}
                }
            } else {
                colour[node] = Colour::Black;
                order.push(node as u32);
                stack.pop();
            }
        }
    }
    Err(order)
}

/// The positions of `names` in their order (equal names by position).
///
/// Sorted by each name's first 16 bytes as one number, the rest compared
/// only where those are the same: comparing two names' text called
/// `memcmp`, and sorting 20,000 names that are not written in order cost
/// 20M instructions that way (see BENCHMARKS.md, nineteenth session).
fn name_order(names: &[CompactString]) -> Vec<u32> {
    // Scratch, freed below: on the heap, where later steps reuse it.
    let words: Vec<u128> =
        crate::arena::outside(|| names.iter().map(|name| leading_word(name)).collect());
    let mut order: Vec<u32> = (0..names.len() as u32).collect();
    order.sort_unstable_by_key(|&i| words[i as usize]);
    // Names of the same word, rare, in the order of their whole text.
    let mut start = 0;
    while start < order.len() {
        let word = words[order[start] as usize];
        let mut end = start + 1;
        while order.get(end).is_some_and(|&i| words[i as usize] == word) {
            end += 1;
        }
        if end - start > 1 {
            order[start..end].sort_unstable_by(|&a, &b| {
                (names[a as usize].cmp(&names[b as usize])).then(a.cmp(&b))
            });
        }
        start = end;
    }
    order
}

/// A text's first 16 bytes as a number that sorts as they do: the first
/// byte highest, zeros past a shorter text's end. Texts of different
/// words are in the order of their words; texts of the same word must be
/// compared whole (one may be longer, or hold zeros).
fn leading_word(text: &str) -> u128 {
    let mut bytes = [0u8; 16];
    let head = &text.as_bytes()[..text.len().min(16)];
    bytes[..head.len()].copy_from_slice(head);
    u128::from_be_bytes(bytes)
}

/// Service positions by name. The table holds positions only and compares
/// against the services' own names, so building it copies no name.
#[derive(Debug, Clone, Default)]
struct NameIndex {
    table: hashbrown::HashTable<u32>,
}

impl NameIndex {
    fn with_capacity(capacity: usize) -> NameIndex {
        NameIndex {
            table: hashbrown::HashTable::with_capacity(capacity),
        }
    }

    fn hash(name: &str) -> u64 {
        use std::hash::BuildHasher as _;
        rustc_hash::FxBuildHasher.hash_one(name)
    }

    fn get(&self, names: &[CompactString], name: &str) -> Option<usize> {
        self.table
            .find(NameIndex::hash(name), |&i| names[i as usize] == name)
            .map(|&i| i as usize)
    }

    /// Adds `services[index]`; a name already present gives its position.
    fn insert(&mut self, names: &[CompactString], index: usize) -> Result<(), usize> {
        let name = names[index].as_str();
        match self.table.entry(
            NameIndex::hash(name),
            |&i| names[i as usize] == name,
            |&i| NameIndex::hash(&names[i as usize]),
        ) {
            hashbrown::hash_table::Entry::Occupied(first) => Err(*first.get() as usize),
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(index as u32);
                Ok(())
            }
        }
    }
}

/// Parses a duration such as `10m`, `90s`, `1h30m` or `45` (seconds).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "`{text}` is not a duration (write it like `10m`, `90s` or `1h30m`)"
                ));
            }
        };
        let value: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration (a number must come before `{c}`)"))?;
        total = total.saturating_add(value.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!(
            "`{text}` is not a duration (the last number has no unit)"
        ));
    }
    if total == 0 {
        return Err(format!("`{text}` is not a duration longer than zero"));
    }
    Ok(total)
}

/// `[a-z0-9][a-z0-9._-]*`
pub fn is_valid_name(name: &str) -> bool {
    // Bytes: every allowed character is ASCII.
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// The longest sidecar variable name: it becomes a YAML mapping key, and
/// YAML allows implicit keys of at most 1,024 characters.
const MAX_VARIABLE_NAME: usize = 255;

/// A name the environment of a container can hold, short enough to be a
/// YAML key in every backend.
fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_VARIABLE_NAME
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished list of pattern keys gives, for each hash, exactly the
    /// positions added with it, in the order added: hashes that share
    /// buckets, buckets left empty, one entry and none.
    #[test]
    fn pattern_keys_find_each_hash_s_positions_in_order() {
        for count in [0usize, 1, 2, 7, 1_000, 1_025] {
            let mut keys = PatternKeys::default();
            // Few distinct hashes, with high bits that the buckets ignore.
            let hash = |k: usize| ((k * 7) % 13) as u64 | ((k % 3) as u64) << 40;
            keys.entries = (0..count).map(|k| (hash(k), k as u32)).collect();
            keys.finish();
            for h in (0..count).map(hash).chain([99, 1 << 41]) {
                let found: Vec<usize> = keys.with(h).collect();
                let added: Vec<usize> = (0..count).filter(|&k| hash(k) == h).collect();
                assert_eq!(found, added, "{count} entries, hash {h:#x}");
            }
        }
    }

    /// Room for a part is what the parts before it needed, a table for a
    /// table, and an eighth more; before any, a few names a table.
    #[test]
    fn a_part_s_room_follows_the_parts_before() {
        let mut room = Room::default();
        assert_eq!(room.for_tables(1_000), (4_000, 2_000));
        let mut noted = Noted::default();
        noted.named.names = vec![CompactString::const_new("a"); 2_700];
        noted.keys.entries = vec![(0, 0); 1_000];
        room.add(1_000, &noted);
        assert_eq!(
            room.for_tables(1_000),
            (2_700 * 9 / 8 + 16, 1_000 * 9 / 8 + 16)
        );
        assert_eq!(room.for_tables(100), (270 * 9 / 8 + 16, 100 * 9 / 8 + 16));
    }

    /// Parts cover every table once, in order, none over the largest
    /// size, shrinking to the smallest towards the end.
    #[test]
    fn parts_shrink_towards_the_end() {
        for tables in [1_000, 1_999, 5_000, 20_000, 100_000] {
            let bounds = part_bounds(tables);
            assert_eq!((bounds[0], bounds[bounds.len() - 1]), (0, tables));
            let sizes: Vec<usize> = bounds.windows(2).map(|w| w[1] - w[0]).collect();
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
            assert!(sizes[..sizes.len() - 1].iter().all(|&n| n >= LAST_PART));
            assert!(sizes.iter().all(|&n| (1..=TABLES_PER_PART).contains(&n)));
        }
        let sizes: Vec<usize> = part_bounds(20_000)
            .windows(2)
            .map(|w| w[1] - w[0])
            .collect();
        assert_eq!(sizes[0], TABLES_PER_PART);
        assert!(sizes[sizes.len() - 1] <= LAST_PART);
    }

    /// A manifest kept until the process exits is referred to, not
    /// copied: its long values are its own bytes, whichever reader read
    /// them (the scanner, or toml-spanner for a table it declines), and
    /// the services are the same as from a copy.
    #[test]
    fn a_kept_text_is_referred_to_not_copied() {
        static TEXT: &str = "[[service]]\n\
            name = \"payments-api-with-a-long-name\"\n\
            kind = \"image\"\n\
            paths = [\"services/payments-api-with-a-long-name\", \"!**/*.md\"]\n\
            depends_on = [\"shared-library-with-a-long-name\"]\n\
            image = \"registry.example.org/acme/payments-api\"\n\
            dockerfile = \"services/payments-api/Dockerfile\"\n\
            \n\
            [[service]]\n\
            name = \"shared-library-with-a-long-name\"\n\
            kind = \"library\"\n\
            paths = [\"libs/shared-library-with-a-long-name\"]\n\
            # Declined by the scanner: a multi-line string.\n\
            lint = [\"\"\"make lint\"\"\"]\n\
            toolchain = \"golang:1.22\"\n";
        let copy = TEXT.to_string();
        let copied = Manifest::parse(&copy, "services.toml").unwrap();
        crate::arena::note_kept(TEXT);
        let kept = Manifest::parse(TEXT, "services.toml").unwrap();
        assert_eq!(
            format!("{:?}", kept.services),
            format!("{:?}", copied.services)
        );
        let is_kept = |s: &CompactString| s.as_static_str().is_some();
        for manifest in [&kept, &copied] {
            let (image, library) = (&manifest.services[0], &manifest.services[1]);
            let build = image.build.as_ref().unwrap();
            let long = [
                &image.name,
                &build.image,
                &build.dockerfile,
                &image.depends_on[0],
                &library.name,
            ];
            let expected = std::ptr::eq(manifest, &kept);
            assert!(long.iter().all(|s| is_kept(s) == expected), "{long:?}");
            for pattern in image.paths.iter().chain(library.paths.iter()) {
                let (pattern::PatternBody::Prefix(text) | pattern::PatternBody::Glob(text)) =
                    &pattern.body;
                // Short ones are inline either way.
                assert_eq!(is_kept(text), expected && text.len() > 24, "{text}");
            }
        }
        // A copy that is not the kept text is copied.
        assert_eq!(crate::arena::kept_text(&copy), None);
        assert_eq!(crate::arena::kept_text(&TEXT[12..40]), Some(&TEXT[12..40]));
    }

    /// Each key's value goes to the field of its name.
    #[test]
    fn each_key_has_the_field_of_its_name() {
        let mut fields: ServiceFields<'static, 'static> = ServiceFields::default();
        type Slot = Option<Field<'static, 'static>>;
        fn at(field: &Slot) -> *const Slot {
            field
        }
        let expected = [
            ("name", at(&fields.name)),
            ("kind", at(&fields.kind)),
            ("paths", at(&fields.paths)),
            ("depends_on", at(&fields.depends_on)),
            ("image", at(&fields.image)),
            ("dockerfile", at(&fields.dockerfile)),
            ("context", at(&fields.context)),
            ("toolchain", at(&fields.toolchain)),
            ("lint", at(&fields.lint)),
            ("unit", at(&fields.unit)),
            ("functional", at(&fields.functional)),
            ("build_args_file", at(&fields.build_args_file)),
            ("platforms", at(&fields.platforms)),
            ("environment", at(&fields.environment)),
        ];
        assert_eq!(scan::KEYS.len(), expected.len());
        for (key, field) in expected {
            let found = fields.slot(key).map(|slot| slot as *const Slot);
            assert_eq!(found, Some(field), "{key}");
        }
        for other in ["services", "tags", "build_args", "discovered", "nom"] {
            assert!(fields.slot(other).is_none(), "{other}");
        }
        assert!(fields.slot_at(scan::KEYS.len()).is_none());
    }

    const GOOD: &str = r#"
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

[[service]]
name = "go-main"
kind = "library"
paths = ["src/go.main", "!**/*.md"]
toolchain = "golang:1.21"
unit = ["go test ./..."]

[[service]]
name = "api"
kind = "image"
paths = ["src/api"]
depends_on = ["go-main", "base-go"]
image = "registry.example.org/api"
dockerfile = "src/api/Dockerfile"
context = "src"
toolchain = "golang:1.21"
lint = ["go vet ./..."]
functional = ["make functional"]
services = [{ name = "redis", image = "redis:7", environment = { MODE = "test" } }]
"#;

    fn problems(text: &str) -> String {
        Manifest::parse(text, "services.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_a_complete_manifest() {
        let manifest = Manifest::parse(GOOD, "services.toml").unwrap();
        assert_eq!(manifest.services.len(), 3);
        let api = manifest.service("api").unwrap();
        assert_eq!(api.kind, Kind::Image);
        assert_eq!(&*api.depends_on, ["go-main", "base-go"]);
        let positions: Vec<usize> = manifest.dependencies(2).collect();
        assert_eq!(positions, [1, 0]);
        assert_eq!(api.build.as_ref().unwrap().context, "src");
        assert_eq!(api.tests.sidecars[0].environment["MODE"], "test");
        let stages: Vec<_> = api.test_stages().map(|(s, _)| s).collect();
        assert_eq!(stages, ["lint", "functional"]);
        assert_eq!(
            manifest
                .service("base-go")
                .unwrap()
                .build
                .as_ref()
                .unwrap()
                .context,
            "."
        );
        assert_eq!(manifest.service("go-main").unwrap().paths.len(), 2);
    }

    /// The example of DESIGN.md, verbatim: the contract's own manifest.
    #[test]
    fn the_design_example_is_valid() {
        let text = r#"
[settings]
publish_branches = ["develop"]  # push here: build + publish affected images
release_tag = "release-*"       # tag event matching this: every image
global_paths = []               # a change here affects every service

[[service]]
name = "caliopen-go"
kind = "base-image"
paths = ["devtools/docker/go"]
image = "registry.example.org/caliopen_go"
dockerfile = "devtools/docker/go/Dockerfile"

[[service]]
name = "go-backend"
kind = "library"
paths = ["src/backend/main/go.main"]

[[service]]
name = "apiv2"                  # unique; [a-z0-9][a-z0-9._-]*
kind = "image"                  # image | base-image | library | tests
paths = ["src/backend/interfaces/REST/go.server", "!**/*.md"]
depends_on = ["caliopen-go", "go-backend"]
image = "registry.example.org/caliopen_apiv2"   # image, base-image
dockerfile = "src/backend/Dockerfile.go-api"    # image, base-image
context = "src/backend"                         # image, base-image
toolchain = "golang:1.21"       # the container the lint/test commands run in
lint = ["go vet ./..."]         # each list runs in order, stopping at the first failure
unit = ["go test ./..."]
functional = []
services = [{ name = "redis", image = "redis:7" }]   # sidecars for functional tests
"#;
        let manifest = Manifest::parse(text, "services.toml").unwrap();
        let api = manifest.service("apiv2").unwrap();
        assert_eq!(api.tests.sidecars.len(), 1);
        assert_eq!(api.test_stages().count(), 2);
    }

    #[test]
    fn settings_default_when_absent() {
        let manifest = Manifest::parse("", "services.toml").unwrap();
        assert_eq!(manifest.settings.publish_branches, ["develop"]);
        assert_eq!(
            manifest.settings.release_tag.version("release-1.4.0"),
            Some("1.4.0")
        );
        assert!(manifest.services.is_empty());
    }

    #[test]
    fn release_tag_versions() {
        let tag = ReleaseTag::parse("v*-stable").unwrap();
        assert_eq!(tag.version("v2.0-stable"), Some("2.0"));
        assert_eq!(tag.version("v2.0"), None);
        assert_eq!(tag.version("v-stable"), None);
        assert!(ReleaseTag::parse("release").is_err());
        assert!(ReleaseTag::parse("r*-*").is_err());
    }

    #[test]
    fn release_tags_may_be_a_list_and_semver_only() {
        let manifest = Manifest::parse(
            "[settings]\nrelease_tag = [\"v*\", \"*\"]\nrelease_version = \"semver\"\n",
            "services.toml",
        )
        .unwrap();
        let tag = &manifest.settings.release_tag;
        assert_eq!(tag.version("v1.2.3"), Some("1.2.3"));
        assert_eq!(tag.version("1.5.0-rc.1"), Some("1.5.0-rc.1"));
        assert_eq!(tag.version("v1.2"), None);
        assert!(
            tag.release("nightly")
                .unwrap_err()
                .contains("not a semver.org 2.0 version")
        );
        assert_eq!(tag.to_string(), "`v*`, `*`");
        let any = Manifest::parse("[settings]\nrelease_tag = [\"v*\", \"r-*\"]\n", "m").unwrap();
        assert_eq!(
            any.settings.release_tag.version("r-nightly"),
            Some("nightly")
        );
        let err = problems("[settings]\nrelease_version = \"calver\"\n");
        assert!(
            err.contains("release_version `calver` is not `semver` or `any`"),
            "{err}"
        );
        assert!(problems("[settings]\nrelease_tag = [\"v*\", \"x\"]\n").contains("has no `*`"));
    }

    #[test]
    fn semver_is_semver_org_2() {
        for good in [
            "1.4.0",
            "0.0.0",
            "1.5.0-rc.1",
            "1.0.0-alpha-1",
            "2.0.0+build.7",
            "1.0.0-0.3.7+x",
        ] {
            assert!(is_semver(good), "{good}");
        }
        for bad in [
            "v1.2.3", "1.2", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "1.2.3.4", "1..3", "",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
[settings]
publish_branch = ["develop"]

[[service]]
name = "a"
kind = "image"
colour = "red"

[[service]]
name = "a"
kind = "library"
depends_on = ["nope"]
"#;
        let err = Manifest::parse(text, "services.toml").unwrap_err();
        let messages: Vec<_> = err
            .problems
            .iter()
            .map(|p| (p.line, p.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            [
                (3, "unknown key `publish_branch` in `[settings]`"),
                (6, "`a` (kind `image`) has no `image` or `dockerfile`"),
                (8, "unknown key `colour` in a `[[service]]`"),
                (11, "duplicate service name `a`"),
                (13, "unknown service `nope` in `a.depends_on`"),
            ]
        );
    }

    #[test]
    fn cycles_are_named() {
        let text = r#"
[[service]]
name = "b"
kind = "library"
depends_on = ["c"]
[[service]]
name = "c"
kind = "library"
depends_on = ["a"]
[[service]]
name = "a"
kind = "library"
depends_on = ["b"]
"#;
        let err = problems(text);
        assert!(err.contains("dependency cycle: a -> b -> c -> a"), "{err}");
        assert!(err.contains("services.toml:13:15"), "{err}");
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let err = problems("[[service]]\nname = \"a\"\nkind = \"library\"\ndepends_on = [\"a\"]\n");
        assert!(err.contains("dependency cycle: a -> a"), "{err}");
    }

    /// Listed in dependency order, the services keep the file's order;
    /// listed otherwise, each still comes after what it depends on. A
    /// cycle among services listed late is found either way.
    #[test]
    fn each_service_comes_after_its_dependencies() {
        for reversed in [false, true] {
            let mut numbers: Vec<usize> = (0..50).collect();
            if reversed {
                numbers.reverse();
            }
            let mut text = String::new();
            for i in numbers {
                let depends: Vec<String> = [i.wrapping_sub(1), i / 2, i / 7]
                    .iter()
                    .filter(|&&d| d < i)
                    .map(|d| format!("\"s{d:02}\""))
                    .collect();
                text.push_str(&format!(
                    "[[service]]\nname = \"s{i:02}\"\nkind = \"library\"\ndepends_on = [{}]\n",
                    depends.join(", ")
                ));
            }
            let manifest = Manifest::parse(&text, "services.toml").unwrap();
            let order: Vec<usize> = manifest.order().collect();
            let mut place = vec![usize::MAX; 50];
            for (k, &i) in order.iter().enumerate() {
                place[i] = k;
            }
            assert!(place.iter().all(|&k| k < 50), "{order:?}");
            for i in 0..50 {
                for d in manifest.dependencies(i) {
                    assert!(place[d] < place[i], "{order:?}");
                }
            }
            assert_eq!(order == (0..50).collect::<Vec<_>>(), !reversed);
            let cycle = format!(
                "{text}[[service]]\nname = \"x\"\nkind = \"library\"\ndepends_on = [\"y\"]\n\
                 [[service]]\nname = \"y\"\nkind = \"library\"\ndepends_on = [\"s03\", \"x\"]\n"
            );
            let err = problems(&cycle);
            assert!(err.contains("dependency cycle: x -> y -> x"), "{err}");
        }
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let err =
            Manifest::parse("[[service]\nname = 1\nkind = = \"x\"\nx = [", "m.toml").unwrap_err();
        let lines: Vec<_> = err.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines.first(), Some(&1), "{err}");
        assert!(lines.contains(&3) && lines.contains(&4), "{err}");
        assert!(
            err.problems
                .iter()
                .all(|p| p.message.starts_with("TOML syntax"))
        );
    }

    /// A manifest of many services.
    /// Services whose test keys are written the same share one
    /// [`TestSetup`] within a reading; each keeps its own values.
    /// A `tags` line written the same on many images is read once a
    /// reading and shared; each image still has its own templates.
    #[test]
    fn repeated_tags_lines_are_shared() {
        let tags = |i: usize| match i % 3 {
            0 => r#"tags = { push = ["{branch}", "{sha}"], release = ["latest"] }"#.to_string(),
            1 => format!(r#"tags = {{ push = ["b{i}-{{sha}}"] }}"#),
            _ => String::new(),
        };
        let mut text = String::from("[settings]\n");
        for i in 0..1_200 {
            text.push_str(&format!(
                "\n[[service]]\nname = \"s{i}\"\nkind = \"image\"\nimage = \"r/s{i}\"\n\
                 dockerfile = \"s{i}/Dockerfile\"\n{}\n",
                tags(i)
            ));
        }
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        let templates = |i: usize, use_: Use| -> Vec<String> {
            let build = manifest.services[i].build.as_ref().unwrap();
            (manifest.tag_templates(build, use_).iter())
                .map(ToString::to_string)
                .collect()
        };
        for i in 0..1_200 {
            let (push, release): (Vec<String>, Vec<&str>) = match i % 3 {
                0 => (vec!["{branch}".into(), "{sha}".into()], vec!["latest"]),
                1 => (vec![format!("b{i}-{{sha}}")], vec!["latest", "{version}"]),
                _ => (
                    vec!["{branch}".into(), "{sha}".into()],
                    vec!["latest", "{version}"],
                ),
            };
            assert_eq!(templates(i, Use::Push), push, "s{i}");
            assert_eq!(templates(i, Use::Release), release, "s{i}");
        }
        let push = |i: usize| {
            let extras = manifest.services[i].build.as_ref().unwrap().extras();
            extras.tags.push.clone().unwrap()
        };
        assert!(Arc::ptr_eq(&push(0), &push(3)) && Arc::ptr_eq(&push(1_194), &push(1_197)));
        assert!(!Arc::ptr_eq(&push(1), &push(4)));
    }

    #[test]
    fn repeated_test_setups_are_shared() {
        let sidecars = |i: usize| match i % 4 {
            0 => Some(("redis", "redis:7")),
            2 => Some(("pg", "postgres:16")),
            _ => None,
        };
        let mut text = String::from("[settings]\n");
        for i in 0..1_200 {
            let lint = if i % 3 == 0 {
                "vet ./...".to_string()
            } else {
                format!("vet {i}")
            };
            text.push_str(&format!(
                "\n[[service]]\nname = \"s{i}\"\nkind = \"library\"\ntoolchain = \"go\"\n\
                 lint = [\"{lint}\"]\nunit = [\"go test ./...\", \"go test -race ./...\"]\n{}",
                sidecars(i).map_or(String::new(), |(name, image)| format!(
                    "services = [{{ name = \"{name}\", image = \"{image}\" }}]\n"
                )),
            ));
        }
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        let services = &manifest.services;
        for (i, service) in services.iter().enumerate() {
            let lint = if i % 3 == 0 {
                "vet ./...".to_string()
            } else {
                format!("vet {i}")
            };
            let tests = &service.tests;
            assert_eq!(tests.toolchain.as_deref(), Some("go"));
            assert_eq!(*tests.lint, [lint.as_str()]);
            assert_eq!(*tests.unit, ["go test ./...", "go test -race ./..."]);
            assert!(tests.functional.is_empty() && tests.environment.is_none());
            let written: Vec<(&str, &str)> = (tests.sidecars.iter())
                .map(|s| (s.name.as_str(), s.image.as_str()))
                .collect();
            assert_eq!(written, Vec::from_iter(sidecars(i)), "s{i}");
        }
        // Within a reading thread's parts: the first part's and the
        // second's (whichever thread took it).
        let shared = |a: usize, b: usize| Arc::ptr_eq(&services[a].tests, &services[b].tests);
        // The same lint and the same sidecars line.
        assert!(shared(0, 12) && shared(1_008, 1_020) && shared(3, 9));
        assert!(!shared(0, 1) && !shared(1, 2) && !shared(0, 3) && !shared(0, 6));
    }

    /// A setup read with a problem is not shared: the next service written
    /// the same gets the problem at its own place.
    #[test]
    fn a_test_setup_with_a_problem_is_reported_for_each_service() {
        let mut text = String::from("[settings]\n");
        for i in 0..1_200 {
            text.push_str(&format!(
                "\n[[service]]\nname = \"s{i}\"\nkind = \"library\"\ntoolchain = [\"go\"]\n"
            ));
        }
        let err = Manifest::parse(&text, "services.toml").unwrap_err();
        assert_eq!(err.problems.len(), 1_200, "{err}");
    }

    fn big_manifest(services: usize) -> String {
        let mut text = String::from("[settings]\npublish_branches = [\"main\"]\n");
        for i in 0..services {
            let deps = if i > 0 {
                format!("depends_on = [\"s{}\"]\n", i / 2)
            } else {
                String::new()
            };
            text.push_str(&format!(
                "\n[[service]]\nname = \"s{i}\"\nkind = \"library\"\npaths = [\"lib/s{i}\", \"!**/*.md\"]\n{deps}\
                 toolchain = \"golang:1.21\"\nunit = [\"go test ./lib/s{i}/... # a comment long enough to make the file big\"]\n"
            ));
        }
        text
    }

    #[test]
    fn table_reading_checks_environments_and_names_in_every_part() {
        // Split between threads as a command splits it.
        crate::parallel::in_pool(|| {
            let named = |names: &[&str], environment: &str| {
                let mut text = big_manifest(3_000);
                for name in names {
                    text = text.replacen(
                        &format!("name = \"{name}\"\n"),
                        &format!("name = \"{name}\"\nenvironment = \"staging\"\n"),
                        1,
                    );
                }
                // Before the first service: a later piece holds services only.
                text.replacen("\n[[service]]", &format!("{environment}\n[[service]]"), 1)
            };
            let defined = "\n[[environment]]\nname = \"staging\"\nslots = [\"a\"]\n";
            let text = named(&["s5", "s1500", "s2999"], defined);
            let whole = Manifest::parse_whole(&text, "m").unwrap();
            let tables = parse_tables(&Text::new(&text), "m").expect("read by tables");
            assert_eq!(summary(&tables), summary(&whole));
            assert_eq!(
                tables
                    .service("s1500")
                    .unwrap()
                    .tests
                    .environment
                    .as_deref(),
                Some("staging")
            );
            assert_eq!(tables.names().len(), 3_000);
            for (i, service) in tables.services.iter().enumerate() {
                assert_eq!(tables.names()[i], service.name);
                assert_eq!(tables.kinds()[i], service.kind);
            }

            // Undefined, in whichever part: the whole reading says where.
            for name in ["s5", "s1500", "s2999"] {
                let text = named(&[name], "");
                assert!(parse_tables(&Text::new(&text), "m").is_none(), "{name}");
                let err = Manifest::parse(&text, "m").unwrap_err().to_string();
                assert!(
                    err.contains(&format!("{name} names environment `staging`")),
                    "{err}"
                );
            }
        });
    }

    #[test]
    fn include_keys_find_their_services_in_every_part() {
        // Split between threads as a command splits it.
        crate::parallel::in_pool(|| {
            let text = big_manifest(3_000).replacen(
                "paths = [\"lib/s2500\", \"!**/*.md\"]",
                "paths = [\"lib/s2500\", \"!**/*.md\", \"lib/s7\", \"**/*.proto\", \"lib/s7\"]",
                1,
            );
            for manifest in [
                parse_tables(&Text::new(&text), "m").expect("read by tables"),
                Manifest::parse_whole(&text, "m").unwrap(),
            ] {
                assert_eq!(manifest.including_under("lib/s7"), [7, 2500]);
                assert_eq!(manifest.including_under("lib/s1999"), [1999]);
                // A glob's literal directory; an exclusion is no include.
                assert_eq!(manifest.including_under(""), [2500]);
                assert!(manifest.including_under("lib").is_empty());
                assert!(manifest.including_under("lib/s3000").is_empty());
            }
        });
    }

    /// Everything a manifest holds, to compare two readings of it.
    fn summary(manifest: &Manifest) -> String {
        let edges: Vec<Vec<(usize, Origin)>> = (0..manifest.services.len())
            .map(|i| manifest.edges(i).collect())
            .collect();
        // What the checks across services give the graph: the order that
        // puts each service after its dependencies.
        let order: Vec<usize> = manifest.order().collect();
        format!(
            "{:?} {:?} {:?} {:?} {:?} {order:?}",
            manifest.settings, manifest.services, manifest.environments, edges, manifest.names
        )
    }

    #[test]
    fn table_reading_reads_discovered_keys_the_same() {
        let with =
            |key: &str| GOOD.replacen("name = \"api\"\n", &format!("name = \"api\"\n{key}\n"), 1);
        for key in [
            "discovered = { go = [\"go-main\"], docker = [\"base-go\"] }",
            "discovered={go=[\"go-main\",],docker=['base-go']}  # sync wrote this",
            "discovered = { }",
            "discovered = { go = [ ] }",
            // Declined by the scanner, read by toml-spanner.
            "discovered = { go = [\"go-main\"], go = [\"base-go\"] }",
            "discovered = { go = [\n\"go-main\"] }",
            "discovered = { \"go\" = [\"go-main\"] }",
            "discovered = { go = \"go-main\" }",
        ] {
            let text = with(key);
            let whole = Manifest::parse_whole(&text, "m");
            match parse_tables(&Text::new(&text), "m") {
                Some(tables) => assert_eq!(summary(&tables), summary(&whole.unwrap()), "{key}"),
                None => assert!(
                    !key.contains("sync wrote"),
                    "the common forms are scanned: {key}"
                ),
            }
        }
        let tables = parse_tables(
            &Text::new(&with("discovered = { go = [\"go-main\"] }")),
            "m",
        )
        .unwrap();
        let api = tables.service("api").unwrap();
        assert_eq!(
            api.discovery.as_ref().unwrap().edges,
            [("go", "go-main".into())]
        );
    }

    #[test]
    fn table_reading_reads_the_same_manifest() {
        // Split between threads as a command splits it.
        crate::parallel::in_pool(|| {
            let crlf = GOOD.replace('\n', "\r\n");
            let commented = GOOD
                .replace(" = ", " =\t")
                .replace("\"]\n", "\" ,  ] # done\n");
            let spread = GOOD
                .replace("[\"", "[ # list\n  \"")
                .replace("\", \"", "\",\n\n  \"")
                .replace("\"go vet ./...\"", "'go vet \\\"./...'");
            let big = big_manifest(3_000);
            // Tables the scanner declines, among scanned ones: their globs
            // share the reading thread's cache.
            let sidecars = big.replace(
                "0\"\nkind = \"library\"\n",
                "0\"\nkind = \"library\"\nservices = [{ name = \"redis\", image = \"redis:7\" }]\n",
            );
            assert_eq!(sidecars.matches("redis:7").count(), 300);
            // Images whose build arguments, tags and sidecars the scanner
            // leaves on their lines, each read alone.
            let images = big.replace(
                "5\"\nkind = \"library\"\n",
                "5\"\nkind = \"image\"\nimage = \"r/x\"\ndockerfile = \"Dockerfile\"\n\
                 build_args = { GO = \"1.21\", A_B = 'x' }\n\
                 tags = { push = [\"{branch}\", \"{sha}\"], release = [\"latest\"] } # tags\n\
                 services = [{ name = \"pg\", image = \"postgres:16\", environment = { PGUSER = \"u\" } }]\n",
            );
            assert_eq!(images.matches("postgres:16").count(), 300);
            // No `[settings]`: the first line is the first service's header.
            let first_line = &big[big.find("[[service]]").unwrap()..];
            for text in [
                GOOD,
                &crlf,
                &commented,
                &spread,
                &big,
                first_line,
                &sidecars,
                &images,
                crate::demo::MANIFEST,
            ] {
                let tables = parse_tables(&Text::new(text), "m")
                    .expect("a clean manifest is read by tables");
                let whole = Manifest::parse_whole(text, "m").unwrap();
                assert_eq!(summary(&tables), summary(&whole));
            }
            // A bad glob in a declined table and in a scanned one: the cache
            // the two share keeps the problem, and each is reported.
            let bad = sidecars
                .replacen("\"lib/s10\", \"!**/*.md\"", "\"lib/s10\", \"lib/[x\"", 1)
                .replacen("\"lib/s11\", \"!**/*.md\"", "\"lib/s11\", \"lib/[x\"", 1);
            assert!(parse_tables(&Text::new(&bad), "m").is_none());
            let err = Manifest::parse(&bad, "m").unwrap_err();
            assert_eq!(err.problems.len(), 2, "{err}");
            // A problem in a value read alone is reported where it is.
            let bad = images.replacen("A_B = 'x'", "a-b = 'x'", 1);
            assert!(parse_tables(&Text::new(&bad), "m").is_none());
            let err = Manifest::parse(&bad, "m").unwrap_err().to_string();
            let line = bad[..bad.find("a-b").unwrap()].matches('\n').count() + 1;
            assert!(err.contains(&format!("m:{line}:")), "{err}");
            assert!(err.contains("build argument `a-b`"), "{err}");
            let read = parse_tables(&Text::new(&big), "m").unwrap();
            assert_eq!(read.settings.publish_branches, ["main"]);
            assert_eq!(read.position("s2999"), Some(2999));
        });
    }

    /// A big manifest as TOML writers put it (Python's `toml`, `tomlkit`,
    /// `tomli_w`): inline tables as sub-tables after a service's keys,
    /// arrays over lines with a trailing comma, `[settings]` after the
    /// services.
    fn written_by_a_library(services: usize, style: &str) -> String {
        let mut text = String::new();
        for i in 0..services {
            let list = |items: &[String]| match style {
                "tomli_w" => format!(
                    "[\n{}]",
                    items
                        .iter()
                        .map(|s| format!("    {s},\n"))
                        .collect::<String>()
                ),
                _ => format!("[ {},]", items.join(", ")),
            };
            let quoted = |s: &str| format!("\"{s}\"");
            text.push_str(&format!(
                "[[service]]\nname = \"s{i}\"\nkind = \"image\"\npaths = {}\n",
                list(&[quoted(&format!("lib/s{i}")), quoted("!**/*.md")])
            ));
            if i > 0 {
                text.push_str(&format!(
                    "depends_on = {}\n",
                    list(&[quoted(&format!("s{}", i / 2))])
                ));
            }
            text.push_str(&format!(
                "image = \"r/s{i}\"\ndockerfile = \"lib/s{i}/Dockerfile\"\ntoolchain = \"go\"\nunit = {}\n",
                list(&[quoted("go test ./...")])
            ));
            let sidecar_env = if i % 3 == 0 {
                "s0".to_string()
            } else {
                format!("s{i}")
            };
            match style {
                "tomli_w" => text.push_str(&format!(
                    "services = [\n    {{ name = \"pg\", image = \"postgres:16\", environment = {{ DB = \"{sidecar_env}\" }} }}, # one\n]\n\n\
                     [service.build_args]\nGO = \"1.22\"\n\n"
                )),
                _ => text.push_str(&format!(
                    "[[service.services]]\nname = \"pg\"\nimage = \"postgres:16\"\n\n\
                     [service.services.environment]\nDB = \"{sidecar_env}\"\n\n\
                     [service.build_args]\nGO = \"1.22\"\n\n\
                     [service.tags]\npush = [ \"{{sha}}\",]\n\n{}",
                    if i % 2 == 0 && i > 0 { "[service.discovered]\ngo = [ \"s0\",]\n\n" } else { "" }
                )),
            }
        }
        text + "[settings]\npublish_branches = [ \"main\",]\n\n[[environment]]\nname = \"qa\"\nslots = [\"a\"]\n"
    }

    #[test]
    fn table_reading_reads_manifests_as_toml_writers_put_them() {
        // Split between threads as a command splits it.
        crate::parallel::in_pool(|| {
            for style in ["toml", "tomli_w"] {
                let text = written_by_a_library(3_000, style);
                let tables = parse_tables(&Text::new(&text), "m").expect("read by tables");
                let whole = Manifest::parse_whole(&text, "m").unwrap();
                assert_eq!(summary(&tables), summary(&whole), "{style}");
                assert_eq!(tables.settings.publish_branches, ["main"]);
                assert_eq!(tables.environments.len(), 1);
                let s7 = tables.service("s7").unwrap();
                assert_eq!(s7.tests.sidecars[0].environment["DB"], "s7");
                assert_eq!(
                    s7.build.as_ref().unwrap().extras().build_args,
                    [("GO".into(), "1.22".into())]
                );
            }
            // The sub-tables are read once a text, and services that write
            // the same share their test setup.
            let text = written_by_a_library(3_000, "toml");
            let tables = parse_tables(&Text::new(&text), "m").unwrap();
            let tests = |i: usize| &tables.services[i].tests;
            assert!(Arc::ptr_eq(tests(6), tests(12)));
            assert!(!Arc::ptr_eq(tests(6), tests(7)));
            // A key set both on its line and as a sub-table is a TOML error,
            // reported by the whole reading.
            let twice = text.replacen(
                "dockerfile = \"lib/s5/Dockerfile\"\n",
                "dockerfile = \"lib/s5/Dockerfile\"\nbuild_args = { GO = \"1\" }\n",
                1,
            );
            assert!(parse_tables(&Text::new(&twice), "m").is_none());
            assert!(Manifest::parse(&twice, "m").is_err());
            // `[settings]` both before and after the services: the same.
            let twice = format!("[settings]\nrelease_tag = \"v*\"\n\n{text}");
            assert!(parse_tables(&Text::new(&twice), "m").is_none());
            assert!(Manifest::parse(&twice, "m").is_err());
        });
    }

    #[test]
    fn table_reading_falls_back_when_a_table_would_mislead() {
        // A late `[settings]` is read after the tables, as the whole
        // document reads it.
        let late = format!(
            "{}\n[settings]\npublish_branches = [\"x\"]\n",
            big_manifest(3_000).replacen("[settings]\npublish_branches = [\"main\"]\n", "", 1)
        );
        let tables = parse_tables(&Text::new(&late), "m").expect("read by tables");
        assert_eq!(
            summary(&tables),
            summary(&Manifest::parse_whole(&late, "m").unwrap())
        );
        assert_eq!(tables.settings.publish_branches, ["x"]);
        // A service after it is no tail: the whole reading takes it.
        let after = format!("{late}\n[[service]]\nname = \"late\"\nkind = \"library\"\n");
        assert!(parse_tables(&Text::new(&after), "m").is_none());
        assert!(
            Manifest::parse(&after, "m")
                .unwrap()
                .service("late")
                .is_some()
        );

        // A header line inside a multi-line string is not a header: make the
        // string the middle of the text, with the fake header just past it.
        let text = big_manifest(1_000);
        let padding = "x\n".repeat(text.len());
        let tricky = format!(
            "{text}\n[[service]]\nname = \"odd\"\nkind = \"library\"\ntoolchain = \"t\"\n\
             unit = [\"\"\"\n{padding}[[service]]\nname = \"fake\"\n\"\"\"]\n{text_tail}",
            text_tail = big_manifest(1_000)
                .replace("name = \"s", "name = \"t")
                .replace("\"s", "\"t")
                .replacen("[settings]\npublish_branches = [\"main\"]\n", "", 1),
        );
        assert!(parse_tables(&Text::new(&tricky), "m").is_none());
        let manifest = Manifest::parse(&tricky, "m").unwrap();
        assert!(manifest.service("fake").is_none());
        assert_eq!(manifest.services.len(), 2_001);

        // Issue 13.9: services defined before the first cut, as an array of
        // inline tables, cannot be extended by `[[service]]` tables: TOML
        // refuses the document, and so must the table reader.
        let inline = "service = [{ name = \"a\", kind = \"library\" }]\n\n\
                      [[service]]\nname = \"b\"\nkind = \"library\"\n";
        assert!(parse_tables(&Text::new(inline), "m").is_none());
        let err = Manifest::parse(inline, "m").unwrap_err().to_string();
        assert!(err.contains("TOML syntax"), "{err}");
        // An indented header is no cut, and joins the tables after it.
        let indented = "  [[service]]\nname = \"a\"\nkind = \"library\"\n\n\
                        [[service]]\nname = \"b\"\nkind = \"library\"\n";
        assert!(parse_tables(&Text::new(indented), "m").is_none());
        assert_eq!(Manifest::parse(indented, "m").unwrap().services.len(), 2);
        // So a table may hold two services, which its one place in the
        // list does not fit, in any part: the whole reading takes it.
        for next in ["s11", "s1500", "s2900"] {
            let two = big_manifest(3_000).replacen(
                &format!("\n[[service]]\nname = \"{next}\"\n"),
                &format!(
                    "  [[service]]\nname = \"extra\"\nkind = \"library\"\n\n\
                     [[service]]\nname = \"{next}\"\n"
                ),
                1,
            );
            assert!(parse_tables(&Text::new(&two), "m").is_none(), "{next}");
            let manifest = Manifest::parse(&two, "m").unwrap();
            assert_eq!(manifest.services.len(), 3_001);
            assert_eq!(
                manifest.position(next),
                manifest.position("extra").map(|i| i + 1)
            );
        }

        // Problems anywhere are reported from the whole text, in order.
        let broken =
            big_manifest(3_000).replace("depends_on = [\"s1400\"]", "depends_on = [\"nope\"]");
        let err = Manifest::parse(&broken, "m").unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.problems[0].line < err.problems[1].line);
        assert!(
            err.problems[0]
                .message
                .contains("unknown service `nope` in `s2800.depends_on`"),
            "{err}"
        );
    }

    /// Mangled manifests never panic: each gives a manifest or problems
    /// with positions inside the text. And reading by tables never reads
    /// anything the whole document does not say.
    #[test]
    fn mangled_manifests_never_panic() {
        let pieces = [
            "\"",
            "[",
            "]",
            "=",
            "\n",
            "é",
            "[[service]]\n",
            "#",
            "'''",
            "\"\"\"",
            "{",
            "}",
            ",",
            "\\",
            " ",
            "'",
            "\r",
            "\t",
            "\u{7f}",
            "\u{1}",
            "x = \"1\"\n",
            "name.x = \"y\"\n",
            "[settings]\n",
            "service = [{ name = \"i\", kind = \"library\" }]\n",
            " [[service]]\n",
            "discovered = { go = [\"base-go\"], docker = [\"api\"] }\n",
            "discovered = { go = [] }\n",
            "discovered = {}\n",
            "depends_on = [\"!go-main\"]\n",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        // `RIPPLE_FUZZ_ROUNDS=1000000 cargo test --release --lib mangled`
        // runs it as a longer fuzzing session.
        let rounds = std::env::var("RIPPLE_FUZZ_ROUNDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(3_000);
        for _ in 0..rounds {
            let mut text = GOOD.to_string();
            for _ in 0..1 + next(4) {
                let mut at = next(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                if next(2) == 0 {
                    text.insert_str(at, pieces[next(pieces.len())]);
                } else {
                    let end = (at + 1 + next(8)).min(text.len());
                    let end = (end..=text.len())
                        .find(|&e| text.is_char_boundary(e))
                        .unwrap_or(text.len());
                    text.replace_range(at..end, "");
                }
            }
            if let Some(tables) = parse_tables(&Text::new(&text), "m") {
                let whole = Manifest::parse_whole(&text, "m").expect("valid as a whole");
                assert_eq!(summary(&tables), summary(&whole), "{text}");
            }
            if let Err(err) = Manifest::parse(&text, "m") {
                assert!(!err.problems.is_empty());
                for problem in &err.problems {
                    assert!(problem.line >= 1 && problem.line <= text.lines().count().max(1) + 1);
                    let _ = problem.to_string();
                }
            }
        }
    }

    /// Issue 13.12: a key over 1,024 characters is no implicit YAML key, so
    /// such a manifest once rendered YAML that did not parse.
    #[test]
    fn sidecar_variables_must_be_names() {
        let with_key = |key: &str| {
            format!(
                "[[service]]\nname = \"api\"\nkind = \"library\"\ntoolchain = \"t\"\n\
                 functional = [\"x\"]\nservices = [{{ name = \"db\", image = \"pg\", \
                 environment = {{ \"{key}\" = \"v\" }} }}]\n"
            )
        };
        let long = "K".repeat(1_100);
        let err = problems(&with_key(&long));
        assert!(err.contains("services.toml:6:58"), "{err}");
        assert!(err.contains("is not a variable name"), "{err}");
        assert!(err.len() < 1_000, "long lines are shown as a window: {err}");
        assert!(err.len() < 1_000, "the key is cut in the message: {err}");
        for bad in ["A=B", "1X", "", "A B", "A\\nB"] {
            assert!(
                problems(&with_key(bad)).contains("is not a variable name"),
                "{bad}"
            );
        }
        let max = "K".repeat(MAX_VARIABLE_NAME);
        for good in ["MODE", "_x", "a.b-c_1", max.as_str()] {
            let manifest = Manifest::parse(&with_key(good), "services.toml").unwrap();
            assert_eq!(
                manifest.services[0].tests.sidecars[0].environment[good],
                "v"
            );
        }
    }

    #[test]
    fn an_oversized_glob_is_a_located_problem() {
        let glob = "*a".repeat(50_000);
        let err = problems(&format!(
            "[[service]]\nname = \"api\"\nkind = \"library\"\npaths = [\"src\", \"{glob}\"]\n"
        ));
        assert!(err.contains("services.toml:4:17"), "{err}");
        assert!(err.contains("at most 4096 are allowed"), "{err}");
    }

    #[test]
    fn columns_count_characters() {
        let err = problems("[[service]]\nname = \"é\"\nkind = \"library\"\n");
        assert!(err.contains("services.toml:2:8"), "{err}");
    }

    const DISCOVERED: &str = r#"
[settings]
discover = ["go", "docker"]

[[service]]
name = "a"
kind = "library"
paths = ["a"]
depends_on = ["c", "!b"]
discovered = { go = ["b", "c"], docker = ["d"] }

[[service]]
name = "b"
kind = "library"
paths = ["b"]

[[service]]
name = "c"
kind = "library"
paths = ["c"]

[[service]]
name = "d"
kind = "library"
paths = ["d"]
"#;

    #[test]
    fn discovered_edges_join_declared_ones_unless_dropped() {
        let manifest = Manifest::parse(DISCOVERED, "services.toml").unwrap();
        assert_eq!(manifest.settings.discover, ["go", "docker"]);
        let edges: Vec<(&str, &str)> = manifest
            .edges(0)
            .map(|(d, o)| (manifest.services[d].name.as_str(), o.as_str()))
            .collect();
        // `c` is declared (that wins), `b` dropped with "!b", `d` found.
        assert_eq!(edges, [("c", "declared"), ("d", "docker")]);
        let discovery = manifest.services[0].discovery.as_ref().unwrap();
        assert_eq!(discovery.dropped, ["b"]);
        assert!(manifest.services[1].discovery.is_none());
    }

    #[test]
    fn discovered_names_and_sources_are_checked() {
        let text = DISCOVERED
            .replace("docker = [\"d\"]", "docker = [\"nope\"], maven = [\"b\"]")
            .replace("\"!b\"", "\"!zz\"");
        let err = Manifest::parse(&text, "services.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown service `nope` in `a.discovered.docker`"),
            "{err}"
        );
        assert!(
            err.contains("unknown service `zz` in `a.depends_on` (\"!zz\")"),
            "{err}"
        );
        assert!(err.contains("unknown discovery source `maven`"), "{err}");
        let bad = DISCOVERED.replace("discover = [\"go\", \"docker\"]", "discover = [\"gradle\"]");
        let err = Manifest::parse(&bad, "services.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown discovery source `gradle`"), "{err}");
    }

    #[test]
    fn the_order_puts_every_service_after_what_it_depends_on() {
        // Each service depends on later ones: the file's order is not one
        // that works.
        let count = 300;
        let mut text = String::new();
        for i in 0..count {
            let mut deps: Vec<String> = Vec::new();
            for d in [i + 1, (i * 7 + 3) % count] {
                if d > i && d < count {
                    deps.push(format!("\"s{d}\""));
                }
            }
            text.push_str(&format!(
                "[[service]]\nname = \"s{i}\"\nkind = \"library\"\ndepends_on = [{}]\n\n",
                deps.join(", ")
            ));
        }
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        let order: Vec<usize> = manifest.order().collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..manifest.services.len()).collect::<Vec<_>>());
        let mut place = vec![0; order.len()];
        for (at, &i) in order.iter().enumerate() {
            place[i] = at;
        }
        let edges: usize = (0..order.len())
            .map(|i| manifest.dependencies(i).count())
            .sum();
        assert!(edges > 0);
        for i in 0..order.len() {
            for d in manifest.dependencies(i) {
                assert!(place[d] < place[i], "{} before {}", d, i);
            }
        }
    }

    /// The order by leading words is the order of the text: names that
    /// share their first 16 bytes, a name that another begins with, zero
    /// bytes, the same name twice (by position).
    #[test]
    fn names_are_ordered_as_their_text() {
        let mut names: Vec<CompactString> = [
            "team01-image-00012-extra",
            "team01-image-00012",
            "team01-image-0001",
            "team01-image-00012-a",
            "b",
            "a",
            "a\0",
            "a\0\0b",
            "team01-image-00012",
            "",
            "team01-image-00012\u{e9}",
            "zz",
            "a-",
            "a.",
            "a0",
        ]
        .into_iter()
        .map(CompactString::from)
        .collect();
        for k in 0..200 {
            names.push(format!("svc-{:05}", (k * 7919) % 1000).into());
        }
        let order = name_order(&names);
        let mut expected: Vec<u32> = (0..names.len() as u32).collect();
        expected.sort_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
        assert_eq!(order, expected);
    }

    /// A text read from a file and one already checked have the same
    /// header lines: those alone on their line, the first line's too.
    #[test]
    fn checked_and_given_texts_find_the_same_header_lines() {
        let mut text = String::from("[[service]]\nname = \"a\"\n");
        for k in 0..3_000 {
            let header = match k % 4 {
                0 => "[[service]]\n",
                1 => "[[service]]\r\n",
                2 => "[[service]] # not alone\n",
                _ => "  [[service]]\n",
            };
            text.push_str(&format!("\n{header}name = \"s{k}\"\n"));
        }
        let bytes = text.as_bytes();
        let want: Vec<usize> = std::iter::once(0)
            .chain(memchr::memmem::find_iter(bytes, SERVICE_HEADER).map(|at| at + 1))
            .filter(|&at| is_header_line(bytes, at))
            .collect();
        assert_eq!(want.len(), 1 + 1_500);
        let given: Vec<usize> = Text::new(&text).service_headers().collect();
        assert_eq!(given, want);
        crate::parallel::in_pool(|| {
            let checked = Text::check(bytes).unwrap();
            assert_eq!(checked.service_headers().collect::<Vec<_>>(), want);
        });
    }

    #[test]
    fn a_discovered_edge_can_close_a_cycle() {
        let text = DISCOVERED.replace(
            "name = \"d\"\nkind = \"library\"\npaths = [\"d\"]",
            "name = \"d\"\nkind = \"library\"\npaths = [\"d\"]\ndepends_on = [\"a\"]",
        );
        let err = Manifest::parse(&text, "services.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dependency cycle: a -> d -> a"), "{err}");
    }
}
