//! Prometheus in agent mode: scrape config plus `remote_write` in one file, the agent WAL
//! in the run's directory; ready when `/-/ready` answers.

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde_json::json;

use super::{Launch, scrape_configs, write_config};

pub(super) fn command(
    binary: &Path,
    dir: &Path,
    port: u16,
    targets: &[String],
    remote_write: &str,
) -> Result<Launch> {
    let config = write_config(
        dir,
        "prometheus.yml",
        &json!({
            "global": { "scrape_interval": "1s", "scrape_timeout": "1s" },
            "scrape_configs": scrape_configs(targets),
            "remote_write": [{ "url": remote_write }],
        }),
    )?;
    let mut command = Command::new(binary);
    command
        .arg("--enable-feature=agent")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.agent.path={}",
            dir.join("wal").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn");
    Ok(Launch {
        command,
        ready_path: "/-/ready",
    })
}
