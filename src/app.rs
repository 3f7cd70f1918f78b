//! Runs a parsed command line: resolves the arguments, does the I/O at the
//! edges (repository, manifest file, templates, output file) and hands
//! plain data to the pure stages.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use git2::Repository;

use crate::arena::Kept;
use crate::backend::{self, Backend, OutputValue, Rendered, Templates, Vars};
use crate::changes::manifest_at;
use crate::changes::{self, ChangeSet, Event, Request};
use crate::cli::{self, Args, BuildArgs, Command};
use crate::error::{Error, Result, exit, git};
use crate::graph::{Affected, AffectedSet, ServiceGraph, Why};
use crate::input;
use crate::manifest::{self, MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest};
use crate::output::{Output, write_atomically};
use crate::plan;
use crate::render::{self, Report};

/// Where output goes: data to `out`, diagnostics to `err`.
pub struct Io<'a> {
    /// Data.
    pub out: &'a mut dyn Write,
    /// Warnings and explanations.
    pub err: &'a mut dyn Write,
}

/// Runs one command, network commands included; on success, the exit
/// code (0, or 78 from `gate`). What `ripple-net` runs.
pub fn run(args: Args, io: Io<'_>) -> Result<u8> {
    dispatch(args, io, network_here)
}

/// Runs one of the planner's commands, handing the promotion of `gate
/// --promote` to `ripple-net` (see [`crate::binary`]). What `ripple`
/// runs: nothing it calls reaches the network commands' code, so its
/// binary holds none of it.
// Without the registry, nothing is handed on from `gate`.
#[cfg_attr(not(feature = "registry"), allow(unused_variables))]
pub fn run_planner(args: Args, io: Io<'_>) -> Result<u8> {
    // The network commands were handed on as typed (`binary::main`);
    // what is left to hand on is the promotion `gate --promote` makes.
    dispatch(args, io, |command, workspace, _, _| match command {
        #[cfg(feature = "registry")]
        Command::Promote(promote) => crate::binary::hand_to_network(Some(
            crate::binary::promote_arguments(&promote, workspace.repo.as_deref()),
        )),
        _ => unreachable!("`binary::main` hands network commands on before `dispatch`"),
    })
}

/// Runs a planner's command here, and a network command with `network`.
fn dispatch(
    args: Args,
    io: Io<'_>,
    network: impl FnOnce(Command, &Workspace, &mut dyn Write, &mut dyn Write) -> Result<u8>,
) -> Result<u8> {
    let Args {
        command,
        manifest,
        repo,
        templates,
        timings,
        ci,
    } = args;
    let workspace = Workspace {
        manifest,
        repo,
        templates,
        ci,
        timings: RefCell::new(Timings::new(timings)),
    };
    let Io { out, err } = io;
    let result = match command {
        Command::Plan(a) => cmd_plan(&workspace, a, out, &mut *err).map(|()| exit::OK),
        Command::Affected(a) => cmd_affected(&workspace, a, out, &mut *err).map(|()| exit::OK),
        Command::Explain(a) => cmd_explain(&workspace, a, out, &mut *err).map(|()| exit::OK),
        Command::Gate(a) => cmd_gate(&workspace, a, out, &mut *err, network),
        Command::Generate(a) => cmd_generate(&workspace, a, out),
        Command::Graph(a) => cmd_graph(&workspace, a, out).map(|()| exit::OK),
        Command::Check(a) => cmd_check(&workspace, a, out, &mut *err),
        Command::Sync(a) => cmd_sync(&workspace, a, out, &mut *err),
        Command::Init(a) => cmd_init(&workspace, a, &mut *err).map(|()| exit::OK),
        Command::Demo(a) => crate::demo::run(a.dir.as_deref(), out).map(|()| exit::OK),
        // Without the network features, every command is the planner's.
        #[allow(unreachable_patterns)]
        command => network(command, &workspace, out, &mut *err),
    };
    workspace.timings.borrow().report(err);
    result
}

/// Runs a network command here: in `ripple-net`, or in tests.
// Without the network features only the last arm is left, using nothing.
#[cfg_attr(
    not(all(feature = "server", feature = "registry")),
    allow(unused_variables)
)]
fn network_here(
    command: Command,
    workspace: &Workspace,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    match command {
        #[cfg(feature = "server")]
        Command::Serve(a) => crate::serve::command(workspace.ci.as_deref(), a).map(|()| exit::OK),
        #[cfg(feature = "server")]
        Command::MirrorFetch(a) => {
            Ok(crate::serve::mirror::fetch_here(&a.mirror, &a.url, &a.refspecs) as u8)
        }
        #[cfg(feature = "registry")]
        Command::Promote(a) => cmd_promote(workspace, a, err),
        #[cfg(feature = "server")]
        Command::Slots(a) => crate::slots::command::slots(a),
        #[cfg(feature = "server")]
        Command::Slot(a) => crate::slots::command::slot(a, out, err),
        _ => unreachable!("`dispatch` hands on network commands only"),
    }
}

/// `--timings`: how long each stage took, so a slow CI step can be read.
struct Timings {
    enabled: bool,
    start: Instant,
    last: Instant,
    stages: Vec<(&'static str, Duration)>,
}

impl Timings {
    fn new(enabled: bool) -> Timings {
        let now = Instant::now();
        Timings {
            enabled,
            start: now,
            last: now,
            stages: Vec::new(),
        }
    }

    /// Ends the stage `name`, which started when the previous one ended.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.stages.push((name, now - self.last));
        self.last = now;
    }

    fn report(&self, err: &mut dyn Write) {
        if !self.enabled {
            return;
        }
        let ms = |d: Duration| format!("{:.1}ms", d.as_secs_f64() * 1000.0);
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|(name, d)| format!("{name} {}", ms(*d)))
            .collect();
        let _ = writeln!(
            err,
            "timings: {}; total {}",
            stages.join(", "),
            ms(self.start.elapsed())
        );
    }
}

/// The shared options, before anything is opened.
struct Workspace {
    manifest: Option<PathBuf>,
    repo: Option<PathBuf>,
    templates: Option<PathBuf>,
    /// `--ci`.
    ci: Option<String>,
    timings: RefCell<Timings>,
}

impl Workspace {
    fn lap(&self, stage: &'static str) {
        self.timings.borrow_mut().lap(stage);
    }

