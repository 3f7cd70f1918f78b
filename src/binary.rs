//! What both binaries do around a command: parse the arguments, set the
//! process up for a command that runs once, run it, print the error.
//!
//! `ripple` runs the planner's commands and hands the network ones
//! (`serve`, `promote`, `slots`, `slot`, and the promotion of `gate
//! --promote`) to `ripple-net`, installed beside it, which runs every
//! command. So `ripple`'s binary holds none of their dependencies (HTTP,
//! TLS, a registry client, a database): half the code, and 8,000 fewer of
//! the pointers the loader relocates at every start, about 0.5 ms and 90
//! page faults of each run (see BENCHMARKS.md, seventeenth session).

use std::ffi::OsString;
use std::io::{ErrorKind, Write};
#[cfg(feature = "registry")]
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::Io;
use crate::cli::Args;
use crate::error::{Error, Result, exit};

/// Which binary is running.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `ripple`: hands the network commands to `ripple-net`.
    Planner,
    /// `ripple-net`: runs every command.
    Network,
}

/// A binary's `main`: parses the arguments and runs them with `run`; in
/// `ripple`, a network command is handed to `ripple-net` first, before
/// the process is set up for a command of its own.
pub fn main(binary: Binary, run: impl FnOnce(Args, Io<'_>) -> Result<u8>) -> ExitCode {
    let args = Args::parse();
    let mut err = std::io::stderr();
    let result = if binary == Binary::Planner && args.command.is_network() {
        // As typed: `ripple-net` reads the same arguments and environment.
        hand_to_network(None)
    } else {
        if !args.command.is_server() {
            grow_the_heap_in_large_steps();
            map_packs_in_pieces();
            crate::arena::enable();
            crate::parallel::start();
        }
        // Not locked for the whole run: `serve` logs from worker threads.
        let mut out = std::io::stdout();
        run(
            args,
            Io {
                out: &mut out,
                err: &mut err,
            },
        )
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // `ripple plan | head` is not a failure.
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::BrokenPipe => {
            ExitCode::from(exit::OK)
        }
        Err(error) => {
            // What failed, then its causes, once each, on one line.
            let _ = writeln!(err, "error: {}", error.report());
            if let Some(hint) = error.hint() {
                let _ = writeln!(err, "hint: {hint}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs `ripple-net` beside this binary with `arguments`, else with this
/// process's own: in its place where the system can (Unix), so the
/// process, its signals and its exit code stay the same; else as a child,
/// waited for.
pub fn hand_to_network(arguments: Option<Vec<OsString>>) -> Result<u8> {
    let path = network_binary();
    let failed = |source| Error::Network {
        path: path.clone(),
        source,
    };
    let mut given = std::env::args_os();
    let name = given.next();
    let mut run = std::process::Command::new(&path);
    match arguments {
        // A command line made here says every setting itself: `gate
        // --promote` never read the insecure registries' variable.
        Some(arguments) => run.args(arguments).env_remove("RIPPLE_INSECURE_REGISTRIES"),
        None => run.args(given),
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // Its messages name the command as it was typed.
        if let Some(name) = name {
            run.arg0(name);
        }
        // Returns only when the binary could not be run.
        Err(failed(run.exec()))
    }
    #[cfg(not(unix))]
    {
        let _ = name;
        let status = run.status().map_err(failed)?;
        Ok(status.code().map_or(exit::INTERNAL, |code| code as u8))
    }
}

/// The command line of `ripple promote` for `promote`, reading the
/// history of `repo`.
#[cfg(feature = "registry")]
pub fn promote_arguments(promote: &crate::cli::PromoteArgs, repo: Option<&Path>) -> Vec<OsString> {
    let mut arguments: Vec<OsString> = vec!["promote".into(), (&promote.image).into()];
    arguments.extend(["--from".into(), (&promote.from).into()]);
    for tag in &promote.to {
        arguments.extend(["--to".into(), tag.into()]);
    }
    if promote.else_build {
        arguments.push("--else-build".into());
    }
    for host in &promote.insecure_registries {
        arguments.extend(["--insecure-registry".into(), host.into()]);
    }
    if let Some(repo) = repo {
        arguments.extend(["--repo".into(), repo.into()]);
    }
    arguments
}

/// Where `ripple-net` is: beside this binary.
fn network_binary() -> PathBuf {
    let name = format!("ripple-net{}", std::env::consts::EXE_SUFFIX);
    match std::env::current_exe() {
        Ok(this) => this.with_file_name(name),
        Err(_) => PathBuf::from(name),
    }
}

/// glibc grows a thread's heap a page or two at a time, each step an
/// `mprotect` (about 1,200 of them while a 20,000-service manifest is read,
/// costly in a virtual machine): asked to keep 16 MiB of room at the top
/// of each heap, it grows in a handful of steps. Only address space is
/// reserved; pages are still backed when first written, so a run's peak
/// memory is the same (see BENCHMARKS.md). Not for a server, whose heaps
/// would keep up to that much of what it frees between requests.
///
/// Setting that also fixes glibc's threshold for mapping a block of its
/// own at 128 KiB, where it would otherwise rise to the largest block
/// freed. A plan's runs of jobs are rendered into half-megabyte buffers:
/// mapped and unmapped for every run whenever the heap's top was short,
/// each zeroed by the kernel again (2,400 page faults instead of 950 in a
/// Woodpecker plan at 20,000 services). Blocks under
/// [`crate::arena::LARGE`] now come from the heap, and are reused; larger
/// ones are mapped by the arena.
fn grow_the_heap_in_large_steps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets tuning parameters of glibc's allocator,
    // before any thread is started.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, crate::arena::LARGE as libc::c_int);
    }
}

/// libgit2 maps a whole pack file (47 MB at 20,000 services) and keeps it
/// mapped while the repository is open, and the pages the diff reads count
/// in the process's memory. A freshly written pack's pages are mapped in
/// large pieces: `affected` on a just-generated 20,000-service repository
/// peaked at 73 MB, the floor's git at 60 MB. In windows of 4 MiB, at most
/// 12 MiB mapped at once, it peaked at 36-41 MB, no slower (see
/// BENCHMARKS.md). Not for a server, whose concurrent requests would take
/// turns at those few windows.
fn map_packs_in_pieces() {
    // SAFETY: libgit2's global settings, set before any thread is started.
    unsafe {
        let _ = git2::opts::set_mwindow_size(4 << 20);
        let _ = git2::opts::set_mwindow_mapped_limit(12 << 20);
    }
}
