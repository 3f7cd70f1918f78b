//! The command line as the user typed it: clap types only. Resolved into a
//! request by `app`; nothing past `app::run` sees these types.
//!
//! A subcommand's arguments are built only when it is the one typed
//! (`defer`): building all of them was half of the 0.5 ms that parsing
//! took before any work. The structs a subcommand's arguments live in
//! carry plain comments, not doc comments, which clap would read as the
//! subcommand's description when it builds them, over the variant's.
#![allow(missing_docs)]

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::changes::Event;

/// Plan CI work for a monorepo: which services a change affects, and the
/// CI configuration (Drone, ...) that builds and tests exactly those.
#[derive(Debug, Parser)]
#[command(name = "ripple", version, propagate_version = true)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,

    /// The manifest [default: services.toml at the repository root, read from
    /// HEAD in a bare repository].
    #[arg(long, global = true, env = "RIPPLE_MANIFEST", value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// The repository [default: the one containing the current directory].
    #[arg(long, global = true, env = "RIPPLE_REPO", value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// A directory of templates that replace the embedded ones by name
    /// (`drone.yml.j2`, ...), directly in DIR or in DIR/<ci>/.
    #[arg(long, global = true, env = "RIPPLE_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,

    /// The CI system to plan for [default: `[settings] ci`, else the one
    /// whose environment this is, else drone].
    #[arg(long, global = true, env = "RIPPLE_CI", value_name = "CI",
          value_parser = PossibleValuesParser::new(crate::backend::names()))]
    pub ci: Option<String>,

    /// Print how long each stage took (manifest, git, graph, render, output)
    /// to stderr.
    #[arg(long, global = true)]
    pub timings: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Render the CI configuration for a build.
    Plan(PlanArgs),
    /// List the services a build affects.
    Affected(AffectedArgs),
    /// Show why a service is (or is not) affected: file -> service -> dependents.
    Explain(ExplainArgs),
    /// In a Drone step: exit 0 when SERVICE's pipeline has work for this
    /// build, 78 (Drone's "stop here, success") when it has none.
    Gate(GateArgs),
    /// Write the CI system's static file for every service and event
    /// (`.drone.yml`: each pipeline gated by `ripple gate`).
    Generate(GenerateArgs),
    /// Print the dependency graph.
    Graph(GraphArgs),
    /// Serve Drone's configuration extension (DRONE_YAML_ENDPOINT), or
    /// Woodpecker's with `--ci woodpecker`.
    #[cfg(feature = "server")]
    Serve(ServeArgs),
    /// Fetch into one of `serve`'s mirrors: run by `serve` itself, in a
    /// child process it can stop at a deadline.
    #[command(name = "mirror-fetch", hide = true)]
    #[cfg(feature = "server")]
    MirrorFetch(MirrorFetchArgs),
    /// Give a tested image the tags of a release through the registry
    /// (no build, no layer moves): `--from in-<hash> --to latest --to 1.4.0`.
    #[cfg(feature = "registry")]
    Promote(PromoteArgs),
    /// Environment slots: `ripple slots serve` keeps shared test
    /// environments' slots and leases.
    #[cfg(feature = "server")]
    Slots(SlotsArgs),
    /// Take, renew or give back a slot of a shared test environment (the
    /// client of `ripple slots serve`, for any CI step).
    #[cfg(feature = "server")]
    Slot(SlotArgs),
    /// Validate the manifest and list files that no service owns.
    Check(CheckArgs),
    /// Write the dependencies the code states (`[settings] discover`) into
    /// each service's `discovered` key.
    Sync(SyncArgs),
    /// Write a first services.toml for a repository that has none, guessed
    /// from its Dockerfiles, Go modules and packages.
    Init(InitArgs),
    /// Build an example monorepo with a feature branch and plan its pull request.
    Demo(DemoArgs),
}

// What is being built. Flags win; inside a CI system, the rest comes
// from its environment (Drone's `DRONE_*`, ...), read by its backend.
#[derive(Debug, Clone, ClapArgs)]
pub struct BuildArgs {
    /// Plan every service, whatever changed.
    #[arg(long)]
    pub all: bool,