    fn open_repo(&self) -> Result<Repository> {
        // Reads only: re-hashing every object read costs more than the rest of
        // the git work, and git itself does not do it either.
        git2::opts::strict_hash_verification(false);
        let dir = self.repo.clone().unwrap_or_else(|| PathBuf::from("."));
        let repo = Repository::discover(&dir).map_err(|source| match source.code() {
            git2::ErrorCode::NotFound => Error::NoRepository { dir: dir.clone() },
            _ => Error::Git {
                action: format!("opening the repository at `{}`", dir.display()),
                source,
            },
        })?;
        // Without a `config` (as some mirrors are) libgit2 cannot tell a
        // bare repository and takes the parent folder for its work tree.
        // A linked work tree (`git worktree add`) keeps its `config` in the
        // common directory, not its own.
        if repo.workdir().is_some() && !repo.commondir().join("config").exists() {
            let flags = git2::RepositoryOpenFlags::BARE | git2::RepositoryOpenFlags::NO_SEARCH;
            return Repository::open_ext(
                repo.path(),
                flags,
                std::iter::empty::<&std::ffi::OsStr>(),
            )
            .map_err(git(format!(
                "opening `{}` as a bare repository",
                repo.path().display()
            )));
        }
        Ok(repo)
    }

    /// Reads and validates the manifest: from `--manifest`, else from the
    /// work tree, else (bare repository) from the head commit.
    fn manifest(&self, repo: Option<&Repository>, head: &str) -> Result<Manifest> {
        self.with_manifest(repo, head, |text, shown| {
            Ok(Manifest::parse_text(text, shown)?)
        })
    }

    /// The manifest's text and the name it is shown by: for checks that
    /// locate findings in it.
    fn manifest_source(&self, repo: &Repository, head: &str) -> Result<(String, String)> {
        self.with_manifest(Some(repo), head, |text, shown| {
            Ok((text.to_string(), shown.to_string()))
        })
    }

    /// Runs `read` on the manifest's text and shown name: from `--manifest`,
    /// else from the work tree, else (bare repository) from the head commit.
    fn with_manifest<T>(
        &self,
        repo: Option<&Repository>,
        head: &str,
        read: impl FnOnce(&manifest::Text<'_>, &str) -> Result<T>,
    ) -> Result<T> {
        if let Some(path) = &self.manifest {
            let shown = path.display().to_string();
            return read_manifest(path, None, |text| read(text, &shown));
        }
        let repo = match repo {
            Some(repo) => repo,
            None => &self.open_repo()?,
        };
        match repo.workdir() {
            Some(dir) => read_manifest(&dir.join(MANIFEST_FILE), Some(dir), |text| {
                read(text, MANIFEST_FILE)
            }),
            None => read(
                &manifest::Text::new(&manifest_at(repo, head)?),
                &format!("{head}:{MANIFEST_FILE}"),
            ),
        }
    }

    /// The manifest file `command` writes: `--manifest`, else the one at
    /// the root of the work tree (a bare repository has none).
    fn manifest_to_write(&self, repo: &Repository, command: &str) -> Result<PathBuf> {
        match (&self.manifest, repo.workdir()) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(dir)) => Ok(dir.join(MANIFEST_FILE)),
            (None, None) => Err(Error::Usage {
                message: "a bare repository has no work tree to write a manifest into".into(),
                hint: Some(format!(
                    "run `ripple {command}` in a clone, or pass `--manifest FILE`"
                )),
            }),
        }
    }

    /// The CI system planned for: `--ci`, else `[settings] ci`, else the
    /// one whose environment this is, else the first backend (Drone).
    fn backend(&self, manifest: &Manifest) -> &'static dyn Backend {
        self.backend_for(&manifest.settings)
    }

    /// [`Workspace::backend`] from the settings alone.
    fn backend_for(&self, settings: &manifest::Settings) -> &'static dyn Backend {
        self.ci
            .as_deref()
            .or(settings.ci.as_deref())
            .and_then(backend::by_name)
            .or_else(|| backend::detect(&Vars::process()))
            .unwrap_or_else(backend::default)
    }

    /// `backend`'s templates, each replaced by a file of the same name in
    /// `--templates DIR/<ci>/` or `DIR/`.
    fn templates(&self, backend: &dyn Backend) -> Result<Templates> {
        let mut overrides = Vec::new();
        if let Some(dir) = &self.templates {
            for (name, _) in backend.templates() {
                let own = dir.join(backend.name()).join(name);
                let path = if own.exists() { own } else { dir.join(name) };
                if path.exists() {
                    overrides.push((name.to_string(), read_file(&path)?));
                }
            }
        }
        backend.load(overrides)
    }
}

/// Files at least this large are mapped rather than read.
const MAP_AT_BYTES: u64 = 256 * 1024;

