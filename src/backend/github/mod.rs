//! GitHub Actions: `plan` gives the plan job's step outputs (`affected`,
//! a `tests` matrix, `images`, and `image_tags` for the image jobs);
//! `generate` writes `.github/workflows/ripple.yml` with a plan job, a
//! test job over that matrix, and one job per image whose `needs` follow
//! the graph and whose `if:` asks the plan.
//!
//! GitHub evaluates `${{ ... }}` anywhere in a workflow, so every value is
//! written with `${{` as an expression giving that text, and values reach
//! `run:` only through `env:`.

use std::sync::Arc;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Backend, BuildEnv, Dollar, OutputValue, Rendered, Templates, Vars};
use crate::changes::{Event, Names};
use crate::error::Result;
use crate::plan::{ImageBuild, Plan, Work};

/// The workflow's template.
pub const TEMPLATE: &str = "github-workflow.yml.j2";

/// Where `generate` writes, from the repository root.
pub const FILE: &str = ".github/workflows/ripple.yml";

/// GitHub Actions.
pub struct Github;

impl Backend for Github {
    fn name(&self) -> &'static str {
        "github"
    }

    fn detects(&self, vars: &Vars<'_>) -> bool {
        vars.get("GITHUB_ACTIONS").is_some()
    }

    fn build_env(&self, vars: &Vars<'_>) -> Result<BuildEnv> {
        let reference = vars.get("GITHUB_REF").unwrap_or_default();
        let tag = reference.strip_prefix("refs/tags/").map(str::to_string);
        let branch = reference.strip_prefix("refs/heads/").map(str::to_string);
        let event = match vars.get("GITHUB_EVENT_NAME").as_deref() {
            None => None,
            Some("pull_request" | "pull_request_target" | "merge_group") => {
                Some(Event::PullRequest)
            }
            Some("push" | "release") if tag.is_some() => Some(Event::Tag),
            Some("push") => Some(Event::Push),
            Some("schedule") => Some(Event::Cron),
            Some("deployment") => Some(Event::Promote),
            // By hand, by the API, by another workflow: nothing is planned
            // unless `--event` says what to plan.
            Some(_) => Some(Event::Custom),
        };
        // The event's payload has what the variables lack: the commit
        // before a push, and the pull request's own commit (HEAD is the
        // merge GitHub made).
        let payload = vars
            .get("GITHUB_EVENT_PATH")
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .unwrap_or_default();
        let text = |pointer: &str| {
            payload
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(BuildEnv {
            event,
            commit_sha: text("/pull_request/head/sha").or_else(|| vars.get("GITHUB_SHA")),
            before: text("/before"),
            branch,
            tag,
            target_branch: vars
                .get("GITHUB_BASE_REF")
                .or_else(|| text("/pull_request/base/ref")),
            deploy_to: None,
        })
    }

    fn names(&self) -> Names {
        Names {
            event: "GITHUB_EVENT_NAME",
            commit_sha: "GITHUB_SHA",
            target_branch: "GITHUB_BASE_REF",
            branch: "GITHUB_REF",
            before: "`before` in GITHUB_EVENT_PATH",
            tag: "GITHUB_REF",
            deploy_to: "the deployment's environment",
        }
    }

    fn templates(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            TEMPLATE,
            include_str!("../../../templates/github/github-workflow.yml.j2"),
        )]
    }

    fn dollar(&self) -> Dollar {
        // Values: `${{` disarmed. Expressions ripple writes (the `literal`
        // filter marks them) are GitHub's to evaluate.
        Dollar::Expression
    }

    fn plan(
        &self,
        _templates: &Templates,
        plan: &Arc<Plan>,
        _out: &mut dyn std::io::Write,
    ) -> Result<Rendered> {
        Ok(Rendered::Outputs {
            variable: "GITHUB_OUTPUT",
            values: outputs(plan),
        })
    }

    fn generate(&self, templates: &Templates, plan: &Arc<Plan>) -> Result<Vec<(String, String)>> {
        let text = templates.render(TEMPLATE, "workflow", &workflow(plan))?;
        Ok(vec![(FILE.to_string(), text)])
    }
}

