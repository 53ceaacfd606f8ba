//! `scrape_configs:`: Prometheus scrape jobs with static targets.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;

use super::bytesize::ByteSize;
use super::duration::PromDuration;
use super::error::{ConfigError, field};
use super::flag::Flag;
use super::global::{build_labels, check_timeout, nonzero};
use super::http_client::{RawAuthorization, RawBasicAuth, RawHttp, RawTls};
use super::kubernetes::RawKubernetesSd;
use super::types::{Global, Scheme, ScrapeConfig, Secret, StaticConfig};
use super::unique_map::UniqueMap;
use crate::relabel::{RelabelConfig, Rules};

/// One `scrape_configs:` entry as written. Of the service discovery
/// sections only `kubernetes_sd_configs` (role `pod`, this node) exists;
/// others are refused like any unknown key.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a scrape config (a map with job_name)"
)]
pub(super) struct RawScrapeConfig {
    /// Name of the job, the default `job` label; required and unique.
    job_name: Option<String>,
    /// Interval between scrapes (default `global.scrape_interval`).
    scrape_interval: Option<PromDuration>,
    /// Timeout of one scrape (default `global.scrape_timeout`, at most the interval).
    scrape_timeout: Option<PromDuration>,
    /// HTTP path of the metrics (default `/metrics`).
    metrics_path: Option<String>,
    /// `http` (default) or `https`.
    scheme: Option<String>,
    /// URL query parameters: name -> values.
    params: Option<UniqueMap<Vec<String>>>,
    /// Fixed targets with labels.
    static_configs: Option<Vec<RawStaticConfig>>,
    /// Pods of this node as targets (`role: pod`).
    kubernetes_sd_configs: Option<Vec<RawKubernetesSd>>,
    /// Keep the target's labels when they clash with target labels (default false).
    honor_labels: Option<Flag>,
    /// Use the timestamps in the exposition (default true).
    honor_timestamps: Option<Flag>,
    /// TLS settings of the scrape requests.
    tls_config: Option<RawTls>,
    /// `Authorization` header settings.
    authorization: Option<RawAuthorization>,
    /// HTTP basic authentication.
    basic_auth: Option<RawBasicAuth>,
    /// Legacy inline bearer token.
    bearer_token: Option<Secret>,
    /// Legacy bearer token file.
    bearer_token_file: Option<PathBuf>,
    /// Maximum samples per scrape after metric relabeling (default 0: none).
    sample_limit: Option<u64>,
    /// Maximum labels per series (default 0: none).
    label_limit: Option<u64>,
    /// Maximum uncompressed body size, e.g. `10MB` (default 0: none).
    body_size_limit: Option<ByteSize>,
    /// Target relabeling.
    relabel_configs: Option<Vec<RelabelConfig>>,
    /// Series relabeling after each scrape.
    metric_relabel_configs: Option<Vec<RelabelConfig>>,
}

/// One `static_configs:` entry as written.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a static config (a map with targets and labels)"
)]
pub(super) struct RawStaticConfig {
    /// `host:port` addresses.
    targets: Option<Vec<String>>,
    /// Labels for every target of the group.
    labels: Option<UniqueMap<String>>,
}

/// The job of the agent's own metrics, scraped in-process.
pub const SELF_JOB: &str = "crowsnest";

/// Validates every scrape config; job names must be unique.
pub(super) fn build_all(
    raw: Vec<RawScrapeConfig>,
    global: &Global,
) -> Result<Vec<ScrapeConfig>, ConfigError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let path = format!("scrape_configs[{i}]");
        let config = r.build(&path, global)?;
        if config.job_name == SELF_JOB {
            return Err(ConfigError::invalid(
                field(&path, "job_name"),
                format!(
                    "({SELF_JOB:?}) is reserved for the agent's own metrics, which it scrapes in-process"
                ),
                "remove this job (the agent already sends its own metrics) or give it another name",
            ));
        }
        if !seen.insert(config.job_name.clone()) {
            return Err(ConfigError::invalid(
                field(&path, "job_name"),
                format!(
                    "({:?}) is already used by another scrape config",
                    config.job_name
                ),
                "give every scrape config a unique job_name",
            ));
        }
        out.push(config);
    }
    Ok(out)
}

