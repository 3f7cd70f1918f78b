//! Which services a change set affects, and in what order images build.
//!
//! All path patterns of all services go into one [`Matcher`] (a prefix
//! table, and globs filed under the directory they start with), so each
//! changed path is matched once however many services there are. The
//! dependency graph is the manifest's: each service's dependencies
//! resolved to positions, and an order that puts each after what it
//! depends on. A walk in that order takes each service's state from its
//! dependencies, so no reversed graph is built. Pure: no I/O.

use std::collections::VecDeque;
use std::sync::OnceLock;

use compact_str::CompactString;
use globset::GlobMatcher;
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;

use crate::changes::{ChangeSet, Event, Mode};

thread_local! {
    /// A thread's list for sorting an entry's edges and waits by name
    /// rank: `(rank, service, origin)`. One list a thread, where a list
    /// for each of 18,000 entries was memory written for nothing (see
    /// BENCHMARKS.md, twentieth session).
    static BY_RANK: std::cell::RefCell<Vec<(u32, usize, &'static str)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}
use crate::manifest::{Kind, Manifest};
use crate::pattern::{self, PatternBody};

/// Who a matching include pattern names: a service, or every service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Service(usize),
    Global,
}

/// One `!` pattern of a service (or of `global_paths`).
#[derive(Debug, Clone)]
enum Exclusion<'m> {
    Prefix(&'m str),
    /// Index of the glob in the matcher's set.
    Glob(usize),
}

/// Every pattern of every service: prefixes in a hash table (a path is
/// looked up once per directory level), and each distinct glob filed under
/// the directory its literal start names, compiled the first time a path
/// under that directory is matched: a change touches few directories, and
/// compiling a glob costs far more than matching it. Exclusions are
/// checked only for the services a path is included in.
#[derive(Debug)]
pub struct Matcher<'m> {
    /// Each prefix to the first of its owners in `prefix_owners`, whose
    /// entries chain to the next owner of the same prefix: one table and
    /// one list for all, built in one pass.
    prefixes: HashMap<&'m str, u32>,
    prefix_owners: Vec<(Owner, u32)>,
    globs: Vec<LazyGlob<'m>>,
    /// Glob indices by the directory a matching path must be in (`""`:
    /// any path).
    globs_under: HashMap<&'m str, Vec<usize>>,
    glob_owners: Vec<Vec<Owner>>,
    /// The exclusions of slot `s` (0 for `global_paths`, `i + 1` for
    /// service `i`) are `exclusions[exclusion_starts[s]..exclusion_starts[s + 1]]`:
    /// one list for all, rather than one per service.
    exclusions: Vec<Exclusion<'m>>,
    exclusion_starts: Vec<u32>,
}

/// A glob, compiled when first needed.
#[derive(Debug)]
struct LazyGlob<'m> {
    source: &'m str,
    compiled: OnceLock<Option<GlobMatcher>>,
}

impl LazyGlob<'_> {
    fn is_match(&self, path: &str) -> bool {
        self.compiled
            .get_or_init(|| {
                pattern::compile(self.source)
                    .ok()
                    .map(|g| g.compile_matcher())
            })
            .as_ref()
            .is_some_and(|glob| glob.is_match(path))
    }
}

/// The end of a chain in `Matcher::prefix_owners`.
const NO_MORE: u32 = u32::MAX;

/// Who owns one path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Owners {
    /// Matched `global_paths`: every service is affected.
    pub global: bool,
    /// Indices into `Manifest::services`, ascending.
    pub services: Vec<usize>,
}

impl<'m> Matcher<'m> {
    /// Compiles the manifest's patterns. They were validated by the manifest,
    /// so compiling cannot fail on them.
    pub fn new(manifest: &'m Manifest) -> Matcher<'m> {
        Matcher::keeping(manifest, 0..manifest.services.len(), |_| true)
    }

    /// A matcher that answers [`Matcher::owners`] exactly for `paths`
    /// (for any other path, it may miss owners): it holds only the
    /// patterns those paths can meet, the prefixes equal to a directory
    /// of theirs (or to one of them) and the globs whose literal directory
    /// is one of theirs.
    pub fn for_paths(manifest: &'m Manifest, paths: &[String]) -> Matcher<'m> {
        let mut met: rustc_hash::FxHashSet<&str> = std::iter::once("").collect();
        met.extend(paths.iter().flat_map(|path| pattern::prefixes(path)));
        // A service none of whose include patterns has a met key owns
        // none of the paths: its patterns are not even read.
        let mut services: Vec<usize> = met
            .iter()
            .flat_map(|key| manifest.including_under(key))
            .collect();
        services.sort_unstable();
        services.dedup();
        Matcher::keeping(manifest, services, |key| met.contains(key))
    }

    /// The patterns of `global_paths` and of `services` (ascending) whose
    /// key (a prefix, or a glob's literal directory) `keep` accepts.
    fn keeping(
        manifest: &'m Manifest,
        services: impl IntoIterator<Item = usize>,
        keep: impl Fn(&str) -> bool,
    ) -> Matcher<'m> {
        let count = manifest.services.len();
        let services = services.into_iter();
        let mut prefix_pairs: Vec<(&'m str, Owner)> = Vec::with_capacity(services.size_hint().0);
        let mut globs = Vec::new();
        let mut globs_under: HashMap<&'m str, Vec<usize>> = HashMap::default();
        let mut glob_ids: HashMap<&str, usize> = HashMap::default();
        let mut glob_owners: Vec<Vec<Owner>> = Vec::new();
        // Patterns come in slot order, so each slot's exclusions follow the
        // previous slot's.
        let mut exclusions = Vec::new();
        let mut exclusion_starts = vec![0u32; count + 2];
        let global = manifest
            .settings
            .global_paths
            .iter()
            .map(|p| (p, Owner::Global, 0));
        let services = services.flat_map(|i| {
            let paths = manifest.services[i].paths.iter();
            paths.map(move |p| (p, Owner::Service(i), i + 1))
        });
        // Services repeat their globs (`!**/*.md` in each): the last one
        // looked up is kept, and the same text skips its lookups.
        let mut last_glob: Option<(&str, Option<usize>)> = None;
        for (pattern, owner, slot) in global.chain(services) {
            match (&pattern.body, pattern.exclude) {
                (PatternBody::Prefix(prefix), _) if !keep(prefix) => {}
                (PatternBody::Prefix(prefix), false) => prefix_pairs.push((prefix, owner)),
                (PatternBody::Prefix(prefix), true) => {
                    exclusions.push(Exclusion::Prefix(prefix));
                    exclusion_starts[slot + 1] += 1;
                }
                (PatternBody::Glob(glob), exclude) => {
                    let id = match last_glob {
                        Some((last, id)) if last == glob.as_str() => id,
                        _ => {
                            let id = keep(pattern.key()).then(|| {
                                *glob_ids.entry(glob.as_str()).or_insert_with(|| {
                                    let id = globs.len();
                                    globs.push(LazyGlob {
                                        source: glob,
                                        compiled: OnceLock::new(),
                                    });
                                    globs_under.entry(pattern.key()).or_default().push(id);
                                    glob_owners.push(Vec::new());
                                    id
                                })
                            });
                            last_glob = Some((glob.as_str(), id));
                            id
                        }
                    };
                    let Some(id) = id else { continue };
                    if exclude {
                        exclusions.push(Exclusion::Glob(id));
                        exclusion_starts[slot + 1] += 1;
                    } else {
                        glob_owners[id].push(owner);
                    }
                }
            }
        }
        for slot in 1..exclusion_starts.len() {
            exclusion_starts[slot] += exclusion_starts[slot - 1];
        }
        let mut prefixes: HashMap<&'m str, u32> =
            HashMap::with_capacity_and_hasher(prefix_pairs.len(), Default::default());
        let mut prefix_owners = Vec::with_capacity(prefix_pairs.len());
        for (prefix, owner) in prefix_pairs {
            let id = prefix_owners.len() as u32;
            let previous = prefixes.insert(prefix, id).unwrap_or(NO_MORE);
            prefix_owners.push((owner, previous));
        }
        Matcher {
            prefixes,
            prefix_owners,
            globs,
            globs_under,
            glob_owners,
            exclusions,
            exclusion_starts,
        }
    }

    /// The owners of `path`; `scratch` is reused between calls to avoid
    /// allocating per path.
    pub fn owners(&self, path: &str, scratch: &mut Vec<usize>) -> Owners {
        let mut found: Vec<Owner> = Vec::new();
        for prefix in pattern::prefixes(path) {
            let mut next = self.prefixes.get(prefix).copied().unwrap_or(NO_MORE);
            while let Some(&(owner, after)) = self.prefix_owners.get(next as usize) {
                found.push(owner);
                next = after;
            }
        }
        scratch.clear();
        let directories = std::iter::once("").chain(pattern::prefixes(path));
        for under in directories.filter_map(|d| self.globs_under.get(d)) {
            scratch.extend(under.iter().filter(|&&id| self.globs[id].is_match(path)));
        }
        scratch.sort_unstable();
        for &id in scratch.iter() {
            found.extend_from_slice(&self.glob_owners[id]);
        }
        let excluded = |slot: usize| {
            let (start, end) = (self.exclusion_starts[slot], self.exclusion_starts[slot + 1]);
            self.exclusions[start as usize..end as usize]
                .iter()
                .any(|exclusion| match exclusion {
                    Exclusion::Prefix(prefix) => pattern::prefixes(path).any(|p| p == *prefix),
                    Exclusion::Glob(id) => scratch.binary_search(id).is_ok(),
                })
        };
        let mut owners = Owners {
            global: found.contains(&Owner::Global) && !excluded(0),
            services: found
                .iter()
                .filter_map(|owner| match owner {
                    Owner::Service(i) => Some(*i),
                    Owner::Global => None,
                })
                .collect(),
        };
        owners.services.sort_unstable();
        owners.services.dedup();
        owners.services.retain(|&i| !excluded(i + 1));
        owners
    }
}

/// The affected images each image waits for (its nearest image
/// dependencies, looking through libraries), as positions.
struct Waits<'m> {
    kinds: &'m [Kind],
    /// Service `i`'s list is `items[ranges[i].0..ranges[i].1]`: none
    /// before they are gathered (see [`Waiting`]).
    ranges: Vec<(u32, u32)>,
    items: Vec<u32>,
    /// Each affected image's layer of the build order: one after the
    /// latest of what it waits for.
    levels: Vec<u32>,
    /// Whether `ranges` and `items` are gathered.
    gathered: bool,
}

/// Whether the walk from the directly affected services to their
/// dependents gathers what each image waits for, or only each image's
/// layer of the build order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Gathered in the walk: for a set whose entries are made (plans,
    /// `gate`, `explain`).
    Gathered,
    /// Only the layers, one number a service: for a report, which lists
    /// what each image waits for nowhere. Sorting and keeping a list for
    /// each library and image was a third of the walk at 20,000 services,
    /// and the walk is on the run's serial path. Entries made from such
    /// a set gather the lists first, in a walk of their own.
    Layers,
}

