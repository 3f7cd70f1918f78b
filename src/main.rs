//! The `ripple` binary: parse the arguments, run, print the error.

use std::io::{ErrorKind, Write};
use std::process::ExitCode;

use clap::Parser;
use ripple::error::{Error, exit};

fn main() -> ExitCode {
    let args = ripple::cli::Args::parse();
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
