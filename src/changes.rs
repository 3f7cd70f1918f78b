//! The event rules of DESIGN.md: which commits to compare, and the files
//! that changed between them. The only module that touches git.
//!
//! Renames need no similarity search here: without it git2 reports a rename
//! as a deletion of the old path and an addition of the new one, which is
//! exactly "counts under both paths", and it keeps large diffs cheap.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use git2::{Commit, Oid, Repository};
use serde::Serialize;

use crate::buildargs;
use crate::error::{Error, Result, git};
use crate::manifest::{MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest, Release, Settings};

/// A build event, in ripple's words (Drone's spelling); each backend maps
/// its CI system's events onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A pull request opened or updated.
    PullRequest,
    /// A push to a branch.
    Push,
    /// A tag was pushed.
    Tag,
    /// A deployment promotion.
    Promote,
    /// A deployment rollback.
    Rollback,
    /// A scheduled build.
    Cron,
    /// A build started by hand.
    Custom,
}

impl Event {
    /// Every event, for parsing and help.
    pub const ALL: [Event; 7] = [
        Event::PullRequest,
        Event::Push,
        Event::Tag,
        Event::Promote,
        Event::Rollback,
        Event::Cron,
        Event::Custom,
    ];

    /// The names of `events`: borrowed for one event, as a job's nearly
    /// always is, so that lowering thousands of jobs allocates no list.
    pub fn names(events: &[Event]) -> Cow<'static, [&'static str]> {
        const NAMES: [&str; Event::ALL.len()] = {
            let mut names = [""; Event::ALL.len()];
            let mut k = 0;
            while k < names.len() {
                names[k] = Event::ALL[k].as_str();
                k += 1;
            }
            names
        };
        match events {
            [one] => match Event::ALL.iter().position(|e| e == one) {
                Some(k) => Cow::Borrowed(std::slice::from_ref(&NAMES[k])),
                None => Cow::Owned(vec![one.as_str()]),
            },
            _ => events.iter().map(|e| e.as_str()).collect(),
        }
    }

    /// Its name (`--event`, the JSON output).
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::PullRequest => "pull_request",
            Event::Push => "push",
            Event::Tag => "tag",
            Event::Promote => "promote",
            Event::Rollback => "rollback",
            Event::Cron => "cron",
            Event::Custom => "custom",
        }
    }

    /// Parses its name.
    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the affected set is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// From the files that changed.
    Diff,
    /// Every service: a release, or no diff was possible.
    All,
    /// Nothing runs for this event.
    None,
}

/// What changed, and why these commits were compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    /// The event planned for.
    pub event: Event,
    /// The commit compared against; `None` when no diff was possible.
    pub base: Option<String>,
    /// The commit built.
    pub head: Option<String>,
    /// How the affected set is decided.
    pub mode: Mode,
    /// Why, in one line.
    pub reason: String,
    /// Changed paths, sorted; a rename lists both paths.
    #[serde(rename = "changed")]
    pub paths: Vec<String>,
    /// The base could not be found; said on stderr with the fix.
    #[serde(skip)]
    pub missing_base: Option<String>,
    /// For release tags: the version (tag minus the prefix).
    #[serde(skip)]
    pub version: Option<String>,
    /// For publish pushes: the branch.
    #[serde(skip)]
    pub branch: Option<String>,
    /// For promotions: the target (Drone's `DRONE_DEPLOY_TO`).
    #[serde(skip)]
    pub target: Option<String>,
    /// `--strict`: a release by promotion fails when an image's tested
    /// build is missing, rather than building it.
    #[serde(skip)]
    pub strict: bool,
    /// What `build_args_file`s give and which of their changes count.
    #[serde(skip)]
    pub args: ArgInputs,
}

/// The `build_args_file`s of a change set: a changed one affects a service
/// only through the arguments its Dockerfile declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArgInputs {
    /// Changed paths that are a service's `build_args_file`: they match no
    /// service by path.
    pub files: Vec<String>,
    /// `(service, file, keys)`: the service is directly affected because
    /// these keys' effective values changed (no keys: `--files` listed the
    /// file, with no base to compare).
    pub changed: Vec<(String, String, Vec<String>)>,
    /// Per service, the arguments its file gives at the commit built.
    pub values: BTreeMap<String, BTreeMap<String, String>>,
}

impl ChangeSet {
    /// A diff-mode change set over `paths`, for tests and tools.
    pub fn diff(paths: Vec<String>) -> ChangeSet {
        ChangeSet {
            event: Event::PullRequest,
            base: None,
            head: None,
            mode: Mode::Diff,
            reason: "files changed".into(),
            paths,
            missing_base: None,
            version: None,
            branch: None,
            target: None,
            strict: false,
            args: ArgInputs::default(),
        }
    }

    /// A change set that affects every service, for static files.
    pub fn everything(event: Event, reason: &str) -> ChangeSet {
        ChangeSet {
            mode: Mode::All,
            reason: reason.to_string(),
            event,
            ..ChangeSet::diff(Vec::new())
        }
    }

