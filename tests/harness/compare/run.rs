//! One run: one agent on one scenario against a fresh VictoriaMetrics and fresh targets,
//! warmed up, measured over a window, stopped, then its delivery counted in the backend.

use std::time::{Duration, Instant};

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
/// How long the backend's sample count may take to settle after the agent stopped.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Time between two reads of the backend's count.
const SETTLE_INTERVAL: Duration = Duration::from_millis(500);

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
    /// Samples the targets served to the agent over the whole run.
    pub served_samples: u64,
    /// Samples of the synthetic families in the backend after the agent stopped.
    pub delivered_samples: u64,
    /// `delivered_samples / served_samples`.
    pub delivery_ratio: f64,
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

    let clean_exit = stop(&mut running)?;
    drop(running);
    let served_samples = exporter.served().samples;
    drop(exporter);
    let lookback = started.elapsed() + Duration::from_secs(60);
    let delivered_samples = delivered(&victoria, lookback).await?;

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
        clean_exit,
    })
}

/// SIGTERM, a bounded wait for the agent's own shutdown (flushing its queue), then SIGKILL.
fn stop(running: &mut RunningAgent) -> Result<bool> {
    let status = running.process().stop(STOP_GRACE)?;
    // A SIGKILLed child has no exit code; an agent that exits by itself has one.
    Ok(status.code().is_some())
}

/// Samples of the synthetic families stored in `victoria` within `lookback`, read until two
/// reads agree (writes acknowledged before the agent stopped may still be landing).
async fn delivered(victoria: &VictoriaMetrics, lookback: Duration) -> Result<u64> {
    // count_over_time counts raw samples and skips staleness markers, which agents add when
    // they stop and which no target served.
    let query = format!(
        "sum(count_over_time({{__name__=~\"{FAMILY_PREFIX}.+\"}}[{}s]))",
        lookback.as_secs()
    );
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut previous = None;
    loop {
        let result = victoria.query(&query).await?;
        // An empty result means nothing arrived.
        let value = result.first().map_or(0.0, |(_, value)| *value);
        if !(value >= 0.0 && value.fract() == 0.0 && value < 9e15) {
            bail!("`{query}` returned {value}");
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked whole, non-negative and small above"
        )]
        let count = value as u64;
        if previous == Some(count) {
            return Ok(count);
        }
        if Instant::now() >= deadline {
            bail!(
                "the backend's count of `{query}` did not settle within {SETTLE_TIMEOUT:?}: last {count}"
            );
        }
        previous = Some(count);
        tokio::time::sleep(SETTLE_INTERVAL).await;
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "sample counts stay far below 2^53"
)]
fn as_f64(count: u64) -> f64 {
    count as f64
}
