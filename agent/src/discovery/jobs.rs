//! Discovered targets -> one scrape job per component, and how those jobs
//! meet the user's own `scrape_configs`.

use std::collections::HashSet;

use tracing::info;

use super::Discovered;
use super::components::{Component, curated_regex};
use crate::config::{DiscoveryConfig, Global, MetricSet, ScrapeConfig, StaticConfig};
use crate::model::Labels;
use crate::relabel::{RelabelConfig, RelabelError, Rules};

/// The curated metric set of `component` as a compiled `keep` rule.
///
/// # Errors
/// Only if the table's regexes do not compile (a unit test keeps them valid).
pub fn curated_rules(component: Component) -> Result<Rules, RelabelError> {
    Rules::compile(&[RelabelConfig {
        source_labels: vec!["__name__".to_owned()],
        regex: Some(curated_regex(component)),
        action: Some("keep".to_owned()),
        ..RelabelConfig::default()
    }])
}

/// One job per component (`job` = the component's job name), in table
/// order. Each target carries `node` and, for kubelet, `metrics_path` (the
/// upstream mixins select cAdvisor series by it). A component found at
/// several addresses (etcd main and events under kops) shares one job; its
/// TLS and auth come from the first address.
///
/// # Errors
/// As [`curated_rules`].
pub fn scrape_configs(
    targets: &[Discovered],
    cfg: &DiscoveryConfig,
    global: &Global,
    node: &str,
) -> Result<Vec<ScrapeConfig>, RelabelError> {
    let mut out = Vec::new();
    for component in Component::all() {
        let mine: Vec<&Discovered> = targets
            .iter()
            .filter(|t| t.component() == component)
            .collect();
        let Some(first) = mine.first() else {
            continue;
        };
        let spec = component.spec();
        let mut static_configs = Vec::new();
        for t in &mine {
            for path in spec.paths {
                let mut labels = Labels::from_pairs([
                    ("__scheme__", t.found.scheme.as_str()),
                    ("__metrics_path__", path),
                    ("node", node),
                ]);
                if spec.paths.len() > 1 {
                    labels.set("metrics_path", path);
                }
                static_configs.push(StaticConfig {
                    targets: vec![t.found.address.clone()],
                    labels,
                });
            }
        }
        let metric_relabel_configs = match cfg.component(component).metrics {
            MetricSet::Curated => curated_rules(component)?,
            MetricSet::All => Rules::default(),
        };
        out.push(ScrapeConfig {
            job_name: spec.job.to_owned(),
            scrape_interval: global.scrape_interval,
            scrape_timeout: global.scrape_timeout.min(global.scrape_interval),
            metrics_path: "/metrics".to_owned(),
            scheme: first.found.scheme,
            params: Vec::new(),
            static_configs,
            kubernetes_sd_configs: Vec::new(),
            honor_labels: false,
            honor_timestamps: true,
            http: first.http.clone(),
            sample_limit: 0,
            label_limit: 0,
            body_size_limit: 0,
            relabel_configs: Rules::default(),
            metric_relabel_configs,
        });
    }
    Ok(out)
}

/// The user's jobs plus the discovered ones, the user's taking precedence,
/// because an explicit config is what its author expects to run:
/// - a discovered job whose name a user job already has is left out (the
///   user has configured that component themselves);
/// - a discovered target whose address a user job already scrapes is left
///   out (scraping it twice would duplicate every series under two jobs); a
///   discovered job left without targets is dropped.
///
/// Every omission is logged once per refresh at `info`.
pub fn merge(user: &[ScrapeConfig], discovered: Vec<ScrapeConfig>) -> Vec<ScrapeConfig> {
    let names: HashSet<&str> = user.iter().map(|j| j.job_name.as_str()).collect();
    let addresses: HashSet<&str> = user
        .iter()
        .flat_map(|j| &j.static_configs)
        .flat_map(|s| &s.targets)
        .map(String::as_str)
        .collect();
    let mut out = user.to_vec();
    for mut job in discovered {
        if names.contains(job.job_name.as_str()) {
            info!(job = %job.job_name, "discovered job not added: scrape_configs has a job of that name");
            continue;
        }
        for group in &mut job.static_configs {
            group.targets.retain(|t| {
                let taken = addresses.contains(t.as_str());
                if taken {
                    info!(job = %job.job_name, address = %t, "discovered target not added: a scrape_configs job already scrapes it");
                }
                !taken
            });
        }
        job.static_configs.retain(|g| !g.targets.is_empty());
        if !job.static_configs.is_empty() {
            out.push(job);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
#[path = "jobs_tests.rs"]
mod tests;
