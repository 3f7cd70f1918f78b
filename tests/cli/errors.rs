//! Every manifest mistake, as the user sees it: exit status 1 and a located
//! message, never a panic. The manifest is checked before any git work, so
//! these run outside a repository.

use crate::common::{ripple_in, snapshot};

fn rejected(name: &str, manifest: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.toml"), manifest).unwrap();
    let run = ripple_in(
        dir.path(),
        &[
            "plan",
            "--event",
            "pull_request",
            "--manifest",
            "services.toml",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.starts_with("error: invalid manifest"),
        "{}",
        run.stderr
    );
    snapshot(&format!("manifest_{name}"), &run.stderr);
    run.stderr
}

#[test]
fn toml_syntax() {
    rejected("syntax", "[[service]\nname = \"a\"\n");
}

#[test]
fn unknown_keys() {
    rejected(
        "unknown_keys",
        "[settings]\npublish_branch = [\"develop\"]\n\n[[service]]\nname = \"a\"\nkind = \"library\"\ndepend_on = [\"b\"]\n",
    );
}

#[test]
fn duplicate_names() {
    rejected(
        "duplicate_names",
        "[[service]]\nname = \"api\"\nkind = \"library\"\n\n[[service]]\nname = \"api\"\nkind = \"tests\"\n",
    );
}

#[test]
fn unknown_dependency() {
    let err = rejected(
        "unknown_dependency",
        "[[service]]\nname = \"billing\"\nkind = \"library\"\n\n[[service]]\nname = \"checkout\"\nkind = \"library\"\ndepends_on = [\"billing-api\"]\n",
    );
    assert!(err.contains("services.toml:8:15"), "{err}");
}

#[test]
fn dependency_cycle() {
    let err = rejected(
        "cycle",
        "[[service]]\nname = \"a\"\nkind = \"library\"\ndepends_on = [\"b\"]\n\n[[service]]\nname = \"b\"\nkind = \"library\"\ndepends_on = [\"a\"]\n",
    );
    assert!(err.contains("dependency cycle: a -> b -> a"), "{err}");
}

#[test]
fn invalid_glob() {
    rejected(
        "invalid_glob",
        "[[service]]\nname = \"a\"\nkind = \"library\"\npaths = [\"src/{a,b\", \"/abs\"]\n",
    );
}

#[test]
fn image_without_build() {
    rejected(
        "image_without_build",
        "[[service]]\nname = \"api\"\nkind = \"image\"\nimage = \"r/api\"\n",
    );
}

#[test]
fn wrong_types_and_kinds() {
    rejected(
        "wrong_types",
        "[settings]\nrelease_tag = \"release\"\n\n[[service]]\nname = \"Api\"\nkind = \"binary\"\npaths = \"src\"\nunit = [\"make\"]\n",
    );
}

#[test]
fn many_problems_at_once() {
    let err = rejected(
        "many",
        "[[service]]\nname = \"a\"\nkind = \"image\"\ncolour = 1\n\n[[service]]\nname = \"a\"\nkind = \"library\"\ndepends_on = [\"zzz\"]\n",
    );
    assert!(
        err.starts_with("error: invalid manifest: 4 problems"),
        "{err}"
    );
}

#[test]
fn missing_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let run = ripple_in(dir.path(), &["graph", "--manifest", "nope.toml"], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot read manifest `nope.toml`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn outside_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let run = ripple_in(dir.path(), &["affected", "--event", "push"], &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("error: no git repository at `.` or any directory above it\n")
            && run
                .stderr
                .contains("hint: run ripple inside a repository, or pass `--repo DIR`")
            && !run.stderr.contains("class="),
        "{}",
        run.stderr
    );
}

#[test]
fn usage_errors_are_clap_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = ripple_in(dir.path(), &["plan", "--event", "merge"], &[]);
    assert_eq!(run.code, 2);
}

