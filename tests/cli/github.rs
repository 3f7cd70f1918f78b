//! GitHub Actions: the plan job's outputs for every build, the workflow,
//! GitHub's environment and event payload, and hostile values.

use std::sync::Arc;

use ripple::backend::{Backend, Rendered, github};
use serde_norway::Value;

use crate::backends::{Build, keep, parse, plan_every_build};
use crate::common::{TestRepo, snapshot};
use crate::render::{hostile, hostile_plan};

/// GitHub's variables, and the event payload file they point at.
fn env_of(build: &Build) -> Vec<(String, String)> {
    let (name, reference) = match build.event {
        "pull_request" => ("pull_request", "refs/pull/7/merge".to_string()),
        "cron" => ("schedule", "refs/heads/main".to_string()),
        "custom" => ("workflow_dispatch", "refs/heads/main".to_string()),
        _ => match build.tag {
            Some(tag) => ("push", format!("refs/tags/{tag}")),
            None => ("push", format!("refs/heads/{}", build.branch.unwrap())),
        },
    };
    let mut payload = serde_json::json!({});
    if let Some(before) = &build.before {
        payload["before"] = before.clone().into();
    }
    if build.event == "pull_request" {
        payload["pull_request"] = serde_json::json!({
            "head": {"sha": build.repo.rev("HEAD")},
            "base": {"ref": build.target.unwrap()},
        });
    }
    let path = build.repo.path().join(".git/event.json");
    std::fs::write(&path, payload.to_string()).unwrap();
    let mut env = vec![
        ("GITHUB_ACTIONS".to_string(), "true".to_string()),
        ("CI".into(), "true".into()),
        ("GITHUB_EVENT_NAME".into(), name.into()),
        ("GITHUB_REF".into(), reference),
        ("GITHUB_SHA".into(), build.repo.rev("HEAD")),
        ("GITHUB_EVENT_PATH".into(), path.display().to_string()),
    ];
    if let Some(target) = build.target {
        env.push(("GITHUB_BASE_REF".into(), target.into()));
    }
    env
}

/// The outputs as JSON values.
fn outputs(text: &str) -> serde_json::Value {
    let object: serde_json::Value = serde_json::from_str(text).expect("one JSON object");
    let mut parsed = serde_json::Map::new();
    for (name, value) in object.as_object().unwrap() {
        let value = serde_json::from_str(value.as_str().unwrap()).expect("each output is JSON");
        parsed.insert(name.clone(), value);
    }
    parsed.into()
}

#[test]
fn every_build_gives_the_plan_outputs() {
    plan_every_build("github", env_of, |build, text| {
        let out = outputs(text);
        let stages: Vec<String> = out["tests"]["include"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["job"].as_str().unwrap(),
                    e["stage"].as_str().unwrap()
                )
            })
            .collect();
        let images: Vec<&str> = out["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["service"].as_str().unwrap())
            .collect();
        match build.name {
            "pull_request" => {
                assert_eq!(
                    out["affected"],
                    serde_json::json!(["apiv2", "go-main", "lmtpd"])
                );
                assert_eq!(
                    stages,
                    [
                        "test-apiv2:lint",
                        "test-apiv2:unit",
                        "test-apiv2:functional",
                        "test-go-main:unit"
                    ]
                );
                let api = &out["tests"]["include"][0];
                assert_eq!(api["toolchain"], "golang:1.21");
                assert_eq!(api["sidecars"]["redis"]["image"], "redis:7");
                assert!(images.is_empty());
            }
            "push_develop" => {
                assert!(stages.is_empty());
                assert_eq!(images, ["base-go", "worker", "apiv2", "lmtpd"]);
                assert_eq!(out["images"][2]["needs"], serde_json::json!(["base-go"]));
                let sha = build.repo.rev("HEAD");
                assert_eq!(
                    out["image_tags"]["image-apiv2"],
                    format!("registry.example.org/apiv2:develop\nregistry.example.org/apiv2:{sha}")
                );
            }
            "tag_release" => {
                assert_eq!(images.len(), 5);
                assert_eq!(
                    out["images"][0]["tags"],
                    serde_json::json!(["latest", "1.4.0"])
                );
            }
            _ => {
                assert!(stages.is_empty() && images.is_empty(), "nothing runs");
            }
        }
        text.to_string()
    });
}

