//! Containers: the eBPF collectors' per-workload series, enriched with Kubernetes labels.

use super::model::{Dashboard, Kind, Row, Var, panel};

const VARS: &[Var] = &[
    Var {
        name: "cluster",
        query: "label_values(crowsnest_build_info, cluster)",
    },
    Var {
        name: "node",
        query: r#"label_values(crowsnest_container_cpu_seconds_total{cluster=~"$cluster"}, node)"#,
    },
    Var {
        name: "namespace",
        query: r#"label_values(crowsnest_container_cpu_seconds_total{cluster=~"$cluster",node=~"$node"}, namespace)"#,
    },
];

const S: &str = r#"cluster=~"$cluster",node=~"$node",namespace=~"$namespace""#;

fn q(expr: &str, legend: &'static str) -> (String, &'static str) {
    (expr.replace("{S}", S), legend)
}

/// The dashboard.
pub fn dashboard() -> Dashboard {
    Dashboard {
        uid: "crowsnest-containers",
        title: "crowsnest / Containers",
        description: "Per-workload CPU, scheduling latency, OOM kills and TCP from the eBPF collectors.",
        vars: VARS,
        rows: vec![
            Row {
                title: "CPU",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "CPU by workload",
                        "percentunit",
                        12,
                        "On-CPU time measured in the scheduler (1 = one core).",
                        vec![q(
                            "sum by (namespace, workload) (rate(crowsnest_container_cpu_seconds_total{{S}}[$__rate_interval]))",
                            "{{namespace}}/{{workload}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Context switches",
                        "ops",
                        12,
                        "Context switches per second by workload.",
                        vec![q(
                            "sum by (namespace, workload) (rate(crowsnest_container_context_switches_total{{S}}[$__rate_interval]))",
                            "{{namespace}}/{{workload}}",
                        )],
                    ),
                    panel(
                        Kind::Heatmap,
                        "Run-queue latency",
                        "s",
                        12,
                        "Time runnable tasks waited for a CPU.",
                        vec![q(
                            "sum by (le) (increase(crowsnest_container_runqueue_latency_seconds_bucket{{S}}[$__rate_interval]))",
                            "",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Run-queue latency p99 by workload",
                        "s",
                        12,
                        "CPU starvation per workload.",
                        vec![q(
                            "histogram_quantile(0.99, sum by (namespace, workload, le) (rate(crowsnest_container_runqueue_latency_seconds_bucket{{S}}[$__rate_interval])))",
                            "{{namespace}}/{{workload}}",
                        )],
                    ),
                ],
            },
            Row {
                title: "Processes and memory",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "OOM kills",
                        "short",
                        12,
                        "Processes killed by the OOM killer, per hour.",
                        vec![q(
                            "sum by (namespace, pod, container) (increase(crowsnest_container_oom_kills_total{{S}}[1h]))",
                            "{{namespace}}/{{pod}}/{{container}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Process starts",
                        "ops",
                        12,
                        "Processes started per second (fork storms, crash loops).",
                        vec![q(
                            "sum by (namespace, workload) (rate(crowsnest_container_processes_started_total{{S}}[$__rate_interval]))",
                            "{{namespace}}/{{workload}}",
                        )],
                    ),
                ],
            },
            Row {
                title: "TCP",
                panels: vec![
                    panel(
                        Kind::TimeSeries,
                        "Bytes sent and received",
                        "Bps",
                        12,
                        "TCP payload per second by workload.",
                        vec![
                            q(
                                "sum by (namespace, workload) (rate(crowsnest_container_tcp_sent_bytes_total{{S}}[$__rate_interval]))",
                                "sent {{namespace}}/{{workload}}",
                            ),
                            q(
                                "sum by (namespace, workload) (rate(crowsnest_container_tcp_received_bytes_total{{S}}[$__rate_interval]))",
                                "received {{namespace}}/{{workload}}",
                            ),
                        ],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Retransmits",
                        "ops",
                        12,
                        "TCP retransmits per second by workload.",
                        vec![q(
                            "sum by (namespace, workload) (rate(crowsnest_container_tcp_retransmits_total{{S}}[$__rate_interval]))",
                            "{{namespace}}/{{workload}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Connect latency p99",
                        "s",
                        12,
                        "Outgoing connection setup time.",
                        vec![q(
                            "histogram_quantile(0.99, sum by (namespace, workload, le) (rate(crowsnest_container_tcp_connect_latency_seconds_bucket{{S}}[$__rate_interval])))",
                            "{{namespace}}/{{workload}}",
                        )],
                    ),
                    panel(
                        Kind::TimeSeries,
                        "Connections opened and failed",
                        "ops",
                        12,
                        "New connections and failed connects per second.",
                        vec![
                            q(
                                "sum by (namespace, workload) (rate(crowsnest_container_tcp_connections_opened_total{{S}}[$__rate_interval]))",
                                "opened {{namespace}}/{{workload}}",
                            ),
                            q(
                                "sum by (namespace, workload) (rate(crowsnest_container_tcp_connect_failures_total{{S}}[$__rate_interval]))",
                                "failed {{namespace}}/{{workload}}",
                            ),
                        ],
                    ),
                ],
            },
        ],
    }
}
