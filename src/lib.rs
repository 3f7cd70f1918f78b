//! ripple plans CI work for a monorepo: which services a change affects, and
//! the Drone configuration that builds and tests exactly those.
#![warn(missing_docs)]

pub mod manifest;
pub mod pattern;
