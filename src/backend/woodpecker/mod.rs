//! Woodpecker: one workflow per job. `plan` answers as Woodpecker's
//! configuration extension does (`{"configs": [{"name", "data"}]}`), or
//! writes one file per workflow; `generate` writes `.woodpecker/*.yaml`
//! whose `when.path` lets Woodpecker itself run only the workflows a
//! change can affect.
//!
//! Woodpecker substitutes `${...}` and `$NAME` in the raw text before
//! parsing, and reads `$$` as a literal `$`, as Drone does.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

use super::{Backend, BuildEnv, Commands, Dollar, Rendered, Templates, Vars};
use crate::changes::{Event, Names};
use crate::error::Result;
use crate::plan::{ImageBuild, Job, Paths, Plan, Sidecar, Work};

mod write;

/// A workflow's template.
pub const TEMPLATE: &str = "woodpecker-workflow.yaml.j2";

/// Where `generate` writes, from the repository root.
pub const DIR: &str = ".woodpecker";

/// The plugin that builds and publishes images.
pub const BUILDX_PLUGIN: &str = "woodpeckerci/plugin-docker-buildx";

/// Woodpecker.
pub struct Woodpecker;

impl Backend for Woodpecker {
    fn name(&self) -> &'static str {
        "woodpecker"
    }

    fn detects(&self, vars: &Vars<'_>) -> bool {
        vars.get("CI").as_deref() == Some("woodpecker")
    }

    fn build_env(&self, vars: &Vars<'_>) -> Result<BuildEnv> {
        let event = vars.get("CI_PIPELINE_EVENT").map(|name| event(&name));
        Ok(BuildEnv {
            event,
            commit_sha: vars.get("CI_COMMIT_SHA"),
            // Pushes carry no `before`: the previous pipeline's commit is
            // the base when it is an ancestor (the event rules check).
            before: vars.get("CI_PREV_COMMIT_SHA"),
            branch: vars.get("CI_COMMIT_BRANCH"),
            tag: vars.get("CI_COMMIT_TAG"),
            target_branch: vars.get("CI_COMMIT_TARGET_BRANCH"),
            deploy_to: vars.get("CI_PIPELINE_DEPLOY_TARGET"),
        })
    }

    fn names(&self) -> Names {
        Names {
            event: "CI_PIPELINE_EVENT",
            commit_sha: "CI_COMMIT_SHA",
            target_branch: "CI_COMMIT_TARGET_BRANCH",
            branch: "CI_COMMIT_BRANCH",
            before: "CI_PREV_COMMIT_SHA",
            tag: "CI_COMMIT_TAG",
            deploy_to: "CI_PIPELINE_DEPLOY_TARGET",
        }
    }

    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            TEMPLATE,
            include_str!("../../../templates/woodpecker/woodpecker-workflow.yaml.j2"),
        )]
    }

    fn dollar(&self) -> Dollar {
        Dollar::Double
    }

    fn plan(
        &self,
        templates: &Templates,
        plan: &Arc<Plan>,
        out: &mut dyn std::io::Write,
    ) -> Result<Rendered> {
        // `{"configs":[{"name":…,"data":…},…]}`: each config is made after
        // a comma, which the first one leaves out.
        let mut written = out.write_all(b"{\"configs\":[");
        let mut first = true;
        if let Some(write_run) = shipped_writer(templates, plan) {
            // Escaped into the answer on the threads that write them, a
            // run of configs in one piece.
            let configs = |run: &[Job]| {
                let mut configs = Vec::with_capacity(run.len() * 512);
                write_run(run, &mut |name, data| {
                    configs.push(b',');
                    config(&mut configs, name, &data);
                });
                configs
            };
            if written.is_ok() {
                written = crate::parallel::in_order(&plan.jobs, configs, |configs| {
                    let from = usize::from(std::mem::take(&mut first));
                    out.write_all(&configs[from..])
                });
            }
        } else {
            let mut configs = Vec::new();
            each_workflow(templates, plan, &mut |name, data| {
                configs.clear();
                configs.push(b',');
                config(&mut configs, &name, &data);
                let from = usize::from(std::mem::take(&mut first));
                if written.is_ok() {
                    written = out.write_all(&configs[from..]);
                }
                Ok(())
            })?;
        }
        if written.is_ok() {
            written = out.write_all(b"]}\n");
        }
        // A failed write is the writer's to report.
        let _ = written;
        Ok(Rendered::Answer)
    }

    fn plan_files(
        &self,
        templates: &Templates,
        plan: &Arc<Plan>,
        each: &mut dyn FnMut(String, String) -> Result<()>,
    ) -> Result<bool> {
        each_workflow(templates, plan, &mut |name, data| {
            each(format!("{name}.yaml"), data)
        })?;
        Ok(true)
    }

    fn generate(&self, templates: &Templates, plan: &Arc<Plan>) -> Result<Vec<(String, String)>> {
        Ok(render(templates, plan)?
            .into_iter()
            .map(|(name, data)| (format!("{DIR}/{name}.yaml"), data))
            .collect())
    }

    fn generates_directory(&self) -> bool {
        true
    }
}

