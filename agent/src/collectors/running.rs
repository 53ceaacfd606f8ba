//! A loaded collector: its eBPF object, series cache and self-metric handles, and the read
//! that turns its maps into samples.

use std::{
    sync::atomic::AtomicU64,
    time::{SystemTime, UNIX_EPOCH},
};

use aya::{Ebpf, maps::PerCpuArray};
use crowsnest_ebpf_common::drops;
use prometheus_client::metrics::counter::Counter;
use tracing::{info, warn};

use super::{
    metrics::SelfMetrics,
    samples::CgroupSamples,
    spec::{self, Loaded, Spec},
};
use crate::model::Sample;

/// `DROPS` slots and their `map` label.
const DROP_SLOTS: [(u32, &str); 3] = [
    (drops::STATS, "stats"),
    (drops::HISTOGRAM, "histogram"),
    (drops::INFLIGHT, "inflight"),
];

/// Metric handles of one collector, created once at load.
struct Handles {
    read_errors: Counter,
    /// Per program of the spec, in order: run time and run count.
    programs: Vec<(Counter<f64, AtomicU64>, Counter)>,
    drops: Vec<Counter>,
}

/// A loaded and attached collector.
pub struct Running {
    ebpf: Ebpf,
    /// Optional programs that could not be attached, with the reason.
    skipped: Vec<(&'static str, String)>,
    samples: CgroupSamples,
    handles: Handles,
    /// Kernel totals at the previous read (the kernel reports totals, metrics take deltas).
    last_programs: Vec<(u64, u64)>,
    last_drops: [u64; DROP_SLOTS.len()],
    /// Kind of the last read failure, so a persistent failure logs once, not every interval.
    failing: Option<&'static str>,
}

impl Running {
    /// Wraps a loaded object; creates the collector's metric handles.
    pub fn new(spec: &Spec, loaded: Loaded, samples: CgroupSamples, metrics: &SelfMetrics) -> Self {
        let name = spec.kind.as_str();
        let handles = Handles {
            read_errors: metrics
                .read_errors
                .get_or_create(&vec![("collector", name)])
                .clone(),
            programs: spec
                .programs
                .iter()
                .map(|p| {
                    let labels = vec![("collector", name), ("program", p.name)];
                    (
                        metrics.run_time.get_or_create(&labels).clone(),
                        metrics.run_count.get_or_create(&labels).clone(),
                    )
                })
                .collect(),
            drops: DROP_SLOTS
                .iter()
                .map(|(_, map)| {
                    let labels = vec![("collector", name), ("map", *map)];
                    metrics.map_full_drops.get_or_create(&labels).clone()
                })
                .collect(),
        };
        Self {
            ebpf: loaded.ebpf,
            skipped: loaded.skipped,
            samples,
            handles,
            last_programs: vec![(0, 0); spec.programs.len()],
            last_drops: [0; DROP_SLOTS.len()],
            failing: None,
        }
    }

    /// Keys (cgroup ids) currently in the per-cgroup map `map`.
    #[cfg(test)]
    pub fn cgroup_keys(&self, map: &str) -> Vec<u64> {
        let Some(map) = self.ebpf.map(map) else {
            return Vec::new();
        };
        aya::maps::HashMap::<_, u64, crowsnest_ebpf_common::CpuStats>::try_from(map)
            .map(|m| m.keys().filter_map(Result::ok).collect())
            .unwrap_or_default()
    }

    /// Why optional program `name` was left out, if it was.
    pub fn skipped(&self, name: &str) -> Option<&str> {
        self.skipped
            .iter()
            .find(|(program, _)| *program == name)
            .map(|(_, reason)| reason.as_str())
    }

    /// Kernel run time (ns) and run count of program `name`.
    pub fn program_stats(&self, name: &str) -> (u64, u64) {
        self.ebpf.program(name).map_or((0, 0), spec::program_stats)
    }

    /// Reads the maps into samples (none when the read fails: a partial read would mark the
    /// unread cgroups stale) and updates the self-metrics.
    pub fn collect(&mut self, spec: &Spec) -> Vec<Sample> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.samples.begin(now_ms);
        let collector = spec.kind.as_str();
        let samples = match (spec.read)(&mut self.ebpf, &mut self.samples) {
            Ok(()) => {
                if self.failing.take().is_some() {
                    info!(collector, "reading maps works again");
                }
                self.samples.finish().to_vec()
            }
            Err(err) => {
                self.handles.read_errors.inc();
                if self.failing.replace(err.kind()) != Some(err.kind()) {
                    warn!(collector, kind = err.kind(), error = %err.reason(), "reading maps failed");
                }
                Vec::new()
            }
        };
        self.update_costs(spec);
        self.update_drops();
        samples
    }

    fn update_costs(&mut self, spec: &Spec) {
        for (i, program) in spec.programs.iter().enumerate() {
            let (ns, count) = self.program_stats(program.name);
            let (Some(last), Some((run_time, run_count))) =
                (self.last_programs.get_mut(i), self.handles.programs.get(i))
            else {
                continue;
            };
            run_time.inc_by(ns.saturating_sub(last.0) as f64 / 1e9);
            run_count.inc_by(count.saturating_sub(last.1));
            *last = (ns, count);
        }
    }

    fn update_drops(&mut self) {
        let Some(map) = self.ebpf.map("DROPS") else {
            return;
        };
        let Ok(table) = PerCpuArray::<_, u64>::try_from(map) else {
            return;
        };
        for (i, (slot, _)) in DROP_SLOTS.iter().enumerate() {
            let Ok(values) = table.get(slot, 0) else {
                continue;
            };
            let total: u64 = values.iter().sum();
            if let (Some(last), Some(counter)) =
                (self.last_drops.get_mut(i), self.handles.drops.get(i))
            {
                counter.inc_by(total.saturating_sub(*last));
                *last = total;
            }
        }
    }
}
