//! explain, graph, check and demo.

use crate::common::{TestRepo, check_yaml, ripple_in, snapshot};

fn feature_repo() -> TestRepo {
    let mut repo = TestRepo::standard();
    repo.branch("topic");
    repo.write("src/go.main/store.go", "package main // v2\n");
    repo.commit("change go.main");
    repo
}

#[test]
fn explain_prints_the_chain() {
    let repo = feature_repo();
    let args = [
        "explain",
        "apiv2",
        "--event",
        "pull_request",
        "--base",
        "main",
    ];
    let out = repo.ripple(&args, &[]).ok().to_string();
    assert!(
        out.contains("apiv2 <- go-main (depends_on) <- src/go.main/store.go\n"),
        "{out}"
    );
    snapshot("explain_affected", &out);

    let out = repo
        .ripple(
            &[
                "explain",
                "web",
                "--event",
                "pull_request",
                "--base",
                "main",
            ],
            &[],
        )
        .ok()
        .to_string();
    assert!(out.starts_with("web is not affected: none of the changed files matches its paths (src/web, !src/web/**/*.md), and it depends on no service"), "{out}");

    let run = repo.ripple(
        &[
            "explain",
            "nope",
            "--event",
            "pull_request",
            "--base",
            "main",
        ],
        &[],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("unknown service `nope`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: known services are `base-go`"),
        "{}",
        run.stderr
    );
}

#[test]
fn graph_formats() {
    let repo = TestRepo::standard();
    let dot = repo.ripple(&["graph"], &[]).ok().to_string();
    assert!(dot.contains("\"apiv2\" -> \"go-main\";"));
    snapshot("graph_dot", &dot);
    let mermaid = repo
        .ripple(&["graph", "--format", "mermaid"], &[])
        .ok()
        .to_string();
    snapshot("graph_mermaid", &mermaid);
}

#[test]
fn check_lists_unowned_files() {
    let repo = TestRepo::standard();
    let out = repo.ripple(&["check"], &[]).ok().to_string();
    assert!(
        out.starts_with("manifest ok: 7 services, 15 files at HEAD\n"),
        "{out}"
    );
    // README.md is owned by nobody; the other two are excluded by `!` patterns.
    assert!(
        out.ends_with("3 files owned by no service (changes to them run nothing):\n  README.md\n  src/go.main/README.md\n  src/web/README.md\n"),
        "{out}"
    );
}

/// `affected` for the demo's pull request, as JSON.
const PR_JSON: &[&str] = &[
    "affected",
    "--event",
    "pull_request",
    "--base",
    "main",
    "--format",
    "json",
];

#[test]
fn demo_shows_a_real_plan() {
    let dir = tempfile::tempdir().unwrap();
    let run = ripple_in(dir.path(), &["demo"], &[]);
    let yaml = run.ok();
    check_yaml("demo", yaml);
    assert!(yaml.contains("apiv2 <- go-main (depends_on) <- src/backend/go.main/search.go"));
    assert!(yaml.contains("name: \"test-apiv2\""));

    // Kept in a directory, it is a repository the other commands work on.
    let kept = dir.path().join("demo");
    let run = ripple_in(dir.path(), &["demo", "--dir", kept.to_str().unwrap()], &[]);
    run.ok();
    let again = ripple_in(&kept, PR_JSON, &[]);
    assert_eq!(
        crate::common::services(&again.json()),
        ["apiv2", "go-main", "lmtpd"]
    );

    // Issue 8.5: a second run into the same directory once committed onto
    // the first one's feature branch; now it is refused and the repository
    // left as it was.
    let second = ripple_in(dir.path(), &["demo", "--dir", kept.to_str().unwrap()], &[]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(second.stderr.contains("is not empty"), "{}", second.stderr);
    let after = ripple_in(&kept, PR_JSON, &[]);
    assert_eq!(after.stdout, again.stdout);
}

/// Issue 8.5: `--output` files were created 0600.
#[test]
fn output_files_get_the_mode_the_umask_gives() {
    let repo = crate::common::TestRepo::standard();
    let dir = tempfile::tempdir().unwrap();
    for (command, name) in [("plan", "plan.yml"), ("generate", "generated.yml")] {
        let out = dir.path().join(name);
        let mut args = vec![command, "--output", out.to_str().unwrap()];
        if command == "plan" {
            args.extend(["--event", "push", "--branch", "develop"]);
        }
        // SAFETY: the umask of this test process, which the child inherits.
        let old = unsafe { libc::umask(0o022) };
        let run = repo.ripple(&args, &[]);
        unsafe { libc::umask(old) };
        assert_eq!(run.code, 0, "{}", run.stderr);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&out).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644, "{command}");
    }
}

