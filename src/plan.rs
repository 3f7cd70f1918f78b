//! Affected services + event → [`Plan`]: the pipelines to run, as plain data
//! for the renderer. Pure: no I/O, no YAML.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::changes::{ChangeSet, Event, Mode};
use crate::graph::Affected;
use crate::manifest::Manifest;
use crate::tags::{Use, Values};

/// The Drone plugin that builds and publishes images.
pub const DOCKER_PLUGIN: &str = "plugins/docker";

/// The Drone plugin for multi-platform builds (Docker buildx).
pub const BUILDX_PLUGIN: &str = "thegeeklab/drone-docker-buildx";

/// Everything one build runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The event planned for; `None` for a static file covering every event.
    pub event: Option<Event>,
    /// Why these services, in one line.
    pub reason: String,
    /// In topological order: a pipeline only depends on earlier ones.
    pub pipelines: Vec<Pipeline>,
    /// When `pipelines` is empty: why nothing runs.
    pub idle_reason: Option<String>,
}

/// One Drone pipeline, for one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pipeline {
    /// Unique in the plan: `test-<service>` or `publish-<service>`.
    pub name: String,
    /// The service it is for.
    pub service: String,
    /// Pipelines that must succeed first.
    pub depends_on: Vec<String>,
    /// When Drone runs it.
    pub trigger: Trigger,
    /// Steps, run in order.
    pub steps: Vec<Step>,
    /// Containers running beside the steps.
    pub sidecars: Vec<Sidecar>,
}

/// A pipeline's `trigger`: every non-empty list must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Trigger {
    /// Drone events.
    pub event: Vec<String>,
    /// Branches (for pushes).
    pub branch: Vec<String>,
    /// Git refs, globs allowed (for tags).
    #[serde(rename = "ref")]
    pub refs: Vec<String>,
}

impl Trigger {
    fn event(event: Event) -> Trigger {
        Trigger {
            event: vec![event.to_string()],
            ..Trigger::default()
        }
    }
}

/// How one family of pipelines is named, triggered and gated.
struct Family<'a> {
    /// `test-`, `publish-` or `release-`.
    prefix: &'a str,
    trigger: Trigger,
    /// For a static file: the image that runs `ripple gate` first, and the
    /// gate's extra arguments.
    gate: Option<(&'a str, &'a str)>,
}

impl Family<'_> {
    fn name(&self, service: &str) -> String {
        format!("{}{service}", self.prefix)
    }

    /// The gate step, first in each pipeline of a static file.
    fn gate_step(&self, service: &str) -> Option<Step> {
        let (image, extra) = self.gate?;
        Some(Step {
            name: "gate".into(),
            image: image.to_string(),
            commands: vec![format!("ripple gate {service} --deepen{extra}")],
            publish: None,
        })
    }
}

/// One step of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `lint`, `unit`, `functional` or `publish`.
    pub name: String,
    /// The container it runs in.
    pub image: String,
    /// Shell commands, for test steps.
    pub commands: Vec<String>,
    /// Settings of the docker plugin, for publish steps.
    pub publish: Option<Publish>,
}

/// Settings of a `plugins/docker` step.
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

/// Which tags a publish pipeline gets.
#[derive(Debug, Clone, Copy)]
enum Tagging<'a> {
    /// A publish push: the `push` templates.
    Push { branch: &'a str, sha: &'a str },
    /// A release: the `release` templates.
    Release { version: &'a str, sha: &'a str },
    /// A static file: the gate writes them to `.tags` at run time.
    AtRunTime,
}

/// A Drone `services` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sidecar {
    /// Host name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Environment.
    pub environment: BTreeMap<String, String>,
}