    /// Compare with this revision: the target branch of a pull request, or
    /// the commit before a push [pull requests: the CI system's target
    /// branch].
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,

    /// The build event [default: the CI system's, e.g. DRONE_BUILD_EVENT].
    #[arg(long, value_parser = event_parser())]
    pub event: Option<Event>,

    /// When the base is missing, fetch more history from `origin` step by
    /// step (with `git fetch --deepen`) until it is found.
    #[arg(long)]
    pub deepen: bool,

    /// The commit built [default: HEAD; a local dry run without it also
    /// counts uncommitted and untracked files].
    #[arg(long, value_name = "REV")]
    pub head: Option<String>,

    /// Plan for exactly the paths in FILE (one a line; `-`: standard input)
    /// with the event's rules, instead of asking git what changed. Works
    /// outside a repository.
    #[arg(long, value_name = "FILE")]
    pub files: Option<PathBuf>,

    /// Fail (exit 1) instead of planning every service when the base of the
    /// diff cannot be found; with `release = "promote"`, render promote
    /// steps that fail when an image's tested build is missing instead of
    /// building it.
    #[arg(long)]
    pub strict: bool,

    /// Compute each image's input hash (`input` in `affected`'s JSON) even
    /// when the manifest does not use them (`release = "promote"` or an
    /// `{input}` tag do).
    #[arg(long)]
    pub inputs: bool,

    /// Also count uncommitted and untracked files, for any event.
    #[arg(long, conflicts_with = "committed_only")]
    pub uncommitted: bool,

    /// Count committed changes only, even in a local dry run.
    #[arg(long)]
    pub committed_only: bool,

    /// The branch pushed to [default: the CI system's, else the
    /// checked-out branch].
    #[arg(long, help_heading = "Build (default: the CI system's environment)")]
    pub branch: Option<String>,

    /// The commit before the push.
    #[arg(
        long,
        value_name = "SHA",
        help_heading = "Build (default: the CI system's environment)"
    )]
    pub before: Option<String>,

    /// The commit of the pull request; recognises a merge checkout (HEAD's
    /// second parent).
    #[arg(
        long,
        value_name = "SHA",
        help_heading = "Build (default: the CI system's environment)"
    )]
    pub commit_sha: Option<String>,

    /// The tag of a tag event.
    #[arg(long, help_heading = "Build (default: the CI system's environment)")]
    pub tag: Option<String>,

    /// The target of a promotion (`promote` event), e.g. `production`.
    #[arg(
        long,
        value_name = "TARGET",
        help_heading = "Build (default: the CI system's environment)"
    )]
    pub deploy_to: Option<String>,

    /// The target branch of a pull request.
    #[arg(
        long,
        value_name = "BRANCH",
        help_heading = "Build (default: the CI system's environment)"
    )]
    pub target_branch: Option<String>,
}

// `ripple plan`
#[derive(Debug, ClapArgs)]
pub struct PlanArgs {
    #[command(flatten)]
    pub build: BuildArgs,

    /// Output format: the CI system's own (`ci`; `drone` is accepted for
    /// it), or the plan's jobs as JSON.
    #[arg(long, value_enum, env = "RIPPLE_FORMAT", default_value = "ci")]
    pub format: PlanFormat,

    /// Write to this file (atomically) instead of stdout; for a CI system
    /// that takes several files, a directory to write them into.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

// `ripple affected`
#[derive(Debug, ClapArgs)]
pub struct AffectedArgs {
    #[command(flatten)]
    pub build: BuildArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: AffectedFormat,
}

// `ripple explain`
#[derive(Debug, ClapArgs)]
pub struct ExplainArgs {
    /// The service to explain.
    pub service: String,

    #[command(flatten)]
    pub build: BuildArgs,
}

// `ripple gate`
#[derive(Debug, ClapArgs)]
pub struct GateArgs {
    /// The service whose pipeline this step starts.
    pub service: String,

    /// When the pipeline runs and publishes an image, write its tags here,
    /// comma-separated (Drone's `plugins/docker` reads `.tags`).
    #[arg(long, value_name = "FILE")]
    pub tags_file: Option<PathBuf>,

