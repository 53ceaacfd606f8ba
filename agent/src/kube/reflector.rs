//! The node-scoped pod reflector: list + watch of
//! `pods?fieldSelector=spec.nodeName=<node>`, each object stripped to a
//! [`PodMeta`] before it is cached.
//!
//! kube-runtime's watcher does the protocol work: paginated list, watch from
//! the list's resourceVersion with bookmarks, relist on 410 Gone, re-watch
//! when the server closes the stream. Errors reach us as stream items; the
//! default backoff (client-go's: 0.8s doubling to 30s, jittered) spaces the
//! retries so a restarting API server is not hammered by every node.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::metrics::KubeMetrics;
use super::owner::OwnerResolver;
use super::pod::{LabelAllowlist, PodMeta};
use super::store::PodStore;

/// Errors are logged at most this often (they are counted every time).
const LOG_EVERY: Duration = Duration::from_secs(30);

/// Resolves when the first full list has been cached.
#[derive(Clone)]
pub struct Synced(watch::Receiver<bool>);

impl Synced {
    /// A signal that is synced once `rx` reads true (the reflector makes
    /// one; tests and other sources may too).
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    /// True once the first list succeeded.
    pub fn is_synced(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits at most `timeout` for the first list; true when it happened.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let mut rx = self.0.clone();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|s| *s)).await,
            Ok(Ok(_))
        )
    }
}

/// What the reflector needs besides the client.
pub struct ReflectorParams {
    /// This node's name (the field selector).
    pub node: String,
    /// Pod labels kept.
    pub labels: LabelAllowlist,
    /// Owner resolution for the `workload` labels.
    pub owners: Arc<OwnerResolver>,
    /// Self-metrics.
    pub metrics: KubeMetrics,
}

/// A running pod reflector.
pub struct PodReflector {
    store: PodStore,
    synced: Synced,
    task: tokio::task::JoinHandle<()>,
}

impl PodReflector {
    /// Starts listing and watching this node's pods into a new store.
    pub fn spawn(client: Client, params: ReflectorParams) -> Self {
        let store = PodStore::new();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run(client, params, store.clone(), tx));
        Self {
            store,
            synced: Synced(rx),
            task,
        }
    }

    /// The pod cache.
    pub fn store(&self) -> &PodStore {
        &self.store
    }

    /// The first-list signal.
    pub fn synced(&self) -> Synced {
        self.synced.clone()
    }
}

impl Drop for PodReflector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The field selector that keeps the watch to this node.
pub fn node_selector(node: &str) -> String {
    format!("spec.nodeName={node}")
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

async fn strip(pod: Pod, params: &ReflectorParams) -> Option<PodMeta> {
    let mut meta = PodMeta::from_pod(pod, &params.labels)?;
    meta.workload = Some(params.owners.workload(&meta).await);
    params
        .metrics
        .set_objects("owner", params.owners.cached_len());
    Some(meta)
}

async fn run(
    client: Client,
    params: ReflectorParams,
    store: PodStore,
    synced: watch::Sender<bool>,
) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&node_selector(&params.node));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let m = &params.metrics;
    let mut listing: Vec<PodMeta> = Vec::new();
    let mut lists = 0u64;
    let mut last_log: Option<std::time::Instant> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => {
                listing.clear();
                // Every list after the first is a restart (410 Gone, or a
                // watch that could not resume).
                if lists > 0 {
                    m.watch_restarts.inc();
                }
            }
            Ok(Event::InitApply(pod)) => listing.extend(strip(pod, &params).await),
            Ok(Event::InitDone) => {
                lists += 1;
                let n = listing.len();
                store.replace(std::mem::take(&mut listing));
                m.set_objects("pod", store.len());
                m.last_sync.set(now_seconds());
                if !*synced.borrow() {
                    info!(node = %params.node, pods = n, "pod metadata synced");
                    synced.send_replace(true);
                } else {
                    debug!(pods = n, "pods relisted");
                }
            }
            Ok(Event::Apply(pod)) => {
                if let Some(meta) = strip(pod, &params).await {
                    store.apply(meta);
                }
                m.set_objects("pod", store.len());
                m.last_sync.set(now_seconds());
            }
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    store.delete(uid);
                }
                m.set_objects("pod", store.len());
                m.last_sync.set(now_seconds());
            }
            Err(e) => {
                m.watch_restarts.inc();
                if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    last_log = Some(std::time::Instant::now());
                    warn!(error = %e, node = %params.node, "pod watch failed; retrying with backoff");
                }
            }
        }
    }
}
