//! Discovered targets as scrape jobs: labels, curated sets, how they meet
//! the user's jobs, and the discovery gauge.

use std::path::PathBuf;

use super::{curated_rules, merge, scrape_configs};
use crate::config::{Global, MetricSet, Scheme, ScrapeConfig, load_from_str};
use crate::discovery::{Component, Discovered, DiscoveryMetrics, Found, Source};
use crate::model::Labels;

fn global() -> Global {
    load_from_str("", &[]).unwrap().global
}

fn job_of(targets: &[(&str, &str)]) -> Vec<ScrapeConfig> {
    let mut yaml = String::from("scrape_configs:\n");
    for (job, target) in targets {
        yaml.push_str(&format!(
            "  - job_name: {job}\n    static_configs: [{{targets: [\"{target}\"]}}]\n"
        ));
    }
    load_from_str(&yaml, &[]).unwrap().scrape_configs
}

#[test]
fn jobs_carry_node_and_kubelet_metrics_path_and_the_curated_set() {
    let cfg = load_from_str("discovery: {components: {kube-proxy: {metrics: all}}}", &[])
        .unwrap()
        .discovery;
    let found = [
        Found::new(Component::Kubelet, Scheme::Https, "127.0.0.1", 10250),
        Found::new(Component::KubeProxy, Scheme::Http, "127.0.0.1", 10249),
    ];
    let targets: Vec<Discovered> = found
        .into_iter()
        .map(|f| Discovered::new(f, Source::Probe, &cfg))
        .collect();
    let jobs = scrape_configs(&targets, &cfg, &global(), "node-1").unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.job_name.as_str()).collect::<Vec<_>>(),
        ["kube-proxy", "kubelet"]
    );
    let kubelet = &jobs[1];
    let resolved = crate::scrape::target::resolve(kubelet);
    let mut urls: Vec<(String, String, String)> = resolved
        .targets
        .iter()
        .map(|t| {
            (
                t.url.to_string(),
                t.labels.get("metrics_path").unwrap_or_default().to_owned(),
                t.labels.get("node").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    urls.sort();
    assert_eq!(
        urls,
        ["/metrics", "/metrics/cadvisor", "/metrics/resource"].map(|p| (
            format!("https://127.0.0.1:10250{p}"),
            p.to_owned(),
            "node-1".to_owned()
        ))
    );
    // kubelet: curated; kube-proxy: all (no rules).
    let mut series = Labels::from_pairs([("__name__", "container_tasks_state")]);
    assert!(!kubelet.metric_relabel_configs.process(&mut series));
    let mut series = Labels::from_pairs([("__name__", "go_gc_duration_seconds")]);
    assert!(jobs[0].metric_relabel_configs.process(&mut series));
    assert_eq!(cfg.component(Component::KubeProxy).metrics, MetricSet::All);
}

#[test]
fn user_jobs_win_over_discovered_ones() {
    let cfg = load_from_str("", &[]).unwrap().discovery;
    let found = [
        Found::new(Component::KubeProxy, Scheme::Http, "127.0.0.1", 10249),
        Found::new(Component::CoreDns, Scheme::Http, "127.0.0.1", 9153),
        Found::new(Component::Etcd, Scheme::Http, "127.0.0.1", 2381),
    ];
    let targets: Vec<Discovered> = found
        .into_iter()
        .map(|f| Discovered::new(f, Source::Probe, &cfg))
        .collect();
    let discovered = scrape_configs(&targets, &cfg, &global(), "n").unwrap();
    // A user job named like a component, and one scraping coredns' address under another name.
    let user = job_of(&[("etcd", "10.0.0.10:2381"), ("dns", "127.0.0.1:9153")]);
    let merged = merge(&user, discovered);
    let names: Vec<&str> = merged.iter().map(|j| j.job_name.as_str()).collect();
    assert_eq!(names, ["etcd", "dns", "kube-proxy"]);
    assert_eq!(merged[0].static_configs[0].targets, ["10.0.0.10:2381"]);
}

#[test]
fn gauge_counts_every_component_and_source() {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = DiscoveryMetrics::register(&mut registry);
    let cfg = load_from_str("", &[]).unwrap().discovery;
    let f = Found::new(Component::Etcd, Scheme::Http, "127.0.0.1", 2381);
    metrics.record(&[Discovered::new(f, Source::Manifest, &cfg)]);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("crowsnest_discovered_targets{component=\"etcd\",source=\"manifest\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("crowsnest_discovered_targets{component=\"etcd\",source=\"probe\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("crowsnest_discovered_targets{component=\"kube-proxy\",source=\"probe\"} 0"),
        "{text}"
    );
}

#[test]
fn curated_rules_compile_for_every_component() {
    for c in Component::all() {
        curated_rules(c).unwrap();
    }
}

/// The real kube-controller-manager capture under ../shared, when present:
/// the curated set keeps what the seeds watch and drops the rest.
#[test]
fn curated_set_on_the_real_kube_controller_manager_payload() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/payloads/kube-controller-manager_k8s-1.35.prom"
    ));
    let Ok(body) = std::fs::read(&path) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is missing",
            path.display()
        );
        eprintln!("skipped: {} not found", path.display());
        return;
    };
    let rules = crate::scrape::ingest::IngestRules {
        target_labels: Labels::from_pairs([
            ("job", "kube-controller-manager"),
            ("instance", "127.0.0.1:10257"),
        ]),
        honor_labels: false,
        honor_timestamps: true,
        metric_relabel: curated_rules(Component::ControllerManager).unwrap(),
        sample_limit: 0,
        label_limit: 0,
        keep_exemplars: false,
    };
    let mut out = Vec::new();
    let stats = crate::scrape::ingest::ingest(
        &mut Default::default(),
        &rules,
        &body,
        crate::scrape::parse::Format::Prometheus,
        1,
        &mut out,
    )
    .unwrap();
    let names: std::collections::BTreeSet<String> = out
        .iter()
        .map(|s| {
            s.series
                .labels()
                .get("__name__")
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for want in [
        "workqueue_adds_total",
        "workqueue_depth",
        "workqueue_queue_duration_seconds_bucket",
        "rest_client_requests_total",
        "process_resident_memory_bytes",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    assert!(
        names.iter().all(|n| !n.starts_with("apiserver_audit")),
        "{names:?}"
    );
    // The workqueue histograms the seeds ask for are most of the payload; what
    // goes is feature gates, request/response sizes, Go runtime detail.
    for gone in [
        "kubernetes_feature_enabled",
        "rest_client_response_size_bytes_bucket",
        "go_gc_duration_seconds",
    ] {
        assert!(!names.contains(gone), "{gone} kept");
    }
    assert!(stats.post_relabel < stats.scraped * 2 / 3, "{stats:?}");
}

/// The scrape manager restarts a job only when its Debug rendering changes:
/// two passes finding the same targets must render identically.
#[test]
fn jobs_are_identical_across_passes() {
    let cfg = load_from_str("", &[]).unwrap().discovery;
    let pass = || {
        let f = Found::new(Component::Kubelet, Scheme::Https, "127.0.0.1", 10250);
        let targets = [Discovered::new(f, Source::Probe, &cfg)];
        format!(
            "{:?}",
            scrape_configs(&targets, &cfg, &global(), "n").unwrap()
        )
    };
    assert_eq!(pass(), pass());
}
