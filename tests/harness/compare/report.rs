//! Rounds of runs turned into one line per scenario and agent: medians with their min–max
//! spread, the worst delivery ratio, and ratios against vmagent; as markdown and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

use super::agents::AgentKind;
use super::run::RunResult;

/// Where and with what the comparison ran.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// UTC date and time, `2026-11-22T10:00:00Z`.
    pub date: String,
    /// `uname -r`.
    pub kernel: String,
    /// The first CPU's model name.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus: usize,
    /// Each agent's version line.
    pub versions: BTreeMap<AgentKind, String>,
    /// Rounds per scenario.
    pub rounds: usize,
    /// Warm-up before each window, seconds.
    pub warmup_secs: u64,
    /// Measurement window, seconds.
    pub window_secs: u64,
}

impl Environment {
    /// Reads the date, kernel and CPU of this machine.
    pub fn of_this_machine(
        versions: BTreeMap<AgentKind, String>,
        rounds: usize,
        warmup_secs: u64,
        window_secs: u64,
    ) -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, name)| name.trim().to_owned());
        Self {
            date: utc_now(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            versions,
            rounds,
            warmup_secs,
            window_secs,
        }
    }
}

/// A median with the smallest and largest value it was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut sorted: Vec<f64> = values.into_iter().collect();
        sorted.sort_by(f64::total_cmp);
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let middle = sorted.len() / 2;
        let median = if sorted.len().is_multiple_of(2) {
            f64::midpoint(sorted[middle - 1], sorted[middle])
        } else {
            sorted[middle]
        };
        Some(Self { median, min, max })
    }
}

/// One scenario and agent over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// The agent.
    pub agent: AgentKind,
    /// Runs summarised.
    pub runs: usize,
    /// CPU seconds per million scraped samples.
    pub cpu_per_million: Spread,
    /// Peak RSS in MiB.
    pub peak_rss_mib: Spread,
    /// The lowest delivery ratio of any round.
    pub delivery_ratio_min: f64,
    /// Median CPU per million divided by vmagent's, when vmagent ran.
    pub cpu_vs_vmagent: Option<f64>,
    /// Median peak RSS divided by vmagent's, when vmagent ran.
    pub rss_vs_vmagent: Option<f64>,
}

/// One summary per scenario and agent, in the order they first appear in `results`.
pub fn summarize(results: &[RunResult]) -> Vec<Summary> {
    let mut keys: Vec<(String, AgentKind)> = Vec::new();
    for result in results {
        let key = (result.scenario.clone(), result.agent);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    // Agents in a fixed order within each scenario, whatever order the rounds ran them in.
    keys.sort_by_key(|(scenario, agent)| {
        let first = results.iter().position(|r| &r.scenario == scenario);
        (first, *agent)
    });
    let spread = |scenario: &str, agent: AgentKind, field: fn(&RunResult) -> f64| {
        Spread::of(
            results
                .iter()
                .filter(|r| r.scenario == scenario && r.agent == agent)
                .map(field),
        )
    };
    let cpu = |r: &RunResult| r.cpu_per_million;
    let rss = |r: &RunResult| mib(r.peak_rss_bytes);
    keys.into_iter()
        .filter_map(|(scenario, agent)| {
            let cpu_per_million = spread(&scenario, agent, cpu)?;
            let peak_rss_mib = spread(&scenario, agent, rss)?;
            let delivery = spread(&scenario, agent, |r| r.delivery_ratio)?;
            let vs = |field: fn(&RunResult) -> f64, ours: f64| {
                spread(&scenario, AgentKind::Vmagent, field)
                    .filter(|theirs| theirs.median > 0.0)
                    .map(|theirs| ours / theirs.median)
            };
            Some(Summary {
                runs: results
                    .iter()
                    .filter(|r| r.scenario == scenario && r.agent == agent)
                    .count(),
                cpu_vs_vmagent: vs(cpu, cpu_per_million.median),
                rss_vs_vmagent: vs(rss, peak_rss_mib.median),
                scenario,
                agent,
                cpu_per_million,
                peak_rss_mib,
                delivery_ratio_min: delivery.min,
            })
        })
        .collect()
}

/// The report as markdown: a header naming the machine and versions, then the table.
pub fn markdown(environment: &Environment, summaries: &[Summary]) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Comparison benchmark, {} — {} ({} CPUs), kernel {}; {} round(s), {} s warm-up, {} s window, scraping every 1 s, remote write to VictoriaMetrics.\n",
        environment.date,
        environment.cpu_model,
        environment.cpus,
        environment.kernel,
        environment.rounds,
        environment.warmup_secs,
        environment.window_secs,
    );
    for (agent, version) in &environment.versions {
        let _ = writeln!(text, "- {agent}: {version}");
    }
    text.push_str(
        "\n| scenario | agent | CPU-s per M samples | peak RSS MiB | delivery (min) | CPU vs vmagent | RSS vs vmagent | runs |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for summary in summaries {
        let ratio =
            |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |v| format!("{v:.2}×"));
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {:.3} | {} | {} | {} |",
            summary.scenario,
            summary.agent,
            spread_cell(summary.cpu_per_million, 2),
            spread_cell(summary.peak_rss_mib, 0),
            summary.delivery_ratio_min,
            ratio(summary.cpu_vs_vmagent),
            ratio(summary.rss_vs_vmagent),
            summary.runs,
        );
    }
    text.push_str(
        "\nCPU: user + system seconds in the window (/proc/PID/stat) per million samples the targets served in it. \
         Peak RSS: VmHWM before stopping. Delivery: samples of the scraped families in VictoriaMetrics after the agent \
         stopped, divided by samples served to it over the whole run (the targets pause and the agent drains first; \
         `failed_scrapes` in the JSON tells timed-out scrapes from lost samples). Median (min–max) over the rounds.\n",
    );
    text
}

