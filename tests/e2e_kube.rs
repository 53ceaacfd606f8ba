//! End to end with Kubernetes metadata: the real agent binary talks to the in-process API
//! server over HTTPS with a bearer token (through a kubeconfig, as a developer would),
//! discovers an annotated pod on its node, scrapes it, enriches its series with pod and
//! workload labels and remote-writes them to a real Prometheus; deleting the pod makes the
//! series stale.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use crowsnest_tests::kube_api::objects::replica_set;
use crowsnest_tests::kube_api::{KubeApi, PodFixture};
use crowsnest_tests::{Agent, Exporter, PROMETHEUS_BIN, Prometheus, require_binary};

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "e2e-token-8c1f";
const NODE: &str = "e2e-node";

fn agent_config(api: &KubeApi, remote: &str, kube_extra: &str) -> String {
    format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
         logging: {{level: debug, format: text}}\n\
         kubernetes:\n  node_name: {NODE}\n  kubeconfig: {}\n{kube_extra}\
         remote_write:\n  - url: {remote}\n    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 500ms}}\n",
        api.kubeconfig().display()
    )
}

#[tokio::test]
async fn annotated_pod_is_discovered_enriched_and_goes_stale_when_deleted() -> Result<()> {
    if require_binary(PROMETHEUS_BIN).is_skip() {
        return Ok(());
    }
    let exporter = Exporter::start().await?;
    exporter.serve_text("# TYPE app_requests_total counter\napp_requests_total 42\n");
    let port = exporter.addr().port();
    let api = KubeApi::start(TOKEN).await;
    api.put_owner(replica_set("shop", "web-7c9d", "web"));
    let annotated = |name: &str, uid: &str, node: &str, ip: &str| {
        PodFixture::new("shop", name, uid, node)
            .owner("ReplicaSet", "web-7c9d")
            .label("app.kubernetes.io/name", "web")
            .annotation("prometheus.io/scrape", "true")
            .annotation("prometheus.io/port", &port.to_string())
            .container("app", &format!("containerd://{}", "ab".repeat(32)))
            .port("app", port)
            .ip(ip)
    };
    api.seed_pods([
        annotated(
            "web-7c9d-aaaaa",
            "8d7e5f3a-0000-4000-8000-000000000001",
            NODE,
            "127.0.0.1",
        ),
        // Another node's pod is never requested, so never scraped.
        annotated(
            "web-7c9d-bbbbb",
            "8d7e5f3a-0000-4000-8000-000000000002",
            "other-node",
            "127.0.0.2",
        ),
    ]);
    let receiver = Prometheus::start().await?;
    let mut agent = Agent::start(&agent_config(
        &api,
        &receiver.remote_write_url(),
        "  mode: enabled\n",
    ))
    .await?;

    let query = r#"app_requests_total{job="kubernetes-pods"}"#;
    let got = receiver
        .api()
        .wait_for(query, |r| r.len() == 1, WAIT)
        .await
        .with_context(|| agent.log_tail(40))?;
    let labels = &got[0].0;
    for (name, want) in [
        ("namespace", "shop"),
        ("pod", "web-7c9d-aaaaa"),
        ("node", NODE),
        ("container", "app"),
        ("workload_kind", "Deployment"),
        ("workload", "web"),
        ("app_kubernetes_io_name", "web"),
        ("instance", &format!("127.0.0.1:{port}")),
    ] {
        ensure!(
            labels.get(name).map(String::as_str) == Some(want),
            "{name}: {labels:?}"
        );
    }

    // Only this node's pods were ever asked for.
    let pod_requests: Vec<_> = api
        .seen()
        .into_iter()
        .filter(|s| s.path == "/api/v1/pods")
        .collect();
    ensure!(!pod_requests.is_empty());
    for s in &pod_requests {
        ensure!(
            s.query.get("fieldSelector").map(String::as_str)
                == Some(&format!("spec.nodeName={NODE}")),
            "unscoped request: {s:?}"
        );
    }

    let status: serde_json::Value =
        serde_json::from_slice(&agent.get("/api/v1/status").await?.body)?;
    ensure!(status["kubernetes"]["mode"] == "kubernetes", "{status}");
    ensure!(
        status["kubernetes"]["synced"] == true && status["kubernetes"]["pods"] == 1,
        "{status}"
    );
    let metrics = agent.self_metrics().await?;
    ensure!(
        metrics.contains("crowsnest_kube_objects{kind=\"pod\"} 1"),
        "{metrics}"
    );
    ensure!(
        metrics.contains("crowsnest_kube_last_sync_timestamp_seconds "),
        "{metrics}"
    );

    // The pod goes away: its target stops and its series are marked stale.
    api.delete_pod("shop", "web-7c9d-aaaaa");
    receiver
        .api()
        .wait_for(query, Vec::is_empty, WAIT)
        .await
        .with_context(|| agent.log_tail(40))?;
    receiver
        .api()
        .wait_for(r#"up{job="kubernetes-pods"}"#, Vec::is_empty, WAIT)
        .await?;
    agent.stop()?;
    Ok(())
}

#[tokio::test]
async fn without_kubernetes_the_agent_runs_in_plain_host_mode() -> Result<()> {
    let api = KubeApi::start(TOKEN).await;
    let agent = Agent::start(&agent_config(
        &api,
        "http://127.0.0.1:9/api/v1/write",
        "  mode: disabled\n",
    ))
    .await?;
    let status: serde_json::Value =
        serde_json::from_slice(&agent.get("/api/v1/status").await?.body)?;
    ensure!(status["kubernetes"]["mode"] == "plain-host", "{status}");
    ensure!(
        status["kubernetes"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("disabled")),
        "{status}"
    );
    ensure!(api.seen().is_empty(), "no API request in plain-host mode");
    Ok(())
}

/// `process_resident_memory_bytes` from the agent's own metrics.
async fn rss(agent: &Agent) -> Result<f64> {
    let text = agent.self_metrics().await?;
    text.lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .context("process_resident_memory_bytes")?
        .trim()
        .parse()
        .context("parse RSS")
}

#[tokio::test]
async fn ten_thousand_pods_on_a_hundred_nodes_only_this_nodes_are_requested() -> Result<()> {
    let api = KubeApi::start(TOKEN).await;
    api.seed_pods((0..10_000).map(|i| {
        PodFixture::new(
            "shop",
            &format!("web-{i}"),
            &format!("00000000-0000-4000-8000-{i:012}"),
            &format!("node-{}", i % 100),
        )
        .owner("DaemonSet", "web")
        .label("app", "web")
        .label("pod-template-hash", "5d9c7b8f6")
        .annotation(
            "kubectl.kubernetes.io/last-applied-configuration",
            &"x".repeat(2000),
        )
        .container("app", &format!("containerd://{i:064x}"))
        .ip(&format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256))
    }));
    let config = |node: &str, mode: &str| {
        format!(
            "kubernetes:\n  node_name: {node}\n  kubeconfig: {}\n  mode: {mode}\n",
            api.kubeconfig().display()
        )
    };
    // Three agents: plain-host, a node without pods (the client's own cost)
    // and node-42 with its 100 pods (the metadata cache's cost).
    let plain = Agent::start(&config("node-42", "disabled")).await?;
    let empty = Agent::start(&config("node-empty", "enabled")).await?;
    let agent = Agent::start(&config("node-42", "enabled")).await?;
    crowsnest_tests::wait::poll(
        "100 pods cached",
        WAIT,
        Duration::from_millis(100),
        || async {
            let m = agent.self_metrics().await?;
            Ok(m.contains("crowsnest_kube_objects{kind=\"pod\"} 100")
                .then_some(()))
        },
    )
    .await?;
    let seen = api.seen();
    let selectors: std::collections::BTreeSet<_> = seen
        .iter()
        .map(|s| s.query.get("fieldSelector").cloned())
        .collect();
    let want: std::collections::BTreeSet<_> = ["spec.nodeName=node-42", "spec.nodeName=node-empty"]
        .iter()
        .map(|s| Some((*s).to_owned()))
        .collect();
    ensure!(selectors == want, "{seen:?}");
    let mib = |b: f64| b / 1_048_576.0;
    let (plain, empty, full) = (rss(&plain).await?, rss(&empty).await?, rss(&agent).await?);
    eprintln!(
        "scale: 10000 pods / 100 nodes; agent RSS plain-host {:.1} MiB, watching a node without pods {:.1} MiB, \
         with the node's 100 pods cached {:.1} MiB (client {:+.1} MiB, 100 pods {:+.1} MiB); {} API requests",
        mib(plain),
        mib(empty),
        mib(full),
        mib(empty - plain),
        mib(full - empty),
        seen.len()
    );
    Ok(())
}

