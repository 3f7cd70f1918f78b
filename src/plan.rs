//! Affected services + event → [`Plan`]: the jobs to run, as plain data
//! for a backend to lower into its CI system's format. Pure: no I/O, no
//! YAML, and no CI system named: a job is a service's test stages or an
//! image build, with the jobs it needs and the builds it is for.

use compact_str::CompactString;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::changes::{ChangeSet, Event, Mode};
use crate::graph::Affected;
use crate::input::merged_build_args;
use crate::manifest::{Manifest, Release, Service};
use crate::pattern::{PathPattern, PatternBody};
use crate::tags::{Use, Values};

/// Everything one build runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The event planned for; `None` for a static file covering every event.
    pub event: Option<Event>,
    /// Why these services, in one line.
    pub reason: String,
    /// The affected services, sorted (every service in a static plan).
    pub services: Vec<CompactString>,
    /// In topological order: a job only needs earlier ones.
    pub jobs: Vec<Job>,
    /// When `jobs` is empty: why nothing runs.
    pub idle_reason: Option<String>,
    /// For a static file: the image that runs ripple itself, to decide at
    /// run time (`[settings] ripple_image`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ripple_image: Option<String>,
    /// For a static file: releases promote tested builds (`release =
    /// "promote"`), decided per image at run time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub promotes: bool,
}

/// One job: a service's tests, or one image's build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Job {
    /// Unique in the plan: `test-<service>`, `publish-<service>` or
    /// `release-<service>`.
    pub name: CompactString,
    /// The service it is for.
    pub service: CompactString,
    /// Jobs that must succeed first, all earlier in the plan.
    pub needs: Vec<String>,
    /// The builds it is for.
    pub when: When,
    /// In a static file the job runs for every build of `when`, and ripple
    /// decides at run time whether it has work.
    pub gated: bool,
    /// In a static file, for CI systems that filter by changed files
    /// themselves: the files whose change can affect the job's service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Paths>,
    /// What it does.
    #[serde(flatten)]
    pub work: Work,
}

/// The builds a job is for: every non-empty list must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct When {
    /// Events; borrowed when one, as nearly always: each of thousands of
    /// jobs has its own `When`.
    pub events: Cow<'static, [Event]>,
    /// Branches (for pushes).
    pub branches: Vec<String>,
    /// Tag globs (for tag events), such as `release-*`.
    pub tags: Vec<String>,
}

impl When {
    fn event(event: Event) -> When {
        static EVENTS: [Event; Event::ALL.len()] = Event::ALL;
        let events = match EVENTS.iter().position(|e| *e == event) {
            Some(k) => Cow::Borrowed(std::slice::from_ref(&EVENTS[k])),
            None => Cow::Owned(vec![event]),
        };
        When {
            events,
            ..When::default()
        }
    }
}

/// Changed files that make a job run, as globs over the whole path (`*`
/// and `?` do not cross `/`, `**` crosses any number of directories).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Paths {
    /// A change matching any of these can affect the service: its own
    /// patterns, those of everything it depends on, `global_paths`, and its
    /// build arguments file. Exclusions are left out (an exclusion of one
    /// service does not exclude for another), so this may match more than
    /// ripple would.
    pub include: Vec<String>,
    /// `[settings] ignore`: changes here affect nothing.
    pub exclude: Vec<String>,
}

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Runs a service's test stages. Shared by the jobs of services that
    /// share their manifest's test setup: a plan of thousands of test jobs
    /// holds a few.
    Tests(Arc<Tests>),
    /// Builds and publishes an image; boxed, as a plan holds thousands of
    /// test jobs for a few image jobs and each job is as large as its work.
    Image(Box<ImageBuild>),
}

/// A service's test stages, each a list of commands run in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tests {
    /// The container the commands run in.
    pub toolchain: CompactString,
    /// `lint`, `unit`, `functional`: those with commands, in that order.
    pub stages: Vec<Stage>,
    /// Containers running beside the tests.
    pub sidecars: Vec<Sidecar>,
}

/// One test stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// `lint`, `unit` or `functional`.
    pub name: CompactString,
    /// Shell commands, run in order, stopping at the first failure.
    pub commands: Vec<CompactString>,
    /// A slot of a shared environment the commands run holding (the
    /// functional stage of a service with `environment`).
    /// Boxed: few stages hold one, and a large plan holds thousands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<Box<SlotUse>>,
}

