//! `cargo xtask bench compare`: builds the agent and the comparison harness
//! (`tests/bench/compare.rs`) in release, then runs the harness with the agent binary it
//! just built. The harness owns the flags; they pass through unchanged.

use std::process::Command;

use anyhow::Result;

use crate::cmd;

/// Builds both binaries, then runs the comparison with `args` (`--help` lists them).
pub fn run(args: &[String]) -> Result<()> {
    // Two builds rather than one: building them together would unify the tests crate's
    // dependency features into the agent, and the agent measured must be the shipped one.
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "crowsnest",
        "--bin",
        "crowsnest",
    ]))?;
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "crowsnest-tests",
        "--bin",
        "bench-compare",
    ]))?;
    let target = cmd::target_dir();
    let release = target.join("release");
    let mut bench = Command::new(release.join("bench-compare"));
    bench
        .current_dir(cmd::workspace_root())
        .env("CROWSNEST_BIN", release.join("crowsnest"));
    let out_given = args
        .iter()
        .any(|arg| arg == "--out" || arg.starts_with("--out="));
    if !out_given {
        bench.arg("--out").arg(target.join("bench-compare"));
    }
    cmd::run(bench.args(args))
}
