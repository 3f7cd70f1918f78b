//! CI backends: each lowers the neutral [`Plan`] into its CI system's
//! format, reads its CI system's environment into a neutral [`BuildEnv`],
//! and escapes every value it writes with its own filter. Nothing above
//! this module names a CI system.
//!
//! A backend is a folder here with a type implementing [`Backend`], plus
//! one line in [`BACKENDS`].

use std::borrow::Cow;
use std::sync::Arc;

use crate::changes::{Event, Names};
use crate::error::{Error, Result};
use crate::plan::Plan;

pub mod drone;
pub mod github;
pub mod gitlab;
pub mod templates;
pub mod woodpecker;
pub mod yaml;

pub use templates::Templates;
pub use yaml::Dollar;

/// Every backend, in the order their environments are recognised
/// (Woodpecker before Drone: it sets Drone's variables too).
pub static BACKENDS: &[&dyn Backend] = &[
    &woodpecker::Woodpecker,
    &gitlab::Gitlab,
    &github::Github,
    &drone::Drone,
];

/// The backend planned for when nothing names one and no CI system's
/// environment is recognised.
pub const DEFAULT: &str = "drone";

/// The backend planned for when nothing names one.
pub fn default() -> &'static dyn Backend {
    by_name(DEFAULT).unwrap_or(BACKENDS[0])
}

/// The backend called `name` (`--ci`, `[settings] ci`).
pub fn by_name(name: &str) -> Option<&'static dyn Backend> {
    BACKENDS.iter().copied().find(|b| b.name() == name)
}

/// The names `--ci` accepts.
pub fn names() -> impl Iterator<Item = &'static str> {
    BACKENDS.iter().map(|b| b.name())
}

/// The backend whose CI system's environment this is, if any.
pub fn detect(vars: &Vars<'_>) -> Option<&'static dyn Backend> {
    BACKENDS.iter().copied().find(|b| b.detects(vars))
}

/// Reads one environment variable; empty values read as unset.
pub struct Vars<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The process's own environment.
    pub fn process() -> Vars<'static> {
        Vars(&|name| std::env::var(name).ok())
    }

    /// The value of `name`, when set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    /// Whether `name` is set to anything but `false` or `0`.
    pub fn is_true(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false" && v != "0")
    }
}

/// A build as a CI system describes it, in ripple's words. Flags win over
/// every field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildEnv {
    /// The event.
    pub event: Option<Event>,
    /// The commit built (for pull requests, the pull request's own commit,
    /// so that a merge checkout is recognised).
    pub commit_sha: Option<String>,
    /// The commit before a push.
    pub before: Option<String>,
    /// The branch pushed to.
    pub branch: Option<String>,
    /// The tag of a tag event.
    pub tag: Option<String>,
    /// The target branch of a pull request.
    pub target_branch: Option<String>,
    /// A promotion's target (Drone's `DRONE_DEPLOY_TO`).
    pub deploy_to: Option<String>,
}

/// What `plan` gives for one build.
#[derive(Debug)]
pub enum Rendered {
    /// One document, written into the `out` that [`Backend::plan`] was
    /// given as it rendered: stdout, or `--output FILE`.
    Written,
    /// Several files, written into `out` as they rendered as the answer
    /// that holds them all (Woodpecker's configuration extension JSON).
    /// `--output DIR` takes them one by one from [`Backend::plan_files`].
    Answer,
    /// Named values for the CI system's step outputs: appended to the file
    /// that `variable` names (in `NAME<<DELIMITER` form) when it is set,
    /// else one JSON object on stdout.
    Outputs {
        /// The environment variable naming the outputs file.
        variable: &'static str,
        /// `(name, value)`, in order.
        values: Vec<(String, OutputValue)>,
    },
}

/// A step output's value: JSON, made as it is written out. A plan's test
/// matrix is megabytes of JSON that is written inside a JSON string:
/// made there directly, it is neither held as text nor escaped after.
pub struct OutputValue(Box<WriteJson>);

/// Writes a value as compact JSON; `true`: quoted, as a JSON string.
type WriteJson = dyn Fn(&mut dyn std::io::Write, bool) -> std::io::Result<()> + Send + Sync;

impl OutputValue {
    /// `value`, written as compact JSON.
    pub fn json<T: serde::Serialize + Send + Sync + 'static>(value: T) -> OutputValue {
        OutputValue(Box::new(move |out, quoted| {
            crate::render::json::compact(out, &value, quoted)
        }))
    }

    /// A value `write` writes as compact JSON (`true`: quoted, as a JSON
    /// string holding it).
    pub fn written(
        write: impl Fn(&mut dyn std::io::Write, bool) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> OutputValue {
        OutputValue(Box::new(write))
    }

    /// Writes the value as it is: compact JSON, on one line.
    pub fn write(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        (self.0)(out, false)
    }

    /// Writes the value as a JSON string holding it.
    pub fn write_quoted(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        (self.0)(out, true)
    }

    /// The value as text.
    pub fn text(&self) -> String {
        let mut text = Vec::new();
        // Writing into memory fails only if serializing does, which
        // these values never do (string keys, no floats).
        let _ = self.write(&mut text);
        String::from_utf8(text).unwrap_or_default()
    }
}

