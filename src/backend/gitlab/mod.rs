//! GitLab CI: `plan` renders a child pipeline (a job per test stage and
//! per image, `needs` following the graph); `generate` writes the parent
//! `.gitlab-ci.yml`, whose `ripple` job plans into an artifact that a
//! trigger job runs with `strategy: depend`.
//!
//! GitLab and its runner expand `$` in images, services and variables
//! (`$$` is a literal `$`), and the shell expands it in `script`: so every
//! value from the plan reaches a script through a job variable, and the
//! script lines ripple writes only name those variables.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;

use super::{Backend, BuildEnv, Dollar, Rendered, Templates, Vars};
use crate::changes::{Event, Names};
use crate::error::Result;
use crate::plan::{ImageBuild, Job, Plan, Work};

mod write;

/// The child pipeline's template.
pub const CHILD_TEMPLATE: &str = "gitlab-child.yml.j2";

/// The parent pipeline's template (`generate`).
pub const PARENT_TEMPLATE: &str = "gitlab-ci.yml.j2";

/// Where `generate` writes, from the repository root.
pub const FILE: &str = ".gitlab-ci.yml";

/// The artifact the `ripple` job plans into.
pub const CHILD_FILE: &str = "ripple-child.yml";

/// The image that builds images, and its Docker-in-Docker service.
const DOCKER_IMAGE: &str = "docker:27";
const DOCKER_SERVICE: &str = "docker:27-dind";

/// GitLab CI.
pub struct Gitlab;

impl Backend for Gitlab {
    fn name(&self) -> &'static str {
        "gitlab"
    }

    fn detects(&self, vars: &Vars<'_>) -> bool {
        vars.get("GITLAB_CI").is_some()
    }

    fn build_env(&self, vars: &Vars<'_>) -> Result<BuildEnv> {
        let tag = vars.get("CI_COMMIT_TAG");
        let event = match vars.get("CI_PIPELINE_SOURCE").as_deref() {
            None => None,
            Some(_) if tag.is_some() => Some(Event::Tag),
            Some("merge_request_event" | "external_pull_request_event") => Some(Event::PullRequest),
            Some("push") => Some(Event::Push),
            Some("schedule") => Some(Event::Cron),
            // Run by hand, by the API, by another pipeline: nothing is
            // planned unless `--event` says what to plan.
            Some(_) => Some(Event::Custom),
        };
        Ok(BuildEnv {
            event,
            // In a merged-results pipeline HEAD is the merge, and this the
            // merge request's own commit.
            commit_sha: vars
                .get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")
                .or_else(|| vars.get("CI_COMMIT_SHA")),
            before: vars.get("CI_COMMIT_BEFORE_SHA"),
            branch: vars.get("CI_COMMIT_BRANCH"),
            tag,
            target_branch: vars.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
            deploy_to: None,
        })
    }

    fn names(&self) -> Names {
        Names {
            event: "CI_PIPELINE_SOURCE",
            commit_sha: "CI_COMMIT_SHA",
            target_branch: "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
            branch: "CI_COMMIT_BRANCH",
            before: "CI_COMMIT_BEFORE_SHA",
            tag: "CI_COMMIT_TAG",
            deploy_to: "`--deploy-to` (GitLab CI has no promotion event)",
        }
    }

    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                CHILD_TEMPLATE,
                include_str!("../../../templates/gitlab/gitlab-child.yml.j2"),
            ),
            (
                PARENT_TEMPLATE,
                include_str!("../../../templates/gitlab/gitlab-ci.yml.j2"),
            ),
        ]
    }

    fn dollar(&self) -> Dollar {
        // Values: `$` doubled. Job names and script lines (the `literal`
        // filter marks them) are not expanded by GitLab: `$` kept.
        Dollar::Double
    }

    fn plan(
        &self,
        templates: &Templates,
        plan: &Arc<Plan>,
        out: &mut dyn std::io::Write,
    ) -> Result<Rendered> {
        if templates.is_shipped(CHILD_TEMPLATE) {
            // The same text as the shipped template, written directly; a
            // failed write is the writer's to report.
            let _ = write::write(plan, out);
        } else {
            templates.render_to(CHILD_TEMPLATE, "plan", &lower(plan), out)?;
        }
        Ok(Rendered::Written)
    }

    fn generate(&self, templates: &Templates, plan: &Arc<Plan>) -> Result<Vec<(String, String)>> {
        #[derive(Serialize)]
        struct Parent<'a> {
            ripple_image: &'a str,
            child: &'a str,
        }
        let text = templates.render(
            PARENT_TEMPLATE,
            "parent",
            &Parent {
                ripple_image: plan
                    .ripple_image
                    .as_deref()
                    .unwrap_or(crate::manifest::DEFAULT_RIPPLE_IMAGE),
                child: CHILD_FILE,
            },
        )?;
        Ok(vec![(FILE.to_string(), text)])
    }
}