/// Woodpecker's event name (`CI_PIPELINE_EVENT`, a pipeline's `event`)
/// in ripple's words.
pub fn event(name: &str) -> Event {
    match name {
        "pull_request" => Event::PullRequest,
        "push" => Event::Push,
        "tag" | "release" => Event::Tag,
        "deployment" => Event::Promote,
        "cron" => Event::Cron,
        // `manual`, a closed pull request, changed labels: nothing is
        // planned unless `--event` says what to plan.
        _ => Event::Custom,
    }
}

/// Ripple's event as Woodpecker names it.
fn event_name(event: Event) -> &'static str {
    match event {
        Event::PullRequest => "pull_request",
        Event::Push => "push",
        Event::Tag => "tag",
        Event::Promote | Event::Rollback => "deployment",
        Event::Cron => "cron",
        Event::Custom => "manual",
    }
}

/// `(workflow name, YAML)` for every job, or one `ripple` workflow saying
/// why nothing runs.
pub fn render(templates: &Templates, plan: &Plan) -> Result<Vec<(String, String)>> {
    let mut workflows = Vec::new();
    each_workflow(templates, plan, &mut |name, text| {
        workflows.push((name, text));
        Ok(())
    })?;
    Ok(workflows)
}

/// [`render`] a workflow at a time: each is lowered, rendered, handed to
/// `each` and dropped before the next.
fn each_workflow(
    templates: &Templates,
    plan: &Plan,
    each: &mut dyn FnMut(String, String) -> Result<()>,
) -> Result<()> {
    if let Some(write_run) = shipped_writer(templates, plan) {
        let workflows = |run: &[Job]| {
            let mut workflows = Vec::with_capacity(run.len());
            write_run(run, &mut |name, text| {
                workflows.push((name.to_string(), text))
            });
            workflows
        };
        return crate::parallel::in_order(&plan.jobs, workflows, |written| {
            (written.into_iter()).try_for_each(|(name, text)| each(name, text))
        });
    }
    let shipped = templates.is_shipped(TEMPLATE);
    for workflow in lower(plan) {
        let text = if shipped {
            write::workflow(&workflow)
        } else {
            templates.render(TEMPLATE, "workflow", &workflow)?
        };
        each(workflow.name.to_string(), text)?;
    }
    Ok(())
}

/// With the shipped template and jobs to run: what writes a run of jobs'
/// workflows, handing each's name and text to `each`. The template is
/// written directly, the same text without a template evaluation per
/// workflow, and runs can be written on two threads.
fn shipped_writer<'p>(
    templates: &Templates,
    plan: &'p Plan,
) -> Option<impl Fn(&[Job], &mut Written<'_>) + Sync + 'p> {
    if !templates.is_shipped(TEMPLATE) || plan.jobs.is_empty() {
        return None;
    }
    let (event, reason) = (plan.event.map(event_name), reason_of(plan));
    let ripple = plan.ripple_image.as_deref();
    Some(move |run: &[Job], each: &mut Written<'_>| {
        for job in run {
            let workflow = workflow(job, event, Cow::Borrowed(&reason), ripple);
            each(workflow.name, write::workflow(&workflow));
        }
    })
}

