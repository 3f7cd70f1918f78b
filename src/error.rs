//! The one error type, its exit codes and its hints.

use std::path::PathBuf;

use crate::manifest::ManifestError;

/// Exit codes, a documented contract like the JSON output.
pub mod exit {
    /// Success, an empty plan included.
    pub const OK: u8 = 0;
    /// Input the user must fix: manifest, revision, `--strict` without a base.
    pub const USER: u8 = 1;
    /// Usage error (clap's own code).
    pub const USAGE: u8 = 2;
    /// git or I/O failure.
    pub const ENVIRONMENT: u8 = 3;
    /// A bug in ripple, such as a template that fails to render.
    pub const INTERNAL: u8 = 4;
    /// `promote --else-build` promoted: the build that follows is skipped
    /// (Drone skips the rest of a pipeline on 78; other CI systems test
    /// the status).
    pub const PROMOTED: u8 = 78;
}

/// Everything that can stop ripple, each with what the user needs to act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest has problems; each is located.
    #[error(transparent)]
    Manifest(#[from] ManifestError),

    /// The manifest file could not be read.
    #[error("cannot read manifest `{}`", path.display())]
    ManifestRead {
        /// Where we looked.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
        /// Named with `--manifest` (else the default place).
        explicit: bool,
    },

    /// The manifest is something ripple will not read: a link out of the
    /// repository, a device, a FIFO, a file over the size limit.
    #[error("refusing to read manifest `{}`: {reason}", path.display())]
    ManifestRefused {
        /// Where we looked.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },

    /// A revision the user named does not exist.
    #[error("unknown revision `{rev}`")]
    Revision {
        /// As the user wrote it.
        rev: String,
        /// Where it came from (flag or variable).
        origin: String,
        /// The clone is shallow, so the commit may exist but not be here.
        shallow: bool,
    },

    /// No repository where ripple looked.
    #[error("no git repository at `{}` or any directory above it", dir.display())]
    NoRepository {
        /// Where ripple started looking.
        dir: PathBuf,
    },

    /// `--strict` and the base of the diff could not be found.
    #[error("no base to diff against: {reason}")]
    NoBase {
        /// Why not, and what to do.
        reason: String,
        /// What to do about it: it depends on the event and the clone.
        hint: String,
    },

    /// A command named a service the manifest does not have.
    #[error("unknown service `{name}`")]
    UnknownService {
        /// As given.
        name: String,
        /// The services there are.
        known: Vec<String>,
    },

    /// Input that is not valid for the command, beyond what clap checks.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },

    /// `generate --check`: the file differs from what ripple would write.
    #[error("`{}` is stale: it is not what `ripple generate` writes", path.display())]
    Stale {
        /// The file checked.
        path: PathBuf,
    },

    /// `sync --check`: the manifest's `discovered` keys are stale.
    #[error("`{}` is stale: its `discovered` keys are not what the code states", path.display())]
    Unsynced {
        /// The manifest.
        path: PathBuf,
    },

    /// A registry refused a request, or could not be reached.
    #[error("{message}")]
    Registry {
        /// What failed, and the registry's answer.
        message: String,
        /// What to do about it.
        hint: Option<String>,
        /// Down, limiting or failing, rather than refusing this request.
        unreachable: bool,
    },

    /// `ripple slot`: the slots server refused, could not be reached, or
    /// no slot came free in time.
    #[error("{message}")]
    Slot {
        /// What failed.
        message: String,
        /// What to do about it.
        hint: Option<String>,
        /// The exit status.
        exit: u8,
    },

    /// `ripple promote`: the tag to promote from is not in the registry.
    #[error("`{image}:{tag}` is not in the registry")]
    NotPromoted {
        /// The image repository.
        image: String,
        /// The missing tag.
        tag: String,
    },

    /// git failed.
    #[error("git: {action}")]
    Git {
        /// What ripple was doing.
        action: String,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },

    /// A file could not be read or written.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What ripple was doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },

    /// A network command (`serve`, `promote`, `slots`, `slot`, `gate
    /// --promote`'s promotion) could not be handed to `ripple-net`, the
    /// binary beside `ripple` that runs them.
    #[error("cannot run `{}`, which runs ripple's network commands", path.display())]
    Network {
        /// Where `ripple-net` was looked for.
        path: PathBuf,
        /// Why it could not be run.
        #[source]
        source: std::io::Error,
    },

    /// A template failed to load or render.
    #[error("template `{name}` failed")]
    Template {
        /// The template.
        name: String,
        /// minijinja's error.
        #[source]
        source: minijinja::Error,
    },
}

impl Error {
    /// The message and its causes on one line, each said once: `cannot read
    /// manifest `x`: no such file or directory`.
    pub fn report(&self) -> String {
        let mut line = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            line.push_str(": ");
            line.push_str(&describe(error));
            // minijinja's alternate form already holds its own causes.
            cause = match error.downcast_ref::<minijinja::Error>() {
                Some(_) => None,
                None => error.source(),
            };
        }
        line
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Manifest(_)
            | Error::Revision { .. }
            | Error::NoBase { .. }
            | Error::UnknownService { .. }
            | Error::ManifestRefused { .. }
            | Error::Stale { .. }
            | Error::Unsynced { .. }
            | Error::NotPromoted { .. }
            | Error::Registry {
                unreachable: false, ..
            } => exit::USER,
            Error::Registry { .. } => exit::ENVIRONMENT,
            Error::Slot { exit, .. } => *exit,
            Error::ManifestRead { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                exit::USER
            }
            Error::Usage { .. } => exit::USAGE,
            Error::ManifestRead { .. }
            | Error::NoRepository { .. }
            | Error::Git { .. }
            | Error::Io { .. }
            | Error::Network { .. } => exit::ENVIRONMENT,
            Error::Template { .. } => exit::INTERNAL,
        }
    }

    /// What the user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Manifest(_) => None,
            Error::ManifestRead { explicit: true, .. } => {
                Some("check the path given to `--manifest`".into())
            }
            Error::ManifestRead { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Some(
                    "create `services.toml` at the repository root, or pass `--manifest FILE`"
                        .into(),
                )
            }
            Error::ManifestRead { .. } => None,
            Error::ManifestRefused { .. } => {
                Some("commit `services.toml` as a regular file, or pass `--manifest FILE`".into())
            }
            Error::Revision {
                origin, shallow, ..
            } => Some(if *shallow {
                format!(
                    "check {origin}; this clone is shallow, so the commit may only be missing \
                     here: fetch more history (`--deepen`, or `git fetch --deepen=50`)"
                )
            } else {
                format!("check {origin}")
            }),
            Error::NoRepository { .. } => {
                Some("run ripple inside a repository, or pass `--repo DIR`".into())
            }
            Error::NoBase { hint, .. } => {
                Some(format!("{hint}, or drop `--strict` to plan every service"))
            }
            Error::UnknownService { known, .. } => Some(format!(
                "known services are {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Error::Usage { hint, .. } => hint.clone(),
            Error::Stale { path } => Some(format!(
                "run `ripple generate --output {}` and commit the result; the diff is above",
                path.display()
            )),
            Error::Unsynced { .. } => {
                Some("run `ripple sync` and commit the manifest; the diff is above".into())
            }
            Error::Registry { hint, .. } | Error::Slot { hint, .. } => hint.clone(),
            Error::NotPromoted { .. } => Some(
                "a publish push tags each image it builds `in-<hash>` (with `release = \"promote\"`); \
                 push the commit to a publish branch first, or pass `--else-build` to build instead"
                    .into(),
            ),
            Error::Git { .. } => None,
            Error::Io { .. } => None,
            Error::Network { .. } => Some(
                "`serve`, `promote`, `slots`, `slot` and `gate --promote`'s promotion run in \
                 `ripple-net`, installed beside `ripple`: `cargo install` installs both, and the \
                 Dockerfile copies both"
                    .into(),
            ),
            Error::Template { .. } => Some(
                "if you use `--templates`, check that template; otherwise this is a bug in \
                 ripple, please report it"
                    .into(),
            ),
        }
    }
}

