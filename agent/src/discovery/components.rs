//! The control-plane components discovery knows, as one table: job name,
//! well-known ports, metrics paths, how to recognise each on a probe, how to
//! authenticate, and the curated metric set.
//!
//! Default `insecure_skip_verify` per component, and why:
//! - etcd: `false`. kubeadm's etcd serving cert is signed by the CA named in
//!   `--trusted-ca-file` and valid for 127.0.0.1; kops' etcd-manager serves a
//!   cert signed by `etcd-clients-ca` valid for 127.0.0.1 (kube-apiserver
//!   itself connects to `https://127.0.0.1:4001`), so verification works.
//! - kube-apiserver: `false`. Its cert is signed by the cluster CA (the
//!   service account's `ca.crt`) and always carries the name `kubernetes`,
//!   which we verify against (`server_name`).
//! - kube-controller-manager, kube-scheduler, kubelet: `true`. Without
//!   `--tls-cert-file` (kubeadm's default) they serve a self-signed cert
//!   generated at start whose CA exists only in their memory, so no CA file
//!   can verify them. We only connect to them on this node's own addresses
//!   (hostNetwork), the token we send is the agent's service-account token
//!   whose RBAC should grant nothing but `get` on `/metrics`, so a skipped
//!   verification costs little; set `insecure_skip_verify: false` and a
//!   `ca_file` where the serving certs are signed by a known CA.
//! - kube-proxy and CoreDNS serve plain HTTP.

use serde::Serialize;

use crate::config::Scheme;

/// A control-plane (or node) component discovery can find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    /// etcd (kubeadm static pod, or kops' etcd-manager).
    Etcd,
    /// kube-apiserver.
    Apiserver,
    /// kube-controller-manager.
    ControllerManager,
    /// kube-scheduler.
    Scheduler,
    /// kube-proxy.
    KubeProxy,
    /// kubelet (`/metrics`, `/metrics/cadvisor`, `/metrics/resource`).
    Kubelet,
    /// CoreDNS.
    CoreDns,
}

/// How a component's metrics endpoint authenticates us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// Nothing (plain HTTP endpoints).
    None,
    /// A client certificate (etcd's `--client-cert-auth`).
    ClientCert,
    /// The service account's bearer token (delegated authn/authz).
    Bearer,
}

/// A well-known port and the scheme it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WellKnownPort {
    /// TCP port.
    pub port: u16,
    /// `http` or `https`.
    pub scheme: Scheme,
}

const fn https(port: u16) -> WellKnownPort {
    WellKnownPort {
        port,
        scheme: Scheme::Https,
    }
}

const fn http(port: u16) -> WellKnownPort {
    WellKnownPort {
        port,
        scheme: Scheme::Http,
    }
}

/// Everything discovery knows about one component.
#[derive(Debug)]
pub struct Spec {
    /// The component.
    pub component: Component,
    /// `job` label, also the key under `discovery.components`; the names the
    /// upstream mixins and the seeds' queries use.
    pub job: &'static str,
    /// Ports probed as the last resort, in order of preference.
    pub ports: &'static [WellKnownPort],
    /// Metrics paths scraped on each address (kubelet has three).
    pub paths: &'static [&'static str],
    /// A metric family name prefix only this component exposes: a probe
    /// counts as found only when the body contains it.
    pub signature: &'static str,
    /// How the endpoint authenticates us.
    pub auth: AuthKind,
    /// Default `insecure_skip_verify` (see the module docs for why).
    pub insecure_skip_verify: bool,
    /// Name to verify the serving certificate against, when the address is not in it.
    pub server_name: Option<&'static str>,
    /// Regexes on `__name__` of the curated metric set.
    pub curated: &'static [&'static str],
}

/// Families every Go component exposes that are worth keeping everywhere.
pub const COMMON_CURATED: &[&str] = &[
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "go_goroutines",
];

/// Client-side families of components that talk to the API server.
const REST_CLIENT: &str =
    "rest_client_(requests_total|request_duration_seconds_(bucket|sum|count))";
const WORKQUEUE: &str = "workqueue_(adds_total|depth|retries_total|unfinished_work_seconds|longest_running_processor_seconds|(queue|work)_duration_seconds_(bucket|sum|count))";