    /// With `release = "promote"`, when the pipeline releases an image:
    /// promote its tested build as `ripple promote --else-build` does
    /// (exit 78 after promoting; `--strict`: fail when it is missing).
    #[arg(long)]
    pub promote: bool,

    #[command(flatten)]
    pub build: BuildArgs,
}

// `ripple promote`
#[cfg(feature = "registry")]
#[derive(Debug, ClapArgs)]
pub struct PromoteArgs {
    /// The image repository, registry included, without a tag
    /// (`registry.example.org/team/app`).
    pub image: String,

    /// The tag of the build to promote (`in-<hash>`).
    #[arg(long, value_name = "TAG")]
    pub from: String,

    /// A tag to give it; repeat for several. `latest` only moves forward:
    /// it stays when the image it names was built from a commit the new
    /// one does not descend from (by their `org.opencontainers.image.revision`
    /// labels).
    #[arg(long, value_name = "TAG", required = true)]
    pub to: Vec<String>,

    /// For a release step followed by a build: exit 78 after promoting (the
    /// build is skipped), and when `--from` is missing say so and exit 0
    /// (the build runs). Without it a missing `--from` is exit 1.
    #[arg(long)]
    pub else_build: bool,

    /// Speak plain HTTP to this registry host (loopback registries always
    /// are); repeat for several.
    #[arg(
        long = "insecure-registry",
        value_name = "HOST",
        env = "RIPPLE_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
}

// `ripple slots`
#[cfg(feature = "server")]
#[derive(Debug, ClapArgs)]
pub struct SlotsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SlotsCommand,
}

// `ripple slots ...`
#[cfg(feature = "server")]
#[derive(Debug, Subcommand)]
pub enum SlotsCommand {
    /// Serve the slots of the `[[environment]]` tables of a file over HTTP,
    /// keeping leases in redb (a restart keeps them).
    Serve(SlotsServeArgs),
}

// `ripple slots serve`
#[cfg(feature = "server")]
#[derive(Debug, ClapArgs)]
pub struct SlotsServeArgs {
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3001")]
    pub listen: std::net::SocketAddr,

    /// Where `slots.redb` is kept.
    #[arg(
        long,
        value_name = "DIR",
        env = "RIPPLE_SLOTS_DATA_DIR",
        default_value = "ripple-slots"
    )]
    pub data_dir: PathBuf,

    /// A file with `[[environment]]` tables (a services.toml works).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// API keys, one a line: every change needs one, as `Authorization:
    /// Bearer KEY` (or `X-API-KEY: KEY`).
    #[arg(long, value_name = "FILE", env = "RIPPLE_SLOTS_KEYS_FILE")]
    pub keys_file: PathBuf,
}

// `ripple slot`
#[cfg(feature = "server")]
#[derive(Debug, ClapArgs)]
pub struct SlotArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SlotCommand,

    /// The slots server.
    #[arg(long, global = true, value_name = "URL", env = "RIPPLE_SLOTS_URL")]
    pub url: Option<String>,

    /// An API key of the server.
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        env = "RIPPLE_SLOTS_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

// `ripple slot ...`
#[cfg(feature = "server")]
#[derive(Debug, Subcommand)]
pub enum SlotCommand {
    /// Wait in line for a slot of ENVIRONMENT, then print `RIPPLE_SLOT=...`
    /// lines (to `eval` or source). Exit 0 with a slot, 75 when none came
    /// free in time, 1 when refused, 3 when the server cannot be reached.
    Acquire(SlotAcquireArgs),
    /// Extend a lease by its environment's ttl (once, or `--every` until it
    /// is released). Exit 1 when the lease is gone.
    Renew(SlotRenewArgs),
    /// Give a lease back (also one already gone).
    Release(SlotLeaseArgs),
}

// `ripple slot acquire`
#[cfg(feature = "server")]
#[derive(Debug, ClapArgs)]
pub struct SlotAcquireArgs {
    /// The environment.
    pub environment: String,

    /// How long to wait in line.
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub wait: String,

    /// Who holds the slot, for people looking at the server [default: the
    /// CI build, else user@host].
    #[arg(long, value_name = "NAME", env = "RIPPLE_SLOT_HOLDER")]
    pub holder: Option<String>,