/// The report as JSON: environment, summaries and every raw run.
pub fn json(environment: &Environment, summaries: &[Summary], results: &[RunResult]) -> String {
    let value = json!({
        "environment": environment,
        "summaries": summaries,
        "runs": results,
    });
    serde_json::to_string_pretty(&value).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
}

/// `0.72 (0.70–0.81)`, or just the value when every round measured the same.
fn spread_cell(spread: Spread, decimals: usize) -> String {
    let median = format!("{:.decimals$}", spread.median);
    let (min, max) = (
        format!("{:.decimals$}", spread.min),
        format!("{:.decimals$}", spread.max),
    );
    if min == max {
        median
    } else {
        format!("{median} ({min}–{max})")
    }
}

#[allow(clippy::cast_precision_loss, reason = "RSS stays far below 2^53 bytes")]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    utc_timestamp(secs)
}

/// Unix seconds as a UTC timestamp (days to civil date after Howard Hinnant's algorithm).
fn utc_timestamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(scenario: &str, agent: AgentKind, cpu: f64, rss_mib: u64, ratio: f64) -> RunResult {
        RunResult {
            scenario: scenario.to_owned(),
            agent,
            round: 1,
            window_secs: 60.0,
            cpu_seconds: cpu * 6.0,
            window_samples: 6_000_000,
            cpu_per_million: cpu,
            peak_rss_bytes: rss_mib * 1024 * 1024,
            served_samples: 100,
            delivered_samples: 100,
            delivery_ratio: ratio,
            failed_scrapes: 0,
            clean_exit: true,
        }
    }

    #[test]
    fn spreads_take_the_median_and_extremes() {
        let odd = Spread::of([3.0, 1.0, 2.0]).expect("values");
        assert_eq!(
            odd,
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        let even = Spread::of([4.0, 1.0, 2.0, 3.0]).expect("values");
        assert!((even.median - 2.5).abs() < 1e-12);
        assert!(Spread::of([]).is_none());
    }

    #[test]
    fn summaries_compare_each_agent_with_vmagent() {
        use AgentKind::{Crowsnest, Prometheus, Vmagent};
        let results = [
            result("20x5000", Vmagent, 0.8, 120, 1.0),
            result("20x5000", Crowsnest, 0.2, 40, 1.0),
            result("20x5000", Crowsnest, 0.3, 44, 0.99),
            result("20x5000", Vmagent, 0.8, 140, 0.98),
            result("2x10", Prometheus, 1.7, 390, 1.0),
        ];
        let summaries = summarize(&results);
        let keys: Vec<(&str, AgentKind)> = summaries
            .iter()
            .map(|s| (s.scenario.as_str(), s.agent))
            .collect();
        assert_eq!(
            keys,
            [
                ("20x5000", Crowsnest),
                ("20x5000", Vmagent),
                ("2x10", Prometheus)
            ]
        );
        let ours = &summaries[0];
        assert_eq!(ours.runs, 2);
        assert!((ours.cpu_per_million.median - 0.25).abs() < 1e-12);
        assert!((ours.cpu_vs_vmagent.expect("vmagent ran") - 0.3125).abs() < 1e-12);
        assert!((ours.rss_vs_vmagent.expect("vmagent ran") - 42.0 / 130.0).abs() < 1e-12);
        assert!((ours.delivery_ratio_min - 0.99).abs() < 1e-12);
        assert!(
            summaries[2].cpu_vs_vmagent.is_none(),
            "no vmagent in that scenario"
        );

        let environment = Environment::of_this_machine(BTreeMap::new(), 2, 15, 60);
        let table = markdown(&environment, &summaries);
        assert!(table.contains("| 20x5000 | crowsnest | 0.25 (0.20–0.30) | 42 (40–44) | 0.990 | 0.31× | 0.32× | 2 |"), "{table}");
        assert!(
            table.contains("| 2x10 | prometheus | 1.70 | 390 | 1.000 | — | — | 1 |"),
            "{table}"
        );
        let parsed: serde_json::Value =
            serde_json::from_str(&json(&environment, &summaries, &results)).expect("JSON");
        assert_eq!(parsed["runs"].as_array().map(Vec::len), Some(5));
        assert_eq!(parsed["summaries"][0]["agent"], "crowsnest");
    }

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_795_003_661), "2026-11-18T12:07:41Z");
    }
}
