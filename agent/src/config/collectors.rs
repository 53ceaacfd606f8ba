//! `collectors:` section: which eBPF collectors run, how often their maps are read and how big
//! the kernel maps are.
//!
//! ```yaml
//! collectors:
//!   enabled: [cpu, process, tcp]   # default: all
//!   interval: 15s                  # how often kernel maps are read
//!   max_cgroups: 2048              # entries per per-cgroup map
//!   max_inflight: 16384            # entries of per-task / per-socket LRU maps
//! ```

use std::time::Duration;

use serde::Deserialize;

/// One eBPF collector (the names accepted in `collectors.enabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectorKind {
    /// On-CPU time, context switches, run-queue latency.
    Cpu,
    /// fork/exec/exit counts and OOM kills.
    Process,
    /// Connections, retransmits, bytes, connect latency.
    Tcp,
}

impl CollectorKind {
    /// Every collector, in registration order.
    pub const ALL: [Self; 3] = [Self::Cpu, Self::Process, Self::Tcp];

    /// The name used in config, labels and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Process => "process",
            Self::Tcp => "tcp",
        }
    }
}

/// `collectors:` as written in YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCollectorsConfig {
    /// Collectors to run; all of them when absent. An empty list disables eBPF entirely.
    pub enabled: Option<Vec<CollectorKind>>,
    /// How often kernel maps are read and samples emitted (Prometheus duration, default `15s`).
    pub interval: Option<String>,
    /// Capacity of each per-cgroup map (default 2048: 250 pods with a few containers each plus
    /// the node's system slices). A full map counts drops instead of losing data silently.
    pub max_cgroups: Option<u32>,
    /// Capacity of the per-task and per-socket in-flight maps (LRU; default 16384).
    pub max_inflight: Option<u32>,
}

/// Validated `collectors:` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorsConfig {
    /// Collectors to run, without duplicates.
    pub enabled: Vec<CollectorKind>,
    /// How often kernel maps are read.
    pub interval: Duration,
    /// Capacity of each per-cgroup map.
    pub max_cgroups: u32,
    /// Capacity of the per-task / per-socket in-flight maps.
    pub max_inflight: u32,
}

impl Default for CollectorsConfig {
    fn default() -> Self {
        Self {
            enabled: CollectorKind::ALL.to_vec(),
            interval: Duration::from_secs(15),
            max_cgroups: 2048,
            max_inflight: 16384,
        }
    }
}

/// An invalid `collectors:` setting, naming the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("collectors.{field}: {message}")]
pub struct CollectorsConfigError {
    /// Field path below `collectors`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl RawCollectorsConfig {
    /// Validates the section; `parse_duration` is the config loader's Prometheus duration
    /// parser (passed in so there is exactly one).
    pub fn validate(
        self,
        parse_duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<CollectorsConfig, CollectorsConfigError> {
        let defaults = CollectorsConfig::default();
        let err = |field, message: String| CollectorsConfigError { field, message };
        let mut enabled = self.enabled.unwrap_or(defaults.enabled);
        let mut seen = Vec::with_capacity(enabled.len());
        enabled.retain(|kind| {
            let first = !seen.contains(kind);
            seen.push(*kind);
            first
        });
        let interval = match self.interval {
            None => defaults.interval,
            Some(text) => parse_duration(&text).map_err(|e| err("interval", e))?,
        };
        if interval < Duration::from_millis(100) {
            return Err(err(
                "interval",
                format!("{interval:?} is below the 100ms minimum"),
            ));
        }
        let max_cgroups = self.max_cgroups.unwrap_or(defaults.max_cgroups);
        let max_inflight = self.max_inflight.unwrap_or(defaults.max_inflight);
        for (field, value) in [("max_cgroups", max_cgroups), ("max_inflight", max_inflight)] {
            if value == 0 {
                return Err(err(field, "must be at least 1".to_owned()));
            }
        }
        Ok(CollectorsConfig {
            enabled,
            interval,
            max_cgroups,
            max_inflight,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<Duration, String> {
        s.strip_suffix('s')
            .and_then(|n| n.parse().ok())
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("bad duration {s:?}"))
    }

    fn parse(yaml: &str) -> Result<CollectorsConfig, String> {
        let raw: RawCollectorsConfig = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        raw.validate(secs).map_err(|e| e.to_string())
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<CollectorsConfig, &str>)] = &[
            ("{}", Ok(CollectorsConfig::default())),
            (
                "{enabled: [tcp, cpu, tcp], interval: 5s, max_cgroups: 10}",
                Ok(CollectorsConfig {
                    enabled: vec![CollectorKind::Tcp, CollectorKind::Cpu],
                    interval: Duration::from_secs(5),
                    max_cgroups: 10,
                    ..CollectorsConfig::default()
                }),
            ),
            (
                "{enabled: []}",
                Ok(CollectorsConfig {
                    enabled: vec![],
                    ..Default::default()
                }),
            ),
            ("{enabled: [gpu]}", Err("unknown variant `gpu`")),
            ("{bogus: 1}", Err("unknown field `bogus`")),
            (
                "{interval: 0.01s}",
                Err("collectors.interval: 10ms is below"),
            ),
            ("{interval: soon}", Err("collectors.interval: bad duration")),
            (
                "{max_inflight: 0}",
                Err("collectors.max_inflight: must be at least 1"),
            ),
        ];
        for (yaml, want) in cases {
            match (parse(yaml), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{yaml}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{yaml}: {got}"),
                (got, want) => panic!("{yaml}: got {got:?}, want {want:?}"),
            }
        }
    }
}