impl RawScrapeConfig {
    fn build(self, path: &str, global: &Global) -> Result<ScrapeConfig, ConfigError> {
        let job_name = self.job_name.filter(|j| !j.is_empty()).ok_or_else(|| {
            ConfigError::invalid(
                field(path, "job_name"),
                "is missing",
                "give every scrape config a unique job_name",
            )
        })?;
        let scrape_interval = nonzero(self.scrape_interval).unwrap_or(global.scrape_interval);
        // Prometheus: an unset timeout is the global one, capped at this job's interval.
        let scrape_timeout =
            nonzero(self.scrape_timeout).unwrap_or(global.scrape_timeout.min(scrape_interval));
        check_timeout(path, scrape_timeout, scrape_interval)?;
        let scheme = match self.scheme.as_deref() {
            None | Some("" | "http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => {
                return Err(ConfigError::invalid(
                    field(path, "scheme"),
                    format!("({other:?}) is not a scrape scheme"),
                    "use http or https",
                ));
            }
        };
        let params = self
            .params
            .unwrap_or_default()
            .0
            .into_iter()
            .flat_map(|(name, values)| values.into_iter().map(move |v| (name.clone(), v)))
            .collect();
        let static_configs = self
            .static_configs
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.build(&format!("{path}.static_configs[{i}]")))
            .collect::<Result<_, _>>()?;
        let kubernetes_sd_configs = self
            .kubernetes_sd_configs
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, k)| k.build(&format!("{path}.kubernetes_sd_configs[{i}]")))
            .collect::<Result<_, _>>()?;
        let http = RawHttp {
            tls_config: self.tls_config,
            authorization: self.authorization,
            basic_auth: self.basic_auth,
            bearer_token: self.bearer_token,
            bearer_token_file: self.bearer_token_file,
        }
        .build(path)?;
        Ok(ScrapeConfig {
            job_name,
            scrape_interval,
            scrape_timeout,
            metrics_path: metrics_path(self.metrics_path),
            scheme,
            params,
            static_configs,
            kubernetes_sd_configs,
            honor_labels: self.honor_labels.is_some_and(|f| f.0),
            honor_timestamps: self.honor_timestamps.is_none_or(|f| f.0),
            http,
            sample_limit: limit(self.sample_limit, &field(path, "sample_limit"))?,
            label_limit: limit(self.label_limit, &field(path, "label_limit"))?,
            body_size_limit: self.body_size_limit.map_or(0, |b| b.0),
            relabel_configs: compile(self.relabel_configs, &field(path, "relabel_configs"))?,
            metric_relabel_configs: compile(
                self.metric_relabel_configs,
                &field(path, "metric_relabel_configs"),
            )?,
        })
    }
}

impl RawStaticConfig {
    fn build(self, path: &str) -> Result<StaticConfig, ConfigError> {
        let targets = self.targets.unwrap_or_default();
        for (i, t) in targets.iter().enumerate() {
            check_target(t, &format!("{path}.targets[{i}]"))?;
        }
        let labels = build_labels(
            self.labels.unwrap_or_default().0,
            &field(path, "labels"),
            false,
        )?;
        Ok(StaticConfig { targets, labels })
    }
}

/// Unset or empty means `/metrics`; a path without the leading slash gets
/// one, which is what Prometheus' URL building ends up requesting.
fn metrics_path(raw: Option<String>) -> String {
    match raw {
        None => "/metrics".to_owned(),
        Some(p) if p.is_empty() => "/metrics".to_owned(),
        Some(p) if p.starts_with('/') => p,
        Some(p) => format!("/{p}"),
    }
}

fn limit(raw: Option<u64>, path: &str) -> Result<usize, ConfigError> {
    usize::try_from(raw.unwrap_or(0)).map_err(|_| {
        ConfigError::invalid(
            path,
            "is larger than this platform can count",
            "use a smaller limit, or 0 for none",
        )
    })
}

/// Compiles a rule list once; an absent list is no rules.
pub(super) fn compile(raw: Option<Vec<RelabelConfig>>, path: &str) -> Result<Rules, ConfigError> {
    Rules::compile(&raw.unwrap_or_default()).map_err(|source| ConfigError::Relabel {
        path: path.to_owned(),
        source,
    })
}

/// A target is an authority: `host`, `host:port` or `[v6]:port`, no scheme,
/// path or credentials (Prometheus 3 keeps a missing port as is and lets the
/// scheme decide).
fn check_target(target: &str, path: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        ConfigError::invalid(
            path,
            format!("({target:?}) {why}"),
            "write targets as host:port, e.g. localhost:9100 or [::1]:9100; set scheme and metrics_path separately",
        )
    };
    if target.contains("://") {
        return Err(bad("has a scheme"));
    }
    if target.contains(['/', '?', '#', '@']) || target.chars().any(char::is_whitespace) {
        return Err(bad("is not a host:port address"));
    }
    let url = url::Url::parse(&format!("http://{target}/"))
        .map_err(|e| bad(&format!("is not a host:port address ({e})")))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    // The url crate drops an explicit default port (":80"), so check the text.
    let port = target
        .rsplit_once(':')
        .filter(|_| !target.ends_with(']'))
        .map(|(_, p)| p);
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(bad("has an invalid port"));
    }
    Ok(())
}
