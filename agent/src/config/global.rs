//! `global:`: scrape defaults and external labels, plus the label-set rules
//! shared with `static_configs`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::duration::{PromDuration, format_duration};
use super::error::{ConfigError, field};
use super::types::Global;
use super::unique_map::UniqueMap;
use crate::model::Labels;

/// Prometheus' default scrape interval.
const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
/// Prometheus' default scrape timeout.
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// `global:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the global section (a map)")]
pub(super) struct RawGlobal {
    /// Default interval between scrapes of a target (default 1m).
    pub(super) scrape_interval: Option<PromDuration>,
    /// Default timeout of one scrape (default 10s, at most the interval).
    pub(super) scrape_timeout: Option<PromDuration>,
    /// Accepted and checked so Prometheus configs load unchanged; crowsnest
    /// evaluates no rules, so it has no effect.
    pub(super) evaluation_interval: Option<PromDuration>,
    /// Labels added to every series sent by remote write.
    pub(super) external_labels: Option<UniqueMap<String>>,
}

impl RawGlobal {
    /// Overrides the fields set in `over` (the environment layer).
    pub(super) fn overlay(&mut self, over: RawGlobal) {
        self.scrape_interval = over.scrape_interval.or(self.scrape_interval);
        self.scrape_timeout = over.scrape_timeout.or(self.scrape_timeout);
        self.evaluation_interval = over.evaluation_interval.or(self.evaluation_interval);
        if let Some(labels) = over.external_labels {
            self.external_labels
                .get_or_insert_default()
                .0
                .extend(labels.0);
        }
    }

    /// Validates into [`Global`], applying Prometheus' defaults: an unset or
    /// zero value means "default", exactly as in Prometheus.
    pub(super) fn build(self) -> Result<Global, ConfigError> {
        let scrape_interval = nonzero(self.scrape_interval).unwrap_or(DEFAULT_SCRAPE_INTERVAL);
        let scrape_timeout =
            nonzero(self.scrape_timeout).unwrap_or(DEFAULT_SCRAPE_TIMEOUT.min(scrape_interval));
        check_timeout("global", scrape_timeout, scrape_interval)?;
        let external_labels = build_labels(
            self.external_labels.unwrap_or_default().0,
            "global.external_labels",
            true,
        )?;
        Ok(Global {
            scrape_interval,
            scrape_timeout,
            external_labels,
        })
    }
}

/// A duration that was set to something other than zero.
pub(super) fn nonzero(d: Option<PromDuration>) -> Option<Duration> {
    d.map(|d| d.0).filter(|d| !d.is_zero())
}

/// Prometheus refuses a scrape timeout longer than the interval.
pub(super) fn check_timeout(
    parent: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<(), ConfigError> {
    if timeout > interval {
        return Err(ConfigError::invalid(
            field(parent, "scrape_timeout"),
            format!(
                "({}) is longer than scrape_interval ({})",
                format_duration(timeout),
                format_duration(interval)
            ),
            "lower scrape_timeout or raise scrape_interval",
        ));
    }
    Ok(())
}

/// Checks a `name: value` map and turns it into [`Labels`]. Names follow the
/// classic Prometheus charset, which every remote-write receiver accepts.
/// External labels must have values and may not use the reserved `__` prefix;
/// target labels may (e.g. `__metrics_path__`), and an empty value there
/// means "unset", as in Prometheus.
pub(super) fn build_labels(
    map: BTreeMap<String, String>,
    path: &str,
    external: bool,
) -> Result<Labels, ConfigError> {
    for (name, value) in &map {
        if !is_label_name(name) {
            return Err(ConfigError::invalid(
                path,
                format!("has an invalid label name {name:?}"),
                "use letters, digits and underscores, not starting with a digit",
            ));
        }
        if external && name.starts_with("__") {
            return Err(ConfigError::invalid(
                field(path, name),
                "uses the reserved prefix __",
                "rename the label: names starting with __ are internal to Prometheus",
            ));
        }
        if external && value.is_empty() {
            return Err(ConfigError::invalid(
                field(path, name),
                "has an empty value",
                "give the label a value or remove it",
            ));
        }
    }
    Ok(Labels::from_pairs(map))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(super) fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
