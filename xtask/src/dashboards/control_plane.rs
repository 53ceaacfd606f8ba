//! etcd, kube-proxy and kube-controller-manager: the golden signals and the queries of the
//! seed posts, on the series crowsnest scrapes from each node (`job` = component, `node`).

use super::agent::VARS;
use super::model::{Dashboard, Kind, Row, panel};

/// Series of one component on the selected clusters and nodes.
fn q(job: &str, expr: &str, legend: &'static str) -> (String, &'static str) {
    let selector = format!(r#"job="{job}",cluster=~"$cluster",node=~"$node""#);
    (expr.replace("{S}", &selector), legend)
}

/// The etcd dashboard.
pub fn etcd() -> Dashboard {
    let e = |expr: &str, legend| q("etcd", expr, legend);
    Dashboard {
        uid: "crowsnest-etcd",
        title: "crowsnest / etcd",
        description: "etcd members: availability, leadership, proposals, disk latency, size.",
        vars: VARS,
        rows: vec![
            Row {
                title: "Availability",
                panels: vec![
                    panel(
                        Kind::Stat,
                        "Members up",
                        "short",
                        6,
                        "Members the agents can scrape (sum(up{job=\"etcd\"})).",
                        vec![e("sum(up{{S}})", "up")],
                    ),
                    panel(
                        Kind::Stat,
                        "Members without a leader",
                        "short",
                        6,
                        "Should be 0; any other value means unavailable members.",
                        vec![e(
                            "count(etcd_server_has_leader{{S}} == 0) or vector(0)",
                            "no leader",
                        )],
                    ),
                    panel(
                        Kind::Stat,
                        "Leader changes (1h)",
                        "short",
                        6,
                        "Frequent changes point at network or disk trouble.",
                        vec![e(
                            "max(increase(etcd_server_leader_changes_seen_total{{S}}[1h]))",
                            "changes",
                        )],
                    ),
                    panel(
                        Kind::Stat,
                        "Database size",
                        "bytes",
                        6,
                        "Largest member database.",
                        vec![e("max(etcd_mvcc_db_total_size_in_bytes{{S}})", "size")],
                    ),
                ],
            },
            Row {
                title: "Proposals",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "Proposals committed and applied",
                        "ops",
                        8,
                        "Raft proposals per second.",
                        vec![
                            e(
                                "sum by (instance) (rate(etcd_server_proposals_committed_total{{S}}[$__rate_interval]))",
                                "committed {{instance}}",
                            ),
                            e(
                                "sum by (instance) (rate(etcd_server_proposals_applied_total{{S}}[$__rate_interval]))",
                                "applied {{instance}}",
                            ),
                        ],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Failed proposals",
                        "ops",
                        8,
                        "The seed's alert fires above 5/s over 15m.",
                        vec![e(
                            "rate(etcd_server_proposals_failed_total{{S}}[15m])",
                            "{{instance}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Pending proposals",
                        "short",
                        8,
                        "Proposals waiting to commit.",
                        vec![e(
                            "sum by (instance) (etcd_server_proposals_pending{{S}})",
                            "{{instance}}",
                        )],
                    ),
                ],
            },
            Row {
                title: "Disk",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "WAL fsync p99",
                        "s",
                        12,
                        "Alert above 500ms.",
                        vec![e(
                            "histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket{{S}}[$__rate_interval])))",
                            "{{instance}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Backend commit p99",
                        "s",
                        12,
                        "Alert above 250ms.",
                        vec![e(
                            "histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_backend_commit_duration_seconds_bucket{{S}}[$__rate_interval])))",
                            "{{instance}}",
                        )],
                    ),
                    panel(
                        Kind::Heatmap,
                        "WAL fsync latency",
                        "s",
                        24,
                        "Distribution of WAL fsync durations.",
                        vec![e(
                            "sum by (le) (increase(etcd_disk_wal_fsync_duration_seconds_bucket{{S}}[$__rate_interval]))",
                            "",
                        )],
                    ),
                ],
            },
            Row {
                title: "Network and process",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "Peer round trip p99",
                        "s",
                        8,
                        "Latency between members.",
                        vec![e(
                            "histogram_quantile(0.99, sum by (instance, le) (rate(etcd_network_peer_round_trip_time_seconds_bucket{{S}}[$__rate_interval])))",
                            "{{instance}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "CPU",
                        "percentunit",
                        8,
                        "etcd process CPU.",
                        vec![e(
                            "rate(process_cpu_seconds_total{{S}}[$__rate_interval])",
                            "{{instance}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Memory (RSS)",
                        "bytes",
                        8,
                        "etcd resident memory.",
                        vec![e("process_resident_memory_bytes{{S}}", "{{instance}}")],
                    ),
                ],
            },
        ],
    }
}

/// The kube-proxy dashboard.
pub fn kube_proxy() -> Dashboard {
    let k = |expr: &str, legend| q("kube-proxy", expr, legend);
    Dashboard {
        uid: "crowsnest-kube-proxy",
        title: "crowsnest / kube-proxy",
        description: "kube-proxy on every node: up, rule sync latency, API client errors and latency.",
        vars: VARS,
        rows: vec![
            Row {
                title: "Availability",
                panels: vec![
                    panel(
                        Kind::Stat,
                        "kube-proxy up",
                        "short",
                        8,
                        "sum(up{job=\"kube-proxy\"}): should equal the node count.",
                        vec![k("sum(up{{S}})", "up")],
                    ),
                    panel(
                        Kind::Stat,
                        "Nodes with an agent",
                        "short",
                        8,
                        "The node count the KubeProxyDown alert compares with.",
                        vec![(
                            "count(crowsnest_build_info{job=\"crowsnest\",cluster=~\"$cluster\"})"
                                .to_owned(),
                            "agents",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Up per node",
                        "short",
                        8,
                        "1 up, 0 down.",
                        vec![k("max by (node) (up{{S}})", "{{node}}")],
                    ),
                ],
            },
            Row {
                title: "Rule sync",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "Sync proxy rules p99",
                        "s",
                        12,
                        "Time to rewrite iptables/IPVS rules.",
                        vec![k(
                            "histogram_quantile(0.99, sum by (node, le) (rate(kubeproxy_sync_proxy_rules_duration_seconds_bucket{{S}}[$__rate_interval])))",
                            "{{node}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Network programming p99",
                        "s",
                        12,
                        "Time from a Service change to rules in place.",
                        vec![k(
                            "histogram_quantile(0.99, sum by (node, le) (rate(kubeproxy_network_programming_duration_seconds_bucket{{S}}[$__rate_interval])))",
                            "{{node}}",
                        )],
                    ),
                ],
            },
            Row {
                title: "API client",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "5xx share",
                        "percentunit",
                        8,
                        "The seed's alert fires above 10%.",
                        vec![k(
                            r#"sum by (host, method) (rate(rest_client_requests_total{{S},code=~"5.."}[5m])) / sum by (host, method) (rate(rest_client_requests_total{{S}}[5m]))"#,
                            "{{method}} {{host}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Requests by code",
                        "ops",
                        8,
                        "API requests per second by status code.",
                        vec![k(
                            "sum by (code) (rate(rest_client_requests_total{{S}}[$__rate_interval]))",
                            "{{code}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Request latency p99",
                        "s",
                        8,
                        "p99 by verb (the seed alerts on POST above 60s).",
                        vec![k(
                            "histogram_quantile(0.99, sum by (verb, le) (rate(rest_client_request_duration_seconds_bucket{{S}}[$__rate_interval])))",
                            "{{verb}}",
                        )],
                    ),
                ],
            },
        ],
    }
}

/// The kube-controller-manager dashboard.
pub fn kube_controller_manager() -> Dashboard {
    let c = |expr: &str, legend| q("kube-controller-manager", expr, legend);
    Dashboard {
        uid: "crowsnest-kube-controller-manager",
        title: "crowsnest / kube-controller-manager",
        description: "kube-controller-manager: work queues, API client, CPU, leadership.",
        vars: VARS,
        rows: vec![
            Row {
                title: "Work queues",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "Depth growth",
                        "short",
                        8,
                        "The seed's rate of workqueue_depth per queue.",
                        vec![c(
                            "sum by (instance, name) (rate(workqueue_depth{{S}}[5m]))",
                            "{{name}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Adds",
                        "ops",
                        8,
                        "Items added per second per queue.",
                        vec![c(
                            "sum by (instance, name) (rate(workqueue_adds_total{{S}}[5m]))",
                            "{{name}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Queue latency p99",
                        "s",
                        8,
                        "How long items wait before a worker takes them.",
                        vec![c(
                            "histogram_quantile(0.99, sum by (instance, name, le) (rate(workqueue_queue_duration_seconds_bucket{{S}}[5m])))",
                            "{{name}}",
                        )],
                    ),
                ],
            },
            Row {
                title: "API client",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "Requests by code class",
                        "ops",
                        12,
                        "2xx, 3xx, 4xx and 5xx requests per second.",
                        vec![
                            c(
                                r#"sum(rate(rest_client_requests_total{{S},code=~"2.."}[5m]))"#,
                                "2xx",
                            ),
                            c(
                                r#"sum(rate(rest_client_requests_total{{S},code=~"3.."}[5m]))"#,
                                "3xx",
                            ),
                            c(
                                r#"sum(rate(rest_client_requests_total{{S},code=~"4.."}[5m]))"#,
                                "4xx",
                            ),
                            c(
                                r#"sum(rate(rest_client_requests_total{{S},code=~"5.."}[5m]))"#,
                                "5xx",
                            ),
                        ],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Request latency p99",
                        "s",
                        12,
                        "p99 of requests to the API server.",
                        vec![c(
                            "histogram_quantile(0.99, sum by (url, host, le) (rate(rest_client_request_duration_seconds_bucket{{S}}[5m])))",
                            "{{host}}{{url}}",
                        )],
                    ),
                ],
            },
            Row {
                title: "Process",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "CPU",
                        "percentunit",
                        8,
                        "rate(process_cpu_seconds_total).",
                        vec![c(
                            "rate(process_cpu_seconds_total{{S}}[5m])",
                            "{{instance}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Memory (RSS)",
                        "bytes",
                        8,
                        "Resident memory.",
                        vec![c("process_resident_memory_bytes{{S}}", "{{instance}}")],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Leader",
                        "short",
                        8,
                        "1 on the instance holding the lease.",
                        vec![c(
                            "max by (instance) (leader_election_master_status{{S}})",
                            "{{instance}}",
                        )],
                    ),
                ],
            },
        ],
    }
}
