//! Whole-process benchmark of ripple against git's own floor on synthetic
//! monorepos (see BENCHMARKS.md).
//!
//! ```text
//! cargo bench --bench monorepo                      # 100, 1000, 5000, 20000 services
//! cargo bench --bench monorepo -- --sizes 5000 --runs 31
//! cargo bench --bench monorepo -- --sizes 5000 --serve 200 --runs 5   # serve under load
//! cargo bench --bench monorepo -- --sizes 20000 --style hand-written    # another manifest
//! ```
//!
//! Each size is generated once into `target/bench-repos/` (deterministic
//! for the seed). On each feature branch it times, interleaved, the git
//! floor (`git diff --name-only $(git merge-base main HEAD) HEAD`),
//! `ripple affected --format json` and `ripple plan`, and prints median,
//! min and max wall time, peak memory and each median's ratio to the floor.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ripple::synth::{self, ALLCORE_BRANCH, CORE_BRANCH, Shape, Style, WIDE_BRANCH};

#[cfg(feature = "server")]
#[path = "monorepo/serve.rs"]
mod serve;

struct Options {
    sizes: Vec<usize>,
    runs: usize,
    seed: u64,
    /// `--style synced|hand-written`: how the manifest is written.
    style: Style,
    /// `--serve CLIENTS`: instead, `ripple serve` under waves of this many
    /// concurrent requests.
    serve: Option<usize>,
}

fn options() -> Options {
    let mut options = Options {
        sizes: vec![100, 1_000, 5_000, 20_000],
        runs: 21,
        seed: 1,
        style: Style::Synced,
        serve: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--sizes" => {
                options.sizes = value()
                    .split(',')
                    .map(|s| s.parse().expect("--sizes takes numbers like 100,5000"))
                    .collect();
            }
            "--runs" => options.runs = value().parse().expect("--runs takes a number"),
            "--seed" => options.seed = value().parse().expect("--seed takes a number"),
            "--style" => {
                options.style = Style::from_name(&value()).expect("--style: synced or hand-written")
            }
            "--serve" => options.serve = Some(value().parse().expect("--serve takes a number")),
            // cargo bench passes `--bench`; other harness flags do not apply.
            _ => {}
        }
    }
    options
}

/// Wall time and peak resident memory (KiB) of one run.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    peak_kib: u64,
}

// The child is reaped by wait4, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run(command: &[&str], dir: &Path) -> Sample {
    let start = Instant::now();
    let child = Command::new(command[0])
        .args(&command[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", command[0]));
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4 rather than Child::wait: it also reports the peak memory.
    // SAFETY: the pid is our own unreaped child, and both out-pointers are valid.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert!(pid > 0, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed with status {status}"
    );
    Sample {
        wall,
        peak_kib: usage.ru_maxrss as u64,
    }
}

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
    peak_mib: f64,
}

fn stats(samples: &[Sample]) -> Stats {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort_unstable();
    Stats {
        median: walls[walls.len() / 2],
        min: walls[0],
        max: walls[walls.len() - 1],
        peak_mib: samples.iter().map(|s| s.peak_kib).max().unwrap_or(0) as f64 / 1024.0,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn repository(size: usize, seed: u64, style: Style) -> PathBuf {
    // v3: the code states the dependencies and the manifest holds them
    // as `discovered` keys, with no `depends_on`. v4: a branch that
    // changes every core library. v5 (hand-written): each service's
    // directory as `DIR/**`.
    let name = match style {
        Style::Synced => format!("n{size}-s{seed}-v4"),
        _ => format!("n{size}-s{seed}-v5-{}", style.name()),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-repos")
        .join(name);
    if !dir.join(DONE).exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the benchmark directory");
        helper(&[
            "--generate",
            &dir.display().to_string(),
            &size.to_string(),
            &seed.to_string(),
            style.name(),
        ]);
    }
    dir
}

/// Marks a generated repository as complete.
const DONE: &str = ".git/ripple-synth-done";

/// Runs this binary again for work that would swell this process's memory
/// (generation, checkouts): a child forked from a large process would
/// report the parent's pages as its own peak.
fn helper(args: &[&str]) {
    let status = Command::new(std::env::current_exe().expect("own path"))
        .args(args)
        .status()
        .expect("run the benchmark helper");
    assert!(status.success(), "helper {args:?} failed");
}

/// The helper side of [`helper`]; returns true when it handled the call.
fn serve_helper() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--generate") => {
            let dir = Path::new(&args[1]);
            let shape = Shape {
                seed: args[3].parse().expect("seed"),
                // `cargo bench` adds `--bench` after what it is given.
                style: (args.get(4).filter(|arg| !arg.starts_with("--")))
                    .map_or(Style::Synced, |name| {
                        Style::from_name(name).expect("style: synced or hand-written")
                    }),
                ..Shape::new(args[2].parse().expect("size"))
            };
            let start = Instant::now();
            let summary = synth::generate(dir, &shape).expect("generate the repository");
            eprintln!(
                "generated {} services, {} files, depth {}, core {} (fan-in {}) in {:.1}s",
                shape.services,
                summary.files,
                summary.depth,
                summary.core,
                summary.core_fan_in,
                start.elapsed().as_secs_f64()
            );
            std::fs::write(dir.join(DONE), "").expect("mark the repository complete");
            true
        }
        Some("--checkout") => {
            let repo = git2::Repository::open(&args[1]).expect("open the repository");
            synth::checkout(&repo, &args[2]).expect("checkout");
            true
        }
        _ => false,
    }
}