/// Runs `parse` on the manifest file's text. The file is read only when it
/// is a regular file of at most [`MAX_MANIFEST_BYTES`]; when `inside` is the
/// work tree it came from, a symbolic link must stay inside it. A committed
/// link to `/proc/self/environ` would otherwise print the environment as the
/// excerpt of a TOML error, `/dev/zero` would be read until memory ran out,
/// and a FIFO would hang.
///
/// A large manifest is mapped rather than copied: copying 1.5 MB into fresh
/// memory costs a page fault per 4 KiB, while mapping shares the pages the
/// system already caches.
fn read_manifest<T>(
    path: &Path,
    inside: Option<&Path>,
    parse: impl FnOnce(&manifest::Text<'_>) -> Result<T>,
) -> Result<T> {
    let failed = |source| Error::ManifestRead {
        path: path.to_path_buf(),
        source,
        explicit: inside.is_none(),
    };
    let refused = |reason: String| Error::ManifestRefused {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(root) = inside
        && std::fs::symlink_metadata(path)
            .map_err(failed)?
            .is_symlink()
    {
        let target = std::fs::canonicalize(path).map_err(failed)?;
        let root = std::fs::canonicalize(root).map_err(failed)?;
        if !target.starts_with(&root) {
            return Err(refused(format!(
                "it is a symbolic link to `{}`, outside the repository",
                target.display()
            )));
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading waits for a writer; non-blocking, it
    // opens at once and is refused below.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let mut file = options.open(path).map_err(failed)?;
    let metadata = file.metadata().map_err(failed)?;
    if !metadata.is_file() {
        return Err(refused(format!(
            "it is {}, not a regular file",
            file_kind(&metadata)
        )));
    }
    if metadata.len() > MAX_MANIFEST_BYTES {
        return Err(refused(format!(
            "it is {} bytes long; at most {MAX_MANIFEST_BYTES} are read",
            metadata.len()
        )));
    }
    if metadata.len() < MAP_AT_BYTES {
        // Bounded: files under /proc say they are empty and are not.
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut file, MAX_MANIFEST_BYTES + 1),
            &mut bytes,
        )
        .map_err(failed)?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(refused(format!(
                "it holds more than {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| failed(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        return match crate::arena::leak(text) {
            Ok(kept) => {
                crate::arena::note_kept(kept);
                parse(&manifest::Text::new(kept))
            }
            Err(text) => parse(&manifest::Text::new(&text)),
        };
    }
    // SAFETY: the map is read while this function runs and dropped before
    // it returns, or, in a command that runs once, kept (with the values
    // read from it) until the process exits, a moment later. Were another
    // process to truncate the file meanwhile, this process could be
    // stopped by SIGBUS; ripple reads a checked-out file nobody edits
    // during a CI step, and a read could as well see a half-written file.
    // Not populated: the two halves' pages are mapped by the threads that
    // check them, at once (the kernel maps the neighbours of a page that
    // faults, 16 at a time), where populating took one thread most of a
    // millisecond at 20,000 services.
    let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(failed)?;
    let invalid = |e| failed(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
    // Kept mapped until the process exits, when it runs once: unmapping
    // 6 MB of mapped pages took most of a millisecond, and what is read
    // from the text may then refer to it rather than copy it.
    match crate::arena::leak(map) {
        Ok(map) => {
            let text = manifest::Text::check(map).map_err(invalid)?;
            crate::arena::note_kept(text.as_str());
            parse(&text)
        }
        Err(map) => parse(&manifest::Text::check(&map).map_err(invalid)?),
    }
}

/// What a file that is not a regular file is, for a message.
fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let kind = metadata.file_type();
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if metadata.is_dir() {
        "a directory"
    } else {
        "something else"
    }
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Whether ripple runs inside a CI system: there a missing event is an
/// error; elsewhere it is a local dry run.
fn in_ci(vars: &Vars<'_>) -> bool {
    backend::detect(vars).is_some() || vars.is_true("CI")
}

/// The request the flags and the CI system's environment describe (flags
/// win), and whether it is a local dry run (no event, not in CI: a pull
/// request of the current branch, counting work-tree files unless `--head`
/// or `--committed-only` says otherwise, as `nx affected` does).
fn request_of(
    backend: &dyn Backend,
    build: &BuildArgs,
    vars: &Vars<'_>,
) -> Result<(Request, bool)> {
    let env = backend.build_env(vars)?;
    let given =
        |flag: &Option<String>, env: Option<String>| flag.clone().filter(|s| !s.is_empty()).or(env);
    let event = build.event.or(env.event);
    let local = event.is_none() && !in_ci(vars);
    let request = Request {
        event: event.or(local.then_some(Event::PullRequest)),
        head: build.head.clone(),
        base: given(&build.base, None),
        target_branch: given(&build.target_branch, env.target_branch),
        branch: given(&build.branch, env.branch),
        before: given(&build.before, env.before),
        commit_sha: given(&build.commit_sha, env.commit_sha),
        tag: given(&build.tag, env.tag),
        deploy_to: given(&build.deploy_to, env.deploy_to),
        all: build.all,
        uncommitted: build.uncommitted || (local && build.head.is_none() && !build.committed_only),
        names: backend.names(),
    };
    Ok((request, local))
}

/// The paths listed in `--files` (`-`: standard input), one a line.
fn listed_paths(list: &Path) -> Result<Vec<String>> {
    let text = if list == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|source| {
            Error::Io {
                action: "read",
                path: PathBuf::from("<stdin>"),
                source,
            }
        })?;
        text
    } else {
        read_file(list)?
    };
    Ok(text
        .lines()
        .map(|line| line.trim_end_matches('\r').trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut path = line;
            while let Some(rest) = path.strip_prefix("./") {
                path = rest;
            }
            path.to_string()
        })
        .collect())
}

/// Everything the build commands share: manifest, change set, and the CI
/// system planned for.
struct Analysis {
    manifest: Manifest,
    changes: ChangeSet,
    backend: &'static dyn Backend,
    /// The repository, when input hashes are wanted: read only when an
    /// image is affected, since they cost a walk of the whole commit.
    inputs: Option<Repository>,
}

impl Analysis {
    /// The affected set, each image with its input hash when wanted.
    fn affected_in(&self, graph: &ServiceGraph<'_>) -> Result<Affected> {
        self.affected_with(graph, Why::Kept)
    }

    /// [`Analysis::affected_in`], keeping why each service is affected or
    /// not.
    fn affected_with(&self, graph: &ServiceGraph<'_>, why: Why) -> Result<Affected> {
        let set = self.affected_set(graph, why)?;
        // Kept until the end, as the manifest is (see `arena`).
        Ok(crate::arena::region(|| set.into_affected()))
    }

    /// The affected set as positions, each image with its input hash when
    /// wanted.
    fn affected_set<'s>(
        &'s self,
        graph: &'s ServiceGraph<'_>,
        why: Why,
    ) -> Result<AffectedSet<'s>> {
        // Kept until the end, as the manifest is (see `arena`).
        let set = crate::arena::region(|| graph.affected_set(&self.changes, why));
        self.with_inputs(graph, set)
    }

    /// [`Analysis::affected_set`] for the `affected` report (see
    /// [`ServiceGraph::report_set`]).
    fn report_set<'s>(&'s self, graph: &'s ServiceGraph<'_>) -> Result<AffectedSet<'s>> {
        let set = crate::arena::region(|| graph.report_set(&self.changes));
        self.with_inputs(graph, set)
    }

    /// `set`, each image with its input hash when wanted.
    fn with_inputs<'s>(
        &'s self,
        graph: &'s ServiceGraph<'_>,
        mut set: AffectedSet<'s>,
    ) -> Result<AffectedSet<'s>> {
        if let (Some(repo), Some(head)) = (&self.inputs, &self.changes.head)
            && set.has_images()
        {
            let files = changes::inputs_at(repo, head)?;
            let args = &self.changes.args.values;
            input::annotate(&self.manifest, graph, &mut set, &files, args);
        }
        Ok(set)
    }
}

/// What to do when the base of the diff is missing: more history helps only
/// a shallow clone; a complete one needs the target branch fetched or a
/// base named.
fn missing_base_hint(repo: &Repository, event: Event) -> String {
    if repo.is_shallow() {
        "this clone is shallow: fetch more history (`--deepen`, a larger clone depth, or \
         `git fetch --deepen=50`)"
            .into()
    } else if event == Event::PullRequest {
        "fetch the target branch (`--deepen` does, or `git fetch origin BRANCH`), or name \
         the base with `--base REV`"
            .into()
    } else {
        "say what to compare with: `--before REV` (the commit before the push) or \
         `--base REV`"
            .into()
    }
}

