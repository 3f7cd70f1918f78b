//! ripple's own repository: its manifest is valid and its `.drone.yml` is
//! what `ripple generate` writes from it.

use std::path::Path;

use crate::common::{check_yaml, ripple_in};

/// Regenerate with `cargo run -- generate` when this test fails.
#[test]
fn committed_drone_yml_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join(".drone.yml")).unwrap_or_default();
    check_yaml("ripple_own", &committed);
    let run = ripple_in(
        root,
        &[
            "generate",
            "--check",
            "--manifest",
            "services.toml",
            "--output",
            ".drone.yml",
        ],
        &[],
    );
    assert!(
        run.code == 0,
        ".drone.yml is stale: run `cargo run -- generate`\n{}{}",
        run.stdout,
        run.stderr
    );
}
