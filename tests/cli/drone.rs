//! Drone's static mode: `generate`, `generate --check`, and the gate's tags.

use crate::common::{TestRepo, check_yaml, snapshot};

#[test]
fn generate_writes_every_service_and_event_gated() {
    let repo = TestRepo::standard();
    let run = repo.ripple(&["generate"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let yaml = std::fs::read_to_string(repo.path().join(".drone.yml")).unwrap();
    let docs = check_yaml("generate_static", &yaml);
    let names: Vec<&str> = docs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "test-apiv2",
            "test-go-main",
            "test-py-tests",
            "test-web",
            "test-worker",
            "publish-base-go",
            "publish-web",
            "publish-worker",
            "publish-apiv2",
            "publish-lmtpd",
            "release-base-go",
            "release-web",
            "release-worker",
            "release-apiv2",
            "release-lmtpd",
        ]
    );
    for doc in &docs {
        let gate = &doc["steps"][0];
        assert_eq!(gate["name"], "gate", "every pipeline starts with the gate");
        assert_eq!(gate["image"], "ripple:latest");
        let name = doc["name"].as_str().unwrap();
        let service = name.split_once('-').unwrap().1;
        let command = gate["commands"][0].as_str().unwrap();
        assert!(
            command.starts_with(&format!("ripple gate {service} --deepen")),
            "{command}"
        );
        if !name.starts_with("test-") {
            assert!(command.ends_with("--tags-file .tags"), "{command}");
            assert!(
                doc["steps"][1]["settings"].get("tags").is_none(),
                "tags come from .tags"
            );
        }
    }
    let api = docs.iter().find(|d| d["name"] == "release-apiv2").unwrap();
    assert_eq!(api["depends_on"][0], "release-base-go");
    assert_eq!(api["trigger"]["ref"][0], "refs/tags/release-*");
    let publish = docs.iter().find(|d| d["name"] == "publish-web").unwrap();
    assert_eq!(publish["trigger"]["branch"][0], "develop");
    snapshot("generate_static", &yaml);
}

#[test]
fn generate_check_prints_a_diff_when_stale() {
    let mut repo = TestRepo::standard();
    let missing = repo.ripple(&["generate", "--check"], &[]);
    assert_eq!(missing.code, 1);
    assert!(missing.stdout.starts_with("--- "), "{}", missing.stdout);

    repo.ripple(&["generate"], &[]).ok();
    let current = repo.ripple(&["generate", "--check"], &[]);
    assert_eq!(current.code, 0, "{}", current.stderr);
    assert!(current.stdout.is_empty());

    // A manifest change makes the committed file stale.
    let manifest = std::fs::read_to_string(repo.path().join("services.toml")).unwrap();
    repo.write("services.toml", &manifest.replace("redis:7", "redis:8"));
    let stale = repo.ripple(&["generate", "--check"], &[]);
    assert_eq!(stale.code, 1);
    assert!(
        stale
            .stdout
            .contains("-  image: \"redis:7\"\n+  image: \"redis:8\"\n"),
        "{}",
        stale.stdout
    );
    assert!(stale.stderr.starts_with("error: `"), "{}", stale.stderr);
    assert!(stale.stderr.contains("is stale"), "{}", stale.stderr);
    assert!(
        stale.stderr.contains("hint: run `ripple generate"),
        "{}",
        stale.stderr
    );
}

#[test]
fn the_gate_writes_the_tags_plan_would_use() {
    let mut repo = TestRepo::standard();
    repo.checkout("develop");
    let before = repo.rev("HEAD");
    repo.write("src/web/app.ts", "export const changed = true\n");
    let head = repo.commit("web");
    let push = [
        ("DRONE_BUILD_EVENT", "push"),
        ("DRONE_BRANCH", "develop"),
        ("DRONE_COMMIT_BEFORE", before.as_str()),
    ];
    let tags = repo.path().join(".tags");
    let run = repo.ripple(&["gate", "web", "--tags-file", ".tags"], &push);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&tags).unwrap(),
        format!("develop,{head}")
    );

    std::fs::remove_file(&tags).unwrap();
    let skipped = repo.ripple(&["gate", "worker", "--tags-file", ".tags"], &push);
    assert_eq!(skipped.code, 78);
    assert!(!tags.exists(), "a skipped pipeline writes no tags");

    let release = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "release-2.1")];
    repo.ripple(&["gate", "worker", "--tags-file", ".tags"], &release)
        .ok();
    assert_eq!(std::fs::read_to_string(&tags).unwrap(), "latest,2.1");
}
