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
