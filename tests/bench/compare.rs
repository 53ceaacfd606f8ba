//! `bench-compare`: runs the comparison benchmark (see `crowsnest_tests::compare`) and
//! prints its table; `cargo xtask bench compare` builds it and the agent in release first.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use crowsnest_tests::agent::agent_binary;
use crowsnest_tests::compare::report::{self, Environment};
use crowsnest_tests::compare::{AgentKind, Binaries, Plan, Scenario, Timing, agents};
use crowsnest_tests::deps::require_binary;

/// crowsnest vs vmagent vs Prometheus agent mode: CPU seconds per million samples, peak
/// RSS and delivery ratio on the same synthetic targets, scraped every second.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench compare")]
struct Args {
    /// `all` (100x2000 and 20x5000) or a comma-separated list of TARGETSxSERIES.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Rounds per scenario; the agent order rotates every round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measurement window of each run, seconds.
    #[arg(long, default_value_t = 60)]
    window: u64,
    /// Warm-up before the window, seconds.
    #[arg(long, default_value_t = 15)]
    warmup: u64,
    /// Comma-separated agents: crowsnest, vmagent, prometheus.
    #[arg(long, default_value = "crowsnest,vmagent,prometheus")]
    agents: String,
    /// Smoke run: scenario 20x5000 unless given, 1 round, 5 s warm-up, 10 s window.
    #[arg(long)]
    quick: bool,
    /// Where the markdown table and the JSON rows are written.
    #[arg(long, default_value = "target/bench-compare")]
    out: PathBuf,
}

impl Args {
    fn plan(&self) -> Result<Plan> {
        let scenario = if self.quick && self.scenario == "all" {
            "20x5000"
        } else {
            &self.scenario
        };
        let (rounds, warmup, window) = if self.quick {
            (1, 5, 10)
        } else {
            (self.rounds, self.warmup, self.window)
        };
        if rounds == 0 || window == 0 {
            bail!("--rounds and --window must be at least 1");
        }
        Ok(Plan {
            binaries: Binaries::with_crowsnest(agent_binary()?),
            scenarios: Scenario::parse_list(scenario)?,
            agents: agents::parse_list(&self.agents)?,
            rounds,
            timing: Timing {
                warmup: Duration::from_secs(warmup),
                window: Duration::from_secs(window),
            },
        })
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let plan = args.plan()?;
    for agent in &plan.agents {
        let binary = plan.binaries.of(*agent).display().to_string();
        if require_binary(&binary).is_skip() {
            bail!("{agent} is not installed at {binary}");
        }
    }
    let versions: BTreeMap<AgentKind, String> = plan
        .agents
        .iter()
        .map(|agent| (*agent, plan.binaries.version(*agent)))
        .collect();
    let environment = Environment::of_this_machine(
        versions,
        plan.rounds,
        plan.timing.warmup.as_secs(),
        plan.timing.window.as_secs(),
    );
    let results = plan
        .run(|result| {
            eprintln!(
                "bench-compare: {} round {} {}: {:.3} CPU-s/M, {:.0} MiB peak, delivery {:.4}, {} failed scrapes{}",
                result.scenario,
                result.round,
                result.agent,
                result.cpu_per_million,
                result.peak_rss_bytes as f64 / 1_048_576.0,
                result.delivery_ratio,
                result.failed_scrapes,
                if result.clean_exit {
                    ""
                } else {
                    " (killed after SIGTERM)"
                },
            );
        })
        .await?;
    let summaries = report::summarize(&results);
    let table = report::markdown(&environment, &summaries);
    println!("{table}");
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let stem = environment.date.replace(':', "");
    let markdown_path = args.out.join(format!("compare-{stem}.md"));
    let json_path = args.out.join(format!("compare-{stem}.json"));
    std::fs::write(&markdown_path, &table)
        .with_context(|| format!("write {}", markdown_path.display()))?;
    std::fs::write(&json_path, report::json(&environment, &summaries, &results))
        .with_context(|| format!("write {}", json_path.display()))?;
    eprintln!(
        "bench-compare: wrote {} and {}",
        markdown_path.display(),
        json_path.display()
    );
    Ok(())
}
