//! How changed files map to services: renames, deletions, exclusions,
//! global paths and uncommitted work.

use crate::common::{TestRepo, services};

/// `ripple affected` for a pull request against `main`, as JSON.
const AFFECTED_PR: [&str; 7] = [
    "affected",
    "--event",
    "pull_request",
    "--base",
    "main",
    "--format",
    "json",
];

fn affected_on_branch(change: impl FnOnce(&mut TestRepo)) -> serde_json::Value {
    let mut repo = TestRepo::standard();
    repo.branch("topic");
    change(&mut repo);
    repo.commit("change");
    repo.ripple(&AFFECTED_PR, &[]).json()
}

#[test]
fn a_rename_across_services_counts_under_both_paths() {
    let json = affected_on_branch(|repo| {
        repo.rename("src/worker/util.py", "src/web/util.py");
    });
    assert_eq!(
        json["changed"],
        serde_json::json!(["src/web/util.py", "src/worker/util.py"])
    );
    assert_eq!(services(&json), ["py-tests", "web", "worker"]);
}

#[test]
fn a_deletion_counts() {
    let json = affected_on_branch(|repo| {
        repo.remove("src/lmtpd/main.go");
    });
    assert_eq!(services(&json), ["lmtpd"]);
    assert_eq!(
        json["services"][0]["files"],
        serde_json::json!(["src/lmtpd/main.go"])
    );
}

#[test]
fn excluded_and_unowned_files_affect_nothing() {
    let json = affected_on_branch(|repo| {
        repo.write("src/web/docs/guide.md", "# guide\n");
        repo.write("README.md", "# changed\n");
    });
    assert_eq!(json["mode"], "diff");
    assert!(services(&json).is_empty());
}

#[test]
fn a_global_path_affects_every_service() {
    let json = affected_on_branch(|repo| {
        let manifest = std::fs::read_to_string(repo.path().join("services.toml")).unwrap();
        repo.write("services.toml", &format!("{manifest}\n# touched\n"));
    });
    assert_eq!(services(&json).len(), 7);
    assert_eq!(
        json["services"][0]["files"],
        serde_json::json!(["services.toml"])
    );
}

#[test]
fn uncommitted_changes_count_only_when_asked() {
    let mut repo = TestRepo::standard();
    repo.branch("topic");
    repo.write("src/web/new.ts", "export {}\n");
    assert!(services(&repo.ripple(&AFFECTED_PR, &[]).json()).is_empty());
    let mut with = AFFECTED_PR.to_vec();
    with.push("--uncommitted");
    assert_eq!(services(&repo.ripple(&with, &[]).json()), ["web"]);
}

/// The standard manifest and enough services after it to pass 256 KiB,
/// past which the manifest file is mapped rather than read.
fn large_manifest() -> String {
    let mut text = crate::common::MANIFEST.to_string();
    for i in 0..3_000 {
        text.push_str(&format!(
            "\n[[service]]\nname = \"filler-{i:04}\"\nkind = \"library\"\n\
             paths = [\"fill/{i:04}\"]  # a service nothing in these tests touches\n"
        ));
    }
    assert!(text.len() > 300_000);
    text
}

#[test]
fn a_large_manifest_is_read_like_a_small_one() {
    let change = |repo: &mut TestRepo| {
        repo.write("src/go.main/store.go", "package main // changed\n");
    };
    let small = affected_on_branch(change);
    let mut repo = TestRepo::standard();
    repo.write("services.toml", &large_manifest());
    repo.commit("many services");
    repo.branch("topic");
    change(&mut repo);
    repo.commit("change");
    let large = repo.ripple(&AFFECTED_PR, &[]).json();
    assert_eq!(services(&large), services(&small));
    assert_eq!(services(&large), ["apiv2", "go-main", "lmtpd"]);
}

#[test]
fn a_large_manifest_that_is_not_utf8_is_refused() {
    let repo = TestRepo::standard();
    let mut bytes = large_manifest().into_bytes();
    bytes.extend_from_slice(b"# \xff\n");
    std::fs::write(repo.path().join("services.toml"), bytes).unwrap();
    let run = repo.ripple(&["check"], &[]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("services.toml"), "{}", run.stderr);
    assert!(
        run.stderr.contains("UTF-8") || run.stderr.contains("utf-8"),
        "{}",
        run.stderr
    );
}