/// How many services the branch checked out in `dir` affects. Read as
/// it streams in: a child's peak memory as `wait4` reports it starts from
/// this process's own peak (the child is spawned from its memory before
/// it executes), so holding megabytes of a report here would show in
/// every later child's peak.
fn affected_count(ripple: &str, dir: &Path) -> usize {
    #[derive(serde::Deserialize)]
    struct Report {
        services: Vec<serde::de::IgnoredAny>,
    }
    let mut child = Command::new(ripple)
        .args([
            "affected",
            "--format",
            "json",
            "--event",
            "pull_request",
            "--base",
            "main",
        ])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run ripple");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let report: Report = serde_json::from_reader(stdout).expect("JSON output");
    assert!(child.wait().expect("wait for ripple").success());
    report.services.len()
}

fn main() {
    if serve_helper() {
        return;
    }
    let options = options();
    let ripple = env!("CARGO_BIN_EXE_ripple");
    #[cfg(feature = "server")]
    if let Some(clients) = options.serve {
        println!(
            "| services | serves | requests | failed | per second | p50 ms | p99 ms | peak MiB |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|---:|");
        for &size in &options.sizes {
            let dir = repository(size, options.seed, options.style);
            let repo = git2::Repository::open(&dir).expect("the benchmark repository");
            let head = repo
                .revparse_single(CORE_BRANCH)
                .and_then(|o| o.peel_to_commit())
                .expect("the core branch")
                .id()
                .to_string();
            serve::load(ripple, &dir, size, &head, clients, options.runs);
        }
        return;
    }
    #[cfg(not(feature = "server"))]
    assert!(options.serve.is_none(), "--serve needs the server feature");
    let floor = [
        "sh",
        "-c",
        "git diff --name-only $(git merge-base main HEAD) HEAD",
    ];
    let affected = [
        ripple,
        "affected",
        "--format",
        "json",
        "--event",
        "pull_request",
        "--base",
        "main",
    ];
    // Every backend's plan: each lowers and writes the same plan its own
    // way (Woodpecker's answer and GitHub's outputs are JSON holding text).
    let plan_for = |ci| {
        [
            ripple,
            "--ci",
            ci,
            "plan",
            "--event",
            "pull_request",
            "--base",
            "main",
        ]
    };
    let plans = ["drone", "woodpecker", "gitlab", "github"].map(plan_for);
    let commands: [(&str, &[&str]); 6] = [
        ("git floor", &floor),
        ("ripple affected", &affected),
        ("ripple plan (drone)", &plans[0]),
        ("ripple plan (woodpecker)", &plans[1]),
        ("ripple plan (gitlab)", &plans[2]),
        ("ripple plan (github)", &plans[3]),
    ];
    // Discovery reads every file of HEAD: its floor is listing them.
    let tree_floor = ["git", "ls-tree", "-r", "HEAD"];
    let sync = [ripple, "sync", "--check"];
    // `init` writes a first manifest only: each run writes a fresh one
    // outside the repository.
    let init_out =
        std::env::temp_dir().join(format!("ripple-bench-init-{}.toml", std::process::id()));
    let init_out = init_out.display().to_string();
    let init = [
        "sh",
        "-c",
        "rm -f \"$1\" && exec \"$0\" --manifest \"$1\" init",
        ripple,
        &init_out,
    ];
    let discovery: [(&str, &[&str]); 3] = [
        ("git ls-tree -r", &tree_floor),
        ("ripple sync --check", &sync),
        ("ripple init", &init),
    ];

    println!(
        "| services | branch | affected | command | median ms | min ms | max ms | peak MiB | × floor |"
    );
    println!("|---:|---|---:|---|---:|---:|---:|---:|---:|");
    for &size in &options.sizes {
        let dir = repository(size, options.seed, options.style);
        let path = dir.display().to_string();
        for branch in [WIDE_BRANCH, CORE_BRANCH, ALLCORE_BRANCH] {
            helper(&["--checkout", &path, branch]);
            let count = affected_count(ripple, &dir);
            compare(
                size,
                branch,
                &count.to_string(),
                &commands,
                &dir,
                options.runs,
            );
        }
        helper(&["--checkout", &path, synth::MAIN]);
        // Discovery is measured on the manifest `sync` keeps.
        if options.style == Style::Synced {
            compare(size, synth::MAIN, "-", &discovery, &dir, options.runs);
        }
    }
}

/// Times `commands` interleaved in `dir` and prints a row each, the first
/// command being the floor the others are measured against.
fn compare(
    size: usize,
    branch: &str,
    count: &str,
    commands: &[(&str, &[&str])],
    dir: &Path,
    runs: usize,
) {
    for (_, command) in commands {
        run(command, dir); // warm the page cache
    }
    // Interleaved, so drift on a noisy machine hits every command alike.
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); commands.len()];
    for _ in 0..runs {
        for (i, (_, command)) in commands.iter().enumerate() {
            samples[i].push(run(command, dir));
        }
    }
    let floor_median = stats(&samples[0]).median;
    for ((name, _), samples) in commands.iter().zip(&samples) {
        let s = stats(samples);
        let ratio = s.median.as_secs_f64() / floor_median.as_secs_f64();
        println!(
            "| {size} | {branch} | {count} | {name} | {} | {} | {} | {:.1} | {ratio:.2} |",
            ms(s.median),
            ms(s.min),
            ms(s.max),
            s.peak_mib
        );
    }
}
