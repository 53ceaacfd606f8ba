//! The stripped pod: the few fields crowsnest uses, copied out of the API
//! object as soon as it is decoded so the full object (managedFields, spec,
//! env, volumes…) is never cached.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::owner::Workload;

/// Annotation prefix kept on cached pods: scrape discovery reads
/// `prometheus.io/scrape`, `/port`, `/path`, `/scheme` and `/param_*`.
pub const SCRAPE_ANNOTATION_PREFIX: &str = "prometheus.io/";

/// What kind of container a status entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerKind {
    /// `spec.containers`.
    App,
    /// `spec.initContainers`.
    Init,
    /// `spec.ephemeralContainers` (`kubectl debug`).
    Ephemeral,
}

/// One container of a pod, as its status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerMeta {
    /// Container name from the pod spec.
    pub name: String,
    /// Runtime container id without the `<runtime>://` prefix; `None` until
    /// the kubelet reports the container started.
    pub id: Option<String>,
    /// App, init or ephemeral.
    pub kind: ContainerKind,
}

/// One declared container port (for `__meta_kubernetes_pod_container_port_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMeta {
    /// Container the port belongs to.
    pub container: String,
    /// Port name (may be empty).
    pub name: String,
    /// Port number.
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// An owner reference (controller owners only matter for workloads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerMeta {
    /// `ReplicaSet`, `DaemonSet`, `Job`, `Node` (static pods)…
    pub kind: String,
    /// Owner name.
    pub name: String,
    /// True for the managing controller.
    pub controller: bool,
}

/// A pod reduced to what enrichment and discovery use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    /// `metadata.uid`: the key of the cache and the id in cgroup paths.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// `spec.nodeName`.
    pub node: String,
    /// Pod labels kept by the allowlist.
    pub labels: BTreeMap<String, String>,
    /// Only the `prometheus.io/*` annotations.
    pub annotations: BTreeMap<String, String>,
    /// Owner references.
    pub owners: Vec<OwnerMeta>,
    /// App, init and ephemeral containers with their runtime ids.
    pub containers: Vec<ContainerMeta>,
    /// Declared container ports.
    pub ports: Vec<PortMeta>,
    /// Ports of HTTP/TCP liveness, readiness and startup probes. Static
    /// control-plane pods rarely declare ports, but probe their serving port
    /// (kube-scheduler 10259, kube-controller-manager 10257, etcd's metrics
    /// 2381), which is how a scrape target on the host network finds its pod.
    pub probe_ports: Vec<PortMeta>,
    /// `status.podIP` (empty until assigned).
    pub ip: String,
    /// `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
    pub phase: String,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// The resolved workload (filled in by the reflector).
    pub workload: Option<Workload>,
    /// The `k8s-app` label (`kube-proxy`, `kube-dns`), kept apart from the
    /// series-label allowlist: control-plane discovery reads it.
    pub k8s_app: Option<String>,
}

/// The label kube-proxy and CoreDNS pods carry (`kube-proxy`, `kube-dns`).
pub const K8S_APP_LABEL: &str = "k8s-app";

/// Shared, immutable handle to a cached pod.
pub type PodRef = Arc<PodMeta>;

/// Which pod labels are copied into the cache (and so can become series
/// labels). Empty = none: pod labels are unbounded user data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelAllowlist(Vec<String>);

impl LabelAllowlist {
    /// An allowlist of exact label keys (e.g. `app.kubernetes.io/name`).
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        let mut keys: Vec<String> = keys.into_iter().collect();
        keys.sort();
        keys.dedup();
        Self(keys)
    }

    /// True when `key` is kept.
    pub fn allows(&self, key: &str) -> bool {
        self.0.binary_search_by(|k| k.as_str().cmp(key)).is_ok()
    }

    /// The keys, sorted.
    pub fn keys(&self) -> &[String] {
        &self.0
    }
}

/// Strips a `containerd://`, `cri-o://`, `docker://` (any `<runtime>://`)
/// prefix; the cgroup side only ever sees the bare id.
pub fn bare_container_id(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, bare)| bare)
}

