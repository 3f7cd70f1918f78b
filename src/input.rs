//! Input hashes: what each service is made of, as one SHA-256, so that an
//! image built once can be found again by what went into it (`in-<hash>`)
//! and promoted instead of rebuilt. Pure: the caller lists the commit's
//! files with their git object ids.
//!
//! A service's hash covers exactly what makes it affected: the files its
//! paths own (not those `[settings] ignore` drops, nor a `build_args_file`,
//! which counts through the arguments it gives), the files of
//! `global_paths`, and for images its Dockerfile, context, merged build
//! arguments and platforms; then its dependencies' hashes, sorted by name.
//! A dependency's hash covers its own dependencies, so every service it
//! reaches transitively counts. Two commits that change nothing a service
//! is affected by give it the same hash.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::graph::ServiceGraph;
use crate::manifest::{ImageBuild, Manifest};

/// One tracked file of the commit: its path and git object id (a blob, or
/// a submodule's commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedFile {
    /// Path from the repository root.
    pub path: String,
    /// The object id's bytes.
    pub id: Vec<u8>,
}

/// A service's input hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputHash(pub [u8; 32]);

impl InputHash {
    /// The whole hash in hex.
    pub fn hex(&self) -> String {
        use std::fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// The `{input}` tag: `in-` and the first 12 hex digits.
    pub fn tag(&self) -> String {
        format!("in-{}", &self.hex()[..12])
    }
}

/// Bumped when what the hash covers changes, so old tags are not mistaken
/// for new ones.
const VERSION: &[u8] = b"ripple input v1";

/// Feeds one length-prefixed field, so that no two sequences of fields give
/// the same bytes.
fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The build arguments an image is built with: those its
/// `build_args_file` gives (`file_args`), then its own `build_args`, which
/// win; sorted by key.
pub fn merged_build_args<'a>(
    build: &'a ImageBuild,
    file_args: Option<&'a BTreeMap<String, String>>,
) -> BTreeMap<&'a str, &'a str> {
    file_args
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(
            build
                .extras()
                .build_args
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .collect()
}

/// Every service's input hash, by position in the manifest. `files` are
/// the commit's tracked files sorted by path; `file_args` the arguments
/// each service's `build_args_file` gives at that commit. One pass over
/// the files, then one over the services in dependency order.
pub fn input_hashes(
    manifest: &Manifest,
    graph: &ServiceGraph<'_>,
    files: &[TrackedFile],
    file_args: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<InputHash> {
    let count = manifest.services.len();
    let arg_files: Vec<&str> = manifest
        .services
        .iter()
        .filter_map(|s| s.build.as_ref()?.extras().build_args_file.as_deref())
        .collect();
    let mut own: Vec<Sha256> = vec![Sha256::new(); count];
    let mut global = Sha256::new();
    let mut scratch = Vec::new();
    for file in files {
        if graph.is_ignored(&file.path) || arg_files.contains(&file.path.as_str()) {
            continue;
        }
        let owners = graph.matcher().owners(&file.path, &mut scratch);
        let feed = |hasher: &mut Sha256| {
            field(hasher, file.path.as_bytes());
            field(hasher, &file.id);
        };
        if owners.global {
            feed(&mut global);
        } else {
            owners.services.iter().for_each(|&i| feed(&mut own[i]));
        }
    }
    let global = global.finalize();
    let id_of = |path: &str| {
        files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|at| files[at].id.as_slice())
    };
    let mut hashes = vec![InputHash([0; 32]); count];
    for i in graph.order() {
        let service = &manifest.services[i];
        let mut hasher = Sha256::new();
        field(&mut hasher, VERSION);
        field(&mut hasher, &std::mem::take(&mut own[i]).finalize());
        field(&mut hasher, &global);
        if let Some(build) = &service.build {
            field(&mut hasher, build.dockerfile.as_bytes());
            field(&mut hasher, id_of(&build.dockerfile).unwrap_or_default());
            field(&mut hasher, build.context.as_bytes());
            let args = merged_build_args(build, file_args.get(service.name.as_str()));
            for (key, value) in args {
                field(&mut hasher, key.as_bytes());
                field(&mut hasher, value.as_bytes());
            }
            for platform in &build.extras().platforms {
                field(&mut hasher, platform.as_bytes());
            }
        }
        let mut dependencies: Vec<usize> = manifest.dependencies(i).collect();
        dependencies
            .sort_unstable_by(|&a, &b| manifest.services[a].name.cmp(&manifest.services[b].name));
        dependencies.dedup();
        for d in dependencies {
            field(&mut hasher, manifest.services[d].name.as_bytes());
            field(&mut hasher, &hashes[d].0);
        }
        hashes[i] = InputHash(hasher.finalize().into());
    }
    hashes
}

/// Fills in `input` (`in-<hash>`) for every affected image.
pub fn annotate(
    manifest: &Manifest,
    graph: &ServiceGraph<'_>,
    affected: &mut crate::graph::AffectedSet<'_>,
    files: &[TrackedFile],
    file_args: &BTreeMap<String, BTreeMap<String, String>>,
) {
    let hashes = input_hashes(manifest, graph, files, file_args);
    affected.set_inputs(|i| hashes[i].tag());
}

/// Whether the manifest needs input hashes: `release = "promote"`, or a tag
/// template that names `{input}`.
pub fn wanted(manifest: &Manifest) -> bool {
    use crate::tags::Use;
    manifest.settings.release == crate::manifest::Release::Promote
        || manifest.services.iter().any(|s| {
            s.build.as_ref().is_some_and(|b| {
                manifest
                    .tag_templates(b, Use::Push)
                    .iter()
                    .chain(&manifest.tag_templates(b, Use::Release))
                    .any(|t| t.names_input())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[settings]
global_paths = ["ci"]
ignore = ["**/*.md"]

[[service]]
name = "base"
kind = "base-image"
paths = ["base"]
image = "r.example.org/base"
dockerfile = "base/Dockerfile"

[[service]]
name = "lib"
kind = "library"
paths = ["lib"]

[[service]]
name = "api"
kind = "image"
paths = ["api"]
depends_on = ["base", "lib"]
image = "r.example.org/api"
dockerfile = "api/Dockerfile"
build_args = { MODE = "prod" }
build_args_file = ".env"

[[service]]
name = "web"
kind = "image"
paths = ["web"]
image = "r.example.org/web"
dockerfile = "web/Dockerfile"
"#;

    fn file(path: &str, id: u8) -> TrackedFile {
        TrackedFile {
            path: path.into(),
            id: vec![id; 20],
        }
    }

    fn tree() -> Vec<TrackedFile> {
        vec![
            file(".env", 1),
            file("api/Dockerfile", 2),
            file("api/README.md", 3),
            file("api/main.go", 4),
            file("base/Dockerfile", 5),
            file("ci/run", 6),
            file("lib/lib.go", 7),
            file("web/Dockerfile", 8),
        ]
    }

    fn hashes(files: &[TrackedFile], args: &[(&str, &str)]) -> BTreeMap<String, String> {
        let manifest = Manifest::parse(MANIFEST, "services.toml").unwrap();
        let graph = ServiceGraph::new(&manifest);
        let file_args = BTreeMap::from([(
            "api".to_string(),
            args.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )]);
        input_hashes(&manifest, &graph, files, &file_args)
            .iter()
            .zip(&manifest.services)
            .map(|(h, s)| (s.name.to_string(), h.tag()))
            .collect()
    }

    /// Replaces the id of `path` in the tree.
    fn changed(path: &str, id: u8) -> Vec<TrackedFile> {
        let mut files = tree();
        files.iter_mut().find(|f| f.path == path).unwrap().id = vec![id; 20];
        files
    }

    #[test]
    fn a_change_moves_exactly_the_hashes_it_affects() {
        let before = hashes(&tree(), &[("V", "1")]);
        let moved = |after: BTreeMap<String, String>| -> Vec<String> {
            before
                .iter()
                .filter(|(name, hash)| after[*name] != **hash)
                .map(|(name, _)| name.clone())
                .collect()
        };
        // Nothing changed: the same hashes.
        assert_eq!(moved(hashes(&tree(), &[("V", "1")])), Vec::<String>::new());
        // Its own file; a library it uses; a base image it builds on.
        assert_eq!(
            moved(hashes(&changed("api/main.go", 9), &[("V", "1")])),
            ["api"]
        );
        assert_eq!(
            moved(hashes(&changed("lib/lib.go", 9), &[("V", "1")])),
            ["api", "lib"]
        );
        assert_eq!(
            moved(hashes(&changed("base/Dockerfile", 9), &[("V", "1")])),
            ["api", "base"]
        );
        // Ignored files and the arguments file itself count for nothing;
        // the arguments it gives do.
        assert_eq!(
            moved(hashes(&changed("api/README.md", 9), &[("V", "1")])),
            Vec::<String>::new()
        );
        assert_eq!(
            moved(hashes(&changed(".env", 9), &[("V", "1")])),
            Vec::<String>::new()
        );
        assert_eq!(moved(hashes(&tree(), &[("V", "2")])), ["api"]);
        // A global path is everyone's.
        assert_eq!(moved(hashes(&changed("ci/run", 9), &[("V", "1")])).len(), 4);
        // A new file, a deleted one.
        let mut added = tree();
        added.insert(7, file("web/index.html", 9));
        assert_eq!(moved(hashes(&added, &[("V", "1")])), ["web"]);
        let removed: Vec<TrackedFile> = tree()
            .into_iter()
            .filter(|f| f.path != "lib/lib.go")
            .collect();
        assert_eq!(moved(hashes(&removed, &[("V", "1")])), ["api", "lib"]);
    }

    #[test]
    fn the_tag_is_in_and_twelve_hex_digits() {
        let tag = hashes(&tree(), &[])["api"].clone();
        assert!(tag.starts_with("in-"));
        assert_eq!(tag.len(), 15);
        assert!(
            tag[3..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}
