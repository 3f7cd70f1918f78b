//! The `ripple-net` binary: every command, the network ones (`serve`,
//! `promote`, `slots`, `slot`) among them, which `ripple` hands to it
//! (see `ripple::binary`).

use std::process::ExitCode;

fn main() -> ExitCode {
    ripple::binary::main(ripple::binary::Binary::Network, ripple::run)
}