/// The request a build makes and the changes it finds, from the settings
/// alone.
type Found = (Request, bool, ChangeSet);

fn diff(
    repo: &Repository,
    backend: &dyn Backend,
    build: &BuildArgs,
    settings: &manifest::Settings,
) -> Result<Found> {
    let (mut request, local) = request_of(backend, build, &Vars::process())?;
    // A bare repository has no work tree to count.
    request.uncommitted &= build.uncommitted || !repo.is_bare();
    let changes = changes::collect(repo, settings, &request)?;
    Ok((request, local, changes))
}

/// A diff begun from a manifest's leading settings.
struct Diffed {
    settings: manifest::Settings,
    found: Result<Found>,
}

/// Parses the manifest while, when its settings can be read first, the
/// diff runs beside it on a handle of its own: it needs only them. A bad
/// manifest is still what is reported; the diff is then dropped.
fn read_while_diffing(
    workspace: &Workspace,
    repo: &Repository,
    build: &BuildArgs,
    text: &manifest::Text<'_>,
    shown: &str,
) -> Result<(Manifest, Option<Result<Diffed>>)> {
    // A command that runs once keeps the manifest until it ends: in a
    // region its lists are on huge pages (see `arena`).
    let parse = || crate::arena::region(|| Manifest::parse_text(text, shown));
    let Some(settings) = Manifest::leading_settings(text, shown) else {
        return Ok((parse()?, None));
    };
    let backend = workspace.backend_for(&settings);
    // A handle is not shared between threads: the diff opens its own, on
    // the same directory, the same way.
    let bare = repo.is_bare();
    let at = repo.workdir().unwrap_or(repo.path()).to_path_buf();
    let diffing = move || -> Result<Diffed> {
        let flags = if bare {
            git2::RepositoryOpenFlags::BARE | git2::RepositoryOpenFlags::NO_SEARCH
        } else {
            git2::RepositoryOpenFlags::NO_SEARCH
        };
        let repo = Repository::open_ext(&at, flags, std::iter::empty::<&std::ffi::OsStr>())
            .map_err(git(format!("opening `{}` again", at.display())))?;
        // Closing the handle (its pack maps, caches, files) took this
        // thread about 0.2 ms while the other reads the manifest: a
        // command that runs once leaves it to the exit.
        let repo = Kept::new(repo);
        let found = diff(&repo, backend, build, &settings);
        Ok(Diffed { settings, found })
    };
    let (manifest, early) = crate::parallel::join(
        parse,
        // A diff that panicked is done again, in order.
        || std::panic::catch_unwind(std::panic::AssertUnwindSafe(diffing)).ok(),
    );
    Ok((manifest?, early))
}

/// Opens the repository, reads the manifest and collects the changes. A
/// bad manifest fails before anything the diff would say.
fn analyse(workspace: &Workspace, build: &BuildArgs, err: &mut dyn Write) -> Result<Analysis> {
    let head = build.head.as_deref().unwrap_or("HEAD");
    let vars = Vars::process();
    // An explicit manifest is validated before the repository is opened.
    let explicit = match &workspace.manifest {
        Some(_) => Some(workspace.manifest(None, head)?),
        None => None,
    };
    if let Some(list) = &build.files {
        let manifest = match explicit {
            Some(manifest) => manifest,
            // Outside a repository: the manifest of the directory.
            None => match workspace.open_repo() {
                Ok(repo) => workspace.manifest(Some(&repo), head)?,
                Err(Error::NoRepository { dir }) => {
                    let path = dir.join(MANIFEST_FILE);
                    let shown = path.display().to_string();
                    read_manifest(&path, Some(&dir), |text| {
                        Ok(Manifest::parse_text(text, &shown)?)
                    })?
                }
                Err(error) => return Err(error),
            },
        };
        workspace.lap("manifest");
        let backend = workspace.backend(&manifest);
        let (request, _) = request_of(backend, build, &vars)?;
        let mut changes = changes::from_files(&manifest.settings, &request, listed_paths(list)?)?;
        changes::listed_build_args(&manifest, &mut changes);
        if changes.event != Event::PullRequest && input::wanted(&manifest) {
            return Err(Error::Usage {
                message: "`--files` gives no commit to compute input hashes from".into(),
                hint: Some(
                    "`{input}` tags and `release = \"promote\"` need the commit: plan it \
                     with `--head REV` instead of `--files`"
                        .into(),
                ),
            });
        }
        changes.strict = build.strict;
        return Ok(Analysis {
            manifest,
            changes,
            backend,
            inputs: None,
        });
    }
    let repo = workspace.open_repo()?;
    let (manifest, early) = match explicit {
        Some(manifest) => (manifest, None),
        None => workspace.with_manifest(Some(&repo), head, |text, shown| {
            read_while_diffing(workspace, &repo, build, text, shown)
        })?,
    };
    workspace.lap("manifest");
    let backend = workspace.backend(&manifest);
    let (request, local, mut changes) = match early {
        // Begun from the same settings: what the serial steps would give.
        Some(Ok(Diffed { settings, found })) if settings == manifest.settings => found?,
        _ => diff(&repo, backend, build, &manifest.settings)?,
    };
    if local {
        let _ = writeln!(
            err,
            "ripple: local dry run (no event given, not in CI): {}{}",
            changes.reason,
            if request.uncommitted {
                ", with uncommitted and untracked files"
            } else {
                ""
            }
        );
    }
    if build.deepen && changes.missing_base.is_some() {
        changes = changes::deepen(&repo, &manifest.settings, &request, changes, err)?;
    }
    if let Some(reason) = &changes.missing_base {
        let hint = missing_base_hint(&repo, changes.event);
        if build.strict {
            return Err(Error::NoBase {
                reason: reason.clone(),
                hint,
            });
        }
        let _ = writeln!(
            err,
            "warning: {reason}; planning every service\n\
             hint: {hint}, or pass `--strict` to fail instead"
        );
    }
    changes::read_build_args(&repo, &manifest, &mut changes);
    changes.strict = build.strict;
    // Pull requests build nothing, so they need no hashes unless asked.
    let wants_inputs =
        build.inputs || (changes.event != Event::PullRequest && input::wanted(&manifest));
    let inputs = wants_inputs.then_some(repo);
    workspace.lap("git");
    Ok(Analysis {
        manifest,
        changes,
        backend,
        inputs,
    })
}

