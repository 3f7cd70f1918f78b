//! ripple plans CI work for a monorepo: which services a change affects, and
//! the CI configuration (Drone, Woodpecker, GitLab CI, GitHub Actions) that
//! builds and tests exactly those.
//!
//! The stages, each a module with plain data in and out:
//! `manifest` → `changes` (git) → `graph` → `plan` → `backend`.
#![warn(missing_docs)]

pub mod app; // runs a command line: the I/O edge
pub mod arena; // the allocator: regions for what lives until exit
pub mod backend; // CI systems: environment, lowering, escaping, templates
pub mod binary; // both binaries' `main`; `ripple` hands network commands to `ripple-net`
pub mod buildargs; // build arguments from a dotenv file, as the Dockerfile declares them
pub mod bytes; // sixteen bytes compared at once (SSE2), for the hot loops
pub mod changes; // which commits to compare, and what changed (git2)
pub mod check; // `ripple check`: names the commit does not have
pub mod cli; // clap types only
pub mod demo; // `ripple demo`
pub mod discover; // edges the code states: Dockerfiles, imports, package files
pub mod error; // the error type, exit codes, hints
// Deterministic git repositories for demo, tests and benchmarks; in the
// public API only for ripple's own tests (feature `testutil`).
#[cfg(feature = "testutil")]
pub mod fixture;
#[cfg(not(feature = "testutil"))]
pub(crate) mod fixture;
pub mod graph; // matcher and dependency graph: the affected set
#[cfg(feature = "server")]
pub mod history; // `ripple serve`'s record of what it answered
pub mod init; // `ripple init`: a first manifest guessed from the files
pub mod input; // input hashes: what each image is made of
pub mod manifest; // services.toml → Manifest, every problem located
pub mod output; // a document's destination: stdout, or a file put in place whole
pub mod parallel; // work split between two threads, in order
pub mod pattern; // the one path-pattern rule
pub mod plan; // affected set + event → jobs, no CI system named
#[cfg(feature = "registry")]
pub mod promote; // `ripple promote`: retag a tested build
#[cfg(feature = "registry")]
pub mod registry; // `ripple promote`: a registry's HTTP API v2
pub mod render; // reports → JSON, text, DOT, Mermaid
#[cfg(feature = "server")]
pub mod serve; // Drone's and Woodpecker's configuration extensions
#[cfg(feature = "server")]
pub mod signature; // Drone's and Woodpecker's request signatures, verified
// Requests signed as Drone and Woodpecker sign them, for tests and benchmarks.
#[cfg(all(feature = "server", any(test, feature = "testutil")))]
pub mod signed;
#[cfg(feature = "server")]
pub mod slots; // environment slots: `ripple slots serve`, `ripple slot`
pub mod sync; // `ripple sync`: discovered edges into the manifest, layout kept
#[cfg(feature = "testutil")]
pub mod synth; // synthetic monorepos for benchmarks
pub mod tags; // Docker tag templates

pub use app::{Io, run};

#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena;
