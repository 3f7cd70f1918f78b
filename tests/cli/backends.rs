//! Every backend on the same builds: each event's output is a snapshot,
//! is kept for CI's validators (`target/tmp/rendered/<ci>/`), and the CI
//! system's own environment plans exactly what the flags do.

use std::path::PathBuf;

use serde_norway::Value;

use crate::common::{TestRepo, rendered_dir, snapshot};

/// One build of one repository, described in ripple's words.
pub struct Build {
    /// Snapshot name.
    pub name: &'static str,
    pub repo: TestRepo,
    pub event: &'static str,
    pub target: Option<&'static str>,
    pub branch: Option<&'static str>,
    pub before: Option<String>,
    pub tag: Option<&'static str>,
}

impl Build {
    /// The same build given as flags.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = vec!["--event".to_string(), self.event.to_string()];
        let mut add = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                flags.push(flag.to_string());
                flags.push(value);
            }
        };
        add("--target-branch", self.target.map(str::to_string));
        add("--branch", self.branch.map(str::to_string));
        add("--before", self.before.clone());
        add("--tag", self.tag.map(str::to_string));
        flags
    }
}

/// A pull request, a direct push to a publish branch that changes a base
/// image, a release tag, a push that publishes nothing, a cron build and
/// one started by hand.
pub fn builds() -> Vec<Build> {
    let mut feature = TestRepo::standard();
    feature.branch("feature/search");
    feature.write("src/go.main/store.go", "package main\n// faster\n");
    feature.commit("faster store");

    let mut develop = TestRepo::standard();
    develop.checkout("develop");
    let before = develop.rev("HEAD");
    develop.write("docker/go/Dockerfile", "FROM golang:1.22\n");
    develop.commit("bump go");
    develop.write("src/worker/worker.py", "print()\n");
    develop.commit("worker");

    let build = |name, repo, event| Build {
        name,
        repo,
        event,
        target: None,
        branch: None,
        before: None,
        tag: None,
    };
    vec![
        Build {
            target: Some("main"),
            ..build("pull_request", feature, "pull_request")
        },
        Build {
            branch: Some("develop"),
            before: Some(before),
            ..build("push_develop", develop, "push")
        },
        Build {
            tag: Some("release-1.4.0"),
            ..build("tag_release", TestRepo::standard(), "tag")
        },
        Build {
            branch: Some("main"),
            ..build("push_main", TestRepo::standard(), "push")
        },
        build("cron", TestRepo::standard(), "cron"),
        Build {
            branch: Some("main"),
            ..build("custom", TestRepo::standard(), "custom")
        },
    ]
}

/// Keeps a rendered file for CI's validators of backend `ci`.
pub fn keep(ci: &str, name: &str, text: &str) -> PathBuf {
    let dir = rendered_dir().join(ci);
    std::fs::create_dir_all(&dir).expect("create rendered dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("keep rendered file");
    path
}

/// Parses one YAML document.
pub fn parse(text: &str) -> Value {
    serde_norway::from_str(text).expect("rendered YAML parses")
}

/// `plan --ci CI` for every build: `check` (which keeps what CI's
/// validators read, and returns the text to snapshot), snapshots, and the
/// CI system's environment (`env_of`) giving the same plan as the flags.
pub fn plan_every_build(
    ci: &str,
    env_of: impl Fn(&Build) -> Vec<(String, String)>,
    check: impl Fn(&Build, &str) -> String,
) {
    for build in builds() {
        let mut args = vec!["plan".to_string(), "--ci".into(), ci.into()];
        args.extend(build.flags());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = build.repo.ripple(&args, &[("CI", "true")]).ok().to_string();
        let shown = check(&build, &text);
        snapshot(&format!("{ci}_{}", build.name), &shown);

        let env = env_of(&build);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let from_env = build.repo.ripple(&["plan"], &env);
        assert_eq!(
            from_env.ok(),
            text,
            "{ci} {}: its environment plans what the flags do",
            build.name
        );
    }
}

#[test]
fn settings_choose_the_ci_system_and_the_flag_wins() {
    let mut repo = TestRepo::empty();
    let manifest = crate::common::MANIFEST.replace("[settings]\n", "[settings]\nci = \"gitlab\"\n");
    repo.write("services.toml", &manifest);
    repo.write("src/web/app.ts", "x\n");
    repo.commit("init");
    let args = ["plan", "--event", "tag", "--tag", "release-1"];
    let gitlab = repo.ripple(&args, &[]).ok().to_string();
    assert!(
        gitlab.contains("\"publish-web\":\n  image: \"docker:27\""),
        "{gitlab}"
    );
    let mut with_flag = vec!["--ci", "drone"];
    with_flag.extend(args);
    let drone = repo.ripple(&with_flag, &[]).ok().to_string();
    assert!(drone.contains("kind: pipeline"), "{drone}");
    // Inside another CI system, the manifest's choice still holds.
    let in_github = repo
        .ripple(&args, &[("GITHUB_ACTIONS", "true")])
        .ok()
        .to_string();
    assert_eq!(in_github, gitlab);

    let unknown = crate::common::MANIFEST.replace("[settings]\n", "[settings]\nci = \"jenkins\"\n");
    repo.write("services.toml", &unknown);
    let run = repo.ripple(&args, &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("ci `jenkins` is not a CI system ripple renders for"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("services.toml:3:6"), "{}", run.stderr);
}

#[test]
fn messages_name_the_ci_systems_own_variables() {
    let repo = TestRepo::standard();
    for (ci, variable) in [
        ("drone", "DRONE_TAG"),
        ("woodpecker", "CI_COMMIT_TAG"),
        ("gitlab", "CI_COMMIT_TAG"),
        ("github", "GITHUB_REF"),
    ] {
        let run = repo.ripple(
            &["affected", "--ci", ci, "--event", "tag", "--format", "json"],
            &[],
        );
        let reason = run.json()["reason"].as_str().unwrap().to_string();
        assert_eq!(
            reason,
            format!("tag event without a tag runs nothing (set {variable} or `--tag`)")
        );
    }
}
