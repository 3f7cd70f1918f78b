//! Every row of DESIGN.md's event table, on real repositories.

use crate::common::{TestRepo, check_yaml, git_clone, services, snapshot};

/// `main` plus a feature branch that changes the shared Go library.
fn feature_repo() -> TestRepo {
    let mut repo = TestRepo::standard();
    repo.branch("feature/search");
    repo.write("src/go.main/store.go", "package main\n// faster\n");
    repo.write("src/go.main/README.md", "# ignored by the exclusion\n");
    repo.commit("faster store");
    repo
}

fn pr_env(target: &str) -> Vec<(&str, &str)> {
    vec![
        ("DRONE_BUILD_EVENT", "pull_request"),
        ("DRONE_TARGET_BRANCH", target),
    ]
}

#[test]
fn pull_request_uses_the_merge_base_with_the_target() {
    let mut repo = feature_repo();
    // The target moves on after the branch point; its changes must not count.
    repo.checkout("main");
    repo.write("src/web/app.ts", "export const x = 1\n");
    repo.commit("web change on main");
    repo.checkout("feature/search");

    let run = repo.ripple(&["affected", "--format", "json"], &pr_env("main"));
    let json = run.json();
    assert_eq!(json["mode"], "diff");
    assert_eq!(json["base"], repo.rev("main~1"));
    assert_eq!(json["head"], repo.rev("HEAD"));
    assert_eq!(
        json["changed"],
        serde_json::json!(["src/go.main/README.md", "src/go.main/store.go"])
    );
    assert_eq!(services(&json), ["apiv2", "go-main", "lmtpd"]);
    assert_eq!(json["services"][0]["via"], serde_json::json!(["go-main"]));
    assert_eq!(
        json["services"][1]["files"],
        serde_json::json!(["src/go.main/store.go"])
    );
    snapshot("pull_request_affected_json", &run.stdout);

    let yaml = repo.ripple(&["plan"], &pr_env("main")).ok().to_string();
    let docs = check_yaml("pull_request", &yaml);
    let names: Vec<_> = docs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    // lmtpd has no test commands, so it has no pipeline.
    assert_eq!(names, ["test-apiv2", "test-go-main"]);
    snapshot("pull_request_drone", &yaml);

    let run = repo.ripple(&["plan", "--format", "json"], &pr_env("main"));
    assert_eq!(run.json()["affected"], json);
    snapshot("pull_request_plan_json", &run.stdout);
}

#[test]
fn pull_request_prefers_origin_over_the_local_branch() {
    let repo = feature_repo();
    let feature_tip = repo.rev("HEAD");
    // origin/main already contains the feature work: nothing left to test.
    repo.set_ref("refs/remotes/origin/main", &feature_tip);
    let json = repo
        .ripple(&["affected", "--format", "json"], &pr_env("main"))
        .json();
    assert_eq!(json["base"], feature_tip);
    assert!(services(&json).is_empty());
}

#[test]
fn pull_request_on_drones_merge_ref_compares_with_the_first_parent() {
    let mut repo = feature_repo();
    let pr_commit = repo.rev("HEAD");
    repo.checkout("main");
    repo.write("src/web/app.ts", "export const y = 2\n");
    let target_tip = repo.commit("web change on main");
    // What Drone checks out: the pull request merged into the target.
    let merge = repo.merge("feature/search", "merge pull request");
    repo.detach(&merge);

    let mut env = pr_env("main");
    env.push(("DRONE_COMMIT_SHA", &pr_commit));
    let json = repo.ripple(&["affected", "--format", "json"], &env).json();
    assert_eq!(json["base"], target_tip);
    assert_eq!(json["head"], merge);
    assert_eq!(services(&json), ["apiv2", "go-main", "lmtpd"]);
    assert!(json["reason"].as_str().unwrap().contains("merge checkout"));
}

#[test]
fn pull_request_without_the_target_plans_everything_and_says_why() {
    let repo = feature_repo();
    let run = repo.ripple(&["affected", "--format", "json"], &pr_env("no-such-branch"));
    let json = run.json();
    assert_eq!(json["mode"], "all");
    assert_eq!(json["base"], serde_json::Value::Null);
    assert_eq!(services(&json).len(), 7);
    assert!(
        run.stderr
            .contains("warning: target branch `no-such-branch`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--deepen"), "{}", run.stderr);

    let strict = repo.ripple(&["affected", "--strict"], &pr_env("no-such-branch"));
    assert_eq!(strict.code, 1);
    assert!(
        strict.stderr.starts_with("error: no base to diff against"),
        "{}",
        strict.stderr
    );
}