/// Holding a slot around a stage: acquired before it, renewed by a
/// detached heartbeat every `renew_every_s`, released on success and on
/// failure. A cancelled build's slot frees itself at the ttl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotUse {
    /// The environment.
    pub environment: String,
    /// Its ttl, in seconds.
    pub ttl_s: u64,
    /// The heartbeat's period: a third of the ttl.
    pub renew_every_s: u64,
    /// How long to wait in line.
    pub wait: String,
    /// The image that runs `ripple slot` (`[settings] ripple_image`).
    pub runner: String,
}

impl SlotUse {
    /// `ripple slot acquire ...`, writing the slot's lines to `file`.
    pub fn acquire(&self, file: &str) -> String {
        format!(
            "ripple slot acquire {} --wait {} --output {file}",
            self.environment, self.wait
        )
    }

    /// The heartbeat: `ripple slot renew --every ...` of the lease in
    /// `lease` (`--from FILE` or `--lease "$VAR"`).
    pub fn heartbeat(&self, lease: &str) -> String {
        format!("ripple slot renew {lease} --every {}s", self.renew_every_s)
    }

    /// `ripple slot release ...`.
    pub fn release(&self, lease: &str) -> String {
        format!("ripple slot release {lease}")
    }
}

/// How long a functional stage waits in line for its slot.
pub const SLOT_WAIT: &str = "30m";

/// An image to build and publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageBuild {
    /// Image repository, registry included.
    pub image: String,
    /// Registry host to log in to, when not Docker Hub.
    pub registry: Option<String>,
    /// Dockerfile path.
    pub dockerfile: String,
    /// Build context.
    pub context: String,
    /// Tags, all explicit; empty in a static file, where ripple gives them
    /// at run time.
    pub tags: Vec<String>,
    /// `--build-arg`s as `KEY=VALUE`, sorted by key.
    pub build_args: Vec<String>,
    /// Target platforms; empty: the builder's own.
    pub platforms: Vec<String>,
    /// Release by promotion: retag the build a publish push made from the
    /// same inputs before building; the build runs only when that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote: Option<Promotion>,
}

/// `ripple promote IMAGE --from FROM --to TO...`, run before an image's
/// build: when it promoted, the build is skipped. In a static file `from`
/// and `to` are empty: `ripple gate --promote` finds them at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Promotion {
    /// The tag of the image's tested build: `in-<hash>`.
    pub from: String,
    /// The tags it gets.
    pub to: Vec<String>,
    /// When `from` is missing, say so and let the build run (else fail:
    /// `--strict`).
    pub else_build: bool,
    /// The image that runs ripple (`[settings] ripple_image`).
    pub runner: String,
}

impl Promotion {
    /// The command line that promotes `image`; every value is a valid
    /// Docker reference or tag, so it needs no quoting.
    pub fn command(&self, image: &str) -> String {
        let mut line = format!("ripple promote {} --from {}", shell_word(image), self.from);
        for tag in &self.to {
            line.push_str(" --to ");
            line.push_str(tag);
        }
        if self.else_build {
            line.push_str(" --else-build");
        }
        line
    }
}

/// A container started beside a service's tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sidecar {
    /// Host name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Environment.
    pub environment: BTreeMap<String, String>,
}

/// How one family of jobs is named, for which builds, and whether gated.
struct Family<'a> {
    /// `test-`, `publish-` or `release-`.
    prefix: &'a str,
    when: When,
    gated: bool,
}

impl Family<'_> {
    fn name(&self, service: &str) -> CompactString {
        // Not `format_compact!`: the formatting machinery costs more than
        // the rest of a job.
        let mut name = CompactString::with_capacity(self.prefix.len() + service.len());
        name.push_str(self.prefix);
        name.push_str(service);
        name
    }

    fn job(&self, service: &str, needs: Vec<String>, work: Work) -> Job {
        Job {
            name: self.name(service),
            service: service.into(),
            needs,
            when: self.when.clone(),
            gated: self.gated,
            paths: None,
            work,
        }
    }
}

