//! Woodpecker: the configuration extension's answer for every build, one
//! file per workflow, `.woodpecker/` with path filters, Woodpecker's
//! environment, and hostile values.

use std::collections::BTreeMap;
use std::sync::Arc;

use ripple::backend::{Backend, Rendered, woodpecker};
use ripple::plan::{Plan, Work};
use serde_norway::Value;

use crate::backends::{Build, keep, parse, plan_every_build};
use crate::common::{TestRepo, snapshot};
use crate::render::{hostile, hostile_plan};

/// What Woodpecker sets in a step's environment (it sets Drone's
/// variables too, which must not win).
fn env_of(build: &Build) -> Vec<(String, String)> {
    let mut env = vec![
        ("CI".to_string(), "woodpecker".to_string()),
        (
            "CI_PIPELINE_EVENT".into(),
            build.event.replace("custom", "manual"),
        ),
        ("CI_COMMIT_SHA".into(), build.repo.rev("HEAD")),
        ("DRONE_BUILD_EVENT".into(), "custom".into()),
    ];
    if let Some(target) = build.target {
        env.push(("CI_COMMIT_TARGET_BRANCH".into(), target.into()));
    }
    if let Some(branch) = build.branch {
        env.push(("CI_COMMIT_BRANCH".into(), branch.into()));
    }
    if let Some(before) = &build.before {
        env.push(("CI_PREV_COMMIT_SHA".into(), before.clone()));
    }
    if let Some(tag) = build.tag {
        env.push(("CI_COMMIT_TAG".into(), tag.into()));
    }
    env
}

/// The configuration extension's answer: workflow name -> parsed YAML.
fn configs(text: &str) -> Vec<(String, String)> {
    let answer: serde_json::Value = serde_json::from_str(text).expect("JSON answer");
    answer["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Woodpecker's rules beyond its schema: names are unique, a workflow
/// depends only on workflows of the answer, every step has an image.
fn check_workflows(workflows: &[(String, String)]) -> BTreeMap<String, Value> {
    let mut parsed = BTreeMap::new();
    for (name, data) in workflows {
        let doc = parse(data);
        for step in doc["steps"].as_sequence().expect("steps") {
            assert!(step["image"].is_string(), "{name}: every step has an image");
        }
        assert!(
            parsed.insert(name.clone(), doc).is_none(),
            "duplicate {name}"
        );
    }
    for (name, doc) in &parsed {
        for dependency in doc
            .get("depends_on")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let target = dependency["name"].as_str().expect("a named dependency");
            assert!(
                parsed.contains_key(target),
                "{name} depends on {target}, not answered"
            );
            assert_eq!(dependency["optional"], true);
        }
    }
    parsed
}

#[test]
fn every_build_answers_with_workflows() {
    plan_every_build("woodpecker", env_of, |build, text| {
        let workflows = configs(text);
        for (name, data) in &workflows {
            keep("woodpecker", &format!("{}-{name}.yaml", build.name), data);
        }
        let parsed = check_workflows(&workflows);
        let names: Vec<&str> = parsed.keys().map(String::as_str).collect();
        match build.name {
            "pull_request" => {
                assert_eq!(names, ["test-apiv2", "test-go-main"]);
                let api = &parsed["test-apiv2"];
                assert_eq!(api["when"][0]["event"][0], "pull_request");
                assert_eq!(api["services"][0]["name"], "redis");
            }
            "push_develop" => {
                assert_eq!(
                    names,
                    [
                        "publish-apiv2",
                        "publish-base-go",
                        "publish-lmtpd",
                        "publish-worker"
                    ]
                );
                let settings = &parsed["publish-apiv2"]["steps"][0]["settings"];
                assert_eq!(settings["tags"][0], "develop");
                assert_eq!(
                    parsed["publish-apiv2"]["depends_on"][0]["name"],
                    "publish-base-go"
                );
            }
            "tag_release" => assert_eq!(names.len(), 5),
            _ => {
                assert_eq!(names, ["ripple"], "one workflow saying why");
                let step = &parsed["ripple"]["steps"][0];
                let reason = step["environment"]["RIPPLE_REASON"].as_str().unwrap();
                assert!(reason.contains("nothing"), "{reason}");
                // `$$` is Woodpecker's literal `$`: the shell reads the
                // variable, Woodpecker does not substitute it.
                assert_eq!(
                    step["commands"][0],
                    "echo \"ripple: nothing to run: $$RIPPLE_REASON\""
                );
            }
        }
        // The answer's workflows, readable.
        workflows
            .iter()
            .map(|(name, data)| format!("### config `{name}`\n{data}"))
            .collect::<Vec<_>>()
            .join("\n")
    });
}

#[test]
fn plan_writes_one_file_per_workflow_into_a_directory() {
    let repo = TestRepo::standard();
    let dir = repo.path().join(".git/plan");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("old.yaml"),
        "# Generated by ripple from services.toml\n",
    )
    .unwrap();
    std::fs::write(dir.join("mine.yaml"), "steps: []\n").unwrap();
    let out = dir.display().to_string();
    let args = [
        "plan",
        "--ci",
        "woodpecker",
        "--event",
        "tag",
        "--tag",
        "release-2",
        "--output",
        &out,
    ];
    assert!(repo.ripple(&args, &[]).ok().is_empty());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "mine.yaml",
            "publish-apiv2.yaml",
            "publish-base-go.yaml",
            "publish-lmtpd.yaml",
            "publish-web.yaml",
            "publish-worker.yaml"
        ],
        "an earlier plan's file is gone, the user's own stays"
    );
}

