//! `cargo xtask bench compare`: crowsnest against vmagent and Prometheus' agent mode on the
//! same synthetic targets, remote-writing to VictoriaMetrics, measured from /proc.
//!
//! One job per file: [`body`] renders the control-plane-shaped exposition, [`synth`] serves
//! it on many ports and counts what it served, [`agents`] holds one adapter per agent,
//! [`measure`] reads CPU time and peak RSS, [`run`] drives one agent through one scenario,
//! and [`report`] turns rounds of runs into a table.

pub mod agents;
pub mod body;
pub mod measure;
pub mod report;
pub mod run;
pub mod synth;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub use agents::{AgentKind, Binaries};
pub use run::{RunResult, run_once};

/// How many targets, each exposing how many series; all scraped every second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Scrape targets (ports of the synthetic exporter).
    pub targets: usize,
    /// Series per target.
    pub series: usize,
}

impl Scenario {
    /// The scenarios: many small targets (200k samples/s) and fewer big ones (100k).
    pub const PRESETS: [Self; 2] = [
        Self {
            targets: 100,
            series: 2_000,
        },
        Self {
            targets: 20,
            series: 5_000,
        },
    ];

    /// `all`, or a comma-separated list of `TARGETSxSERIES`.
    ///
    /// # Errors
    /// On a malformed entry or an empty list.
    pub fn parse_list(text: &str) -> Result<Vec<Self>> {
        if text.trim() == "all" {
            return Ok(Self::PRESETS.to_vec());
        }
        let scenarios = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Self>>>()?;
        if scenarios.is_empty() {
            bail!("no scenario given");
        }
        Ok(scenarios)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.targets, self.series)
    }
}

impl FromStr for Scenario {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let parse = || -> Option<Self> {
            let (targets, series) = text.split_once('x')?;
            Some(Self {
                targets: targets.parse().ok()?,
                series: series.parse().ok()?,
            })
        };
        match parse() {
            Some(scenario) if scenario.targets > 0 && scenario.series > 0 => Ok(scenario),
            _ => Err(anyhow::anyhow!(
                "scenario {text:?}: expected TARGETSxSERIES such as 20x5000, or all"
            )),
        }
    }
}

/// How long each run warms up and then measures.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From the agent being ready to the start of the window.
    pub warmup: Duration,
    /// The measurement window.
    pub window: Duration,
}

/// Everything a comparison runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Agent binaries.
    pub binaries: Binaries,
    /// Scenarios, run one after the other.
    pub scenarios: Vec<Scenario>,
    /// Agents, rotated each round so none always runs first.
    pub agents: Vec<AgentKind>,
    /// Rounds per scenario.
    pub rounds: usize,
    /// Warm-up and window of each run.
    pub timing: Timing,
}

impl Plan {
    /// The agents in the order they run in `round` (from 1): the list rotated by one more
    /// place each round.
    pub fn order(&self, round: usize) -> Vec<AgentKind> {
        let mut order = self.agents.clone();
        if !order.is_empty() {
            let shift = (round.saturating_sub(1)) % order.len();
            order.rotate_left(shift);
        }
        order
    }

    /// Runs every scenario for every round and agent, handing each result to `each` as it
    /// arrives (so a long run shows progress), and returns them all.
    ///
    /// # Errors
    /// The first failed run, named by scenario, round and agent.
    pub async fn run(&self, mut each: impl FnMut(&RunResult)) -> Result<Vec<RunResult>> {
        let mut results = Vec::new();
        for scenario in &self.scenarios {
            for round in 1..=self.rounds {
                for agent in self.order(round) {
                    let result = run_once(&self.binaries, agent, *scenario, self.timing, round)
                        .await
                        .with_context(|| format!("scenario {scenario}, round {round}, {agent}"))?;
                    each(&result);
                    results.push(result);
                }
            }
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn scenarios_parse_from_flags() {
        assert_eq!(Scenario::parse_list("all").expect("all"), Scenario::PRESETS);
        assert_eq!(
            Scenario::parse_list("2x200, 20x5000").expect("list"),
            [
                Scenario {
                    targets: 2,
                    series: 200
                },
                Scenario {
                    targets: 20,
                    series: 5_000
                }
            ]
        );
        for bad in ["", "20", "20x", "x5", "0x5", "2x0", "ax5"] {
            assert!(Scenario::parse_list(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Scenario::PRESETS[0].to_string(), "100x2000");
    }

    #[test]
    fn rounds_rotate_the_agent_order() {
        let plan = Plan {
            binaries: Binaries::with_crowsnest(PathBuf::from("/x")),
            scenarios: vec![],
            agents: AgentKind::ALL.to_vec(),
            rounds: 3,
            timing: Timing {
                warmup: Duration::ZERO,
                window: Duration::ZERO,
            },
        };
        use AgentKind::{Crowsnest, Prometheus, Vmagent};
        assert_eq!(plan.order(1), [Crowsnest, Vmagent, Prometheus]);
        assert_eq!(plan.order(2), [Vmagent, Prometheus, Crowsnest]);
        assert_eq!(plan.order(3), [Prometheus, Crowsnest, Vmagent]);
        assert_eq!(plan.order(4), plan.order(1));
    }
}
