//! `cargo`: a `Cargo.toml` has a `path` dependency on a crate another
//! service owns, or a `workspace = true` one that the workspace resolves
//! to a member (by its `path` in `[workspace.dependencies]`, else by the
//! member's name).

use std::collections::HashMap;

use toml_edit::{DocumentMut, Item, TableLike};

use super::{Found, Repo, Source, join, split};

/// The cargo source.
pub struct Cargo;

impl Source for Cargo {
    fn name(&self) -> &'static str {
        "cargo"
    }

    fn discover(&self, repo: &Repo<'_>, found: &mut Found) {
        let manifests: Vec<(&str, DocumentMut)> = repo
            .files
            .paths
            .iter()
            .filter(|p| split(p).1 == "Cargo.toml")
            .filter_map(|p| Some((p.as_str(), repo.text(p)?.parse().ok()?)))
            .collect();
        let crates: HashMap<&str, &str> = manifests
            .iter()
            .filter_map(|(p, doc)| Some((doc.get("package")?.get("name")?.as_str()?, split(p).0)))
            .collect();
        // Workspace roots, deepest first, so a crate finds its nearest.
        let mut roots: Vec<(&str, &DocumentMut)> = manifests
            .iter()
            .filter(|(_, doc)| doc.contains_key("workspace"))
            .map(|(p, doc)| (split(p).0, doc))
            .collect();
        roots.sort_by_key(|(dir, _)| std::cmp::Reverse(dir.len()));
        for (path, doc) in &manifests {
            let dir = split(path).0;
            let root = roots
                .iter()
                .find(|(r, _)| r.is_empty() || dir == *r || dir.starts_with(&format!("{r}/")));
            for table in dependency_tables(doc) {
                for (key, value) in table.iter() {
                    let name = value.get("package").and_then(Item::as_str).unwrap_or(key);
                    let target = if let Some(local) = value.get("path").and_then(Item::as_str) {
                        join(dir, local)
                    } else if value.get("workspace").and_then(Item::as_bool) == Some(true) {
                        root.and_then(|(root_dir, root_doc)| {
                            let declared = root_doc.get("workspace")?.get("dependencies")?.get(key);
                            match declared.and_then(|d| d.get("path")).and_then(Item::as_str) {
                                Some(local) => join(root_dir, local),
                                None => {
                                    let name = declared
                                        .and_then(|d| d.get("package"))
                                        .and_then(Item::as_str)
                                        .unwrap_or(name);
                                    crates.get(name).map(|d| d.to_string())
                                }
                            }
                        })
                    } else {
                        None
                    };
                    let Some(target) = target.filter(|t| t != dir) else {
                        continue;
                    };
                    let targets = repo.owners_under(&target);
                    found.link(repo, &[], path, &targets, "cargo", "dependency");
                }
            }
        }
    }
}

/// `[dependencies]`, `[dev-dependencies]`, `[build-dependencies]`, and the
/// same under each `[target.'cfg(...)']`.
fn dependency_tables(doc: &DocumentMut) -> Vec<&dyn TableLike> {
    const KINDS: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];
    let mut tables: Vec<&dyn TableLike> = KINDS
        .iter()
        .filter_map(|k| doc.get(k)?.as_table_like())
        .collect();
    if let Some(targets) = doc.get("target").and_then(Item::as_table_like) {
        for (_, target) in targets.iter() {
            tables.extend(KINDS.iter().filter_map(|k| target.get(k)?.as_table_like()));
        }
    }
    tables
}
