//! The reflector and owner lookups against the in-process API server, over
//! HTTPS with a bearer token, exactly as in a cluster.

#![allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]

use std::sync::Arc;
use std::time::Duration;

use super::test_api::objects::{job, replica_set};
use super::test_api::{Fault, KubeApi, PodFixture};
use super::*;

const TOKEN: &str = "test-token-3f9a";

fn uid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn cid(i: usize) -> String {
    format!("{i:064x}")
}

fn pod(i: usize, node: &str) -> PodFixture {
    PodFixture::new("default", &format!("pod-{i}"), &uid(i), node)
        .container("app", &format!("containerd://{}", cid(i)))
}

async fn reflect(api: &KubeApi, node: &str, metrics: KubeMetrics) -> PodReflector {
    let client = client(Some(&api.kubeconfig())).await.unwrap();
    let owners = Arc::new(OwnerResolver::new(
        Some(client.clone()),
        Duration::from_secs(60),
        64,
        metrics.owners.clone(),
    ));
    PodReflector::spawn(
        client,
        ReflectorParams {
            node: node.to_owned(),
            labels: LabelAllowlist::new(["app".to_owned()]),
            owners,
            metrics,
        },
    )
}

/// Polls `check` until it holds (10s at most).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn lists_and_watches_only_this_node() {
    let api = KubeApi::start(TOKEN).await;
    api.seed_pods([
        pod(1, "node-a")
            .init_container("init", &format!("cri-o://{}", cid(101)))
            .ip("10.1.0.1")
            .port("app", 8080),
        pod(2, "node-b"),
        pod(3, "node-a"),
    ]);
    let metrics = KubeMetrics::default();
    let r = reflect(&api, "node-a", metrics.clone()).await;
    assert!(r.synced().wait(Duration::from_secs(10)).await, "first list");
    let store = r.store().clone();
    assert_eq!(
        store
            .pods()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["pod-1", "pod-3"]
    );
    // Stripped: no pod of node-b, container index filled, workload set.
    let p1 = store.by_container_id(&cid(1)).unwrap();
    assert_eq!(p1.uid, uid(1));
    assert_eq!(p1.workload.as_ref().unwrap().kind, "Pod");
    assert!(store.by_container_id(&cid(2)).is_none());
    // Init containers are indexed too, and pods are found by IP.
    assert_eq!(store.by_container_id(&cid(101)).unwrap().name, "pod-1");
    assert_eq!(store.by_ip("10.1.0.1").unwrap().name, "pod-1");
    assert_eq!(
        store.by_endpoint("10.1.0.1", 8080).unwrap().ports[0].container,
        "app"
    );
    assert_eq!(
        store.by_endpoint("10.1.0.1", 8080).unwrap().ports[0].container,
        "app"
    );

    api.put_pod(&pod(4, "node-a"));
    api.put_pod(&pod(5, "node-b"));
    eventually("pod-4 added", || store.by_uid(&uid(4)).is_some()).await;
    api.delete_pod("default", "pod-1");
    eventually("pod-1 deleted", || store.by_uid(&uid(1)).is_none()).await;
    assert!(store.by_uid(&uid(5)).is_none());
    assert_eq!(
        metrics
            .objects
            .get_or_create(&KindLabel { kind: "pod" })
            .get(),
        2
    );
    assert!(metrics.last_sync.get() > 1.0e9);

    let seen = api.seen();
    assert!(seen.iter().any(SeenRequest::is_watch) && seen.iter().any(|s| !s.is_watch()));
    for s in &seen {
        assert_eq!(s.path, "/api/v1/pods");
        assert_eq!(
            s.query.get("fieldSelector").map(String::as_str),
            Some("spec.nodeName=node-a"),
            "{s:?}"
        );
    }
    assert!(seen.iter().filter(|s| s.is_watch()).all(|s| {
        s.query
            .get("allowWatchBookmarks")
            .is_some_and(|b| b == "true")
    }));
}

use super::test_api::SeenRequest;

