//! One run: one agent on one scenario against a fresh VictoriaMetrics and fresh targets,
//! warmed up, measured over a window, stopped, then its delivery counted in the backend.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::agents::{self, AgentKind, Binaries, RunningAgent};
use super::body::FAMILY_PREFIX;
use super::measure::{cpu_time, peak_rss_bytes};
use super::synth::SyntheticExporter;
use super::{Scenario, Timing};
use crate::victoria::VictoriaMetrics;

/// How long an agent gets to flush and exit after SIGTERM before it is killed (its
/// undelivered samples then count against its delivery ratio).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The measurements of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The scenario's name (`20x5000`).
    pub scenario: String,
    /// Which agent ran.
    pub agent: AgentKind,
    /// Round number, from 1.
    pub round: usize,
    /// Length of the measurement window actually elapsed, in seconds.
    pub window_secs: f64,
    /// CPU seconds (user + system) the agent used in the window.
    pub cpu_seconds: f64,
    /// Samples the targets served to the agent in the window.
    pub window_samples: u64,
    /// `cpu_seconds` per million `window_samples`.
    pub cpu_per_million: f64,
    /// The agent's peak resident set (VmHWM) just before it was stopped, in bytes.
    pub peak_rss_bytes: u64,
    /// Samples the targets served to the agent over the whole run (until they paused).
    pub served_samples: u64,
    /// Samples of the synthetic families in the backend after the agent drained and stopped.
    pub delivered_samples: u64,
    /// `delivered_samples / served_samples`.
    pub delivery_ratio: f64,
    /// Scrapes the agent itself reported failed (`up` = 0) before the targets paused: a
    /// delivery ratio below 1 that these explain is scrapes that timed out, not samples lost.
    pub failed_scrapes: u64,
    /// Whether the agent exited on its own after SIGTERM (false: it was killed).
    pub clean_exit: bool,
}

/// Runs `agent` on `scenario` once. Every process it starts is stopped before it returns,
/// also on error.
///
/// # Errors
/// When a process cannot start, the agent exits early, or the backend cannot be queried.
pub async fn run_once(
    binaries: &Binaries,
    agent: AgentKind,
    scenario: Scenario,
    timing: Timing,
    round: usize,
) -> Result<RunResult> {
    let series_total = scenario.targets * scenario.series;
    // 1.79 refuses queries over more than 300k series by default.
    let limit = format!(
        "-search.maxUniqueTimeseries={}",
        (series_total * 2).max(300_000)
    );
    let victoria = VictoriaMetrics::start_with_args(&[limit]).await?;
    let exporter = SyntheticExporter::start(scenario.targets, scenario.series).await?;
    let started = Instant::now();
    let mut running = agents::start(
        agent,
        binaries,
        &exporter.targets(),
        &victoria.remote_write_url(),
    )
    .await
    .with_context(|| format!("start {agent}"))?;
    let pid = running.process().pid();

    tokio::time::sleep(timing.warmup).await;
    running.process().ensure_running()?;
    let (cpu_before, served_before, window_start) =
        (cpu_time(pid)?, exporter.served(), Instant::now());
    tokio::time::sleep(timing.window).await;
    running.process().ensure_running()?;
    let (cpu_after, served_after, window) =
        (cpu_time(pid)?, exporter.served(), window_start.elapsed());
    let peak_rss_bytes = peak_rss_bytes(pid)?;

    // Stop serving first and let the agent send what it holds: the ratio should show
    // samples lost, not the backlog an agent happened to have at the moment it was stopped.
    let paused_at = SystemTime::now();
    let served_samples = exporter.pause().await.samples;
    // Generous: the run so far, the drain and the final settling all fall inside it.
    let query = count_query(started.elapsed() + Duration::from_secs(600));
    let drained = settle(&victoria, &query, served_samples, DRAIN).await?;
    let clean_exit = stop(&mut running)?;
    drop(running);
    drop(exporter);
    let delivered_samples = settle(&victoria, &query, served_samples, AFTER_STOP).await?;
    if delivered_samples != drained {
        eprintln!(
            "{agent}: {} samples arrived during its shutdown",
            delivered_samples.saturating_sub(drained)
        );
    }

    let failed_scrapes = failed_scrapes(&victoria, started.elapsed(), paused_at).await?;

    let cpu_seconds = (cpu_after - cpu_before).as_secs_f64();
    let window_samples = served_after.since(served_before).samples;
    if window_samples == 0 {
        bail!("{agent} scraped nothing in the {window:?} window");
    }
    Ok(RunResult {
        scenario: scenario.to_string(),
        agent,
        round,
        window_secs: window.as_secs_f64(),
        cpu_seconds,
        window_samples,
        cpu_per_million: cpu_seconds / as_f64(window_samples) * 1e6,
        peak_rss_bytes,
        served_samples,
        delivered_samples,
        delivery_ratio: as_f64(delivered_samples) / as_f64(served_samples),
        failed_scrapes,
        clean_exit,
    })
}