#[test]
fn outputs_are_appended_to_github_output() {
    let repo = TestRepo::standard();
    let file = repo.path().join(".git/github_output");
    std::fs::write(&file, "earlier=1\n").unwrap();
    let file_name = file.display().to_string();
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_REF", "refs/tags/release-2"),
        ("GITHUB_OUTPUT", file_name.as_str()),
    ];
    let run = repo.ripple(&["plan"], &env);
    assert!(run.ok().is_empty(), "nothing on stdout: {}", run.stdout);
    assert_eq!(
        run.stderr, "ripple: release tag `release-2`: every image, version `2`: 5 jobs\n",
        "the plan job's log says what was planned"
    );
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("earlier=1\n"), "appended: {written}");
    // `NAME<<DELIMITER`, the value, the delimiter: as GitHub reads it.
    let mut values = std::collections::BTreeMap::new();
    let mut lines = written.lines().skip(1);
    while let Some(line) = lines.next() {
        let (name, delimiter) = line.split_once("<<").expect("NAME<<DELIMITER");
        let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
        values.insert(name.to_string(), value.join("\n"));
    }
    assert_eq!(
        values.keys().collect::<Vec<_>>(),
        ["affected", "image_tags", "images", "promotions", "tests"]
    );
    // Compact JSON, one line each: no value holds a line that ends it.
    assert!(
        values.values().all(|value| !value.contains('\n')),
        "{values:?}"
    );
    let images: serde_json::Value = serde_json::from_str(&values["images"]).unwrap();
    assert_eq!(
        images.as_array().unwrap().len(),
        5,
        "a release publishes every image"
    );
}

#[test]
fn generate_writes_the_workflow() {
    let repo = TestRepo::standard();
    let run = repo.ripple(&["generate", "--ci", "github"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(repo.path().join(".github/workflows/ripple.yml")).unwrap();
    keep("github", "generate.yml", &text);
    let doc = parse(&text);
    assert_eq!(doc["on"]["push"]["branches"][0], "develop");
    assert_eq!(doc["on"]["push"]["tags"][0], "release-*");
    let jobs = doc["jobs"].as_mapping().unwrap();
    let ids: Vec<&str> = jobs.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "plan",
            "test",
            "image-base-go",
            "image-web",
            "image-worker",
            "image-apiv2",
            "image-lmtpd"
        ]
    );
    let plan = &doc["jobs"]["plan"];
    assert_eq!(plan["container"], "ripple:latest");
    let steps = plan["steps"].as_sequence().unwrap();
    assert_eq!(
        steps.last().unwrap()["run"],
        "ripple plan --ci github --deepen"
    );
    let test = &doc["jobs"]["test"];
    assert_eq!(
        test["strategy"]["matrix"],
        "${{ fromJSON(needs.plan.outputs.tests) }}"
    );
    assert_eq!(
        test["services"]["redis"]["image"],
        "${{ matrix.sidecars['redis'].image || '' }}"
    );
    // The commands reach the shell through `env:`, never inlined.
    let step = &test["steps"][2];
    assert_eq!(step["env"]["RIPPLE_COMMANDS"], "${{ matrix.commands }}");
    assert_eq!(step["run"], "eval \"$RIPPLE_COMMANDS\"");
    let api = &doc["jobs"]["image-apiv2"];
    assert_eq!(api["needs"], parse("[plan, image-base-go]"));
    let condition = api["if"].as_str().unwrap();
    assert!(condition.contains("!cancelled()"), "{condition}");
    assert!(condition.contains("!contains(needs.*.result, 'failure')"));
    assert!(condition.contains("needs.plan.outputs.images).*.job, 'image-apiv2')"));
    snapshot("github_generate", &text);
}

/// What GitHub makes of a value: `${{ '${{' }}` evaluates to `${{`.
fn evaluated(value: &Value) -> String {
    value
        .as_str()
        .expect("a string")
        .replace("${{ '${{' }}", "${{")
}