/// Takes a written workflow's name and text.
type Written<'e> = dyn FnMut(&str, String) + 'e;

/// One `{"name":…,"data":…}` of the answer.
fn config(into: &mut Vec<u8>, name: &str, data: &str) {
    // Writing into memory cannot fail.
    into.extend_from_slice(b"{\"name\":");
    let _ = crate::render::json::string(into, name);
    into.extend_from_slice(b",\"data\":");
    let _ = crate::render::json::string(into, data);
    into.push(b'}');
}

/// What a workflow's template reads.
/// It borrows what its job holds: a plan of thousands of jobs is lowered
/// a job at a time, and copies would be much of the work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workflow<'a> {
    /// The file's name without `.yaml`, which Woodpecker names it by.
    pub name: &'a str,
    /// The event planned for, in Woodpecker's words (static: none).
    pub event: Option<&'static str>,
    /// Why, in one line.
    pub reason: Cow<'a, str>,
    /// When Woodpecker runs it.
    pub when: When<'a>,
    /// In order.
    pub steps: Vec<Step<'a>>,
    /// Containers beside the steps.
    pub services: &'a [Sidecar],
    /// Workflows that must succeed first, when they run at all.
    pub depends_on: &'a [String],
    /// No checkout: the workflow that says why nothing runs.
    pub skip_clone: bool,
}

/// A workflow's `when`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct When<'a> {
    /// Events.
    pub event: Vec<&'static str>,
    /// Branches.
    pub branch: &'a [String],
    /// Refs, globs allowed.
    #[serde(rename = "ref")]
    pub refs: Vec<String>,
    /// Changed files.
    pub path: Option<&'a Paths>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step<'a> {
    /// Unique in the workflow.
    pub name: Cow<'a, str>,
    /// The container.
    pub image: &'a str,
    /// Shell commands (none for the plugin).
    pub commands: Commands<'a>,
    /// The buildx plugin's settings.
    pub publish: Option<Publish>,
    /// Its environment.
    pub environment: Vec<(&'static str, Cow<'a, str>)>,
    /// Environment variables from Woodpecker secrets: (variable, secret).
    pub secrets: &'static [(&'static str, &'static str)],
    /// Runs in the background while the workflow goes on.
    pub detach: bool,
    /// Runs only when the workflow's status is one of these (empty: on
    /// success).
    pub when_status: &'static [&'static str],
}

impl<'a> From<super::StageStep<'a>> for Step<'a> {
    fn from(s: super::StageStep<'a>) -> Step<'a> {
        Step {
            name: s.name,
            image: s.image,
            commands: s.commands,
            publish: None,
            environment: Vec::new(),
            secrets: s.secrets,
            detach: s.detach,
            when_status: s.when_status,
        }
    }
}

/// Settings of `woodpeckerci/plugin-docker-buildx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publish {
    /// Image repository.
    pub repo: String,
    /// Registry host to log in to, when not Docker Hub.
    pub registry: Option<String>,
    /// Dockerfile path.
    pub dockerfile: String,
    /// Build context.
    pub context: String,
    /// Tags; empty in a static file, where `tags_file` names the file
    /// ripple writes them to.
    pub tags: Vec<String>,
    /// `.tags` in a static file.
    pub tags_file: Option<String>,
    /// `KEY=VALUE`.
    pub build_args: Vec<String>,
    /// Target platforms.
    pub platforms: Vec<String>,
}

/// The neutral plan as workflows.
pub fn lower(plan: &Plan) -> impl Iterator<Item = Workflow<'_>> + '_ {
    let event = plan.event.map(event_name);
    let idle = plan.jobs.is_empty().then(|| Workflow {
        name: "ripple",
        event,
        reason: Cow::Borrowed(&plan.reason),
        when: When {
            event: match event {
                Some(event) => vec![event],
                None => vec!["pull_request", "push", "tag"],
            },
            ..When::default()
        },
        steps: vec![Step {
            name: "nothing-to-run".into(),
            image: "alpine:3",
            commands: vec!["echo \"ripple: nothing to run: $RIPPLE_REASON\"".into()].into(),
            publish: None,
            environment: vec![(
                "RIPPLE_REASON",
                Cow::Borrowed(plan.idle_reason.as_deref().unwrap_or_default()),
            )],
            secrets: &[],
            detach: false,
            when_status: &[],
        }],
        services: &[],
        depends_on: &[],
        skip_clone: true,
    });
    let reason = reason_of(plan);
    idle.into_iter().chain(plan.jobs.iter().map(move |job| {
        let reason = Cow::Owned(reason.clone());
        workflow(job, event, reason, plan.ripple_image.as_deref())
    }))
}

