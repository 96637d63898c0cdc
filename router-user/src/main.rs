//! `quic-router`: the operator's command line. A thin layer over the `router_user` library;
//! errors become one line on stderr and a non-zero exit status.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

/// Exit status for bad input (arguments, config, key files, connection IDs), as clap uses.
const EXIT_BAD_INPUT: u8 = 2;
/// Exit status when the machine fails (loading the program, a map update).
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) if !err.use_stderr() => {
            // --help and --version
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("quic-router: {}", cli::one_line(&err.to_string()));
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quic-router: error: {}", cli::error_line(&err));
            ExitCode::from(if cli::is_bad_input(&err) {
                EXIT_BAD_INPUT
            } else {
                EXIT_FAILURE
            })
        }
    }
}