impl std::fmt::Debug for OutputValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputValue(..)")
    }
}

/// One CI system.
pub trait Backend: Sync {
    /// Its `--ci` name.
    fn name(&self) -> &'static str;

    /// Whether `vars` is this CI system's environment.
    fn detects(&self, vars: &Vars<'_>) -> bool;

    /// The build its environment describes.
    fn build_env(&self, vars: &Vars<'_>) -> Result<BuildEnv>;

    /// What its environment calls each value of a build, for messages.
    fn names(&self) -> Names;

    /// The templates it ships: `(name, source)`, the entry first.
    fn templates(&self) -> &'static [(&'static str, &'static str)];

    /// How its configuration reads `$`: its one escaping filter.
    fn dollar(&self) -> Dollar;

    /// A template environment with its escaping filter and `overrides`
    /// (from `--templates`) replacing shipped templates by name.
    fn load(&self, overrides: Vec<(String, String)>) -> Result<Templates> {
        Templates::new(self.dollar(), self.templates(), overrides)
    }

    /// The configuration for one build. A CI system that takes one
    /// document gets it written into `out` as it renders ([`Rendered::Written`]),
    /// so that no size of plan is held whole; others leave `out` alone.
    fn plan(
        &self,
        templates: &Templates,
        plan: &Arc<Plan>,
        out: &mut dyn std::io::Write,
    ) -> Result<Rendered>;

    /// For a CI system that takes several files: renders them one at a
    /// time, handing each `(file name, text)` to `each` (`plan --output
    /// DIR`). False, having done nothing, for one that takes one document.
    fn plan_files(
        &self,
        templates: &Templates,
        plan: &Arc<Plan>,
        each: &mut dyn FnMut(String, String) -> Result<()>,
    ) -> Result<bool> {
        let _ = (templates, plan, each);
        Ok(false)
    }

    /// The static files of `ripple generate` for a static plan: `(path
    /// from the repository root, text)`.
    fn generate(&self, templates: &Templates, plan: &Arc<Plan>) -> Result<Vec<(String, String)>>;

    /// Whether `generate` writes a directory of files, one per job, that
    /// ripple owns: files it generated there before and no longer writes
    /// are removed.
    fn generates_directory(&self) -> bool {
        false
    }
}

/// An event's name in a CI system, for messages: `name (VARIABLE)`.
pub(crate) fn unknown_event(value: &str, variable: &str, known: &[&str]) -> Error {
    Error::Usage {
        message: format!("{variable} is `{value}`, which is not a build event ripple knows"),
        hint: Some(format!(
            "ripple knows {}; pass `--event` to say which to plan",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The registry login `ripple promote` reads, as (variable, secret): the
/// secrets the Docker plugins of Drone and Woodpecker log in with.
pub const REGISTRY_SECRETS: &[(&str, &str)] = &[
    ("RIPPLE_REGISTRY_USERNAME", "docker_username"),
    ("RIPPLE_REGISTRY_PASSWORD", "docker_password"),
];

/// A shell line that runs `promotion` of `image` and sets `promoted` to
/// `true` or `false` (build), failing the job on any other outcome; then
/// runs `record`, which hands `$promoted` to what follows. `runner` starts
/// ripple (`ripple`, or a container that has it). The image and tags reach
/// the command through `variables`, never inlined.
pub fn promote_line(
    image: &str,
    promotion: &crate::plan::Promotion,
    runner: &str,
    variables: &mut Vec<(String, String)>,
    record: &str,
) -> String {
    variables.push(("RIPPLE_PROMOTE_IMAGE".into(), image.to_string()));
    variables.push(("RIPPLE_PROMOTE_FROM".into(), promotion.from.clone()));
    let mut command =
        format!("{runner} promote \"$RIPPLE_PROMOTE_IMAGE\" --from \"$RIPPLE_PROMOTE_FROM\"");
    for (i, tag) in promotion.to.iter().enumerate() {
        variables.push((format!("RIPPLE_PROMOTE_TO_{i}"), tag.clone()));
        command.push_str(&format!(" --to \"$RIPPLE_PROMOTE_TO_{i}\""));
    }
    let outcome = if promotion.else_build {
        // 78: promoted, skip the build; 0: the tested build is missing,
        // build it.
        format!(
            "status=0; {command} --else-build || status=$?; \
             if [ \"$status\" -eq {skip} ]; then promoted=true; \
             elif [ \"$status\" -eq 0 ]; then promoted=false; \
             else exit \"$status\"; fi",
            skip = crate::error::exit::PROMOTED
        )
    } else {
        format!("{command} || exit $?; promoted=true")
    };
    format!("{outcome}; {record}")
}

/// One step of a test stage, for CI systems whose steps share a
/// workspace (Drone, Woodpecker). It borrows from the stage what it
/// repeats: a plan of thousands of jobs is lowered a job at a time, and
/// copies would be most of the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageStep<'a> {
    /// The step's name.
    pub name: Cow<'a, str>,
    /// Its container.
    pub image: &'a str,
    /// Its commands.
    pub commands: Commands<'a>,
    /// Environment variables from secrets: (variable, secret).
    pub secrets: &'static [(&'static str, &'static str)],
    /// Runs in the background (the heartbeat).
    pub detach: bool,
    /// Runs when the status is one of these (the release: success and
    /// failure); empty: on success.
    pub when_status: &'static [&'static str],
}

/// The steps of a test stage: the stage alone, or, holding a slot, an
/// acquire step that writes the slot to `file`, a detached heartbeat, the
/// stage (which reads the slot from `file`) and a release that runs on
/// success and on failure.
///
/// Not a list: a plan of thousands of test stages would allocate one each.
pub fn stage_steps<'a>(
    stage: &'a crate::plan::Stage,
    toolchain: &'a str,
    file: &str,
) -> impl Iterator<Item = StageStep<'a>> {
    let step = |name: Cow<'a, str>, image: &'a str, commands: Commands<'a>| StageStep {
        name,
        image,
        commands,
        secrets: &[],
        detach: false,
        when_status: &[],
    };
    let stage_commands = stage.commands.iter().map(|c| Cow::Borrowed(c.as_str()));
    let Some(slot) = &stage.slot else {
        let commands = Commands::Stage(&stage.commands);
        let alone = step(Cow::Borrowed(&stage.name), toolchain, commands);
        return [Some(alone), None, None, None].into_iter().flatten();
    };
    let from = format!("--from {file}");
    const SECRETS: &[(&str, &str)] = &[
        ("RIPPLE_SLOTS_URL", "ripple_slots_url"),
        ("RIPPLE_SLOTS_KEY", "ripple_slots_key"),
    ];
    let named = |role: &str| Cow::Owned(format!("{}-{role}", stage.name));
    let mut commands = vec![Cow::Owned(format!("set -a; . ./{file}; set +a"))];
    commands.extend(stage_commands);
    let acquire = StageStep {
        secrets: SECRETS,
        ..step(
            named("acquire"),
            &slot.runner,
            Commands::Made(vec![Cow::Owned(slot.acquire(file))]),
        )
    };
    let heartbeat = StageStep {
        secrets: SECRETS,
        detach: true,
        ..step(
            named("heartbeat"),
            &slot.runner,
            Commands::Made(vec![Cow::Owned(slot.heartbeat(&from))]),
        )
    };
    let release = StageStep {
        secrets: SECRETS,
        when_status: &["success", "failure"],
        ..step(
            named("release"),
            &slot.runner,
            Commands::Made(vec![Cow::Owned(slot.release(&from))]),
        )
    };
    let stage = step(
        Cow::Borrowed(&stage.name),
        toolchain,
        Commands::Made(commands),
    );
    [Some(acquire), Some(heartbeat), Some(stage), Some(release)]
        .into_iter()
        .flatten()
}

/// A test stage's steps as a backend whose steps share a workspace writes
/// them, the slot in `.ripple-slot` (see [`stage_steps`]).
pub fn test_steps<'a, S: From<StageStep<'a>>>(
    stage: &'a crate::plan::Stage,
    toolchain: &'a str,
) -> impl Iterator<Item = S> {
    stage_steps(stage, toolchain, ".ripple-slot").map(S::from)
}

/// A step's shell commands: a test stage's own, borrowed from the plan,
/// or made for the step (a gate, a slot's acquire). Borrowed, not copied
/// into a list: a plan of thousands of test steps would allocate one each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commands<'a> {
    /// A test stage's commands.
    Stage(&'a [compact_str::CompactString]),
    /// Commands made for the step.
    Made(Vec<Cow<'a, str>>),
}

impl Commands<'_> {
    /// The commands, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (stage, made) = match self {
            Commands::Stage(commands) => (*commands, &[][..]),
            Commands::Made(commands) => (&[][..], commands.as_slice()),
        };
        let stage = stage.iter().map(|c| c.as_str());
        stage.chain(made.iter().map(|c| c.as_ref()))
    }
}

impl Default for Commands<'_> {
    fn default() -> Self {
        Commands::Made(Vec::new())
    }
}

impl<'a> From<Vec<Cow<'a, str>>> for Commands<'a> {
    fn from(commands: Vec<Cow<'a, str>>) -> Self {
        Commands::Made(commands)
    }
}

/// A list, as the templates read it.
impl serde::Serialize for Commands<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}