/// One entry of the `tests` matrix: a service's test stage. It borrows
/// from its job what it repeats: a plan of thousands of jobs makes twice
/// as many entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestEntry<'a> {
    /// The plan's job (`test-<service>`).
    pub job: &'a str,
    /// The service.
    pub service: &'a str,
    /// `lint`, `unit` or `functional`.
    pub stage: &'a str,
    /// The container the commands run in.
    pub toolchain: &'a str,
    /// The commands, one a line, run in order, stopping at a failure.
    pub commands: Cow<'a, str>,
    /// Sidecars by [`token`] of their name.
    pub sidecars: BTreeMap<String, SidecarEntry>,
    /// The environment slot the commands hold, when they hold one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<SlotEntry>,
}

/// A slot in the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotEntry {
    /// The environment.
    pub environment: String,
    /// The heartbeat's period (`180s`).
    pub every: String,
}

/// A sidecar in the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SidecarEntry {
    /// Its image.
    pub image: String,
    /// Its environment, by [`token`] of each variable's name.
    pub env: BTreeMap<String, String>,
}

/// One entry of `images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageEntry {
    /// The workflow's job for it (`image-<service>`, see [`job_id`]).
    pub job: String,
    /// The service.
    pub service: String,
    /// The image repository.
    pub image: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The services whose images it waits for.
    pub needs: Vec<String>,
}

/// The plan job's outputs: `affected`, `tests`, `images`, `image_tags`,
/// `promotions`.
pub fn outputs(plan: &Arc<Plan>) -> Vec<(String, OutputValue)> {
    let mut images = Vec::new();
    let mut image_tags = BTreeMap::new();
    let mut promotions = BTreeMap::new();
    // Made for the first image job: a pull request's thousands of test
    // jobs need none.
    let mut service_of: Option<HashMap<&str, &str>> = None;
    for job in &plan.jobs {
        match &job.work {
            Work::Tests(_) => {}
            Work::Image(image) => {
                image_tags.insert(job_id(&job.service), references(image).join("\n"));
                if let Some(promotion) = &image.promote {
                    promotions.insert(job_id(&job.service), promotion.command(&image.image));
                }
                images.push(ImageEntry {
                    job: job_id(&job.service),
                    service: job.service.to_string(),
                    image: image.image.clone(),
                    tags: image.tags.clone(),
                    needs: {
                        let service_of = service_of.get_or_insert_with(|| {
                            let jobs = plan.jobs.iter();
                            jobs.map(|j| (j.name.as_str(), j.service.as_str()))
                                .collect()
                        });
                        (job.needs.iter())
                            .map(|n| service_of.get(n.as_str()).copied().unwrap_or(n).to_string())
                            .collect()
                    },
                });
            }
        }
    }
    vec![
        ("affected".into(), OutputValue::json(Affected(plan.clone()))),
        ("tests".into(), {
            let plan = plan.clone();
            OutputValue::written(move |out, quoted| write_matrix(&plan, out, quoted))
        }),
        ("images".into(), OutputValue::json(images)),
        ("image_tags".into(), OutputValue::json(image_tags)),
        ("promotions".into(), OutputValue::json(promotions)),
    ]
}

/// The plan's affected services, as a list.
struct Affected(Arc<Plan>);

impl Serialize for Affected {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.0.services.serialize(serializer)
    }
}

/// The test matrix, `{"include": [...]}`, as compact JSON (`quoted`: as a
/// JSON string holding it). Its entries, two or three a test job, are
/// serialized a run of jobs at a time on two threads.
fn write_matrix(plan: &Plan, out: &mut dyn std::io::Write, quoted: bool) -> std::io::Result<()> {
    use crate::render::json;
    let mut head = Vec::new();
    if quoted {
        head.push(b'"');
    }
    head.push(b'{');
    json::compact_in(&mut head, "include", quoted)?;
    head.extend_from_slice(b":[");
    out.write_all(&head)?;
    // Each entry after a comma; the first entry's comma is left out.
    let entries = |run: &[crate::plan::Job]| -> std::io::Result<Vec<u8>> {
        let mut written = Vec::with_capacity(run.len() * 512);
        for job in run {
            if let Work::Tests(tests) = &job.work {
                for entry in test_entries(job, tests) {
                    written.push(b',');
                    json::compact_in(&mut written, &entry, quoted)?;
                }
            }
        }
        Ok(written)
    };
    let mut first = true;
    crate::parallel::in_order(&plan.jobs, entries, |written| {
        let written = written?;
        let from = usize::from(!written.is_empty() && std::mem::take(&mut first));
        out.write_all(&written[from..])
    })?;
    out.write_all(if quoted { b"]}\"" } else { b"]}" })
}