    fn nothing(event: Event, head: Oid, reason: String) -> ChangeSet {
        ChangeSet {
            event,
            base: None,
            head: Some(head.to_string()),
            mode: Mode::None,
            reason,
            paths: Vec::new(),
            missing_base: None,
            version: None,
            branch: None,
            target: None,
            strict: false,
            args: ArgInputs::default(),
        }
    }
}

/// What a CI system calls each value of a build, for messages that say
/// where a missing one comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Names {
    /// The event.
    pub event: &'static str,
    /// The commit built.
    pub commit_sha: &'static str,
    /// A pull request's target branch.
    pub target_branch: &'static str,
    /// The branch pushed to.
    pub branch: &'static str,
    /// The commit before a push.
    pub before: &'static str,
    /// The tag.
    pub tag: &'static str,
    /// A promotion's target.
    pub deploy_to: &'static str,
}

impl Default for Names {
    /// Outside any CI system: only the flags.
    fn default() -> Names {
        Names {
            event: "the CI system's event",
            commit_sha: "the CI system's commit",
            target_branch: "the CI system's target branch",
            branch: "the CI system's branch",
            before: "the CI system's previous commit",
            tag: "the CI system's tag",
            deploy_to: "the CI system's deployment target",
        }
    }
}

/// What the build is: the CI system's environment or the flags, resolved.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The event; required.
    pub event: Option<Event>,
    /// The commit built; `HEAD` when unset.
    pub head: Option<String>,
    /// An explicit base (`--base`): for pull requests the target branch, for
    /// pushes the commit before.
    pub base: Option<String>,
    /// A pull request's target branch.
    pub target_branch: Option<String>,
    /// The branch pushed to, or the checked-out branch.
    pub branch: Option<String>,
    /// The commit before a push.
    pub before: Option<String>,
    /// The pull request's own commit: recognises a merge checkout.
    pub commit_sha: Option<String>,
    /// The tag of a tag event.
    pub tag: Option<String>,
    /// The target of a promotion.
    pub deploy_to: Option<String>,
    /// Plan every service whatever changed.
    pub all: bool,
    /// Also count uncommitted changes in the work tree (local dry runs).
    pub uncommitted: bool,
    /// Where each value comes from in the CI system, for messages.
    pub names: Names,
}

/// The message that asks for every service.
const ALL_MARKER: &str = "[ripple all]";

/// Finds the commits to compare for `request` and the files changed between them.
pub fn collect(repo: &Repository, settings: &Settings, request: &Request) -> Result<ChangeSet> {
    let event = request.event.ok_or_else(|| Error::Usage {
        message: "no event given".into(),
        hint: Some(format!(
            "pass `--event pull_request|push|tag`, or run inside a CI system ({})",
            request.names.event
        )),
    })?;
    let head_rev = request.head.as_deref().unwrap_or("HEAD");
    let head = resolve(repo, head_rev).ok_or_else(|| {
        crate::error::unknown_revision(
            repo,
            head_rev.to_string(),
            format!("`--head` (or {})", request.names.commit_sha),
        )
    })?;

    let mut changes = match event {
        Event::PullRequest => pull_request(repo, request, &head)?,
        Event::Push => push(repo, settings, request, &head)?,
        Event::Tag => tag(repo, settings, request, &head),
        Event::Promote => promote(settings, request, &head),
        other => ChangeSet::nothing(
            other,
            head.id(),
            format!("`{other}` events run nothing: ripple plans pull requests, pushes and tags"),
        ),
    };
    if changes.mode == Mode::Diff {
        changes.paths = changed_paths(repo, changes.base.as_deref(), &head, request.uncommitted)?;
        let marked = String::from_utf8_lossy(head.message_bytes()).contains(ALL_MARKER);
        if request.all || marked {
            changes.mode = Mode::All;
            changes.reason = if request.all {
                "`--all`: every service".into()
            } else {
                format!("the commit message asks for `{ALL_MARKER}`: every service")
            };
        }
    }
    Ok(changes)
}

fn resolve<'r>(repo: &'r Repository, rev: &str) -> Option<Commit<'r>> {
    repo.revparse_single(rev).ok()?.peel_to_commit().ok()
}

/// A base that could not be found: plan everything and say how to fix it.
fn missing(event: Event, head: &Commit<'_>, reason: String) -> ChangeSet {
    ChangeSet {
        event,
        base: None,
        head: Some(head.id().to_string()),
        mode: Mode::All,
        reason: format!("{reason}: every service"),
        paths: Vec::new(),
        missing_base: Some(reason),
        ..ChangeSet::diff(Vec::new())
    }
}

fn diff_from(event: Event, base: Option<Oid>, head: &Commit<'_>, reason: String) -> ChangeSet {
    ChangeSet {
        event,
        base: base.map(|b| b.to_string()),
        head: Some(head.id().to_string()),
        mode: Mode::Diff,
        reason,
        paths: Vec::new(),
        missing_base: None,
        ..ChangeSet::diff(Vec::new())
    }
}

