//! `serve`'s mirrors: one bare repository per clone URL under
//! `--data-dir/mirrors`, fetched in a child process that is killed at its
//! deadline (libgit2's fetch has no timeout of its own), and moved aside and
//! cloned again when git cannot use it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use git2::Repository;

/// The exit status of `ripple mirror-fetch` when the mirror itself is
/// damaged (as opposed to an origin that cannot be reached).
pub const EXIT_DAMAGED: i32 = 10;

/// The exit status of `ripple mirror-fetch` for any other failure.
pub const EXIT_FAILED: i32 = 11;

/// How a fetch went.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The refs asked for are in the mirror.
    Done,
    /// The origin failed or did not answer in time: plan from what the
    /// mirror holds. The text says why, for the log.
    Failed(String),
    /// git cannot use the mirror: move it aside and start again.
    Damaged(String),
}

/// Whether a libgit2 error means the repository's own files are bad
/// (objects, refs, packs, config), not the network or the origin.
pub fn is_damage(error: &git2::Error) -> bool {
    use git2::ErrorClass as C;
    matches!(
        error.class(),
        C::Odb
            | C::Object
            | C::Reference
            | C::Repository
            | C::Zlib
            | C::Index
            | C::Tree
            | C::Config
    )
}

/// Opens the bare mirror at `path`, creating it when there is none. A
/// mirror git cannot open (a file in its place, a broken `HEAD` or config)
/// is moved aside first and the returned text says so.
pub fn open_or_create(path: &Path) -> Result<(Repository, Option<String>), git2::Error> {
    match Repository::open_bare(path) {
        Ok(repo) => Ok((repo, None)),
        // Nothing there at all (not even a dangling link): a first build.
        Err(_) if std::fs::symlink_metadata(path).is_err() => {
            Ok((Repository::init_bare(path)?, None))
        }
        Err(error) => {
            let note = move_aside(path, error.message());
            Ok((Repository::init_bare(path)?, Some(note)))
        }
    }
}

/// Moves a damaged mirror out of the way (kept beside the others, for a
/// look) and says so in a line for the log.
pub fn move_aside(path: &Path, why: &str) -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".damaged-{seconds}-{}", std::process::id()));
    let aside = PathBuf::from(aside);
    let moved = std::fs::rename(path, &aside).or_else(|_| {
        // A second damage in the same second: the earlier copy is enough.
        if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        }
    });
    match moved {
        Ok(()) => format!(
            "mirror `{}` is damaged ({why}); moved it to `{}` and cloning again",
            path.display(),
            aside.display()
        ),
        Err(e) => format!(
            "mirror `{}` is damaged ({why}) and could not be moved aside: {e}",
            path.display()
        ),
    }
}

/// Fetches `refspecs` from `url` into the mirror at `path` in a child
/// process (`ripple mirror-fetch`), killed if it is still running at
/// `deadline`. Credentials reach the child through its environment.
pub async fn fetch(
    path: &Path,
    url: &str,
    refspecs: &[String],
    credentials: Option<&(String, String)>,
    deadline: Instant,
) -> Fetched {
    let Ok(program) = std::env::current_exe() else {
        return Fetched::Failed("cannot find the ripple binary to fetch with".into());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .arg("mirror-fetch")
        .arg(path)
        .arg(url)
        .args(refspecs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("RIPPLE_GIT_USERNAME")
        .env_remove("RIPPLE_GIT_PASSWORD")
        .kill_on_drop(true);
    if let Some((user, password)) = credentials {
        command
            .env("RIPPLE_GIT_USERNAME", user)
            .env("RIPPLE_GIT_PASSWORD", password);
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Fetched::Failed(format!("cannot start a fetch: {e}")),
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, child.wait_with_output()).await {
        Err(_) => Fetched::Failed(format!(
            "no answer from the origin within {:.0} s; the fetch was stopped",
            left.as_secs_f64()
        )),
        Ok(Err(e)) => Fetched::Failed(format!("the fetch process failed: {e}")),
        Ok(Ok(output)) => {
            let message = String::from_utf8_lossy(&output.stderr);
            let message: String = message.trim().chars().take(300).collect();
            match output.status.code() {
                Some(0) => Fetched::Done,
                Some(EXIT_DAMAGED) => Fetched::Damaged(message),
                _ => Fetched::Failed(message),
            }
        }
    }
}

/// `ripple mirror-fetch DIR URL REFSPEC...`: what [`fetch`] runs. Returns
/// the exit status.
pub fn fetch_here(path: &Path, url: &str, refspecs: &[String]) -> i32 {
    match fetch_now(path, url, refspecs) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("{}", error.message());
            if is_damage(&error) {
                EXIT_DAMAGED
            } else {
                EXIT_FAILED
            }
        }
    }
}

fn fetch_now(path: &Path, url: &str, refspecs: &[String]) -> Result<(), git2::Error> {
    let repo = Repository::open_bare(path)?;
    let mut remote = repo.remote_anonymous(url)?;
    let mut callbacks = git2::RemoteCallbacks::new();
    let credentials = std::env::var("RIPPLE_GIT_USERNAME")
        .ok()
        .zip(std::env::var("RIPPLE_GIT_PASSWORD").ok());
    if let Some((user, password)) = credentials {
        callbacks.credentials(move |_, _, _| git2::Cred::userpass_plaintext(&user, &password));
    }
    let mut options = git2::FetchOptions::new();
    options.remote_callbacks(callbacks);
    remote.fetch(refspecs, Some(&mut options), None)
}

/// Why git cannot use `repo`, when a look at its refs finds out: each ref
/// must resolve to an object that can be read.
pub fn damage_of(repo: &Repository) -> Option<String> {
    let references = match repo.references() {
        Ok(references) => references,
        Err(e) => return Some(e.message().to_string()),
    };
    for reference in references {
        let target = reference.and_then(|r| r.resolve()).map(|r| r.target());
        match target {
            Ok(Some(id)) => {
                if let Err(e) = repo.find_object(id, None) {
                    return Some(e.message().to_string());
                }
            }
            Ok(None) => {}
            Err(e) => return Some(e.message().to_string()),
        }
    }
    None
}

/// The least time worth starting a fetch with: below it, plan from what
/// the mirror holds.
pub const MIN_FETCH_TIME: Duration = Duration::from_secs(1);
