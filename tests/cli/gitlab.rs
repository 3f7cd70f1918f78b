//! GitLab CI: the child pipeline of every build, the parent file, GitLab's
//! environment, and hostile values.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ripple::backend::{Backend, gitlab};

use crate::backends::{Build, keep, parse, plan_every_build};
use crate::common::{TestRepo, snapshot};
use crate::render::{HOSTILE, hostile, hostile_plan};

/// What GitLab's pipeline variables hold in GitLab's environment.
fn env_of(build: &Build) -> Vec<(String, String)> {
    let mut env = vec![
        ("GITLAB_CI".to_string(), "true".to_string()),
        ("CI".into(), "true".into()),
        ("CI_COMMIT_SHA".into(), build.repo.rev("HEAD")),
    ];
    let source = match build.event {
        "pull_request" => "merge_request_event",
        "cron" => "schedule",
        "custom" => "web",
        _ => "push",
    };
    env.push(("CI_PIPELINE_SOURCE".into(), source.into()));
    if let Some(target) = build.target {
        env.push(("CI_MERGE_REQUEST_TARGET_BRANCH_NAME".into(), target.into()));
    }
    if let Some(branch) = build.branch {
        env.push(("CI_COMMIT_BRANCH".into(), branch.into()));
    }
    if let Some(before) = &build.before {
        env.push(("CI_COMMIT_BEFORE_SHA".into(), before.clone()));
    }
    if let Some(tag) = build.tag {
        env.push(("CI_COMMIT_TAG".into(), tag.into()));
    }
    env
}

/// GitLab's rules that its schema does not state: every job has an image
/// and a script, and needs only jobs defined before it.
fn check_child(text: &str) -> Vec<(String, Value)> {
    let doc = parse(text);
    let mut seen = HashSet::new();
    let mut jobs = Vec::new();
    for (name, job) in doc.as_mapping().expect("a map of jobs") {
        let name = name.as_str().expect("job name").to_string();
        assert!(job["image"].is_string(), "{name} has an image");
        assert!(
            !job["script"].as_sequence().expect("script").is_empty(),
            "{name} has a script"
        );
        for need in job
            .get("needs")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let need = need.as_str().expect("needs a name");
            assert!(
                seen.contains(need),
                "{name} needs {need}, not defined before it"
            );
        }
        assert!(seen.insert(name.clone()), "duplicate job {name}");
        jobs.push((name, job.clone()));
    }
    assert!(!jobs.is_empty(), "GitLab rejects an empty pipeline");
    jobs
}

use serde_norway::Value;

#[test]
fn every_build_renders_a_child_pipeline() {
    plan_every_build("gitlab", env_of, |build, text| {
        keep("gitlab", &format!("{}.yml", build.name), text);
        let jobs = check_child(text);
        let names: Vec<&str> = jobs.iter().map(|(n, _)| n.as_str()).collect();
        match build.name {
            "pull_request" => assert_eq!(
                names,
                [
                    "test-apiv2:lint",
                    "test-apiv2:unit",
                    "test-apiv2:functional",
                    "test-go-main:unit"
                ]
            ),
            "push_develop" => {
                assert_eq!(
                    names,
                    [
                        "publish-base-go",
                        "publish-worker",
                        "publish-apiv2",
                        "publish-lmtpd"
                    ]
                );
                let api = &jobs[2].1;
                assert_eq!(api["needs"][0], "publish-base-go");
                assert_eq!(api["variables"]["RIPPLE_TAG_0"], "develop");
                assert_eq!(
                    api["variables"]["RIPPLE_TAG_1"],
                    build.repo.rev("HEAD").as_str()
                );
            }
            "tag_release" => {
                assert_eq!(names.len(), 5, "{names:?}");
                assert_eq!(jobs[0].1["variables"]["RIPPLE_TAG_0"], "latest");
                assert_eq!(jobs[0].1["variables"]["RIPPLE_TAG_1"], "1.4.0");
            }
            _ => {
                assert_eq!(names, ["ripple"], "one job saying why");
                let reason = jobs[0].1["variables"]["RIPPLE_REASON"].as_str().unwrap();
                assert!(reason.contains("nothing"), "{reason}");
            }
        }
        text.to_string()
    });
}