#[test]
fn an_explicit_base_that_does_not_exist_is_an_error() {
    let repo = feature_repo();
    let run = repo.ripple(
        &["affected", "--event", "pull_request", "--base", "nope"],
        &[],
    );
    assert_eq!(run.code, 1);
    snapshot("error_unknown_base", &run.stderr);
    let run = repo.ripple(&["plan", "--event", "push", "--head", "deadbeef"], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("error: unknown revision `deadbeef`"),
        "{}",
        run.stderr
    );
}

/// `develop` with the feature branch merged into it.
fn merged_develop() -> TestRepo {
    let mut repo = feature_repo();
    repo.checkout("develop");
    repo.write("docker/go/Dockerfile", "FROM golang:1.22\n");
    repo.commit("bump the go base image directly on develop");
    repo.merge(
        "feature/search",
        "Merge branch 'feature/search' into develop",
    );
    repo
}

#[test]
fn push_of_a_merge_compares_with_the_first_parent() {
    let repo = merged_develop();
    let env = [
        ("DRONE_BUILD_EVENT", "push"),
        ("DRONE_BRANCH", "develop"),
        // A merge ignores `before`: the first parent is exact.
        (
            "DRONE_COMMIT_BEFORE",
            "0000000000000000000000000000000000000000",
        ),
    ];
    let json = repo.ripple(&["affected", "--format", "json"], &env).json();
    assert_eq!(json["base"], repo.rev("HEAD^1"));
    assert_eq!(
        json["reason"],
        "merge commit: compared with its first parent"
    );
    // The base image changed before the merge, on develop itself: not counted.
    assert_eq!(services(&json), ["apiv2", "go-main", "lmtpd"]);
    assert_eq!(json["build_order"], serde_json::json!([["apiv2", "lmtpd"]]));

    let yaml = repo.ripple(&["plan"], &env).ok().to_string();
    let docs = check_yaml("push_merge_develop", &yaml);
    let sha = repo.rev("HEAD");
    assert_eq!(docs[0]["steps"][0]["settings"]["tags"][0], "develop");
    assert_eq!(
        docs[0]["steps"][0]["settings"]["tags"][1].as_str(),
        Some(sha.as_str())
    );
    snapshot("push_merge_develop", &yaml);
}

#[test]
fn direct_push_compares_with_the_commit_before() {
    let mut repo = TestRepo::standard();
    repo.checkout("develop");
    let before = repo.rev("HEAD");
    repo.write("docker/go/Dockerfile", "FROM golang:1.22\n");
    repo.commit("bump go");
    repo.write("src/worker/worker.py", "print()\n");
    repo.commit("worker");
    let env = [
        ("DRONE_BUILD_EVENT", "push"),
        ("DRONE_BRANCH", "develop"),
        ("DRONE_COMMIT_BEFORE", before.as_str()),
    ];
    let json = repo.ripple(&["affected", "--format", "json"], &env).json();
    assert_eq!(json["base"], before);
    assert_eq!(
        json["changed"],
        serde_json::json!(["docker/go/Dockerfile", "src/worker/worker.py"])
    );
    assert_eq!(
        services(&json),
        ["apiv2", "base-go", "go-main", "lmtpd", "py-tests", "worker"]
    );
    // The base image first; images that reach it through go-main wait.
    assert_eq!(
        json["build_order"],
        serde_json::json!([["base-go", "worker"], ["apiv2", "lmtpd"]])
    );
    let yaml = repo.ripple(&["plan"], &env).ok().to_string();
    let docs = check_yaml("push_direct_develop", &yaml);
    let api = docs.iter().find(|d| d["name"] == "publish-apiv2").unwrap();
    assert_eq!(
        api["depends_on"],
        serde_norway::from_str::<serde_norway::Value>("[publish-base-go]").unwrap()
    );
    snapshot("push_direct_develop", &yaml);
}

