//! Drone: multi-document pipelines, one per job, with `plugins/docker`
//! (or the buildx plugin) publishing images; a static `.drone.yml` whose
//! pipelines start with `ripple gate`, which ends them early with exit 78.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::{Backend, BuildEnv, Commands, Dollar, Rendered, Templates, Vars};
use crate::changes::{Event, Names};
use crate::error::Result;
use crate::plan::{self, Job, Plan, Work};

mod write;

/// The Drone plugin that builds and publishes images.
pub const DOCKER_PLUGIN: &str = "plugins/docker";

/// The Drone plugin for multi-platform builds (Docker buildx).
pub const BUILDX_PLUGIN: &str = "thegeeklab/drone-docker-buildx";

/// The exit code with which a Drone step ends its pipeline early, as a
/// success: `ripple gate` uses it for a service with nothing to do.
pub const SKIP: u8 = 78;

/// The entry template.
pub const TEMPLATE: &str = "drone.yml.j2";

/// Where `generate` writes, from the repository root.
pub const FILE: &str = ".drone.yml";

/// Drone.
pub struct Drone;

impl Backend for Drone {
    fn name(&self) -> &'static str {
        "drone"
    }

    fn detects(&self, vars: &Vars<'_>) -> bool {
        vars.get("DRONE").is_some() || vars.get("DRONE_BUILD_EVENT").is_some()
    }

    fn build_env(&self, vars: &Vars<'_>) -> Result<BuildEnv> {
        let event = match vars.get("DRONE_BUILD_EVENT") {
            None => None,
            // Drone's names are ripple's.
            Some(name) => Some(Event::parse(&name).ok_or_else(|| {
                super::unknown_event(&name, "DRONE_BUILD_EVENT", &Event::ALL.map(Event::as_str))
            })?),
        };
        Ok(BuildEnv {
            event,
            commit_sha: vars.get("DRONE_COMMIT_SHA"),
            before: vars.get("DRONE_COMMIT_BEFORE"),
            branch: vars.get("DRONE_BRANCH"),
            tag: vars.get("DRONE_TAG"),
            target_branch: vars.get("DRONE_TARGET_BRANCH"),
            deploy_to: vars.get("DRONE_DEPLOY_TO"),
        })
    }

    fn names(&self) -> Names {
        Names {
            event: "DRONE_BUILD_EVENT",
            commit_sha: "DRONE_COMMIT_SHA",
            target_branch: "DRONE_TARGET_BRANCH",
            branch: "DRONE_BRANCH",
            before: "DRONE_COMMIT_BEFORE",
            tag: "DRONE_TAG",
            deploy_to: "DRONE_DEPLOY_TO",
        }
    }

    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            TEMPLATE,
            include_str!("../../../templates/drone/drone.yml.j2"),
        )]
    }

    fn dollar(&self) -> Dollar {
        // Drone substitutes `${...}` in the raw text before parsing.
        Dollar::Double
    }

    fn plan(
        &self,
        templates: &Templates,
        plan: &Arc<Plan>,
        out: &mut dyn std::io::Write,
    ) -> Result<Rendered> {
        render_to(templates, plan, out)?;
        Ok(Rendered::Written)
    }

    fn generate(&self, templates: &Templates, plan: &Arc<Plan>) -> Result<Vec<(String, String)>> {
        Ok(vec![(FILE.to_string(), render(templates, plan)?)])
    }
}

/// The Drone YAML for `plan`.
pub fn render(templates: &Templates, plan: &Arc<Plan>) -> Result<String> {
    super::templates::rendered(|text| render_to(templates, plan, text))
}

/// [`render`] into `out` as it goes: written directly while the template
/// is the shipped one (the same text, in a fraction of the time),
/// evaluated when `--templates` replaces it.
pub fn render_to(
    templates: &Templates,
    plan: &Arc<Plan>,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    if templates.is_shipped(TEMPLATE) {
        // A failed write is the writer's to report.
        let _ = write::write(plan, out);
        return Ok(());
    }
    templates.render_to(TEMPLATE, "plan", &lower(plan), out)
}