impl PodMeta {
    /// Copies the used fields out of `pod`; `None` when it has no uid (never
    /// the case for objects the API server returns).
    pub fn from_pod(pod: Pod, allow: &LabelAllowlist) -> Option<Self> {
        let meta = pod.metadata;
        let uid = meta.uid?;
        let all_labels = meta.labels.unwrap_or_default();
        let k8s_app = all_labels.get(K8S_APP_LABEL).cloned();
        let labels = all_labels
            .into_iter()
            .filter(|(k, _)| allow.allows(k))
            .collect();
        let annotations = meta
            .annotations
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k.starts_with(SCRAPE_ANNOTATION_PREFIX))
            .collect();
        let owners = meta
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|o| OwnerMeta {
                kind: o.kind,
                name: o.name,
                controller: o.controller.unwrap_or(false),
            })
            .collect();
        let (node, host_network, ports, probe_ports) = match pod.spec {
            Some(spec) => {
                let ports = spec
                    .containers
                    .iter()
                    .flat_map(|c| {
                        c.ports.iter().flatten().filter_map(|p| {
                            Some(PortMeta {
                                container: c.name.clone(),
                                name: p.name.clone().unwrap_or_default(),
                                port: u16::try_from(p.container_port).ok()?,
                                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                            })
                        })
                    })
                    .collect();
                let probe_ports = spec.containers.iter().flat_map(probe_ports).collect();
                (
                    spec.node_name.unwrap_or_default(),
                    spec.host_network.unwrap_or(false),
                    ports,
                    probe_ports,
                )
            }
            None => (String::new(), false, Vec::new(), Vec::new()),
        };
        let mut containers = Vec::new();
        let (mut ip, mut phase) = (String::new(), String::new());
        if let Some(status) = pod.status {
            ip = status.pod_ip.unwrap_or_default();
            phase = status.phase.unwrap_or_default();
            let groups = [
                (status.container_statuses, ContainerKind::App),
                (status.init_container_statuses, ContainerKind::Init),
                (
                    status.ephemeral_container_statuses,
                    ContainerKind::Ephemeral,
                ),
            ];
            for (statuses, kind) in groups {
                containers.extend(statuses.into_iter().flatten().map(|s| container(s, kind)));
            }
        }
        Some(Self {
            uid,
            namespace: meta.namespace.unwrap_or_default(),
            name: meta.name.unwrap_or_default(),
            node,
            labels,
            annotations,
            owners,
            containers,
            ports,
            probe_ports,
            ip,
            phase,
            host_network,
            workload: None,
            k8s_app,
        })
    }

    /// The managing controller, if any.
    pub fn controller(&self) -> Option<&OwnerMeta> {
        self.owners.iter().find(|o| o.controller)
    }

    /// The container whose runtime id is `id` (bare, without prefix).
    pub fn container_by_id(&self, id: &str) -> Option<&ContainerMeta> {
        self.containers.iter().find(|c| c.id.as_deref() == Some(id))
    }
}

/// Numeric (or named, resolved against the container's ports) ports of the
/// container's HTTP and TCP probes.
fn probe_ports(c: &Container) -> Vec<PortMeta> {
    let mut out: Vec<PortMeta> = Vec::new();
    let probes = [&c.liveness_probe, &c.readiness_probe, &c.startup_probe];
    for probe in probes.into_iter().flatten() {
        let targets = [
            probe.http_get.as_ref().map(|h| &h.port),
            probe.tcp_socket.as_ref().map(|t| &t.port),
        ];
        for port in targets.into_iter().flatten() {
            let number = match port {
                IntOrString::Int(n) => u16::try_from(*n).ok(),
                IntOrString::String(name) => c
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))
                    .and_then(|p| u16::try_from(p.container_port).ok()),
            };
            if let Some(port) = number.filter(|n| out.iter().all(|p| p.port != *n)) {
                out.push(PortMeta {
                    container: c.name.clone(),
                    name: String::new(),
                    port,
                    protocol: "TCP".to_owned(),
                });
            }
        }
    }
    out
}

