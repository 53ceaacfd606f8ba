//! Agent Health & Status: is every node's agent there, healthy, and delivering?

use super::model::{Dashboard, Kind, Row, Var, panel};

/// Self-metrics of the selected agents (instance is `<node>:<port>`).
const A: &str = r#"job="crowsnest",cluster=~"$cluster",instance=~"($node):.*""#;
/// Kubernetes nodes of the selected clusters (kube-state-metrics).
const NODES: &str = r#"cluster=~"$cluster""#;

/// Template variables shared by the dashboards that select agents.
pub const VARS: &[Var] = &[
    Var {
        name: "cluster",
        query: "label_values(crowsnest_build_info, cluster)",
    },
    Var {
        name: "node",
        query: r#"label_values(up{cluster=~"$cluster"}, node)"#,
    },
];

/// The dashboard.
pub fn dashboard() -> Dashboard {
    let q =
        |expr: &str, legend: &'static str| (expr.replace("{A}", A).replace("{N}", NODES), legend);
    Dashboard {
        uid: "crowsnest-agent",
        title: "crowsnest / Agent Health & Status",
        description: "Every node's crowsnest agent: reporting, versions, ingest, remote write, eBPF collectors, cost.",
        vars: VARS,
        rows: vec![
            Row {
                title: "Fleet",
                panels: vec![
                    panel(
                        Kind::Stat,
                        "Agents reporting",
                        "short",
                        4,
                        "Agents whose own metrics arrive.",
                        vec![q("count(crowsnest_build_info{{A}})", "agents")],
                    ),
                    panel(
                        Kind::Stat,
                        "Nodes",
                        "short",
                        4,
                        "Nodes known to kube-state-metrics (empty without it).",
                        vec![q("count(kube_node_info{{N}})", "nodes")],
                    ),
                    panel(
                        Kind::Stat,
                        "Nodes without an agent",
                        "short",
                        4,
                        "Nodes minus reporting agents: should be 0.",
                        vec![q(
                            r#"count(kube_node_info{{N}}) - count(crowsnest_build_info{job="crowsnest",{N}})"#,
                            "missing",
                        )],
                    ),
                    panel(
                        Kind::Table,
                        "Version spread",
                        "short",
                        6,
                        "Agents per version: more than one row during a rollout only.",
                        vec![q(
                            "count by (version) (crowsnest_build_info{{A}})",
                            "{{version}}",
                        )],
                    ),
                    panel(
                        Kind::Stat,
                        "Targets down",
                        "short",
                        6,
                        "Scrape targets whose last scrape failed.",
                        vec![q(
                            "count(crowsnest_scrape_target_up{{A}} == 0) or vector(0)",
                            "down",
                        )],
                    ),
                ],
            },
            Row {
                title: "Ingest",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "Samples scraped per node",
                        "ops",
                        12,
                        "Samples handed to delivery per second, per agent.",
                        vec![q(
                            "sum by (instance) (rate(crowsnest_scrape_samples_total{{A}}[$__rate_interval]))",
                            "{{instance}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Scrape errors by reason",
                        "ops",
                        12,
                        "Failed scrapes per second by reason (timeout, unauthorized, bad_certificate…).",
                        vec![q(
                            "sum by (reason, exported_job) (rate(crowsnest_scrape_errors_total{{A}}[$__rate_interval]))",
                            "{{exported_job}} {{reason}}",
                        )],
                    ),
                    panel(
                        Kind::Table,
                        "Targets",
                        "short",
                        24,
                        "Every target of the selected agents: up and samples of the last scrape.",
                        vec![
                            q(
                                "max by (instance, exported_job, exported_instance) (crowsnest_scrape_target_up{{A}})",
                                "up",
                            ),
                            q(
                                "max by (instance, exported_job, exported_instance) (crowsnest_scrape_last_samples{{A}})",
                                "samples",
                            ),
                            q(
                                "max by (instance, exported_job, exported_instance) (crowsnest_scrape_last_duration_seconds{{A}})",
                                "duration",
                            ),
                        ],
                    ),
                ],
            },
            Row {
                title: "Remote write",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "Samples sent",
                        "ops",
                        8,
                        "Samples delivered per second, per endpoint.",
                        vec![q(
                            "sum by (remote_name) (rate(crowsnest_remote_write_samples_total{{A}}[$__rate_interval]))",
                            "{{remote_name}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Lag since last delivery",
                        "s",
                        8,
                        "Seconds since each agent's last successful request.",
                        vec![q(
                            "time() - max by (instance, remote_name) (crowsnest_remote_write_last_success_timestamp_seconds{{A}})",
                            "{{instance}} {{remote_name}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Dropped samples by reason",
                        "ops",
                        8,
                        "Samples lost per second (relabel_drop is intended).",
                        vec![q(
                            "sum by (remote_name, reason) (rate(crowsnest_remote_write_dropped_samples_total{{A}}[$__rate_interval]))",
                            "{{remote_name}} {{reason}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Failed and retried",
                        "ops",
                        8,
                        "Samples rejected (not retried) and samples sent again after a retryable error.",
                        vec![
                            q(
                                "sum by (remote_name) (rate(crowsnest_remote_write_samples_failed_total{{A}}[$__rate_interval]))",
                                "failed {{remote_name}}",
                            ),
                            q(
                                "sum by (remote_name) (rate(crowsnest_remote_write_samples_retried_total{{A}}[$__rate_interval]))",
                                "retried {{remote_name}}",
                            ),
                        ],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Queue",
                        "short",
                        8,
                        "Samples queued or in flight, per agent and endpoint.",
                        vec![q(
                            "sum by (instance, remote_name) (crowsnest_remote_write_queue_length{{A}})",
                            "{{instance}} {{remote_name}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Request latency p99",
                        "s",
                        8,
                        "p99 of one request attempt, per endpoint.",
                        vec![q(
                            "histogram_quantile(0.99, sum by (remote_name, le) (rate(crowsnest_remote_write_request_duration_seconds_bucket{{A}}[$__rate_interval])))",
                            "{{remote_name}}",
                        )],
                    ),
                ],
            },
            Row {
                title: "eBPF collectors",
                panels: vec![
                    panel(
                        Kind::Table,
                        "Collectors",
                        "short",
                        8,
                        "1 loaded and attached, 0 failed (the reason is on the agent's /api/v1/status).",
                        vec![q(
                            "max by (instance, collector) (crowsnest_collector_up{{A}})",
                            "up",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Events per second",
                        "ops",
                        8,
                        "Program runs per second (needs BPF stats: CAP_SYS_ADMIN or the bpf_stats sysctl).",
                        vec![q(
                            "sum by (collector, program) (rate(crowsnest_ebpf_program_run_count_total{{A}}[$__rate_interval]))",
                            "{{collector}}/{{program}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Cost per event",
                        "ns",
                        8,
                        "Average kernel time per program run.",
                        vec![q(
                            "1e9 * sum by (collector, program) (rate(crowsnest_ebpf_program_run_time_seconds_total{{A}}[$__rate_interval])) / sum by (collector, program) (rate(crowsnest_ebpf_program_run_count_total{{A}}[$__rate_interval]))",
                            "{{collector}}/{{program}}",
                        )],
                    ),
                ],
            },
            Row {
                title: "Kubernetes metadata",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "Pods cached",
                        "short",
                        8,
                        "Objects in each agent's cache (this node's pods and their owners).",
                        vec![q(
                            "sum by (instance, kind) (crowsnest_kube_objects{{A}})",
                            "{{instance}} {{kind}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Watch restarts and owner lookup errors",
                        "ops",
                        8,
                        "Pod watch relists and failed owner GETs per second.",
                        vec![
                            q(
                                "sum by (instance) (rate(crowsnest_kube_watch_restarts_total{{A}}[$__rate_interval]))",
                                "restarts {{instance}}",
                            ),
                            q(
                                "sum by (instance) (rate(crowsnest_kube_owner_lookup_errors_total{{A}}[$__rate_interval]))",
                                "lookup errors {{instance}}",
                            ),
                        ],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Samples sent without Kubernetes labels",
                        "ops",
                        8,
                        "Samples whose container was still unknown when the hold expired.",
                        vec![q(
                            "sum by (instance) (rate(crowsnest_enrich_hold_expired_total{{A}}[$__rate_interval]))",
                            "{{instance}}",
                        )],
                    ),
                ],
            },
            Row {
                title: "Agent resources",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "CPU",
                        "percentunit",
                        12,
                        "CPU used by each agent (1 = one core).",
                        vec![q(
                            "sum by (instance) (rate(process_cpu_seconds_total{{A}}[$__rate_interval]))",
                            "{{instance}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Memory (RSS)",
                        "bytes",
                        12,
                        "Resident memory of each agent.",
                        vec![q(
                            "max by (instance) (process_resident_memory_bytes{{A}})",
                            "{{instance}}",
                        )],
                    ),
                ],
            },
        ],
    }
}