    /// Also write the lines to FILE (replaced whole), for later steps.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Which lease.
#[cfg(feature = "server")]
#[derive(Debug, ClapArgs)]
pub struct SlotLeaseArgs {
    /// The lease [default: `RIPPLE_SLOT_LEASE` of `--from`, else of the
    /// environment]. Empty for release: no slot was taken, nothing to do.
    #[arg(long, value_name = "ID")]
    pub lease: Option<String>,

    /// A file `acquire --output` wrote.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
}

// `ripple slot renew`
#[cfg(feature = "server")]
#[derive(Debug, ClapArgs)]
pub struct SlotRenewArgs {
    #[command(flatten)]
    pub lease: SlotLeaseArgs,

    /// Keep renewing this often until the lease is released (a heartbeat;
    /// `ttl/3` is the rule). With `--from`, waits for the file first.
    #[arg(long, value_name = "DURATION")]
    pub every: Option<String>,
}

// `ripple generate`
#[derive(Debug, ClapArgs)]
pub struct GenerateArgs {
    /// Write nothing; exit 1 and print a unified diff when the file is not
    /// what ripple would write.
    #[arg(long)]
    pub check: bool,

    /// Where to write [default: the CI system's own place at the repository
    /// root: .drone.yml, ...]; for a CI system that takes several files, a
    /// directory.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

// `ripple serve`
#[derive(Debug, ClapArgs)]
pub struct ServeArgs {
    /// Clone URLs must start with one of these (repeat the flag). `file:`
    /// URLs are served only when a prefix allows them explicitly.
    #[arg(
        long = "allow-url",
        value_name = "PREFIX",
        env = "RIPPLE_ALLOW_URL",
        value_delimiter = ','
    )]
    pub allow_urls: Vec<String>,

    /// Where repository mirrors are kept.
    #[arg(
        long,
        value_name = "DIR",
        env = "RIPPLE_DATA_DIR",
        default_value = "ripple-data"
    )]
    pub data_dir: PathBuf,

    /// Address to listen on.
    #[arg(long, env = "RIPPLE_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: std::net::SocketAddr,

    /// A file holding the secret shared with Drone (DRONE_YAML_SECRET);
    /// RIPPLE_SECRET gives it directly.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// With `--ci woodpecker`: Woodpecker's ed25519 public key, the PEM it
    /// serves at `/api/signature/public-key`, or a file holding it.
    #[arg(long, value_name = "PEM|FILE", env = "RIPPLE_PUBLIC_KEY")]
    pub public_key: Option<PathBuf>,

    /// Answered builds kept in the history (refused requests: a tenth of
    /// this, at least 100); older ones are pruned.
    #[arg(
        long,
        value_name = "N",
        env = "RIPPLE_HISTORY_MAX_RECORDS",
        default_value = "10000",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub history_max_records: u64,

    /// Records older than this are pruned (`30d`, `12h`, `90m`, `45s`).
    #[arg(
        long,
        value_name = "AGE",
        env = "RIPPLE_HISTORY_MAX_AGE",
        default_value = "30d",
        value_parser = parse_duration
    )]
    pub history_max_age: std::time::Duration,

    /// Past this, a build is answered 204 (Drone uses the repository's
    /// own file) whatever git is doing; Drone itself gives up after 60 s.
    #[arg(long, value_name = "TIME", default_value = "45s", value_parser = parse_duration)]
    pub answer_timeout: std::time::Duration,

    /// A request's headers must arrive within this of the connection
    /// opening (or of the previous answer on a kept-alive connection), and
    /// then its body within this again; else the connection is closed.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub read_timeout: std::time::Duration,

    /// Connections served at once; more are closed as they arrive.
    #[arg(long, value_name = "N", default_value = "512",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Fetches from origins run at once (one per repository at most).
    #[arg(long, value_name = "N", default_value = "8",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_fetches: u32,
}

// `ripple mirror-fetch` (internal)
#[derive(Debug, ClapArgs)]
pub struct MirrorFetchArgs {
    /// The bare mirror.
    pub mirror: PathBuf,
    /// The (normalised, allowed) clone URL.
    pub url: String,
    /// What to fetch.
    pub refspecs: Vec<String>,
}