#[test]
fn push_with_an_unusable_before_plans_everything() {
    let mut repo = TestRepo::standard();
    repo.checkout("develop");
    repo.write("src/worker/worker.py", "print()\n");
    repo.commit("worker");
    let cases = [
        ("0000000000000000000000000000000000000000", "unknown"),
        (
            "1234567890123456789012345678901234567890",
            "not in this repository",
        ),
    ];
    for (before, expect) in cases {
        let env = [
            ("DRONE_BUILD_EVENT", "push"),
            ("DRONE_BRANCH", "develop"),
            ("DRONE_COMMIT_BEFORE", before),
        ];
        let run = repo.ripple(&["affected", "--format", "json"], &env);
        let json = run.json();
        assert_eq!(json["mode"], "all", "{before}");
        assert_eq!(services(&json).len(), 7);
        assert!(run.stderr.contains(expect), "{}", run.stderr);
        let strict = repo.ripple(&["plan", "--strict"], &env);
        assert_eq!(strict.code, 1);
    }

    // A force push: `before` exists but is not an ancestor of HEAD.
    let mut repo = TestRepo::standard();
    repo.branch("elsewhere");
    repo.write("x.txt", "x\n");
    let orphan = repo.commit("not on develop");
    repo.checkout("develop");
    let env = [
        ("DRONE_BUILD_EVENT", "push"),
        ("DRONE_BRANCH", "develop"),
        ("DRONE_COMMIT_BEFORE", orphan.as_str()),
    ];
    let run = repo.ripple(&["plan"], &env);
    assert!(run.stderr.contains("not an ancestor"), "{}", run.stderr);
    let docs = check_yaml("push_force_develop", run.ok());
    assert_eq!(docs.len(), 5, "every image is published");
    snapshot("push_unknown_base_develop", run.ok());
}

#[test]
fn push_to_another_branch_runs_nothing() {
    let repo = TestRepo::standard();
    let env = [("DRONE_BUILD_EVENT", "push"), ("DRONE_BRANCH", "master")];
    let json = repo.ripple(&["affected", "--format", "json"], &env).json();
    assert_eq!(json["mode"], "none");
    assert!(services(&json).is_empty());
    let yaml = repo.ripple(&["plan"], &env).ok().to_string();
    let docs = check_yaml("push_master", &yaml);
    assert_eq!(docs.len(), 1);
    assert!(
        docs[0]["steps"][0]["environment"]["RIPPLE_REASON"]
            .as_str()
            .unwrap()
            .contains("push to `master` runs nothing")
    );
    snapshot("push_master", &yaml);
}

#[test]
fn the_checked_out_branch_is_used_when_drone_branch_is_unset() {
    let mut repo = TestRepo::standard();
    repo.checkout("develop");
    let before = repo.rev("HEAD");
    repo.write("src/web/app.ts", "export const z = 3\n");
    repo.commit("web");
    let run = repo.ripple(
        &[
            "affected", "--event", "push", "--base", &before, "--format", "json",
        ],
        &[],
    );
    assert_eq!(services(&run.json()), ["web"]);
}

#[test]
fn the_initial_commit_counts_every_file() {
    let mut repo = TestRepo::empty();
    repo.write("services.toml", crate::common::MANIFEST);
    for (path, contents) in crate::common::FILES {
        repo.write(path, contents);
    }
    repo.commit("initial");
    let env = [
        ("DRONE_BUILD_EVENT", "push"),
        ("DRONE_BRANCH", "main"),
        (
            "DRONE_COMMIT_BEFORE",
            "0000000000000000000000000000000000000000",
        ),
    ];
    let run = repo.ripple(
        &["affected", "--format", "json", "--strict"],
        &[env[0], ("DRONE_BRANCH", "develop"), env[2]],
    );
    let json = run.json();
    assert_eq!(json["mode"], "diff");
    assert_eq!(json["reason"], "initial commit: every file is new");
    assert_eq!(
        json["changed"].as_array().unwrap().len(),
        crate::common::FILES.len() + 1
    );
    assert_eq!(services(&json).len(), 7);
}