fn pull_request(repo: &Repository, request: &Request, head: &Commit<'_>) -> Result<ChangeSet> {
    let event = Event::PullRequest;
    // Drone and GitHub check out the merge of the pull request into its
    // target: HEAD's second parent is the pull request's own commit, the
    // first the target.
    if head.parent_count() == 2
        && let (Ok(target), Ok(pr)) = (head.parent_id(0), head.parent_id(1))
        && request
            .commit_sha
            .as_deref()
            .is_some_and(|sha| !sha.is_empty() && pr.to_string().starts_with(sha))
    {
        return Ok(diff_from(
            event,
            Some(target),
            head,
            "merge checkout of the pull request: compared with its first parent, the target \
             branch"
                .into(),
        ));
    }

    let (name, origin) = match (&request.base, &request.target_branch) {
        (Some(base), _) => (base.clone(), "`--base`"),
        (None, Some(target)) if !target.is_empty() => (target.clone(), request.names.target_branch),
        _ => match default_target(repo) {
            Some(found) => (found, "the default branch"),
            None => {
                return Err(Error::Usage {
                    message: "no target branch for the pull request".into(),
                    hint: Some(format!(
                        "pass `--base BRANCH` or set {}",
                        request.names.target_branch
                    )),
                });
            }
        },
    };
    let target = resolve(repo, &format!("refs/remotes/origin/{name}"))
        .or_else(|| resolve(repo, &format!("refs/heads/{name}")))
        .or_else(|| resolve(repo, &name));
    let Some(target) = target else {
        if origin == "`--base`" {
            return Err(crate::error::unknown_revision(repo, name, origin.into()));
        }
        return Ok(missing(
            event,
            head,
            format!("target branch `{name}` ({origin}) is not in this clone"),
        ));
    };
    match repo.merge_base(target.id(), head.id()) {
        Ok(base) => Ok(diff_from(
            event,
            Some(base),
            head,
            format!("pull request: compared with the merge base of HEAD and `{name}`"),
        )),
        Err(err) if err.code() == git2::ErrorCode::NotFound => Ok(missing(
            event,
            head,
            format!("HEAD and `{name}` share no history in this clone"),
        )),
        Err(err) => Err(git(format!("finding the merge base with `{name}`"))(err)),
    }
}

/// For local dry runs without a target: the remote's default branch, else
/// a local `main` or `master`.
pub fn default_target(repo: &Repository) -> Option<String> {
    if let Ok(reference) = repo.find_reference("refs/remotes/origin/HEAD")
        && let Ok(Some(target)) = reference.symbolic_target()
        && let Some(name) = target.strip_prefix("refs/remotes/origin/")
    {
        return Some(name.to_string());
    }
    ["main", "master", "develop"]
        .into_iter()
        .find(|b| {
            repo.find_branch(b, git2::BranchType::Local).is_ok()
                || repo
                    .find_reference(&format!("refs/remotes/origin/{b}"))
                    .is_ok()
        })
        .map(str::to_string)
}

fn push(
    repo: &Repository,
    settings: &Settings,
    request: &Request,
    head: &Commit<'_>,
) -> Result<ChangeSet> {
    let event = Event::Push;
    let branch = request
        .branch
        .clone()
        .filter(|b| !b.is_empty())
        .or_else(|| current_branch(repo, request));
    if let Some(reason) = publishes_nothing(settings, branch.as_deref(), &request.names) {
        return Ok(ChangeSet::nothing(event, head.id(), reason));
    }
    let branch = branch.unwrap_or_default();
    let mut changes = push_base(repo, request, head)?;
    changes.branch = Some(branch);
    Ok(changes)
}

/// Why a push to `branch` publishes nothing, or `None` when it publishes.
fn publishes_nothing(settings: &Settings, branch: Option<&str>, names: &Names) -> Option<String> {
    let Some(branch) = branch else {
        return Some(format!(
            "push to an unknown branch runs nothing (set {} or `--branch`)",
            names.branch
        ));
    };
    if settings.publish_branches.iter().any(|b| b == branch) {
        return None;
    }
    let publish = settings
        .publish_branches
        .iter()
        .map(|b| format!("`{b}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "push to `{branch}` runs nothing: only pushes to {} publish, pull requests test branches",
        if publish.is_empty() {
            "no branch".into()
        } else {
            publish
        }
    ))
}

/// A release tag's change set, or why the tag plans nothing.
fn release(settings: &Settings, tag: &str, head: Option<String>) -> ChangeSet {
    let tag = tag.strip_prefix("refs/tags/").unwrap_or(tag);
    let (mode, reason, version) = match settings.release_tag.release(tag) {
        Ok(version) => (
            Mode::All,
            format!("release tag `{tag}`: every image, version `{version}`"),
            Some(version.to_string()),
        ),
        Err(why) => (Mode::None, format!("{why}: nothing runs"), None),
    };
    ChangeSet {
        event: Event::Tag,
        base: None,
        head,
        mode,
        reason,
        paths: Vec::new(),
        missing_base: None,
        version,
        ..ChangeSet::diff(Vec::new())
    }
}

