//! Soak (run by `cargo xtask soak`, ignored otherwise): a long backend outage
//! while scraping many series, with the agent SIGKILLed and restarted twice
//! during it, then the drain. Asserts exact per-series delivery (no gap
//! outside the killed spans, no duplicate, timestamp order) and reports the
//! drain time and the agent's RSS while draining.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use crowsnest_tests::wait::poll;
use crowsnest_tests::{Agent, Exporter, Fault, FaultReceiver, Signal};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The budget is raised for the soak: ten minutes at 100k samples/s take
/// about 1 GB on disk (16 bytes per sample plus each segment's series
/// definitions), more than the default 1 GiB, which would (rightly) drop the
/// oldest segments and count them as `disk_full`.
fn config(target: &str, url: &str, storage: &Path) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nstorage:\n  path: {}\nlogging: {{level: info, format: text}}\nscrape_configs:\n  - job_name: soak\n    static_configs: [{{targets: [\"{target}\"]}}]\nremote_write:\n  - url: {url}\n    name: soak\n    queue_config: {{max_shards: 16, min_backoff: 100ms, max_backoff: 1s, disk_budget: 4GiB}}\n",
        storage.display()
    )
}

async fn pending(agent: &Agent) -> Result<u64> {
    let r = agent.get("/api/v1/status").await?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).context("status")?;
    v["remote_write"][0]["queue_length"]
        .as_u64()
        .context("queue_length")
}

// Multi-threaded: dropping the agent waits for it synchronously, and the
// in-process receiver must keep answering its last requests meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: run with cargo xtask soak"]
async fn outage_with_sigkills_then_drain() -> Result<()> {
    let outage = Duration::from_secs(env_u64("CROWSNEST_SOAK_OUTAGE_SECS", 60));
    let series = env_u64("CROWSNEST_SOAK_SERIES", 1000);
    let exporter = Exporter::start().await?;
    let body: String = (0..series)
        .map(|i| format!("soak_series{{i=\"{i}\"}} {i}\n"))
        .collect();
    exporter.serve_text(format!("# TYPE soak_series gauge\n{body}"));
    let rx = FaultReceiver::start(Fault::Status(503, None)).await?;
    let storage = tempfile::tempdir()?;
    let yaml = config(&exporter.target(), &rx.url(), storage.path());

    let mut agent = Agent::start(&yaml).await?;
    let mut killed: Vec<(i64, i64)> = Vec::new();
    let third = outage / 3;
    for _ in 0..2 {
        tokio::time::sleep(third).await;
        agent.instance().process().signal(Signal::KILL)?;
        let at = now_ms();
        let _ = agent.instance().process().stop(Duration::from_secs(5));
        agent = Agent::start(&yaml).await?;
        killed.push((at, now_ms()));
        eprintln!("soak: killed and restarted (down {} ms)", now_ms() - at);
    }
    tokio::time::sleep(third).await;
    let backlog = pending(&agent).await?;
    let pid = agent.instance().process().pid();
    eprintln!(
        "soak: outage over; backlog {backlog} samples, RSS {} KiB",
        rss_kib(pid)
    );
    let drain_started = Instant::now();
    rx.set(Fault::None);
    let mut max_rss = 0;
    let drain_limit = outage.max(Duration::from_secs(60));
    poll(
        "backlog drained",
        drain_limit,
        Duration::from_millis(200),
        || {
            max_rss = max_rss.max(rss_kib(pid));
            async { Ok((pending(&agent).await? < series * 2).then_some(())) }
        },
    )
    .await?;
    let drain = drain_started.elapsed();
    let rate = backlog as f64 / drain.as_secs_f64();
    eprintln!(
        "soak: drained {backlog} samples in {:.1}s = {rate:.0} samples/s ({:.1}x the {series}/s ingest); max RSS while draining {max_rss} KiB",
        drain.as_secs_f64(),
        rate / series as f64
    );
    // Let the last scrapes through, then stop collecting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut accepted = rx.accepted();
    let others: Vec<String> = accepted
        .keys()
        .filter(|k| !k.starts_with("soak_series{"))
        .cloned()
        .collect();
    eprintln!("soak: other series delivered: {others:?}");
    accepted.retain(|k, _| k.starts_with("soak_series{"));
    ensure!(
        accepted.len() as u64 == series,
        "series delivered: {}",
        accepted.len()
    );
    let first_restart = killed.first().map_or(0, |k| k.1);
    for (key, ts) in &accepted {
        ensure!(
            ts.windows(2).all(|w| w[0] < w[1]),
            "{key}: order or duplicate"
        );
        for w in ts.windows(2) {
            let gap_ok = w[1] - w[0] <= 1600
                || killed
                    .iter()
                    .any(|(k, r)| w[0] <= *k + 100 && w[1] >= *r - 100);
            ensure!(gap_ok, "{key}: samples lost between {} and {}", w[0], w[1]);
        }
        ensure!(
            ts.first().is_some_and(|t| *t < first_restart),
            "{key}: first run's samples missing"
        );
    }
    if !cfg!(debug_assertions) {
        ensure!(
            rate >= 5.0 * series as f64,
            "drain {rate:.0}/s is below 5x ingest"
        );
    }
    Ok(())
}
