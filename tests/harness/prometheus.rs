//! A real Prometheus server: remote-write receiver, scraper and query API.

use std::ops::{Deref, DerefMut};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

use crate::backend::Backend;
use crate::deps::PROMETHEUS_BIN;
use crate::instance::Instance;
use crate::ports::with_free_port;
use crate::prom_api::PromApi;

/// What the Prometheus under test scrapes; the default scrapes nothing.
#[derive(Debug, Clone)]
pub struct PrometheusConfig {
    /// `global.scrape_interval`.
    pub scrape_interval: Duration,
    /// `(job_name, host:port)` pairs, one static scrape job each.
    pub scrape_targets: Vec<(String, String)>,
    /// `--storage.tsdb.retention.time`.
    pub retention: String,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            scrape_interval: Duration::from_secs(1),
            scrape_targets: Vec::new(),
            retention: "1d".to_owned(),
        }
    }
}

impl PrometheusConfig {
    /// Adds a scrape job `job` for `target` (`host:port`).
    #[must_use]
    pub fn scrape(mut self, job: &str, target: &str) -> Self {
        self.scrape_targets
            .push((job.to_owned(), target.to_owned()));
        self
    }

    /// Sets the global scrape interval.
    #[must_use]
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = interval;
        self
    }

    /// The `prometheus.yml` text (JSON is valid YAML, and serde writes it correctly).
    pub fn to_yaml(&self) -> String {
        let interval = format!("{}ms", self.scrape_interval.as_millis());
        let jobs: Vec<_> = self
            .scrape_targets
            .iter()
            .map(|(job, target)| json!({ "job_name": job, "static_configs": [{ "targets": [target] }] }))
            .collect();
        json!({
            "global": { "scrape_interval": interval, "evaluation_interval": interval },
            "scrape_configs": jobs,
        })
        .to_string()
    }
}

/// A running Prometheus on 127.0.0.1 with its own data directory; stopped on drop.
/// Derefs to [`Backend`] (remote-write URL, process) and through it to [`PromApi`].
#[derive(Debug)]
pub struct Prometheus {
    backend: Backend,
}

impl Prometheus {
    /// Starts Prometheus scraping nothing.
    ///
    /// # Errors
    /// When it cannot start or is not ready within [`READY_TIMEOUT`].
    pub async fn start() -> Result<Self> {
        Self::start_with(&PrometheusConfig::default()).await
    }

    /// Starts Prometheus with `config` and waits for `/-/ready`.
    ///
    /// # Errors
    /// When it cannot start or is not ready within [`READY_TIMEOUT`].
    pub async fn start_with(config: &PrometheusConfig) -> Result<Self> {
        with_free_port(|port| Self::start_on(config, port)).await
    }

    async fn start_on(config: &PrometheusConfig, port: u16) -> Result<Self> {
        let dir = Instance::temp_dir("prometheus")?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config.to_yaml()).context("write prometheus.yml")?;
        let data = dir.path().join("data");
        let mut command = Command::new(PROMETHEUS_BIN);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!(
                "--storage.tsdb.retention.time={}",
                config.retention
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver");
        let api = PromApi::new(&format!("http://127.0.0.1:{port}"));
        let backend = Backend::start("prometheus", dir, &mut command, api, "/-/ready").await?;
        Ok(Self { backend })
    }
}

impl Deref for Prometheus {
    type Target = Backend;

    fn deref(&self) -> &Backend {
        &self.backend
    }
}

impl DerefMut for Prometheus {
    fn deref_mut(&mut self) -> &mut Backend {
        &mut self.backend
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_one_static_job_per_target() {
        let yaml = PrometheusConfig::default()
            .scrape_interval(Duration::from_millis(500))
            .scrape("exporter", "127.0.0.1:9")
            .to_yaml();
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("valid YAML");
        assert_eq!(parsed["global"]["scrape_interval"], "500ms");
        assert_eq!(parsed["scrape_configs"][0]["job_name"], "exporter");
        assert_eq!(
            parsed["scrape_configs"][0]["static_configs"][0]["targets"][0],
            "127.0.0.1:9"
        );
    }
}
