//! `go`: a non-test `.go` file imports a package whose non-test `.go`
//! files another service owns. Every `go.mod` is a module root (its
//! `replace` directives to local paths too); in GOPATH-style trees with no
//! module around a file, an import names the longest suffix of its path
//! that is a directory of the repository holding `.go` files; an import
//! that resolves into a `vendor/` directory maps to that directory's
//! owner. Build constraints are ignored (every file counts), and
//! `testdata/` and directories starting with `_` or `.` are skipped, as Go
//! does. A file is read only up to its first declaration.

use std::collections::{BTreeMap, HashMap};

use super::{Found, Repo, Source, join, split};

/// The go source.
pub struct Go;

impl Source for Go {
    fn name(&self) -> &'static str {
        "go"
    }

    fn discover(&self, repo: &Repo<'_>, found: &mut Found) {
        let Some(tree) = GoTree::new(repo) else {
            return;
        };
        let mut owners_of: HashMap<&str, Vec<usize>> = HashMap::new();
        for (dir, files) in &tree.packages {
            if dir.split('/').any(|part| part == "vendor") {
                continue; // vendored code states its own vendor's edges
            }
            for file in files {
                let Some(text) = repo.text(file) else {
                    continue;
                };
                // The file's owners are looked up once, for all its imports.
                let owners = repo.owners(file);
                for import in imports(&text) {
                    let Some(target) = tree.resolve(&import, dir) else {
                        continue;
                    };
                    if target == *dir {
                        continue;
                    }
                    let targets = owners_of
                        .entry(target)
                        .or_insert_with(|| tree.owners(repo, target));
                    found.link_owned(&owners, &[], file, targets, "go", "import");
                }
            }
        }
    }
}

/// The Go packages of a repository: where they are, and the modules that
/// name them.
pub struct GoTree<'r> {
    /// Package directory -> its non-test `.go` files.
    packages: BTreeMap<&'r str, Vec<&'r str>>,
    /// Module path (or local `replace`) -> its directory.
    modules: HashMap<String, String>,
    /// Module roots, deepest first.
    roots: Vec<&'r str>,
}

impl<'r> GoTree<'r> {
    /// `None` when the repository has no Go package.
    pub fn new(repo: &Repo<'r>) -> Option<GoTree<'r>> {
        let mut packages: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut module_files = Vec::new();
        for path in &repo.files.paths {
            let (dir, name) = split(path);
            if name == "go.mod" {
                module_files.push((dir, path.as_str()));
            }
            if name.ends_with(".go") && !name.ends_with("_test.go") && !skipped(dir) {
                packages.entry(dir).or_default().push(path);
            }
        }
        if packages.is_empty() {
            return None;
        }
        let mut modules: HashMap<String, String> = HashMap::new();
        let mut roots: Vec<&str> = Vec::new();
        for (dir, file) in module_files {
            let Some(text) = repo.text(file) else {
                continue;
            };
            let (module, replaces) = read_go_mod(&text);
            if let Some(module) = module {
                modules.insert(module, dir.to_string());
                roots.push(dir);
            }
            for (path, target) in replaces {
                if let Some(target) = join(dir, &target) {
                    modules.entry(path).or_insert(target);
                }
            }
        }
        roots.sort_by_key(|r| std::cmp::Reverse(r.len()));
        Some(GoTree {
            packages,
            modules,
            roots,
        })
    }

    /// The package directory that `import`, written in directory `from`,
    /// names, when it is in the repository.
    pub fn resolve(&self, import: &str, from: &str) -> Option<&str> {
        let root = self
            .roots
            .iter()
            .find(|r| r.is_empty() || from == **r || from.starts_with(&format!("{r}/")))
            .copied();
        resolve(import, root, &self.modules, &self.packages)
    }

    /// The services owning a package's files.
    pub fn owners(&self, repo: &Repo<'_>, package: &str) -> Vec<usize> {
        let mut owners: Vec<usize> = self
            .packages
            .get(package)
            .into_iter()
            .flatten()
            .flat_map(|f| repo.owners(f))
            .collect();
        owners.sort_unstable();
        owners.dedup();
        owners
    }
}

/// Go skips `testdata` and directories starting with `_` or `.`.
fn skipped(dir: &str) -> bool {
    dir.split('/')
        .any(|part| part == "testdata" || part.starts_with('_') || part.starts_with('.'))
}

/// The package directory an import path names, if it is in the
/// repository.
fn resolve<'p>(
    import: &str,
    root: Option<&str>,
    modules: &HashMap<String, String>,
    packages: &'p BTreeMap<&str, Vec<&str>>,
) -> Option<&'p str> {
    let package = |dir: &str| packages.get_key_value(dir).map(|(k, _)| *k);
    if let Some(root) = root {
        let vendored = if root.is_empty() {
            format!("vendor/{import}")
        } else {
            format!("{root}/vendor/{import}")
        };
        if let Some(dir) = package(&vendored) {
            return Some(dir);
        }
    }
    // The longest module path the import lies under.
    let mut best: Option<(&str, &str)> = None;
    for (module, dir) in modules {
        let rest = if import == module {
            Some("")
        } else {
            import
                .strip_prefix(module.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        if let Some(rest) = rest
            && best.is_none_or(|(m, _)| m.len() < module.len())
        {
            best = Some((module, dir));
            let target = match (dir.as_str(), rest) {
                (d, "") => d.to_string(),
                ("", r) => r.to_string(),
                (d, r) => format!("{d}/{r}"),
            };
            if let Some(found) = package(&target) {
                return Some(found);
            }
        }
    }
    if root.is_some() && best.is_some() {
        return None;
    }
    // GOPATH style: the longest suffix of the import path that is a
    // package directory.
    let mut rest = import;
    loop {
        if let Some(found) = package(rest) {
            return Some(found);
        }
        rest = rest.split_once('/')?.1;
    }
}

/// A go.mod's module path and its `replace`s to local directories.
fn read_go_mod(text: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut module = None;
    let mut replaces = Vec::new();
    let mut in_replace_block = false;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if in_replace_block {
            if line == ")" {
                in_replace_block = false;
            } else {
                replaces.extend(replace(line));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("module ") {
            module = Some(unquote(rest.trim()).to_string());
        } else if let Some(rest) = line.strip_prefix("replace") {
            let rest = rest.trim();
            if rest == "(" {
                in_replace_block = true;
            } else {
                replaces.extend(replace(rest));
            }
        }
    }
    (module, replaces)
}

/// `path [version] => ./local`: the path and the local directory.
fn replace(line: &str) -> Option<(String, String)> {
    let (from, to) = line.split_once("=>")?;
    let from = unquote(from.split_whitespace().next()?);
    let to = unquote(to.split_whitespace().next()?);
    (to.starts_with("./") || to.starts_with("../") || to == "." || to == "..")
        .then(|| (from.to_string(), to.to_string()))
}

fn unquote(text: &str) -> &str {
    text.trim_matches(|c| c == '"' || c == '`')
}

/// The import paths of a Go file: the import declarations after the
/// package clause, up to the first other declaration.
pub fn imports(text: &str) -> Vec<String> {
    let mut tokens = Tokens { text, at: 0 };
    let mut found = Vec::new();
    // `package name`
    if tokens.next().as_deref() != Some("package") {
        return found;
    }
    tokens.next();
    loop {
        match tokens.next().as_deref() {
            Some("import") => {}
            Some(";") => continue,
            _ => return found,
        }
        match tokens.next() {
            Some(token) if token == "(" => loop {
                match tokens.next() {
                    None => return found,
                    Some(token) if token == ")" => break,
                    Some(token) => {
                        if let Some(path) = string(&token) {
                            found.push(path);
                        }
                    }
                }
            },
            Some(token) => {
                // `import "x"` or `import alias "x"`.
                match string(&token) {
                    Some(path) => found.push(path),
                    None => {
                        if let Some(path) = tokens.next().as_deref().and_then(string) {
                            found.push(path);
                        }
                    }
                }
            }
            None => return found,
        }
    }
}

/// The contents of a Go string literal token.
fn string(token: &str) -> Option<String> {
    let inner = token
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| token.strip_prefix('`').and_then(|t| t.strip_suffix('`')))?;
    Some(inner.replace("\\\\", "\\"))
}

/// Just enough of Go's lexer for import declarations: identifiers,
/// strings, parentheses and `;`; comments skipped.
struct Tokens<'a> {
    text: &'a str,
    at: usize,
}

