//! Release by promotion against a real registry on a loopback port:
//! `ripple promote` retags through the HTTP API v2, and a release of a
//! repository built once by a publish push ends with `latest` and the
//! version naming the digests that push built, with no build run.

use serde_norway::Value;

use crate::common::{Run, TestRepo, ripple_in};
use crate::registry::{PASSWORD, Registry, USER};

/// `ripple promote IMAGE --from FROM --to TO...` in `dir`.
fn promote(
    dir: &std::path::Path,
    image: &str,
    from: &str,
    to: &[&str],
    extra: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let mut args = vec!["promote", image, "--from", from];
    for tag in to {
        args.extend(["--to", tag]);
    }
    args.extend(extra);
    ripple_in(dir, &args, env)
}

#[test]
fn promotion_gives_the_tested_digest_new_tags() {
    let registry = Registry::start();
    let built = registry.push_image("team/app", "in-0123456789ab", "layer one", None);
    let dir = tempfile::tempdir().unwrap();
    let image = registry.image("team/app");
    let run = promote(
        dir.path(),
        &image,
        "in-0123456789ab",
        &["latest", "1.4.0"],
        &[],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("is now tagged `latest`, `1.4.0`"),
        "{}",
        run.stderr
    );
    for tag in ["latest", "1.4.0", "in-0123456789ab"] {
        assert_eq!(registry.tag("team/app", tag).unwrap().0, built, "{tag}");
    }
    assert_eq!(
        registry.tags("team/app"),
        ["1.4.0", "in-0123456789ab", "latest"]
    );
    // Again: nothing to move, still a success.
    let again = promote(dir.path(), &image, "in-0123456789ab", &["latest"], &[], &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("is already"), "{}", again.stderr);
}

#[test]
fn a_multi_platform_index_is_promoted_whole() {
    let registry = Registry::start();
    let amd = registry.push_image("team/app", "amd", "amd64 layer", None);
    let arm = registry.push_image("team/app", "arm", "arm64 layer", None);
    let index = registry.push_index(
        "team/app",
        "in-00000000000a",
        &[(&amd, "amd64"), (&arm, "arm64")],
    );
    // `latest` already names another image: moving it reads the revision
    // of the index's first image, by digest.
    registry.push_image("team/app", "latest", "an older build", None);
    let dir = tempfile::tempdir().unwrap();
    let run = promote(
        dir.path(),
        &registry.image("team/app"),
        "in-00000000000a",
        &["2.0", "latest"],
        &[],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("an index"), "{}", run.stderr);
    let (digest, media_type) = registry.tag("team/app", "2.0").unwrap();
    assert_eq!(digest, index);
    assert_eq!(registry.tag("team/app", "latest").unwrap().0, index);
    assert_eq!(media_type, "application/vnd.oci.image.index.v1+json");
}

#[test]
fn a_missing_source_fails_or_hands_over_to_the_build() {
    let registry = Registry::start();
    registry.push_image("team/app", "in-aaaaaaaaaaaa", "layer", None);
    let dir = tempfile::tempdir().unwrap();
    let image = registry.image("team/app");
    let missing = promote(dir.path(), &image, "in-bbbbbbbbbbbb", &["latest"], &[], &[]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains(&format!("`{image}:in-bbbbbbbbbbbb` is not in the registry")),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("hint:"), "{}", missing.stderr);
    // With `--else-build`: said loudly, and the build step runs (exit 0).
    let build = promote(
        dir.path(),
        &image,
        "in-bbbbbbbbbbbb",
        &["latest"],
        &["--else-build"],
        &[],
    );
    assert_eq!(build.code, 0, "{}", build.stderr);
    assert!(
        build.stderr.contains("WARNING") && build.stderr.contains("BUILDS"),
        "{}",
        build.stderr
    );
    assert_eq!(registry.tag("team/app", "latest"), None);
    // After promoting, `--else-build` exits 78: the build is skipped.
    let promoted = promote(
        dir.path(),
        &image,
        "in-aaaaaaaaaaaa",
        &["latest"],
        &["--else-build"],
        &[],
    );
    assert_eq!(promoted.code, 78, "{}", promoted.stderr);
    assert!(registry.tag("team/app", "latest").is_some());
}

