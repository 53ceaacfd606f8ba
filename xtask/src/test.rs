//! `cargo xtask test`: dependencies, formatting, lints, then every test, each phase timed.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::cmd::{self, phase};
use crate::counts::TestCounts;
use crate::deploy;
use crate::deps;

/// Which phases to run.
pub struct Options {
    /// Install missing external programs first.
    pub deps: bool,
    /// Run `cargo fmt --check` and `cargo clippy`.
    pub lint: bool,
    /// Prefer cargo-nextest when installed.
    pub nextest: bool,
    /// Passed on to nextest or `cargo test` (not to the doctest run): filters, runner flags.
    pub runner_args: Vec<String>,
}

/// Runs the phases in order, stopping at the first failure, and prints a timing table,
/// then (when tests ran) one closing line counting them.
pub fn run(options: &Options) -> Result<()> {
    let mut timings: Vec<(String, Duration)> = Vec::new();
    let mut counts = None;
    let result = run_phases(options, &mut timings, &mut counts);
    eprintln!("xtask: phase timings:");
    for (name, elapsed) in &timings {
        eprintln!("xtask:   {name:<28} {}", cmd::format_duration(*elapsed));
    }
    let total: Duration = timings.iter().map(|(_, elapsed)| *elapsed).sum();
    eprintln!("xtask:   {:<28} {}", "total", cmd::format_duration(total));
    // Last on stdout, so whoever reads the end of the log sees what ran, not the timings.
    if let Some(counts) = counts {
        println!("{}", counts.closing_line());
    }
    result
}

fn run_phases(
    options: &Options,
    timings: &mut Vec<(String, Duration)>,
    counts: &mut Option<TestCounts>,
) -> Result<()> {
    if options.deps {
        phase("test dependencies", timings, deps::ensure)?;
    }
    if options.lint {
        phase("cargo fmt --check", timings, || {
            cmd::run(cmd::cargo().args(["fmt", "--all", "--", "--check"]))
        })?;
        phase("cargo clippy", timings, || {
            cmd::run(cmd::cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        })?;
    }
    phase("chart, rules, dashboards", timings, deploy::check)?;
    // Built here so integration tests find a fresh binary instead of each running cargo.
    phase("build agent binary", timings, || {
        cmd::run(cmd::cargo().args(["build", "-p", "crowsnest", "--bin", "crowsnest"]))
    })?;
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    let use_nextest = options.nextest && cmd::on_path("cargo-nextest");
    let counts = counts.insert(TestCounts::default());
    let mut tests = |command: &mut Command| {
        cmd::run_observed(test_env(command, ci), |line| counts.observe(line))
    };
    if use_nextest {
        // nextest does not run doctests; run them first so nextest's summary closes the output.
        phase("cargo test --doc", timings, || {
            tests(cmd::cargo().args(["test", "--workspace", "--doc"]))
        })?;
        phase("cargo nextest run", timings, || {
            tests(
                cmd::cargo()
                    .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                    .args(&options.runner_args),
            )
        })
    } else {
        phase("cargo test", timings, || {
            tests(
                cmd::cargo()
                    .args(["test", "--workspace", "--no-fail-fast"])
                    .args(&options.runner_args),
            )
        })
    }
}

/// In CI a missing test dependency must fail the test, not skip it.
fn test_env(command: &mut Command, ci: bool) -> &mut Command {
    command.env(
        "CROWSNEST_BIN",
        cmd::target_dir().join("debug").join("crowsnest"),
    );
    if ci {
        command.env("CROWSNEST_TEST_REQUIRE_DEPS", "1");
    }
    command
}
