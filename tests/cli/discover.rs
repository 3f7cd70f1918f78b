//! Dependency discovery on real repositories: the docker and go sources,
//! `ripple sync` (and `--check`), `"!name"`, cycles, and how `explain`,
//! `affected` and `graph` name each edge's origin.

use crate::common::{TestRepo, services};

/// A Go module with a `replace ../x` directive, a GOPATH-style tree, a
/// vendored package, a base image and an image that builds FROM it with a
/// multi-stage Dockerfile.
const MANIFEST: &str = r#"# services, hand-written
[settings]
publish_branches = ["main"]
discover = ["docker", "go"]

[[service]]
name = "base"
kind = "base-image"
paths = ["docker/base"]
image = "registry.example.org/team/base"
dockerfile = "docker/base/Dockerfile"
context = "docker/base"

[[service]]
name = "shared"     # the Go library everyone uses
kind = "library"
paths = ["libs/shared"]

[[service]]
name = "proto"
kind = "library"
paths = ["proto"]

[[service]]
name = "api"
kind = "image"
paths = ["services/api", "!services/api/vendor/**"]
image = "registry.example.org/team/api"
dockerfile = "services/api/Dockerfile"
context = "."

[[service]]
name = "legacy"
kind = "library"
paths = ["gopath/src/legacy"]

[[service]]
name = "tool"
kind = "library"
paths = ["gopath/src/tool"]

[[service]]
name = "vendored"
kind = "library"
paths = ["services/api/vendor"]

[[service]]
name = "everything"   # a catch-all suite: never a target
kind = "tests"
paths = ["libs", "services", "proto", "gopath"]
"#;

fn repo() -> TestRepo {
    let mut repo = TestRepo::empty();
    repo.write("services.toml", MANIFEST);
    repo.write("docker/base/Dockerfile", "FROM debian:12\n");
    repo.write(
        "libs/shared/go.mod",
        "module example.org/shared\n\ngo 1.22\n",
    );
    repo.write("libs/shared/shared.go", "package shared\n");
    repo.write(
        "libs/shared/shared_test.go",
        "package shared\nimport \"example.org/api\"\n",
    );
    repo.write("proto/api.proto", "syntax = \"proto3\";\n");
    repo.write(
        "services/api/go.mod",
        "module example.org/api\n\nrequire example.org/shared v0.0.0\n\nreplace example.org/shared => ../../libs/shared\n",
    );
    repo.write(
        "services/api/main.go",
        "package main\n\nimport (\n\t\"fmt\"\n\t\"example.org/shared\"\n\tv \"github.com/vendored/thing\"\n)\n\nfunc main() { fmt.Println(shared.X, v.Y) }\n",
    );
    repo.write(
        "services/api/vendor/github.com/vendored/thing/thing.go",
        "package thing\n",
    );
    repo.write(
        "services/api/Dockerfile",
        "# build\nFROM golang:1.22 AS build\nCOPY . /src\nCOPY proto/ /src/proto\nRUN go build ./...\n\nFROM registry.example.org/team/base:1.0\nCOPY --from=build /src/api /usr/bin/api\n",
    );
    repo.write(
        "gopath/src/legacy/legacy.go",
        "package legacy\n\nimport \"github.com/org/mono/gopath/src/tool\"\n",
    );
    repo.write("gopath/src/tool/tool.go", "package tool\n");
    repo.commit("init");
    repo
}

fn manifest(repo: &TestRepo) -> String {
    std::fs::read_to_string(repo.path().join("services.toml")).unwrap()
}