/// Builds the plan for `changes`, whose affected set is `affected`.
pub fn plan(manifest: &Manifest, changes: &ChangeSet, affected: &Affected) -> Plan {
    let family = |prefix| Family {
        prefix,
        trigger: Trigger::event(changes.event),
        gate: None,
    };
    let pipelines = match (changes.event, changes.mode) {
        (_, Mode::None) => Vec::new(),
        (Event::PullRequest, _) => test_pipelines(manifest, affected, &family("test-")),
        (Event::Push | Event::Tag, _) => {
            let sha = changes.head.as_deref().unwrap_or_default();
            let tagging = if changes.event == Event::Push {
                Tagging::Push {
                    branch: changes.branch.as_deref().unwrap_or("unknown"),
                    sha,
                }
            } else {
                Tagging::Release {
                    version: changes.version.as_deref().unwrap_or("unknown"),
                    sha,
                }
            };
            publish_pipelines(
                manifest,
                affected,
                tagging,
                &changes.args.values,
                &family("publish-"),
            )
        }
        _ => Vec::new(),
    };
    let idle_reason = pipelines.is_empty().then(|| idle_reason(changes, affected));
    Plan {
        event: Some(changes.event),
        reason: changes.reason.clone(),
        pipelines,
        idle_reason,
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

fn test_pipelines(manifest: &Manifest, affected: &Affected, family: &Family<'_>) -> Vec<Pipeline> {
    affected
        .services
        .iter()
        .filter_map(|a| manifest.service(&a.name))
        .filter_map(|service| {
            let toolchain = service.toolchain.as_ref()?;
            let tests = service.test_stages().map(|(stage, commands)| Step {
                name: stage.to_string(),
                image: toolchain.as_str().into(),
                commands: commands.iter().map(|c| c.as_str().into()).collect(),
                publish: None,
            });
            let gate = family.gate_step(&service.name);
            let steps: Vec<Step> = gate.into_iter().chain(tests).collect();
            if steps.iter().all(|s| s.name == "gate") {
                return None;
            }
            Some(Pipeline {
                name: family.name(&service.name),
                service: service.name.as_str().into(),
                depends_on: Vec::new(),
                trigger: family.trigger.clone(),
                steps,
                sidecars: service
                    .sidecars
                    .iter()
                    .map(|s| Sidecar {
                        name: s.name.clone(),
                        image: s.image.clone(),
                        environment: s.environment.clone(),
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Build-and-publish pipelines; tags from each image's templates, or
/// (static files) none, and the gate writes them to `.tags`, which
/// `plugins/docker` reads when `tags` is unset.
fn publish_pipelines(
    manifest: &Manifest,
    affected: &Affected,
    tagging: Tagging<'_>,
    file_args: &BTreeMap<String, BTreeMap<String, String>>,
    family: &Family<'_>,
) -> Vec<Pipeline> {
    // Layer by layer, so every pipeline comes after those it depends on.
    affected
        .build_order
        .iter()
        .flatten()
        .filter_map(|name| {
            let service = manifest.service(name)?;
            let build = service.build.as_ref()?;
            let waits = &affected.get(name)?.waits_for;
            let values = |sha, branch, version| Values {
                sha,
                service: name,
                branch,
                version,
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
                Tagging::AtRunTime => (Vec::new(), values("", "", "")),
            };
            let mut tags: Vec<String> = Vec::with_capacity(templates.len());
            for tag in templates.iter().map(|t| t.render(&values)) {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            let multi = build.extras().platforms.len() > 1;
            let publish = Step {
                name: "publish".into(),
                image: if multi { BUILDX_PLUGIN } else { DOCKER_PLUGIN }.into(),
                commands: Vec::new(),
                publish: Some(Publish {
                    repo: build.image.as_str().into(),
                    registry: registry_of(&build.image),
                    dockerfile: build.dockerfile.as_str().into(),
                    context: build.context.as_str().into(),
                    tags,
                    // The file's declared arguments, then `build_args`,
                    // which win; sorted by key.
                    build_args: file_args
                        .get(name.as_str())
                        .into_iter()
                        .flatten()
                        .chain(build.extras().build_args.iter().map(|(k, v)| (k, v)))
                        .collect::<BTreeMap<_, _>>()
                        .into_iter()
                        .map(|(key, value)| format!("{key}={value}"))
                        .collect(),
                    platform: (!multi)
                        .then(|| build.extras().platforms.first().cloned())
                        .flatten(),
                    platforms: if multi {
                        build.extras().platforms.clone()
                    } else {
                        Vec::new()
                    },
                }),
            };
            Some(Pipeline {
                name: family.name(name),
                service: name.as_str().into(),
                depends_on: waits.iter().map(|w| family.name(w)).collect(),
                trigger: family.trigger.clone(),
                steps: family
                    .gate_step(name)
                    .into_iter()
                    .chain([publish])
                    .collect(),
                sidecars: Vec::new(),
            })
        })
        .collect()
}

/// The registry host of an image reference, when it names one: the first
/// component holds a `.` or `:`, or is `localhost` (Docker's own rule).
pub fn registry_of(image: &str) -> Option<String> {
    let (first, _) = image.split_once('/')?;
    (first.contains(['.', ':']) || first == "localhost").then(|| first.to_string())
}

/// The file for `ripple generate`: every service and every event, each
/// pipeline gated by `ripple gate`, which decides at run time from Drone's
/// environment exactly as `plan` would. `all` is the affected set of a
/// change that affects everything (it carries the build order).
pub fn static_plan(
    manifest: &Manifest,
    all: &Affected,
    file_args: &BTreeMap<String, BTreeMap<String, String>>,
) -> Plan {
    let settings = &manifest.settings;
    let image = settings.ripple_image.as_str();
    let tests = Family {
        prefix: "test-",
        trigger: Trigger::event(Event::PullRequest),
        gate: Some((image, "")),
    };
    let publish = Family {
        prefix: "publish-",
        trigger: Trigger {
            branch: settings.publish_branches.clone(),
            ..Trigger::event(Event::Push)
        },
        gate: Some((image, " --tags-file .tags")),
    };
    let release = Family {
        prefix: "release-",
        trigger: Trigger {
            refs: settings
                .release_tag
                .globs()
                .map(|glob| format!("refs/tags/{glob}"))
                .collect(),
            ..Trigger::event(Event::Tag)
        },
        gate: Some((image, " --tags-file .tags")),
    };
    let mut pipelines = test_pipelines(manifest, all, &tests);
    if !settings.publish_branches.is_empty() {
        pipelines.extend(publish_pipelines(
            manifest,
            all,
            Tagging::AtRunTime,
            file_args,
            &publish,
        ));
    }
    pipelines.extend(publish_pipelines(
        manifest,
        all,
        Tagging::AtRunTime,
        file_args,
        &release,
    ));
    let idle_reason = pipelines
        .is_empty()
        .then(|| "no service has test commands or an image to build".to_string());
    Plan {
        event: None,
        reason: "every service and event, each pipeline gated by `ripple gate`".into(),
        pipelines,
        idle_reason,
    }
}

/// Whether a service's pipeline has work for a build, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The pipeline's remaining steps should run.
    pub runs: bool,
    /// One line for the build log.
    pub reason: String,
}

/// The verdict of `ripple gate` for the service `name`: its pipeline runs
/// exactly when `plan` (this build's plan) has one for it.
pub fn gate(name: &str, changes: &ChangeSet, affected: &Affected, plan: &Plan) -> Verdict {
    let runs = plan.pipelines.iter().any(|p| p.service == name);
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