impl<'m> Waits<'m> {
    /// What image `i` waits for, sorted; nothing for any other service.
    fn of(&self, i: usize) -> &[u32] {
        if self.kinds[i].is_artifact() {
            self.list(i)
        } else {
            &[]
        }
    }

    /// Service `i`'s list: for a library, the images it reaches.
    fn list(&self, i: usize) -> &[u32] {
        let (start, end) = self.ranges[i];
        &self.items[start as usize..end as usize]
    }

    /// Each service's list, and each affected image's layer, in one pass
    /// in dependency order; with `spread`, each service is affected first
    /// when a dependency is.
    fn walk(manifest: &'m Manifest, is_affected: &mut [bool], spread: bool) -> Waits<'m> {
        let kinds = manifest.kinds();
        // One list for a library (the images it reaches) or an image (the
        // images it waits for), each sorted, all in one allocation.
        let mut waits = Waits {
            kinds,
            ranges: vec![(0, 0); kinds.len()],
            items: Vec::new(),
            levels: vec![0; kinds.len()],
            gathered: true,
        };
        let mut nearest = Vec::new();
        // Dependencies first, so each node's list is complete when read.
        for i in manifest.order() {
            if spread && !is_affected[i] {
                is_affected[i] = manifest.dependencies(i).any(|d| is_affected[d]);
            }
            // Libraries are looked through whether or not they are in the
            // set: a release plans images only, and an image still waits
            // for the base image its library builds on.
            if !is_affected[i] && kinds[i].is_artifact() {
                continue;
            }
            nearest.clear();
            for d in manifest.dependencies(i) {
                if kinds[d].is_artifact() {
                    if is_affected[d] {
                        nearest.push(d as u32);
                    }
                } else {
                    nearest.extend_from_slice(waits.list(d));
                }
            }
            nearest.sort_unstable();
            nearest.dedup();
            if kinds[i].is_artifact() {
                // Its dependencies' layers are known: they came first.
                waits.levels[i] = (nearest.iter())
                    .map(|&d| waits.levels[d as usize] + 1)
                    .max()
                    .unwrap_or(0);
            }
            let start = waits.items.len() as u32;
            waits.items.extend_from_slice(&nearest);
            waits.ranges[i] = (start, waits.items.len() as u32);
        }
        waits
    }

    /// The layers [`Waits::walk`] finds, without the lists. Each service
    /// carries one number: an affected image one more than its own layer;
    /// a library or test suite one more than the latest layer among the
    /// images it reaches (0 for none). The latest of a list is the latest
    /// of its parts, so an image's layer, one after the latest of what it
    /// waits for, is the largest number its dependencies carry.
    fn layers(manifest: &'m Manifest, is_affected: &mut [bool], spread: bool) -> Waits<'m> {
        let kinds = manifest.kinds();
        let mut levels = vec![0; kinds.len()];
        let mut above = vec![0u32; kinds.len()];
        for i in manifest.order() {
            // Both from one look at each dependency. An image outside the
            // set carries 0: it was passed over.
            let (mut reached, mut latest) = (false, 0);
            for d in manifest.dependencies(i) {
                reached |= is_affected[d];
                latest = latest.max(above[d]);
            }
            is_affected[i] |= spread && reached;
            let image = kinds[i].is_artifact();
            if !is_affected[i] && image {
                continue;
            }
            if image {
                levels[i] = latest;
                above[i] = latest + 1;
            } else {
                above[i] = latest;
            }
        }
        Waits {
            kinds,
            ranges: Vec::new(),
            items: Vec::new(),
            levels,
            gathered: false,
        }
    }
}

/// The changed files services own directly: changes to global paths are
/// every service's, kept once rather than in a list per service.
#[derive(Debug, Default)]
struct Direct {
    global: Vec<String>,
    /// The files of each service that owns some.
    own: HashMap<usize, Vec<String>>,
}

impl Direct {
    /// Service `i`'s files, unsorted.
    fn of(&self, i: usize) -> Vec<String> {
        let own = self.own.get(&i).map_or(&[][..], Vec::as_slice);
        match (own, self.global.as_slice()) {
            // Most of a large set: affected through a dependency only.
            ([], []) => Vec::new(),
            (own, global) => [own, global].concat(),
        }
    }
}

/// Whether an affected set keeps why each service is in it: its changed
/// files and the edges it was reached by. (What each image waits for is
/// [`Waiting`]'s to say.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Kept, for reports (`affected`, `plan --format json`, `gate`,
    /// `explain`).
    Kept,
    /// Left out, for a plan rendered for a CI system, which reads neither.
    Left,
}

/// The manifest's services as a graph, with their compiled matcher.
#[derive(Debug)]
pub struct ServiceGraph<'m> {
    manifest: &'m Manifest,
    /// Every pattern's matcher, built when first asked for: the affected
    /// set of a diff builds one for its own paths only.
    matcher: OnceLock<Matcher<'m>>,
    /// `[settings] ignore`, when set.
    ignore: Option<Ignore<'m>>,
}