#[test]
fn credentials_come_from_the_environment_or_dockers_config() {
    let registry = Registry::with_basic_auth();
    let built = registry.push_image("team/app", "in-cccccccccccc", "layer", None);
    let dir = tempfile::tempdir().unwrap();
    let image = registry.image("team/app");
    let run = |to: &str, env: &[(&str, &str)]| {
        promote(dir.path(), &image, "in-cccccccccccc", &[to], &[], env)
    };

    let anonymous = run("a", &[]);
    assert_eq!(anonymous.code, 1, "{}", anonymous.stderr);
    assert!(anonymous.stderr.contains("401"), "{}", anonymous.stderr);
    assert!(
        anonymous.stderr.contains("RIPPLE_REGISTRY_USERNAME"),
        "{}",
        anonymous.stderr
    );

    let wrong = run(
        "b",
        &[
            ("RIPPLE_REGISTRY_USERNAME", USER),
            ("RIPPLE_REGISTRY_PASSWORD", "wrong"),
        ],
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(
        wrong.stderr.contains("refused the credentials"),
        "{}",
        wrong.stderr
    );
    assert!(
        wrong.stderr.contains("check RIPPLE_REGISTRY_USERNAME"),
        "{}",
        wrong.stderr
    );
    assert_eq!(registry.tag("team/app", "b"), None);

    let right = run(
        "c",
        &[
            ("RIPPLE_REGISTRY_USERNAME", USER),
            ("RIPPLE_REGISTRY_PASSWORD", PASSWORD),
        ],
    );
    assert_eq!(right.code, 0, "{}", right.stderr);
    assert_eq!(registry.tag("team/app", "c").unwrap().0, built);

    // `docker login`'s config.json, found through DOCKER_CONFIG.
    let docker = tempfile::tempdir().unwrap();
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    std::fs::write(
        docker.path().join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let config = docker.path().to_str().unwrap();
    let from_config = run("d", &[("DOCKER_CONFIG", config)]);
    assert_eq!(from_config.code, 0, "{}", from_config.stderr);
    assert_eq!(registry.tag("team/app", "d").unwrap().0, built);
}

#[test]
fn a_registry_that_is_down_is_exit_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let image = format!("127.0.0.1:{port}/team/app");
    let run = promote(dir.path(), &image, "in-dddddddddddd", &["latest"], &[], &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot reach the registry"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn latest_only_moves_forward() {
    let mut repo = TestRepo::empty();
    repo.write("a", "1\n");
    let first = repo.commit("first");
    repo.write("a", "2\n");
    let second = repo.commit("second");
    repo.write("a", "3\n");
    let third = repo.commit("third");
    let registry = Registry::start();
    let image = registry.image("team/app");
    let newer = registry.push_image("team/app", "in-222222222222", "two", Some(&second));
    registry.push_image("team/app", "latest", "two", Some(&second));
    let older = registry.push_image("team/app", "in-111111111111", "one", Some(&first));

    // An older build gets its version but not `latest`.
    let back = promote(
        repo.path(),
        &image,
        "in-111111111111",
        &["latest", "1.0.1"],
        &[],
        &[],
    );
    assert_eq!(back.code, 0, "{}", back.stderr);
    assert!(back.stderr.contains(":latest` stays at"), "{}", back.stderr);
    assert_eq!(registry.tag("team/app", "latest").unwrap().0, newer);
    assert_eq!(registry.tag("team/app", "1.0.1").unwrap().0, older);

    // A build of a later commit moves it.
    let later = registry.push_image("team/app", "in-333333333333", "three", Some(&third));
    let forward = promote(
        repo.path(),
        &image,
        "in-333333333333",
        &["latest"],
        &[],
        &[],
    );
    assert_eq!(forward.code, 0, "{}", forward.stderr);
    assert_eq!(registry.tag("team/app", "latest").unwrap().0, later);
}

/// The manifest of the end-to-end test: a base image, a library and an
/// image on both, published to `registry`.
fn manifest(registry: &Registry) -> String {
    format!(
        r#"[settings]
publish_branches = ["develop"]
release = "promote"
ignore = ["**/*.md"]

[[service]]
name = "base"
kind = "base-image"
paths = ["base"]
image = "{base}"
dockerfile = "base/Dockerfile"
context = "base"

[[service]]
name = "lib"
kind = "library"
paths = ["lib"]

[[service]]
name = "api"
kind = "image"
paths = ["api"]
depends_on = ["base", "lib"]
image = "{api}"
dockerfile = "api/Dockerfile"
context = "."
build_args = {{ MODE = "release" }}
"#,
        base = registry.image("team/base"),
        api = registry.image("team/api"),
    )
}

/// A repository of [`manifest`]'s services, committed once: the
/// repository and that commit.
fn suite(registry: &Registry) -> (TestRepo, String) {
    let mut repo = TestRepo::empty();
    repo.write("services.toml", &manifest(registry));
    repo.write("base/Dockerfile", "FROM alpine\n");
    repo.write("lib/lib.go", "package lib\n");
    repo.write("api/Dockerfile", "FROM base\nCOPY api lib /src/\n");
    repo.write("api/main.go", "package main\n");
    let start = repo.commit("start");
    (repo, start)
}

/// `affected --format json`'s input of each image at `head`.
fn inputs(repo: &TestRepo, head: &str) -> Vec<(String, String)> {
    let json = repo
        .ripple(
            &[
                "affected",
                "--event",
                "tag",
                "--tag",
                "release-0",
                "--head",
                head,
                "--format",
                "json",
            ],
            &[],
        )
        .json();
    json["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["input"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_release_promotes_what_the_publish_push_built() {
    let registry = Registry::start();
    let (mut repo, start) = suite(&registry);
    repo.branch("develop").checkout("develop");
    repo.write("base/Dockerfile", "FROM alpine:3\n");
    repo.write("lib/lib.go", "package lib // v2\n");
    let built = repo.commit("base and lib");

    // The publish push: both images, each tagged with its inputs. The
    // test plays the build step, pushing what the plan says.
    let push = repo
        .ripple(
            &[
                "plan", "--format", "json", "--event", "push", "--branch", "develop", "--before",
                &start,
            ],
            &[],
        )
        .json();
    let mut pushed = std::collections::BTreeMap::new();
    for job in push["jobs"].as_array().unwrap() {
        let image = &job["image"];
        let name = image["image"]
            .as_str()
            .unwrap()
            .split_once('/')
            .unwrap()
            .1
            .to_string();
        let tags: Vec<&str> = image["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(tags.iter().any(|t| t.starts_with("in-")), "{tags:?}");
        assert!(
            image.get("promote").is_none(),
            "a push builds, it does not promote"
        );
        let mut digest = String::new();
        for tag in &tags {
            digest = registry.push_image(
                &name,
                tag,
                &format!("{name} built from {built}"),
                Some(&built),
            );
        }
        pushed.insert(name, digest);
    }
    assert_eq!(pushed.len(), 2);

    // A change no image is made of keeps every hash; a change to the base
    // image moves its own and its dependent's.
    repo.write("api/README.md", "# api\n");
    let docs = repo.commit("docs");
    assert_eq!(inputs(&repo, &built), inputs(&repo, &docs));
    repo.set_ref("refs/tags/release-1.0", &docs);

    // The release: every image promoted, none built.
    let yaml = repo
        .ripple(
            &[
                "plan",
                "--event",
                "tag",
                "--tag",
                "release-1.0",
                "--head",
                &docs,
            ],
            &[],
        )
        .ok()
        .to_string();
    let docs_yaml = crate::common::check_yaml("release_promote", &yaml);
    assert_eq!(docs_yaml.len(), 2);
    for pipeline in &docs_yaml {
        let steps = pipeline["steps"].as_sequence().unwrap();
        assert_eq!(steps[0]["name"], "promote");
        assert_eq!(steps[1]["name"], "publish");
        let command = steps[0]["commands"][0].as_str().unwrap().replace("$$", "$");
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(&words[..2], ["ripple", "promote"]);
        let run = ripple_in(repo.path(), &words[1..], &[]);
        assert_eq!(run.code, 78, "the build step is skipped: {}", run.stderr);
    }
    for (name, digest) in &pushed {
        assert_eq!(
            &registry.tag(name, "latest").unwrap().0,
            digest,
            "{name}:latest"
        );
        assert_eq!(&registry.tag(name, "1.0").unwrap().0, digest, "{name}:1.0");
    }

    // A dependency's change gives its dependents new hashes.
    let before: std::collections::BTreeMap<_, _> = inputs(&repo, &docs).into_iter().collect();
    repo.write("lib/lib.go", "package lib // v3\n");
    let changed = repo.commit("lib");
    let after: std::collections::BTreeMap<_, _> = inputs(&repo, &changed).into_iter().collect();
    assert_eq!(before["base"], after["base"]);
    assert_ne!(before["api"], after["api"]);

    // `--strict`: no fallback to a build.
    let strict = repo
        .ripple(
            &[
                "plan",
                "--event",
                "tag",
                "--tag",
                "release-1.0",
                "--head",
                &docs,
                "--strict",
            ],
            &[],
        )
        .ok()
        .to_string();
    assert!(!strict.contains("--else-build"));
    assert!(yaml.contains("--else-build"));
    let _: Vec<Value> = crate::common::check_yaml("release_promote_strict", &strict);
}

/// A repository whose publish push built both images into `registry`:
/// the repository, the commit built, and each image's digest.
fn built_once(
    registry: &Registry,
) -> (TestRepo, String, std::collections::BTreeMap<String, String>) {
    let (repo, head) = suite(registry);
    let mut pushed = std::collections::BTreeMap::new();
    for (name, input) in inputs(&repo, &head) {
        let repository = format!("team/{name}");
        let digest =
            registry.push_image(&repository, &input, &format!("{name} {head}"), Some(&head));
        pushed.insert(repository, digest);
    }
    (repo, head, pushed)
}

#[test]
fn every_backend_renders_the_promotion() {
    use crate::backends::keep;
    // Rendered, not run: a registry host that is only a name.
    let registry_name = "registry.example.org";
    let text = |registry: &str| {
        format!(
            "[settings]\nrelease = \"promote\"\n\n[[service]]\nname = \"base\"\nkind = \"base-image\"\n\
             paths = [\"base\"]\nimage = \"{registry}/team/base\"\ndockerfile = \"base/Dockerfile\"\n\n\
             [[service]]\nname = \"api\"\nkind = \"image\"\npaths = [\"api\"]\ndepends_on = [\"base\"]\n\
             image = \"{registry}/team/api\"\ndockerfile = \"api/Dockerfile\"\n"
        )
    };
    let mut repo = TestRepo::empty();
    repo.write("services.toml", &text(registry_name));
    repo.write("base/Dockerfile", "FROM alpine\n");
    repo.write("api/Dockerfile", "FROM base\n");
    let start = repo.commit("start");
    repo.branch("develop").checkout("develop");
    repo.write("base/Dockerfile", "FROM alpine:3\n");
    let head = repo.commit("base");
    let release = ["--event", "tag", "--tag", "release-2.0", "--head", &head];
    let push = [
        "--event", "push", "--branch", "develop", "--before", &start, "--head", &head,
    ];

    let drone = repo
        .ripple(&[&["plan"][..], &release].concat(), &[])
        .ok()
        .to_string();
    crate::common::check_yaml("promote_release_drone", &drone);
    crate::common::snapshot("promote_release_drone", &drone);
    let drone_push = repo
        .ripple(&[&["plan"][..], &push].concat(), &[])
        .ok()
        .to_string();
    let docs = crate::common::check_yaml("promote_push_drone", &drone_push);
    let tags = &docs[0]["steps"][0]["settings"]["tags"];
    assert_eq!(
        tags.as_sequence().unwrap().len(),
        3,
        "develop, the sha and in-<hash>"
    );
    assert!(tags[2].as_str().unwrap().starts_with("in-"));

    let gitlab = repo
        .ripple(&[&["plan", "--ci", "gitlab"][..], &release].concat(), &[])
        .ok()
        .to_string();
    keep("gitlab", "promote-release.yml", &gitlab);
    crate::common::snapshot("promote_release_gitlab", &gitlab);

    let github = repo
        .ripple(&[&["plan", "--ci", "github"][..], &release].concat(), &[])
        .json();
    let promotions: serde_json::Value =
        serde_json::from_str(github["promotions"].as_str().unwrap()).unwrap();
    let command = promotions["image-api"].as_str().unwrap();
    assert!(
        command.starts_with("ripple promote registry.example.org/team/api --from in-")
            && command.ends_with(" --to latest --to 2.0 --else-build"),
        "{command}"
    );
    repo.ripple(&["generate", "--ci", "github"], &[]).ok();
    let workflow =
        std::fs::read_to_string(repo.path().join(".github/workflows/ripple.yml")).unwrap();
    keep("github", "promote.yml", &workflow);
    crate::common::snapshot("promote_generate_github", &workflow);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("woodpecker");
    repo.ripple(
        &[
            &[
                "plan",
                "--ci",
                "woodpecker",
                "--output",
                out.to_str().unwrap(),
            ][..],
            &release,
        ]
        .concat(),
        &[],
    )
    .ok();
    let api = std::fs::read_to_string(out.join("publish-api.yaml")).unwrap();
    keep("woodpecker", "promote-release-api.yaml", &api);
    crate::common::snapshot("promote_release_woodpecker", &api);

    // Static files: the gate promotes at run time.
    repo.ripple(&["generate"], &[]).ok();
    let drone_static = std::fs::read_to_string(repo.path().join(".drone.yml")).unwrap();
    let docs = crate::common::check_yaml("promote_generate_drone", &drone_static);
    let release_api = docs
        .iter()
        .find(|d| d["name"] == "release-api")
        .expect("a release pipeline");
    assert_eq!(
        release_api["steps"][0]["commands"][0],
        "ripple gate api --deepen --tags-file .tags --promote"
    );
    assert_eq!(
        release_api["steps"][0]["environment"]["RIPPLE_REGISTRY_USERNAME"]["from_secret"],
        "docker_username"
    );
    repo.ripple(&["generate", "--ci", "woodpecker"], &[]).ok();
    let static_api =
        std::fs::read_to_string(repo.path().join(".woodpecker/release-api.yaml")).unwrap();
    keep(
        "woodpecker",
        "promote-generate-release-api.yaml",
        &static_api,
    );
    assert!(
        static_api.contains("ripple --ci woodpecker gate api --all --promote --strict"),
        "{static_api}"
    );
}

#[test]
fn the_gitlab_promote_job_runs_as_rendered() {
    let registry = Registry::start();
    let (repo, head, pushed) = built_once(&registry);
    repo.set_ref("refs/tags/release-3.0", &head);
    let text = repo
        .ripple(
            &[
                "plan",
                "--ci",
                "gitlab",
                "--event",
                "tag",
                "--tag",
                "release-3.0",
                "--head",
                &head,
            ],
            &[],
        )
        .ok()
        .to_string();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ripple"))
        .parent()
        .unwrap()
        .to_path_buf();
    for (name, digest) in &pushed {
        let service = name.trim_start_matches("team/");
        let job = &doc[format!("publish-{service}:promote").as_str()];
        let mut shell = std::process::Command::new("sh");
        shell
            .arg("-c")
            .arg(job["script"][0].as_str().unwrap())
            .current_dir(repo.path())
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("GIT_CONFIG_NOSYSTEM", "1");
        for (key, value) in job["variables"].as_mapping().unwrap() {
            // GitLab reads `$$` in a variable as `$`.
            shell.env(
                key.as_str().unwrap(),
                value.as_str().unwrap().replace("$$", "$"),
            );
        }
        let status = shell.status().unwrap();
        assert!(status.success(), "{service}'s promote job failed");
        let report = std::fs::read_to_string(repo.path().join("ripple-promote.env")).unwrap();
        assert_eq!(report, "RIPPLE_PROMOTED=true\n", "{service}");
        assert_eq!(&registry.tag(name, "latest").unwrap().0, digest);
        assert_eq!(&registry.tag(name, "3.0").unwrap().0, digest);
        // The build job reads the report first and stops there.
        let build = &doc[format!("publish-{service}").as_str()];
        let first = build["script"][0].as_str().unwrap();
        let stopped = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{first}; exit 9"))
            .env("RIPPLE_PROMOTED", "true")
            .status()
            .unwrap();
        assert_eq!(stopped.code(), Some(0), "the build stops after a promotion");
    }
}

#[test]
fn a_static_drone_file_and_a_promote_event_promote_at_run_time() {
    let registry = Registry::start();
    let (repo, head, pushed) = built_once(&registry);
    repo.set_ref("refs/tags/release-4.0", &head);
    // `.drone.yml`'s gate step on the release, in Drone's environment.
    fn drone<'a>(
        head: &'a str,
        event: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("DRONE", "true"),
            ("CI", "true"),
            ("DRONE_BUILD_EVENT", event),
            ("DRONE_COMMIT_SHA", head),
        ];
        env.extend_from_slice(extra);
        env
    }
    let gate = repo.ripple(
        &[
            "gate",
            "api",
            "--deepen",
            "--tags-file",
            ".tags",
            "--promote",
        ],
        &drone(&head, "tag", &[("DRONE_TAG", "release-4.0")]),
    );
    assert_eq!(
        gate.code, 78,
        "promoted: the publish step is skipped\n{}",
        gate.stderr
    );
    assert_eq!(
        &registry.tag("team/api", "4.0").unwrap().0,
        &pushed["team/api"]
    );
    assert_eq!(
        &registry.tag("team/api", "latest").unwrap().0,
        &pushed["team/api"]
    );

    // Drone's promote event: every image's tested build as the target.
    let yaml = repo
        .ripple(
            &["plan"],
            &drone(&head, "promote", &[("DRONE_DEPLOY_TO", "production")]),
        )
        .ok()
        .to_string();
    let docs = crate::common::check_yaml("promote_event", &yaml);
    assert_eq!(docs.len(), 2);
    for pipeline in &docs {
        let command = pipeline["steps"][0]["commands"][0].as_str().unwrap();
        assert!(
            command.contains("--to production --else-build"),
            "{command}"
        );
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(ripple_in(repo.path(), &words[1..], &[]).code, 78);
    }
    for (name, digest) in &pushed {
        assert_eq!(
            &registry.tag(name, "production").unwrap().0,
            digest,
            "{name}"
        );
    }
    // Without a target, or without `release = "promote"`, nothing runs.
    let idle = repo
        .ripple(&["plan"], &drone(&head, "promote", &[]))
        .ok()
        .to_string();
    assert!(
        idle.contains("promote event without a target runs nothing (set DRONE_DEPLOY_TO"),
        "{idle}"
    );
}

#[test]
fn check_warns_about_copies_the_hash_misses() {
    let registry_free = "[settings]\nrelease = \"promote\"\n\n[[service]]\nname = \"tools\"\nkind = \"library\"\n\
        paths = [\"tools\"]\n\n[[service]]\nname = \"api\"\nkind = \"image\"\npaths = [\"api\"]\n\
        image = \"registry.example.org/api\"\ndockerfile = \"api/Dockerfile\"\n";
    let mut repo = TestRepo::empty();
    repo.write("services.toml", registry_free);
    repo.write(
        "api/Dockerfile",
        "FROM alpine\nCOPY api /src/api\nCOPY tools/gen.sh vendor /src/\nCOPY --from=build /x /y\n",
    );
    repo.write("api/main.go", "package main\n");
    repo.write("tools/gen.sh", "#!/bin/sh\n");
    repo.write("vendor/a.go", "package a\n");
    repo.write("vendor/b.go", "package b\n");
    repo.commit("start");
    let run = repo.ripple(&["check"], &[]);
    assert_eq!(run.code, 0, "a warning, not an error: {}", run.stderr);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].starts_with(
            "warning: api/Dockerfile: `COPY tools/gen.sh vendor /src/` brings in tools/gen.sh and 2 more"
        ),
        "{}",
        warnings[0]
    );
    // Once `api` depends on what it copies, the hash covers it.
    repo.write(
        "services.toml",
        &registry_free.replace(
            "paths = [\"api\"]",
            "paths = [\"api\", \"vendor\"]\ndepends_on = [\"tools\"]",
        ),
    );
    repo.commit("cover");
    let run = repo.ripple(&["check"], &[]);
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
}

