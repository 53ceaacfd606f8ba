//! The status page as a person sees it: headless Chromium loads `/` from a
//! running agent that scrapes a good and a failing target and remote-writes
//! to a real Prometheus; the rendered DOM must show the node, the collectors,
//! the targets and the queue. A screenshot is saved under tests/output/.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use crowsnest_tests::{Agent, Exporter, PROMETHEUS_BIN, Prometheus, require_binary};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium flags for a closed, headless, root sandboxed machine.
fn chromium(user_dir: &std::path::Path) -> Command {
    let mut c = Command::new(CHROMIUM);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ])
    .arg(format!("--user-data-dir={}", user_dir.display()));
    c
}

/// Runs `command` off the test's runtime: the exporters the agent scrapes
/// live on it, and a blocked runtime would time their scrapes out.
async fn output(mut command: Command) -> Result<std::process::Output> {
    Ok(tokio::task::spawn_blocking(move || command.output()).await??)
}

#[tokio::test]
async fn status_page_shows_node_collectors_targets_and_queues() -> Result<()> {
    for bin in [PROMETHEUS_BIN, CHROMIUM] {
        if require_binary(bin).is_skip() {
            return Ok(());
        }
    }
    let good = Exporter::start().await?;
    good.serve_text("# TYPE jobs_total counter\njobs_total 3\n");
    let bad = Exporter::start().await?;
    bad.serve_text("");
    bad.set_status(503);
    let prometheus = Prometheus::start().await?;
    let config = format!(
        r#"global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: app
    static_configs: [{{targets: ["{good}"]}}]
  - job_name: flaky
    static_configs: [{{targets: ["{bad}"]}}]
remote_write:
  - url: {url}
    name: prometheus-test
discovery: {{enabled: false}}
"#,
        good = good.target(),
        bad = bad.target(),
        url = prometheus.remote_write_url()
    );
    let agent = Agent::start(&config).await?;
    // Let both targets be scraped and a batch be sent.
    prometheus
        .wait_for("up{job=\"app\"}", |r| r.len() == 1, Duration::from_secs(30))
        .await?;

    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("output");
    std::fs::create_dir_all(&out_dir)?;
    let user_dir = tempfile::tempdir()?;
    let url = agent.base_url() + "/";
    let mut dump = chromium(user_dir.path());
    dump.arg("--dump-dom").arg(&url);
    let dom = output(dump).await.context("run chromium --dump-dom")?;
    ensure!(
        dom.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);

    let status: serde_json::Value =
        serde_json::from_str(&agent.get("/api/v1/status").await?.text())?;
    let node = status["node"].as_str().context("node in status")?;
    ensure!(
        dom.contains(&format!("crowsnest on {node}")),
        "node missing:\n{dom}"
    );
    for collector in ["cpu", "process", "tcp"] {
        ensure!(
            dom.contains(&format!("<td rowspan=\"4\">{collector}</td>")),
            "collector {collector} missing:\n{dom}"
        );
    }
    ensure!(dom.contains("id=\"collectors\""), "collectors table");
    ensure!(
        dom.contains(&good.target()) && dom.contains(&bad.target()),
        "targets missing:\n{dom}"
    );
    ensure!(
        dom.contains("503"),
        "the failing target's error is shown:\n{dom}"
    );
    ensure!(
        dom.contains("prometheus-test"),
        "the remote-write endpoint is shown:\n{dom}"
    );

    let screenshot = out_dir.join("status_page.png");
    let mut shoot = chromium(user_dir.path());
    shoot
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url);
    let shot = output(shoot).await.context("run chromium --screenshot")?;
    ensure!(
        shot.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    ensure!(
        std::fs::metadata(&screenshot)?.len() > 10_000,
        "screenshot is empty"
    );
    eprintln!("status page screenshot: {}", screenshot.display());
    Ok(())
}
