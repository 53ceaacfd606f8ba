//! The node's pod cache: pods by uid and by container id, plus a change
//! signal for consumers that derive something from the whole set (scrape
//! discovery, control-plane discovery).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;

use super::pod::{PodMeta, PodRef};

#[derive(Default)]
struct Inner {
    by_uid: HashMap<String, PodRef>,
    by_container: HashMap<String, PodRef>,
}

impl Inner {
    fn index(&mut self, pod: &PodRef) {
        for c in &pod.containers {
            if let Some(id) = &c.id {
                self.by_container.insert(id.clone(), pod.clone());
            }
        }
    }

    fn unindex(&mut self, pod: &PodMeta) {
        for id in pod.containers.iter().filter_map(|c| c.id.as_ref()) {
            // Only drop the entry when it still points at this pod (ids are
            // unique, but be safe against a stale MODIFIED ordering).
            if self.by_container.get(id).is_some_and(|p| p.uid == pod.uid) {
                self.by_container.remove(id);
            }
        }
    }
}

/// Pods on this node, as the reflector last saw them. Cheap to clone.
#[derive(Clone)]
pub struct PodStore {
    inner: Arc<RwLock<Inner>>,
    // Bumped on every change; receivers see "something changed".
    generation: Arc<watch::Sender<u64>>,
}

impl Default for PodStore {
    fn default() -> Self {
        Self::new()
    }
}

impl PodStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            generation: Arc::new(watch::Sender::new(0)),
        }
    }

    // A poisoned lock only means a panic elsewhere while holding it; the maps
    // are always left consistent by the short critical sections below.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Adds or replaces a pod.
    pub fn apply(&self, pod: PodMeta) {
        let pod = Arc::new(pod);
        {
            let mut inner = self.write();
            if let Some(old) = inner.by_uid.insert(pod.uid.clone(), pod.clone()) {
                inner.unindex(&old);
            }
            inner.index(&pod);
        }
        self.bump();
    }

    /// Removes a pod by uid.
    pub fn delete(&self, uid: &str) {
        {
            let mut inner = self.write();
            if let Some(old) = inner.by_uid.remove(uid) {
                inner.unindex(&old);
            }
        }
        self.bump();
    }

    /// Replaces the whole set (after a full list).
    pub fn replace(&self, pods: Vec<PodMeta>) {
        let mut fresh = Inner::default();
        for pod in pods {
            let pod = Arc::new(pod);
            fresh.index(&pod);
            fresh.by_uid.insert(pod.uid.clone(), pod);
        }
        *self.write() = fresh;
        self.bump();
    }

    /// The pod with `uid`.
    pub fn by_uid(&self, uid: &str) -> Option<PodRef> {
        self.read().by_uid.get(uid).cloned()
    }

    /// The pod running container `id` (bare runtime id).
    pub fn by_container_id(&self, id: &str) -> Option<PodRef> {
        self.read().by_container.get(id).cloned()
    }

    /// The pod whose IP is `ip` (host-network pods share the node IP and are
    /// skipped, so the answer is unambiguous).
    pub fn by_ip(&self, ip: &str) -> Option<PodRef> {
        self.read()
            .by_uid
            .values()
            .find(|p| !p.host_network && p.ip == ip)
            .cloned()
    }

    /// The pod serving a scrape target at `host:port`: a pod-network pod
    /// whose IP is `host`, else a host-network pod (control-plane static
    /// pods) declaring or probing port `port`, when `host` is its IP or loopback.
    pub fn by_endpoint(&self, host: &str, port: u16) -> Option<PodRef> {
        let inner = self.read();
        let pods = || inner.by_uid.values();
        pods()
            .find(|p| !p.host_network && !p.ip.is_empty() && p.ip == host)
            .or_else(|| {
                let loopback = host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                pods().find(|p| {
                    p.host_network
                        && (loopback || p.ip == host)
                        && p.ports
                            .iter()
                            .chain(&p.probe_ports)
                            .any(|pp| pp.port == port)
                })
            })
            .cloned()
    }

    /// A snapshot of every pod on this node, sorted by namespace and name.
    /// Control-plane discovery and scrape discovery read this after each
    /// change signalled by [`PodStore::changes`].
    pub fn pods(&self) -> Vec<PodRef> {
        let mut pods: Vec<PodRef> = self.read().by_uid.values().cloned().collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        pods
    }

    /// Number of cached pods.
    pub fn len(&self) -> usize {
        self.read().by_uid.len()
    }

    /// True when no pod is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver that changes whenever the set changes (the value is a
    /// generation counter; only "it changed" matters).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The current generation (see [`PodStore::changes`]).
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use super::super::pod::{ContainerKind, ContainerMeta};
    use super::*;

    fn pod(uid: &str, name: &str, ids: &[&str]) -> PodMeta {
        PodMeta {
            uid: uid.to_owned(),
            namespace: "ns".to_owned(),
            name: name.to_owned(),
            containers: ids
                .iter()
                .map(|id| ContainerMeta {
                    name: format!("c-{id}"),
                    id: Some((*id).to_owned()),
                    kind: ContainerKind::App,
                })
                .collect(),
            ..PodMeta::default()
        }
    }

    #[test]
    fn indexes_follow_updates_and_deletes() {
        let store = PodStore::new();
        let mut changes = store.changes();
        store.apply(pod("u1", "a", &["c1"]));
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert_eq!(store.by_container_id("c1").unwrap().name, "a");
        // The container restarted with a new id: the old one is gone.
        store.apply(pod("u1", "a", &["c2"]));
        assert!(store.by_container_id("c1").is_none());
        assert_eq!(store.by_container_id("c2").unwrap().uid, "u1");
        store.delete("u1");
        assert!(store.by_container_id("c2").is_none() && store.is_empty());
        assert!(changes.has_changed().unwrap());
    }

    #[test]
    fn replace_drops_pods_missing_from_the_list() {
        let store = PodStore::new();
        store.apply(pod("u1", "a", &["c1"]));
        store.replace(vec![pod("u2", "b", &["c2"])]);
        assert!(store.by_uid("u1").is_none() && store.by_container_id("c1").is_none());
        assert_eq!(store.pods().len(), 1);
    }
}
