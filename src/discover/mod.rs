//! Dependency discovery: the edges the code itself states (a Dockerfile's
//! `FROM`, a Go import, ...), read from a repository's files at one
//! commit, each with where it was found. One source a module, all behind
//! [`Source`]. Pure: the files come in as [`Files`], read by the caller.

/// The sources, by the name `[settings] discover` and `discovered` use.
pub const SOURCES: &[&str] = &["docker", "go", "npm", "cargo", "python"];

/// Whether `name` is a source.
pub fn is_source(name: &str) -> bool {
    SOURCES.contains(&name)
}
