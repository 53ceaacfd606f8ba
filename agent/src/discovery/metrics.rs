//! `crowsnest_discovered_targets{component,source}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Component, Discovered, Source};

/// Labels of the gauge; both values come from fixed tables.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscoveredLabels {
    /// Component job name.
    pub component: &'static str,
    /// `manifest` or `probe`.
    pub source: &'static str,
}

/// Discovery's self-metrics.
#[derive(Clone, Default)]
pub struct DiscoveryMetrics {
    targets: Family<DiscoveredLabels, Gauge>,
}

impl DiscoveryMetrics {
    /// Registers the families.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "crowsnest_discovered_targets",
            "Control-plane targets discovery found on this node, by component and source",
            m.targets.clone(),
        );
        m
    }

    /// Sets every (component, source) pair, zero where nothing was found,
    /// so a component that disappears reads 0 rather than its old count.
    pub fn record(&self, targets: &[Discovered]) {
        for component in Component::all() {
            for source in Source::ALL {
                let n = targets
                    .iter()
                    .filter(|t| t.component() == component && t.source == source)
                    .count();
                self.targets
                    .get_or_create(&DiscoveredLabels {
                        component: component.job(),
                        source: source.as_str(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}