/// Issue 13.6: a committed link to `/proc/self/environ` once printed the
/// environment as the excerpt of a TOML error, `/dev/zero` was read until
/// memory ran out, and a FIFO hung `check`.
#[test]
fn a_manifest_that_is_no_regular_file_is_refused() {
    let mut repo = crate::common::TestRepo::empty();
    repo.write("README.md", "x\n");
    repo.write(
        "real.toml",
        "[[service]]\nname = \"a\"\nkind = \"library\"\n",
    );
    repo.commit("init");
    let manifest = repo.path().join("services.toml");
    let env = [("RIPPLE_TEST_SECRET", "hunter2-do-not-print")];
    let refused = |says: &str| {
        let run = ripple_in(repo.path(), &["graph"], &env);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.starts_with("error: refusing to read manifest `")
                && run.stderr.contains("services.toml`: it is "),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(says), "{}", run.stderr);
        assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
    };
    for target in ["/proc/self/environ", "/dev/zero"] {
        std::os::unix::fs::symlink(target, &manifest).unwrap();
        refused("outside the repository");
        std::fs::remove_file(&manifest).unwrap();
    }

    let fifo = std::ffi::CString::new(manifest.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    refused("a FIFO, not a regular file");
    std::fs::remove_file(&manifest).unwrap();

    std::fs::create_dir(&manifest).unwrap();
    refused("a directory, not a regular file");
    std::fs::remove_dir(&manifest).unwrap();

    // Named explicitly, a device is still no manifest.
    let run = ripple_in(repo.path(), &["graph", "--manifest", "/dev/zero"], &env);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("it is a device, not a regular file"),
        "{}",
        run.stderr
    );

    // A link that stays inside the repository is read.
    std::os::unix::fs::symlink("real.toml", &manifest).unwrap();
    let run = ripple_in(repo.path(), &["graph"], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("\"a\""), "{}", run.stdout);
}

/// Issue 8.3: every error line once (no "caused by" echo), no libgit2
/// internals, and hints only where they apply.
#[test]
fn messages_say_each_thing_once_and_hint_only_what_applies() {
    let once = |run: &crate::common::Run| {
        assert!(!run.stderr.contains("caused by"), "{}", run.stderr);
        assert!(!run.stderr.contains("class="), "{}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            assert!(!lines[i + 1..].contains(line), "said twice: {}", run.stderr);
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let named = ripple_in(dir.path(), &["graph", "--manifest", "nope.toml"], &[]);
    once(&named);
    assert_eq!(
        named.stderr,
        "error: cannot read manifest `nope.toml`: no such file or directory\n\
         hint: check the path given to `--manifest`\n"
    );

    let mut repo = crate::common::TestRepo::empty();
    repo.write("README.md", "x\n");
    repo.commit("init");
    let default = repo.ripple(&["graph"], &[]);
    once(&default);
    assert!(
        default.stderr.contains(
            "hint: create `services.toml` at the repository root, or pass `--manifest FILE`"
        ),
        "{}",
        default.stderr
    );

    let outside = ripple_in(dir.path(), &["affected", "--event", "push"], &[]);
    once(&outside);

    // A complete clone: more history cannot help, naming a base can.
    let (standard, ..) = crate::common::TestRepo::develop_change("src/web/app.ts", "x\n");
    let push = standard.ripple(
        &["affected", "--event", "push", "--branch", "develop"],
        &[(
            "DRONE_COMMIT_BEFORE",
            "0000000000000000000000000000000000000000",
        )],
    );
    once(&push);
    assert!(push.stderr.contains("`--before REV`"), "{}", push.stderr);
    assert!(!push.stderr.contains("deepen"), "{}", push.stderr);
    let strict = standard.ripple(
        &[
            "affected", "--event", "push", "--branch", "develop", "--strict",
        ],
        &[(
            "DRONE_COMMIT_BEFORE",
            "0000000000000000000000000000000000000000",
        )],
    );
    once(&strict);
    assert_eq!(strict.code, 1);
    assert!(
        strict.stderr.contains("`--before REV`"),
        "{}",
        strict.stderr
    );

    let unknown = standard.ripple(
        &["affected", "--event", "pull_request", "--base", "nope"],
        &[],
    );
    once(&unknown);
    assert!(!unknown.stderr.contains("shallow"), "{}", unknown.stderr);

    let master = standard.ripple(&["affected", "--event", "push", "--branch", "master"], &[]);
    assert!(
        master.stdout.contains("only pushes to `develop` publish"),
        "{}",
        master.stdout
    );
}

#[test]
fn check_counts_in_words() {
    let mut repo = crate::common::TestRepo::empty();
    repo.write(
        "services.toml",
        "[[service]]\nname = \"a\"\nkind = \"library\"\npaths = [\"services.toml\"]\n",
    );
    repo.commit("init");
    let run = repo.ripple(&["check"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("manifest ok: 1 service, 1 file at HEAD\n"),
        "{}",
        run.stdout
    );
}
