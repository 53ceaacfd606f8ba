//! Every Grafana panel query in deploy/dashboards must return data from a real
//! Prometheus fed by a real crowsnest: a real etcd (its plain metrics port),
//! kube-proxy and kube-controller-manager stand-ins serving recorded
//! exposition text, and the eBPF collectors of this machine. Panels that can
//! only show data after a rare event (an OOM kill, a leader change) or that
//! need another exporter are listed with the reason; any other empty panel
//! fails the test.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use crowsnest_tests::instance::Instance;
use crowsnest_tests::kube_api::KubeApi;
use crowsnest_tests::ports::free_port;
use crowsnest_tests::process::{ChildProcess, STOP_GRACE};
use crowsnest_tests::{Agent, Exporter, PROMETHEUS_BIN, Prometheus, require_binary, wait};
use serde_json::Value;

const ETCD_BIN: &str = "/usr/bin/etcd";
const KUBE_PROXY: &str = include_str!("../agent/src/discovery/testdata/kube-proxy.prom");
const KCM: &str = include_str!("../agent/src/discovery/testdata/kube-controller-manager.prom");
const WAIT: Duration = Duration::from_secs(60);

/// Families the recorded fixtures lack but the dashboards chart: a 5xx answer
/// to kube-proxy, 3xx/4xx answers and request latency for the controller
/// manager (shapes as the real components expose them).
const KUBE_PROXY_EXTRA: &str =
    "rest_client_requests_total{code=\"503\",host=\"10.0.0.10:6443\",method=\"GET\"} 2\n";
const KCM_EXTRA: &str = r#"# TYPE rest_client_request_duration_seconds histogram
rest_client_request_duration_seconds_bucket{host="10.0.0.10:6443",verb="GET",le="0.005"} 10
rest_client_request_duration_seconds_bucket{host="10.0.0.10:6443",verb="GET",le="0.1"} 40
rest_client_request_duration_seconds_bucket{host="10.0.0.10:6443",verb="GET",le="+Inf"} 42
rest_client_request_duration_seconds_sum{host="10.0.0.10:6443",verb="GET"} 1.5
rest_client_request_duration_seconds_count{host="10.0.0.10:6443",verb="GET"} 42
rest_client_requests_total{code="304",host="10.0.0.10:6443",method="GET"} 3
rest_client_requests_total{code="404",host="10.0.0.10:6443",method="GET"} 1
"#;
const NODE: &str = "dash-node-1";

/// Panels allowed to be empty here, by (dashboard file, panel title), and why.
const EVENT_ONLY: &[(&str, &str, &str)] = &[
    (
        "agent-health.json",
        "Nodes",
        "kube_node_info comes from kube-state-metrics, not run here",
    ),
    (
        "agent-health.json",
        "Nodes without an agent",
        "kube_node_info comes from kube-state-metrics, not run here",
    ),
    (
        "etcd.json",
        "Peer round trip p99",
        "a single-member etcd has no peers",
    ),
];

/// One query per panel target, with Grafana's variables filled in.
fn panel_queries() -> Result<Vec<(String, String, String)>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_owned();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let mut panels: Vec<&Value> = doc["panels"].as_array().into_iter().flatten().collect();
        while let Some(panel) = panels.pop() {
            panels.extend(panel["panels"].as_array().into_iter().flatten());
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str() else {
                    continue;
                };
                let expr = expr
                    .replace("$__rate_interval", "1m")
                    .replace("$__interval", "15s")
                    .replace("$__range", "5m")
                    .replace("$cluster", ".*")
                    .replace("$node", ".*")
                    .replace("$namespace", ".*");
                out.push((file.clone(), title.clone(), expr));
            }
        }
    }
    Ok(out)
}

#[tokio::test]
async fn every_dashboard_panel_returns_data() -> Result<()> {
    for bin in [PROMETHEUS_BIN, ETCD_BIN] {
        if require_binary(bin).is_skip() {
            return Ok(());
        }
    }
    let dir = Instance::temp_dir("dash-etcd")?;
    let (client, peer, metrics) = (free_port()?, free_port()?, free_port()?);
    let mut etcd = ChildProcess::spawn(
        "etcd",
        Command::new(ETCD_BIN).args([
            "--name=dash".to_owned(),
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--listen-client-urls=http://127.0.0.1:{client}"),
            format!("--advertise-client-urls=http://127.0.0.1:{client}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-cluster=dash=http://127.0.0.1:{peer}"),
            format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"),
        ]),
        &dir.path().join("etcd.log"),
    )?;
    wait::poll(
        "etcd metrics port",
        WAIT,
        Duration::from_millis(100),
        || async move {
            Ok(TcpStream::connect(("127.0.0.1", metrics))
                .is_ok()
                .then_some(()))
        },
    )
    .await?;
    let kube_proxy = Exporter::start().await?;
    kube_proxy.serve_text(format!("{KUBE_PROXY}{KUBE_PROXY_EXTRA}"));
    let kcm = Exporter::start().await?;
    kcm.serve_text(format!("{KCM}{KCM_EXTRA}"));

    // An API server with no pods on this node: the metadata watch runs and
    // reports its cache, as in a cluster.
    let api = KubeApi::start("dashboards-token").await;
    let prometheus = Prometheus::start().await?;
    let job = |name: &str, target: &str| {
        format!(
            "  - job_name: {name}\n    static_configs: [{{targets: [\"{target}\"], labels: {{node: {NODE}}}}}]\n"
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels: {{cluster: dash}}\n\
         discovery: {{enabled: false}}\ncollectors: {{interval: 1s}}\nkubernetes: {{node_name: {NODE}, kubeconfig: {}}}\nscrape_configs:\n{}{}{}{}remote_write:\n  - url: {}\n    queue_config: {{batch_send_deadline: 200ms}}\n",
        api.kubeconfig().display(),
        job("etcd", &format!("127.0.0.1:{metrics}")),
        job("kube-proxy", &kube_proxy.target()),
        job("kube-controller-manager", &kcm.target()),
        // A target that refuses connections, so scrape errors are charted.
        job("unreachable", &format!("127.0.0.1:{}", free_port()?)),
        prometheus.remote_write_url()
    );
    let _agent = Agent::start(&config).await?;

    let queries = panel_queries()?;
    assert!(queries.len() > 40, "found {} panel queries", queries.len());
    for (file, title, _) in EVENT_ONLY {
        assert!(
            queries.iter().any(|(f, t, _)| f == file && t == title),
            "EVENT_ONLY names a panel that does not exist: {file} / {title}"
        );
    }
    // Rates need two samples of every series, histograms a few more.
    prometheus
        .wait_for("up{job=\"etcd\"} == 1", |r| r.len() == 1, WAIT)
        .await?;
    // Start processes meanwhile, so process starts are charted.
    for _ in 0..12 {
        for _ in 0..5 {
            Command::new("/bin/true").status()?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let mut empty = Vec::new();
    for (file, title, expr) in &queries {
        let result = prometheus
            .query(expr)
            .await
            .with_context(|| format!("{file} / {title}: {expr}"))?;
        if result.is_empty() {
            empty.push((file.as_str(), title.as_str(), expr.as_str()));
        }
    }
    let unexpected: Vec<_> = empty
        .iter()
        .filter(|(f, t, _)| !EVENT_ONLY.iter().any(|(ef, et, _)| ef == f && et == t))
        .collect();
    etcd.stop(STOP_GRACE)?;
    assert!(
        unexpected.is_empty(),
        "{} of {} panel queries returned no data:\n{:#?}",
        unexpected.len(),
        queries.len(),
        unexpected
    );
    Ok(())
}