fn container(s: ContainerStatus, kind: ContainerKind) -> ContainerMeta {
    ContainerMeta {
        name: s.name,
        id: s
            .container_id
            .as_deref()
            .map(bare_container_id)
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        kind,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use super::*;

    #[test]
    fn strips_everything_unused() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-5d9c7b-abcde", "namespace": "shop", "uid": "1f2e-33",
                "labels": {"app": "web", "pod-template-hash": "5d9c7b", "secret-ish": "x"},
                "annotations": {"prometheus.io/scrape": "true", "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c7b", "uid": "rs", "controller": true}],
                "managedFields": [{"manager": "kubectl", "operation": "Update"}]
            },
            "spec": {"nodeName": "node-1", "containers": [
                {"name": "app", "image": "web:1", "ports": [{"name": "metrics", "containerPort": 9100}]}
            ]},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                "containerStatuses": [{"name": "app", "containerID": "containerd://abc123", "image": "web:1", "imageID": "", "ready": true, "restartCount": 0}],
                "initContainerStatuses": [{"name": "init", "containerID": "cri-o://def456", "image": "i", "imageID": "", "ready": false, "restartCount": 0}],
                "ephemeralContainerStatuses": [{"name": "debug", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0}]
            }
        }))
        .unwrap();
        let allow = LabelAllowlist::new(["app".to_owned()]);
        let meta = PodMeta::from_pod(pod, &allow).unwrap();
        assert_eq!(meta.uid, "1f2e-33");
        assert_eq!(meta.node, "node-1");
        assert_eq!(meta.labels.len(), 1);
        assert_eq!(
            meta.annotations.keys().collect::<Vec<_>>(),
            ["prometheus.io/scrape"]
        );
        assert_eq!(meta.controller().unwrap().kind, "ReplicaSet");
        assert_eq!(meta.container_by_id("abc123").unwrap().name, "app");
        assert_eq!(
            meta.container_by_id("def456").unwrap().kind,
            ContainerKind::Init
        );
        assert_eq!(meta.containers[2].id, None);
        assert_eq!(meta.ports[0].port, 9100);
        assert_eq!(meta.ports[0].protocol, "TCP");
        assert_eq!(
            (meta.ip.as_str(), meta.phase.as_str()),
            ("10.0.0.7", "Running")
        );
    }

    #[test]
    fn probe_ports_of_a_static_control_plane_pod() {
        // kubeadm's kube-scheduler manifest: no ports, probes on 10259.
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kube-scheduler-cp-1", "namespace": "kube-system", "uid": "6b3a0b2d3e4f5a6b7c8d9e0f1a2b3c4d",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "cp-1", "uid": "n", "controller": true}]},
            "spec": {"nodeName": "cp-1", "hostNetwork": true, "containers": [{"name": "kube-scheduler", "image": "ks",
                "livenessProbe": {"httpGet": {"host": "127.0.0.1", "path": "/livez", "port": 10259, "scheme": "HTTPS"}},
                "readinessProbe": {"httpGet": {"host": "127.0.0.1", "path": "/readyz", "port": 10259, "scheme": "HTTPS"}},
                "startupProbe": {"tcpSocket": {"port": "named"}}}]}
        }))
        .unwrap();
        let meta = PodMeta::from_pod(pod, &LabelAllowlist::default()).unwrap();
        assert!(meta.ports.is_empty() && meta.host_network);
        assert_eq!(
            meta.probe_ports.iter().map(|p| p.port).collect::<Vec<_>>(),
            [10259],
            "deduplicated; unknown names skipped"
        );
    }

    #[test]
    fn container_id_prefixes() {
        for (raw, bare) in [
            ("containerd://abc", "abc"),
            ("cri-o://abc", "abc"),
            ("docker://abc", "abc"),
            ("abc", "abc"),
        ] {
            assert_eq!(bare_container_id(raw), bare);
        }
    }
}