/// `word` as one shell word: as it is when it holds only characters of
/// image references and tags, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':' | '@');
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Which tags an image job gets.
#[derive(Debug, Clone, Copy)]
enum Tagging<'a> {
    /// A publish push: the `push` templates.
    Push { branch: &'a str, sha: &'a str },
    /// A release: the `release` templates.
    Release { version: &'a str, sha: &'a str },
    /// A promotion: the target.
    Promote { target: &'a str },
    /// A static file: ripple gives them at run time.
    AtRunTime,
}

/// Builds the plan for `changes`, whose affected set is `affected`.
pub fn plan(manifest: &Manifest, changes: &ChangeSet, affected: &Affected) -> Plan {
    let family = |prefix| Family {
        prefix,
        when: When::event(changes.event),
        gated: false,
    };
    let jobs = match (changes.event, changes.mode) {
        (_, Mode::None) => Vec::new(),
        (Event::PullRequest, mode) => {
            let mut jobs = test_jobs(manifest, affected, &family("test-"));
            let paths = (mode == Mode::Diff).then_some(changes.paths.as_slice());
            jobs.extend(sync_check(manifest, paths, &family("")));
            jobs
        }
        (Event::Push | Event::Tag | Event::Promote, _) => {
            let sha = changes.head.as_deref().unwrap_or_default();
            let tagging = match changes.event {
                Event::Push => Tagging::Push {
                    branch: changes.branch.as_deref().unwrap_or("unknown"),
                    sha,
                },
                Event::Tag => Tagging::Release {
                    version: changes.version.as_deref().unwrap_or("unknown"),
                    sha,
                },
                _ => Tagging::Promote {
                    target: changes.target.as_deref().unwrap_or("unknown"),
                },
            };
            image_jobs(
                manifest,
                affected,
                tagging,
                &changes.args.values,
                !changes.strict,
                &family("publish-"),
            )
        }
        _ => Vec::new(),
    };
    let idle_reason = jobs.is_empty().then(|| idle_reason(changes, affected));
    Plan {
        event: Some(changes.event),
        reason: changes.reason.clone(),
        services: affected.services.iter().map(|s| s.name.clone()).collect(),
        jobs,
        idle_reason,
        ripple_image: None,
        promotes: false,
    }
}

fn idle_reason(changes: &ChangeSet, affected: &Affected) -> String {
    if changes.mode == Mode::None {
        return changes.reason.clone();
    }
    if affected.services.is_empty() {
        return format!("{}; no service is affected", changes.reason);
    }
    let what = if changes.event == Event::PullRequest {
        "lint, unit or functional commands"
    } else {
        "an image to build"
    };
    format!(
        "{}; {} affected service(s), none with {what}",
        changes.reason,
        affected.services.len()
    )
}

/// A service's test stages, when it has a toolchain and any commands.
fn tests_of(manifest: &Manifest, service: &Service) -> Option<Arc<Tests>> {
    let toolchain = service.tests.toolchain.as_ref()?;
    let slot = service.tests.environment.as_ref().and_then(|name| {
        let environment = manifest
            .environments
            .iter()
            .find(|e| e.name == name.as_str())?;
        Some(Box::new(SlotUse {
            environment: environment.name.clone(),
            ttl_s: environment.ttl_s,
            renew_every_s: (environment.ttl_s / 3).max(1),
            wait: SLOT_WAIT.into(),
            runner: manifest.settings.ripple_image.clone(),
        }))
    });
    let stages: Vec<Stage> = service
        .test_stages()
        .map(|(stage, commands)| Stage {
            name: stage.into(),
            commands: commands.to_vec(),
            slot: if stage == "functional" {
                slot.clone()
            } else {
                None
            },
        })
        .collect();
    if stages.is_empty() {
        return None;
    }
    Some(Arc::new(Tests {
        toolchain: toolchain.clone(),
        stages,
        sidecars: (service.tests.sidecars.iter())
            .map(|s| Sidecar {
                name: s.name.clone(),
                image: s.image.clone(),
                environment: s.environment.clone(),
            })
            .collect(),
    }))
}

