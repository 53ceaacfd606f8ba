#![allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::kube::{ContainerKind, ContainerMeta, PodMeta, Workload};
use crate::model::{Labels, MetricType, Series, is_stale_nan};

const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const UID_: &str = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0";

#[derive(Default)]
struct Capture(Mutex<Vec<Sample>>);

impl SampleSink for Capture {
    fn append(&self, samples: Vec<Sample>) {
        self.0.lock().unwrap().extend(samples);
    }
}

impl Capture {
    fn take(&self) -> Vec<Sample> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn cid() -> String {
    "ab".repeat(32)
}

fn series() -> SeriesRef {
    let path = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{}.scope",
        cid()
    );
    Series::new(
        Labels::from_pairs([
            ("__name__", "crowsnest_cpu_seconds_total"),
            ("cgroup", path.as_str()),
        ]),
        MetricType::Counter,
    )
}

fn pod() -> PodMeta {
    PodMeta {
        uid: UID.to_owned(),
        namespace: "shop".to_owned(),
        name: "web-1".to_owned(),
        node: "node-a".to_owned(),
        containers: vec![ContainerMeta {
            name: "app".to_owned(),
            id: Some(cid()),
            kind: ContainerKind::App,
        }],
        workload: Some(Workload {
            kind: "Deployment".to_owned(),
            name: "web".to_owned(),
        }),
        ..PodMeta::default()
    }
}

fn sample(series: &SeriesRef, t: i64) -> Sample {
    Sample {
        series: series.clone(),
        timestamp_ms: t,
        value: t as f64,
        extra: None,
    }
}

fn enricher(
    store: &PodStore,
    hold_ms: u64,
    max: usize,
    plain: bool,
) -> (Enricher, Arc<Capture>, EnrichMetrics) {
    let cap = Arc::new(Capture::default());
    let metrics = EnrichMetrics::default();
    let e = Enricher::spawn(
        cap.clone(),
        store.clone(),
        LabelPlan::new("node-a", &[], plain),
        HoldConfig {
            hold: Duration::from_millis(hold_ms),
            max_samples: max,
            until_synced: None,
        },
        metrics.clone(),
    );
    (e, cap, metrics)
}

fn get<'a>(s: &'a Sample, name: &str) -> Option<&'a str> {
    s.series.labels().get(name)
}

#[tokio::test]
async fn known_container_enriched_and_cached_per_series() {
    let store = PodStore::new();
    store.apply(pod());
    let (e, cap, metrics) = enricher(&store, 1000, 100, false);
    let s = series();
    e.append(vec![sample(&s, 1)]);
    e.append(vec![sample(&s, 2)]);
    let out = cap.take();
    assert_eq!(out.len(), 2);
    assert_eq!(get(&out[0], "pod"), Some("web-1"));
    assert_eq!(get(&out[0], "container"), Some("app"));
    assert_eq!(get(&out[0], "workload"), Some("web"));
    // The same enriched Arc both times, recorded on the series: the stage
    // keeps no entry for a settled series.
    assert!(Arc::ptr_eq(&out[0].series, &out[1].series));
    assert!(
        matches!(s.enriched(store.generation()), Some(Some(o)) if Arc::ptr_eq(&o, &out[0].series))
    );
    assert_eq!(metrics.waiting.get(), 0);
}

#[tokio::test]
async fn unknown_container_is_held_until_its_pod_arrives() {
    let store = PodStore::new();
    let (e, cap, metrics) = enricher(&store, 5000, 100, false);
    let s = series();
    e.append(vec![sample(&s, 1), sample(&s, 2)]);
    assert!(cap.take().is_empty(), "held, not sent unlabelled");
    assert_eq!((metrics.held.get(), metrics.waiting.get()), (2, 1));
    store.apply(pod());
    tokio::time::sleep(TICK * 3).await;
    e.append(vec![sample(&s, 3)]);
    let out = cap.take();
    assert_eq!(
        out.iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        out.iter()
            .all(|s| get(s, "pod") == Some("web-1") && !is_stale_nan(s.value))
    );
    assert_eq!(metrics.hold_expired.get(), 0);
    // Resolved and released: the entry gave way to the result on the series.
    assert_eq!(metrics.waiting.get(), 0);
    assert!(matches!(s.enriched(store.generation()), Some(Some(_))));
}

#[tokio::test]
async fn hold_expires_then_late_labels_replace_the_partial_series() {
    let store = PodStore::new();
    let (e, cap, metrics) = enricher(&store, 100, 100, false);
    let s = series();
    e.append(vec![sample(&s, 1)]);
    tokio::time::sleep(Duration::from_millis(100) + TICK * 2).await;
    let out = cap.take();
    assert_eq!(out.len(), 1, "sent with what is known after the hold");
    assert_eq!(
        (get(&out[0], "node"), get(&out[0], "pod")),
        (Some("node-a"), None)
    );
    assert_eq!(metrics.hold_expired.get(), 1);
    // The pod shows up: the partial series is marked stale, the full one starts.
    store.apply(pod());
    e.append(vec![sample(&s, 2)]);
    let out = cap.take();
    assert_eq!(out.len(), 2);
    assert!(is_stale_nan(out[0].value) && get(&out[0], "pod").is_none());
    assert_eq!(
        (out[1].timestamp_ms, get(&out[1], "pod")),
        (2, Some("web-1"))
    );
}