impl Tokens<'_> {
    fn next(&mut self) -> Option<String> {
        let bytes = self.text.as_bytes();
        loop {
            while self.at < bytes.len() && bytes[self.at].is_ascii_whitespace() {
                self.at += 1;
            }
            let rest = &self.text[self.at..];
            if rest.starts_with("//") {
                self.at += rest.find('\n').unwrap_or(rest.len());
            } else if rest.starts_with("/*") {
                self.at += rest.find("*/").map_or(rest.len(), |end| end + 2);
            } else {
                break;
            }
        }
        let rest = &self.text[self.at..];
        let first = rest.chars().next()?;
        let length = match first {
            '"' => {
                let mut escaped = false;
                let mut end = None;
                for (i, c) in rest.char_indices().skip(1) {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(i + 1);
                            break;
                        }
                        (false, '\n') => break,
                        _ => {}
                    }
                }
                end?
            }
            '`' => rest[1..].find('`')? + 2,
            '(' | ')' | ';' | '.' => 1,
            c if c.is_alphanumeric() || c == '_' => rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len()),
            c => c.len_utf8(),
        };
        let token = rest[..length].to_string();
        self.at += length;
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_read_up_to_the_first_declaration() {
        let text = r#"// Package x does things.
package main // trailing

import "fmt"
import alias "example.org/a/b"
import (
	// a comment
	"example.org/c"
	_ "example.org/d" /* block */
	. "example.org/e"
	f `example.org/f`
)

func main() { import_ := "example.org/not" ; _ = import_ }
"#;
        assert_eq!(
            imports(text),
            [
                "fmt",
                "example.org/a/b",
                "example.org/c",
                "example.org/d",
                "example.org/e",
                "example.org/f"
            ]
        );
        assert!(imports("not go").is_empty());
        assert!(imports("package x\nfunc f() {}\nimport \"late\"").is_empty());
    }

    #[test]
    fn go_mod_gives_the_module_and_local_replaces() {
        let text = "module example.org/mono/api // the api\n\ngo 1.22\n\nreplace example.org/x => ../x\nreplace (\n\texample.org/y v1.0.0 => ./y\n\texample.org/z => example.org/z v1.2.3\n)\n";
        let (module, replaces) = read_go_mod(text);
        assert_eq!(module.as_deref(), Some("example.org/mono/api"));
        assert_eq!(
            replaces,
            [
                ("example.org/x".to_string(), "../x".to_string()),
                ("example.org/y".to_string(), "./y".to_string())
            ]
        );
    }
}