fn test_jobs(manifest: &Manifest, affected: &Affected, family: &Family<'_>) -> Vec<Job> {
    // A job's tests depend only on its service's test setup, which the
    // services that write theirs the same share: made once a setup (a run).
    type Made = FxHashMap<*const crate::manifest::TestSetup, Option<Arc<Tests>>>;
    let job = |made: &mut Made, affected: &crate::graph::AffectedService| {
        let service = manifest.service(&affected.name)?;
        let tests = made
            .entry(Arc::as_ptr(&service.tests))
            .or_insert_with(|| tests_of(manifest, service))
            .clone()?;
        Some(family.job(&service.name, Vec::new(), Work::Tests(tests)))
    };
    // Each job depends on its service only: a large plan's are made on
    // two threads, in order.
    let mut jobs = Vec::with_capacity(affected.services.len());
    let Ok(()) = crate::parallel::in_order(
        &affected.services,
        |run| {
            let mut made = Made::default();
            run.iter()
                .filter_map(|a| job(&mut made, a))
                .collect::<Vec<_>>()
        },
        |run| {
            jobs.extend(run);
            Ok::<(), std::convert::Infallible>(())
        },
    );
    jobs
}

/// Image jobs in build order, each needing the base images it waits for;
/// tags from each image's templates, or (static files) none. With
/// `release = "promote"`, pushes add each image's `in-<hash>` tag, and
/// releases and promotions retag that build first (`else_build`: and build
/// when it is missing).
fn image_jobs(
    manifest: &Manifest,
    affected: &Affected,
    tagging: Tagging<'_>,
    file_args: &BTreeMap<String, BTreeMap<String, String>>,
    else_build: bool,
    family: &Family<'_>,
) -> Vec<Job> {
    let promotes = manifest.settings.release == Release::Promote;
    // Layer by layer, so every job comes after those it needs.
    affected
        .build_order
        .iter()
        .flatten()
        .filter_map(|name| {
            let service = manifest.service(name)?;
            let build = service.build.as_ref()?;
            let affected = affected.get(name)?;
            let waits = &affected.waits_for;
            let input = affected.input.as_deref().unwrap_or_default();
            let values = |sha, branch, version| Values {
                sha,
                service: name,
                branch,
                version,
                input,
            };
            let (templates, values) = match tagging {
                Tagging::Push { branch, sha } => (
                    manifest.tag_templates(build, Use::Push),
                    values(sha, branch, ""),
                ),
                Tagging::Release { version, sha } => (
                    manifest.tag_templates(build, Use::Release),
                    values(sha, "", version),
                ),
                Tagging::Promote { .. } | Tagging::AtRunTime => (Vec::new(), values("", "", "")),
            };
            let mut tags: Vec<String> = Vec::with_capacity(templates.len() + 1);
            if let Tagging::Promote { target } = tagging {
                tags.push(docker_tag(target));
            }
            for tag in templates.iter().map(|t| t.render(&values)) {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            // What promotes it later: the tag of its inputs, on every build.
            let promotion = (promotes && !input.is_empty()).then(|| {
                let to = tags.clone();
                if !tags.iter().any(|t| t == input) {
                    tags.push(input.to_string());
                }
                Promotion {
                    from: input.to_string(),
                    to,
                    else_build,
                    runner: manifest.settings.ripple_image.clone(),
                }
            });
            let promote = match tagging {
                Tagging::Release { .. } | Tagging::Promote { .. } => promotion,
                _ => None,
            };
            let image = ImageBuild {
                image: build.image.as_str().into(),
                registry: registry_of(&build.image),
                dockerfile: build.dockerfile.as_str().into(),
                context: build.context.as_str().into(),
                tags,
                // The file's declared arguments, then `build_args`, which
                // win; sorted by key.
                build_args: merged_build_args(build, file_args.get(name.as_str()))
                    .into_iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect(),
                platforms: build.extras().platforms.clone(),
                promote,
            };
            let needs = waits.iter().map(|w| family.name(w).into()).collect();
            Some(family.job(name, needs, Work::Image(Box::new(image))))
        })
        .collect()
}

/// The image job of `service` and its promotion, when it has one.
pub fn promotion<'p>(plan: &'p Plan, service: &str) -> Option<(&'p ImageBuild, &'p Promotion)> {
    plan.jobs.iter().find_map(|job| match &job.work {
        Work::Image(image) if job.service == service => {
            image.promote.as_ref().map(|p| (&**image, p))
        }
        _ => None,
    })
}

