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
        run.stderr.starts_with("error: git: opening the repository"),
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
