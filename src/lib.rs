//! ripple plans CI work for a monorepo: which services a change affects, and
//! the Drone configuration that builds and tests exactly those.
//!
//! The stages, each a module with plain data in and out:
//! `manifest` → `changes` (git) → `graph` → `plan` → `render`.
#![warn(missing_docs)]

pub mod app;
pub mod changes;
pub mod cli;
pub mod demo;
pub mod error;
pub mod fixture;
pub mod graph;
pub mod history;
pub mod manifest;
pub mod pattern;
pub mod plan;
pub mod render;
pub mod serve;
pub mod signature;
pub mod synth;

pub use app::{Io, run};