fn cmd_plan(
    workspace: &Workspace,
    args: cli::PlanArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let analysis = analyse(workspace, &args.build, err)?;
    // Rendered for a CI system, a plan reads no service's reasons.
    let why = match args.format {
        cli::PlanFormat::Ci => Why::Left,
        cli::PlanFormat::Json => Why::Kept,
    };
    let affected = analysis.affected_with(&ServiceGraph::new(&analysis.manifest), why)?;
    workspace.lap("graph");
    let plan = Arc::new(plan::plan(&analysis.manifest, &analysis.changes, &affected));
    // The document goes to its destination as it renders: no size of plan
    // is held whole.
    // A CI system that takes several files gets them into `--output DIR`
    // one at a time.
    if let (cli::PlanFormat::Ci, Some(dir)) = (&args.format, &args.output) {
        let templates = workspace.templates(analysis.backend)?;
        let mut files = FileSet::new(dir)?;
        if analysis
            .backend
            .plan_files(&templates, &plan, &mut |name, text| {
                files.write(&name, &text)
            })?
        {
            workspace.lap("render");
            let written = files.finish();
            workspace.lap("output");
            if written.is_ok() {
                let _ = writeln!(err, "ripple: {}", summary(&plan));
            }
            exit_without_freeing((analysis, affected, plan));
            return written;
        }
    }
    let mut output = Output::to(args.output.as_deref(), out);
    let rendered = match args.format {
        cli::PlanFormat::Ci => {
            let templates = workspace.templates(analysis.backend)?;
            analysis.backend.plan(&templates, &plan, &mut output)
        }
        cli::PlanFormat::Json => {
            let report = Report::new(&analysis.changes, &affected);
            // A failed write is the output's to report.
            let _ = render::plan_json(&report, &plan, &mut output);
            Ok(Rendered::Written)
        }
    };
    // A render that failed because its output did is reported as the
    // output's failure.
    let rendered = match (rendered, output.failure()) {
        (_, Some(failed)) => return Err(failed),
        (rendered, None) => rendered?,
    };
    workspace.lap("render");
    let to_a_file = args.output.is_some();
    let written = match &rendered {
        Rendered::Written | Rendered::Answer => output.finish(),
        Rendered::Outputs { variable, values } => match &args.output {
            // A CI system's outputs file is shared with other steps:
            // appended to, never replaced.
            None => match Vars::process().get(variable) {
                Some(file) => {
                    outputs_file_form(values).and_then(|text| append(Path::new(&file), &text))
                }
                None => finish_with_outputs(output, values),
            },
            Some(_) => finish_with_outputs(output, values),
        },
    };
    workspace.lap("output");
    // When the plan went to a file, the build log still says what it is.
    let appended = matches!(rendered, Rendered::Outputs { .. });
    if written.is_ok() && (to_a_file || appended) {
        let _ = writeln!(err, "ripple: {}", summary(&plan));
    }
    exit_without_freeing((analysis, affected, plan, rendered));
    written
}

/// One line for a build log: why these jobs, how many, or why none.
fn summary(plan: &plan::Plan) -> String {
    match &plan.idle_reason {
        Some(idle) => format!("nothing to run: {idle}"),
        None => format!(
            "{}: {} job{}",
            plan.reason,
            plan.jobs.len(),
            if plan.jobs.len() == 1 { "" } else { "s" }
        ),
    }
}

/// Step outputs as one JSON object of JSON strings, keys sorted, written
/// into `output` as they are made, which is then finished.
fn finish_with_outputs(mut output: Output<'_>, values: &[(String, OutputValue)]) -> Result<()> {
    let mut entries: Vec<(&str, &OutputValue)> =
        values.iter().map(|(k, v)| (k.as_str(), v)).collect();
    entries.sort_by_key(|&(key, _)| key);
    // A failure is kept in `output` and reported by `finish`.
    let _ =
        crate::render::json::object(&mut output, &entries, |out, value| value.write_quoted(out))
            .and_then(|()| output.write_all(b"\n"));
    output.finish()
}

/// Step outputs in the outputs file's `NAME<<DELIMITER` form. A value is
/// compact JSON, one line that never reads `RIPPLE_EOF` (JSON starts
/// with a bracket, a brace, a quote, a digit or a literal), so that line
/// delimits every value.
fn outputs_file_form(values: &[(String, OutputValue)]) -> Result<Vec<u8>> {
    let mut text = Vec::new();
    for (name, value) in values {
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(b"<<RIPPLE_EOF\n");
        value.write(&mut text).map_err(|source| Error::Io {
            action: "write",
            path: PathBuf::from(format!("the `{name}` output")),
            source,
        })?;
        text.extend_from_slice(b"\nRIPPLE_EOF\n");
    }
    Ok(text)
}

/// Appends `text` to `path` in one write (the outputs file is the CI
/// system's, shared with other steps).
fn append(path: &Path, text: &[u8]) -> Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text))
        .map_err(|source| Error::Io {
            action: "append to",
            path: path.to_path_buf(),
            source,
        })
}

/// Files written into a directory one at a time, each under a temporary
/// name until all are written; then renamed into place, and the files an
/// earlier plan generated there and this one does not are removed. A
/// failure before `finish` leaves the directory as it was.
struct FileSet {
    dir: PathBuf,
    written: Vec<(tempfile::TempPath, PathBuf)>,
}

impl FileSet {
    /// Files for `dir`, which is created (when missing) as the first one
    /// is written: a CI system that takes one document writes none.
    fn new(dir: &Path) -> Result<FileSet> {
        Ok(FileSet {
            dir: dir.to_path_buf(),
            written: Vec::new(),
        })
    }

    fn write(&mut self, name: &str, text: &str) -> Result<()> {
        if self.written.is_empty() {
            std::fs::create_dir_all(&self.dir).map_err(|source| Error::Io {
                action: "create the directory",
                path: self.dir.clone(),
                source,
            })?;
        }
        let path = self.dir.join(name);
        let temporary = crate::output::temporary_beside(&path, text)?;
        self.written.push((temporary, path));
        Ok(())
    }

    fn finish(self) -> Result<()> {
        // The temporary files are ours too, not stale.
        let placed: Vec<&Path> = self
            .written
            .iter()
            .flat_map(|(temporary, path)| [path.as_path(), temporary])
            .collect();
        let stale = leftovers(&placed);
        for (temporary, path) in self.written {
            temporary.persist(&path).map_err(|e| Error::Io {
                action: "replace",
                path: path.clone(),
                source: e.error,
            })?;
        }
        for path in stale {
            std::fs::remove_file(&path).map_err(|source| Error::Io {
                action: "remove",
                path,
                source,
            })?;
        }
        Ok(())
    }
}