/// The registry host of an image reference, when it names one: the first
/// component holds a `.` or `:`, or is `localhost` (Docker's own rule).
pub fn registry_of(image: &str) -> Option<String> {
    let (first, _) = image.split_once('/')?;
    (first.contains(['.', ':']) || first == "localhost").then(|| first.to_string())
}

/// The plan of a static file (`ripple generate`): every service and every
/// event, each job gated, so that ripple decides at run time from the
/// build exactly as `plan` would. `all` is the affected set of a change
/// that affects everything (it carries the build order).
pub fn static_plan(
    manifest: &Manifest,
    all: &Affected,
    file_args: &BTreeMap<String, BTreeMap<String, String>>,
) -> Plan {
    let settings = &manifest.settings;
    let tests = Family {
        prefix: "test-",
        when: When::event(Event::PullRequest),
        gated: true,
    };
    let publish = Family {
        prefix: "publish-",
        when: When {
            branches: settings.publish_branches.clone(),
            ..When::event(Event::Push)
        },
        gated: true,
    };
    let release = Family {
        prefix: "release-",
        when: When {
            tags: settings.release_tag.globs().collect(),
            ..When::event(Event::Tag)
        },
        gated: true,
    };
    let mut jobs = test_jobs(manifest, all, &tests);
    let sync = Family {
        prefix: "",
        gated: false,
        ..tests
    };
    jobs.extend(sync_check(manifest, None, &sync).map(|mut job| {
        job.paths = Some(Paths {
            include: sync_watched(manifest),
            exclude: Vec::new(),
        });
        job
    }));
    if !settings.publish_branches.is_empty() {
        jobs.extend(image_jobs(
            manifest,
            all,
            Tagging::AtRunTime,
            file_args,
            true,
            &publish,
        ));
    }
    let mut releases = image_jobs(manifest, all, Tagging::AtRunTime, file_args, true, &release);
    if settings.release == Release::Promote {
        for job in &mut releases {
            if let Work::Image(image) = &mut job.work {
                image.promote = Some(Promotion {
                    from: String::new(),
                    to: Vec::new(),
                    else_build: true,
                    runner: settings.ripple_image.clone(),
                });
            }
        }
    }
    jobs.extend(releases);
    // Release builds run every image: no path filter.
    let filters = path_filters(manifest);
    for job in jobs.iter_mut().filter(|j| j.when.tags.is_empty()) {
        if let Some(i) = manifest.position(&job.service) {
            job.paths = Some(filters[i].clone());
        }
    }
    let idle_reason = jobs
        .is_empty()
        .then(|| "no service has test commands or an image to build".to_string());
    Plan {
        event: None,
        reason: "every service and event".into(),
        services: all.services.iter().map(|s| s.name.clone()).collect(),
        jobs,
        idle_reason,
        ripple_image: Some(settings.ripple_image.clone()),
        promotes: settings.release == Release::Promote,
    }
}

/// The name of the job that checks the manifest's `discovered` keys.
pub const SYNC_CHECK: &str = "ripple-sync";

/// With discovery on, a pull request that changes the manifest or a file a
/// source reads (`changed`; `None`: whatever changed) gets a job running
/// `ripple sync --check`, so a stale `discovered` key fails the check.
fn sync_check(manifest: &Manifest, changed: Option<&[String]>, family: &Family<'_>) -> Option<Job> {
    let settings = &manifest.settings;
    if settings.discover.is_empty() {
        return None;
    }
    if let Some(changed) = changed {
        let globs: Vec<globset::GlobMatcher> = sync_watched(manifest)
            .iter()
            .filter_map(|g| crate::pattern::compile(g).ok())
            .map(|g| g.compile_matcher())
            .collect();
        if !changed
            .iter()
            .any(|path| globs.iter().any(|g| g.is_match(path)))
        {
            return None;
        }
    }
    let mut job = family.job(
        SYNC_CHECK,
        Vec::new(),
        Work::Tests(Arc::new(Tests {
            toolchain: settings.ripple_image.as_str().into(),
            stages: vec![Stage {
                name: "sync".into(),
                commands: vec!["ripple sync --check".into()],
                slot: None,
            }],
            sidecars: Vec::new(),
        })),
    );
    job.service = CompactString::default();
    Some(job)
}

