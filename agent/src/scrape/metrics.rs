//! Self-metrics of scraping. Families are registered once; per-target
//! series are removed when their target goes away.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of per-target self-metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Job name.
    pub job: String,
    /// Target instance.
    pub instance: String,
}

/// Labels of per-job error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Job name.
    pub job: String,
    /// Short, bounded reason (`timeout`, `unknown_ca`, `parse`, …).
    pub reason: String,
}

/// Labels of per-job counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// Job name.
    pub job: String,
}

/// Handles to every scrape self-metric.
#[derive(Clone, Default)]
pub struct ScrapeMetrics {
    /// 1 when the last scrape of the target succeeded.
    pub target_up: Family<TargetLabels, Gauge>,
    /// Duration of the last scrape.
    pub last_duration: Family<TargetLabels, Gauge<f64, AtomicU64>>,
    /// Samples kept from the last scrape.
    pub last_samples: Family<TargetLabels, Gauge>,
    /// Scrapes attempted.
    pub scrapes: Family<JobLabels, Counter>,
    /// Samples handed to delivery.
    pub samples: Family<JobLabels, Counter>,
    /// Failed scrapes by reason.
    pub errors: Family<ErrorLabels, Counter>,
    /// Samples skipped as duplicates of a series within one scrape.
    pub duplicates: Family<JobLabels, Counter>,
}

impl ScrapeMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "crowsnest_scrape_target_up",
            "1 if the last scrape of the target succeeded",
            m.target_up.clone(),
        );
        registry.register(
            "crowsnest_scrape_last_duration_seconds",
            "Duration of the target's last scrape",
            m.last_duration.clone(),
        );
        registry.register(
            "crowsnest_scrape_last_samples",
            "Samples kept from the target's last scrape after metric relabeling",
            m.last_samples.clone(),
        );
        registry.register("crowsnest_scrapes", "Scrapes attempted", m.scrapes.clone());
        registry.register(
            "crowsnest_scrape_samples",
            "Samples scraped and handed to delivery",
            m.samples.clone(),
        );
        registry.register(
            "crowsnest_scrape_errors",
            "Failed scrapes by reason",
            m.errors.clone(),
        );
        registry.register(
            "crowsnest_scrape_duplicate_samples",
            "Samples dropped because their series already had a sample in the same scrape",
            m.duplicates.clone(),
        );
        m
    }

    /// Forgets a target's series when it stops being scraped.
    pub fn remove_target(&self, labels: &TargetLabels) {
        self.target_up.remove(labels);
        self.last_duration.remove(labels);
        self.last_samples.remove(labels);
    }
}
