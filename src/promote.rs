//! `ripple promote`: gives an image that was built and tested the tags of
//! a release, through the registry, without building it again. `latest`
//! only moves forward in the history.

use std::io::Write;

use crate::error::{Error, Result};
use crate::registry::{self, Manifest, Repository};

/// What to promote.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The image repository (`registry.example.org/team/app`).
    pub image: &'a str,
    /// The tag of the tested build (`in-<hash>`).
    pub from: &'a str,
    /// The tags it gets.
    pub to: &'a [String],
    /// When `from` is missing, say so and succeed, so that a build follows.
    pub else_build: bool,
}

/// How it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The tags point at the tested build (`latest` perhaps left where it
    /// was, and said why).
    Promoted {
        /// The digest every moved tag now names.
        digest: String,
    },
    /// `--else-build` and `from` is missing: the image is to be built.
    Build,
}

/// Promotes `request.image`; `history` tells whether `latest` moves
/// forward (the repository the images were built from, when at hand).
pub fn promote(
    request: &Request<'_>,
    settings: &registry::Settings,
    history: Option<&git2::Repository>,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let repo = Repository::open(request.image, settings)?;
    repo.authenticate()?;
    let name = repo.name().to_string();
    let Some(source) = repo.get(request.from)? else {
        if request.else_build {
            let _ = writeln!(
                err,
                "ripple promote: WARNING: `{name}:{}` is not in the registry: no publish push \
                 built these inputs, so this release BUILDS `{name}` instead of promoting a \
                 tested image",
                request.from
            );
            return Ok(Outcome::Build);
        }
        return Err(Error::NotPromoted {
            image: name,
            tag: request.from.to_string(),
        });
    };
    let mut moved = Vec::new();
    for tag in request.to {
        let current = repo.get(tag)?;
        if current.as_ref().is_some_and(|c| c.digest == source.digest) {
            let _ = writeln!(
                err,
                "ripple promote: `{name}:{tag}` is already {}",
                source.digest
            );
            continue;
        }
        if tag == "latest"
            && let Some(current) = &current
            && let Some(why) = backwards(&repo, &source, current, history)?
        {
            let _ = writeln!(
                err,
                "ripple promote: `{name}:latest` stays at {}: {why}",
                current.digest
            );
            continue;
        }
        repo.put(tag, &source)?;
        moved.push(tag.as_str());
    }
    if !moved.is_empty() {
        let _ = writeln!(
            err,
            "ripple promote: `{name}:{}` ({}{}) is now tagged {}",
            request.from,
            source.digest,
            if source.is_index() { ", an index" } else { "" },
            moved
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Outcome::Promoted {
        digest: source.digest,
    })
}

/// Why moving `latest` from `current` to `new` would go backwards, when
/// both images name the commit they were built from; `None`: it may move.
fn backwards(
    repo: &Repository,
    new: &Manifest,
    current: &Manifest,
    history: Option<&git2::Repository>,
) -> Result<Option<String>> {
    let (Some(new_rev), Some(current_rev)) = (repo.revision(new)?, repo.revision(current)?) else {
        return Ok(None);
    };
    if new_rev == current_rev {
        return Ok(None);
    }
    let short = |rev: &str| rev.chars().take(12).collect::<String>();
    let Some(git) = history else {
        return Ok(Some(format!(
            "no repository to tell whether {} comes after {} (run ripple inside the repository)",
            short(&new_rev),
            short(&current_rev)
        )));
    };
    let commit = |rev: &str| {
        git2::Oid::from_str(rev)
            .ok()
            .filter(|oid| git.find_commit(*oid).is_ok())
    };
    match (commit(&new_rev), commit(&current_rev)) {
        (Some(new), Some(current)) => Ok((!git.graph_descendant_of(new, current).unwrap_or(false))
            .then(|| {
                format!(
                    "its image was built from {}, which {} does not descend from",
                    short(&current_rev),
                    short(&new_rev)
                )
            })),
        (new, _) => Ok(Some(format!(
            "commit {} is not in this clone, so ripple cannot tell whether it comes first \
             (fetch more history)",
            short(if new.is_none() {
                &new_rev
            } else {
                &current_rev
            })
        ))),
    }
}