/// Why each workflow runs, in one line.
fn reason_of(plan: &Plan) -> String {
    if plan.event.is_none() {
        format!("{}, each workflow run when its `when` matches", plan.reason)
    } else {
        plan.reason.clone()
    }
}

fn workflow<'a>(
    job: &'a Job,
    event: Option<&'static str>,
    reason: Cow<'a, str>,
    ripple: Option<&'a str>,
) -> Workflow<'a> {
    let when = When {
        event: job.when.events.iter().map(|e| event_name(*e)).collect(),
        branch: &job.when.branches,
        refs: job
            .when
            .tags
            .iter()
            .map(|glob| format!("refs/tags/{glob}"))
            .collect(),
        path: job.paths.as_ref(),
    };
    let (steps, services) = match &job.work {
        Work::Tests(tests) => {
            let mut steps = Vec::with_capacity(tests.stages.len());
            for stage in &tests.stages {
                steps.extend(super::test_steps(stage, &tests.toolchain));
            }
            (steps, &tests.sidecars[..])
        }
        Work::Image(image) => (image_steps(job, image, ripple), &[][..]),
    };
    Workflow {
        name: &job.name,
        event,
        reason,
        when,
        steps,
        services,
        depends_on: &job.needs,
        skip_clone: false,
    }
}

/// The buildx plugin; in a static file, after a step in which ripple
/// writes the tags of this build (`--all`: Woodpecker's path filter has
/// already decided that the workflow runs).
fn image_steps<'a>(job: &'a Job, image: &'a ImageBuild, ripple: Option<&'a str>) -> Vec<Step<'a>> {
    if let Some(promotion) = &image.promote {
        // Woodpecker cannot skip a step at run time, so a release promotes
        // and builds nothing: an image no publish push built fails it
        // (as `--strict` does elsewhere), and nothing untested is
        // published.
        let strict = crate::plan::Promotion {
            else_build: false,
            ..promotion.clone()
        };
        let command = if job.gated {
            format!(
                "ripple --ci woodpecker gate {} --all --promote --strict",
                job.service
            )
        } else {
            strict.command(&image.image)
        };
        return vec![Step {
            name: "promote".into(),
            image: &promotion.runner,
            commands: vec![command.into()].into(),
            publish: None,
            environment: Vec::new(),
            secrets: super::REGISTRY_SECRETS,
            detach: false,
            when_status: &[],
        }];
    }
    let tags_file = job.gated.then(|| ".tags".to_string());
    let tags = tags_file.as_ref().map(|file| Step {
        name: "tags".into(),
        image: ripple.unwrap_or(crate::manifest::DEFAULT_RIPPLE_IMAGE),
        commands: vec![
            format!(
                "ripple --ci woodpecker gate {} --all --tags-file {file}",
                job.service
            )
            .into(),
        ]
        .into(),
        publish: None,
        environment: Vec::new(),
        secrets: &[],
        detach: false,
        when_status: &[],
    });
    let publish = Step {
        name: "publish".into(),
        image: BUILDX_PLUGIN,
        commands: Commands::default(),
        publish: Some(Publish {
            repo: image.image.clone(),
            registry: image.registry.clone(),
            dockerfile: image.dockerfile.clone(),
            context: image.context.clone(),
            tags: image.tags.clone(),
            tags_file,
            build_args: image.build_args.clone(),
            platforms: image.platforms.clone(),
        }),
        environment: Vec::new(),
        secrets: &[],
        detach: false,
        when_status: &[],
    };
    tags.into_iter().chain([publish]).collect()
}