/// What the Drone template reads: a plan of pipelines.
#[derive(Debug, Clone, Serialize)]
pub struct DronePlan {
    /// The event planned for; `None` for a static file.
    pub event: Option<Event>,
    /// Why these pipelines, in one line.
    pub reason: String,
    /// [`Pipeline`]s in topological order (a pipeline only depends on
    /// earlier ones), each lowered as the template reaches it.
    pub pipelines: minijinja::Value,
    /// When `pipelines` is empty: why nothing runs.
    pub idle_reason: Option<String>,
}

/// One Drone pipeline, for one job. It borrows what the job holds: a
/// plan of thousands of jobs is lowered a job at a time, and copies
/// would be most of the work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pipeline<'a> {
    /// Unique in the plan.
    pub name: &'a str,
    /// The service it is for.
    pub service: &'a str,
    /// Pipelines that must succeed first.
    pub depends_on: &'a [String],
    /// When Drone runs it.
    pub trigger: Trigger<'a>,
    /// Steps, run in order.
    pub steps: Vec<Step<'a>>,
    /// Containers running beside the steps.
    pub sidecars: Vec<Sidecar<'a>>,
}

/// A pipeline's `trigger`: every non-empty list must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Trigger<'a> {
    /// Drone events.
    pub event: Cow<'static, [&'static str]>,
    /// Branches (for pushes).
    pub branch: &'a [String],
    /// Git refs, globs allowed (for tags).
    #[serde(rename = "ref")]
    pub refs: Vec<String>,
}

/// One step of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step<'a> {
    /// `gate`, `lint`, `unit`, `functional` or `publish`.
    pub name: Cow<'a, str>,
    /// The container it runs in.
    pub image: &'a str,
    /// Shell commands, for test steps.
    pub commands: Commands<'a>,
    /// Environment variables from Drone secrets: variable → secret.
    pub secrets: BTreeMap<&'static str, &'static str>,
    /// Runs in the background while the pipeline goes on.
    pub detach: bool,
    /// Runs only when the pipeline's status is one of these (empty: on
    /// success, Drone's default).
    pub when_status: &'static [&'static str],
    /// Settings of the docker plugin, for publish steps.
    pub publish: Option<Publish>,
}

/// Settings of a `plugins/docker` (or buildx) step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publish {
    /// Image repository, registry included.
    pub repo: String,
    /// Registry host to log in to, when not Docker Hub.
    pub registry: Option<String>,
    /// Dockerfile path.
    pub dockerfile: String,
    /// Build context.
    pub context: String,
    /// Tags, all explicit (never `auto_tag`).
    pub tags: Vec<String>,
    /// `--build-arg`s as `KEY=VALUE`, sorted by key.
    pub build_args: Vec<String>,
    /// The one target platform (`plugins/docker`'s `platform`).
    pub platform: Option<String>,
    /// Several target platforms (the buildx plugin's `platforms`).
    pub platforms: Vec<String>,
}

/// A Drone `services` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sidecar<'a> {
    /// Host name.
    pub name: &'a str,
    /// Image.
    pub image: &'a str,
    /// Environment.
    pub environment: &'a BTreeMap<String, String>,
}

/// The neutral plan as Drone pipelines.
pub fn lower(plan: &Arc<Plan>) -> DronePlan {
    DronePlan {
        event: plan.event,
        reason: reason(plan),
        pipelines: super::templates::per_job(plan, |plan, job| {
            minijinja::Value::from(minijinja::value::Serde(pipeline(
                job,
                plan.ripple_image.as_deref(),
            )))
        }),
        idle_reason: plan.idle_reason.clone(),
    }
}

/// The plan's one-line reason; a static file's says that gates decide.
fn reason(plan: &Plan) -> String {
    if plan.event.is_none() {
        format!("{}, each pipeline gated by `ripple gate`", plan.reason)
    } else {
        plan.reason.clone()
    }
}