/// `--files`: the change set for exactly `paths`, with the event's rules
/// and no git (no base, no head).
pub fn from_files(settings: &Settings, request: &Request, paths: Vec<String>) -> Result<ChangeSet> {
    let event = request.event.ok_or_else(|| Error::Usage {
        message: "no event given".into(),
        hint: Some("pass `--event pull_request|push|tag`".into()),
    })?;
    let mut changes = ChangeSet {
        event,
        reason: format!("{event}: the files given with `--files`"),
        ..ChangeSet::diff(Vec::new())
    };
    match event {
        Event::PullRequest => {}
        Event::Push => match publishes_nothing(settings, request.branch.as_deref(), &request.names)
        {
            Some(reason) => {
                return Ok(ChangeSet {
                    mode: Mode::None,
                    reason,
                    ..changes
                });
            }
            None => changes.branch = request.branch.clone(),
        },
        Event::Tag => {
            return Ok(match request.tag.as_deref().filter(|t| !t.is_empty()) {
                Some(tag) => release(settings, tag, None),
                None => ChangeSet {
                    mode: Mode::None,
                    reason: format!(
                        "tag event without a tag runs nothing (set {} or `--tag`)",
                        request.names.tag
                    ),
                    ..changes
                },
            });
        }
        other => {
            return Ok(ChangeSet {
                mode: Mode::None,
                reason: format!("a {other} build runs nothing"),
                ..changes
            });
        }
    }
    let mut paths = paths;
    paths.sort_unstable();
    paths.dedup();
    changes.paths = paths;
    Ok(changes)
}

fn current_branch(repo: &Repository, request: &Request) -> Option<String> {
    if request.head.as_deref().is_some_and(|h| h != "HEAD") {
        return None;
    }
    let head = repo.head().ok()?;
    head.is_branch()
        .then(|| head.shorthand().ok().map(str::to_string))?
}

fn push_base(repo: &Repository, request: &Request, head: &Commit<'_>) -> Result<ChangeSet> {
    let event = Event::Push;
    if let Some(base) = &request.base {
        let commit = resolve(repo, base)
            .ok_or_else(|| crate::error::unknown_revision(repo, base.clone(), "`--base`".into()))?;
        return Ok(diff_from(
            event,
            Some(commit.id()),
            head,
            format!("push: compared with `--base {base}`"),
        ));
    }
    if head.parent_count() >= 2 {
        let first = head
            .parent_id(0)
            .map_err(git("reading the merge's first parent"))?;
        return Ok(diff_from(
            event,
            Some(first),
            head,
            "merge commit: compared with its first parent".into(),
        ));
    }
    let before = request
        .before
        .as_deref()
        .filter(|b| !b.is_empty() && !b.bytes().all(|c| c == b'0'));
    let Some(before) = before else {
        if head.parent_count() == 0 {
            return Ok(diff_from(
                event,
                None,
                head,
                "initial commit: every file is new".into(),
            ));
        }
        return Ok(missing(
            event,
            head,
            format!(
                "the commit before this push is unknown (a new branch, or {} unset)",
                request.names.before
            ),
        ));
    };
    let Some(before_commit) = resolve(repo, before) else {
        return Ok(missing(
            event,
            head,
            if repo.is_shallow() {
                format!("the commit before this push, `{before}`, is not in this shallow clone")
            } else {
                format!("the commit before this push, `{before}`, is not in this repository")
            },
        ));
    };
    let id = before_commit.id();
    let is_ancestor = id == head.id()
        || repo
            .graph_descendant_of(head.id(), id)
            .map_err(git("checking ancestry of the commit before the push"))?;
    if !is_ancestor {
        return Ok(missing(
            event,
            head,
            format!(
                "the commit before this push, `{before}`, is not an ancestor of HEAD (force push?)"
            ),
        ));
    }
    Ok(diff_from(
        event,
        Some(id),
        head,
        "push: compared with the commit before the push".into(),
    ))
}

fn tag(repo: &Repository, settings: &Settings, request: &Request, head: &Commit<'_>) -> ChangeSet {
    let event = Event::Tag;
    let given = request.tag.clone().filter(|t| !t.is_empty());
    // Locally, without a tag given: a release tag on the head commit.
    let Some(tag) = given.or_else(|| release_tag_at(repo, settings, head.id())) else {
        return ChangeSet::nothing(
            event,
            head.id(),
            format!(
                "tag event without a tag runs nothing (set {} or `--tag`)",
                request.names.tag
            ),
        );
    };
    release(settings, &tag, Some(head.id().to_string()))
}

/// A promotion (Drone's `promote` event): with `release = "promote"`,
/// every image's tested build of the commit is retagged as the target.
fn promote(settings: &Settings, request: &Request, head: &Commit<'_>) -> ChangeSet {
    let event = Event::Promote;
    if settings.release != Release::Promote {
        return ChangeSet::nothing(
            event,
            head.id(),
            "`promote` events run nothing unless `[settings] release = \"promote\"`".into(),
        );
    }
    let Some(target) = request.deploy_to.clone().filter(|t| !t.is_empty()) else {
        return ChangeSet::nothing(
            event,
            head.id(),
            format!(
                "promote event without a target runs nothing (set {} or `--deploy-to`)",
                request.names.deploy_to
            ),
        );
    };
    ChangeSet {
        event,
        head: Some(head.id().to_string()),
        mode: Mode::All,
        reason: format!("promotion to `{target}`: every image's tested build"),
        target: Some(target),
        ..ChangeSet::diff(Vec::new())
    }
}

