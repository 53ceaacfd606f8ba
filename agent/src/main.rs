//! The `crowsnest` binary: the only place that decides to exit.

mod cli;
mod discover;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crowsnest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
