//! Which labels a series gets: the pure part of enrichment, table-tested.

use crate::kube::{PodRef, PodStore, cgroup};
use crate::model::{Labels, is_valid_label_name};

/// Label names enrichment adds. Existing labels are never overwritten.
pub mod names {
    /// Node name.
    pub const NODE: &str = "node";
    /// Pod namespace.
    pub const NAMESPACE: &str = "namespace";
    /// Pod name.
    pub const POD: &str = "pod";
    /// Container name.
    pub const CONTAINER: &str = "container";
    /// Workload kind (`Deployment`, `DaemonSet`, …).
    pub const WORKLOAD_KIND: &str = "workload_kind";
    /// Workload name.
    pub const WORKLOAD: &str = "workload";
    /// Runtime container id (plain-host mode only).
    pub const CONTAINER_ID: &str = "container_id";
    /// The label eBPF collectors put on their series (cgroup v2 path).
    pub const CGROUP: &str = "cgroup";
    /// The scrape target's address.
    pub const INSTANCE: &str = "instance";
}

/// How complete an enrichment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Everything the series can get; no reason to look again.
    Complete,
    /// The series belongs to a pod or container the cache does not know
    /// (yet): held briefly, re-resolved when the pod cache changes.
    Waiting,
    /// Not a pod's series as far as the cache knows; re-checked when the
    /// pod cache changes (a scraped pod may appear later).
    Unrelated,
}

/// The static part of enrichment: node name, label allowlist, mode.
#[derive(Clone, Debug)]
pub struct LabelPlan {
    node: String,
    // (pod label key, sanitized label name)
    pod_labels: Vec<(String, String)>,
    plain_host: bool,
}

/// Sanitizes a pod label key into a label name the way Prometheus'
/// Kubernetes discovery does: every character outside `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

impl LabelPlan {
    /// A plan for `node`, copying the allowlisted pod labels; `plain_host`
    /// when there is no Kubernetes API (container id and cgroup only).
    pub fn new(node: &str, pod_label_keys: &[String], plain_host: bool) -> Self {
        let reserved = [
            names::NODE,
            names::NAMESPACE,
            names::POD,
            names::CONTAINER,
            names::WORKLOAD_KIND,
            names::WORKLOAD,
        ];
        let pod_labels = pod_label_keys
            .iter()
            .map(|k| (k.clone(), sanitize(k)))
            .filter(|(_, n)| {
                is_valid_label_name(n) && !n.starts_with("__") && !reserved.contains(&n.as_str())
            })
            .collect();
        Self {
            node: node.to_owned(),
            pod_labels,
            plain_host,
        }
    }

    /// True in plain-host mode.
    pub fn plain_host(&self) -> bool {
        self.plain_host
    }

    /// The enriched label set of `input` and how complete it is.
    pub fn enrich(&self, store: &PodStore, input: &Labels) -> (Labels, Resolution) {
        let mut out = input.clone();
        if let Some(path) = input.get(names::CGROUP) {
            let resolution = self.enrich_cgroup(store, path, &mut out);
            return (out, resolution);
        }
        let endpoint = input
            .get(names::INSTANCE)
            .and_then(|i| i.rsplit_once(':'))
            .and_then(|(h, p)| {
                Some((
                    h.trim_start_matches('[').trim_end_matches(']'),
                    p.parse::<u16>().ok()?,
                ))
            });
        if let Some((host, port)) = endpoint
            && let Some(pod) = store.by_endpoint(host, port)
        {
            let container = pod
                .ports
                .iter()
                .chain(&pod.probe_ports)
                .find(|p| p.port == port)
                .map(|p| p.container.as_str());
            self.add_pod(&pod, container, &mut out);
            return (out, Resolution::Complete);
        }
        (out, Resolution::Unrelated)
    }