/// A test job's matrix entries: one a stage.
fn test_entries<'a>(
    job: &'a crate::plan::Job,
    tests: &'a crate::plan::Tests,
) -> impl Iterator<Item = TestEntry<'a>> {
    let sidecars: BTreeMap<String, SidecarEntry> = (tests.sidecars.iter())
        .map(|s| {
            let env = (s.environment.iter()).map(|(k, v)| (token(k), v.clone()));
            let entry = SidecarEntry {
                image: s.image.clone(),
                env: env.collect(),
            };
            (token(&s.name), entry)
        })
        .collect();
    tests.stages.iter().map(move |stage| TestEntry {
        job: &job.name,
        service: &job.service,
        stage: &stage.name,
        toolchain: &tests.toolchain,
        commands: match &*stage.commands {
            [one] => Cow::Borrowed(one.as_str()),
            more => Cow::Owned(more.join("\n")),
        },
        sidecars: sidecars.clone(),
        slot: stage.slot.as_ref().map(|slot| SlotEntry {
            environment: slot.environment.clone(),
            every: format!("{}s", slot.renew_every_s),
        }),
    })
}

/// `image:tag` for every tag.
fn references(image: &ImageBuild) -> Vec<String> {
    image
        .tags
        .iter()
        .map(|tag| format!("{}:{tag}", image.image))
        .collect()
}

/// What the workflow template reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workflow {
    /// The image the plan job runs ripple in.
    pub ripple_image: String,
    /// Releases promote tested builds: image jobs get a promote step.
    pub promotes: bool,
    /// Some functional stage holds an environment slot: the test job gets
    /// the slot client and runs the commands holding the slot.
    pub slots: bool,
    /// Pushes to these branches publish.
    pub branches: Vec<String>,
    /// Tags matching these release.
    pub tags: Vec<String>,
    /// Every sidecar a test may start: the matrix entry says which run.
    pub sidecars: Vec<SidecarSlot>,
    /// One job per image, in build order.
    pub images: Vec<ImageJob>,
}

/// A service container of the test job, started when the matrix entry
/// has a sidecar of that name (an empty image starts nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SidecarSlot {
    /// The sidecar's name: the host name tests reach it by.
    pub name: String,
    /// The expression giving its image, or `''`.
    pub image: String,
    /// `(variable, expression giving its value)`, for every variable any
    /// service gives it.
    pub env: Vec<(String, String)>,
}

/// A job that builds one image when the plan lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageJob {
    /// The job's id: [`job_id`].
    pub id: String,
    /// The service.
    pub service: String,
    /// Job ids it needs: `plan` and the images it waits for.
    pub needs: Vec<String>,
    /// The job's `if:` expression.
    pub condition: String,
    /// The expression giving its tags, one a line.
    pub tags: String,
    /// The expression giving its `ripple promote` command line, empty when
    /// it is built rather than promoted.
    pub promotion: String,
    /// The expression telling whether it is promoted first.
    pub promotes: String,
    /// Registry host to log in to, when not Docker Hub.
    pub registry: Option<String>,
    /// Dockerfile path.
    pub dockerfile: String,
    /// Build context.
    pub context: String,
    /// `KEY=VALUE` lines.
    pub build_args: String,
    /// Comma-separated platforms; empty: the runner's.
    pub platforms: String,
    /// More than one platform: emulators are set up first.
    pub multi_platform: bool,
}