#[test]
fn generate_writes_path_filtered_workflows() {
    let mut repo = TestRepo::standard();
    let run = repo.ripple(&["generate", "--ci", "woodpecker"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let dir = repo.path().join(".woodpecker");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    for (name, data) in &files {
        keep("woodpecker", &format!("generate-{name}.yaml"), data);
    }
    let parsed = check_workflows(&files);
    let api = &parsed["test-apiv2"];
    assert_eq!(
        api["when"][0]["path"]["include"],
        parse(
            "[src/api/**, src/api, src/go.main/**, src/go.main, docker/go/**, docker/go, services.toml/**, services.toml]"
        )
    );
    let publish = &parsed["publish-apiv2"];
    assert_eq!(publish["when"][0]["branch"][0], "develop");
    assert_eq!(
        publish["steps"][0]["commands"][0],
        "ripple --ci woodpecker gate apiv2 --all --tags-file .tags"
    );
    assert_eq!(publish["steps"][1]["settings"]["tags_file"], ".tags");
    let release = &parsed["release-apiv2"];
    assert_eq!(release["when"][0]["ref"][0], "refs/tags/release-*");
    assert!(
        release["when"][0].get("path").is_none(),
        "a release builds every image"
    );
    snapshot(
        "woodpecker_generate_test_apiv2",
        &files.iter().find(|f| f.0 == "test-apiv2").unwrap().1,
    );
    snapshot(
        "woodpecker_generate_publish_apiv2",
        &files.iter().find(|f| f.0 == "publish-apiv2").unwrap().1,
    );

    // The tags step writes what `plan` would tag, in Woodpecker's environment.
    let env = [
        ("CI", "woodpecker"),
        ("CI_PIPELINE_EVENT", "push"),
        ("CI_COMMIT_BRANCH", "develop"),
    ];
    let run = repo.ripple(
        &[
            "--ci",
            "woodpecker",
            "gate",
            "apiv2",
            "--all",
            "--tags-file",
            ".git/tags",
        ],
        &env,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tags = std::fs::read_to_string(repo.path().join(".git/tags")).unwrap();
    assert_eq!(tags, format!("develop,{}", repo.rev("HEAD")));

    // A removed service's workflows go; --check says so first.
    let manifest = std::fs::read_to_string(repo.path().join("services.toml")).unwrap();
    let without_web = manifest.replace("name = \"web\"", "name = \"web2\"");
    repo.write("services.toml", &without_web);
    let check = repo.ripple(&["generate", "--ci", "woodpecker", "--check"], &[]);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(check.stdout.contains("test-web.yaml"), "{}", check.stdout);
    assert!(
        repo.ripple(&["generate", "--ci", "woodpecker"], &[])
            .ok()
            .is_empty()
    );
    assert!(!dir.join("test-web.yaml").exists());
    assert!(dir.join("test-web2.yaml").exists());
    let check = repo.ripple(&["generate", "--ci", "woodpecker", "--check"], &[]);
    assert_eq!(check.code, 0, "{}", check.stdout);
}

/// What Woodpecker makes of a value: `$$` is a literal `$`.
fn substituted(value: &Value) -> String {
    value.as_str().expect("a string").replace("$$", "$")
}

/// The files `plan --output DIR` would write, one at a time.
fn files_of(
    templates: &ripple::backend::Templates,
    plan: impl Into<Arc<Plan>>,
) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let takes_files = woodpecker::Woodpecker
        .plan_files(templates, &plan.into(), &mut |name, text| {
            files.push((name, text));
            Ok(())
        })
        .unwrap();
    assert!(takes_files);
    files
}

#[test]
fn hostile_values_reach_woodpecker_as_they_are() {
    let templates = woodpecker::Woodpecker.load(Vec::new()).unwrap();
    // Promoted images: the promote step alone (Woodpecker cannot skip the
    // build after it), never falling back to a build.
    let files = files_of(&templates, hostile_plan());
    let promoted = parse(&files[1].1);
    let steps = promoted["steps"].as_sequence().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(substituted(&steps[0]["image"]), hostile("runner"));
    let command = substituted(&steps[0]["commands"][0]);
    assert!(command.starts_with("ripple promote '"), "{command}");
    assert!(!command.contains("--else-build"), "{command}");
    assert_eq!(
        steps[0]["environment"]["RIPPLE_REGISTRY_PASSWORD"]["from_secret"],
        "docker_password"
    );
    // Built images: every value of the plugin's settings.
    let mut built = hostile_plan();
    for job in &mut built.jobs {
        if let Work::Image(image) = &mut job.work {
            image.promote = None;
        }
    }
    let built = Arc::new(built);
    let files = files_of(&templates, built.clone());
    let mut json = Vec::new();
    let answer = woodpecker::Woodpecker
        .plan(&templates, &built, &mut json)
        .unwrap();
    assert!(matches!(answer, Rendered::Answer));
    let json = String::from_utf8(json).unwrap();
    assert_eq!(files.len(), 3, "no workflow was injected");
    let answer = configs(&json);
    assert_eq!(answer[0].0, hostile("name"), "names are JSON, not YAML");
    // The streamed answer holds the same files as `--output DIR` gets.
    let named: Vec<(String, String)> = answer
        .iter()
        .map(|(name, data)| (format!("{name}.yaml"), data.clone()))
        .collect();
    assert_eq!(named, files);
    let test = parse(&files[0].1);
    assert_eq!(substituted(&test["steps"][0]["name"]), hostile("step"));
    assert_eq!(substituted(&test["steps"][0]["image"]), hostile("image"));
    assert_eq!(
        substituted(&test["steps"][0]["commands"][0]),
        hostile("command")
    );
    assert_eq!(
        substituted(&test["when"][0]["branch"][0]),
        hostile("branch")
    );
    let sidecar = &test["services"][0];
    assert_eq!(substituted(&sidecar["name"]), hostile("sidecar"));
    let (key, value) = sidecar["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(
        (substituted(key), substituted(value)),
        (hostile("key"), hostile("value"))
    );
    let image = parse(&files[1].1);
    assert_eq!(
        substituted(&image["depends_on"][0]["name"]),
        hostile("name")
    );
    let settings = &image["steps"][0]["settings"];
    for key in ["repo", "registry", "dockerfile", "context"] {
        assert_eq!(substituted(&settings[key]), hostile(key), "{key}");
    }
    assert_eq!(substituted(&settings["tags"][0]), hostile("tag"));
    assert_eq!(
        substituted(&settings["build_args"][0]),
        hostile("build-arg")
    );
    assert_eq!(substituted(&settings["platforms"][0]), hostile("platform"));
    for (_, text) in &files {
        assert!(
            !text.replace("$${", "").contains("${"),
            "nothing left to substitute"
        );
    }
}