#[test]
fn an_input_tag_template_works_without_promotion() {
    let mut repo = TestRepo::empty();
    repo.write(
        "services.toml",
        "[settings]\ntags = { push = [\"{input}\", \"{short_sha}\"] }\n\n[[service]]\nname = \"api\"\n\
         kind = \"image\"\npaths = [\"api\"]\nimage = \"registry.example.org/api\"\ndockerfile = \"api/Dockerfile\"\n",
    );
    repo.write("api/Dockerfile", "FROM alpine\n");
    let start = repo.commit("start");
    repo.write("api/Dockerfile", "FROM alpine:3\n");
    let head = repo.commit("change");
    let plan = repo
        .ripple(
            &[
                "plan", "--format", "json", "--event", "push", "--branch", "develop", "--before",
                &start,
            ],
            &[],
        )
        .json();
    let tags = &plan["jobs"][0]["image"]["tags"];
    let input = tags[0].as_str().unwrap();
    assert!(input.starts_with("in-") && input.len() == 15, "{tags}");
    assert_eq!(tags[1], head[..12]);
    assert!(plan["jobs"][0]["image"].get("promote").is_none());
    // With `--files` there is no commit to hash.
    let listed = repo.ripple(
        &[
            "plan", "--event", "push", "--branch", "develop", "--files", "-",
        ],
        &[],
    );
    assert_eq!(listed.code, 2, "{}", listed.stderr);
    assert!(
        listed
            .stderr
            .contains("no commit to compute input hashes from"),
        "{}",
        listed.stderr
    );
}

