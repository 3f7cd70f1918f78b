//! One integration binary for the whole command line (see STYLE.md).

mod backends;
mod common;
mod discover;
mod drone;
mod errors;
mod events;
mod github;
mod gitlab;
mod images;
mod paths;
#[cfg(feature = "registry")]
mod promote;
#[cfg(feature = "registry")]
mod registry;
mod render;
mod repo_files;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod slots;
mod tools;
mod woodpecker;

/// Every `tests/cli/*.rs` file must be declared above, or its tests
/// silently never run.
#[test]
fn no_forgotten_test_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.extension().is_some_and(|e| e == "rs") && stem != "main" {
            assert!(
                main.contains(&format!("mod {stem};")),
                "tests/cli/{stem}.rs is not declared in main.rs"
            );
        }
    }
}
