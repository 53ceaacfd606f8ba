//! eBPF collectors: per-cgroup CPU, scheduling, process and TCP metrics aggregated in the kernel.
//!
//! Each collector (one folder) is a [`spec::Spec`]: an eBPF object built from `agent-ebpf/`, the
//! programs to attach and a function reading its maps into samples. [`REGISTERED`] is the one
//! list of collectors. Each is loaded on its own: a failure (verifier, missing tracepoint, no
//! BTF, no permission, agent built without eBPF) marks that collector failed with the reason and
//! the others run. Loaded collectors read their maps every `collectors.interval` and hand the
//! samples to the pipeline's [`SampleSink`]; series carry `cgroup` = the cgroup v2 path.

pub mod btf;
pub mod cgroups;
mod cpu;
mod error;
mod metrics;
mod process;
mod running;
pub mod samples;
pub mod spec;
mod tcp;
#[cfg(test)]
mod tests;

use std::{
    os::fd::OwnedFd,
    sync::{Arc, Mutex, PoisonError},
};

pub use error::CollectorError;
use metrics::SelfMetrics;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tracing::{Instrument as _, info, warn};

use self::{cgroups::CgroupResolver, running::Running, samples::CgroupSamples, spec::Spec};
use crate::{
    config::collectors::CollectorsConfig,
    model::{Sample, SampleSink},
};

/// Every collector the agent knows, in the order they are started.
pub static REGISTERED: [&Spec; 3] = [&cpu::SPEC, &process::SPEC, &tcp::SPEC];

/// State of one collector in `/api/v1/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectorState {
    /// Loaded and attached; its maps are read every interval.
    Loaded,
    /// Could not be loaded or attached; see the reason.
    Failed,
}

/// Kernel cost of one program (from bpf_stats; zero when stats are off).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgramStatus {
    /// Program name.
    pub name: &'static str,
    /// Loaded, or failed (only optional programs fail without failing their collector).
    pub state: CollectorState,
    /// Why it failed.
    pub reason: Option<String>,
    /// Total time spent running it, in seconds.
    pub run_time_seconds: f64,
    /// Times it ran.
    pub run_count: u64,
}

/// One collector's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorStatus {
    /// Collector name (`cpu`, `process`, `tcp`).
    pub name: &'static str,
    /// Loaded or failed.
    pub state: CollectorState,
    /// Why it failed.
    pub reason: Option<String>,
    /// Its programs' kernel cost.
    pub programs: Vec<ProgramStatus>,
}

struct Entry {
    spec: &'static Spec,
    reason: Option<String>,
    running: Option<Running>,
}

/// The running collectors. Dropping it stops the read task and detaches every program.
pub struct Collectors {
    entries: Arc<Vec<Mutex<Entry>>>,
    /// cgroup id -> path, walked once per read of all collectors.
    resolver: Arc<Mutex<CgroupResolver>>,
    sink: Arc<dyn SampleSink>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    // Keeps kernel bpf_stats on while the agent runs (the kernel turns them off on close).
    _stats: Option<OwnedFd>,
}

impl Collectors {
    /// Loads and attaches every enabled collector, registers the self-metrics in `registry`
    /// and, inside a Tokio runtime, starts one read task per loaded collector. Never fails:
    /// a collector that cannot run is reported in [`Collectors::status`] and
    /// `crowsnest_collector_up`.
    pub fn start(
        cfg: &CollectorsConfig,
        sink: Arc<dyn SampleSink>,
        registry: &mut Registry,
    ) -> Self {
        let specs: Vec<&'static Spec> = REGISTERED
            .iter()
            .copied()
            .filter(|s| cfg.enabled.contains(&s.kind))
            .collect();
        Self::start_with(&specs, cfg, sink, registry)
    }

    /// [`Collectors::start`] over an explicit list of collectors (tests inject broken ones).
    pub fn start_with(
        specs: &[&'static Spec],
        cfg: &CollectorsConfig,
        sink: Arc<dyn SampleSink>,
        registry: &mut Registry,
    ) -> Self {
        let metrics = SelfMetrics::register(registry);
        // Stats cost every BPF program on the host a little: only when we load some.
        let stats = if specs.is_empty() {
            None
        } else {
            enable_bpf_stats()
        };
        let shared = Shared::probe();
        let root = shared.as_ref().map(|s| s.cgroup_root.clone());
        let resolver = Arc::new(Mutex::new(CgroupResolver::new(root.unwrap_or_default())));
        let mut entries = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.kind.as_str();
            let loaded = match &shared {
                _ if spec.object.is_empty() => Err(CollectorError::NotBuilt.reason()),
                Err(err) => Err(err.reason()),
                Ok(shared) => {
                    spec::load(spec, cfg, &shared.offsets, &shared.btf).map_err(|err| err.reason())
                }
            };
            let entry = match loaded {
                Ok(loaded) => {
                    info!(collector = name, "eBPF collector loaded");
                    for (program, reason) in &loaded.skipped {
                        warn!(collector = name, program, %reason, "optional eBPF program left out");
                    }
                    metrics.up.get_or_create(&vec![("collector", name)]).set(1);
                    let samples = CgroupSamples::new(resolver.clone());
                    Entry {
                        spec,
                        reason: None,
                        running: Some(Running::new(spec, loaded, samples, &metrics)),
                    }
                }
                Err(reason) => {
                    warn!(collector = name, %reason, "eBPF collector failed; the others keep running");
                    metrics.up.get_or_create(&vec![("collector", name)]).set(0);
                    Entry {
                        spec,
                        reason: Some(reason),
                        running: None,
                    }
                }
            };
            entries.push(Mutex::new(entry));
        }
        let mut collectors = Self {
            entries: Arc::new(entries),
            resolver,
            sink,
            tasks: Vec::new(),
            _stats: stats,
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            collectors.spawn_reader(cfg.interval);
        }
        collectors
    }

