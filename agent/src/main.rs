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

/// jemalloc's options, read at start-up from this symbol (the documented
/// way for a Rust binary): two arenas, one for the async worker and one for
/// the rest (fsync, blocking reads, or a second worker when configured; the
/// default of four per CPU kept ~15 MB more resident at 100k series, and
/// one arena measured no different from two), and freed pages returned to
/// the system within 200 ms by jemalloc's background thread. Without that
/// thread, purging waits for allocation activity to tick and lagged far
/// behind the decay time: ~15 MB more resident at 100k series (79 MiB peak
/// instead of 64 at 20 targets x 5000 series), for no measurable CPU.
#[allow(
    unsafe_code,
    non_upper_case_globals,
    reason = "jemalloc looks this constant C string up by name"
)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] =
    b"narenas:2,background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0\0";

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
