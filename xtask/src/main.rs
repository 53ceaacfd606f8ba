//! Developer tasks, run as `cargo xtask <task>`: `run`, `test`, `bench`, `manifests`,
//! `deploy`, `dashboards`.
//!
//! xtask is plain Rust so that the same steps run on a laptop and in CI (`.ci/run`)
//! without a second scripting language to keep in sync.

mod cmd;
mod compare;
mod counts;
mod dashboards;
mod deploy;
mod deps;
#[path = "../../tests/harness/deps_table.rs"]
mod deps_table;
mod ebpf;
mod pytools;
mod soak;
mod test;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// crowsnest developer tasks.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install the eBPF toolchain (nightly rust-src and bpf-linker) if missing.
    SetupEbpf,
    /// Build the agent and run `crowsnest run` with the built-in defaults.
    Run {
        /// Build and run the release profile (slow to build on small machines).
        #[arg(long)]
        release: bool,
        /// Extra arguments for `crowsnest run`, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Install test dependencies, then check formatting, lint and run every test.
    Test {
        /// Do not check or install the external programs the integration tests run.
        #[arg(long)]
        no_deps: bool,
        /// Skip `cargo fmt --check` and `cargo clippy`.
        #[arg(long)]
        no_lint: bool,
        /// Use `cargo test` even when cargo-nextest is installed.
        #[arg(long)]
        no_nextest: bool,
        /// Extra arguments for the test runner, after `--` (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Render the Helm chart into the plain manifests of deploy/manifests.
    Manifests,
    /// Only the deploy phase of `test`: chart, manifests, alert rules, dashboards.
    Deploy,
    /// Generate the Grafana dashboards of deploy/dashboards.
    Dashboards,
    /// Long durability runs (minutes): outage + SIGKILLs + drain, queue throughput.
    Soak {
        /// Backend outage length in seconds.
        #[arg(long, default_value_t = 300)]
        outage_secs: u64,
        /// Series the scraped target exposes (one scrape per second).
        #[arg(long, default_value_t = 10_000)]
        series: u64,
        /// Use the release profile (for meaningful throughput numbers).
        #[arg(long)]
        release: bool,
    },
    /// Run a benchmark: a criterion bench of the agent (`parser`), `ebpf` (as root), or
    /// `compare` (crowsnest vs vmagent vs Prometheus agent mode; `bench compare --help`).
    Bench {
        /// `compare`, `ebpf`, or a bench target of the `crowsnest` package.
        #[arg(default_value = "parser")]
        bench: String,
        /// Flags of `compare` (e.g. `--quick`, `--scenario 20x5000 --rounds 5`), or extra
        /// arguments for criterion after `--` (e.g. a filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.task {
        Task::SetupEbpf => ebpf::ensure_toolchain(),
        Task::Run { release, args } => {
            ebpf::ensure_toolchain()?;
            run_agent(release, &args)
        }
        Task::Test {
            no_deps,
            no_lint,
            no_nextest,
            args,
        } => {
            ebpf::ensure_toolchain()?;
            test::run(&test::Options {
                deps: !no_deps,
                lint: !no_lint,
                nextest: !no_nextest,
                runner_args: args,
            })
        }
        Task::Bench { bench, args } if bench == "ebpf" => ebpf::bench(false, bench_args(&args)),
        Task::Bench { bench, args } if bench == "compare" => compare::run(&args),
        Task::Manifests => deploy::write_manifests(),
        Task::Deploy => deploy::check(),
        Task::Dashboards => dashboards::write(),
        Task::Soak {
            outage_secs,
            series,
            release,
        } => soak::run(&soak::Options {
            outage: std::time::Duration::from_secs(outage_secs),
            series,
            release,
        }),
        Task::Bench { bench, args } => {
            let mut cargo = cmd::cargo();
            cargo.args(["bench", "-p", "crowsnest", "--bench", &bench]);
            let args = bench_args(&args);
            if !args.is_empty() {
                cargo.arg("--").args(args);
            }
            cmd::run(&mut cargo)
        }
    }
}

/// Arguments for criterion or the eBPF bench: what follows `--` (kept by the trailing
/// argument list, which `compare` needs for its own flags), or everything when none.
fn bench_args(args: &[String]) -> &[String] {
    match args.iter().position(|arg| arg == "--") {
        Some(at) => &args[at + 1..],
        None => args,
    }
}

/// `cargo run` rather than build-then-exec keeps one code path for both profiles and lets
/// Ctrl-C reach the agent directly (cargo forwards nothing, the agent shares the terminal).
fn run_agent(release: bool, args: &[String]) -> Result<()> {
    let mut cargo = cmd::cargo();
    cargo.args(["run", "-p", "crowsnest", "--bin", "crowsnest"]);
    if release {
        cargo.arg("--release");
    }
    cargo.args(["--", "run"]).args(args);
    cmd::run(&mut cargo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(line: &[&str]) -> (String, Vec<String>) {
        let cli = Cli::try_parse_from(line).expect("parses");
        match cli.task {
            Task::Bench { bench, args } => (bench, args),
            other => panic!("not bench: {other:?}"),
        }
    }

    #[test]
    fn bench_passes_compare_flags_through_and_keeps_criterion_after_the_dashes() {
        let (name, args) = bench(&["xtask", "bench", "compare", "--quick", "--rounds", "5"]);
        assert_eq!(name, "compare");
        assert_eq!(args, ["--quick", "--rounds", "5"]);
        let (name, args) = bench(&["xtask", "bench", "parser", "--", "generated"]);
        assert_eq!(name, "parser");
        assert_eq!(bench_args(&args), ["generated"]);
        let (name, args) = bench(&["xtask", "bench"]);
        assert_eq!((name.as_str(), args.len()), ("parser", 0));
    }
}
