//! ripple's own repository: its manifest is valid and its `.drone.yml` is
//! what ripple renders from it.

use std::path::Path;

use crate::common::check_yaml;

/// `.drone.yml` is `ripple plan --event pull_request --all` over this
/// repository's `services.toml`; regenerate it with that command when this
/// test fails.
#[test]
fn committed_drone_yml_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest_text = std::fs::read_to_string(root.join("services.toml")).unwrap();
    let manifest = ripple::manifest::Manifest::parse(&manifest_text, "services.toml").unwrap();
    let mut changes = ripple::changes::ChangeSet::diff(Vec::new());
    changes.mode = ripple::changes::Mode::All;
    changes.reason = "`--all`: every service".into();
    let affected = ripple::graph::ServiceGraph::new(&manifest).affected(&changes);
    let plan = ripple::plan::plan(&manifest, &changes, &affected);
    let expected = ripple::render::Renderer::new(Vec::new())
        .unwrap()
        .drone(&plan)
        .unwrap();
    check_yaml("ripple_own", &expected);
    let committed = std::fs::read_to_string(root.join(".drone.yml")).unwrap_or_default();
    assert!(
        committed == expected,
        ".drone.yml is stale: run `cargo run -- plan --event pull_request --all --output .drone.yml`"
    );
}