/// The manifest and every file a discovery source it enables reads.
fn sync_watched(manifest: &Manifest) -> Vec<String> {
    std::iter::once(crate::manifest::MANIFEST_FILE)
        .chain(
            manifest
                .settings
                .discover
                .iter()
                .flat_map(|s| crate::discover::watched(s).iter().copied()),
        )
        .map(str::to_string)
        .collect()
}

/// For each service, the globs of every file whose change can affect it:
/// its own and its dependencies' (transitively) path patterns and build
/// arguments files, and `global_paths`; `[settings] ignore` excluded.
fn path_filters(manifest: &Manifest) -> Vec<Paths> {
    let settings = &manifest.settings;
    let globs_of = |patterns: &[PathPattern]| -> Vec<String> {
        patterns
            .iter()
            .filter(|p| !p.exclude)
            .flat_map(pattern_globs)
            .collect()
    };
    let global = globs_of(&settings.global_paths);
    let exclude = globs_of(&settings.ignore);
    let own: Vec<Vec<String>> = manifest
        .services
        .iter()
        .map(|service| {
            let mut globs = globs_of(&service.paths);
            if let Some(file) = service
                .build
                .as_ref()
                .and_then(|b| b.extras().build_args_file.as_ref())
            {
                globs.push(escape_glob(file));
            }
            globs
        })
        .collect();
    let mut seen = vec![usize::MAX; manifest.services.len()];
    (0..manifest.services.len())
        .map(|start| {
            // Depth first over `depends_on`, each service once.
            let mut include: Vec<String> = Vec::new();
            let mut stack = vec![start];
            seen[start] = start;
            while let Some(at) = stack.pop() {
                include.extend(own[at].iter().cloned());
                for dep in manifest.dependencies(at) {
                    if seen[dep] != start {
                        seen[dep] = start;
                        stack.push(dep);
                    }
                }
            }
            include.extend(global.iter().cloned());
            let mut unique = std::collections::HashSet::new();
            include.retain(|glob| unique.insert(glob.clone()));
            Paths {
                include,
                exclude: exclude.clone(),
            }
        })
        .collect()
}

/// A path pattern as globs: a prefix `p` is `p` and `p/**`, its glob
/// characters escaped; a glob is itself.
fn pattern_globs(pattern: &PathPattern) -> Vec<String> {
    match &pattern.body {
        PatternBody::Prefix(prefix) => {
            let literal = escape_glob(prefix);
            vec![format!("{literal}/**"), literal]
        }
        PatternBody::Glob(glob) => vec![glob.to_string()],
    }
}

/// `text` as a glob that matches exactly it.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a service's job has work for a build, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The job's remaining steps should run.
    pub runs: bool,
    /// One line for the build log.
    pub reason: String,
}

/// The verdict of `ripple gate` for the service `name`: its job runs
/// exactly when `plan` (this build's plan) has one for it.
pub fn gate(name: &str, changes: &ChangeSet, affected: &Affected, plan: &Plan) -> Verdict {
    let runs = plan.jobs.iter().any(|j| j.service == name);
    let why = if runs {
        format!("`{name}` is affected: its pipeline runs")
    } else if changes.mode == Mode::None {
        changes.reason.clone()
    } else if affected.get(name).is_none() {
        format!("`{name}` is not affected")
    } else {
        format!(
            "`{name}` is affected, but a `{}` build has nothing for it to do",
            changes.event
        )
    };
    let verb = if runs { "run" } else { "skip" };
    Verdict {
        runs,
        reason: format!("{verb}: {why}"),
    }
}

/// The tags `plan` gives the image of service `name`, when it builds one.
pub fn image_tags<'p>(plan: &'p Plan, name: &str) -> Option<&'p [String]> {
    plan.jobs
        .iter()
        .filter(|j| j.service == name)
        .find_map(|j| match &j.work {
            Work::Image(image) => Some(image.tags.as_slice()),
            Work::Tests(_) => None,
        })
}

