//! Self-metrics of the Kubernetes metadata stage, registered once.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::owner::OwnerMetrics;

/// Label of `crowsnest_kube_objects`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `pod` (this node's pods) or `owner` (cached ReplicaSet/Job owners).
    pub kind: &'static str,
}

/// Handles to the kube self-metrics.
#[derive(Clone, Default)]
pub struct KubeMetrics {
    /// Unix time the pod cache was last known current (list or event).
    pub last_sync: Gauge<f64, AtomicU64>,
    /// Watch failures and relists after the first list.
    pub watch_restarts: Counter,
    /// Objects cached, by kind.
    pub objects: Family<KindLabel, Gauge>,
    /// Owner lookups.
    pub owners: OwnerMetrics,
}

impl KubeMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "crowsnest_kube_last_sync_timestamp_seconds",
            "Unix time of the last pod list or watch event (a quiet node updates it rarely)",
            m.last_sync.clone(),
        );
        registry.register(
            "crowsnest_kube_watch_restarts",
            "Pod watch failures and relists after the first list",
            m.watch_restarts.clone(),
        );
        registry.register(
            "crowsnest_kube_objects",
            "Kubernetes objects cached, by kind",
            m.objects.clone(),
        );
        registry.register(
            "crowsnest_kube_owner_lookups",
            "GETs of ReplicaSets and Jobs to find their Deployment or CronJob",
            m.owners.lookups.clone(),
        );
        registry.register(
            "crowsnest_kube_owner_lookup_errors",
            "Owner GETs that failed",
            m.owners.lookup_errors.clone(),
        );
        m
    }

    pub(super) fn set_objects(&self, kind: &'static str, n: usize) {
        self.objects
            .get_or_create(&KindLabel { kind })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
