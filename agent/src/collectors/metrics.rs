//! The collectors' self-metrics, created up front and registered once.

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Label set of the collector metrics (bounded: collector/program/map names are compile-time).
pub type LabelSet = Vec<(&'static str, &'static str)>;

/// Handles of the collector self-metrics.
#[derive(Clone, Default)]
pub struct SelfMetrics {
    /// `crowsnest_collector_up{collector}`: 1 loaded and attached, 0 failed.
    pub up: Family<LabelSet, Gauge>,
    /// `crowsnest_ebpf_program_run_time_seconds_total{collector,program}` (bpf_stats).
    pub run_time: Family<LabelSet, Counter<f64, std::sync::atomic::AtomicU64>>,
    /// `crowsnest_ebpf_program_run_count_total{collector,program}` (bpf_stats).
    pub run_count: Family<LabelSet, Counter>,
    /// `crowsnest_ebpf_map_full_drops_total{collector,map}`: updates lost to a full map.
    pub map_full_drops: Family<LabelSet, Counter>,
    /// `crowsnest_collector_read_errors_total{collector}`: failed map reads.
    pub read_errors: Family<LabelSet, Counter>,
}

impl SelfMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "crowsnest_collector_up",
            "Whether the eBPF collector is loaded and attached (1) or failed (0)",
            metrics.up.clone(),
        );
        registry.register(
            "crowsnest_ebpf_program_run_time_seconds",
            "Kernel CPU time spent in the eBPF program (needs bpf_stats)",
            metrics.run_time.clone(),
        );
        registry.register(
            "crowsnest_ebpf_program_run_count",
            "Times the eBPF program ran (needs bpf_stats)",
            metrics.run_count.clone(),
        );
        registry.register(
            "crowsnest_ebpf_map_full_drops",
            "Kernel map updates lost because the map was full",
            metrics.map_full_drops.clone(),
        );
        registry.register(
            "crowsnest_collector_read_errors",
            "Failed reads of an eBPF collector's maps",
            metrics.read_errors.clone(),
        );
        metrics
    }
}