/// What the child pipeline's template reads.
#[derive(Debug, Clone, Serialize)]
pub struct ChildPipeline {
    /// The event planned for.
    pub event: Option<Event>,
    /// Why these jobs, in one line.
    pub reason: String,
    /// [`GitlabJob`]s in plan order (a job needs only earlier ones), each
    /// plan job's lowered as the template reaches them.
    pub jobs: minijinja::Value,
    /// When `jobs` is empty: why nothing runs.
    pub idle_reason: Option<String>,
}

/// One GitLab job. It borrows what its plan job holds: a plan of
/// thousands of jobs is lowered a job at a time, and copies would be much
/// of the work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitlabJob<'a> {
    /// Unique: `test-<service>:<stage>` or the plan job's name.
    pub name: String,
    /// The container the script runs in.
    pub image: Cow<'a, str>,
    /// Containers beside it.
    pub services: Vec<Service>,
    /// Jobs that must succeed first.
    pub needs: Cow<'a, [String]>,
    /// `(name, value)`: everything the script uses from the plan.
    pub variables: Vec<(String, String)>,
    /// Shell lines: a service's own commands, or lines that only name
    /// `variables`.
    pub script: Vec<Cow<'a, str>>,
    /// A dotenv file the script writes, whose variables jobs that need
    /// this one receive.
    pub dotenv: Option<String>,
    /// GitLab's `when` (`always`: also after a failure), when not the
    /// default.
    pub when: Option<String>,
}

/// A GitLab `services` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// The image.
    pub name: String,
    /// The host name jobs reach it by.
    pub alias: String,
    /// Its environment.
    pub variables: Vec<(String, String)>,
}

/// The neutral plan as a child pipeline.
pub fn lower(plan: &Arc<Plan>) -> ChildPipeline {
    ChildPipeline {
        event: plan.event,
        reason: plan.reason.clone(),
        jobs: super::templates::per_job_flat(plan, job_values, job_count),
        idle_reason: plan.idle_reason.clone(),
    }
}

/// [`jobs`] as template values.
fn job_values(job: &Job) -> Vec<minijinja::Value> {
    let values = jobs(job).into_iter();
    values
        .map(|job| minijinja::Value::from(minijinja::value::Serde(job)))
        .collect()
}

/// How many GitLab jobs [`jobs`] makes of `job`, without making them.
fn job_count(job: &Job) -> usize {
    match &job.work {
        // Holding a slot: acquire, heartbeat, the tests, release.
        Work::Tests(tests) => tests
            .stages
            .iter()
            .map(|stage| if stage.slot.is_some() { 4 } else { 1 })
            .sum(),
        Work::Image(image) => 1 + usize::from(image.promote.is_some()),
    }
}

/// A job per test stage, or one for an image.
fn jobs(job: &Job) -> Vec<GitlabJob<'_>> {
    match &job.work {
        Work::Tests(tests) => {
            let services: Vec<Service> = tests
                .sidecars
                .iter()
                .map(|s| Service {
                    name: s.image.clone(),
                    alias: s.name.clone(),
                    variables: s
                        .environment
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                })
                .collect();
            let mut jobs = Vec::new();
            for stage in &tests.stages {
                let name = [job.name.as_str(), ":", &stage.name].concat();
                let mut tests_job = GitlabJob {
                    name: name.clone(),
                    image: Cow::Borrowed(&tests.toolchain),
                    services: services.clone(),
                    needs: Cow::Borrowed(&job.needs),
                    variables: Vec::new(),
                    script: (stage.commands.iter())
                        .map(|c| Cow::Borrowed(c.as_str()))
                        .collect(),
                    dotenv: None,
                    when: None,
                };
                let Some(slot) = &stage.slot else {
                    jobs.push(tests_job);
                    continue;
                };
                // The slot travels as a dotenv report: every job that needs
                // the acquire job gets RIPPLE_SLOT and the lease. The
                // heartbeat runs beside the tests until the release ends
                // the lease; the release runs whatever the tests did.
                let acquire = format!("{name}:acquire");
                let runner = |suffix: &str, script: String, needs: Vec<String>| GitlabJob {
                    name: format!("{name}:{suffix}"),
                    image: Cow::Borrowed(&slot.runner),
                    services: Vec::new(),
                    needs: Cow::Owned(needs),
                    variables: Vec::new(),
                    script: vec![Cow::Owned(script)],
                    dotenv: None,
                    when: None,
                };
                let mut take = runner(
                    "acquire",
                    slot.acquire("ripple-slot.env"),
                    job.needs.clone(),
                );
                take.dotenv = Some("ripple-slot.env".into());
                let lease = "--lease \"$RIPPLE_SLOT_LEASE\"";
                let heartbeat = runner("heartbeat", slot.heartbeat(lease), vec![acquire.clone()]);
                tests_job.needs = Cow::Owned(vec![acquire.clone()]);
                let mut release =
                    runner("release", slot.release(lease), vec![acquire, name.clone()]);
                release.when = Some("always".into());
                jobs.extend([take, heartbeat, tests_job, release]);
            }
            jobs
        }
        Work::Image(image) => {
            let mut build = image_job(job, image);
            let Some(promotion) = &image.promote else {
                return vec![build];
            };
            // A job in ripple's image promotes, and hands the outcome to
            // the build job as a dotenv report.
            let name = format!("{}:promote", job.name);
            // The whole history: `latest` moves only to a descendant.
            let mut variables = vec![("GIT_DEPTH".to_string(), "0".to_string())];
            let line = super::promote_line(
                &image.image,
                promotion,
                "RIPPLE_REGISTRY_USERNAME=\"$DOCKER_USERNAME\" \
                 RIPPLE_REGISTRY_PASSWORD=\"$DOCKER_PASSWORD\" ripple",
                &mut variables,
                "echo \"RIPPLE_PROMOTED=$promoted\" > ripple-promote.env",
            );
            build.needs.to_mut().push(name.clone());
            build.script.insert(
                0,
                "if [ \"$RIPPLE_PROMOTED\" = true ]; then echo \"ripple: promoted the tested \
                 build; nothing to build\"; exit 0; fi"
                    .into(),
            );
            let promote = GitlabJob {
                name,
                image: Cow::Borrowed(&promotion.runner),
                services: Vec::new(),
                needs: Cow::Borrowed(&[]),
                variables,
                script: vec![Cow::Owned(line)],
                dotenv: Some("ripple-promote.env".into()),
                when: None,
            };
            vec![promote, build]
        }
    }
}

