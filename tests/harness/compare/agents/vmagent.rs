//! vmagent: a Prometheus-syntax scrape config file and flags; ready when `/health` answers.

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
        "scrape.yaml",
        &json!({ "scrape_configs": scrape_configs(targets) }),
    )?;
    let mut command = Command::new(binary);
    command
        .arg(format!("-promscrape.config={}", config.display()))
        .arg(format!("-remoteWrite.url={remote_write}"))
        .arg(format!(
            "-remoteWrite.tmpDataPath={}",
            dir.join("queue").display()
        ))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg("-loggerLevel=WARN");
    Ok(Launch {
        command,
        ready_path: "/health",
    })
}