/// SIGTERM, a bounded wait for the agent's own shutdown (flushing its queue), then SIGKILL.
fn stop(running: &mut RunningAgent) -> Result<bool> {
    let status = running.process().stop(STOP_GRACE)?;
    // A SIGKILLed child has no exit code; an agent that exits by itself has one.
    Ok(status.code().is_some())
}

/// The PromQL that counts samples of the synthetic families within `lookback`.
/// count_over_time counts raw samples and skips staleness markers, which agents write when
/// targets stop answering or they shut down, and which no target served.
fn count_query(lookback: Duration) -> String {
    format!(
        "sum(count_over_time({{__name__=~\"{FAMILY_PREFIX}.+\"}}[{}s]))",
        lookback.as_secs()
    )
}

/// How long to wait for the backend's count to reach a target or to stop changing.
#[derive(Debug, Clone, Copy)]
struct Settle {
    /// Give up (and report what arrived) after this long.
    timeout: Duration,
    /// Time between reads.
    interval: Duration,
    /// Reads in a row without change that count as settled.
    unchanged: u32,
}

/// While the agent drains: Prometheus sends a partial batch only after its 5 s
/// `batch_send_deadline`, so no progress for 7 s means nothing more is coming.
const DRAIN: Settle = Settle {
    timeout: Duration::from_secs(60),
    interval: Duration::from_secs(1),
    unchanged: 7,
};

/// After the agent exited: only writes it already made can still become searchable.
const AFTER_STOP: Settle = Settle {
    timeout: Duration::from_secs(20),
    interval: Duration::from_millis(500),
    unchanged: 1,
};

/// Reads the backend's count of `query` until it reaches `served` or settles; running out
/// of time is not an error, the delivery ratio shows what was missing.
async fn settle(
    victoria: &VictoriaMetrics,
    query: &str,
    served: u64,
    settle: Settle,
) -> Result<u64> {
    let deadline = Instant::now() + settle.timeout;
    let mut previous = None;
    let mut unchanged = 0;
    loop {
        let count = count(victoria, query).await?;
        if previous == Some(count) {
            unchanged += 1;
        } else {
            unchanged = 0;
        }
        if count >= served || unchanged >= settle.unchanged || Instant::now() >= deadline {
            return Ok(count);
        }
        previous = Some(count);
        tokio::time::sleep(settle.interval).await;
    }
}

/// Scrapes with `up` = 0 the agent sent for the run until `paused_at` (less a margin:
/// scrapes that overlapped the pause got 503s by design).
async fn failed_scrapes(
    victoria: &VictoriaMetrics,
    run: Duration,
    paused_at: SystemTime,
) -> Result<u64> {
    let until = paused_at - Duration::from_secs(2);
    let window = format!("[{}s]", run.as_secs() + 60);
    let up = format!("up{{job=\"{}\"}}", agents::JOB);
    let query = format!("sum(count_over_time({up}{window})) - sum(sum_over_time({up}{window}))");
    let result = victoria.query_at(&query, until).await?;
    number(&query, result.first().map_or(0.0, |(_, value)| *value))
}

/// The one number `query` returns (none: nothing arrived).
async fn count(victoria: &VictoriaMetrics, query: &str) -> Result<u64> {
    let result = victoria.query(query).await?;
    number(query, result.first().map_or(0.0, |(_, value)| *value))
}

/// `value` as a count: whole and non-negative.
fn number(query: &str, value: f64) -> Result<u64> {
    if !(value >= 0.0 && value.fract() == 0.0 && value < 9e15) {
        bail!("`{query}` returned {value}");
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked whole, non-negative and small above"
    )]
    Ok(value as u64)
}

#[allow(
    clippy::cast_precision_loss,
    reason = "sample counts stay far below 2^53"
)]
fn as_f64(count: u64) -> f64 {
    count as f64
}
