//! Workload owner of a pod, without cluster-wide watches: ReplicaSet ->
//! Deployment and Job -> CronJob are resolved by one lazy GET each, cached
//! with a TTL in a bounded map; DaemonSet, StatefulSet and bare pods need no
//! lookup.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Client};
use prometheus_client::metrics::counter::Counter;

use super::pod::PodMeta;

/// A failed lookup is retried after this long (not the full TTL), so a
/// transient API error does not pin the fallback for minutes.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// The workload a pod belongs to: the labels `workload_kind` and `workload`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    /// `Deployment`, `ReplicaSet`, `DaemonSet`, `StatefulSet`, `CronJob`,
    /// `Job`, `StaticPod` (mirror pods, owned by their `Node`), `Pod` (no
    /// controller) or another controller's kind.
    pub kind: String,
    /// The workload's name.
    pub name: String,
}

impl Workload {
    fn new(kind: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// Counters of owner lookups.
#[derive(Clone, Default)]
pub struct OwnerMetrics {
    /// GETs sent to the API server.
    pub lookups: Counter,
    /// GETs that failed (the pod keeps its direct owner as workload).
    pub lookup_errors: Counter,
}

type Key = (String, &'static str, String);

struct Entry {
    parent: Option<Workload>,
    expires: Instant,
}

/// Resolves pods to workloads, caching parent lookups.
pub struct OwnerResolver {
    client: Option<Client>,
    ttl: Duration,
    capacity: usize,
    cache: Mutex<HashMap<Key, Entry>>,
    metrics: OwnerMetrics,
}

impl OwnerResolver {
    /// A resolver using `client` for lookups (`None`: no lookups, the direct
    /// owner is the workload), caching at most `capacity` parents for `ttl`.
    pub fn new(
        client: Option<Client>,
        ttl: Duration,
        capacity: usize,
        metrics: OwnerMetrics,
    ) -> Self {
        Self {
            client,
            ttl,
            capacity: capacity.max(1),
            cache: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The workload of `pod`.
    pub async fn workload(&self, pod: &PodMeta) -> Workload {
        let Some(owner) = pod.controller() else {
            return Workload::new("Pod", &pod.name);
        };
        let lookup: Option<&'static str> = match owner.kind.as_str() {
            "ReplicaSet" => Some("ReplicaSet"),
            "Job" => Some("Job"),
            // Mirror pods of static manifests are owned by their Node.
            "Node" => return Workload::new("StaticPod", &pod.name),
            _ => None,
        };
        let Some(kind) = lookup else {
            return Workload::new(&owner.kind, &owner.name);
        };
        let key = (pod.namespace.clone(), kind, owner.name.clone());
        if let Some(hit) = self.cached(&key) {
            return hit.unwrap_or_else(|| Workload::new(kind, &owner.name));
        }
        let (parent, ttl) = match self.fetch_parent(&pod.namespace, kind, &owner.name).await {
            Ok(parent) => (parent, self.ttl),
            Err(e) => {
                self.metrics.lookup_errors.inc();
                tracing::debug!(kind, namespace = %pod.namespace, name = %owner.name, error = %e, "owner lookup failed");
                (None, NEGATIVE_TTL.min(self.ttl))
            }
        };
        self.store(key, parent.clone(), ttl);
        parent.unwrap_or_else(|| Workload::new(kind, &owner.name))
    }

    fn cached(&self, key: &Key) -> Option<Option<Workload>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.parent.clone())
    }

    fn store(&self, key: Key, parent: Option<Workload>, ttl: Duration) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= self.capacity && !cache.contains_key(&key) {
            let now = Instant::now();
            cache.retain(|_, e| e.expires > now);
            // Still full: drop the entry closest to expiry.
            if cache.len() >= self.capacity
                && let Some(victim) = cache
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone())
            {
                cache.remove(&victim);
            }
        }
        cache.insert(
            key,
            Entry {
                parent,
                expires: Instant::now() + ttl,
            },
        );
    }

    /// Number of cached owners.
    pub fn cached_len(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The controller of ReplicaSet/Job `name`: `Some` when it is a
    /// Deployment/CronJob (or another controller), `None` when it has none.
    async fn fetch_parent(
        &self,
        ns: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<Workload>, kube::Error> {
        let Some(client) = &self.client else {
            return Ok(None);
        };
        self.metrics.lookups.inc();
        let meta: ObjectMeta = if kind == "ReplicaSet" {
            Api::<ReplicaSet>::namespaced(client.clone(), ns)
                .get(name)
                .await?
                .metadata
        } else {
            Api::<Job>::namespaced(client.clone(), ns)
                .get(name)
                .await?
                .metadata
        };
        Ok(meta
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| Workload::new(&o.kind, &o.name)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use super::super::pod::OwnerMeta;
    use super::*;

    fn pod(owner: Option<(&str, &str)>) -> PodMeta {
        PodMeta {
            namespace: "ns".to_owned(),
            name: "p-1".to_owned(),
            owners: owner
                .map(|(kind, name)| OwnerMeta {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    controller: true,
                })
                .into_iter()
                .collect(),
            ..PodMeta::default()
        }
    }

    #[tokio::test]
    async fn direct_owners_need_no_lookup() {
        let r = OwnerResolver::new(None, Duration::from_secs(60), 4, OwnerMetrics::default());
        for (owner, want) in [
            (None, ("Pod", "p-1")),
            (Some(("DaemonSet", "ds")), ("DaemonSet", "ds")),
            (Some(("StatefulSet", "db")), ("StatefulSet", "db")),
            (Some(("Node", "node-1")), ("StaticPod", "p-1")),
            // Without an API the direct owner stands in.
            (Some(("ReplicaSet", "web-5d9c")), ("ReplicaSet", "web-5d9c")),
            (Some(("Job", "backup-28000")), ("Job", "backup-28000")),
        ] {
            assert_eq!(
                r.workload(&pod(owner)).await,
                Workload::new(want.0, want.1),
                "{owner:?}"
            );
        }
        assert_eq!(r.metrics.lookups.get(), 0);
    }

    #[test]
    fn cache_is_bounded() {
        let r = OwnerResolver::new(None, Duration::from_secs(60), 2, OwnerMetrics::default());
        for i in 0..5 {
            r.store(
                ("ns".to_owned(), "ReplicaSet", format!("rs-{i}")),
                None,
                Duration::from_secs(i + 1),
            );
        }
        assert_eq!(r.cached_len(), 2);
        // The newest (longest-lived) entries survive.
        assert!(
            r.cached(&("ns".to_owned(), "ReplicaSet", "rs-4".to_owned()))
                .is_some()
        );
    }
}