/// The manifest as committed at `rev`: bare repositories have no work tree.
pub fn manifest_at(repo: &Repository, rev: &str) -> Result<String> {
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| crate::error::unknown_revision(repo, rev.to_string(), "`--head`".into()))?;
    let tree = commit.tree().map_err(git("reading the head tree"))?;
    let shown = PathBuf::from(format!("{rev}:{MANIFEST_FILE}"));
    let entry = tree
        .get_path(Path::new(MANIFEST_FILE))
        .map_err(|_| Error::ManifestRead {
            path: shown.clone(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
            explicit: false,
        })?;
    // A committed link is not followed: its blob is the target's name.
    if entry.kind() != Some(git2::ObjectType::Blob) || entry.filemode() == 0o120000 {
        return Err(Error::ManifestRefused {
            path: shown,
            reason: "it is not a regular file in that commit".into(),
        });
    }
    let blob = repo
        .find_blob(entry.id())
        .map_err(git("reading the manifest blob"))?;
    if blob.size() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::ManifestRefused {
            path: shown,
            reason: format!(
                "it is {} bytes long; at most {MAX_MANIFEST_BYTES} are read",
                blob.size()
            ),
        });
    }
    Ok(String::from_utf8_lossy(blob.content()).into_owned())
}

/// How many times `--deepen` fetches before giving up; the depth doubles
/// each time from [`DEEPEN_START`], so the last fetch asks for 6,400 commits.
const DEEPEN_ROUNDS: u32 = 8;
const DEEPEN_START: u32 = 50;

/// `--deepen`: while the base is missing, fetch more history from `origin`
/// and look again. Uses the `git` command, which made the shallow clone:
/// libgit2's shallow support does not cover every transport.
pub fn deepen(
    repo: &Repository,
    settings: &Settings,
    request: &Request,
    mut changes: ChangeSet,
    log: &mut dyn std::io::Write,
) -> Result<ChangeSet> {
    let dir = repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf();
    let target = (request.event == Some(Event::PullRequest))
        .then(|| {
            request
                .base
                .clone()
                .or_else(|| request.target_branch.clone())
        })
        .flatten()
        .filter(|t| git2::Reference::is_valid_name(&format!("refs/heads/{t}")));
    let mut depth = DEEPEN_START;
    for _ in 0..DEEPEN_ROUNDS {
        if changes.missing_base.is_none() {
            break;
        }
        let shallow = Repository::open(repo.path()).is_ok_and(|r| r.is_shallow());
        if !shallow && target.is_none() {
            break; // a complete clone: more history does not exist
        }
        let mut command = std::process::Command::new("git");
        // stdout carries ripple's data; git's chatter belongs on stderr.
        command.arg("-C").arg(&dir).args(["fetch", "--quiet"]);
        command.stdout(std::process::Stdio::null());
        if shallow {
            command.arg(format!("--deepen={depth}"));
        }
        command.arg("origin");
        if let Some(target) = &target {
            command.arg(format!("+refs/heads/{target}:refs/remotes/origin/{target}"));
            if shallow {
                // The default refspec too, so the checked-out branch deepens.
                command.arg("+refs/heads/*:refs/remotes/origin/*");
            }
        }
        let _ = writeln!(
            log,
            "ripple: fetching more history (depth +{depth}) to find the base"
        );
        let status = command.status().map_err(|source| Error::Io {
            action: "run `git fetch` in",
            path: dir.clone(),
            source,
        })?;
        if !status.success() {
            return Err(Error::Git {
                action: format!("`git fetch --deepen={depth} origin` in `{}`", dir.display()),
                source: git2::Error::from_str(&format!("git exited with {status}")),
            });
        }
        // A fresh handle: libgit2 caches the shallow boundary it opened with.
        let reopened = Repository::open(repo.path()).map_err(git("reopening the repository"))?;
        changes = collect(&reopened, settings, request)?;
        if !shallow {
            break;
        }
        depth *= 2;
    }
    Ok(changes)
}

/// The first release tag (by name) that points at `head`.
fn release_tag_at(repo: &Repository, settings: &Settings, head: Oid) -> Option<String> {
    let mut names: Vec<String> = repo
        .references_glob("refs/tags/*")
        .ok()?
        .filter_map(|r| r.ok())
        .filter(|r| r.peel_to_commit().is_ok_and(|c| c.id() == head))
        .map(|r| String::from_utf8_lossy(r.shorthand_bytes()).into_owned())
        .filter(|name| settings.release_tag.version(name).is_some())
        .collect();
    names.sort_unstable();
    names.into_iter().next()
}