#[test]
fn gate_exits_0_to_run_and_78_to_skip() {
    let repo = feature_repo();
    let pr = [
        ("DRONE_BUILD_EVENT", "pull_request"),
        ("DRONE_TARGET_BRANCH", "main"),
    ];
    let run = repo.ripple(&["gate", "apiv2"], &pr);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("ripple gate: run: `apiv2` is affected: its pipeline runs\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("apiv2 <- go-main (depends_on) <- src/go.main/store.go")
    );

    let run = repo.ripple(&["gate", "web"], &pr);
    assert_eq!(run.code, 78, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("ripple gate: skip: `web` is not affected\n"),
        "{}",
        run.stdout
    );

    // Affected, but a pull request has nothing to run for an image without tests.
    let run = repo.ripple(&["gate", "lmtpd"], &pr);
    assert_eq!(run.code, 78);
    assert!(
        run.stdout
            .contains("a `pull_request` build has nothing for it to do"),
        "{}",
        run.stdout
    );

    let master = [("DRONE_BUILD_EVENT", "push"), ("DRONE_BRANCH", "master")];
    let run = repo.ripple(&["gate", "apiv2"], &master);
    assert_eq!(run.code, 78);
    assert!(
        run.stdout.contains("push to `master` runs nothing"),
        "{}",
        run.stdout
    );

    let release = [("DRONE_BUILD_EVENT", "tag"), ("DRONE_TAG", "release-1.0")];
    assert_eq!(repo.ripple(&["gate", "lmtpd"], &release).code, 0);
    assert_eq!(
        repo.ripple(&["gate", "go-main"], &release).code,
        78,
        "a library publishes nothing"
    );

    let run = repo.ripple(&["gate", "nope"], &pr);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with("error: unknown service `nope`"),
        "{}",
        run.stderr
    );
}

/// Issue 8.6: the README's JSON sample is what the demo's pull request
/// gives, value for value.
#[test]
fn the_readme_json_sample_is_the_demos() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```json\n{\n  \"event\": \"pull_request\"")
        .unwrap()
        + "```json\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let sample: serde_json::Value = serde_json::from_str(&readme[start..end]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    ripple_in(dir.path(), &["demo", "--dir", demo.to_str().unwrap()], &[]).ok();
    let run = ripple_in(&demo, PR_JSON, &[]);
    assert_eq!(run.json(), sample);
}

/// Issue 8.4: names the commit does not have are problems with file, line
/// and column (exit 1), and the unowned files are still listed.
#[test]
fn check_catches_typos() {
    let mut repo = TestRepo::empty();
    repo.write("src/api/main.go", "package main\n");
    repo.write("src/api/Dockerfile", "FROM scratch\n");
    repo.write("README.md", "x\n");
    repo.write(
        "services.toml",
        "[settings]\nglobal_paths = [\"servces.toml\"]\n\n[[service]]\nname = \"api\"\n\
         kind = \"image\"\npaths = [\"src/api\", \"src/apii/**\"]\nimage = \"r/api\"\n\
         dockerfile = \"src/api/Dockerfle\"\ncontext = \"scr\"\n",
    );
    repo.commit("init");
    let run = repo.ripple(&["check"], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: invalid manifest: 4 problems\n"),
        "{}",
        run.stderr
    );
    for (place, says) in [
        (
            "services.toml:2:17",
            "`servces.toml` matches no tracked file",
        ),
        (
            "services.toml:7:21",
            "`src/apii/**` matches no tracked file",
        ),
        (
            "services.toml:9:14",
            "`src/api/Dockerfle` is not a file in this commit",
        ),
        (
            "services.toml:10:11",
            "`scr` is not a directory in this commit",
        ),
    ] {
        assert!(
            run.stderr.contains(place) && run.stderr.contains(says),
            "{place}: {}",
            run.stderr
        );
    }
    assert!(
        run.stdout
            .starts_with("manifest read: 1 service, 4 files at HEAD\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  README.md\n"), "{}", run.stdout);
}
