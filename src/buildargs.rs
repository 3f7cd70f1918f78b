//! Build arguments from a `build_args_file`: a dotenv file read at the
//! commit built, of which only the keys the service's Dockerfile declares
//! with `ARG` are passed, an explicit `build_args` key winning. Pure: the
//! caller reads the files.

use std::collections::{BTreeMap, BTreeSet};

/// `KEY=VALUE` lines of a dotenv file: `#` comments and blank lines
/// skipped, `export ` allowed before the key, one pair of matching quotes
/// around the value removed. Later lines win.
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let value = value.trim();
        let value = match value.as_bytes() {
            [q @ (b'"' | b'\''), .., last] if last == q && value.len() >= 2 => {
                &value[1..value.len() - 1]
            }
            // An unquoted value ends at a comment.
            _ => value.split(" #").next().unwrap_or(value).trim_end(),
        };
        values.insert(key.to_string(), value.to_string());
    }
    values
}

/// The names a Dockerfile declares with `ARG` (`ARG A`, `ARG B=1 C`),
/// continuation lines joined.
pub fn declared_args(dockerfile: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut logical = String::new();
    for line in dockerfile.lines() {
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let text = std::mem::take(&mut logical);
        let mut words = text.split_whitespace();
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("ARG")) {
            for word in words {
                let name = word.split('=').next().unwrap_or(word);
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

/// The arguments the file gives a service: declared keys only, and none
/// that `explicit` (its `build_args`) sets.
pub fn from_file(
    file: &BTreeMap<String, String>,
    declared: &BTreeSet<String>,
    explicit: &[(String, String)],
) -> BTreeMap<String, String> {
    file.iter()
        .filter(|(key, _)| declared.contains(*key))
        .filter(|(key, _)| !explicit.iter().any(|(k, _)| k == *key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The keys whose value the file gives differently at head than at base
/// (added, removed or changed): `declared` is what the Dockerfile declares
/// at base or at head.
pub fn changed_keys(
    base: &BTreeMap<String, String>,
    head: &BTreeMap<String, String>,
    declared: &BTreeSet<String>,
    explicit: &[(String, String)],
) -> Vec<String> {
    let before = from_file(base, declared, explicit);
    let after = from_file(head, declared, explicit);
    before
        .keys()
        .chain(after.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|key| before.get(*key) != after.get(*key))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines_are_read_as_docker_compose_does() {
        let values = parse_dotenv(
            "# versions\nNODE_VERSION=20\nexport GO_VERSION = \"1.21\"\nQUOTED='a b'\n\
             URL=https://x/y#frag\nC=1 # comment\nnot a line\nNODE_VERSION=22\n",
        );
        assert_eq!(values["NODE_VERSION"], "22");
        assert_eq!(values["GO_VERSION"], "1.21");
        assert_eq!(values["QUOTED"], "a b");
        assert_eq!(values["URL"], "https://x/y#frag");
        assert_eq!(values["C"], "1");
        assert_eq!(values.len(), 5);
    }

    #[test]
    fn dockerfiles_declare_args() {
        let declared = declared_args(
            "ARG BASE=alpine\nFROM $BASE\narg NODE_VERSION\nARG A=1 \\\n    B\nRUN echo ARG C\n",
        );
        let names: Vec<&str> = declared.iter().map(String::as_str).collect();
        assert_eq!(names, ["A", "B", "BASE", "NODE_VERSION"]);
    }

    #[test]
    fn only_declared_and_not_overridden_keys_count() {
        let declared: BTreeSet<String> = ["NODE_VERSION", "API"].map(String::from).into();
        let explicit = vec![("API".to_string(), "fixed".to_string())];
        let base = parse_dotenv("NODE_VERSION=20\nAPI=a\nOTHER=1\n");
        let head = parse_dotenv("NODE_VERSION=20\nAPI=b\nOTHER=2\n");
        assert!(changed_keys(&base, &head, &declared, &explicit).is_empty());
        let head = parse_dotenv("NODE_VERSION=22\n");
        assert_eq!(
            changed_keys(&base, &head, &declared, &explicit),
            ["NODE_VERSION"]
        );
        let added = parse_dotenv("");
        assert_eq!(
            changed_keys(&added, &head, &declared, &explicit),
            ["NODE_VERSION"]
        );
    }
}