/// Reads every `build_args_file` at the commit built (its values, for the
/// build) and, for one that changed, at the base too: the service is
/// affected only when an argument its Dockerfile declares (at base or head)
/// and `build_args` does not override was added, removed or changed.
pub fn read_build_args(repo: &Repository, manifest: &Manifest, changes: &mut ChangeSet) {
    let readers = manifest.with_build_args_file().filter_map(|service| {
        let build = service.build.as_ref()?;
        let file = build.extras().build_args_file.as_deref()?;
        Some((service, build, file))
    });
    // Most manifests have none: then no commit is looked up (which would
    // map the pack indexes on this thread for nothing).
    let mut readers = readers.peekable();
    if readers.peek().is_none() {
        return;
    }
    let tree_of = |rev: Option<&str>| {
        let oid = Oid::from_str(rev?).ok()?;
        repo.find_commit(oid).ok()?.tree().ok()
    };
    let Some(head) = tree_of(changes.head.as_deref()) else {
        return;
    };
    let base = tree_of(changes.base.as_deref());
    let text = |tree: &git2::Tree<'_>, path: &str| -> Option<String> {
        let entry = tree.get_path(Path::new(path)).ok()?;
        let blob = repo.find_blob(entry.id()).ok()?;
        Some(String::from_utf8_lossy(blob.content()).into_owned())
    };
    // Many images share one `.env`: read and parse each file once per side.
    type Parsed = BTreeMap<String, String>;
    let mut parsed: BTreeMap<(String, bool), Parsed> = BTreeMap::new();
    let mut dotenv = |file: &str, at_base: bool| -> Parsed {
        let tree = if at_base { base.as_ref() } else { Some(&head) };
        parsed
            .entry((file.to_string(), at_base))
            .or_insert_with(|| {
                tree.and_then(|t| text(t, file))
                    .map(|t| buildargs::parse_dotenv(&t))
                    .unwrap_or_default()
            })
            .clone()
    };
    for (service, build, file) in readers {
        let head_values = dotenv(file, false);
        let mut declared =
            buildargs::declared_args(&text(&head, &build.dockerfile).unwrap_or_default());
        changes.args.values.insert(
            service.name.to_string(),
            buildargs::from_file(&head_values, &declared, &build.extras().build_args),
        );
        if changes.mode != Mode::Diff
            || changes
                .paths
                .binary_search_by(|p| p.as_str().cmp(file))
                .is_err()
        {
            continue;
        }
        if !changes.args.files.iter().any(|f| f == file) {
            changes.args.files.push(file.to_string());
        }
        let base_values = dotenv(file, true);
        if let Some(tree) = &base {
            declared.extend(buildargs::declared_args(
                &text(tree, &build.dockerfile).unwrap_or_default(),
            ));
        }
        let keys = buildargs::changed_keys(
            &base_values,
            &head_values,
            &declared,
            &build.extras().build_args,
        );
        if !keys.is_empty() {
            changes
                .args
                .changed
                .push((service.name.to_string(), file.to_string(), keys));
        }
    }
}

/// `--files`: a listed `build_args_file` (no base to compare) affects every
/// service that reads it.
pub fn listed_build_args(manifest: &Manifest, changes: &mut ChangeSet) {
    for service in &manifest.services {
        let Some(file) = service
            .build
            .as_ref()
            .and_then(|b| b.extras().build_args_file.as_deref())
        else {
            continue;
        };
        if changes.mode == Mode::Diff && changes.paths.iter().any(|p| p == file) {
            if !changes.args.files.iter().any(|f| f == file) {
                changes.args.files.push(file.to_string());
            }
            changes
                .args
                .changed
                .push((service.name.to_string(), file.to_string(), Vec::new()));
        }
    }
}

/// Paths changed from `base` (the empty tree when `None`) to `head`, both
/// sides of every delta, sorted.
fn changed_paths(
    repo: &Repository,
    base: Option<&str>,
    head: &Commit<'_>,
    uncommitted: bool,
) -> Result<Vec<String>> {
    let base_tree = match base {
        Some(base) => {
            let oid = Oid::from_str(base).map_err(git("parsing the base id"))?;
            let commit = repo
                .find_commit(oid)
                .map_err(git("reading the base commit"))?;
            Some(commit.tree().map_err(git("reading the base tree"))?)
        }
        None => None,
    };
    let head_tree = head.tree().map_err(git("reading the head tree"))?;
    let mut paths = Vec::new();
    let mut prefix = Vec::new();
    diff_trees(
        repo,
        base_tree.as_ref(),
        Some(&head_tree),
        &mut prefix,
        &mut paths,
    )
    .map_err(git("diffing base and head"))?;
    let mut paths: BTreeSet<String> = paths.into_iter().collect();
    if uncommitted {
        if repo.is_bare() {
            return Err(Error::Usage {
                message: "`--uncommitted` needs a work tree, and this repository is bare".into(),
                hint: None,
            });
        }
        let mut options = git2::DiffOptions::new();
        options.include_untracked(true).recurse_untracked_dirs(true);
        let diff = repo
            .diff_tree_to_workdir_with_index(Some(&head_tree), Some(&mut options))
            .map_err(git("diffing the work tree"))?;
        collect_delta_paths(&diff, &mut paths);
    }
    Ok(paths.into_iter().collect())
}

