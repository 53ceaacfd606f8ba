//! `kubernetes:`: the node-scoped pod watch, owner lookups and enrichment.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::PromDuration;
use super::error::{ConfigError, field};
use super::flag::Flag;
use super::types::{KubeMode, KubernetesConfig, KubernetesSdConfig};

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

/// Name of the built-in annotation-driven job.
pub const ANNOTATION_JOB: &str = "kubernetes-pods";

/// The community chart's `kubernetes-pods` job (prometheus-community/helm-charts,
/// `charts/prometheus/values.yaml`), added when `annotation_discovery` is on.
pub const ANNOTATION_JOB_YAML: &str = r#"
- job_name: kubernetes-pods
  honor_labels: true
  kubernetes_sd_configs:
  - role: pod
  relabel_configs:
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
    action: keep
    regex: true
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape_slow]
    action: drop
    regex: true
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scheme]
    action: replace
    regex: (https?)
    target_label: __scheme__
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
    action: replace
    target_label: __metrics_path__
    regex: (.+)
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_port, __meta_kubernetes_pod_ip]
    action: replace
    regex: (\d+);(([A-Fa-f0-9]{1,4}::?){1,7}[A-Fa-f0-9]{1,4})
    replacement: '[$2]:$1'
    target_label: __address__
  - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_port, __meta_kubernetes_pod_ip]
    action: replace
    regex: (\d+);((([0-9]+?)(\.|$)){4})
    replacement: $2:$1
    target_label: __address__
  - action: labelmap
    regex: __meta_kubernetes_pod_annotation_prometheus_io_param_(.+)
    replacement: __param_$1
  - action: labelmap
    regex: __meta_kubernetes_pod_label_(.+)
  - source_labels: [__meta_kubernetes_namespace]
    action: replace
    target_label: namespace
  - source_labels: [__meta_kubernetes_pod_name]
    action: replace
    target_label: pod
  - source_labels: [__meta_kubernetes_pod_phase]
    regex: Pending|Succeeded|Failed|Completed
    action: drop
  - source_labels: [__meta_kubernetes_pod_node_name]
    action: replace
    target_label: node
"#;

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
    /// Scrape pods annotated `prometheus.io/scrape: "true"` like the
    /// community chart's `kubernetes-pods` job (default true).
    annotation_discovery: Option<Flag>,
}

/// `kubernetes_sd_configs:` entry of a scrape config as written. Only what
/// makes sense for a node agent: `role: pod` (this node's pods) and
/// `namespaces.names`. API server settings come from `kubernetes:`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a kubernetes_sd_config (a map with role: pod)"
)]
pub(super) struct RawKubernetesSd {
    /// Must be `pod`.
    role: Option<String>,
    /// Namespaces to keep.
    namespaces: Option<RawNamespaces>,
}

/// `namespaces:` of a kubernetes_sd_config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "namespaces (a map with names)")]
struct RawNamespaces {
    /// Namespace names.
    names: Option<Vec<String>>,
}

impl RawKubernetesSd {
    /// Validates one entry at `path`.
    pub(super) fn build(self, path: &str) -> Result<KubernetesSdConfig, ConfigError> {
        match self.role.as_deref() {
            Some("pod") => {}
            other => {
                return Err(ConfigError::invalid(
                    field(path, "role"),
                    match other {
                        None => "is missing".to_owned(),
                        Some(r) => format!("({r:?}) is not supported by a node agent"),
                    },
                    "use role: pod (this node's pods); other roles need a cluster-wide watch, use a central Prometheus for them",
                ));
            }
        }
        Ok(KubernetesSdConfig {
            namespaces: self.namespaces.and_then(|n| n.names).unwrap_or_default(),
        })
    }
}

impl RawKubernetes {
    /// Overrides the fields set in `over` (the environment layer).
    pub(super) fn overlay(&mut self, over: RawKubernetes) {
        self.mode = over.mode.or(self.mode.take());
        self.node_name = over.node_name.or(self.node_name.take());
        self.kubeconfig = over.kubeconfig.or(self.kubeconfig.take());
        self.sync_timeout = over.sync_timeout.or(self.sync_timeout.take());
        self.pod_labels = over.pod_labels.or(self.pod_labels.take());
        self.owner_cache_ttl = over.owner_cache_ttl.or(self.owner_cache_ttl.take());
        self.owner_cache_size = over.owner_cache_size.or(self.owner_cache_size.take());
        self.hold = over.hold.or(self.hold.take());
        self.hold_max_samples = over.hold_max_samples.or(self.hold_max_samples.take());
        self.annotation_discovery = over
            .annotation_discovery
            .or(self.annotation_discovery.take());
    }

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
            annotation_discovery: self.annotation_discovery.is_none_or(|f| f.0),
            annotation_job: None,
        })
    }
}

/// The built-in annotation job, validated like a user's job.
pub(super) fn annotation_job(
    global: &super::types::Global,
) -> Result<Vec<super::types::ScrapeConfig>, ConfigError> {
    let raw = serde_yaml::from_str(ANNOTATION_JOB_YAML).map_err(|e| {
        ConfigError::invalid(
            "kubernetes.annotation_discovery",
            format!("built-in job does not parse: {e}"),
            "set annotation_discovery: false and report a bug",
        )
    })?;
    super::scrape::build_all(raw, global)
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
    fn environment_overrides() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let c = load_from_str(
            "kubernetes:\n  mode: enabled\n  hold: 2s\n",
            &env(&[
                ("CROWSNEST_KUBERNETES__MODE", "disabled"),
                ("CROWSNEST_KUBERNETES__NODE_NAME", "node-9"),
            ]),
        )
        .unwrap()
        .kubernetes;
        assert_eq!(c.mode, KubeMode::Disabled);
        assert_eq!(c.node_name.as_deref(), Some("node-9"));
        assert_eq!(c.hold.as_secs(), 2, "fields not overridden stay");
    }

    #[test]
    fn pod_sd_and_the_annotation_job() {
        let c = load_from_str(
            "scrape_configs:\n- job_name: apps\n  kubernetes_sd_configs:\n  - role: pod\n    namespaces:\n      names: [shop]\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.scrape_configs[0].kubernetes_sd_configs[0].namespaces,
            ["shop"]
        );
        let job = c.kubernetes.annotation_job.unwrap();
        assert!(job.honor_labels && job.kubernetes_sd_configs.len() == 1);
        // Off, disabled, or the name taken by the user: no built-in job.
        for yaml in [
            "kubernetes:\n  annotation_discovery: false\n",
            "kubernetes:\n  mode: disabled\n",
            "scrape_configs:\n- job_name: kubernetes-pods\n",
        ] {
            assert!(
                load_from_str(yaml, &[])
                    .unwrap()
                    .kubernetes
                    .annotation_job
                    .is_none(),
                "{yaml}"
            );
        }
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
            (
                "scrape_configs:\n- job_name: a\n  kubernetes_sd_configs:\n  - role: node\n",
                "scrape_configs[0].kubernetes_sd_configs[0].role",
            ),
            (
                "scrape_configs:\n- job_name: a\n  kubernetes_sd_configs:\n  - {}\n",
                "scrape_configs[0].kubernetes_sd_configs[0].role",
            ),
            (
                "scrape_configs:\n- job_name: a\n  kubernetes_sd_configs:\n  - role: pod\n    api_server: https://x\n",
                "api_server",
            ),
        ] {
            let e = load_from_str(yaml, &[]).unwrap_err().to_string();
            assert!(e.contains(path), "{yaml}: {e}");
        }
    }
}