#[test]
fn hostile_values_reach_github_as_they_are() {
    let plan = Arc::new(hostile_plan());
    let templates = github::Github.load(Vec::new()).unwrap();
    let files = github::Github.generate(&templates, &plan).unwrap();
    let text = &files[0].1;
    keep("github-hostile", "hostile.yml", text);
    // No value starts an expression: each `${{` a value held is disarmed.
    let doc = parse(text);
    let jobs = doc["jobs"].as_mapping().unwrap();
    assert_eq!(jobs.len(), 4, "plan, test and two images: nothing injected");
    // Service names are only ever inside ripple's own expressions, as
    // string literals.
    let needs = &jobs.iter().nth(3).unwrap().1["needs"];
    assert_eq!(needs[0], "plan");
    assert_eq!(
        needs.as_sequence().unwrap().len(),
        2,
        "it waits for the first image"
    );
    let mut images = jobs
        .iter()
        .filter(|(id, _)| id.as_str().unwrap().starts_with("image-"))
        .map(|(_, job)| job);
    let image = images.next().unwrap();
    let multi = images.next().unwrap();
    let steps = multi["steps"].as_sequence().unwrap();
    // The promote step reads its command from the plan's outputs only.
    assert_eq!(steps[1]["id"], "promote");
    let id = jobs
        .iter()
        .map(|(id, _)| id.as_str().unwrap())
        .filter(|id| id.starts_with("image-"))
        .nth(1)
        .unwrap();
    assert_eq!(
        steps[1]["env"]["RIPPLE_PROMOTE"],
        format!("${{{{ fromJSON(needs.plan.outputs.promotions)['{id}'] }}}}").as_str()
    );
    assert_eq!(steps[2]["uses"], "docker/setup-qemu-action@v3");
    assert_eq!(
        evaluated(&steps.last().unwrap()["with"]["platforms"]),
        format!("{},linux/arm64", hostile("platforms"))
    );
    let with = &image["steps"].as_sequence().unwrap().last().unwrap()["with"];
    assert_eq!(evaluated(&with["context"]), hostile("context"));
    assert_eq!(evaluated(&with["file"]), hostile("dockerfile"));
    assert_eq!(evaluated(&with["build-args"]), hostile("build-arg"));
    assert_eq!(evaluated(&with["platforms"]), hostile("platform"));
    let login = &image["steps"].as_sequence().unwrap()[3]["with"];
    assert_eq!(evaluated(&login["registry"]), hostile("registry"));
    assert_eq!(
        evaluated(&doc["on"]["push"]["branches"][0]),
        hostile("branch")
    );
    assert_eq!(
        evaluated(&doc["on"]["push"]["tags"][0]),
        hostile("tag-glob")
    );

    // The outputs are JSON, read back exactly.
    let Rendered::Outputs { values, .. } = github::Github
        .plan(&templates, &plan, &mut Vec::new())
        .unwrap()
    else {
        panic!("outputs");
    };
    let tests: serde_json::Value = serde_json::from_str(&values[1].1.text()).unwrap();
    // Quoted, as stdout's object holds it: a JSON string of that text.
    let mut quoted = Vec::new();
    values[1].1.write_quoted(&mut quoted).unwrap();
    let unquoted: String = serde_json::from_slice(&quoted).unwrap();
    assert_eq!(unquoted, values[1].1.text());
    assert_eq!(tests["include"][0]["commands"], hostile("command"));
    assert_eq!(tests["include"][0]["toolchain"], hostile("image"));
    let images: serde_json::Value = serde_json::from_str(&values[2].1.text()).unwrap();
    assert_eq!(images[0]["tags"][0], hostile("tag"));
}

#[test]
fn generate_covers_platforms_build_arguments_and_sidecar_variables() {
    let mut repo = TestRepo::empty();
    let manifest = crate::common::MANIFEST
        .replace(
            "services = [{ name = \"redis\", image = \"redis:7\" }]",
            "services = [{ name = \"redis\", image = \"redis:7\", environment = { REDIS_ARGS = \"--save ''\" } }]\n\
             platforms = [\"linux/amd64\", \"linux/arm64\"]\n\
             build_args = { GO_VERSION = \"1.22\", MODE = \"${release}\" }",
        )
        .replace("name = \"go-main\"", "name = \"go.main\"")
        .replace("depends_on = [\"go-main\"]", "depends_on = [\"go.main\"]");
    repo.write("services.toml", &manifest);
    for (path, contents) in crate::common::FILES {
        repo.write(path, contents);
    }
    repo.commit("init");
    let run = repo.ripple(&["generate", "--ci", "github"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(repo.path().join(".github/workflows/ripple.yml")).unwrap();
    keep("github", "generate_platforms.yml", &text);
    let doc = parse(&text);
    let redis = &doc["jobs"]["test"]["services"]["redis"];
    assert_eq!(
        redis["env"]["REDIS_ARGS"],
        "${{ matrix.sidecars['redis'].env['REDIS__ARGS'] }}"
    );
    let api = doc["jobs"]["image-apiv2"]["steps"].as_sequence().unwrap();
    assert_eq!(api[1]["uses"], "docker/setup-qemu-action@v3");
    let with = &api.last().unwrap()["with"];
    assert_eq!(with["platforms"], "linux/amd64,linux/arm64");
    assert_eq!(with["build-args"], "GO_VERSION=1.22\nMODE=${release}");

    // The matrix entry holds the variable under the same token.
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_BASE_REF", "main"),
    ];
    repo.branch("feature");
    repo.write("src/api/main.go", "package main // changed\n");
    repo.commit("change the api");
    let out = outputs(repo.ripple(&["plan"], &env).ok());
    let entry = &out["tests"]["include"][0];
    assert_eq!(
        entry["sidecars"]["redis"]["env"]["REDIS__ARGS"],
        "--save ''"
    );
}