/// Every path that differs between two trees (`None`: empty), appended to
/// `out` as `prefix` + name. Subtrees with the same id on both sides are
/// skipped without being read, so the cost follows the size of the change,
/// not of the repository; libgit2's tree diff reads every subtree.
fn diff_trees(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    prefix: &mut Vec<u8>,
    out: &mut Vec<String>,
) -> std::result::Result<(), git2::Error> {
    let mut old_entries = old.map(|t| t.iter()).into_iter().flatten().peekable();
    let mut new_entries = new.map(|t| t.iter()).into_iter().flatten().peekable();
    loop {
        let order = match (old_entries.peek(), new_entries.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => git_order(a, b),
        };
        let (a, b) = match order {
            std::cmp::Ordering::Less => (old_entries.next(), None),
            std::cmp::Ordering::Greater => (None, new_entries.next()),
            std::cmp::Ordering::Equal => (old_entries.next(), new_entries.next()),
        };
        let entry = match (&a, &b) {
            (Some(a), Some(b)) if a.id() == b.id() && a.filemode() == b.filemode() => continue,
            (Some(entry), _) | (None, Some(entry)) => entry,
            (None, None) => return Ok(()),
        };
        let depth = prefix.len();
        prefix.extend_from_slice(entry.name_bytes());
        if is_tree(entry) {
            let subtree = |e: &Option<git2::TreeEntry<'_>>| {
                e.as_ref().map(|e| repo.find_tree(e.id())).transpose()
            };
            let (old_sub, new_sub) = (subtree(&a)?, subtree(&b)?);
            prefix.push(b'/');
            diff_trees(repo, old_sub.as_ref(), new_sub.as_ref(), prefix, out)?;
        } else {
            out.push(String::from_utf8_lossy(prefix).into_owned());
        }
        prefix.truncate(depth);
    }
}

fn is_tree(entry: &git2::TreeEntry<'_>) -> bool {
    entry.kind() == Some(git2::ObjectType::Tree)
}

/// Git's order of tree entries: by name, a tree's name read with a
/// trailing `/`. Entries of one name but different types are different
/// entries here (a file replaced by a directory lists both sides).
fn git_order(a: &git2::TreeEntry<'_>, b: &git2::TreeEntry<'_>) -> std::cmp::Ordering {
    let (an, bn) = (a.name_bytes(), b.name_bytes());
    let common = an.len().min(bn.len());
    an[..common].cmp(&bn[..common]).then_with(|| {
        // Past the common part one name has ended: it continues with `/`
        // when it is a tree, and an ended name sorts first.
        let next = |name: &[u8], tree: bool| name.get(common).copied().or(tree.then_some(b'/'));
        next(an, is_tree(a)).cmp(&next(bn, is_tree(b)))
    })
}

fn collect_delta_paths(diff: &git2::Diff<'_>, paths: &mut BTreeSet<String>) {
    for delta in diff.deltas() {
        for file in [delta.old_file(), delta.new_file()] {
            if let Some(path) = file.path_bytes() {
                paths.insert(String::from_utf8_lossy(path).into_owned());
            }
        }
    }
}

/// Every file in the tree of `rev`, sorted: for `ripple check`.
pub fn tracked_files(repo: &Repository, rev: &str) -> Result<Vec<String>> {
    Ok(entries_at(repo, rev)?.into_iter().map(|e| e.path).collect())
}

/// One entry of a commit's tree that is not a directory.
struct TreeEntry {
    path: String,
    id: Oid,
    mode: i32,
}