/// A duration written as a number and a unit: `500ms`, `45s`, `10m`, `12h`,
/// `30d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like `45s`, `10m`, `12h` or `30d`"))?;
    if number == 0 {
        // A zero timeout or age would refuse or prune everything.
        return Err(format!("`{text}`: a duration must be more than 0"));
    }
    let seconds = match unit {
        "ms" => return Ok(std::time::Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit must be ms, s, m, h or d")),
    };
    number
        .checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(
            parse_duration("45s"),
            Ok(std::time::Duration::from_secs(45))
        );
        assert_eq!(
            parse_duration("30d"),
            Ok(std::time::Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            parse_duration("500ms"),
            Ok(std::time::Duration::from_millis(500))
        );
        for bad in ["", "s", "10", "10w", "0s", "-1s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_subcommand_builds_with_its_own_description() {
        use clap::CommandFactory as _;
        // Builds every deferred subcommand, with clap's checks.
        Args::command().debug_assert();
        let mut command = Args::command();
        command.build();
        let about = |name: &str| {
            let sub = command.find_subcommand(name).expect(name);
            sub.get_about().map(|about| about.to_string())
        };
        // A deferred struct's doc comment would replace these.
        assert_eq!(
            about("affected").as_deref(),
            Some("List the services a build affects")
        );
        assert_eq!(
            about("plan").as_deref(),
            Some("Render the CI configuration for a build")
        );
        for sub in command.get_subcommands() {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            assert!(
                !about.is_empty() && !about.starts_with("What is being built"),
                "`{}`: {about:?}",
                sub.get_name()
            );
        }
    }
}

// `ripple graph`
#[derive(Debug, ClapArgs)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

// `ripple sync`
#[derive(Debug, ClapArgs)]
pub struct SyncArgs {
    /// Write nothing; exit 1 and print a unified diff when the manifest's
    /// `discovered` keys are not what the code states.
    #[arg(long)]
    pub check: bool,

    /// The commit whose files are read.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub head: String,
}

// `ripple init`
#[derive(Debug, ClapArgs)]
pub struct InitArgs {
    /// The commit whose files are read.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub head: String,
}

// `ripple check`
#[derive(Debug, ClapArgs)]
pub struct CheckArgs {
    /// The commit whose files are checked for an owner.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub head: String,
}

// `ripple demo`
#[derive(Debug, ClapArgs)]
pub struct DemoArgs {
    /// Build the example repository here and keep it, instead of in a
    /// temporary directory that is removed afterwards.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// ripple's event names (Drone's spelling).
fn event_parser() -> impl TypedValueParser<Value = Event> {
    let values = Event::ALL.map(|event| {
        let value = clap::builder::PossibleValue::new(event.as_str());
        // Nx and most people say "pr".
        if event == Event::PullRequest {
            value.alias("pr")
        } else {
            value
        }
    });
    PossibleValuesParser::new(values).try_map(|name| match name.as_str() {
        "pr" => Ok(Event::PullRequest),
        name => Event::parse(name).ok_or("not a build event"),
    })
}

/// `plan --format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// The CI system's own configuration.
    #[value(alias = "drone")]
    Ci,
    /// The plan's jobs, as JSON.
    Json,
}

/// `affected --format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AffectedFormat {
    Text,
    Json,
}

/// `graph --format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

impl Command {
    /// Whether it talks to other machines (`serve`, `mirror-fetch`,
    /// `promote`, `slots`, `slot`): `ripple` hands these to `ripple-net`.
    pub fn is_network(&self) -> bool {
        #[cfg(feature = "server")]
        if matches!(
            self,
            Command::Serve(_) | Command::MirrorFetch(_) | Command::Slots(_) | Command::Slot(_)
        ) {
            return true;
        }
        #[cfg(feature = "registry")]
        if matches!(self, Command::Promote(_)) {
            return true;
        }
        false
    }

    /// Whether it runs until stopped (a server), rather than once.
    pub fn is_server(&self) -> bool {
        #[cfg(feature = "server")]
        if matches!(self, Command::Serve(_) | Command::Slots(_)) {
            return true;
        }
        false
    }
}