fn cmd_affected(
    workspace: &Workspace,
    args: cli::AffectedArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let analysis = analyse(workspace, &args.build, err)?;
    let graph = ServiceGraph::new(&analysis.manifest);
    // Each entry is written as it is made: none is kept.
    let affected = analysis.report_set(&graph)?;
    workspace.lap("graph");
    let mut output = Output::stream(out);
    // A failed write is kept in `output` and reported by `finish`.
    let _ = match args.format {
        cli::AffectedFormat::Text => {
            output.write_all(render::affected_text(&analysis.changes, &affected).as_bytes())
        }
        cli::AffectedFormat::Json => {
            render::affected_json(&analysis.changes, &affected, &mut output)
        }
    };
    workspace.lap("render");
    let written = output.finish();
    workspace.lap("output");
    // Each borrows the next.
    exit_without_freeing(affected);
    exit_without_freeing(graph);
    exit_without_freeing(analysis);
    written
}

fn cmd_explain(
    workspace: &Workspace,
    args: cli::ExplainArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let analysis = analyse(workspace, &args.build, err)?;
    let graph = graph_naming(&analysis.manifest, &args.service)?;
    let affected = graph.affected(&analysis.changes);
    // A discovered edge in a chain is shown with the file that states it:
    // its source is run again, once, on the commit built. The repository
    // and its files are read only when such an edge is shown, and once.
    let head = analysis
        .changes
        .head
        .clone()
        .unwrap_or_else(|| "HEAD".into());
    let repo: std::cell::OnceCell<Option<Repository>> = std::cell::OnceCell::new();
    let files: std::cell::OnceCell<Option<crate::discover::Files<'_>>> = std::cell::OnceCell::new();
    let found: RefCell<HashMap<&str, Vec<crate::discover::Edge>>> = RefCell::default();
    let evidence = |from: &str, to: &str, source: &str| -> Option<String> {
        let source = *crate::discover::SOURCES.iter().find(|s| **s == source)?;
        let manifest = &analysis.manifest;
        let (from, to) = (manifest.position(from)?, manifest.position(to)?);
        let mut found = found.borrow_mut();
        if !found.contains_key(source) {
            let repo = repo.get_or_init(|| workspace.open_repo().ok()).as_ref()?;
            let files = files
                .get_or_init(|| changes::files_at(repo, &head).ok())
                .as_ref()?;
            let edges = crate::discover::discover(manifest, files, &[source.to_string()]);
            found.insert(source, edges);
        }
        found[source]
            .iter()
            .find(|e| e.from == from && e.to == to)
            .map(crate::discover::Edge::evidence)
    };
    let text = graph.explain(&args.service, &analysis.changes, &affected, &evidence);
    emit(out, &text)
}