/// Every entry of the tree of `rev` but directories (blobs, links and
/// submodules), sorted by path: one walk of the tree.
fn entries_at(repo: &Repository, rev: &str) -> Result<Vec<TreeEntry>> {
    let commit = resolve(repo, rev)
        .ok_or_else(|| crate::error::unknown_revision(repo, rev.to_string(), "`--head`".into()))?;
    let tree = commit.tree().map_err(git("reading the tree"))?;
    let mut entries = Vec::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() != Some(git2::ObjectType::Tree) {
            let name = String::from_utf8_lossy(entry.name_bytes());
            entries.push(TreeEntry {
                path: format!("{dir}{name}"),
                id: entry.id(),
                mode: entry.filemode(),
            });
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(git("walking the tree"))?;
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// The tracked files of `rev` with their object ids, sorted by path: what
/// input hashes are computed from.
pub fn inputs_at(repo: &Repository, rev: &str) -> Result<Vec<crate::input::TrackedFile>> {
    Ok(entries_at(repo, rev)?
        .into_iter()
        .map(|e| crate::input::TrackedFile {
            path: e.path,
            id: e.id.as_bytes().to_vec(),
        })
        .collect())
}

/// The repository's tag names, sorted.
pub fn tag_names(repo: &Repository) -> Vec<String> {
    let mut names: Vec<String> = repo
        .tag_names(None)
        .map(|tags| {
            tags.iter()
                .flatten()
                .flatten()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    names
}

/// The files of `rev` with a reader of their contents, for discovery:
/// blobs only (not submodules), read from git objects, never the work
/// tree.
pub fn files_at<'r>(repo: &'r Repository, rev: &str) -> Result<crate::discover::Files<'r>> {
    let entries = entries_at(repo, rev)?;
    // Sized once, and hashed by Fx: SipHash and growing the table were a
    // tenth of `sync` at 20,000 services (400,000 files).
    let mut blobs: rustc_hash::FxHashMap<String, Oid> =
        rustc_hash::FxHashMap::with_capacity_and_hasher(entries.len(), Default::default());
    // In the entries' order, which is sorted: the map's keys are not, and
    // sorting 400,000 paths again compared their long common prefixes.
    let paths: Vec<String> = (entries.into_iter())
        .filter(|e| e.mode & 0o170000 == 0o100000)
        .map(|e| {
            blobs.insert(e.path.clone(), e.id);
            e.path
        })
        .collect();
    Ok(crate::discover::Files {
        paths,
        read: Box::new(move |path| {
            let id = blobs.get(path)?;
            repo.find_blob(*id).ok().map(|blob| blob.content().to_vec())
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_names_itself_without_a_list() {
        for event in Event::ALL {
            let names = Event::names(&[event]);
            assert!(matches!(names, Cow::Borrowed(_)), "{event:?}");
            assert_eq!(*names, [event.as_str()]);
        }
        let both = Event::names(&[Event::Tag, Event::PullRequest]);
        assert_eq!(*both, ["tag", "pull_request"]);
        assert!(Event::names(&[]).is_empty());
    }

    /// A bare repository (`serve`'s mirror) has no work tree: a committed
    /// link must not be read as the manifest either.
    #[test]
    fn a_committed_link_is_not_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let link = repo.blob(b"/proc/self/environ").unwrap();
        let mut tree = repo.treebuilder(None).unwrap();
        tree.insert(MANIFEST_FILE, link, 0o120000).unwrap();
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let who = git2::Signature::now("t", "t@example.org").unwrap();
        repo.commit(Some("HEAD"), &who, &who, "link", &tree, &[])
            .unwrap();
        match manifest_at(&repo, "HEAD") {
            Err(Error::ManifestRefused { reason, .. }) => {
                assert!(reason.contains("not a regular file"), "{reason}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    use crate::fixture::RepoBuilder;

    /// libgit2's own tree diff: the reference `diff_trees` must agree with.
    fn libgit2_paths(repo: &Repository, old: &git2::Tree<'_>, new: &git2::Tree<'_>) -> Vec<String> {
        let diff = repo.diff_tree_to_tree(Some(old), Some(new), None).unwrap();
        let mut paths = BTreeSet::new();
        collect_delta_paths(&diff, &mut paths);
        paths.into_iter().collect()
    }

    fn ours(repo: &Repository, old: Option<&git2::Tree<'_>>, new: &git2::Tree<'_>) -> Vec<String> {
        let mut paths = Vec::new();
        diff_trees(repo, old, Some(new), &mut Vec::new(), &mut paths).unwrap();
        paths.sort();
        paths.dedup();
        paths
    }

    #[test]
    fn tree_diff_agrees_with_libgit2() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = RepoBuilder::init(dir.path()).unwrap();
        for path in [
            "a/b/c.txt",
            "a/b/d.txt",
            "x.txt",
            "foo",
            "dir/file",
            "exec.sh",
            "a.b",
            "a-b",
            "a0",
            "same/deep/tree/file",
            "z/keep",
        ] {
            b.write(path, path);
        }
        let base = b.commit("base").unwrap();
        b.write("a/b/c.txt", "changed")
            .remove("a/b/d.txt")
            .write("a/new/e.txt", "new")
            .rename("x.txt", "y/x.txt")
            .remove("foo")
            .write("foo/bar", "file became a directory")
            .remove("dir/file")
            .write("dir", "directory became a file")
            .write("a.b", "changed too");
        use std::os::unix::fs::PermissionsExt;
        let exec = dir.path().join("exec.sh");
        std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o755)).unwrap();
        let head = b.commit("head").unwrap();

        let repo = b.repo();
        let tree = |id| repo.find_commit(id).unwrap().tree().unwrap();
        let (old, new) = (tree(base), tree(head));
        let expected = libgit2_paths(repo, &old, &new);
        assert_eq!(ours(repo, Some(&old), &new), expected);
        assert_eq!(
            expected,
            [
                "a.b",
                "a/b/c.txt",
                "a/b/d.txt",
                "a/new/e.txt",
                "dir",
                "dir/file",
                "exec.sh",
                "foo",
                "foo/bar",
                "x.txt",
                "y/x.txt"
            ]
        );
        // Against the empty tree: every file.
        let all = ours(repo, None, &new);
        assert_eq!(all.len(), 11);
        assert!(all.contains(&"same/deep/tree/file".to_string()));
    }
}