const ETCD: Spec = Spec {
    component: Component::Etcd,
    job: "etcd",
    // 4001: kops' etcd-manager; 2379: kubeadm's client port; 2381: kubeadm's plain metrics port.
    ports: &[https(4001), https(2379), http(2381)],
    paths: &["/metrics"],
    signature: "etcd_server_has_leader",
    auth: AuthKind::ClientCert,
    insecure_skip_verify: false,
    server_name: None,
    curated: &[
        "etcd_server_(has_leader|is_leader|leader_changes_seen_total|proposals_(committed|applied|failed)_total|proposals_pending|slow_apply_total|heartbeat_send_failures_total|quota_backend_bytes)",
        "etcd_disk_(wal_fsync|backend_commit|backend_snapshot)_duration_seconds_(bucket|sum|count)",
        "etcd_mvcc_db_total_size(_in_use)?_in_bytes",
        "etcd_network_peer_(round_trip_time_seconds_(bucket|sum|count)|sent_failures_total|received_failures_total)",
        "etcd_network_client_grpc_(sent|received)_bytes_total",
        "grpc_server_(started|handled)_total",
    ],
};

const APISERVER: Spec = Spec {
    component: Component::Apiserver,
    job: "apiserver",
    ports: &[],
    paths: &["/metrics"],
    signature: "apiserver_request_total",
    auth: AuthKind::Bearer,
    insecure_skip_verify: false,
    server_name: Some("kubernetes"),
    curated: &[
        "apiserver_request_total",
        "apiserver_request_duration_seconds_(bucket|sum|count)",
        "apiserver_(current_inflight_requests|storage_objects|longrunning_requests)",
        "apiserver_client_certificate_expiration_seconds_(bucket|sum|count)",
        "etcd_request_duration_seconds_(bucket|sum|count)",
        WORKQUEUE,
        REST_CLIENT,
    ],
};

const CONTROLLER_MANAGER: Spec = Spec {
    component: Component::ControllerManager,
    job: "kube-controller-manager",
    ports: &[https(10257)],
    paths: &["/metrics"],
    // Only the node lifecycle controller exports these.
    signature: "node_collector_",
    auth: AuthKind::Bearer,
    insecure_skip_verify: true,
    server_name: None,
    curated: &[WORKQUEUE, REST_CLIENT, "leader_election_master_status"],
};

const SCHEDULER: Spec = Spec {
    component: Component::Scheduler,
    job: "kube-scheduler",
    ports: &[https(10259)],
    paths: &["/metrics"],
    signature: "scheduler_",
    auth: AuthKind::Bearer,
    insecure_skip_verify: true,
    server_name: None,
    curated: &[
        "scheduler_(pending_pods|schedule_attempts_total|preemption_attempts_total)",
        "scheduler_(scheduling_attempt_duration|pod_scheduling_sli_duration|e2e_scheduling_duration)_seconds_(bucket|sum|count)",
        WORKQUEUE,
        REST_CLIENT,
        "leader_election_master_status",
    ],
};

const KUBE_PROXY: Spec = Spec {
    component: Component::KubeProxy,
    job: "kube-proxy",
    ports: &[http(10249)],
    paths: &["/metrics"],
    signature: "kubeproxy_",
    auth: AuthKind::None,
    insecure_skip_verify: false,
    server_name: None,
    curated: &[
        "kubeproxy_(sync_proxy_rules|network_programming)_duration_seconds_(bucket|sum|count)",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        REST_CLIENT,
    ],
};

const KUBELET: Spec = Spec {
    component: Component::Kubelet,
    job: "kubelet",
    ports: &[https(10250)],
    paths: &["/metrics", "/metrics/cadvisor", "/metrics/resource"],
    signature: "kubelet_",
    auth: AuthKind::Bearer,
    insecure_skip_verify: true,
    server_name: None,
    curated: &[
        "kubelet_(node_name|running_pods|running_containers|runtime_operations_errors_total|volume_stats_.*)",
        "kubelet_(pleg_relist|pod_start|pod_worker)_duration_seconds_(bucket|sum|count)",
        "container_(cpu_usage_seconds_total|cpu_cfs_(throttled_)?periods_total|memory_working_set_bytes|memory_rss|network_(receive|transmit)_bytes_total|fs_(reads|writes)_bytes_total|start_time_seconds)",
        "(node|pod|container)_(cpu_usage_seconds_total|memory_working_set_bytes)",
        "machine_(cpu_cores|memory_bytes)",
        "storage_operation_duration_seconds_(bucket|sum|count)",
        REST_CLIENT,
    ],
};

const COREDNS: Spec = Spec {
    component: Component::CoreDns,
    job: "coredns",
    ports: &[http(9153)],
    paths: &["/metrics"],
    signature: "coredns_",
    auth: AuthKind::None,
    insecure_skip_verify: false,
    server_name: None,
    curated: &[
        "coredns_dns_(requests_total|responses_total)",
        "coredns_dns_request_duration_seconds_(bucket|sum|count)",
        "coredns_(cache_(hits|misses)_total|panics_total|build_info)",
        "coredns_forward_(requests_total|responses_total|request_duration_seconds_(bucket|sum|count))",
    ],
};