#[tokio::test]
async fn workloads_via_lazy_owner_gets() {
    let api = KubeApi::start(TOKEN).await;
    api.put_owner(replica_set("shop", "web-7c9d", "web"));
    api.put_owner(job("ops", "backup-29000", "backup"));
    let on_a = |name: &str, i: usize| {
        PodFixture::new(
            if name.starts_with("backup") {
                "ops"
            } else {
                "shop"
            },
            name,
            &uid(i),
            "node-a",
        )
    };
    api.seed_pods([
        on_a("web-7c9d-aaaaa", 1).owner("ReplicaSet", "web-7c9d"),
        on_a("web-7c9d-bbbbb", 2).owner("ReplicaSet", "web-7c9d"),
        on_a("backup-29000-ccccc", 3).owner("Job", "backup-29000"),
        on_a("db-0", 4).owner("StatefulSet", "db"),
        on_a("agent-x1", 5).owner("DaemonSet", "agent"),
        // An orphaned ReplicaSet name (GET answers 404): the ReplicaSet stands in.
        on_a("old-5f5f-ddddd", 6).owner("ReplicaSet", "old-5f5f"),
    ]);
    let metrics = KubeMetrics::default();
    let r = reflect(&api, "node-a", metrics.clone()).await;
    assert!(r.synced().wait(Duration::from_secs(10)).await);
    let workload = |i: usize| {
        let w = r.store().by_uid(&uid(i)).unwrap().workload.clone().unwrap();
        (w.kind, w.name)
    };
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(workload(1), s("Deployment", "web"));
    assert_eq!(workload(2), s("Deployment", "web"));
    assert_eq!(workload(3), s("CronJob", "backup"));
    assert_eq!(workload(4), s("StatefulSet", "db"));
    assert_eq!(workload(5), s("DaemonSet", "agent"));
    assert_eq!(workload(6), s("ReplicaSet", "old-5f5f"));
    // One GET per distinct ReplicaSet/Job: the second web pod hit the cache.
    let gets: Vec<String> = api
        .seen()
        .into_iter()
        .filter(|s| s.path.starts_with("/apis/"))
        .map(|s| s.path)
        .collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert_eq!(metrics.owners.lookups.get(), 3);
    assert_eq!(metrics.owners.lookup_errors.get(), 1);
    assert_eq!(
        metrics
            .objects
            .get_or_create(&KindLabel { kind: "owner" })
            .get(),
        3
    );
}

#[tokio::test]
async fn survives_gone_errors_and_dropped_connections() {
    let api = KubeApi::start_with(TOKEN, Duration::from_millis(200)).await;
    api.seed_pods([pod(1, "node-a")]);
    let metrics = KubeMetrics::default();
    let r = reflect(&api, "node-a", metrics.clone()).await;
    assert!(r.synced().wait(Duration::from_secs(10)).await);
    let store = r.store().clone();
    let lists = |api: &KubeApi| api.seen().iter().filter(|s| !s.is_watch()).count();
    assert_eq!(lists(&api), 1);

    // The API server restarts: open watches drop; it resumes from the last
    // resourceVersion (no relist) and misses nothing.
    api.drop_watches();
    api.put_pod(&pod(2, "node-a"));
    eventually("pod-2 after reconnect", || store.by_uid(&uid(2)).is_some()).await;
    assert_eq!(lists(&api), 1, "a dropped watch resumes without relisting");

    // History compacted while disconnected: 410 Gone -> relist, and the pod
    // deleted meanwhile disappears.
    api.delete_pod("default", "pod-1");
    api.compact();
    api.inject(Fault::Gone);
    api.drop_watches();
    api.put_pod(&pod(3, "node-a"));
    eventually("relist after 410", || {
        store.by_uid(&uid(3)).is_some() && store.by_uid(&uid(1)).is_none()
    })
    .await;
    assert!(lists(&api) >= 2);

    // A 500 on the next request is retried with backoff.
    let restarts = metrics.watch_restarts.get();
    api.inject(Fault::Status500);
    api.drop_watches();
    api.put_pod(&pod(4, "node-a"));
    eventually("pod-4 after a 500", || store.by_uid(&uid(4)).is_some()).await;
    assert!(metrics.watch_restarts.get() > restarts);
    assert_eq!(store.len(), 3);
}

#[tokio::test]
async fn bookmarks_keep_resume_point_fresh() {
    // Events for other nodes advance the resourceVersion; bookmarks carry it
    // to the agent, so after compaction a resume does not need a relist.
    let api = KubeApi::start_with(TOKEN, Duration::from_millis(100)).await;
    api.seed_pods([pod(1, "node-a")]);
    let r = reflect(&api, "node-a", KubeMetrics::default()).await;
    assert!(r.synced().wait(Duration::from_secs(10)).await);
    for i in 10..20 {
        api.put_pod(&pod(i, "node-b"));
    }
    tokio::time::sleep(api.bookmark_every() * 4).await;
    api.compact();
    api.drop_watches();
    api.put_pod(&pod(2, "node-a"));
    eventually("pod-2", || r.store().by_uid(&uid(2)).is_some()).await;
    let lists = api.seen().iter().filter(|s| !s.is_watch()).count();
    assert_eq!(lists, 1, "resumed from the bookmark's resourceVersion");
}

