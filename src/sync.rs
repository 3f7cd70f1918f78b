//! `ripple sync`: writes each service's generated `discovered` key into the
//! manifest's text, keeping everything else (comments, layout, order) byte
//! for byte. Pure: text in, text out.

use std::collections::BTreeMap;

use toml_edit::{Array, DocumentMut, InlineTable, Item, Value};

use crate::discover::Edge;
use crate::manifest::Manifest;

/// Why the text could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// `text` without any `discovered` key: what the sources are run against,
/// so that a stale key (naming a service that is gone) cannot stop them.
pub fn without_discovered(text: &str) -> Result<String, Unreadable> {
    rewrite(text, |_| None)
}

/// `text` with each service's `discovered` key set to `edges` (by
/// source, then name, sorted), and removed where it has none.
pub fn with_discovered(
    text: &str,
    manifest: &Manifest,
    edges: &[Edge],
) -> Result<String, Unreadable> {
    let mut by_service: BTreeMap<&str, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for edge in edges {
        let from = manifest.services[edge.from].name.as_str();
        let to = manifest.services[edge.to].name.as_str();
        let names = by_service
            .entry(from)
            .or_default()
            .entry(edge.source)
            .or_default();
        if !names.contains(&to) {
            names.push(to);
        }
    }
    rewrite(text, |name| {
        let sources = by_service.get(name)?;
        let mut table = InlineTable::new();
        for (source, names) in sources {
            let mut names = names.clone();
            names.sort_unstable();
            let array: Array = names.into_iter().collect();
            table.insert(*source, Value::Array(array));
        }
        Some(table)
    })
}

/// Whether `manifest`'s `discovered` keys hold exactly `edges`, however
/// they are written.
pub fn is_current(manifest: &Manifest, edges: &[Edge]) -> bool {
    let mut want: Vec<(usize, &str, &str)> = edges
        .iter()
        .map(|e| (e.from, e.source, manifest.services[e.to].name.as_str()))
        .collect();
    let mut have: Vec<(usize, &str, &str)> = manifest
        .services
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.discovery
                .iter()
                .flat_map(move |d| d.edges.iter().map(move |(src, to)| (i, *src, to.as_str())))
        })
        .collect();
    want.sort_unstable();
    want.dedup();
    have.sort_unstable();
    have.dedup();
    want == have
}

/// Sets (or removes) `discovered` in every `[[service]]` table, by the
/// service's name.
fn rewrite(
    text: &str,
    discovered: impl Fn(&str) -> Option<InlineTable>,
) -> Result<String, Unreadable> {
    let mut document: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| Unreadable(e.to_string()))?;
    let Some(services) = document
        .get_mut("service")
        .and_then(Item::as_array_of_tables_mut)
    else {
        return Ok(text.to_string());
    };
    for table in services.iter_mut() {
        let name = table
            .get("name")
            .and_then(Item::as_str)
            .unwrap_or_default()
            .to_string();
        match discovered(&name) {
            Some(new) => {
                let unchanged = table
                    .get("discovered")
                    .and_then(Item::as_inline_table)
                    .is_some_and(|old| same(old, &new));
                if !unchanged {
                    table.insert("discovered", Item::Value(Value::InlineTable(new)));
                }
            }
            None => {
                table.remove("discovered");
            }
        }
    }
    Ok(document.to_string())
}

/// Whether two `discovered` tables hold the same names by source, however
/// they are written.
fn same(a: &InlineTable, b: &InlineTable) -> bool {
    let read = |t: &InlineTable| -> BTreeMap<String, Vec<String>> {
        t.iter()
            .map(|(k, v)| {
                let names = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|n| n.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                (k.to_string(), names)
            })
            .collect()
    };
    read(a) == read(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# the team's services
[settings]
discover = ["go"]   # keep this comment

[[service]]
name = "a"   # the API
kind = "library"
paths = ["a"]
discovered = { go = ["zz"] }

[[service]]
name = "b"
kind = "library"
paths = [
  "b",   # spread over lines
]
"#;

    #[test]
    fn only_discovered_keys_change() {
        let stripped = without_discovered(TEXT).unwrap();
        assert_eq!(
            stripped,
            TEXT.replace("discovered = { go = [\"zz\"] }\n", "")
        );
        let manifest = Manifest::parse(&stripped, "services.toml").unwrap();
        let edges = [Edge {
            from: 1,
            to: 0,
            source: "go",
            file: "b/x.go".into(),
            what: "import",
        }];
        let written = with_discovered(&stripped, &manifest, &edges).unwrap();
        assert_eq!(
            written,
            stripped.replace(
                "  \"b\",   # spread over lines\n]\n",
                "  \"b\",   # spread over lines\n]\ndiscovered = { go = [\"a\"] }\n"
            )
        );
        // Twice is the same as once.
        assert_eq!(
            with_discovered(&written, &manifest, &edges).unwrap(),
            written
        );
    }
}
