//! The `crowsnest` binary: the only place that decides to exit.

mod cli;
mod discover;

use std::process::ExitCode;

use clap::Parser;

// jemalloc instead of glibc malloc: glibc's per-thread arenas kept ~40 MB
// more resident than the heap itself at 100k series, and jemalloc also cost
// less CPU (measured with `cargo xtask bench compare`; see README).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crowsnest: {}", render_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping causes whose text the message already
/// carries (many library errors include their source in their own message).
fn render_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