#[tokio::test]
async fn wrong_token_is_refused_and_never_synced() {
    let api = KubeApi::start(TOKEN).await;
    let good = api.kubeconfig();
    let bad = good.with_file_name("bad-kubeconfig");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&good)
            .unwrap()
            .replace(TOKEN, "wrong"),
    )
    .unwrap();
    let client = client(Some(&bad)).await.unwrap();
    let metrics = KubeMetrics::default();
    let owners = Arc::new(OwnerResolver::new(
        None,
        Duration::from_secs(1),
        1,
        OwnerMetrics::default(),
    ));
    let r = PodReflector::spawn(
        client,
        ReflectorParams {
            node: "n".into(),
            labels: LabelAllowlist::default(),
            owners,
            metrics: metrics.clone(),
        },
    );
    assert!(!r.synced().wait(Duration::from_secs(2)).await);
    assert!(metrics.watch_restarts.get() >= 1);
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_ten_thousand_pods_only_this_nodes_are_requested() {
    let api = KubeApi::start(TOKEN).await;
    api.seed_pods((0..10_000).map(|i| {
        pod(i, &format!("node-{}", i % 100))
            .label("app", &format!("app-{}", i % 37))
            .label("pod-template-hash", "5d9c7b8f6")
            .annotation(
                "kubectl.kubernetes.io/last-applied-configuration",
                &"x".repeat(2000),
            )
    }));
    // Warm up the client, TLS and runtime with a node that has no pods, so
    // the RSS delta below is the metadata cache (and the list it came from).
    let empty = reflect(&api, "node-none", KubeMetrics::default()).await;
    assert!(empty.synced().wait(Duration::from_secs(30)).await);
    let before = rss_bytes();
    let r = reflect(&api, "node-42", KubeMetrics::default()).await;
    assert!(r.synced().wait(Duration::from_secs(30)).await);
    let after = rss_bytes();
    let store = r.store();
    assert_eq!(store.len(), 100);
    assert!(
        store
            .pods()
            .iter()
            .all(|p| p.node == "node-42" && p.annotations.is_empty() && p.labels.len() == 1)
    );
    let seen: Vec<SeenRequest> = api
        .seen()
        .into_iter()
        .filter(|s| {
            s.query
                .get("fieldSelector")
                .is_none_or(|f| f != "spec.nodeName=node-none")
        })
        .collect();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|s| s.query.get("fieldSelector").map(String::as_str)
                == Some("spec.nodeName=node-42")),
        "{seen:?}"
    );
    eprintln!(
        "scale: 10000 pods on 100 nodes, {} cached, {} requests, RSS delta {} KiB",
        store.len(),
        seen.len(),
        after.saturating_sub(before) / 1024
    );
}

/// A `v1.PodList` in the exact shape a kubeadm control-plane node serves
/// (CoreDNS behind a ReplicaSet, a static kube-scheduler mirror pod).
const KUBEADM_NODE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/kube/podlist-kubeadm-node.json"
));

#[test]
fn kubeadm_node_fixture_resolves_end_to_end() {
    let list: serde_json::Value = serde_json::from_str(KUBEADM_NODE).unwrap();
    let pods: Vec<k8s_openapi::api::core::v1::Pod> =
        serde_json::from_value(list["items"].clone()).unwrap();
    let allow = LabelAllowlist::new(["k8s-app".to_owned(), "component".to_owned()]);
    let store = PodStore::new();
    store.replace(
        pods.into_iter()
            .filter_map(|p| PodMeta::from_pod(p, &allow))
            .collect(),
    );
    assert_eq!(store.len(), 2);

    let coredns = store.by_endpoint("10.244.0.3", 9153).unwrap();
    assert_eq!(coredns.name, "coredns-7c65d6cfc9-x2kq8");
    assert_eq!(coredns.controller().unwrap().kind, "ReplicaSet");
    assert_eq!(coredns.labels.keys().collect::<Vec<_>>(), ["k8s-app"]);
    assert_eq!(
        coredns.k8s_app.as_deref(),
        Some("kube-dns"),
        "kept for control-plane discovery"
    );
    assert_eq!(coredns.ports.len(), 3);
    assert_eq!(
        coredns
            .probe_ports
            .iter()
            .map(|p| p.port)
            .collect::<Vec<_>>(),
        [8080, 8181]
    );

    // The static scheduler on the host network, scraped on loopback.
    let scheduler = store.by_endpoint("127.0.0.1", 10259).unwrap();
    assert_eq!(
        (scheduler.name.as_str(), scheduler.host_network),
        ("kube-scheduler-cp-1", true)
    );
    assert_eq!(scheduler.controller().unwrap().kind, "Node");
    assert!(store.by_endpoint("127.0.0.1", 9999).is_none());

    // The cgroup of CoreDNS' container (containerd, systemd driver) joins to the pod.
    let id = "1d0c5a7e3f9b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d";
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope",
        coredns.uid.replace('-', "_")
    );
    let ident = cgroup::resolve(&path);
    let by_uid = store.by_uid(ident.pod_uid.as_deref().unwrap()).unwrap();
    assert_eq!(
        by_uid
            .container_by_id(ident.container_id.as_deref().unwrap())
            .unwrap()
            .name,
        "coredns"
    );
    assert!(Arc::ptr_eq(&by_uid, &store.by_container_id(id).unwrap()));

    // Discovery: one target per declared port; the scheduler (no ports) at its IP.
    let targets = discovery::pod_targets(&store.pods(), &[]);
    let addresses: Vec<&str> = targets
        .iter()
        .filter_map(|t| t.get("__address__"))
        .collect();
    assert_eq!(
        addresses,
        [
            "10.244.0.3:53",
            "10.244.0.3:53",
            "10.244.0.3:9153",
            "192.168.56.10"
        ]
    );
    assert_eq!(
        targets[0].get("__meta_kubernetes_pod_container_port_protocol"),
        Some("UDP")
    );
}