/// The static plan as a workflow: image jobs once per service (pushes and
/// releases share them: the plan gives the tags).
pub fn workflow(plan: &Plan) -> Workflow {
    let mut ids: HashMap<&str, String> = HashMap::new();
    let mut images = Vec::new();
    let mut sidecars: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut branches = Vec::new();
    let mut tags = Vec::new();
    for job in &plan.jobs {
        for branch in &job.when.branches {
            if !branches.contains(branch) {
                branches.push(branch.clone());
            }
        }
        for glob in &job.when.tags {
            if !tags.contains(glob) {
                tags.push(glob.clone());
            }
        }
        match &job.work {
            Work::Tests(tests) => {
                for sidecar in &tests.sidecars {
                    let keys = sidecars.entry(sidecar.name.clone()).or_default();
                    for key in sidecar.environment.keys() {
                        if !keys.contains(key) {
                            keys.push(key.clone());
                        }
                    }
                }
            }
            Work::Image(image) => {
                if ids.contains_key(job.service.as_str()) {
                    continue;
                }
                let id = job_id(&job.service);
                let needs = std::iter::once("plan".to_string())
                    .chain(job.needs.iter().filter_map(|need| {
                        let service = plan.jobs.iter().find(|j| j.name == need)?.service.as_str();
                        ids.get(service).cloned()
                    }))
                    .collect();
                images.push(ImageJob {
                    condition: format!(
                        "${{{{ !cancelled() && !contains(needs.*.result, 'failure') && \
                         contains(fromJSON(needs.plan.outputs.images).*.job, '{id}') }}}}"
                    ),
                    tags: format!("${{{{ fromJSON(needs.plan.outputs.image_tags)['{id}'] }}}}"),
                    promotion: format!(
                        "${{{{ fromJSON(needs.plan.outputs.promotions)['{id}'] }}}}"
                    ),
                    promotes: format!(
                        "${{{{ fromJSON(needs.plan.outputs.promotions)['{id}'] != null }}}}"
                    ),
                    id: id.clone(),
                    service: job.service.to_string(),
                    needs,
                    registry: image.registry.clone(),
                    dockerfile: image.dockerfile.clone(),
                    context: image.context.clone(),
                    build_args: image.build_args.join("\n"),
                    platforms: image.platforms.join(","),
                    multi_platform: image.platforms.len() > 1,
                });
                ids.insert(job.service.as_str(), id);
            }
        }
    }
    let sidecars = sidecars
        .into_iter()
        .map(|(name, mut keys)| {
            keys.sort();
            let slot = format!("matrix.sidecars['{}']", token(&name));
            SidecarSlot {
                image: format!("${{{{ {slot}.image || '' }}}}"),
                env: keys
                    .into_iter()
                    .map(|key| {
                        let value = format!("${{{{ {slot}.env['{}'] }}}}", token(&key));
                        (key, value)
                    })
                    .collect(),
                name,
            }
        })
        .collect();
    Workflow {
        promotes: plan.promotes,
        slots: plan.jobs.iter().any(|job| {
            matches!(&job.work, Work::Tests(tests) if tests.stages.iter().any(|s| s.slot.is_some()))
        }),
        ripple_image: plan
            .ripple_image
            .clone()
            .unwrap_or_else(|| crate::manifest::DEFAULT_RIPPLE_IMAGE.into()),
        branches,
        tags,
        sidecars,
        images,
    }
}

/// The job id of a service's image: `image-` and its [`token`], which
/// GitHub accepts (`[A-Za-z_][A-Za-z0-9_-]*`) and which is the same in
/// `plan` and `generate` whatever else the manifest holds.
pub fn job_id(service: &str) -> String {
    format!("image-{}", token(service))
}

/// A name as text that is safe inside a GitHub expression's string literal
/// and distinct for distinct names: ASCII letters, digits and `-` as they
/// are, `_` as `__`, anything else as `_<hex>_`.
pub fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '-' => out.push(c),
            '_' => out.push_str("__"),
            c => out.push_str(&format!("_{:x}_", c as u32)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_plain_and_distinct() {
        assert_eq!(token("api-v2"), "api-v2");
        assert_eq!(token("go.main"), "go_2e_main");
        assert_eq!(token("go_main"), "go__main");
        assert_eq!(token("POSTGRES_DB"), "POSTGRES__DB");
        assert_ne!(token("a_2e_b"), token("a.b"));
        assert_eq!(token("x'}} ${{"), "x_27__7d__7d__20__24__7b__7b_");
        assert_eq!(job_id("go.main"), "image-go_2e_main");
    }
}