#[tokio::test]
async fn full_hold_buffer_releases_in_order() {
    let store = PodStore::new();
    let (e, cap, metrics) = enricher(&store, 60_000, 2, false);
    let s = series();
    e.append(vec![sample(&s, 1), sample(&s, 2), sample(&s, 3)]);
    let out = cap.take();
    assert_eq!(
        out.iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(metrics.hold_overflow.get(), 2);
}

#[tokio::test]
async fn plain_host_mode_uses_container_id_only() {
    let store = PodStore::new();
    let (e, cap, _) = enricher(&store, 5000, 100, true);
    e.append(vec![sample(&series(), 1)]);
    let out = cap.take();
    assert_eq!(out.len(), 1, "nothing to wait for in plain-host mode");
    assert_eq!(get(&out[0], "container_id"), Some(cid().as_str()));
    assert_eq!(get(&out[0], "pod"), None);
}

#[tokio::test]
async fn unrelated_series_pass_through_unchanged() {
    let store = PodStore::new();
    store.apply(pod());
    let (e, cap, _) = enricher(&store, 5000, 100, false);
    let s = Series::new(
        Labels::from_pairs([("__name__", "up"), ("instance", "10.9.9.9:80")]),
        MetricType::Gauge,
    );
    e.append(vec![sample(&s, 1)]);
    let out = cap.take();
    assert!(Arc::ptr_eq(&out[0].series, &s));
}

#[tokio::test]
async fn before_the_first_pod_list_unknown_pods_are_held_past_the_hold() {
    let store = PodStore::new();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let cap = Arc::new(Capture::default());
    let e = Enricher::spawn(
        cap.clone(),
        store.clone(),
        LabelPlan::new("node-a", &[], false),
        HoldConfig {
            hold: Duration::from_millis(50),
            max_samples: 100,
            until_synced: Some((
                crate::kube::Synced::new(rx),
                std::time::Instant::now() + Duration::from_secs(10),
            )),
        },
        EnrichMetrics::default(),
    );
    let s = series();
    e.append(vec![sample(&s, 1)]);
    tokio::time::sleep(TICK * 3).await;
    assert!(cap.take().is_empty(), "held beyond `hold` while not synced");
    // The first list arrives with the pod.
    store.apply(pod());
    tx.send_replace(true);
    tokio::time::sleep(TICK * 3).await;
    let out = cap.take();
    assert_eq!(out.len(), 1);
    assert_eq!(get(&out[0], "pod"), Some("web-1"));
}

#[tokio::test]
async fn settled_series_skip_the_map_until_the_pod_cache_changes() {
    let store = PodStore::new();
    let (e, cap, _) = enricher(&store, 5000, 100, false);
    let s = Series::new(
        Labels::from_pairs([("__name__", "up"), ("instance", "10.1.2.3:8080")]),
        MetricType::Gauge,
    );
    e.append(vec![sample(&s, 1)]);
    assert_eq!(
        s.enriched(store.generation()),
        Some(None),
        "unrelated: recorded as passing unchanged"
    );
    e.append(vec![sample(&s, 2)]);
    // The target turns out to be a pod's port: a new generation, so the
    // recorded result no longer applies and the series is resolved again.
    store.apply(PodMeta {
        ip: "10.1.2.3".to_owned(),
        ports: vec![crate::kube::PortMeta {
            container: "app".to_owned(),
            name: "http".to_owned(),
            port: 8080,
            protocol: "TCP".to_owned(),
        }],
        ..pod()
    });
    assert_eq!(s.enriched(store.generation()), None);
    tokio::time::sleep(super::RECHECK_UNRELATED).await;
    e.append(vec![sample(&s, 3)]);
    e.append(vec![sample(&s, 4)]);
    let out = cap.take();
    let pods: Vec<_> = out
        .iter()
        .filter(|o| !is_stale_nan(o.value))
        .map(|o| get(o, "pod"))
        .collect();
    assert_eq!(pods, [None, None, Some("web-1"), Some("web-1")]);
    assert!(matches!(s.enriched(store.generation()), Some(Some(_))));
}

#[tokio::test]
async fn a_complete_result_outlives_pod_cache_changes_without_a_map_entry() {
    let store = PodStore::new();
    store.apply(pod());
    let (e, cap, metrics) = enricher(&store, 5000, 100, false);
    let s = series();
    e.append(vec![sample(&s, 1)]);
    // Another pod changes: the generation moves, the recorded result stays.
    store.apply(PodMeta {
        uid: "other".to_owned(),
        name: "other-1".to_owned(),
        ..PodMeta::default()
    });
    assert_eq!(
        s.enriched(store.generation()),
        None,
        "recorded before the change"
    );
    e.append(vec![sample(&s, 2)]);
    let out = cap.take();
    assert_eq!(out.len(), 2, "no stale marker: nothing changed");
    assert!(Arc::ptr_eq(&out[0].series, &out[1].series));
    assert!(matches!(s.enriched(store.generation()), Some(Some(_))));
    assert_eq!(metrics.waiting.get(), 0);
}
