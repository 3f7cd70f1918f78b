//! Building real images: tag templates, build arguments, platforms
//! (issue 8.1), as Drone YAML every backend check reads.

use crate::common::{TestRepo, check_yaml, snapshot};

/// A repository publishing `org/demo:1.4.0-cart`, with build arguments and
/// a multi-platform image.
const MANIFEST: &str = r#"[settings]
publish_branches = ["main"]
release_tag = ["v*", "*"]
release_version = "semver"
tags = { release = ["{version}-{service}"] }

[[service]]
name = "cart"
kind = "image"
paths = ["src/cart"]
image = "org/demo"
dockerfile = "src/cart/Dockerfile"
context = "src/cart"
build_args = { NODE_VERSION = "20", API_URL = "https://api.example.org/$path" }

[[service]]
name = "ad"
kind = "image"
paths = ["src/ad"]
image = "registry.example.org/demo/ad"
dockerfile = "src/ad/Dockerfile"
platforms = ["linux/amd64", "linux/arm64"]
tags = { push = ["{branch}-{short_sha}", "{service}"] }

[[service]]
name = "email"
kind = "image"
paths = ["src/email"]
image = "org/email"
dockerfile = "src/email/Dockerfile"
platforms = ["linux/arm64"]
"#;

fn repo() -> TestRepo {
    let mut repo = TestRepo::empty();
    repo.write("services.toml", MANIFEST);
    for service in ["cart", "ad", "email"] {
        repo.write(&format!("src/{service}/Dockerfile"), "FROM scratch\n");
        repo.write(&format!("src/{service}/main.go"), "package main\n");
    }
    repo.commit("init");
    repo
}

#[test]
fn a_release_renders_templates_build_args_and_platforms() {
    let repo = repo();
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "v1.4.0")];
    let yaml = repo.ripple(&["plan"], &env).ok().to_string();
    snapshot("images_release", &yaml);
    let docs = check_yaml("images_release", &yaml);
    let step = |name: &str| {
        docs.iter()
            .find(|d| d["name"] == format!("publish-{name}").as_str())
            .map(|d| d["steps"][0].clone())
            .unwrap()
    };
    let cart = step("cart");
    assert_eq!(cart["image"], "plugins/docker");
    assert_eq!(cart["settings"]["tags"][0], "1.4.0-cart");
    assert_eq!(cart["settings"]["tags"].as_sequence().unwrap().len(), 1);
    // Sorted by key; `$` reaches the build unsubstituted (doubled for Drone).
    assert_eq!(
        cart["settings"]["build_args"][0],
        "API_URL=https://api.example.org/$$path"
    );
    assert_eq!(cart["settings"]["build_args"][1], "NODE_VERSION=20");
    let ad = step("ad");
    assert_eq!(ad["image"], "thegeeklab/drone-docker-buildx");
    assert_eq!(ad["settings"]["platforms"][1], "linux/arm64");
    assert_eq!(
        ad["settings"]["tags"][0], "1.4.0-ad",
        "settings' release tags"
    );
    let email = step("email");
    assert_eq!(email["image"], "plugins/docker");
    assert_eq!(email["settings"]["platform"], "linux/arm64");

    // Not a semver version: not a release, and the reason says so.
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "v1.4")];
    let idle = repo.ripple(&["plan"], &env).ok().to_string();
    assert!(idle.contains("not a semver.org 2.0 version"), "{idle}");
}

#[test]
fn a_push_renders_the_push_templates() {
    let repo = repo();
    let sha = repo.rev("HEAD");
    let env = [("DRONE_BUILD_EVENT", "push"), ("DRONE_BRANCH", "main")];
    let yaml = repo.ripple(&["plan", "--all"], &env).ok().to_string();
    let docs = check_yaml("images_push", &yaml);
    let ad = docs.iter().find(|d| d["name"] == "publish-ad").unwrap();
    assert_eq!(
        ad["steps"][0]["settings"]["tags"][0],
        format!("main-{}", &sha[..12]).as_str()
    );
    assert_eq!(ad["steps"][0]["settings"]["tags"][1], "ad");
    let cart = docs.iter().find(|d| d["name"] == "publish-cart").unwrap();
    assert_eq!(cart["steps"][0]["settings"]["tags"][0], "main");
    assert_eq!(cart["steps"][0]["settings"]["tags"][1], sha.as_str());
}

#[test]
fn templates_that_cannot_give_a_tag_name_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = MANIFEST.replace("\"{branch}-{short_sha}\"", "\"{sha}+x\"");
    std::fs::write(dir.path().join("services.toml"), manifest).unwrap();
    let run = crate::common::ripple_in(dir.path(), &["graph", "--manifest", "services.toml"], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("services.toml:23:18"), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "`tags.push` of `ad`: tag template `{sha}+x`: `+` cannot be part of a Docker tag"
        ),
        "{}",
        run.stderr
    );
    let library =
        "[[service]]\nname = \"lib\"\nkind = \"library\"\nplatforms = [\"linux/amd64\"]\n";
    std::fs::write(dir.path().join("services.toml"), library).unwrap();
    let run = crate::common::ripple_in(dir.path(), &["graph", "--manifest", "services.toml"], &[]);
    assert!(
        run.stderr.contains("builds no image but sets `platforms`"),
        "{}",
        run.stderr
    );
}

/// `.env` feeds two images: each Dockerfile declares its own arguments,
/// and `api` overrides one of them.
const ENV_MANIFEST: &str = r#"[settings]
publish_branches = ["develop"]