/// The table, in the order discovery reports and probes components.
pub const SPECS: &[&Spec] = &[
    &ETCD,
    &APISERVER,
    &CONTROLLER_MANAGER,
    &SCHEDULER,
    &KUBE_PROXY,
    &KUBELET,
    &COREDNS,
];

impl Component {
    /// Every component, in table order.
    pub fn all() -> impl Iterator<Item = Component> {
        SPECS.iter().map(|s| s.component)
    }

    /// This component's row of [`SPECS`].
    pub fn spec(self) -> &'static Spec {
        match self {
            Self::Etcd => &ETCD,
            Self::Apiserver => &APISERVER,
            Self::ControllerManager => &CONTROLLER_MANAGER,
            Self::Scheduler => &SCHEDULER,
            Self::KubeProxy => &KUBE_PROXY,
            Self::Kubelet => &KUBELET,
            Self::CoreDns => &COREDNS,
        }
    }

    /// The `job` label and config key.
    pub fn job(self) -> &'static str {
        self.spec().job
    }

    /// The component named by a `discovery.components` key (its job name).
    pub fn from_job(name: &str) -> Option<Self> {
        SPECS.iter().find(|s| s.job == name).map(|s| s.component)
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.job())
    }
}

/// The `keep` regex of a component's curated set, the common families included.
pub fn curated_regex(component: Component) -> String {
    let parts: Vec<&str> = component
        .spec()
        .curated
        .iter()
        .chain(COMMON_CURATED)
        .copied()
        .collect();
    format!("({})", parts.join("|"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use super::*;

    #[test]
    fn every_component_has_one_row_with_a_unique_job() {
        let all = [
            Component::Etcd,
            Component::Apiserver,
            Component::ControllerManager,
            Component::Scheduler,
            Component::KubeProxy,
            Component::Kubelet,
            Component::CoreDns,
        ];
        for c in all {
            assert_eq!(
                SPECS.iter().filter(|s| s.component == c).count(),
                1,
                "{c:?}"
            );
            assert_eq!(Component::from_job(c.job()), Some(c));
        }
        assert_eq!(SPECS.len(), all.len());
    }

    #[test]
    fn curated_sets_keep_what_the_seeds_watch() {
        let cases: &[(Component, &str, bool)] = &[
            (Component::Etcd, "etcd_server_has_leader", true),
            (Component::Etcd, "etcd_server_proposals_pending", true),
            (Component::Etcd, "etcd_server_proposals_failed_total", true),
            (
                Component::Etcd,
                "etcd_disk_wal_fsync_duration_seconds_bucket",
                true,
            ),
            (
                Component::Etcd,
                "etcd_disk_backend_commit_duration_seconds_sum",
                true,
            ),
            (Component::Etcd, "etcd_mvcc_db_total_size_in_bytes", true),
            (Component::Etcd, "grpc_server_handled_total", true),
            (Component::Etcd, "etcd_debugging_mvcc_keys_total", false),
            (
                Component::KubeProxy,
                "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
                true,
            ),
            (
                Component::KubeProxy,
                "kubeproxy_network_programming_duration_seconds_count",
                true,
            ),
            (Component::KubeProxy, "rest_client_requests_total", true),
            (
                Component::KubeProxy,
                "rest_client_request_duration_seconds_bucket",
                true,
            ),
            (Component::KubeProxy, "go_gc_duration_seconds", false),
            (Component::ControllerManager, "workqueue_adds_total", true),
            (Component::ControllerManager, "workqueue_depth", true),
            (
                Component::ControllerManager,
                "workqueue_queue_duration_seconds_bucket",
                true,
            ),
            (
                Component::ControllerManager,
                "workqueue_work_duration_seconds_sum",
                true,
            ),
            (
                Component::ControllerManager,
                "workqueue_retries_total",
                true,
            ),
            (
                Component::ControllerManager,
                "leader_election_master_status",
                true,
            ),
            (
                Component::ControllerManager,
                "process_cpu_seconds_total",
                true,
            ),
            (
                Component::ControllerManager,
                "process_resident_memory_bytes",
                true,
            ),
            (
                Component::ControllerManager,
                "apiserver_audit_event_total",
                false,
            ),
            (
                Component::Kubelet,
                "container_cpu_usage_seconds_total",
                true,
            ),
            (Component::Kubelet, "container_tasks_state", false),
        ];
        for &(component, name, keep) in cases {
            let re = regex::Regex::new(&format!("^(?:{})$", curated_regex(component))).unwrap();
            assert_eq!(re.is_match(name), keep, "{component} {name}");
        }
    }
}