/// Shorthand used throughout.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A cause as a person reads it: an I/O error without "(os error 2)",
/// libgit2's message without its class and code, minijinja's with where in
/// the template it failed.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        io_reason(io)
    } else if let Some(git) = error.downcast_ref::<git2::Error>() {
        git.message().to_string()
    } else if let Some(template) = error.downcast_ref::<minijinja::Error>() {
        format!("{template:#}")
    } else {
        error.to_string()
    }
}

/// An I/O error as a person reads it: without "(os error 2)".
fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_lowercase(),
        None => text,
    }
}

/// A revision that does not resolve, saying whether the clone is shallow.
pub fn unknown_revision(repo: &git2::Repository, rev: String, origin: String) -> Error {
    Error::Revision {
        rev,
        origin,
        shallow: repo.is_shallow(),
    }
}

/// Wraps a git2 error with what ripple was doing.
pub fn git(action: impl Into<String>) -> impl FnOnce(git2::Error) -> Error {
    let action = action.into();
    move |source| Error::Git { action, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once_after_what_failed() {
        let io = Error::Io {
            action: "read",
            path: PathBuf::from("a.txt"),
            source: std::io::Error::from_raw_os_error(2),
        };
        assert_eq!(io.to_string(), "cannot read `a.txt`");
        assert_eq!(
            io.report(),
            "cannot read `a.txt`: no such file or directory"
        );

        let git = Error::Git {
            action: "opening the repository".into(),
            source: git2::Error::new(
                git2::ErrorCode::NotFound,
                git2::ErrorClass::Repository,
                "could not find repository",
            ),
        };
        assert_eq!(
            git.report(),
            "git: opening the repository: could not find repository"
        );

        let mut env = minijinja::Environment::new();
        let failure = env
            .add_template("t", "{{ x.y.z }}")
            .and_then(|()| env.get_template("t")?.render(()))
            .map(|_| ())
            .unwrap_err();
        let template = Error::Template {
            name: "t".into(),
            source: failure,
        };
        let report = template.report();
        assert!(report.starts_with("template `t` failed: "), "{report}");
        assert_eq!(report.matches("template `t` failed").count(), 1, "{report}");
    }
}
