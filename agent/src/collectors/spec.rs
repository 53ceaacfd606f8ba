//! What a collector is made of (object, programs, maps) and how it is loaded and attached.

use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{
        BtfTracePoint, FEntry, FExit, PerfEvent, Program,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
};
use crowsnest_ebpf_common::{KernelOffsets, OFFSETS_GLOBAL};

use super::{error::CollectorError, samples::CgroupSamples};
use crate::config::collectors::{CollectorKind, CollectorsConfig};

/// How a program is attached.
#[derive(Debug, Clone, Copy)]
pub enum Attach {
    /// BTF-enabled tracepoint (`tp_btf/<name>`).
    BtfTracepoint(&'static str),
    /// fentry on a kernel function.
    FEntry(&'static str),
    /// fexit on a kernel function.
    FExit(&'static str),
    /// A perf event on the CPU clock of every online CPU, firing every `period_ns`.
    CpuClock {
        /// Interval between events on each CPU, in nanoseconds.
        period_ns: u64,
    },
}

/// One program of a collector's object.
#[derive(Debug, Clone, Copy)]
pub struct ProgramSpec {
    /// Function name in the object.
    pub name: &'static str,
    /// Where it attaches.
    pub attach: Attach,
    /// When it cannot be loaded, the collector still runs without it (its status names the
    /// program and why); a required program failing fails the collector.
    pub optional: bool,
}

/// A loaded collector object and the optional programs that could not be attached.
pub struct Loaded {
    /// The object; its programs stay attached while it lives.
    pub ebpf: Ebpf,
    /// Optional programs left out, with the reason.
    pub skipped: Vec<(&'static str, String)>,
}

/// Reads a collector's maps into samples.
pub type ReadFn = fn(&mut Ebpf, &mut CgroupSamples) -> Result<(), CollectorError>;

/// Everything that defines a collector; each collector module exports one `SPEC`.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Which collector.
    pub kind: CollectorKind,
    /// The object built by `agent/build.rs` (empty when the build was skipped).
    pub object: &'static [u8],
    /// Its programs, all attached or the collector fails.
    pub programs: &'static [ProgramSpec],
    /// Maps keyed by cgroup, sized by `max_cgroups`.
    pub cgroup_maps: &'static [&'static str],
    /// In-flight LRU maps, sized by `max_inflight`.
    pub inflight_maps: &'static [&'static str],
    /// Reads the maps.
    pub read: ReadFn,
}

/// Loads the object with this kernel's offsets and configured map sizes, then loads and
/// attaches each program. Links live as long as the returned object.
pub fn load(
    spec: &Spec,
    cfg: &CollectorsConfig,
    offsets: &KernelOffsets,
    btf: &Btf,
) -> Result<Loaded, CollectorError> {
    if spec.object.is_empty() {
        return Err(CollectorError::NotBuilt);
    }
    let mut loader = EbpfLoader::new();
    loader
        .btf(Some(btf))
        .override_global(OFFSETS_GLOBAL, offsets, true);
    for map in spec.cgroup_maps {
        loader.map_max_entries(map, cfg.max_cgroups);
    }
    for map in spec.inflight_maps {
        loader.map_max_entries(map, cfg.max_inflight);
    }
    let mut ebpf = loader.load(spec.object).map_err(CollectorError::Load)?;
    let mut skipped = Vec::new();
    for program in spec.programs {
        match attach(&mut ebpf, program, btf) {
            Ok(()) => {}
            Err(err) if program.optional => skipped.push((program.name, err.reason())),
            Err(err) => return Err(err),
        }
    }
    Ok(Loaded { ebpf, skipped })
}

fn attach(ebpf: &mut Ebpf, spec: &ProgramSpec, btf: &Btf) -> Result<(), CollectorError> {
    let name = spec.name;
    let program = ebpf
        .program_mut(name)
        .ok_or(CollectorError::MissingProgram(name))?;
    let load_err = |source| CollectorError::ProgramLoad {
        program: name,
        source,
    };
    let attach_err = |source| CollectorError::Attach {
        program: name,
        source,
    };
    match spec.attach {
        Attach::BtfTracepoint(tracepoint) => {
            let program: &mut BtfTracePoint = program.try_into().map_err(load_err)?;
            program.load(tracepoint, btf).map_err(load_err)?;
            program.attach().map_err(attach_err)?;
        }
        Attach::FEntry(function) => {
            let program: &mut FEntry = program.try_into().map_err(load_err)?;
            program.load(function, btf).map_err(load_err)?;
            program.attach().map_err(attach_err)?;
        }
        Attach::CpuClock { period_ns } => {
            let program: &mut PerfEvent = program.try_into().map_err(load_err)?;
            program.load().map_err(load_err)?;
            let cpus = aya::util::online_cpus().map_err(|(_, e)| CollectorError::OnlineCpus(e))?;
            for cpu in cpus {
                program
                    .attach(
                        PerfEventConfig::Software(SoftwareEvent::CpuClock),
                        PerfEventScope::AllProcessesOneCpu { cpu },
                        SamplePolicy::Period(period_ns),
                        false,
                    )
                    .map_err(attach_err)?;
            }
        }
        Attach::FExit(function) => {
            let program: &mut FExit = program.try_into().map_err(load_err)?;
            program.load(function, btf).map_err(load_err)?;
            program.attach().map_err(attach_err)?;
        }
    }
    Ok(())
}

/// Kernel run time (ns) and run count of a loaded program; zeros when stats are disabled.
pub fn program_stats(program: &Program) -> (u64, u64) {
    program.info().map_or((0, 0), |info| {
        (
            u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
            info.run_count(),
        )
    })
}