/// `[settings] ignore`: paths dropped before any matching. A handful of
/// patterns, so compiled at once.
#[derive(Debug)]
struct Ignore<'m> {
    prefixes: Vec<&'m str>,
    kept_prefixes: Vec<&'m str>,
    globs: globset::GlobSet,
    kept_globs: globset::GlobSet,
}

impl<'m> Ignore<'m> {
    fn new(patterns: &'m [pattern::PathPattern]) -> Option<Ignore<'m>> {
        if patterns.is_empty() {
            return None;
        }
        let mut ignore = Ignore {
            prefixes: Vec::new(),
            kept_prefixes: Vec::new(),
            globs: globset::GlobSet::empty(),
            kept_globs: globset::GlobSet::empty(),
        };
        let (mut globs, mut kept) = (
            globset::GlobSetBuilder::new(),
            globset::GlobSetBuilder::new(),
        );
        for p in patterns {
            match (&p.body, p.exclude) {
                (PatternBody::Prefix(prefix), false) => ignore.prefixes.push(prefix),
                (PatternBody::Prefix(prefix), true) => ignore.kept_prefixes.push(prefix),
                // Validated when the manifest was read.
                (PatternBody::Glob(glob), exclude) => {
                    if let Ok(glob) = pattern::compile(glob) {
                        if exclude {
                            kept.add(glob)
                        } else {
                            globs.add(glob)
                        };
                    }
                }
            }
        }
        ignore.globs = globs.build().unwrap_or_else(|_| globset::GlobSet::empty());
        ignore.kept_globs = kept.build().unwrap_or_else(|_| globset::GlobSet::empty());
        Some(ignore)
    }

    fn is_ignored(&self, path: &str) -> bool {
        let under = |prefixes: &[&str]| pattern::prefixes(path).any(|p| prefixes.contains(&p));
        (under(&self.prefixes) || self.globs.is_match(path))
            && !(under(&self.kept_prefixes) || self.kept_globs.is_match(path))
    }
}

/// One affected service and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedService {
    /// Its name.
    pub name: CompactString,
    /// Its kind.
    pub kind: Kind,
    /// Changed files it owns (or global files), sorted.
    pub files: Vec<String>,
    /// Its affected direct dependencies, sorted by name, each with where
    /// its edge comes from: see [`AffectedService::via`].
    pub edges: Vec<Edge>,
    /// For images: the affected images it must wait for (its nearest image
    /// dependencies, looking through libraries), sorted.
    pub waits_for: Vec<CompactString>,
    /// The build arguments whose change in its `build_args_file` affects
    /// it (empty when none, or when `--files` listed the file).
    pub build_args: Vec<String>,
    /// For images, when input hashes were computed: `in-<hash>`, the tag
    /// of what it is made of (see [`crate::input`]).
    pub input: Option<String>,
}

impl AffectedService {
    /// Its affected direct dependencies, sorted: where its edges go. Not
    /// a list of its own, which 15,000 affected services would allocate.
    pub fn via(&self) -> impl ExactSizeIterator<Item = &CompactString> + Clone {
        self.edges.iter().map(|edge| &edge.to)
    }
}

/// DESIGN.md's entry of `services`: `via` is written out from the edges;
/// what waits and build arguments are is the plan's, not the report's.
impl Serialize for AffectedService {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Via<'a>(&'a AffectedService);
        impl Serialize for Via<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.via())
            }
        }
        let fields = 5 + usize::from(self.input.is_some());
        let mut entry = serializer.serialize_struct("AffectedService", fields)?;
        entry.serialize_field("name", &self.name)?;
        entry.serialize_field("kind", &self.kind)?;
        entry.serialize_field("files", &self.files)?;
        entry.serialize_field("via", &Via(self))?;
        entry.serialize_field("edges", &self.edges)?;
        if let Some(input) = &self.input {
            entry.serialize_field("input", input)?;
        }
        entry.end()
    }
}

/// For [`ServiceGraph::explain`] when no discovery source is re-run: a
/// discovered edge is named by its source alone.
pub fn no_evidence(_from: &str, _to: &str, _source: &str) -> Option<String> {
    None
}

/// One edge of the graph: to a dependency, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// The dependency.
    pub to: CompactString,
    /// `declared` (`depends_on`), or the discovery source that found it.
    pub origin: &'static str,
}

/// The affected set and the build order of its images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Affected {
    /// Exactly the affected services, sorted by name.
    pub services: Vec<AffectedService>,
    /// Affected images in layers: each layer waits only for earlier ones.
    pub build_order: Vec<Vec<CompactString>>,
}

impl Affected {
    /// The affected service with this name.
    pub fn get(&self, name: &str) -> Option<&AffectedService> {
        self.services
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.services[i])
    }
}

/// An affected set as positions in the manifest: which services, why
/// each is in it, what each image waits for, and the build order. Its
/// entries are made only when asked for: a report writes each as it goes
/// (18,000 entries made in memory and then written took more than a
/// millisecond of an `affected` run: 4 MB written once and read once), and
/// a plan's [`Affected`] is made from it.
pub struct AffectedSet<'a> {
    manifest: &'a Manifest,
    changes: &'a ChangeSet,
    why: Why,
    is_affected: Vec<bool>,
    files: Direct,
    waits: Waits<'a>,
    /// Each service's place in name order.
    rank: Vec<u32>,
    /// The affected services, in name order.
    positions: Vec<usize>,
    build_order: Vec<Vec<CompactString>>,
    /// Each affected image's input tag, by position, when computed.
    inputs: Option<Vec<Option<String>>>,
}