/// `ripple gate SERVICE`: the first step of a service's pipeline in a
/// static `.drone.yml`. Exit 0 runs the rest of the pipeline; 78 ends it
/// early as a success (Drone's rule), with the reason in the log. Only
/// Drone's static file uses it: the other CI systems skip jobs by
/// themselves.
/// The registry settings from the environment and flags.
#[cfg(feature = "registry")]
fn registry_settings(insecure: Vec<String>) -> crate::registry::Settings {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    crate::registry::Settings {
        insecure: insecure
            .into_iter()
            .flat_map(|h| h.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect(),
        credentials: var("RIPPLE_REGISTRY_USERNAME").zip(var("RIPPLE_REGISTRY_PASSWORD")),
        docker_config: var("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".docker"))),
    }
}

#[cfg(feature = "registry")]
fn cmd_promote(workspace: &Workspace, args: cli::PromoteArgs, err: &mut dyn Write) -> Result<u8> {
    let settings = registry_settings(args.insecure_registries);
    // The history tells whether `latest` moves forward; without a
    // repository it stays where it is.
    let history = workspace.open_repo().ok();
    let request = crate::promote::Request {
        image: &args.image,
        from: &args.from,
        to: &args.to,
        else_build: args.else_build,
    };
    Ok(
        match crate::promote::promote(&request, &settings, history.as_ref(), err)? {
            crate::promote::Outcome::Promoted { .. } if args.else_build => exit::PROMOTED,
            crate::promote::Outcome::Promoted { .. } | crate::promote::Outcome::Build => exit::OK,
        },
    )
}

// Without the registry, `network` is not used: nothing is promoted.
#[cfg_attr(not(feature = "registry"), allow(unused_variables))]
fn cmd_gate(
    workspace: &Workspace,
    args: cli::GateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    network: impl FnOnce(Command, &Workspace, &mut dyn Write, &mut dyn Write) -> Result<u8>,
) -> Result<u8> {
    let analysis = analyse(workspace, &args.build, err)?;
    let graph = graph_naming(&analysis.manifest, &args.service)?;
    let affected = analysis.affected_in(&graph)?;
    let plan = plan::plan(&analysis.manifest, &analysis.changes, &affected);
    let verdict = plan::gate(&args.service, &analysis.changes, &affected, &plan);
    let explanation = graph.explain(
        &args.service,
        &analysis.changes,
        &affected,
        &crate::graph::no_evidence,
    );
    let mut text = format!("ripple gate: {}\n", verdict.reason);
    for line in explanation.lines() {
        text.push_str(&format!("ripple gate: {line}\n"));
    }
    if let Some(path) = &args.tags_file
        && verdict.runs
    {
        let tags = plan::image_tags(&plan, &args.service).map(|tags| tags.join(","));
        if let Some(tags) = tags {
            write_atomically(path, &tags)?;
            text.push_str(&format!(
                "ripple gate: tags {tags} (in {})\n",
                path.display()
            ));
        }
    }
    if !verdict.runs {
        emit(out, &text)?;
        return Ok(backend::drone::SKIP);
    }
    #[cfg(feature = "registry")]
    if args.promote
        && let Some((image, promotion)) = plan::promotion(&plan, &args.service)
    {
        emit(out, &text)?;
        // `ripple promote`, run as `network` runs it: `ripple` hands it to
        // `ripple-net`, which holds the registry's client.
        let promote = cli::PromoteArgs {
            image: image.image.to_string(),
            from: promotion.from.clone(),
            to: promotion.to.clone(),
            else_build: promotion.else_build,
            insecure_registries: Vec::new(),
        };
        return network(Command::Promote(promote), workspace, out, err);
    }
    emit(out, &text)?;
    Ok(exit::OK)
}

/// `ripple generate`: the CI system's static files, or with `--check` a
/// diff against them.
fn cmd_generate(workspace: &Workspace, args: cli::GenerateArgs, out: &mut dyn Write) -> Result<u8> {
    let repo = match (&workspace.manifest, &args.output) {
        (Some(_), Some(_)) => None,
        _ => Some(workspace.open_repo()?),
    };
    let manifest = workspace.manifest(repo.as_ref(), "HEAD")?;
    let backend = workspace.backend(&manifest);
    let mut everything = ChangeSet::everything(Event::Push, "every service");
    // build_args_file values are baked in as they are at HEAD: a change to
    // a declared one makes the file stale, which `generate --check` says.
    if let Some(repo) = &repo
        && let Ok(head) = repo.head().and_then(|h| h.peel_to_commit())
    {
        everything.head = Some(head.id().to_string());
        changes::read_build_args(repo, &manifest, &mut everything);
    }
    let all = ServiceGraph::new(&manifest).affected(&everything);
    let files = backend.generate(
        &workspace.templates(backend)?,
        &Arc::new(plan::static_plan(&manifest, &all, &everything.args.values)),
    )?;
    let root = repo
        .as_ref()
        .and_then(|r| r.workdir())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    // `--output` names the file, or the directory for a CI system that
    // takes several.
    let placed: Vec<(PathBuf, &str)> = match (&args.output, files.as_slice()) {
        (Some(path), [(_, text)]) if !backend.generates_directory() => {
            vec![(path.clone(), text.as_str())]
        }
        (Some(dir), files) => files
            .iter()
            .map(|(name, text)| (dir.join(file_name(name)), text.as_str()))
            .collect(),
        (None, files) => files
            .iter()
            .map(|(name, text)| (root.join(name), text.as_str()))
            .collect(),
    };
    // Files ripple generated before into the same directories that this
    // plan no longer has (a service removed): gone, or stale for --check.
    let leftovers = if backend.generates_directory() {
        leftovers(&placed.iter().map(|(p, _)| p.as_path()).collect::<Vec<_>>())
    } else {
        Vec::new()
    };
    if !args.check {
        for (path, text) in &placed {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    action: "create the directory",
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            write_atomically(path, text)?;
        }
        for path in &leftovers {
            std::fs::remove_file(path).map_err(|source| Error::Io {
                action: "remove",
                path: path.clone(),
                source,
            })?;
        }
        return Ok(exit::OK);
    }
    let mut stale = None;
    let removed = leftovers.iter().map(|path| (path.clone(), ""));
    for (path, text) in placed.iter().map(|(p, t)| (p.clone(), *t)).chain(removed) {
        let current = match std::fs::read_to_string(&path) {
            Ok(current) => current,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(Error::Io {
                    action: "read",
                    path: path.clone(),
                    source,
                });
            }
        };
        if current == text {
            continue;
        }
        let name = path.display().to_string();
        let diff = similar::TextDiff::from_lines(current.as_str(), text)
            .unified_diff()
            .header(&name, &format!("{name} (ripple generate)"))
            .to_string();
        emit(out, &diff)?;
        stale.get_or_insert(path);
    }
    match stale {
        None => Ok(exit::OK),
        Some(path) => Err(Error::Stale { path }),
    }
}

/// The first line of every file ripple generates.
const GENERATED: &str = "# Generated by ripple";

/// Files in the directories of `placed` that ripple generated and that are
/// not among `placed` (for a CI system that takes a directory of them).
fn leftovers(placed: &[&Path]) -> Vec<PathBuf> {
    // A set: a plan may place tens of thousands of files.
    let ours: std::collections::HashSet<&Path> = placed.iter().copied().collect();
    let mut dirs: Vec<&Path> = placed.iter().filter_map(|p| p.parent()).collect();
    dirs.sort();
    dirs.dedup();
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let ours = ours.contains(path.as_path());
            let generated =
                || std::fs::read_to_string(&path).is_ok_and(|text| text.starts_with(GENERATED));
            if !ours && path.is_file() && generated() {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The last component of a generated file's path from the root.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The graph of a manifest that has a service called `name`.
fn graph_naming<'m>(manifest: &'m Manifest, name: &str) -> Result<ServiceGraph<'m>> {
    let graph = ServiceGraph::new(manifest);
    if graph.index(name).is_none() {
        return Err(Error::UnknownService {
            name: name.to_string(),
            known: manifest
                .services
                .iter()
                .map(|s| s.name.to_string())
                .collect(),
        });
    }
    Ok(graph)
}

fn cmd_graph(workspace: &Workspace, args: cli::GraphArgs, out: &mut dyn Write) -> Result<()> {
    let manifest = workspace.manifest(None, "HEAD")?;
    let text = match args.format {
        cli::GraphFormat::Dot => render::dot(&manifest),
        cli::GraphFormat::Mermaid => render::mermaid(&manifest),
    };
    emit(out, &text)
}

/// `ripple sync`: the discovered edges into the manifest, or with
/// `--check` a diff against it.
fn cmd_sync(
    workspace: &Workspace,
    args: cli::SyncArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    // What `sync` reads is left to the exit (see `Kept`).
    let repo = Kept::new(workspace.open_repo()?);
    let path = workspace.manifest_to_write(&repo, "sync")?;
    let shown = path.display().to_string();
    let text = read_manifest(&path, None, |text| Ok(text.to_string()))?;
    let unreadable = |why: crate::sync::Unreadable| Error::Usage {
        message: format!("cannot rewrite `{shown}`: {}", why.0),
        hint: Some("fix the TOML first (`ripple check` shows where)".into()),
    };
    // The sources run against the manifest; when its old `discovered` keys
    // stop it from reading (a service gone, a cycle), against the text
    // without them.
    let manifest = Kept::new(match Manifest::parse(&text, &shown) {
        Ok(manifest) => manifest,
        Err(_) => {
            let stripped = crate::sync::without_discovered(&text).map_err(unreadable)?;
            Manifest::parse(&stripped, &shown)?
        }
    });
    let sources = &manifest.settings.discover;
    let files = Kept::new(changes::files_at(&repo, &args.head)?);
    let edges = crate::discover::discover(&manifest, &files, sources);
    // Up to date (the common case of `--check`): no rewriting at all.
    let written = if crate::sync::is_current(&manifest, &edges) {
        text.clone()
    } else {
        // Written into the original text: a key that is already right
        // stays as and where it is.
        crate::sync::with_discovered(&text, &manifest, &edges).map_err(unreadable)?
    };
    if written != text {
        // An edge that closes a cycle: said with the manifest's own
        // message, and nothing written.
        Manifest::parse(&written, &shown)?;
    }
    if written == text {
        let _ = writeln!(
            err,
            "ripple sync: `{shown}` is up to date ({} discovered edge{})",
            edges.len(),
            if edges.len() == 1 { "" } else { "s" }
        );
        return Ok(exit::OK);
    }
    if args.check {
        let diff = similar::TextDiff::from_lines(text.as_str(), written.as_str())
            .unified_diff()
            .header(&shown, &format!("{shown} (ripple sync)"))
            .to_string();
        emit(out, &diff)?;
        return Err(Error::Unsynced { path });
    }
    write_atomically(&path, &written)?;
    let _ = writeln!(
        err,
        "ripple sync: wrote {} discovered edge{} into `{shown}`",
        edges.len(),
        if edges.len() == 1 { "" } else { "s" }
    );
    Ok(exit::OK)
}

/// `ripple init`: a first manifest, guessed from the files of a commit,
/// with the edges the code states; never over an existing one.
fn cmd_init(workspace: &Workspace, args: cli::InitArgs, err: &mut dyn Write) -> Result<()> {
    // What `init` reads is left to the exit (see `Kept`).
    let repo = Kept::new(workspace.open_repo()?);
    let path = workspace.manifest_to_write(&repo, "init")?;
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(Error::Usage {
            message: format!(
                "`{}` exists; `ripple init` writes a first one only",
                path.display()
            ),
            hint: Some("edit it, or run `ripple sync` to rewrite its discovered edges".into()),
        });
    }
    let files = Kept::new(changes::files_at(&repo, &args.head)?);
    let branch = changes::default_target(&repo).unwrap_or_else(|| "main".into());
    let guess = crate::init::guess(&files, &branch, &changes::tag_names(&repo));
    let shown = path.display().to_string();
    let manifest = Kept::new(Manifest::parse(&guess.text, &shown)?);
    let sources: Vec<String> = guess.sources.iter().map(|s| s.to_string()).collect();
    let edges = crate::discover::discover(&manifest, &files, &sources);
    let unreadable = |why: crate::sync::Unreadable| Error::Usage {
        message: format!("cannot write the discovered edges: {}", why.0),
        hint: None,
    };
    let with_edges =
        crate::sync::with_discovered(&guess.text, &manifest, &edges).map_err(unreadable)?;
    // Edges that close a cycle: the manifest without them, and the cycle
    // said, to be broken with "!name" before `ripple sync`.
    let (text, written) = match Manifest::parse(&with_edges, &shown) {
        Ok(_) => (with_edges, edges.len()),
        Err(problems) => {
            let _ = writeln!(
                err,
                "warning: the discovered edges close a cycle, so none is written:
{problems}
                 hint: drop one with \"!name\" in that service's depends_on, then run `ripple sync`"
            );
            (guess.text.clone(), 0)
        }
    };
    write_atomically(&path, &text)?;
    let _ = writeln!(
        err,
        "ripple init: wrote `{shown}`: {} image{}, {} librar{}, {written} discovered \
         edge{} (sources: {}); check the guesses listed at its top, then run `ripple check`",
        guess.images,
        if guess.images == 1 { "" } else { "s" },
        guess.libraries,
        if guess.libraries == 1 { "y" } else { "ies" },
        if written == 1 { "" } else { "s" },
        if guess.sources.is_empty() {
            "none".to_string()
        } else {
            guess.sources.join(", ")
        }
    );
    Ok(())
}