#[test]
fn sync_writes_what_the_code_states_and_keeps_the_rest() {
    let repo = repo();
    let check = repo.ripple(&["sync", "--check"], &[]);
    assert_eq!(
        check.code, 1,
        "stale before the first sync: {}",
        check.stderr
    );
    assert!(check.stdout.contains("+discovered = "), "{}", check.stdout);
    assert_eq!(manifest(&repo), MANIFEST, "--check writes nothing");

    let run = repo.ripple(&["sync"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let written = manifest(&repo);
    // api: FROM base (docker), COPY proto/ (docker), the shared module by
    // its replace directive and the vendored package (go). COPY --from and
    // the whole context give none; the test file's import of api gives
    // none; the catch-all suite is never a target, and gets no edge to
    // what it owns itself (but its Dockerfile's FROM). legacy imports tool
    // GOPATH-style.
    let expected = MANIFEST
        .replace(
            "context = \".\"\n",
            "context = \".\"\ndiscovered = { docker = [\"base\", \"proto\"], go = [\"shared\", \"vendored\"] }\n",
        )
        .replace(
            "paths = [\"gopath/src/legacy\"]\n",
            "paths = [\"gopath/src/legacy\"]\ndiscovered = { go = [\"tool\"] }\n",
        )
        .replace(
            "paths = [\"libs\", \"services\", \"proto\", \"gopath\"]\n",
            "paths = [\"libs\", \"services\", \"proto\", \"gopath\"]\ndiscovered = { docker = [\"base\"] }\n",
        );
    assert_eq!(written, expected);
    assert!(
        run.stderr.contains("wrote 6 discovered edges"),
        "{}",
        run.stderr
    );

    let again = repo.ripple(&["sync", "--check"], &[]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
}

#[test]
fn discovered_edges_affect_and_explain_with_their_file() {
    let mut repo = repo();
    repo.ripple(&["sync"], &[]).ok();
    repo.commit("sync");
    repo.branch("feature");
    repo.write("libs/shared/shared.go", "package shared\n\nvar X = 1\n");
    repo.commit("change shared");
    let args = ["affected", "--base", "main", "--format", "json"];
    let json = repo.ripple(&args, &[]).json();
    assert_eq!(services(&json), ["api", "everything", "shared"]);
    assert_eq!(
        json["services"][0]["edges"],
        serde_json::json!([{"to": "shared", "origin": "go"}])
    );
    let explain = repo
        .ripple(&["explain", "api", "--base", "main"], &[])
        .ok()
        .to_string();
    assert!(
        explain
            .contains("api <- shared (go import in services/api/main.go) <- libs/shared/shared.go"),
        "{explain}"
    );
    let dot = repo.ripple(&["graph"], &[]).ok().to_string();
    assert!(
        dot.contains("\"api\" -> \"shared\" [style=dashed, label=\"go\"];"),
        "{dot}"
    );
    let mermaid = repo
        .ripple(&["graph", "--format", "mermaid"], &[])
        .ok()
        .to_string();
    assert!(mermaid.contains("-.->|docker|"), "{mermaid}");
}

#[test]
fn a_dropped_edge_stays_dropped_and_a_cycle_writes_nothing() {
    let mut repo = repo();
    let dropped = MANIFEST.replace(
        "context = \".\"\n",
        "context = \".\"\ndepends_on = [\"!proto\"]\n",
    );
    repo.write("services.toml", &dropped);
    repo.commit("drop proto");
    repo.ripple(&["sync"], &[]).ok();
    assert!(
        manifest(&repo).contains("docker = [\"base\", \"proto\"]"),
        "still written"
    );
    repo.commit("sync");
    repo.branch("feature");
    repo.write("proto/api.proto", "syntax = \"proto3\"; // v2\n");
    repo.commit("proto change");
    let json = repo
        .ripple(&["affected", "--base", "main", "--format", "json"], &[])
        .json();
    assert_eq!(
        services(&json),
        ["everything", "proto"],
        "the edge is dropped"
    );

    // shared's code imports api: a cycle with api's discovered edge.
    repo.write(
        "libs/shared/shared.go",
        "package shared\n\nimport \"example.org/api\"\n",
    );
    repo.write(
        "libs/shared/go.mod",
        "module example.org/shared\n\nreplace example.org/api => ../../services/api\n",
    );
    repo.commit("a cycle");
    let before = manifest(&repo);
    let run = repo.ripple(&["sync"], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("dependency cycle: api -> shared -> api"),
        "{}",
        run.stderr
    );
    assert_eq!(manifest(&repo), before, "nothing written");
}

#[test]
fn no_source_enabled_removes_discovered_keys() {
    let repo = repo();
    repo.ripple(&["sync"], &[]).ok();
    let off = manifest(&repo).replace("discover = [\"docker\", \"go\"]\n", "");
    std::fs::write(repo.path().join("services.toml"), &off).unwrap();
    repo.ripple(&["sync"], &[]).ok();
    assert_eq!(
        manifest(&repo),
        MANIFEST.replace("discover = [\"docker\", \"go\"]\n", "")
    );
}

/// An npm workspace (with a same-named package from the registry), a Cargo
/// workspace, and a uv workspace with a requirements file.
const POLYGLOT: &str = r#"[settings]
discover = ["npm", "cargo", "python"]

[[service]]
name = "web"
kind = "library"
paths = ["js/web"]

[[service]]
name = "ui"
kind = "library"
paths = ["js/ui"]

[[service]]
name = "logger"
kind = "library"
paths = ["js/logger"]

[[service]]
name = "cli"
kind = "library"
paths = ["rust/cli"]

[[service]]
name = "core"
kind = "library"
paths = ["rust/core"]

[[service]]
name = "macros"
kind = "library"
paths = ["rust/macros"]

[[service]]
name = "worker"
kind = "library"
paths = ["py/worker"]

[[service]]
name = "pycore"
kind = "library"
paths = ["py/core"]

[[service]]
name = "scripts"
kind = "library"
paths = ["tools"]
"#;

fn polyglot() -> TestRepo {
    let mut repo = TestRepo::empty();
    repo.write("services.toml", POLYGLOT);
    repo.write(
        "package.json",
        r#"{"private": true, "workspaces": ["js/*"]}"#,
    );
    repo.write(
        "js/web/package.json",
        r#"{"name": "@team/web", "version": "1.0.0", "dependencies": {"@team/ui": "workspace:*", "logger": "^3.0.0", "react": "^18"}, "devDependencies": {"@team/scripts": "file:../../tools"}}"#,
    );
    repo.write(
        "js/ui/package.json",
        r#"{"name": "@team/ui", "version": "2.1.0"}"#,
    );
    // `logger` here is 1.x: web's `^3.0.0` is the registry's package.
    repo.write(
        "js/logger/package.json",
        r#"{"name": "logger", "version": "1.4.0"}"#,
    );
    repo.write(
        "tools/package.json",
        r#"{"name": "@team/scripts", "version": "0.1.0"}"#,
    );
    repo.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"rust/*\"]\n\n[workspace.dependencies]\ncore = { path = \"rust/core\" }\nserde = \"1\"\n",
    );
    repo.write(
        "rust/cli/Cargo.toml",
        "[package]\nname = \"cli\"\nversion = \"0.1.0\"\n\n[dependencies]\ncore.workspace = true\nserde = { workspace = true }\n\n[target.'cfg(unix)'.dev-dependencies]\nmy-macros = { path = \"../macros\", package = \"macros\" }\n",
    );
    repo.write(
        "rust/core/Cargo.toml",
        "[package]\nname = \"core\"\nversion = \"0.1.0\"\n",
    );
    repo.write(
        "rust/macros/Cargo.toml",
        "[package]\nname = \"macros\"\nversion = \"0.1.0\"\n",
    );
    repo.write(
        "pyproject.toml",
        "[tool.uv.workspace]\nmembers = [\"py/*\"]\n",
    );
    repo.write(
        "py/worker/pyproject.toml",
        "[project]\nname = \"worker\"\ndependencies = [\"py-core\", \"requests\"]\n\n[tool.uv.sources]\npy-core = { workspace = true }\nrequests = { index = \"pypi\" }\n",
    );
    repo.write("py/core/pyproject.toml", "[project]\nname = \"Py_Core\"\n");
    repo.write(
        "py/worker/requirements-dev.txt",
        "pytest==8\n-e ../../tools\n",
    );
    repo.commit("init");
    repo
}

#[test]
fn npm_cargo_and_python_sources() {
    let repo = polyglot();
    let run = repo.ripple(&["sync"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let written = manifest(&repo);
    let expected = POLYGLOT
        .replace(
            "paths = [\"js/web\"]\n",
            "paths = [\"js/web\"]\ndiscovered = { npm = [\"scripts\", \"ui\"] }\n",
        )
        .replace(
            "paths = [\"rust/cli\"]\n",
            "paths = [\"rust/cli\"]\ndiscovered = { cargo = [\"core\", \"macros\"] }\n",
        )
        .replace(
            "paths = [\"py/worker\"]\n",
            "paths = [\"py/worker\"]\ndiscovered = { python = [\"pycore\", \"scripts\"] }\n",
        );
    assert_eq!(written, expected, "logger from the registry is no edge");
    let args = [
        "affected", "--files", "-", "--event", "pr", "--format", "json",
    ];
    let run = crate::common::ripple_fed(
        repo.path(),
        &args,
        &[],
        "rust/core/src/lib.rs\ntools/x.sh\n",
    );
    assert_eq!(
        services(&run.json()),
        ["cli", "core", "scripts", "web", "worker"],
        "discovered edges carry the change"
    );
}

#[test]
fn pull_requests_that_can_change_discovered_edges_check_them() {
    let mut repo = repo();
    repo.ripple(&["sync"], &[]).ok();
    repo.commit("sync");
    repo.branch("feature");
    repo.write(
        "libs/shared/extra.go",
        "package shared\n\nimport \"example.org/api\"\n",
    );
    repo.commit("a new import");
    let plan = repo
        .ripple(&["plan", "--base", "main", "--format", "json"], &[])
        .json();
    let sync = plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "ripple-sync")
        .expect("a sync check");
    assert_eq!(
        sync["tests"]["stages"][0]["commands"][0],
        "ripple sync --check"
    );
    assert_eq!(sync["tests"]["toolchain"], "ripple:latest");
    // The check fails on this branch: the new import is not in the manifest.
    let check = repo.ripple(&["sync", "--check"], &[]);
    assert_eq!(check.code, 1);

    let yaml = repo
        .ripple(&["plan", "--base", "main"], &[])
        .ok()
        .to_string();
    let docs = crate::common::check_yaml("discover_sync_check", &yaml);
    assert!(docs.iter().any(|d| d["name"] == "ripple-sync"), "{yaml}");

    // A change no source reads runs no check.
    repo.checkout("main");
    repo.branch("docs");
    repo.write("proto/README.md", "docs\n");
    repo.commit("docs");
    let plan = repo
        .ripple(&["plan", "--base", "main", "--format", "json"], &[])
        .json();
    assert!(
        !plan["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"] == "ripple-sync"),
        "{plan}"
    );
}

#[test]
fn static_files_check_the_manifest_on_pull_requests() {
    let repo = repo();
    let run = repo.ripple(&["generate"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let yaml = std::fs::read_to_string(repo.path().join(".drone.yml")).unwrap();
    let docs = crate::common::check_yaml("discover_generate", &yaml);
    let sync = docs
        .iter()
        .find(|d| d["name"] == "ripple-sync")
        .expect("a sync pipeline");
    assert_eq!(sync["trigger"]["event"][0], "pull_request");
    assert_eq!(
        sync["steps"][0]["commands"][0], "ripple sync --check",
        "not gated"
    );

    let run = repo.ripple(&["generate", "--ci", "woodpecker"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(repo.path().join(".woodpecker/ripple-sync.yaml")).unwrap();
    crate::backends::keep("woodpecker", "discover-ripple-sync.yaml", &text);
    let doc = crate::backends::parse(&text);
    let include: Vec<&str> = doc["when"][0]["path"]["include"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(include[0], "services.toml");
    assert!(
        include.contains(&"**/*.go") && include.contains(&"**/Dockerfile"),
        "{include:?}"
    );
}

#[test]
fn init_guesses_a_manifest_and_never_overwrites() {
    let mut repo = repo();
    repo.remove("services.toml");
    repo.write(
        "docker-compose.yml",
        "services:\n  api:\n    build:\n      context: .\n      dockerfile: services/api/Dockerfile\n    image: registry.example.org/team/api:latest\n  db:\n    image: postgres:16\n",
    );
    repo.write(
        "js/ui/package.json",
        r#"{"name": "@team/ui", "version": "1.0.0"}"#,
    );
    repo.write(
        "js/app/package.json",
        r#"{"name": "@team/app", "dependencies": {"@team/ui": "^1.0.0"}}"#,
    );
    repo.commit("no manifest yet");
    let run = repo.ripple(&["init"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("ripple init: wrote"), "{}", run.stderr);
    let text = manifest(&repo);
    assert!(
        text.starts_with("# Written by `ripple init`"),
        "says what was guessed"
    );
    let parsed = ripple::manifest::Manifest::parse(&text, "services.toml").unwrap();
    let names: Vec<&str> = parsed.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["base", "api", "shared", "legacy", "tool", "app", "ui"],
        "{text}"
    );
    let api = &parsed.services[1];
    let build = api.build.as_ref().unwrap();
    assert_eq!(
        build.image, "registry.example.org/team/api",
        "from the compose file"
    );
    assert_eq!(build.context, ".", "the compose file's context");
    assert_eq!(parsed.settings.discover, ["docker", "go", "npm"]);
    assert_eq!(parsed.settings.publish_branches, ["main"]);
    let edges = |i: usize| -> Vec<(String, &str)> {
        parsed
            .edges(i)
            .map(|(d, o)| (parsed.services[d].name.to_string(), o.as_str()))
            .collect()
    };
    assert_eq!(
        edges(1),
        [("shared".to_string(), "go")],
        "by the replace directive"
    );
    assert_eq!(edges(5), [("ui".to_string(), "npm")]);
    assert_eq!(
        edges(3),
        [("tool".to_string(), "go")],
        "GOPATH-style, outside the modules"
    );
    assert!(
        text.contains("paths = [\"services/api\", \"proto\"]"),
        "COPY proto/ is api's"
    );
    let check = repo.ripple(&["check"], &[]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    let sync = repo.ripple(&["sync", "--check"], &[]);
    assert_eq!(sync.code, 0, "init wrote what sync would: {}", sync.stdout);

    let again = repo.ripple(&["init"], &[]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("exists"), "{}", again.stderr);
    assert_eq!(manifest(&repo), text, "untouched");
}