impl<'a> AffectedSet<'a> {
    /// No service affected.
    fn empty(manifest: &'a Manifest, changes: &'a ChangeSet, why: Why) -> AffectedSet<'a> {
        AffectedSet {
            manifest,
            changes,
            why,
            is_affected: Vec::new(),
            files: Direct::default(),
            waits: Waits {
                kinds: manifest.kinds(),
                ranges: Vec::new(),
                items: Vec::new(),
                levels: Vec::new(),
                gathered: true,
            },
            rank: Vec::new(),
            positions: Vec::new(),
            build_order: Vec::new(),
            inputs: None,
        }
    }

    /// The affected services' positions in the manifest, in name order.
    pub fn positions(&self) -> &[usize] {
        &self.positions
    }

    /// Affected images in layers, each layer in name order: each waits
    /// only for earlier ones.
    pub fn build_order(&self) -> &[Vec<CompactString>] {
        &self.build_order
    }

    /// Service `i`'s name.
    pub fn name(&self, i: usize) -> &'a CompactString {
        &self.manifest.names()[i]
    }

    /// Service `i`'s kind.
    pub fn kind(&self, i: usize) -> Kind {
        self.manifest.kinds()[i]
    }

    /// The changed files service `i` owns (or global files), sorted; none
    /// with [`Why::Left`].
    pub fn files(&self, i: usize) -> Vec<String> {
        match self.why {
            Why::Kept => {
                let mut files = self.files.of(i);
                files.sort_unstable();
                files.dedup();
                files
            }
            Why::Left => Vec::new(),
        }
    }

    /// Hands `f` service `i`'s affected direct dependencies in name order,
    /// each with where its edge comes from (none with [`Why::Left`], or
    /// when everything is affected). Sorted in a list the thread reuses.
    pub fn with_edges<R>(&self, i: usize, f: impl FnOnce(Edges<'_, 'a>) -> R) -> R {
        let names = self.manifest.names();
        if self.changes.mode == Mode::All || self.why == Why::Left {
            return f(Edges {
                names,
                by_rank: &[],
            });
        }
        let reached = (self.manifest.edges(i))
            .filter(|&(d, _)| self.is_affected[d])
            .map(|(d, origin)| (d, origin.as_str()));
        self.in_name_order(reached, |by_rank| f(Edges { names, by_rank }))
    }

    /// Hands `f` the services of `items` (each with a word of its own)
    /// sorted by name, as `(rank, service, word)`: by their rank, in a
    /// list the thread reuses. Taken while `f` runs, so that `f` may sort
    /// again.
    fn in_name_order<R>(
        &self,
        items: impl Iterator<Item = (usize, &'static str)>,
        f: impl FnOnce(&[(u32, usize, &'static str)]) -> R,
    ) -> R {
        let mut by_rank = BY_RANK.take();
        by_rank.clear();
        by_rank.extend(items.map(|(d, word)| (self.rank[d], d, word)));
        by_rank.sort_unstable_by_key(|&(rank, ..)| rank);
        let made = f(&by_rank);
        BY_RANK.set(by_rank);
        made
    }

    /// Whether an image is in the set.
    pub fn has_images(&self) -> bool {
        (self.positions.iter()).any(|&i| self.kind(i).is_artifact())
    }

    /// The input tag of image `i` (`in-<hash>`), when computed.
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs.as_ref()?.get(i)?.as_deref()
    }

    /// Sets each affected image's input tag from `tag` (given its
    /// position).
    pub fn set_inputs(&mut self, mut tag: impl FnMut(usize) -> String) {
        let mut inputs = vec![None; self.manifest.services.len()];
        for &i in self
            .positions
            .iter()
            .filter(|&&i| self.kind(i).is_artifact())
        {
            inputs[i] = Some(tag(i));
        }
        self.inputs = Some(inputs);
    }

    /// Service `i`'s entry, made.
    fn entry(&self, i: usize) -> AffectedService {
        let names = self.manifest.names();
        let edges = self.with_edges(i, |edges| {
            // Room for every dependency, allocated at once: collected
            // through a filter, the list would start with room for four,
            // and reserved, it took the path that grows a list.
            let mut list = Vec::with_capacity(edges.len());
            list.extend(edges.iter().map(|(to, origin)| Edge {
                to: to.clone(),
                origin,
            }));
            list
        });
        let waited = self.waits.of(i);
        let waits_for: Vec<CompactString> = match waited {
            [] | [_] => waited.iter().map(|&d| names[d as usize].clone()).collect(),
            _ => self.in_name_order(waited.iter().map(|&d| (d as usize, "")), |sorted| {
                sorted.iter().map(|&(_, d, _)| names[d].clone()).collect()
            }),
        };
        let changed = &self.changes.args.changed;
        let build_args = (changed.iter())
            .filter(|(name, ..)| name == names[i].as_str())
            .flat_map(|(_, _, keys)| keys.iter().cloned())
            .collect();
        AffectedService {
            name: names[i].clone(),
            kind: self.kind(i),
            files: self.files(i),
            edges,
            waits_for,
            build_args,
            input: self.input(i).map(str::to_string),
        }
    }

    /// Every entry, made: a large set's on two threads. They live until
    /// the process ends.
    pub fn into_affected(mut self) -> Affected {
        if !self.waits.gathered {
            // Every flag is set already: nothing is spread.
            self.waits = Waits::walk(self.manifest, &mut self.is_affected, false);
        }
        let services =
            crate::parallel::map(&self.positions, |&i| crate::arena::region(|| self.entry(i)));
        Affected {
            services,
            build_order: self.build_order,
        }
    }
}

/// An affected service's edges to affected dependencies, in name order:
/// see [`AffectedSet::with_edges`].
#[derive(Clone, Copy)]
pub struct Edges<'e, 'a> {
    names: &'a [CompactString],
    /// `(rank, dependency, origin)`, by rank.
    by_rank: &'e [(u32, usize, &'static str)],
}

impl<'e, 'a: 'e> Edges<'e, 'a> {
    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_rank.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_rank.is_empty()
    }

    /// Each dependency's name and the edge's origin (`declared`, or the
    /// discovery source).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a CompactString, &'static str)> + 'e {
        let names = self.names;
        (self.by_rank.iter()).map(move |&(_, d, origin)| (&names[d], origin))
    }
}

impl<'m> ServiceGraph<'m> {
    /// The graph of a validated manifest (every dependency names a
    /// service, no cycles).
    pub fn new(manifest: &'m Manifest) -> ServiceGraph<'m> {
        ServiceGraph {
            manifest,
            matcher: OnceLock::new(),
            ignore: Ignore::new(&manifest.settings.ignore),
        }
    }

    /// Whether `[settings] ignore` drops `path`.
    pub fn is_ignored(&self, path: &str) -> bool {
        self.ignore.as_ref().is_some_and(|i| i.is_ignored(path))
    }

    /// Service positions, dependencies before dependents.
    pub fn order(&self) -> impl Iterator<Item = usize> + '_ {
        // The manifest's cycle search found it.
        self.manifest.order()
    }