fn cmd_check(
    workspace: &Workspace,
    args: cli::CheckArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8> {
    let repo = workspace.open_repo()?;
    let (text, shown) = workspace.manifest_source(&repo, &args.head)?;
    let manifest = Manifest::parse(&text, &shown)?;
    let files = changes::tracked_files(&repo, &args.head)?;
    let typos = crate::check::typos(&manifest, &files);
    let failed = !typos.is_empty();
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    if failed {
        let problems = crate::manifest::locate(&text, &shown, typos);
        let _ = writeln!(err, "error: {problems}");
    }
    let graph = ServiceGraph::new(&manifest);
    if input::wanted(&manifest) {
        warn_uncovered_copies(&repo, &args.head, &manifest, &graph, err)?;
    }
    let unowned = graph.unowned(&files);
    let mut report = format!(
        "manifest {}: {}, {} at {}\n",
        if failed { "read" } else { "ok" },
        count(manifest.services.len(), "service"),
        count(files.len(), "file"),
        args.head
    );
    if unowned.is_empty() {
        report.push_str("every file is owned by a service or global_paths\n");
    } else {
        report.push_str(&format!(
            "{} owned by no service (changes to them run nothing):\n",
            count(unowned.len(), "file")
        ));
        for file in unowned {
            report.push_str("  ");
            report.push_str(file);
            report.push('\n');
        }
    }
    emit(out, &report)?;
    Ok(if failed { exit::USER } else { exit::OK })
}

/// `check` with input hashes in use: each `COPY`/`ADD` that brings in a
/// file no service of the image's dependency closure owns, so that its
/// hash would not change with that file.
fn warn_uncovered_copies(
    repo: &Repository,
    head: &str,
    manifest: &Manifest,
    graph: &ServiceGraph<'_>,
    err: &mut dyn Write,
) -> Result<()> {
    let files = changes::files_at(repo, head)?;
    let view = crate::discover::Repo::new(manifest, &files);
    let closure = |image: usize| {
        let mut seen = vec![false; manifest.services.len()];
        let mut stack = vec![image];
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut seen[i], true) {
                stack.extend(manifest.dependencies(i));
            }
        }
        seen
    };
    let ignored = |path: &str| graph.is_ignored(path);
    for copy in crate::discover::docker::uncovered_copies(&view, &closure, &ignored) {
        let name = &manifest.services[copy.service].name;
        let more = match copy.files {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        let _ = writeln!(
            err,
            "warning: {}: `{}` brings in {}{more}, which no service `{name}` is made of \
             owns: its input hash misses them, so a release could promote an image built \
             without their latest change\n\
             hint: add them to the paths of `{name}` or of a service it depends on",
            copy.dockerfile, copy.instruction, copy.example
        );
    }
    Ok(())
}

/// The process ends right after a command: freeing tens of thousands of
/// small allocations one by one would cost more than matching them did.
fn exit_without_freeing<T>(values: T) {
    std::mem::forget(values);
}

fn emit(out: &mut dyn Write, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            action: "write",
            path: PathBuf::from("<stdout>"),
            source,
        })
}
