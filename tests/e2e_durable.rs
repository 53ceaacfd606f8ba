//! Durable delivery with the real binary: a backend outage with the agent
//! killed (SIGKILL) and restarted in the middle, against the fault-injecting
//! receiver; and `protobuf_message: auto` against the real Prometheus (1.0
//! only: must fall back) and VictoriaMetrics.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use crowsnest_tests::wait::poll;
use crowsnest_tests::{
    Agent, Exporter, Fault, FaultReceiver, PROMETHEUS_BIN, Prometheus, Signal,
    VICTORIA_METRICS_BIN, VictoriaMetrics, require_binary,
};

const SCRAPE_MS: i64 = 500;

fn config(target: &str, urls: &[String], storage: &Path) -> String {
    let remotes: Vec<String> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            format!(
                "  - url: {url}\n    name: r{i}\n    protobuf_message: auto\n    queue_config: {{batch_send_deadline: 100ms, min_backoff: 50ms, max_backoff: 300ms, fsync_interval: 100ms}}\n"
            )
        })
        .collect();
    format!(
        "global:\n  scrape_interval: {SCRAPE_MS}ms\n  scrape_timeout: {SCRAPE_MS}ms\nstorage:\n  path: {}\nlogging: {{level: info, format: text}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{target}\"]}}]\nremote_write:\n{}",
        storage.display(),
        remotes.concat()
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn status(agent: &Agent) -> Result<serde_json::Value> {
    let r = agent.get("/api/v1/status").await?;
    serde_json::from_slice(&r.body).context("status JSON")
}

#[tokio::test]
async fn sigkill_during_an_outage_loses_and_repeats_nothing() -> Result<()> {
    let exporter = Exporter::start().await?;
    exporter.serve_text("# TYPE durable_counter counter\ndurable_counter 1\n");
    let rx = FaultReceiver::start(Fault::Status(503, None)).await?;
    let storage = tempfile::tempdir()?;
    let yaml = config(&exporter.target(), &[rx.url()], storage.path());

    let mut first = Agent::start(&yaml).await?;
    let started_ms = now_ms();
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.instance().process().signal(Signal::KILL)?;
    let killed_ms = now_ms();
    let _ = first.instance().process().stop(Duration::from_secs(5));
    drop(first);

    let second = Agent::start(&yaml).await?;
    let restarted_ms = now_ms();
    tokio::time::sleep(Duration::from_secs(2)).await;
    rx.set(Fault::None);
    let series = "durable_counter{instance=\"".to_owned() + &exporter.target() + "\",job=\"app\"}";
    let got = poll(
        "backlog delivered",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let st = status(&second).await?;
            let pending = st["remote_write"][0]["queue_length"].as_u64();
            let ts = rx.accepted().get(&series).cloned().unwrap_or_default();
            Ok(
                (pending == Some(0) && ts.last().is_some_and(|t| *t > restarted_ms + 1000))
                    .then_some(ts),
            )
        },
    )
    .await?;
    ensure!(rx.errors().is_empty(), "receiver errors: {:?}", rx.errors());
    let (requests, v2) = rx.requests();
    ensure!(
        v2 == requests,
        "auto stays on 2.0 with a 2.0 receiver ({v2}/{requests})"
    );
    // Arrival order is timestamp order and nothing came twice.
    ensure!(
        got.windows(2).all(|w| w[0] < w[1]),
        "order/duplicates: {got:?}"
    );
    let before: Vec<i64> = got.iter().copied().filter(|t| *t < killed_ms).collect();
    ensure!(
        before
            .first()
            .is_some_and(|t| *t <= started_ms + 2 * SCRAPE_MS),
        "first scrape before the kill delivered: {before:?} (started {started_ms})"
    );
    // Every scrape up to the kill is there (fsync interval 100 ms; a SIGKILL
    // loses nothing written): no gap, and the last one close to the kill.
    ensure!(
        before.windows(2).all(|w| w[1] - w[0] <= SCRAPE_MS * 3 / 2),
        "gap before the kill: {before:?}"
    );
    ensure!(
        before
            .last()
            .is_some_and(|t| *t >= killed_ms - 2 * SCRAPE_MS),
        "samples just before the kill lost: last {:?}, killed at {killed_ms}",
        before.last()
    );
    let st = status(&second).await?;
    let dropped = &st["remote_write"][0]["samples_dropped"];
    for reason in ["disk_full", "corrupt", "io_error", "shutdown", "rejected"] {
        ensure!(dropped[reason].as_u64() == Some(0), "{reason}: {dropped}");
    }
    ensure!(
        st["remote_write"][0]["samples_recovered"].as_u64() > Some(0),
        "{st}"
    );
    Ok(())
}

#[tokio::test]
async fn auto_falls_back_for_prometheus_and_delivers_to_both_backends() -> Result<()> {
    for bin in [PROMETHEUS_BIN, VICTORIA_METRICS_BIN] {
        if require_binary(bin).is_skip() {
            return Ok(());
        }
    }
    let exporter = Exporter::start().await?;
    exporter.serve_text("# TYPE auto_gauge gauge\nauto_gauge 42\n");
    let prom = Prometheus::start().await?;
    let vm = VictoriaMetrics::start().await?;
    let storage = tempfile::tempdir()?;
    let agent = Agent::start(&config(
        &exporter.target(),
        &[prom.remote_write_url(), vm.remote_write_url()],
        storage.path(),
    ))
    .await?;
    poll(
        "samples in both",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || async {
            let p = prom.api().query("count_over_time(auto_gauge[5m])").await?;
            let v = vm.export("auto_gauge").await?;
            Ok(
                (p.iter().any(|s| s.1 >= 4.0) && v.iter().any(|s| s.timestamps.len() >= 4))
                    .then_some(()),
            )
        },
    )
    .await?;
    let st = status(&agent).await?;
    let prom_status = &st["remote_write"][0];
    ensure!(
        prom_status["protocol"]
            .as_str()
            .is_some_and(|p| p.contains("1.0")),
        "Prometheus 2.x speaks 1.0 only: {prom_status}"
    );
    for e in st["remote_write"].as_array().into_iter().flatten() {
        let dropped: u64 = e["samples_dropped"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(_, v)| v.as_u64())
            .sum();
        ensure!(dropped == 0, "{e}");
    }
    // VictoriaMetrics stores every scrape once: exact timestamps, no repeats.
    for s in vm.export("auto_gauge").await? {
        ensure!(
            s.timestamps.windows(2).all(|w| w[0] < w[1]),
            "{:?}",
            s.timestamps
        );
    }
    Ok(())
}
