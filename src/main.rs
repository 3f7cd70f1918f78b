//! The `ripple` binary: every command but the network ones, which it
//! hands to `ripple-net` beside it (see `ripple::binary`).

use std::process::ExitCode;

fn main() -> ExitCode {
    ripple::binary::main(ripple::binary::Binary::Planner, ripple::app::run_planner)
}