    /// One task reads every loaded collector each interval: one walk of the cgroup tree serves
    /// them all. The reads themselves (map iteration, the walk) run on the blocking pool.
    fn spawn_reader(&mut self, interval: std::time::Duration) {
        if !self.entries.iter().any(|e| lock(e).running.is_some()) {
            return;
        }
        let (entries, resolver, sink) = (
            self.entries.clone(),
            self.resolver.clone(),
            self.sink.clone(),
        );
        let span = tracing::info_span!("collectors");
        self.tasks.push(tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let (entries, resolver) = (entries.clone(), resolver.clone());
                    let read = tokio::task::spawn_blocking(move || read_all(&entries, &resolver));
                    match read.await {
                        Ok(samples) if !samples.is_empty() => sink.append(samples),
                        Ok(_) => {}
                        Err(err) => warn!(error = %err, "collector read task failed"),
                    }
                }
            }
            .instrument(span),
        ));
    }

    /// Reads every loaded collector's maps now and hands the samples to the sink (the read
    /// task does this every interval; tests and shutdown flushes call it directly).
    pub fn collect_now(&self) {
        let samples = read_all(&self.entries, &self.resolver);
        if !samples.is_empty() {
            self.sink.append(samples);
        }
    }

    /// Status of every enabled collector, for `/api/v1/status`.
    pub fn status(&self) -> Vec<CollectorStatus> {
        self.entries
            .iter()
            .map(|entry| {
                let entry = lock(entry);
                let programs = entry
                    .spec
                    .programs
                    .iter()
                    .map(|p| {
                        let running = entry.running.as_ref();
                        let (ns, count) = running.map_or((0, 0), |r| r.program_stats(p.name));
                        let reason = running.and_then(|r| r.skipped(p.name)).map(str::to_owned);
                        let state = if running.is_some() && reason.is_none() {
                            CollectorState::Loaded
                        } else {
                            CollectorState::Failed
                        };
                        ProgramStatus {
                            name: p.name,
                            state,
                            reason,
                            run_time_seconds: ns as f64 / 1e9,
                            run_count: count,
                        }
                    })
                    .collect();
                CollectorStatus {
                    name: entry.spec.kind.as_str(),
                    state: if entry.running.is_some() {
                        CollectorState::Loaded
                    } else {
                        CollectorState::Failed
                    },
                    reason: entry.reason.clone(),
                    programs,
                }
            })
            .collect()
    }
}

impl Collectors {
    /// Stops the periodic reads (the programs stay attached until drop).
    /// Used at shutdown so nothing is produced after delivery has flushed.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Collectors {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Turns on the kernel's per-program run time accounting: `BPF_ENABLE_STATS` (5.8+) keeps it on
/// for as long as the returned fd lives; otherwise the `kernel.bpf_stats_enabled` sysctl, which
/// stays on after the agent exits. Without either, program costs read 0.
fn enable_bpf_stats() -> Option<OwnedFd> {
    match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => Some(fd),
        Err(err) => {
            let sysctl = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");
            info!(
                error = %err,
                sysctl_enabled = sysctl.is_ok(),
                "BPF_ENABLE_STATS unavailable; fell back to the bpf_stats_enabled sysctl"
            );
            None
        }
    }
}

fn lock(entry: &Mutex<Entry>) -> std::sync::MutexGuard<'_, Entry> {
    // A panic while holding the lock leaves plain counters behind; keep going.
    entry.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every collector needs, probed once.
struct Shared {
    btf: aya::Btf,
    offsets: crowsnest_ebpf_common::KernelOffsets,
    cgroup_root: std::path::PathBuf,
}

impl Shared {
    fn probe() -> Result<Self, CollectorError> {
        let cgroup_root = cgroups::cgroup2_mount().ok_or(CollectorError::NoCgroup2)?;
        let btf = aya::Btf::from_sys_fs().map_err(CollectorError::KernelBtf)?;
        let kernel = btf::Btf::from_file(std::path::Path::new(btf::VMLINUX_BTF))?;
        let offsets = btf::kernel_offsets(&kernel)?;
        Ok(Self {
            btf,
            offsets,
            cgroup_root,
        })
    }
}

/// One read of every collector, after one fresh walk of the cgroup tree (so removed cgroups
/// are noticed; a few hundred directories, negligible next to the interval).
fn read_all(entries: &[Mutex<Entry>], resolver: &Mutex<CgroupResolver>) -> Vec<Sample> {
    resolver
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .rescan(true);
    let mut samples = Vec::new();
    for entry in entries {
        let mut entry = lock(entry);
        let spec = entry.spec;
        if let Some(running) = entry.running.as_mut() {
            let _span = tracing::info_span!("collector", collector = spec.kind.as_str()).entered();
            samples.extend(running.collect(spec));
        }
    }
    samples
}