#[test]
fn generate_writes_the_parent_pipeline() {
    let repo = TestRepo::standard();
    let run = repo.ripple(&["generate", "--ci", "gitlab"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(repo.path().join(".gitlab-ci.yml")).unwrap();
    keep("gitlab", "generate.yml", &text);
    let doc = parse(&text);
    let ripple = &doc["ripple"];
    assert_eq!(ripple["image"], "ripple:latest");
    assert_eq!(
        ripple["script"][0],
        "ripple plan --ci gitlab --deepen --output ripple-child.yml"
    );
    assert_eq!(ripple["artifacts"]["paths"][0], "ripple-child.yml");
    let run_child = &doc["ripple-run"];
    assert_eq!(run_child["needs"][0], "ripple");
    assert_eq!(
        run_child["trigger"]["include"][0]["artifact"],
        "ripple-child.yml"
    );
    assert_eq!(run_child["trigger"]["include"][0]["job"], "ripple");
    assert_eq!(run_child["trigger"]["strategy"], "depend");
    snapshot("gitlab_generate", &text);

    // `[settings] ci` chooses the backend, and `--check` compares.
    let check = repo.ripple(&["generate", "--ci", "gitlab", "--check"], &[]);
    assert_eq!(check.code, 0, "{}", check.stderr);
}

/// What GitLab and its runner make of a value: `$$` is a literal `$`.
fn expanded(value: &Value) -> String {
    value.as_str().expect("a string").replace("$$", "$")
}

#[test]
fn hostile_values_reach_gitlab_as_they_are() {
    let templates = gitlab::Gitlab.load(Vec::new()).unwrap();
    let mut text = Vec::new();
    let rendered = gitlab::Gitlab
        .plan(&templates, &Arc::new(hostile_plan()), &mut text)
        .unwrap();
    assert!(
        matches!(rendered, ripple::backend::Rendered::Written),
        "one document"
    );
    let text = String::from_utf8(text).unwrap();
    keep("gitlab", "hostile.yml", &text);
    let doc = parse(&text);
    let jobs: HashMap<String, &Value> = doc
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v))
        .collect();
    assert_eq!(
        jobs.len(),
        5,
        "a test, two images each promoted first, and nothing injected: {:?}",
        jobs.keys()
    );
    let test = jobs[&format!("{}:{}", hostile("name"), hostile("step"))];
    assert_eq!(expanded(&test["image"]), hostile("image"));
    // Script lines are the shell's: `$` is not doubled there.
    assert_eq!(test["script"][0].as_str().unwrap(), hostile("command"));
    let service = &test["services"][0];
    assert_eq!(expanded(&service["name"]), hostile("sidecar-image"));
    assert_eq!(expanded(&service["alias"]), hostile("sidecar"));
    assert_eq!(
        expanded(&service["variables"][hostile("key").as_str()]),
        hostile("value")
    );
    let image = jobs[hostile("second").as_str()];
    // Job names and needs are not expanded either.
    assert_eq!(image["needs"][0].as_str().unwrap(), hostile("name"));
    let variables = &image["variables"];
    for (key, value) in [
        ("RIPPLE_IMAGE", "repo"),
        ("RIPPLE_DOCKERFILE", "dockerfile"),
        ("RIPPLE_CONTEXT", "context"),
        ("RIPPLE_TAG_0", "tag"),
        ("RIPPLE_BUILD_ARG_0", "build-arg"),
        ("RIPPLE_REGISTRY", "registry"),
        ("RIPPLE_PLATFORMS", "platform"),
    ] {
        assert_eq!(expanded(&variables[key]), hostile(value), "{key}");
    }
    // The promote job hands its outcome to the build, which waits for it.
    let promote_name = format!("{}:promote", hostile("second"));
    assert_eq!(image["needs"][1].as_str().unwrap(), promote_name);
    let promote = jobs[&promote_name];
    assert_eq!(expanded(&promote["image"]), hostile("runner"));
    assert_eq!(
        promote["artifacts"]["reports"]["dotenv"],
        "ripple-promote.env"
    );
    for (key, value) in [
        ("RIPPLE_PROMOTE_IMAGE", "repo"),
        ("RIPPLE_PROMOTE_FROM", "from"),
        ("RIPPLE_PROMOTE_TO_0", "to"),
    ] {
        assert_eq!(
            expanded(&promote["variables"][key]),
            hostile(value),
            "{key}"
        );
    }
    // The scripts name variables only: no value is in them.
    for job in [image, promote] {
        for line in job["script"].as_sequence().unwrap() {
            let line = line.as_str().unwrap();
            assert!(!line.contains("evil"), "{line}");
        }
    }
    assert!(HOSTILE.contains('$'));
}