    /// The compiled matcher, for any path.
    pub fn matcher(&self) -> &Matcher<'m> {
        self.matcher.get_or_init(|| Matcher::new(self.manifest))
    }

    /// Index of the service with this name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.manifest.position(name)
    }

    /// Directly affected services with their files: one pass over the paths.
    fn direct(&self, paths: &[String], arg_files: &[String]) -> Direct {
        let mut files = Direct::default();
        let mut scratch = Vec::new();
        // A diff touches few directories: a matcher of the patterns its
        // paths can meet is built in a fraction of the time of one of all.
        let restricted;
        let matcher = match self.matcher.get() {
            Some(matcher) => matcher,
            None => {
                restricted = Matcher::for_paths(self.manifest, paths);
                &restricted
            }
        };
        for path in paths {
            if self.is_ignored(path) || arg_files.contains(path) {
                continue;
            }
            let owners = matcher.owners(path, &mut scratch);
            if owners.global {
                files.global.push(path.clone());
            } else {
                for i in owners.services {
                    files.own.entry(i).or_default().push(path.clone());
                }
            }
        }
        files
    }

    /// The affected set for a change set.
    pub fn affected(&self, changes: &ChangeSet) -> Affected {
        self.affected_with(changes, Why::Kept)
    }

    /// The affected set; with [`Why::Left`], each service's changed files
    /// and edges (why it is affected, which reports show and plans do not
    /// read) are left empty: for 15,000 services, a list or two each.
    pub fn affected_with(&self, changes: &ChangeSet, why: Why) -> Affected {
        self.affected_set(changes, why).into_affected()
    }

    /// The affected set as positions, each entry made only when asked for:
    /// see [`AffectedSet`].
    pub fn affected_set<'s>(&'s self, changes: &'s ChangeSet, why: Why) -> AffectedSet<'s> {
        self.affected_set_waiting(changes, why, Waiting::Gathered)
    }

    /// [`ServiceGraph::affected_set`] for a report of why each service is
    /// affected: what each image waits for is left to the entries, when
    /// they are made (see [`Waiting::Layers`]).
    pub fn report_set<'s>(&'s self, changes: &'s ChangeSet) -> AffectedSet<'s> {
        self.affected_set_waiting(changes, Why::Kept, Waiting::Layers)
    }

    /// Which services the changes affect directly, and the files each
    /// owns (everything, or every image for a release, without a diff).
    fn directly_affected(&self, changes: &ChangeSet) -> (Vec<bool>, Direct) {
        let count = self.manifest.services.len();
        match changes.mode {
            Mode::None => (vec![false; count], Direct::default()),
            // A release publishes every image and nothing else: the set
            // says exactly what is published.
            Mode::All if matches!(changes.event, Event::Tag | Event::Promote) => (
                self.manifest
                    .kinds()
                    .iter()
                    .map(|k| k.is_artifact())
                    .collect(),
                Direct::default(),
            ),
            Mode::All => (vec![true; count], Direct::default()),
            Mode::Diff => {
                let mut files = self.direct(&changes.paths, &changes.args.files);
                // A build_args_file counts only for the services whose
                // declared arguments it changed.
                for (service, file, _) in &changes.args.changed {
                    if let Some(i) = self.index(service)
                        && !files.global.contains(file)
                    {
                        let own = files.own.entry(i).or_default();
                        if !own.contains(file) {
                            own.push(file.clone());
                        }
                    }
                }
                let mut is_affected = vec![!files.global.is_empty(); count];
                files.own.keys().for_each(|&i| is_affected[i] = true);
                (is_affected, files)
            }
        }
    }

    fn affected_set_waiting<'s>(
        &'s self,
        changes: &'s ChangeSet,
        why: Why,
        waiting: Waiting,
    ) -> AffectedSet<'s> {
        if changes.mode == Mode::None {
            return AffectedSet::empty(self.manifest, changes, why);
        }
        let count = self.manifest.services.len();
        // From the directly affected to every dependent (with everything
        // planned there is nothing to add, and a release must not add the
        // test suites that depend on images), and what each image waits for.
        let spread = changes.mode != Mode::All;
        let walked = || {
            let (mut is_affected, files) = self.directly_affected(changes);
            let waits = self.reach(&mut is_affected, spread, waiting);
            (is_affected, files, waits)
        };
        // Each service's place in name order: lists of names are sorted by
        // it, one comparison of numbers where comparing names called
        // `memcmp`.
        let ranks = || {
            let mut rank = vec![0u32; count];
            for (place, &i) in self.manifest.by_name().iter().enumerate() {
                rank[i as usize] = place as u32;
            }
            rank
        };
        // The names are sorted and ranked on the other thread meanwhile,
        // which takes longer than the walk (at 20,000 services, 0.6-0.9 ms
        // against 0.3 ms; with the matching of the changed paths before
        // it, 0.5 ms): the walk is serial, and the entries are listed in
        // name order.
        let ((is_affected, files, waits), rank) = if self.manifest.sorts_names_beside() {
            crate::parallel::join(walked, ranks)
        } else {
            (walked(), ranks())
        };
        // In name order from the start: sorting them later would move
        // 20,000 of them through a scratch copy. Sized first: collected
        // through a filter, the list grew by doubling, each copy left
        // behind in the region.
        let mut positions = Vec::with_capacity(is_affected.iter().filter(|&&a| a).count());
        positions.extend(
            (self.manifest.by_name().iter())
                .map(|&i| i as usize)
                .filter(|&i| is_affected[i]),
        );
        // Each layer gets its images in name order, as they come, into
        // room counted first: grown by doubling, a layer of 10,000 images
        // left copies of half a megabyte behind in the region.
        let (names, kinds) = (self.manifest.names(), self.manifest.kinds());
        let images = || (positions.iter()).filter(|&&i| kinds[i].is_artifact());
        let mut sizes: Vec<usize> = Vec::new();
        for &i in images() {
            let layer = waits.levels[i] as usize;
            if sizes.len() <= layer {
                sizes.resize(layer + 1, 0);
            }
            sizes[layer] += 1;
        }
        let mut build_order: Vec<Vec<CompactString>> =
            sizes.into_iter().map(Vec::with_capacity).collect();
        for &i in images() {
            build_order[waits.levels[i] as usize].push(names[i].clone());
        }
        AffectedSet {
            manifest: self.manifest,
            changes,
            why,
            is_affected,
            files,
            waits,
            rank,
            positions,
            build_order,
            inputs: None,
        }
    }

    /// Files no service owns (and no global path covers), in input order.
    pub fn unowned<'f>(&self, files: &'f [String]) -> Vec<&'f str> {
        let mut scratch = Vec::new();
        files
            .iter()
            .filter(|f| {
                if self.is_ignored(f) {
                    return false;
                }
                let owners = self.matcher().owners(f, &mut scratch);
                !owners.global && owners.services.is_empty()
            })
            .map(String::as_str)
            .collect()
    }

    /// Why `name` is or is not affected, as lines of text: the shortest
    /// chain `service <- dependency (depends_on) <- file`. A discovered
    /// edge is named by its source, and by what `evidence(from, to,
    /// source)` says of it (`go import in src/x/main.go`) when it knows.
    pub fn explain(
        &self,
        name: &str,
        changes: &ChangeSet,
        affected: &Affected,
        evidence: &dyn Fn(&str, &str, &str) -> Option<String>,
    ) -> String {
        let mut out = String::new();
        match changes.mode {
            Mode::None => {
                out.push_str(&format!(
                    "{name} is not affected: {}
",
                    changes.reason
                ));
                return out;
            }
            Mode::All => {
                out.push_str(&format!(
                    "{name} is affected: {}
",
                    changes.reason
                ));
                return out;
            }
            Mode::Diff => {}
        }
        let Some(service) = affected.get(name) else {
            let own = self
                .index(name)
                .map(|i| &self.manifest.services[i])
                .map(|s| {
                    let paths: Vec<String> = s.paths.iter().map(ToString::to_string).collect();
                    let deps = if s.depends_on.is_empty() {
                        "it depends on no service".to_string()
                    } else {
                        format!(
                            "none of its dependencies ({}) is affected",
                            s.depends_on.join(", ")
                        )
                    };
                    let paths = if paths.is_empty() {
                        "it owns no paths".to_string()
                    } else {
                        format!(
                            "none of the changed files matches its paths ({})",
                            paths.join(", ")
                        )
                    };
                    format!("{paths}, and {deps}")
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "{name} is not affected: {own}
{} file(s) changed ({})
",
                changes.paths.len(),
                changes.reason
            ));
            return out;
        };
        out.push_str(&format!(
            "{name} is affected ({})
",
            changes.reason
        ));
        // One line per reason `affected` gives: each file of its own, and
        // for each service in `via` the shortest chain down to a directly
        // affected one and its files.
        let mut scratch = Vec::new();
        let mut file_lines = |line: &str, root: &AffectedService, out: &mut String| {
            for file in &root.files {
                let suffix = if changes.args.files.contains(file) {
                    match root.build_args.as_slice() {
                        [] => " (build_args_file)".to_string(),
                        [key] => format!(" (build argument {key})"),
                        keys => format!(" (build arguments {})", keys.join(", ")),
                    }
                } else if self.matcher().owners(file, &mut scratch).global {
                    " (global_paths)".to_string()
                } else {
                    String::new()
                };
                out.push_str(&format!("{line} <- {file}{suffix}\n"));
            }
        };
        file_lines(name, service, &mut out);
        for start in service.via() {
            let Some(first) = affected.get(start) else {
                continue;
            };
            let mut previous: HashMap<&str, &str> = HashMap::default();
            let mut queue: VecDeque<&AffectedService> = VecDeque::from([first]);
            let mut root = None;
            while let Some(current) = queue.pop_front() {
                if !current.files.is_empty() {
                    root = Some(current);
                    break;
                }
                for dep in current.via() {
                    if let Some(next) = affected.get(dep)
                        && !previous.contains_key(dep.as_str())
                        && dep != name
                        && dep != start
                    {
                        previous.insert(next.name.as_str(), current.name.as_str());
                        queue.push_back(next);
                    }
                }
            }
            let Some(root) = root else {
                continue;
            };
            let mut chain = vec![root.name.as_str()];
            while let Some(&up) = previous.get(chain[chain.len() - 1]) {
                chain.push(up);
            }
            chain.push(name);
            chain.reverse();
            let mut line = chain[0].to_string();
            for pair in chain.windows(2) {
                let (from, to) = (pair[0], pair[1]);
                let origin = affected
                    .get(from)
                    .and_then(|s| s.edges.iter().find(|e| e.to == to))
                    .map_or("declared", |e| e.origin);
                let why = match origin {
                    "declared" => "depends_on".to_string(),
                    source => evidence(from, to, source)
                        .unwrap_or_else(|| format!("discovered by {source}")),
                };
                line.push_str(&format!(" <- {to} ({why})"));
            }
            file_lines(&line, root, &mut out);
        }
        out
    }

    /// With `spread`, adds to `is_affected` every service that depends on
    /// one in it, and finds each affected image's layer of the build
    /// order; with [`Waiting::Gathered`], also the nearest affected images
    /// among each affected image's dependencies, looking through
    /// libraries and test suites.
    ///
    /// One pass, each service after its dependencies, which are done
    /// when it comes: it is affected when one of them is, and their lists
    /// are made. A breadth-first walk over the dependents, then a pass for
    /// the lists, took 1.5 times as long; marking each dependent from its
    /// dependencies needed the graph reversed, built beside the cycle
    /// search in most of a millisecond at 20,000 services.
    fn reach(&self, is_affected: &mut [bool], spread: bool, waiting: Waiting) -> Waits<'m> {
        match waiting {
            Waiting::Gathered => Waits::walk(self.manifest, is_affected, spread),
            Waiting::Layers => Waits::layers(self.manifest, is_affected, spread),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[settings]
global_paths = ["services.toml", "!docs/**"]

[[service]]
name = "base-go"
kind = "base-image"
paths = ["docker/go"]
image = "r/base-go"
dockerfile = "docker/go/Dockerfile"

[[service]]
name = "go-main"
kind = "library"
paths = ["src/go.main", "!**/*.md"]
depends_on = ["base-go"]

[[service]]
name = "apiv2"
kind = "image"
paths = ["src/api"]
depends_on = ["go-main"]
image = "r/apiv2"
dockerfile = "src/api/Dockerfile"

[[service]]
name = "lmtpd"
kind = "image"
paths = ["src/lmtpd", "src/shared/*.go"]
depends_on = ["go-main"]
image = "r/lmtpd"
dockerfile = "src/lmtpd/Dockerfile"

[[service]]
name = "web"
kind = "image"
paths = ["web"]
image = "r/web"
dockerfile = "web/Dockerfile"

[[service]]
name = "e2e"
kind = "tests"
depends_on = ["apiv2", "web"]
"#;

    fn affected(paths: &[&str]) -> Affected {
        let manifest = Manifest::parse(MANIFEST, "services.toml").unwrap();
        let graph = ServiceGraph::new(&manifest);
        graph.affected(&ChangeSet::diff(
            paths.iter().map(|p| p.to_string()).collect(),
        ))
    }

    fn names(affected: &Affected) -> Vec<&str> {
        affected.services.iter().map(|s| s.name.as_str()).collect()
    }

    /// A set large enough for two threads keeps name order, and each
    /// entry its own files and edges.
    #[test]
    fn a_large_affected_set_is_in_name_order_with_its_own_entries() {
        // Listed in reverse name order, each depending on the core and
        // every tenth also on its neighbour.
        let mut text =
            String::from("[[service]]\nname = \"core\"\nkind = \"library\"\npaths = [\"core\"]\n");
        for i in (0..1_500).rev() {
            let neighbour = if i % 10 == 0 && i > 0 {
                format!(", \"s{:04}\"", i - 1)
            } else {
                String::new()
            };
            text.push_str(&format!(
                "[[service]]\nname = \"s{i:04}\"\nkind = \"library\"\n\
                 paths = [\"s/{i}\"]\ndepends_on = [\"core\"{neighbour}]\n"
            ));
        }
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        let graph = ServiceGraph::new(&manifest);
        let changed = ChangeSet::diff(vec!["core/a".into(), "s/7/b".into()]);
        let affected = graph.affected(&changed);
        let got = names(&affected);
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!((got.len(), &got), (1_501, &sorted));
        for service in &affected.services {
            let files: &[&str] = match service.name.as_str() {
                "core" => &["core/a"],
                "s0007" => &["s/7/b"],
                _ => &[],
            };
            assert_eq!(service.files, files, "{}", service.name);
            let i: Option<usize> = service.name.strip_prefix('s').map(|n| n.parse().unwrap());
            let via: Vec<String> = match i {
                None => Vec::new(),
                Some(i) if i % 10 == 0 && i > 0 => vec!["core".into(), format!("s{:04}", i - 1)],
                Some(_) => vec!["core".into()],
            };
            assert!(service.via().eq(&via), "{}", service.name);
            let origins: Vec<&str> = service.edges.iter().map(|e| e.origin).collect();
            assert_eq!(origins, vec!["declared"; via.len()]);
        }
    }

    /// Without the reasons, an affected set is the same set in the same
    /// order, with the same waits and build order, and no files or edges;
    /// and what the set tells of each service before its entry is made is
    /// what the entry holds.
    #[test]
    fn a_set_without_reasons_is_the_same_set() {
        let manifest = Manifest::parse(MANIFEST, "services.toml").unwrap();
        let graph = ServiceGraph::new(&manifest);
        let mut waited = false;
        for paths in [
            &["src/go.main/x.go"][..],
            &["src/api/main.go", "web/app.ts"],
            &["docker/go/Dockerfile"],
        ] {
            let changes = ChangeSet::diff(paths.iter().map(|p| p.to_string()).collect());
            let (kept, left) = (
                graph.affected_with(&changes, Why::Kept),
                graph.affected_with(&changes, Why::Left),
            );
            assert!(kept.services.iter().any(|s| !s.files.is_empty()));
            waited |= kept.services.iter().any(|s| !s.waits_for.is_empty());
            assert_eq!(names(&kept), names(&left));
            assert_eq!(kept.build_order, left.build_order);
            for (kept, left) in kept.services.iter().zip(&left.services) {
                assert_eq!((&kept.kind, &kept.waits_for), (&left.kind, &left.waits_for));
                assert!(left.files.is_empty() && left.edges.is_empty());
            }
            let set = graph.affected_set(&changes, Why::Kept);
            assert_eq!(set.build_order(), kept.build_order);
            assert_eq!(set.positions().len(), kept.services.len());
            for (&i, entry) in set.positions().iter().zip(&kept.services) {
                let edges = set.with_edges(i, |edges| {
                    (edges.iter())
                        .map(|(to, origin)| Edge {
                            to: to.clone(),
                            origin,
                        })
                        .collect::<Vec<_>>()
                });
                let told = (set.name(i), set.kind(i), set.files(i), edges);
                assert_eq!(
                    told,
                    (
                        &entry.name,
                        entry.kind,
                        entry.files.clone(),
                        entry.edges.clone()
                    )
                );
            }
        }
        assert!(waited, "some image waits for another");
    }

    /// A report's set, whose walk carries only the layers, has the build
    /// order the lists give, and entries made from it gather the same
    /// waits: on layers of images, base images, libraries and test suites
    /// depending on each other, changed in a few places and released whole.
    /// Listed in reverse, against their dependencies (so walked in the
    /// cycle search's order, not the file's), the same services give the
    /// same sets.
    #[test]
    fn a_report_s_set_has_the_layers_and_waits_of_a_full_walk() {
        const KINDS: [&str; 4] = ["base-image", "library", "image", "tests"];
        let mut tables = Vec::new();
        let mut next = 7u64;
        let mut random = |below: usize| {
            next = next
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (next >> 33) as usize % below
        };
        for i in 0..400 {
            let kind = KINDS[if i < 20 { 0 } else { random(4) }];
            let mut text = format!(
                "[[service]]\nname = \"s{i:03}\"\nkind = \"{kind}\"\npaths = [\"s/{i}\"]\n"
            );
            if matches!(kind, "base-image" | "image") {
                text.push_str(&format!("image = \"r/s{i}\"\ndockerfile = \"s/{i}/D\"\n"));
            }
            // Each depends on up to three earlier services, most of them near.
            let mut depends: Vec<String> = (0..random(4).min(i))
                .map(|_| format!("\"s{:03}\"", i - 1 - random(i.min(30))))
                .collect();
            depends.sort();
            depends.dedup();
            if !depends.is_empty() {
                text.push_str(&format!("depends_on = [{}]\n", depends.join(", ")));
            }
            tables.push(text);
        }
        let changed = [
            ChangeSet::diff(vec!["s/0/a".into()]),
            ChangeSet::diff(vec!["s/3/a".into(), "s/150/b".into(), "s/390/c".into()]),
            ChangeSet::diff(vec!["s/399/a".into()]),
            ChangeSet::everything(Event::Tag, "release"),
            ChangeSet::everything(Event::Push, "everything"),
        ];
        let mut layers = 0;
        let mut waited = 0;
        let mut in_file_order = Vec::new();
        for reversed in [false, true] {
            let text: String = match reversed {
                false => tables.concat(),
                true => tables.iter().rev().map(String::as_str).collect(),
            };
            let manifest = Manifest::parse(&text, "services.toml").unwrap();
            let in_order = manifest.order().eq(0..manifest.services.len());
            assert_eq!(in_order, !reversed);
            let graph = ServiceGraph::new(&manifest);
            for (k, changes) in changed.iter().enumerate() {
                let (full, report) = (
                    graph.affected_set(changes, Why::Kept),
                    graph.report_set(changes),
                );
                assert_eq!(full.positions(), report.positions());
                assert_eq!(full.build_order(), report.build_order());
                layers = layers.max(full.build_order().len());
                let (full, report) = (full.into_affected(), report.into_affected());
                waited = waited.max(
                    full.services
                        .iter()
                        .filter(|s| !s.waits_for.is_empty())
                        .count(),
                );
                assert_eq!(full, report);
                match reversed {
                    false => in_file_order.push(full),
                    true => assert_eq!(full, in_file_order[k], "change set {k}"),
                }
            }
        }
        assert!(
            layers >= 4 && waited >= 50,
            "{layers} layers, {waited} waiting"
        );
    }

    #[test]
    fn a_library_change_flows_to_dependents() {
        let got = affected(&["src/go.main/x.go"]);
        assert_eq!(names(&got), ["apiv2", "e2e", "go-main", "lmtpd"]);
        let api = got.get("apiv2").unwrap();
        assert!(api.files.is_empty());
        assert!(api.via().eq(["go-main"]));
        assert_eq!(got.get("go-main").unwrap().files, ["src/go.main/x.go"]);
        assert_eq!(got.build_order, [vec!["apiv2", "lmtpd"]]);
        // `e2e` depends on `apiv2` and `web`: only the affected one is an
        // edge of its entry.
        let got = affected(&["web/app.ts"]);
        assert_eq!(names(&got), ["e2e", "web"]);
        assert!(got.get("e2e").unwrap().via().eq(["web"]));
    }

    /// Issue 8.5: `explain` gave one chain where `affected` has several.
    #[test]
    fn explain_shows_every_reason_affected_gives() {
        let manifest = Manifest::parse(MANIFEST, "services.toml").unwrap();
        let graph = ServiceGraph::new(&manifest);
        let changes = ChangeSet::diff(
            ["src/api/main.go", "src/go.main/x.go", "web/app.ts"]
                .iter()
                .map(|p| p.to_string())
                .collect(),
        );
        let affected = graph.affected(&changes);
        let apiv2 = graph.explain("apiv2", &changes, &affected, &crate::graph::no_evidence);
        let lines: Vec<&str> = apiv2.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "apiv2 <- src/api/main.go",
                "apiv2 <- go-main (depends_on) <- src/go.main/x.go"
            ],
            "{apiv2}"
        );
        let e2e = graph.explain("e2e", &changes, &affected, &no_evidence);
        let lines: Vec<&str> = e2e.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "e2e <- apiv2 (depends_on) <- src/api/main.go",
                "e2e <- web (depends_on) <- web/app.ts"
            ],
            "{e2e}"
        );
        assert!(affected.get("e2e").unwrap().via().eq(["apiv2", "web"]));
    }

    /// The graph files each glob under its literal start: alternatives with
    /// `/`, `./` and a trailing `/` must match there as the rule says.
    #[test]
    fn a_matcher_for_some_paths_owns_them_as_the_whole_one_does() {
        // Prefixes, globs with and without a literal directory, exclusions
        // of both kinds, global paths and their exclusions.
        let text = format!(
            "{MANIFEST}\n[[service]]\nname = \"shop\"\nkind = \"library\"\n\
             paths = [\"{{src/ad,src/cart}}/**\", \"src/api/v*/x\", \"!src/api/v2\", \"*.cfg\"]\n"
        );
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        let whole = Matcher::new(&manifest);
        let paths = [
            "services.toml",
            "docs/services.toml",
            "docker/go/Dockerfile",
            "src/go.main/a.go",
            "src/go.main/README.md",
            "src/api/x.go",
            "src/api/v1/x",
            "src/api/v2/x",
            "src/lmtpd/a.go",
            "src/shared/a.go",
            "src/shared/deep/a.go",
            "src/cart/x.go",
            "src/ad/a/b.go",
            "web/index.html",
            "top.cfg",
            "nowhere/x",
        ];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        // Each path alone, and all of them together.
        for some in paths.iter().map(std::slice::from_ref).chain([&paths[..]]) {
            let some: Vec<String> = some.iter().map(|p| p.to_string()).collect();
            let restricted = Matcher::for_paths(&manifest, &some);
            for path in &some {
                assert_eq!(
                    restricted.owners(path, &mut a),
                    whole.owners(path, &mut b),
                    "{path}"
                );
            }
        }
        // It holds fewer patterns than the whole one.
        let one = Matcher::for_paths(&manifest, &["web/index.html".to_string()]);
        assert!(one.prefixes.len() < whole.prefixes.len());
    }

    #[test]
    fn pattern_forms_match_in_the_graph() {
        let manifest = Manifest::parse(
            "[[service]]\nname = \"shop\"\nkind = \"library\"\n\
             paths = [\"{src/ad,src/cart}/**\", \"./lib/\", \"./tools/*/\"]\n",
            "services.toml",
        )
        .unwrap();
        let graph = ServiceGraph::new(&manifest);
        for (path, hit) in [
            ("src/cart/x.go", true),
            ("src/ad/a/b.go", true),
            ("src/other/x.go", false),
            ("lib/x.py", true),
            ("libx/y", false),
            ("tools/gen", true),
            ("tools/gen/main.go", false),
        ] {
            let got = graph.affected(&ChangeSet::diff(vec![path.to_string()]));
            assert_eq!(!got.services.is_empty(), hit, "{path}");
        }
    }

    #[test]
    fn ignored_paths_affect_nothing() {
        let text = MANIFEST.replace(
            "[settings]\n",
            "[settings]\nignore = [\"**/*.md\", \"docs\", \"!docs/keep.md\"]\n",
        );
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        let graph = ServiceGraph::new(&manifest);
        let of = |paths: &[&str]| {
            let got = graph.affected(&ChangeSet::diff(
                paths.iter().map(|p| p.to_string()).collect(),
            ));
            names(&got)
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert!(of(&["web/README.md", "docs/x.txt", "services.md"]).is_empty());
        assert_eq!(of(&["web/README.md", "web/app.ts"]), ["e2e", "web"]);
        // `services.toml` is global; an ignored `.md` never reaches it.
        assert_eq!(of(&["services.toml"]).len(), 6);
        assert_eq!(
            of(&["docs/keep.md"]).len(),
            0,
            "kept by `!`, owned by no service"
        );
        assert_eq!(
            graph.unowned(&["docs/a".to_string(), "x".to_string()]),
            ["x"]
        );
    }

    #[test]
    fn exclusions_remove_matches() {
        assert!(affected(&["src/go.main/README.md"]).services.is_empty());
    }

    #[test]
    fn globs_and_prefixes_together() {
        assert_eq!(names(&affected(&["src/shared/a.go"])), ["lmtpd"]);
        assert!(affected(&["src/shared/deep/a.go"]).services.is_empty());
    }

    #[test]
    fn images_wait_for_base_images_through_libraries() {
        let got = affected(&["docker/go/Dockerfile"]);
        assert_eq!(names(&got), ["apiv2", "base-go", "e2e", "go-main", "lmtpd"]);
        assert_eq!(got.get("apiv2").unwrap().waits_for, ["base-go"]);
        assert_eq!(got.build_order, [vec!["base-go"], vec!["apiv2", "lmtpd"]]);
    }

    /// An entry's edges and waits, and each layer of the build order, are
    /// in name order, not in the order the manifest lists the services
    /// (nor the order `depends_on` names them).
    #[test]
    fn edges_waits_and_layers_are_in_name_order() {
        let mut text = String::new();
        for name in ["zeta", "alpha", "mid"] {
            text.push_str(&format!(
                "[[service]]\nname = \"base-{name}\"\nkind = \"base-image\"\n\
                 paths = [\"b/{name}\"]\nimage = \"r/{name}\"\ndockerfile = \"b/{name}/D\"\n"
            ));
            text.push_str(&format!(
                "[[service]]\nname = \"lib-{name}\"\nkind = \"library\"\npaths = [\"l/{name}\"]\n\
                 depends_on = [\"base-{name}\"]\n"
            ));
        }
        text.push_str(
            "[[service]]\nname = \"app\"\nkind = \"image\"\npaths = [\"app\"]\n\
             image = \"r/app\"\ndockerfile = \"app/D\"\n\
             depends_on = [\"lib-mid\", \"lib-zeta\", \"base-mid\", \"lib-alpha\"]\n",
        );
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        let graph = ServiceGraph::new(&manifest);
        let changed = ["b/zeta/x", "b/alpha/x", "b/mid/x"].map(String::from);
        let got = graph.affected(&ChangeSet::diff(changed.to_vec()));
        let app = got.get("app").unwrap();
        assert!(
            app.via()
                .eq(["base-mid", "lib-alpha", "lib-mid", "lib-zeta"])
        );
        assert_eq!(app.waits_for, ["base-alpha", "base-mid", "base-zeta"]);
        assert_eq!(
            got.build_order,
            [vec!["base-alpha", "base-mid", "base-zeta"], vec!["app"]]
        );
    }

    #[test]
    fn global_paths_affect_everything_unless_excluded() {
        assert_eq!(affected(&["services.toml"]).services.len(), 6);
        let manifest = Manifest::parse(
            "[settings]\nglobal_paths = [\"ci\", \"!ci/*.md\"]\n[[service]]\nname = \"a\"\nkind = \"library\"\n",
            "m",
        )
        .unwrap();
        let graph = ServiceGraph::new(&manifest);
        let got = graph.affected(&ChangeSet::diff(vec!["ci/notes.md".into()]));
        assert!(got.services.is_empty());
        let got = graph.affected(&ChangeSet::diff(vec!["ci/x.sh".into()]));
        assert_eq!(got.services[0].files, ["ci/x.sh"]);
    }

    #[test]
    fn one_path_can_belong_to_several_services() {
        let manifest = Manifest::parse(
            "[[service]]\nname = \"a\"\nkind = \"library\"\npaths = [\"x\"]\n[[service]]\nname = \"b\"\nkind = \"library\"\npaths = [\"x/**/*.go\"]\n",
            "m",
        )
        .unwrap();
        let graph = ServiceGraph::new(&manifest);
        let got = graph.affected(&ChangeSet::diff(vec!["x/y/z.go".into()]));
        assert_eq!(names(&got), ["a", "b"]);
    }

    #[test]
    fn prefix_exclusions_and_shared_prefixes() {
        let manifest = Manifest::parse(
            "[[service]]\nname = \"a\"\nkind = \"library\"\npaths = [\"web\", \"!web/docs\"]\n\
             [[service]]\nname = \"b\"\nkind = \"library\"\npaths = [\"web\"]\n",
            "m",
        )
        .unwrap();
        let graph = ServiceGraph::new(&manifest);
        let mut scratch = Vec::new();
        let owners =
            |path: &str, scratch: &mut Vec<usize>| graph.matcher().owners(path, scratch).services;
        assert_eq!(owners("web/app.ts", &mut scratch), [0, 1]);
        assert_eq!(owners("web/docs/x.md", &mut scratch), [1]);
        assert_eq!(owners("web/docs", &mut scratch), [1]);
        assert_eq!(owners("web/docsite/x", &mut scratch), [0, 1]);
        assert!(owners("webby/x", &mut scratch).is_empty());
    }

    #[test]
    fn globs_are_tried_under_their_literal_directory() {
        use crate::pattern::{PathPattern, literal_directory};
        for (glob, directory) in [
            ("protos/p1/*.proto", "protos/p1"),
            ("protos/p1*/x", "protos"),
            ("a/{b,c}/d", "a"),
            ("a/b\\*/c", "a"),
            ("**/*.md", ""),
            ("*.md", ""),
        ] {
            assert_eq!(literal_directory(glob), directory);
            assert_eq!(PathPattern::parse(glob).unwrap().key(), directory);
        }
        let manifest = Manifest::parse(
            "[[service]]\nname = \"a\"\nkind = \"library\"\n\
             paths = [\"p/q/*.proto\", \"p/{x,y}/*.go\", \"p/z\\\\*.txt\"]\n\
             [[service]]\nname = \"b\"\nkind = \"library\"\npaths = [\"**/*.go\", \"!p/y/*.go\"]\n",
            "m",
        )
        .unwrap();
        let graph = ServiceGraph::new(&manifest);
        let mut scratch = Vec::new();
        let mut owners = |path: &str| graph.matcher().owners(path, &mut scratch).services;
        assert_eq!(owners("p/q/a.proto"), [0]);
        assert!(owners("p/q/r/a.proto").is_empty());
        assert!(owners("p/qq/a.proto").is_empty());
        assert_eq!(owners("p/x/a.go"), [0, 1]);
        assert_eq!(owners("p/y/a.go"), [0]);
        assert_eq!(owners("p/z*.txt"), [0]);
        assert!(owners("p/za.txt").is_empty());
        assert_eq!(owners("deep/er/a.go"), [1]);
    }

    #[test]
    fn unowned_files_affect_nothing() {
        assert!(affected(&["README.md", "docs/x"]).services.is_empty());
    }
}
