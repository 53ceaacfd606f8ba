//! `kubernetes:`: the node-scoped pod watch, owner lookups and enrichment.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::PromDuration;
use super::error::{ConfigError, field};
use super::types::{KubeMode, KubernetesConfig};

/// Default wait for the first pod list before the first eBPF export.
const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Default TTL of a resolved owner (ReplicaSet -> Deployment, Job -> CronJob).
const DEFAULT_OWNER_TTL: Duration = Duration::from_secs(600);
/// Default number of owners cached.
const DEFAULT_OWNER_CACHE_SIZE: usize = 1024;
/// Default hold of samples whose cgroup is not resolved yet.
const DEFAULT_HOLD: Duration = Duration::from_secs(5);
/// Default bound on held samples.
const DEFAULT_HOLD_MAX_SAMPLES: usize = 50_000;
/// Pod labels copied by default: the well-known application labels.
const DEFAULT_POD_LABELS: &[&str] = &[
    "app",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
];

/// `kubernetes:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the kubernetes section (a map)")]
pub(super) struct RawKubernetes {
    /// `auto` (default: use the API when a config is found), `enabled`
    /// (fail loudly in logs and status when unreachable) or `disabled`.
    mode: Option<String>,
    /// This node's name (default: env `NODE_NAME`, else the hostname).
    node_name: Option<String>,
    /// A kubeconfig file for development (default: in-cluster service
    /// account, else `$KUBECONFIG` / `~/.kube/config`).
    kubeconfig: Option<PathBuf>,
    /// How long the agent waits for the first pod list before it exports
    /// eBPF series (default 30s).
    sync_timeout: Option<PromDuration>,
    /// Pod label keys copied onto series (sanitized to label names).
    pod_labels: Option<Vec<String>>,
    /// TTL of owner lookups (default 10m).
    owner_cache_ttl: Option<PromDuration>,
    /// Owners cached at most (default 1024).
    owner_cache_size: Option<usize>,
    /// How long samples of a not-yet-known container are held (default 5s).
    hold: Option<PromDuration>,
    /// Held samples at most; beyond that they are sent unenriched (default 50000).
    hold_max_samples: Option<usize>,
}

impl RawKubernetes {
    /// Validates into [`KubernetesConfig`].
    pub(super) fn build(self) -> Result<KubernetesConfig, ConfigError> {
        let mode = match self.mode.as_deref() {
            None | Some("auto") => KubeMode::Auto,
            Some("enabled") => KubeMode::Enabled,
            Some("disabled") => KubeMode::Disabled,
            Some(other) => {
                return Err(ConfigError::invalid(
                    field("kubernetes", "mode"),
                    format!("({other:?}) is not a mode"),
                    "use auto (the default), enabled or disabled",
                ));
            }
        };
        let node_name = self.node_name.filter(|n| !n.is_empty());
        if let Some(n) = &node_name
            && !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(ConfigError::invalid(
                field("kubernetes", "node_name"),
                format!("({n:?}) is not a node name"),
                "use the node's DNS-1123 name, or remove it to read NODE_NAME",
            ));
        }
        let positive = |name: &str, d: Option<PromDuration>, default: Duration| {
            let d = d.map_or(default, |d| d.0);
            if d.is_zero() {
                return Err(ConfigError::invalid(
                    field("kubernetes", name),
                    "is zero",
                    "give a positive duration such as 5s, or remove it for the default",
                ));
            }
            Ok(d)
        };
        let owner_cache_size = self.owner_cache_size.unwrap_or(DEFAULT_OWNER_CACHE_SIZE);
        if owner_cache_size == 0 {
            return Err(ConfigError::invalid(
                field("kubernetes", "owner_cache_size"),
                "is zero",
                "give a positive size such as 1024, or remove it for the default",
            ));
        }
        let pod_labels = self
            .pod_labels
            .unwrap_or_else(|| DEFAULT_POD_LABELS.iter().map(|s| (*s).to_owned()).collect());
        if let Some(bad) = pod_labels.iter().position(String::is_empty) {
            return Err(ConfigError::invalid(
                format!("kubernetes.pod_labels[{bad}]"),
                "is empty",
                "give a pod label key such as app.kubernetes.io/name",
            ));
        }
        Ok(KubernetesConfig {
            mode,
            node_name,
            kubeconfig: self.kubeconfig,
            sync_timeout: positive("sync_timeout", self.sync_timeout, DEFAULT_SYNC_TIMEOUT)?,
            pod_labels,
            owner_cache_ttl: positive("owner_cache_ttl", self.owner_cache_ttl, DEFAULT_OWNER_TTL)?,
            owner_cache_size,
            // Zero hold is allowed: it means "never hold".
            hold: self.hold.map_or(DEFAULT_HOLD, |d| d.0),
            hold_max_samples: self.hold_max_samples.unwrap_or(DEFAULT_HOLD_MAX_SAMPLES),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use crate::config::{KubeMode, load_from_str};

    #[test]
    fn defaults_and_overrides() {
        let c = load_from_str("", &[]).unwrap().kubernetes;
        assert_eq!(c.mode, KubeMode::Auto);
        assert_eq!(c.hold.as_secs(), 5);
        assert!(c.pod_labels.contains(&"app.kubernetes.io/name".to_owned()));
        let c = load_from_str(
            "kubernetes:\n  mode: enabled\n  node_name: node-7\n  hold: 0s\n  pod_labels: [team]\n  owner_cache_ttl: 1m\n",
            &[],
        )
        .unwrap()
        .kubernetes;
        assert_eq!(c.mode, KubeMode::Enabled);
        assert_eq!(c.node_name.as_deref(), Some("node-7"));
        assert!(c.hold.is_zero());
        assert_eq!(c.pod_labels, ["team"]);
        assert_eq!(c.owner_cache_ttl.as_secs(), 60);
    }

    #[test]
    fn errors_name_the_field() {
        for (yaml, path) in [
            ("kubernetes:\n  mode: sometimes\n", "kubernetes.mode"),
            (
                "kubernetes:\n  node_name: \"a b\"\n",
                "kubernetes.node_name",
            ),
            (
                "kubernetes:\n  sync_timeout: 0s\n",
                "kubernetes.sync_timeout",
            ),
            (
                "kubernetes:\n  owner_cache_size: 0\n",
                "kubernetes.owner_cache_size",
            ),
            (
                "kubernetes:\n  pod_labels: [\"\"]\n",
                "kubernetes.pod_labels[0]",
            ),
            ("kubernetes:\n  watch_everything: true\n", "kubernetes"),
        ] {
            let e = load_from_str(yaml, &[]).unwrap_err().to_string();
            assert!(e.contains(path), "{yaml}: {e}");
        }
    }
}