[[service]]
name = "web"
kind = "image"
paths = ["web"]
image = "org/web"
dockerfile = "web/Dockerfile"
build_args_file = ".env"

[[service]]
name = "api"
kind = "image"
paths = ["api"]
image = "org/api"
dockerfile = "api/Dockerfile"
build_args_file = ".env"
build_args = { API_URL = "https://fixed.example.org" }
"#;

fn env_repo() -> (TestRepo, String) {
    let mut repo = TestRepo::empty();
    repo.write("services.toml", ENV_MANIFEST);
    repo.write(
        ".env",
        "NODE_VERSION=20\nAPI_URL=https://a.example.org\nUNUSED=1\n",
    );
    repo.write(
        "web/Dockerfile",
        "ARG NODE_VERSION\nFROM node:${NODE_VERSION}\n",
    );
    repo.write("api/Dockerfile", "FROM golang\nARG API_URL\nARG UNUSED\n");
    let first = repo.commit("init");
    repo.branch("develop");
    (repo, first)
}

/// Issue 8.1: a change to a build_args_file affects a service only when a
/// key its Dockerfile declares, and build_args does not override, changed.
#[test]
fn a_build_args_file_counts_only_through_declared_arguments() {
    let (mut repo, first) = env_repo();
    let push = |repo: &TestRepo, before: &str| {
        repo.ripple(
            &["affected", "--format", "json"],
            &[
                ("DRONE_BUILD_EVENT", "push"),
                ("DRONE_BRANCH", "develop"),
                ("DRONE_COMMIT_BEFORE", before),
            ],
        )
        .json()
    };
    // An overridden key (api's API_URL) and an undeclared one (web's UNUSED).
    repo.write(
        ".env",
        "NODE_VERSION=20\nAPI_URL=https://b.example.org\nUNUSED=1\n# note\n",
    );
    let second = repo.commit("api url in .env");
    let json = push(&repo, &first);
    assert_eq!(json["mode"], "diff");
    assert!(crate::common::services(&json).is_empty(), "{json}");

    repo.write(
        ".env",
        "NODE_VERSION=22\nAPI_URL=https://b.example.org\nUNUSED=2\n",
    );
    let third = repo.commit("node 22");
    let json = push(&repo, &second);
    assert_eq!(crate::common::services(&json), ["api", "web"]);
    let env = [
        ("DRONE_BUILD_EVENT", "push"),
        ("DRONE_BRANCH", "develop"),
        ("DRONE_COMMIT_BEFORE", second.as_str()),
    ];
    let why = repo.ripple(&["explain", "web"], &env).ok().to_string();
    assert!(
        why.contains("web <- .env (build argument NODE_VERSION)"),
        "{why}"
    );
    let why = repo.ripple(&["explain", "api"], &env).ok().to_string();
    assert!(why.contains("api <- .env (build argument UNUSED)"), "{why}");

    // The build gets the file's declared values at the commit built, and
    // build_args wins over the file.
    let yaml = repo.ripple(&["plan"], &env).ok().to_string();
    let docs = check_yaml("images_build_args_file", &yaml);
    let args = |name: &str| {
        let doc = docs
            .iter()
            .find(|d| d["name"] == format!("publish-{name}").as_str())
            .unwrap();
        doc["steps"][0]["settings"]["build_args"].clone()
    };
    assert_eq!(
        args("web"),
        serde_norway::Value::from(vec!["NODE_VERSION=22"])
    );
    assert_eq!(
        args("api"),
        serde_norway::Value::from(vec!["API_URL=https://fixed.example.org", "UNUSED=2"])
    );
    let _ = third;

    // With --files there is no base: a listed file affects every reader.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.toml"), ENV_MANIFEST).unwrap();
    let listed = crate::common::ripple_fed(
        dir.path(),
        &["affected", "--files", "-", "--format", "json"],
        &[],
        ".env\n",
    );
    assert_eq!(crate::common::services(&listed.json()), ["api", "web"]);
}

#[test]
fn check_finds_a_missing_build_args_file() {
    let (mut repo, _) = env_repo();
    repo.remove(".env");
    repo.commit("no env");
    let run = repo.ripple(&["check"], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("`web.build_args_file`: `.env` is not a file in this commit"),
        "{}",
        run.stderr
    );
}

/// The static file bakes in the build_args_file values at HEAD, so a
/// change to a declared one makes `generate --check` fail.
#[test]
fn generate_renders_the_file_values_at_head() {
    let (mut repo, _) = env_repo();
    let out = repo.path().join(".drone.yml");
    repo.ripple(&["generate"], &[]).ok();
    let text = std::fs::read_to_string(&out).unwrap();
    let docs = check_yaml("images_generate", &text);
    let web = docs.iter().find(|d| d["name"] == "publish-web").unwrap();
    let publish = web["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "publish")
        .unwrap();
    assert_eq!(publish["settings"]["build_args"][0], "NODE_VERSION=20");
    repo.write(
        ".env",
        "NODE_VERSION=22\nAPI_URL=https://a.example.org\nUNUSED=1\n",
    );
    repo.commit("node 22");
    let stale = repo.ripple(&["generate", "--check"], &[]);
    assert_eq!(stale.code, 1, "{}", stale.stderr);
    assert!(
        stale.stdout.contains("+    - \"NODE_VERSION=22\""),
        "{}",
        stale.stdout
    );
}