#[test]
fn release_tag_publishes_every_image_with_latest_and_the_version() {
    let repo = TestRepo::standard();
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "release-1.4.0")];
    let json = repo.ripple(&["affected", "--format", "json"], &env).json();
    assert_eq!(json["mode"], "all");
    assert_eq!(json["base"], serde_json::Value::Null);
    // Issue 8.5: exactly what is published, every image and base image.
    assert_eq!(
        services(&json),
        ["apiv2", "base-go", "lmtpd", "web", "worker"]
    );
    let yaml = repo.ripple(&["plan"], &env).ok().to_string();
    let docs = check_yaml("tag_release", &yaml);
    let names: Vec<_> = docs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "publish-base-go",
            "publish-web",
            "publish-worker",
            "publish-apiv2",
            "publish-lmtpd"
        ]
    );
    for doc in &docs {
        let tags = &doc["steps"][0]["settings"]["tags"];
        assert_eq!(
            tags,
            &serde_norway::from_str::<serde_norway::Value>("[latest, \"1.4.0\"]").unwrap()
        );
    }
    snapshot("tag_release", &yaml);
}

#[test]
fn other_tags_and_events_run_nothing() {
    let repo = TestRepo::standard();
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "v2")];
    let yaml = repo.ripple(&["plan"], &env).ok().to_string();
    check_yaml("tag_other", &yaml);
    assert!(yaml.contains("does not match release_tag"));
    for event in ["promote", "rollback", "cron", "custom"] {
        let yaml = repo
            .ripple(&["plan", "--event", event], &[])
            .ok()
            .to_string();
        let docs = check_yaml(&format!("event_{event}"), &yaml);
        assert_eq!(docs.len(), 1);
        snapshot(&format!("event_{event}"), &yaml);
    }
}

#[test]
fn the_commit_message_can_ask_for_everything() {
    let mut repo = feature_repo();
    repo.write("src/web/app.ts", "export const q = 1\n");
    repo.commit("rebuild the world [ripple all]");
    let json = repo
        .ripple(&["affected", "--format", "json"], &pr_env("main"))
        .json();
    assert_eq!(json["mode"], "all");
    assert_eq!(services(&json).len(), 7);
    assert_eq!(
        json["changed"].as_array().unwrap().len(),
        3,
        "the diff is still reported"
    );
}

#[test]
fn bare_repositories_work() {
    let repo = feature_repo();
    let bare_dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", repo.path().display());
    git2::build::RepoBuilder::new()
        .bare(true)
        .clone(&url, bare_dir.path())
        .expect("bare clone");
    // The manifest comes from the head commit: a bare repository has no work tree.
    let run = crate::common::ripple_in(
        bare_dir.path(),
        &[
            "affected",
            "--format",
            "json",
            "--head",
            "origin/feature/search",
        ],
        &pr_env("main"),
    );
    assert_eq!(services(&run.json()), ["apiv2", "go-main", "lmtpd"]);

    // Issue 8.5: a git directory without `config`, as some mirrors are, is
    // still bare (libgit2 alone takes its parent for a work tree).
    std::fs::remove_file(bare_dir.path().join("config")).unwrap();
    let without = crate::common::ripple_in(
        bare_dir.path(),
        &[
            "affected",
            "--format",
            "json",
            "--head",
            "origin/feature/search",
        ],
        &pr_env("main"),
    );
    assert_eq!(services(&without.json()), ["apiv2", "go-main", "lmtpd"]);
}

#[test]
fn a_linked_work_tree_reads_its_own_manifest() {
    let repo = feature_repo();
    let parent = tempfile::tempdir().unwrap();
    let linked = parent.path().join("linked");
    let status = std::process::Command::new("git")
        .args(["worktree", "add", "--detach", "-q"])
        .arg(&linked)
        .arg("feature/search")
        .current_dir(repo.path())
        .status()
        .expect("git runs");
    assert!(status.success(), "git worktree add");
    // Its git directory (`.git/worktrees/linked`) has no `config`: the
    // repository's is in the common directory. An uncommitted change to
    // the manifest is read, as in any work tree: a service that owns the
    // changed file.
    let manifest = linked.join("services.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        "\n[[service]]\nname = \"store\"\nkind = \"library\"\npaths = [\"src/go.main/store.go\"]\n",
    );
    std::fs::write(&manifest, text).unwrap();
    let run = crate::common::ripple_in(
        &linked,
        &["affected", "--format", "json", "--base", "main"],
        &pr_env("main"),
    );
    assert!(
        services(&run.json()).contains(&"store".to_string()),
        "the work tree's manifest is read: {}",
        run.ok()
    );
}