/// Makes text a valid Docker tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
/// `feature/login` becomes `feature-login`.
pub fn docker_tag(text: &str) -> String {
    let mut tag: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        tag.insert(0, '_');
    }
    tag.truncate(128);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_tags_are_valid() {
        assert_eq!(docker_tag("develop"), "develop");
        assert_eq!(docker_tag("feature/login"), "feature-login");
        assert_eq!(docker_tag(".hidden"), "_.hidden");
        assert_eq!(docker_tag(""), "_");
        assert_eq!(docker_tag("a\"b:c#d${X}\n"), "a-b-c-d--X--");
        assert_eq!(docker_tag(&"x".repeat(300)).len(), 128);
        assert_eq!(docker_tag("é"), "_-");
    }

    #[test]
    fn static_jobs_filter_on_their_closure_and_global_paths() {
        let manifest = Manifest::parse(
            r#"
[settings]
global_paths = ["services.toml"]
ignore = ["**/*.md"]

[[service]]
name = "base"
kind = "base-image"
paths = ["docker/base", "!docker/base/*.txt"]
image = "base"
dockerfile = "docker/base/Dockerfile"

[[service]]
name = "lib"
kind = "library"
paths = ["lib/**/*.go"]
depends_on = ["base"]

[[service]]
name = "app"
kind = "image"
paths = ["app"]
depends_on = ["lib"]
image = "app"
dockerfile = "app/Dockerfile"
build_args_file = "cfg/[x].env"
"#,
            "services.toml",
        )
        .unwrap();
        let filters = path_filters(&manifest);
        assert_eq!(
            filters[2].include,
            [
                "app/**",
                "app",
                "cfg/\\[x\\].env",
                "lib/**/*.go",
                "docker/base/**",
                "docker/base",
                "services.toml/**",
                "services.toml"
            ]
        );
        assert_eq!(filters[2].exclude, ["**/*.md"]);
        assert_eq!(
            filters[0].include,
            [
                "docker/base/**",
                "docker/base",
                "services.toml/**",
                "services.toml"
            ]
        );
    }

    #[test]
    fn many_test_jobs_come_in_the_order_of_their_services() {
        let mut text = String::new();
        for i in 0..2_500 {
            // Every third service has no toolchain, so no test job; the
            // others write one of two setups.
            let tests = match i % 3 {
                0 => "",
                1 => "toolchain = \"golang:1\"\nunit = [\"go test\"]\n",
                _ => "toolchain = \"golang:1\"\nunit = [\"go test -race\"]\n",
            };
            text.push_str(&format!(
                "[[service]]\nname = \"s{i:04}\"\nkind = \"library\"\n{tests}\n"
            ));
        }
        let manifest = Manifest::parse(&text, "services.toml").unwrap();
        let affected = Affected {
            services: (manifest.names().iter())
                .map(|name| crate::graph::AffectedService {
                    name: name.clone(),
                    kind: crate::manifest::Kind::Library,
                    files: Vec::new(),
                    edges: Vec::new(),
                    waits_for: Vec::new(),
                    build_args: Vec::new(),
                    input: None,
                })
                .collect(),
            build_order: Vec::new(),
        };
        let family = Family {
            prefix: "test-",
            when: When::event(Event::PullRequest),
            gated: false,
        };
        let jobs = test_jobs(&manifest, &affected, &family);
        let names: Vec<String> = jobs.iter().map(|job| job.name.to_string()).collect();
        let expected: Vec<String> = (0..2_500)
            .filter(|i| i % 3 != 0)
            .map(|i| format!("test-s{i:04}"))
            .collect();
        assert_eq!(names, expected);
        let tests: Vec<&Arc<Tests>> = (jobs.iter())
            .map(|job| match &job.work {
                Work::Tests(tests) => tests,
                Work::Image(_) => panic!("{} builds an image", job.name),
            })
            .collect();
        for (k, tests) in tests.iter().enumerate() {
            let unit = ["go test", "go test -race"][k % 2];
            assert_eq!(tests.stages[0].commands, [unit], "{}", names[k]);
        }
        // Services that write the same setup share their jobs' tests.
        assert!(Arc::ptr_eq(tests[0], tests[2]));
        assert!(Arc::ptr_eq(tests[1], tests[3]));
        assert!(!Arc::ptr_eq(tests[0], tests[1]));
    }

    #[test]
    fn registries_are_found_like_docker_does() {
        assert_eq!(
            registry_of("registry.example.org/app").as_deref(),
            Some("registry.example.org")
        );
        assert_eq!(
            registry_of("localhost:5000/app").as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(registry_of("library/redis"), None);
        assert_eq!(registry_of("redis"), None);
    }
}
