//! The `ripple` binary: parse the arguments, run, print the error.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::Parser;
use ripple::error::{Error, exit};

fn main() -> ExitCode {
    let args = ripple::cli::Args::parse();
    if !args.command.is_server() {
        grow_the_heap_in_large_steps();
        map_packs_in_pieces();
        ripple::arena::enable();
        ripple::parallel::start();
    }
    // Not locked for the whole run: `serve` logs from worker threads.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let result = ripple::run(
        args,
        ripple::Io {
            out: &mut out,
            err: &mut err,
        },
    );
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

/// glibc grows a thread's heap a page or two at a time, each step an
/// `mprotect` (about 1,200 of them while a 20,000-service manifest is read,
/// costly in a virtual machine): asked to keep 16 MiB of room at the top
/// of each heap, it grows in a handful of steps. Only address space is
/// reserved; pages are still backed when first written, so a run's peak
/// memory is the same (see BENCHMARKS.md). Not for a server, whose heaps
/// would keep up to that much of what it frees between requests.
fn grow_the_heap_in_large_steps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a tuning parameter of glibc's allocator,
    // before any thread is started.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
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