#[test]
fn a_release_tag_on_head_is_found_without_drone_tag() {
    let repo = TestRepo::standard();
    let head = git2::Oid::from_str(&repo.rev("HEAD")).unwrap();
    let object = repo.builder.repo().find_object(head, None).unwrap();
    repo.builder
        .repo()
        .tag_lightweight("release-2.0.1", &object, false)
        .unwrap();
    let json = repo
        .ripple(&["affected", "--event", "tag", "--format", "json"], &[])
        .json();
    assert_eq!(json["mode"], "all");
    assert_eq!(
        json["reason"],
        "release tag `release-2.0.1`: every image, version `2.0.1`"
    );
}

#[test]
fn deepen_fetches_history_until_the_base_is_found() {
    let mut origin = TestRepo::standard();
    origin.checkout("develop");
    let before = origin.rev("HEAD");
    for i in 0..80 {
        origin.write("src/worker/worker.py", &format!("print({i})\n"));
        origin.commit(&format!("worker {i}"));
    }
    let clone_dir = tempfile::tempdir().unwrap();
    let clone = git_clone(
        &origin,
        clone_dir.path(),
        &["--depth", "1", "--branch", "develop"],
    );
    let env = [
        ("DRONE_BUILD_EVENT", "push"),
        ("DRONE_BRANCH", "develop"),
        ("DRONE_COMMIT_BEFORE", before.as_str()),
    ];
    let shallow = crate::common::ripple_in(&clone, &["affected", "--format", "json"], &env);
    assert_eq!(shallow.json()["mode"], "all");
    assert!(
        shallow.stderr.contains("not in this shallow clone"),
        "{}",
        shallow.stderr
    );

    let deepened =
        crate::common::ripple_in(&clone, &["affected", "--format", "json", "--deepen"], &env);
    let json = deepened.json();
    assert_eq!(json["mode"], "diff", "{}", deepened.stderr);
    assert_eq!(json["base"], before);
    assert_eq!(services(&json), ["py-tests", "worker"]);
    assert!(
        deepened.stderr.contains("fetching more history"),
        "{}",
        deepened.stderr
    );
}

#[test]
fn deepen_fetches_a_missing_target_branch() {
    let origin = feature_repo();
    let clone_dir = tempfile::tempdir().unwrap();
    let clone = git_clone(
        &origin,
        clone_dir.path(),
        &["--single-branch", "--branch", "feature/search"],
    );
    let without =
        crate::common::ripple_in(&clone, &["affected", "--format", "json"], &pr_env("main"));
    assert_eq!(without.json()["mode"], "all");
    let with = crate::common::ripple_in(
        &clone,
        &["affected", "--format", "json", "--deepen"],
        &pr_env("main"),
    );
    assert_eq!(
        services(&with.json()),
        ["apiv2", "go-main", "lmtpd"],
        "{}",
        with.stderr
    );
}

