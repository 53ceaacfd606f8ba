//! Kubernetes metadata for this node: a pod reflector scoped to the node,
//! lazy workload-owner lookups, and the cgroup path -> container -> pod join.
//!
//! ```text
//! API server ──list/watch pods (spec.nodeName=<node>)──> PodReflector
//!    │                                                     │ strip to PodMeta
//!    └──GET ReplicaSet/Job (lazy, TTL cache)── OwnerResolver ┘
//!                                                          v
//!                        PodStore (by uid, by container id, change signal)
//!                              ^                    │
//!   cgroup::resolve(path) ─────┘                    └─> scrape discovery, control-plane discovery
//! ```
//!
//! Nothing here watches cluster-wide, and no full API object is cached.

pub mod cgroup;
mod client;
pub mod discovery;
mod metrics;
mod owner;
mod pod;
mod reflector;
mod store;

// The test API server lives in the harness crate (real-binary tests use it
// too); the unit tests include the same file.
#[cfg(test)]
#[path = "../../../tests/harness/kube_api/mod.rs"]
pub(crate) mod test_api;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use client::client;
pub use metrics::{KindLabel, KubeMetrics};
pub use owner::{OwnerMetrics, OwnerResolver, Workload};
pub use pod::{
    ContainerKind, ContainerMeta, LabelAllowlist, OwnerMeta, PodMeta, PodRef, PortMeta,
    SCRAPE_ANNOTATION_PREFIX, bare_container_id,
};
pub use reflector::{PodReflector, ReflectorParams, Synced, node_selector};
pub use store::PodStore;

use crate::config::{KubeMode, KubernetesConfig};

/// Why Kubernetes metadata is unavailable.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No in-cluster environment and no kubeconfig.
    #[error("no Kubernetes client configuration found: {0}")]
    NotFound(String),
    /// The kubeconfig named in the config could not be used.
    #[error("kubeconfig: {0}")]
    Config(String),
    /// The client could not be built (TLS setup).
    #[error("cannot build the Kubernetes client: {0}")]
    Client(String),
}

impl KubeError {
    /// Short, bounded name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Config(_) => "kubeconfig",
            Self::Client(_) => "client",
        }
    }
}

/// What `/api/v1/status` shows about Kubernetes metadata.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KubeStatus {
    /// `kubernetes` or `plain-host`.
    pub mode: &'static str,
    /// Why plain-host mode, if so.
    pub reason: Option<String>,
    /// True once the first pod list succeeded.
    pub synced: bool,
    /// Pods of this node cached.
    pub pods: usize,
}

/// The metadata source the rest of the agent uses.
pub struct Kubernetes {
    /// Pods on this node (stays empty in plain-host mode).
    pub store: PodStore,
    /// First-list signal (`None` in plain-host mode: nothing to wait for).
    pub synced: Option<Synced>,
    /// This node's name.
    pub node: String,
    /// Why the agent runs without Kubernetes, if it does.
    pub plain_host: Option<String>,
    // Keeps the watch running.
    _reflector: Option<PodReflector>,
}

impl Kubernetes {
    /// A snapshot for the status page.
    pub fn status(&self) -> KubeStatus {
        KubeStatus {
            mode: if self.plain_host.is_some() {
                "plain-host"
            } else {
                "kubernetes"
            },
            reason: self.plain_host.clone(),
            synced: self.synced.as_ref().is_some_and(Synced::is_synced),
            pods: self.store.len(),
        }
    }

    /// Waits (at most `timeout`) for the first pod list; true at once in
    /// plain-host mode. Producers whose series need pod labels from their
    /// first sample (eBPF) start after this.
    pub async fn wait_synced(&self, timeout: std::time::Duration) -> bool {
        match &self.synced {
            Some(s) => s.wait(timeout).await,
            None => true,
        }
    }

    /// Starts the pod watch per `cfg`, or plain-host mode when disabled or no
    /// client configuration is found (logged once here, shown in status).
    pub async fn start(cfg: &KubernetesConfig, node: String, metrics: KubeMetrics) -> Self {
        let plain = |reason: String| {
            // Said once, here; the status page keeps saying it.
            if cfg.mode == KubeMode::Enabled {
                tracing::error!(reason = %reason, "kubernetes.mode is enabled but no client could be built: plain-host mode, series carry container id and cgroup only");
            } else {
                tracing::warn!(reason = %reason, "Kubernetes metadata unavailable: plain-host mode, series carry container id and cgroup only");
            }
            Self {
                store: PodStore::new(),
                synced: None,
                node: node.clone(),
                plain_host: Some(reason),
                _reflector: None,
            }
        };
        if cfg.mode == KubeMode::Disabled {
            return plain("kubernetes.mode is disabled".to_owned());
        }
        let client = match client(cfg.kubeconfig.as_deref()).await {
            Ok(c) => c,
            Err(e) => return plain(e.to_string()),
        };
        let owners = Arc::new(OwnerResolver::new(
            Some(client.clone()),
            cfg.owner_cache_ttl,
            cfg.owner_cache_size,
            metrics.owners.clone(),
        ));
        let reflector = PodReflector::spawn(
            client,
            ReflectorParams {
                node: node.clone(),
                labels: LabelAllowlist::new(cfg.pod_labels.iter().cloned()),
                owners,
                metrics,
            },
        );
        Self {
            store: reflector.store().clone(),
            synced: Some(reflector.synced()),
            node,
            plain_host: None,
            _reflector: Some(reflector),
        }
    }
}