fn pipeline<'a>(job: &'a Job, ripple_image: Option<&'a str>) -> Pipeline<'a> {
    let trigger = Trigger {
        event: Event::names(&job.when.events),
        branch: &job.when.branches,
        refs: job
            .when
            .tags
            .iter()
            .map(|glob| format!("refs/tags/{glob}"))
            .collect(),
    };
    // In a static file the gate decides at run time, and for an image
    // writes the tags to `.tags`, which `plugins/docker` reads when its
    // `tags` is unset.
    // With release by promotion the gate also promotes, and exits 78
    // when it did.
    let promotes = matches!(&job.work, Work::Image(image) if image.promote.is_some());
    let gate = job.gated.then(|| {
        let extra = match (&job.work, promotes) {
            (Work::Image(_), true) => " --tags-file .tags --promote",
            (Work::Image(_), false) => " --tags-file .tags",
            (Work::Tests(_), _) => "",
        };
        Step {
            name: "gate".into(),
            image: ripple_image.unwrap_or(crate::manifest::DEFAULT_RIPPLE_IMAGE),
            commands: vec![format!("ripple gate {} --deepen{extra}", job.service).into()].into(),
            secrets: if promotes {
                registry_secrets()
            } else {
                BTreeMap::new()
            },
            detach: false,
            when_status: &[],
            publish: None,
        }
    });
    // One list, sized once: the gate, then the work's steps.
    let mut steps = Vec::with_capacity(usize::from(gate.is_some()) + work_steps(&job.work));
    steps.extend(gate);
    let sidecars = match &job.work {
        Work::Tests(tests) => {
            for stage in &tests.stages {
                steps.extend(super::test_steps(stage, &tests.toolchain));
            }
            tests
                .sidecars
                .iter()
                .map(|s| Sidecar {
                    name: &s.name,
                    image: &s.image,
                    environment: &s.environment,
                })
                .collect()
        }
        Work::Image(image) => {
            let promote = image.promote.as_ref().filter(|_| !job.gated);
            steps.extend(promote.map(|promotion| promote_step(&image.image, promotion)));
            steps.push(publish_step(image));
            Vec::new()
        }
    };
    Pipeline {
        name: &job.name,
        service: &job.service,
        depends_on: &job.needs,
        trigger,
        steps,
        sidecars,
    }
}

/// How many steps `work` takes at most: a test stage one, or four holding
/// a slot; an image a promotion and a publish.
fn work_steps(work: &Work) -> usize {
    match work {
        Work::Tests(tests) => (tests.stages.iter())
            .map(|stage| if stage.slot.is_some() { 4 } else { 1 })
            .sum(),
        Work::Image(_) => 2,
    }
}

/// `ripple promote`: after promoting it exits 78, and Drone skips the
/// build that follows.
fn promote_step<'a>(image: &str, promotion: &'a plan::Promotion) -> Step<'a> {
    Step {
        name: "promote".into(),
        image: &promotion.runner,
        commands: vec![promotion.command(image).into()].into(),
        secrets: registry_secrets(),
        detach: false,
        when_status: &[],
        publish: None,
    }
}

impl<'a> From<super::StageStep<'a>> for Step<'a> {
    fn from(s: super::StageStep<'a>) -> Step<'a> {
        Step {
            name: s.name,
            image: s.image,
            commands: s.commands,
            secrets: s.secrets.iter().copied().collect(),
            detach: s.detach,
            when_status: s.when_status,
            publish: None,
        }
    }
}

/// The registry login `ripple promote` reads, as Drone's map of secrets.
fn registry_secrets() -> BTreeMap<&'static str, &'static str> {
    super::REGISTRY_SECRETS.iter().copied().collect()
}

/// `plugins/docker` with one platform (or none), the buildx plugin with
/// several.
fn publish_step(image: &plan::ImageBuild) -> Step<'static> {
    let multi = image.platforms.len() > 1;
    Step {
        name: "publish".into(),
        image: if multi { BUILDX_PLUGIN } else { DOCKER_PLUGIN },
        commands: Commands::default(),
        secrets: BTreeMap::new(),
        detach: false,
        when_status: &[],
        publish: Some(Publish {
            repo: image.image.clone(),
            registry: image.registry.clone(),
            dockerfile: image.dockerfile.clone(),
            context: image.context.clone(),
            tags: image.tags.clone(),
            build_args: image.build_args.clone(),
            platform: if multi {
                None
            } else {
                image.platforms.first().cloned()
            },
            platforms: if multi {
                image.platforms.clone()
            } else {
                Vec::new()
            },
        }),
    }
}