/// `docker buildx build --push` in Docker-in-Docker, every value through
/// a variable.
fn image_job<'a>(job: &'a Job, image: &ImageBuild) -> GitlabJob<'a> {
    let mut variables = vec![
        ("DOCKER_HOST".to_string(), "tcp://docker:2376".to_string()),
        ("DOCKER_TLS_CERTDIR".to_string(), "/certs".to_string()),
        ("DOCKER_TLS_VERIFY".to_string(), "1".to_string()),
        ("DOCKER_CERT_PATH".to_string(), "/certs/client".to_string()),
        ("RIPPLE_IMAGE".to_string(), image.image.clone()),
        ("RIPPLE_DOCKERFILE".to_string(), image.dockerfile.clone()),
        ("RIPPLE_CONTEXT".to_string(), image.context.clone()),
    ];
    let mut build = String::from("docker buildx build --push --file \"$RIPPLE_DOCKERFILE\"");
    for (i, tag) in image.tags.iter().enumerate() {
        variables.push((format!("RIPPLE_TAG_{i}"), tag.clone()));
        build.push_str(&format!(" --tag \"$RIPPLE_IMAGE:$RIPPLE_TAG_{i}\""));
    }
    for (i, arg) in image.build_args.iter().enumerate() {
        variables.push((format!("RIPPLE_BUILD_ARG_{i}"), arg.clone()));
        build.push_str(&format!(" --build-arg \"$RIPPLE_BUILD_ARG_{i}\""));
    }
    let mut script = Vec::new();
    let login = match &image.registry {
        Some(registry) => {
            variables.push(("RIPPLE_REGISTRY".to_string(), registry.clone()));
            " \"$RIPPLE_REGISTRY\""
        }
        None => "",
    };
    script.push(Cow::Owned(format!(
        "if [ -n \"$DOCKER_USERNAME\" ]; then echo \"$DOCKER_PASSWORD\" | docker login \
         --username \"$DOCKER_USERNAME\" --password-stdin{login}; fi"
    )));
    if !image.platforms.is_empty() {
        variables.push(("RIPPLE_PLATFORMS".to_string(), image.platforms.join(",")));
        build.push_str(" --platform \"$RIPPLE_PLATFORMS\"");
    }
    if image.platforms.len() > 1 {
        // Emulators for the other architectures, and a builder that can
        // build for several at once.
        script.push("docker run --privileged --rm tonistiigi/binfmt --install all".into());
        script.push("docker buildx create --use --driver docker-container".into());
    }
    build.push_str(" \"$RIPPLE_CONTEXT\"");
    script.push(Cow::Owned(build));
    GitlabJob {
        name: job.name.to_string(),
        image: Cow::Borrowed(DOCKER_IMAGE),
        services: vec![Service {
            name: DOCKER_SERVICE.into(),
            alias: "docker".into(),
            variables: Vec::new(),
        }],
        needs: Cow::Borrowed(&job.needs),
        variables,
        script,
        dotenv: None,
        when: None,
    }
}