/// The cgroup2 mount of this host (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid
/// hosts), from `/proc/self/mountinfo`.
fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))?
    })
}

/// Root, cgroup2 and kernel BTF: what loading the eBPF collectors and creating cgroups need.
/// Skips locally, fails when `CI=true`.
fn privileged(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    let ok = root
        && cgroup2_mount().is_some()
        && std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: needs root, cgroup2 and BTF"
        );
        eprintln!("skip {test}: needs root, cgroup2 and kernel BTF");
    }
    ok
}

/// Kubelet-shaped cgroup directories with a busy process in the leaf; the process is killed and
/// the directories this test created are removed on drop.
struct KubeletCgroup {
    created: Vec<std::path::PathBuf>,
    child: Option<std::process::Child>,
}

impl KubeletCgroup {
    fn new(root: &std::path::Path, rel: &str) -> Result<Self> {
        let mut created = Vec::new();
        let mut dir = root.to_path_buf();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
                created.push(dir.clone());
            }
        }
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg("while :; do :; done")
            .spawn()?;
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string())
            .context("move the workload")?;
        Ok(Self {
            created,
            child: Some(child),
        })
    }

    fn remove(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in self.created.drain(..).rev() {
            // The kernel needs a moment to release a killed task's cgroup.
            for _ in 0..50 {
                if std::fs::remove_dir(&dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for KubeletCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

#[tokio::test]
async fn ebpf_series_of_a_kubelet_cgroup_carry_pod_labels_and_go_stale() -> Result<()> {
    let test = "ebpf_series_of_a_kubelet_cgroup_carry_pod_labels_and_go_stale";
    if !privileged(test) || require_binary(PROMETHEUS_BIN).is_skip() {
        return Ok(());
    }
    let root = cgroup2_mount().context("cgroup2 mount")?;
    let uid = format!("7f3c2a10-0000-4000-8000-{:012x}", std::process::id());
    let id = format!("{:064x}", u64::from(std::process::id()) << 20 | 0xe2e);
    // containerd + systemd driver, Burstable QoS: the shape kubelet creates.
    let rel = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
        uid.replace('-', "_")
    );
    let mut cgroup = KubeletCgroup::new(&root, &rel)?;

    let api = KubeApi::start(TOKEN).await;
    api.put_owner(replica_set("shop", "web-7c9d", "web"));
    api.seed_pods([PodFixture::new("shop", "web-7c9d-ebpf1", &uid, NODE)
        .owner("ReplicaSet", "web-7c9d")
        .container("app", &format!("containerd://{id}"))
        .ip("10.9.0.7")]);
    let receiver = Prometheus::start().await?;
    let config = agent_config(&api, &receiver.remote_write_url(), "  mode: enabled\n")
        + "collectors:\n  enabled: [cpu]\n  interval: 1s\n";
    let mut agent = Agent::start(&config).await?;

    let query = format!("crowsnest_container_cpu_seconds_total{{cgroup=\"{rel}\"}}");
    let got = receiver
        .api()
        .wait_for(&query, |r| !r.is_empty(), WAIT)
        .await
        .with_context(|| agent.log_tail(40))?;
    for (labels, _) in &got {
        for (name, want) in [
            ("namespace", "shop"),
            ("pod", "web-7c9d-ebpf1"),
            ("container", "app"),
            ("node", NODE),
            ("workload_kind", "Deployment"),
            ("workload", "web"),
        ] {
            ensure!(
                labels.get(name).map(String::as_str) == Some(want),
                "{name}: {labels:?}"
            );
        }
    }
    // Never an unlabelled twin of the same cgroup.
    let all = receiver
        .api()
        .series(&format!("{{cgroup=\"{rel}\"}}"))
        .await?;
    ensure!(
        all.iter().all(|l| l.get("pod").is_some()),
        "unlabelled series: {all:?}"
    );

    // The pod is deleted and its cgroup removed: the series go stale.
    api.delete_pod("shop", "web-7c9d-ebpf1");
    cgroup.remove();
    receiver
        .api()
        .wait_for(&query, Vec::is_empty, WAIT)
        .await
        .with_context(|| agent.log_tail(40))?;
    agent.stop()?;
    Ok(())
}

#[tokio::test]
async fn coredns_pod_from_the_watch_is_discovered_as_a_control_plane_component() -> Result<()> {
    if require_binary(PROMETHEUS_BIN).is_skip() {
        return Ok(());
    }
    // CoreDNS does not run on the host network, so no port probe on the
    // node's loopback finds it: only its pod (k8s-app=kube-dns) does.
    let coredns = Exporter::start().await?;
    coredns.serve_text(
        "# TYPE coredns_dns_requests_total counter\ncoredns_dns_requests_total{server=\"dns://:53\",zone=\".\",proto=\"udp\",family=\"1\",type=\"A\"} 12\n",
    );
    let port = coredns.addr().port();
    let api = KubeApi::start(TOKEN).await;
    api.seed_pods([PodFixture::new(
        "kube-system",
        "coredns-5d78c9869d-abcde",
        "8d7e5f3a-0000-4000-8000-0000000000dd",
        NODE,
    )
    .label("k8s-app", "kube-dns")
    .container("coredns", &format!("containerd://{}", "cd".repeat(32)))
    .ip("127.0.0.1")]);
    let prometheus = Prometheus::start().await?;
    let config = agent_config(&api, &prometheus.remote_write_url(), "")
        + &format!(
            "discovery:\n  components:\n    coredns: {{ports: [{port}]}}\n    etcd: {{enabled: false}}\n    apiserver: {{enabled: false}}\n    kube-controller-manager: {{enabled: false}}\n    kube-scheduler: {{enabled: false}}\n    kube-proxy: {{enabled: false}}\n    kubelet: {{enabled: false}}\n"
        );
    let agent = Agent::start(&config).await?;
    let up = prometheus
        .wait_for("up{job=\"coredns\"}", |r| r.len() == 1, WAIT)
        .await?;
    assert_eq!(up[0].1, 1.0, "{up:?}");
    assert_eq!(up[0].0.get("node").map(String::as_str), Some(NODE));
    let status: serde_json::Value =
        serde_json::from_str(&agent.get("/api/v1/status").await?.text())?;
    let discovered = status["discovered"]
        .as_array()
        .and_then(|d| d.iter().find(|t| t["component"] == "coredns"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(discovered["source"], "pod", "{status:#}");
    assert_eq!(discovered["address"], format!("127.0.0.1:{port}"));
    Ok(())
}