    fn enrich_cgroup(&self, store: &PodStore, path: &str, out: &mut Labels) -> Resolution {
        add(out, names::NODE, &self.node);
        let id = cgroup::resolve(path);
        if self.plain_host {
            if let Some(c) = &id.container_id {
                add(out, names::CONTAINER_ID, c);
            }
            return Resolution::Complete;
        }
        if id.is_empty() {
            // A host cgroup (system.slice, …): nothing to wait for.
            return Resolution::Complete;
        }
        let pod = id
            .pod_uid
            .as_deref()
            .and_then(|u| store.by_uid(u))
            .or_else(|| {
                id.container_id
                    .as_deref()
                    .and_then(|c| store.by_container_id(c))
            });
        let Some(pod) = pod else {
            return Resolution::Waiting;
        };
        let container = id
            .container_id
            .as_deref()
            .and_then(|c| pod.container_by_id(c))
            .map(|c| c.name.as_str());
        self.add_pod(&pod, container, out);
        // A container id the pod's status does not list yet: the kubelet
        // reports it shortly after the container starts. The pod sandbox
        // (pause) never appears in the status, so this also waits for it;
        // after the hold it is sent with the pod labels.
        if id.container_id.is_some() && container.is_none() {
            Resolution::Waiting
        } else {
            Resolution::Complete
        }
    }

    fn add_pod(&self, pod: &PodRef, container: Option<&str>, out: &mut Labels) {
        add(
            out,
            names::NODE,
            if pod.node.is_empty() {
                &self.node
            } else {
                &pod.node
            },
        );
        add(out, names::NAMESPACE, &pod.namespace);
        add(out, names::POD, &pod.name);
        if let Some(c) = container {
            add(out, names::CONTAINER, c);
        }
        if let Some(w) = &pod.workload {
            add(out, names::WORKLOAD_KIND, &w.kind);
            add(out, names::WORKLOAD, &w.name);
        }
        for (key, name) in &self.pod_labels {
            if let Some(v) = pod.labels.get(key) {
                add(out, name, v);
            }
        }
    }
}