/// Issue 8.2: with no event and outside CI, a pull request of the current
/// branch against the default branch, with work-tree files unless `--head`
/// or `--committed-only` says otherwise, as `nx affected` does.
#[test]
fn a_local_dry_run_needs_no_flags() {
    let mut repo = feature_repo();
    repo.write("src/worker/new.py", "print('not committed')\n");
    let run = repo.ripple(&["affected", "--format", "json"], &[]);
    assert_eq!(
        services(&run.json()),
        ["apiv2", "go-main", "lmtpd", "py-tests", "worker"]
    );
    assert!(
        run.stderr
            .starts_with("ripple: local dry run (no event given, not in CI):")
            && run.stderr.contains("`main`")
            && run.stderr.contains("with uncommitted and untracked files"),
        "{}",
        run.stderr
    );
    let nx = repo.ripple(
        &[
            "affected", "--base", "main", "--head", "HEAD", "--format", "json",
        ],
        &[],
    );
    assert_eq!(services(&nx.json()), ["apiv2", "go-main", "lmtpd"]);
    assert!(!nx.stderr.contains("uncommitted"), "{}", nx.stderr);
    let committed = repo.ripple(&["affected", "--committed-only", "--format", "json"], &[]);
    assert_eq!(services(&committed.json()), ["apiv2", "go-main", "lmtpd"]);
    // `pr` is `pull_request`; with an event, work-tree files count only
    // when asked for.
    let pr = repo.ripple(
        &[
            "affected", "--event", "pr", "--base", "main", "--format", "json",
        ],
        &[],
    );
    assert_eq!(services(&pr.json()), ["apiv2", "go-main", "lmtpd"]);
    let forced = repo.ripple(
        &[
            "affected",
            "--event",
            "pr",
            "--base",
            "main",
            "--uncommitted",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(services(&forced.json()).len(), 5);
    // Inside CI a missing event is an error, not a guess.
    let ci = repo.ripple(&["affected"], &[("CI", "true")]);
    assert_eq!(ci.code, 2, "{}", ci.stderr);
    assert!(
        ci.stderr.starts_with("error: no event given"),
        "{}",
        ci.stderr
    );
}

/// Issue 8.2: `--files` plans exactly the listed paths with the event's
/// rules, from a file or standard input, outside a repository too.
#[test]
fn files_plan_exactly_the_listed_paths_without_git() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.toml"), crate::common::MANIFEST).unwrap();
    let fed = |args: &[&str], stdin: &str| crate::common::ripple_fed(dir.path(), args, &[], stdin);
    let pr = fed(
        &["affected", "--files", "-", "--format", "json"],
        "./src/go.main/store.go\n\nsrc/web/app.ts\r\n",
    );
    let json = pr.json();
    assert_eq!(
        json["changed"],
        serde_json::json!(["src/go.main/store.go", "src/web/app.ts"])
    );
    assert_eq!(json["base"], serde_json::Value::Null);
    assert_eq!(services(&json), ["apiv2", "go-main", "lmtpd", "web"]);

    std::fs::write(dir.path().join("list"), "src/web/app.ts\n").unwrap();
    let push = fed(
        &[
            "affected", "--files", "list", "--event", "push", "--branch", "develop", "--format",
            "json",
        ],
        "",
    );
    assert_eq!(services(&push.json()), ["web"]);
    let master = fed(
        &[
            "affected", "--files", "list", "--event", "push", "--branch", "master", "--format",
            "json",
        ],
        "",
    );
    assert_eq!(master.json()["mode"], "none");
    let tag = fed(
        &[
            "affected",
            "--files",
            "list",
            "--event",
            "tag",
            "--tag",
            "release-2.0",
            "--format",
            "json",
        ],
        "",
    );
    assert_eq!(tag.json()["mode"], "all");
    assert_eq!(services(&tag.json()).len(), 5, "every image");
    let plan = fed(
        &[
            "plan", "--files", "list", "--event", "push", "--branch", "develop",
        ],
        "",
    );
    let docs = check_yaml("files_push", plan.ok());
    assert_eq!(docs[0]["name"], "publish-web");
}

/// The diff begins from the settings before the first service while the
/// services are read; settings written after the services still decide it.
#[test]
fn settings_after_the_services_decide_the_diff_too() {
    let leading = "[settings]\npublish_branches = [\"develop\"]\nrelease_tag = \"release-*\"\nglobal_paths = [\"services.toml\"]\n";
    assert!(crate::common::MANIFEST.contains(leading));
    let services_only = crate::common::MANIFEST.replace(leading, "");
    let mut repo = TestRepo::standard();
    repo.write(
        "services.toml",
        &format!("{services_only}\n{}", leading.replace("release-*", "v*")),
    );
    repo.commit("settings last, releases tagged v*");
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "v2.0")];
    let released = repo.ripple(&["affected", "--format", "json"], &env).json();
    let standard = TestRepo::standard();
    let env = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "release-2.0")];
    let expected = standard
        .ripple(&["affected", "--format", "json"], &env)
        .json();
    assert!(!services(&expected).is_empty());
    assert_eq!(services(&released), services(&expected));
    assert_eq!(
        released["reason"],
        expected["reason"]
            .as_str()
            .unwrap()
            .replace("release-2.0", "v2.0")
    );
}

/// A bad manifest is what is reported, whatever the diff begun beside it
/// would have said.
#[test]
fn a_bad_manifest_is_reported_before_the_diff() {
    let mut repo = TestRepo::standard();
    repo.write(
        "services.toml",
        &format!(
            "{}\n[[service]]\nname = \"base-go\"\nkind = \"library\"\n",
            crate::common::MANIFEST
        ),
    );
    repo.commit("a duplicate name");
    let run = repo.ripple(
        &[
            "affected",
            "--event",
            "pull_request",
            "--base",
            "no-such-branch",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: invalid manifest"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("duplicate service name"),
        "{}",
        run.stderr
    );
}
