//! The JSON document behind `/api/v1/status` (and the status page later).

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::collectors::CollectorStatus;
use crate::discovery::DiscoveredStatus;
use crate::kube::KubeStatus;
use crate::remote_write::EndpointStatus;
use crate::scrape::TargetStatus;
use crate::telemetry::VERSION;

/// Everything an operator needs to see about one agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentStatus {
    /// Agent version.
    pub version: &'static str,
    /// Node (host) name.
    pub node: String,
    /// Seconds since the agent started.
    pub uptime_seconds: f64,
    /// True once the pipeline runs.
    pub ready: bool,
    /// Every eBPF collector: loaded or failed (with the reason), and each
    /// program's cost from the kernel.
    pub collectors: Vec<CollectorStatus>,
    /// Every scrape target.
    pub targets: Vec<TargetStatus>,
    /// Every remote-write endpoint.
    pub remote_write: Vec<EndpointStatus>,
    /// Control-plane targets discovery found on this node (no secrets).
    pub discovered: Vec<DiscoveredStatus>,
    /// Kubernetes metadata (pod watch or plain-host mode).
    pub kubernetes: Option<KubeStatus>,
}

impl AgentStatus {
    /// A status with no targets or endpoints.
    pub fn new(node: &str, uptime_seconds: f64) -> Self {
        Self {
            version: VERSION,
            node: node.to_owned(),
            uptime_seconds,
            ready: false,
            collectors: Vec::new(),
            targets: Vec::new(),
            remote_write: Vec::new(),
            discovered: Vec::new(),
            kubernetes: None,
        }
    }
}

/// Produces status snapshots for the server.
pub trait StatusSource: Send + Sync {
    /// The current status.
    fn snapshot(&self) -> Pin<Box<dyn Future<Output = AgentStatus> + Send + '_>>;
}
