//! Scrape discovery of this node's pods: `kubernetes_sd_configs` with
//! `role: pod` (restricted to the node) and the annotation-driven
//! `kubernetes-pods` job of the Prometheus community chart.
//!
//! Targets are produced exactly like Prometheus' pod role: one per declared
//! container port (`__address__` = `<pod IP>:<port>`), and one per container
//! without ports (`__address__` = the pod IP), with the usual
//! `__meta_kubernetes_*` labels, so existing relabel rules work unchanged.
//! The chart job is not special code: it is the chart's own job
//! ([`crate::config::ANNOTATION_JOB_YAML`]) over those labels.
//!
//! Limits of a node-local cache: only pod labels in `kubernetes.pod_labels`
//! and `prometheus.io/*` annotations are kept, so only those appear as
//! `__meta_kubernetes_pod_label_*` / `_annotation_*`.

use crate::model::Labels;

use super::pod::{ContainerKind, PodRef};

/// Sanitizes a label/annotation key for a `__meta_…_<key>` name.
fn meta_name(prefix: &str, key: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + key.len());
    out.push_str(prefix);
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// The discovered label sets (targets before relabeling) of `pods`, in
/// Prometheus' pod-role shape. `namespaces` (empty: all) filters pods.
pub fn pod_targets(pods: &[PodRef], namespaces: &[String]) -> Vec<Labels> {
    let mut out = Vec::new();
    for pod in pods {
        // Prometheus skips pods without an IP (not scheduled/started yet).
        if pod.ip.is_empty() || !(namespaces.is_empty() || namespaces.contains(&pod.namespace)) {
            continue;
        }
        let mut common = Labels::from_pairs([
            ("__meta_kubernetes_namespace", pod.namespace.as_str()),
            ("__meta_kubernetes_pod_name", pod.name.as_str()),
            ("__meta_kubernetes_pod_ip", pod.ip.as_str()),
            ("__meta_kubernetes_pod_uid", pod.uid.as_str()),
            ("__meta_kubernetes_pod_node_name", pod.node.as_str()),
            ("__meta_kubernetes_pod_phase", pod.phase.as_str()),
        ]);
        for (k, v) in &pod.labels {
            common.set(&meta_name("__meta_kubernetes_pod_label_", k), v);
            common.set(&meta_name("__meta_kubernetes_pod_labelpresent_", k), "true");
        }
        for (k, v) in &pod.annotations {
            common.set(&meta_name("__meta_kubernetes_pod_annotation_", k), v);
            common.set(
                &meta_name("__meta_kubernetes_pod_annotationpresent_", k),
                "true",
            );
        }
        if let Some(c) = pod.controller() {
            common.set("__meta_kubernetes_pod_controller_kind", &c.kind);
            common.set("__meta_kubernetes_pod_controller_name", &c.name);
        }
        let ip = if pod.ip.contains(':') {
            format!("[{}]", pod.ip)
        } else {
            pod.ip.clone()
        };
        for c in pod
            .containers
            .iter()
            .filter(|c| c.kind != ContainerKind::Ephemeral)
        {
            let mut base = common.clone();
            base.set("__meta_kubernetes_pod_container_name", &c.name);
            base.set(
                "__meta_kubernetes_pod_container_init",
                if c.kind == ContainerKind::Init {
                    "true"
                } else {
                    "false"
                },
            );
            if let Some(id) = &c.id {
                base.set("__meta_kubernetes_pod_container_id", id);
            }
            let ports: Vec<_> = pod.ports.iter().filter(|p| p.container == c.name).collect();
            if ports.is_empty() {
                let mut t = base;
                t.set("__address__", &ip);
                out.push(t);
                continue;
            }
            for p in ports {
                let mut t = base.clone();
                t.set("__address__", &format!("{ip}:{}", p.port));
                t.set("__meta_kubernetes_pod_container_port_name", &p.name);
                t.set(
                    "__meta_kubernetes_pod_container_port_number",
                    &p.port.to_string(),
                );
                t.set("__meta_kubernetes_pod_container_port_protocol", &p.protocol);
                out.push(t);
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{ANNOTATION_JOB, load_from_str};
    use crate::kube::{ContainerMeta, OwnerMeta, PodMeta, PortMeta};
    use crate::scrape::target::{Resolved, resolve_discovered};

    fn pod(name: &str, ip: &str, annotations: &[(&str, &str)], ports: &[u16]) -> PodRef {
        Arc::new(PodMeta {
            uid: format!("uid-{name}"),
            namespace: "shop".to_owned(),
            name: name.to_owned(),
            node: "node-a".to_owned(),
            ip: ip.to_owned(),
            phase: "Running".to_owned(),
            labels: [("app.kubernetes.io/name".to_owned(), "web".to_owned())].into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            owners: vec![OwnerMeta {
                kind: "ReplicaSet".to_owned(),
                name: "web-5d".to_owned(),
                controller: true,
            }],
            containers: vec![ContainerMeta {
                name: "app".to_owned(),
                id: Some("c1".to_owned()),
                kind: ContainerKind::App,
            }],
            ports: ports
                .iter()
                .map(|p| PortMeta {
                    container: "app".to_owned(),
                    name: format!("p{p}"),
                    port: *p,
                    protocol: "TCP".to_owned(),
                })
                .collect(),
            ..PodMeta::default()
        })
    }

    #[test]
    fn meta_labels_like_prometheus_pod_role() {
        let pods = [
            pod(
                "web-1",
                "10.1.0.5",
                &[("prometheus.io/scrape", "true")],
                &[8080, 9100],
            ),
            pod("no-ip", "", &[], &[80]),
        ];
        let t = pod_targets(&pods, &[]);
        assert_eq!(t.len(), 2, "one per port; the pod without IP is skipped");
        assert_eq!(t[0].get("__address__"), Some("10.1.0.5:8080"));
        assert_eq!(
            t[1].get("__meta_kubernetes_pod_container_port_number"),
            Some("9100")
        );
        assert_eq!(
            t[0].get("__meta_kubernetes_pod_label_app_kubernetes_io_name"),
            Some("web")
        );
        assert_eq!(
            t[0].get("__meta_kubernetes_pod_annotation_prometheus_io_scrape"),
            Some("true")
        );
        assert_eq!(
            t[0].get("__meta_kubernetes_pod_controller_kind"),
            Some("ReplicaSet")
        );
        assert_eq!(
            t[0].get("__meta_kubernetes_pod_container_name"),
            Some("app")
        );
        assert_eq!(t[0].get("__meta_kubernetes_pod_node_name"), Some("node-a"));
        // No ports: one target at the bare IP; namespaces filter.
        let bare = pod_targets(&[pod("w", "fd00::5", &[], &[])], &[]);
        assert_eq!(bare[0].get("__address__"), Some("[fd00::5]"));
        assert!(pod_targets(&pods, &["other".to_owned()]).is_empty());
    }

    #[test]
    fn annotation_job_has_the_chart_semantics() {
        let config = load_from_str("", &[]).unwrap();
        let job = config.kubernetes.annotation_job.as_ref().unwrap();
        let mut running = pod(
            "web-1",
            "10.1.0.5",
            &[
                ("prometheus.io/scrape", "true"),
                ("prometheus.io/port", "9102"),
                ("prometheus.io/path", "/custom"),
                ("prometheus.io/scheme", "https"),
                ("prometheus.io/param_format", "prometheus"),
            ],
            &[8080, 9100],
        );
        let pending = {
            let mut p = (*pod(
                "web-2",
                "10.1.0.6",
                &[("prometheus.io/scrape", "true")],
                &[8080],
            ))
            .clone();
            p.phase = "Pending".to_owned();
            Arc::new(p)
        };
        let slow = pod(
            "web-3",
            "10.1.0.7",
            &[
                ("prometheus.io/scrape", "true"),
                ("prometheus.io/scrape_slow", "true"),
            ],
            &[8080],
        );
        let off = pod(
            "web-4",
            "10.1.0.8",
            &[("prometheus.io/scrape", "false")],
            &[8080],
        );
        let plain = pod(
            "web-5",
            "10.1.0.9",
            &[("prometheus.io/scrape", "true")],
            &[8080],
        );
        let pods = [running.clone(), pending, slow, off, plain];
        let mut out = Resolved::default();
        resolve_discovered(job, &pod_targets(&pods, &[]), &mut out);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let urls: Vec<String> = out.targets.iter().map(|t| t.url.to_string()).collect();
        // Both ports of web-1 become the annotated port (deduplicated by the
        // manager); web-5 keeps its declared port and the default path.
        assert_eq!(
            urls,
            [
                "https://10.1.0.5:9102/custom?format=prometheus",
                "https://10.1.0.5:9102/custom?format=prometheus",
                "http://10.1.0.9:8080/metrics",
            ]
        );
        let t = &out.targets[0];
        for (k, v) in [
            ("namespace", "shop"),
            ("pod", "web-1"),
            ("node", "node-a"),
            ("app_kubernetes_io_name", "web"),
            ("instance", "10.1.0.5:9102"),
            ("job", ANNOTATION_JOB),
        ] {
            assert_eq!(t.labels.get(k), Some(v), "{k}");
        }
        assert_eq!(out.dropped, 3, "pending, scrape_slow and scrape=false");
        // The chart keeps pods whose annotation says exactly "true".
        Arc::make_mut(&mut running)
            .annotations
            .insert("prometheus.io/scrape".to_owned(), "yes".to_owned());
        let mut out = Resolved::default();
        resolve_discovered(job, &pod_targets(&[running], &[]), &mut out);
        assert!(out.targets.is_empty());
    }
}
