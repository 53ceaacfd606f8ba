//! Smoke test of the comparison benchmark (`cargo xtask bench compare`) so it cannot rot:
//! a tiny scenario, one short round of crowsnest and vmagent, structural checks only. The
//! numbers of a debug build on a busy machine mean nothing, so none is compared.

use std::time::Duration;

use anyhow::{Result, ensure};
use crowsnest_tests::agent::agent_binary;
use crowsnest_tests::compare::report::{Environment, markdown, summarize};
use crowsnest_tests::compare::{AgentKind, Binaries, Plan, Scenario, Timing};
use crowsnest_tests::{VICTORIA_METRICS_BIN, VMAGENT_BIN, require_binary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tiny_round_measures_both_agents() -> Result<()> {
    if require_binary(VICTORIA_METRICS_BIN).is_skip() || require_binary(VMAGENT_BIN).is_skip() {
        return Ok(());
    }
    let plan = Plan {
        binaries: Binaries::with_crowsnest(agent_binary()?),
        scenarios: vec![Scenario {
            targets: 2,
            series: 200,
        }],
        agents: vec![AgentKind::Crowsnest, AgentKind::Vmagent],
        rounds: 1,
        timing: Timing {
            warmup: Duration::from_secs(2),
            window: Duration::from_secs(5),
        },
    };
    let results = plan.run(|_| {}).await?;
    let agents: Vec<AgentKind> = results.iter().map(|r| r.agent).collect();
    ensure!(
        agents == [AgentKind::Crowsnest, AgentKind::Vmagent],
        "{results:#?}"
    );
    for result in &results {
        ensure!(result.cpu_seconds > 0.0, "{result:#?}");
        ensure!(result.peak_rss_bytes > 0, "{result:#?}");
        ensure!(result.window_samples > 0, "{result:#?}");
        ensure!(
            result.served_samples >= result.window_samples,
            "{result:#?}"
        );
        ensure!(
            result.served_samples % 200 == 0,
            "whole bodies only: {result:#?}"
        );
        ensure!(result.delivered_samples > 0, "{result:#?}");
    }
    let crowsnest = &results[0];
    ensure!(crowsnest.clean_exit, "{crowsnest:#?}");
    ensure!(
        crowsnest.delivered_samples == crowsnest.served_samples,
        "crowsnest delivers every sample it scraped: {crowsnest:#?}"
    );
    let summaries = summarize(&results);
    ensure!(summaries.len() == 2, "{summaries:#?}");
    ensure!(summaries[0].cpu_vs_vmagent.is_some());
    let table = markdown(
        &Environment::of_this_machine(Default::default(), 1, 2, 5),
        &summaries,
    );
    ensure!(
        table.contains("| 2x200 | crowsnest |") && table.contains("| 2x200 | vmagent |"),
        "{table}"
    );
    Ok(())
}