/// Sets `name` unless the series already has it (the producer's labels win).
fn add(out: &mut Labels, name: &str, value: &str) {
    if out.get(name).is_none() {
        out.set(name, value);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use super::*;
    use crate::kube::{ContainerKind, ContainerMeta, PodMeta, PortMeta, Workload};

    const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const UID_: &str = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0";
    fn id(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn store() -> PodStore {
        let store = PodStore::new();
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("app.kubernetes.io/name".to_owned(), "web".to_owned());
        store.apply(PodMeta {
            uid: UID.to_owned(),
            namespace: "shop".to_owned(),
            name: "web-1".to_owned(),
            node: "node-a".to_owned(),
            labels,
            ip: "10.1.0.5".to_owned(),
            containers: vec![ContainerMeta {
                name: "app".to_owned(),
                id: Some(id(1)),
                kind: ContainerKind::App,
            }],
            ports: vec![PortMeta {
                container: "app".to_owned(),
                name: "metrics".to_owned(),
                port: 9100,
                protocol: "TCP".to_owned(),
            }],
            workload: Some(Workload {
                kind: "Deployment".to_owned(),
                name: "web".to_owned(),
            }),
            ..PodMeta::default()
        });
        store.apply(PodMeta {
            uid: "11111111-2222-3333-4444-555555555555".to_owned(),
            namespace: "kube-system".to_owned(),
            name: "kube-scheduler-node-a".to_owned(),
            node: "node-a".to_owned(),
            ip: "192.168.1.10".to_owned(),
            host_network: true,
            probe_ports: vec![PortMeta {
                container: "kube-scheduler".to_owned(),
                name: String::new(),
                port: 10259,
                protocol: "TCP".to_owned(),
            }],
            workload: Some(Workload {
                kind: "StaticPod".to_owned(),
                name: "kube-scheduler-node-a".to_owned(),
            }),
            ..PodMeta::default()
        });
        store
    }

    const FULL: &[(&str, &str)] = &[
        ("node", "node-a"),
        ("namespace", "shop"),
        ("pod", "web-1"),
        ("container", "app"),
        ("workload_kind", "Deployment"),
        ("workload", "web"),
        ("app_kubernetes_io_name", "web"),
    ];

    #[test]
    fn table() {
        let plan = LabelPlan::new("node-a", &["app.kubernetes.io/name".to_owned()], false);
        let plain = LabelPlan::new("node-a", &[], true);
        let store = store();
        let cg = |rest: &str| {
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice{rest}"
            )
        };
        let container_path = cg(&format!("/cri-containerd-{}.scope", id(1)));
        let sandbox_path = cg(&format!("/cri-containerd-{}.scope", id(9)));
        let pod_path = cg("");
        let id1 = id(1);
        let web: Vec<(&str, &str)> = FULL.to_vec();
        let web_no_container: Vec<(&str, &str)> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "container")
            .collect();
        #[allow(clippy::type_complexity, reason = "a test table")]
        let cases: Vec<(&LabelPlan, Vec<(&str, &str)>, Vec<(&str, &str)>, Resolution)> = vec![
            // eBPF series of a known container.
            (
                &plan,
                vec![("cgroup", &container_path)],
                web.clone(),
                Resolution::Complete,
            ),
            // The pod's own cgroup: pod labels, no container.
            (
                &plan,
                vec![("cgroup", &pod_path)],
                web_no_container.clone(),
                Resolution::Complete,
            ),
            // A container id the pod status does not list (yet): pod labels, keep waiting.
            (
                &plan,
                vec![("cgroup", &sandbox_path)],
                web_no_container.clone(),
                Resolution::Waiting,
            ),
            // An unknown pod: only the node, waiting.
            (
                &plan,
                vec![(
                    "cgroup",
                    "/kubepods/burstable/pod99999999-2222-3333-4444-555555555555/abcdefabcdef",
                )],
                vec![("node", "node-a")],
                Resolution::Waiting,
            ),
            // A host cgroup: node only, complete.
            (
                &plan,
                vec![("cgroup", "/system.slice/containerd.service")],
                vec![("node", "node-a")],
                Resolution::Complete,
            ),
            // Plain-host mode: container id and node only.
            (
                &plain,
                vec![("cgroup", &container_path)],
                vec![("node", "node-a"), ("container_id", &id1)],
                Resolution::Complete,
            ),
            // A scraped pod target: by pod IP and declared port.
            (
                &plan,
                vec![("instance", "10.1.0.5:9100")],
                web.clone(),
                Resolution::Complete,
            ),
            // A control-plane static pod on the host network, scraped on loopback.
            (
                &plan,
                vec![("instance", "127.0.0.1:10259")],
                vec![
                    ("node", "node-a"),
                    ("namespace", "kube-system"),
                    ("pod", "kube-scheduler-node-a"),
                    ("container", "kube-scheduler"),
                    ("workload_kind", "StaticPod"),
                    ("workload", "kube-scheduler-node-a"),
                ],
                Resolution::Complete,
            ),
            // Something else: untouched.
            (
                &plan,
                vec![("instance", "10.9.9.9:80")],
                vec![],
                Resolution::Unrelated,
            ),
            // The producer's labels win.
            (
                &plan,
                vec![("instance", "10.1.0.5:9100"), ("namespace", "mine")],
                web.iter()
                    .copied()
                    .filter(|(k, _)| *k != "namespace")
                    .chain([("namespace", "mine")])
                    .collect(),
                Resolution::Complete,
            ),
        ];
        for (plan, input, added, want_res) in cases {
            let input = Labels::from_pairs(input.iter().copied().chain([("__name__", "m")]));
            let (got, res) = plan.enrich(&store, &input);
            let mut want = input.clone();
            for (k, v) in &added {
                want.set(k, v);
            }
            assert_eq!((got, res), (want, want_res), "{input:?}");
        }
    }

    #[test]
    fn sanitizes_like_prometheus() {
        for (key, name) in [
            ("app.kubernetes.io/name", "app_kubernetes_io_name"),
            ("team", "team"),
            ("1x", "_1x"),
            ("a-b", "a_b"),
        ] {
            assert_eq!(sanitize(key), name);
        }
        // Keys that would shadow enrichment's own labels are refused.
        assert!(
            LabelPlan::new("n", &["pod".to_owned(), "node".to_owned()], false)
                .pod_labels
                .is_empty()
        );
    }
}