#[test]
fn dockers_bearer_token_challenge_is_answered() {
    let registry = Registry::start();
    let built = registry.push_image("team/app", "in-eeeeeeeeeeee", "layer", None);
    let front = crate::registry::BearerFront::start(&registry);
    let dir = tempfile::tempdir().unwrap();
    let image = front.image("team/app");
    let run = |to: &str, password: &str| {
        promote(
            dir.path(),
            &image,
            "in-eeeeeeeeeeee",
            &[to],
            &[],
            &[
                ("RIPPLE_REGISTRY_USERNAME", USER),
                ("RIPPLE_REGISTRY_PASSWORD", password),
            ],
        )
    };
    let wrong = run("a", "wrong");
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("401"), "{}", wrong.stderr);
    assert_eq!(registry.tag("team/app", "a"), None);

    let right = run("b", PASSWORD);
    assert_eq!(right.code, 0, "{}", right.stderr);
    assert_eq!(registry.tag("team/app", "b").unwrap().0, built);
    let scopes = front.scopes.lock().unwrap().clone();
    assert!(
        scopes
            .iter()
            .any(|q| q.contains("repository%3Ateam%2Fapp%3Apull%2Cpush")
                || q.contains("repository:team/app:pull,push")),
        "a token that may push was asked for: {scopes:?}"
    );
}

/// A loopback "registry" that answers every request with `status` and a
/// registry error body.
fn refusing(status: u16, code: &str) -> std::net::SocketAddr {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"refused by the test"}}]}}"#);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Refused\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

#[test]
fn refusals_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    for (status, code, exit, says) in [
        (403, "DENIED", 1, "403 Forbidden"),
        (429, "TOOMANYREQUESTS", 3, "429 Too Many Requests"),
        (503, "UNAVAILABLE", 3, "the registry failed (503)"),
    ] {
        let address = refusing(status, code);
        let run = promote(
            dir.path(),
            &format!("{address}/team/app"),
            "in-aaaaaaaaaaaa",
            &["latest"],
            &[],
            &[],
        );
        assert_eq!(run.code, exit, "{status}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{status}: {}", run.stderr);
        assert!(run.stderr.contains("hint:"), "{status}: {}", run.stderr);
    }
}
