//! `cpu` collector: on-CPU time, context switches and run-queue latency per cgroup
//! (kernel side: `agent-ebpf/src/cpu.rs`).

use aya::Ebpf;
use crowsnest_ebpf_common::CpuStats;

use super::{
    error::CollectorError,
    samples::CgroupSamples,
    spec::{Attach, ProgramSpec, Spec},
};
use crate::config::collectors::CollectorKind;

/// The collector's definition.
pub static SPEC: Spec = Spec {
    kind: CollectorKind::Cpu,
    object: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cpu")),
    programs: &PROGRAMS,
    cgroup_maps: &["CPU_STATS"],
    inflight_maps: &["WAKEUP_TS"],
    read,
};

/// Its programs (also used by tests to build a deliberately broken variant).
pub const PROGRAMS: [ProgramSpec; 4] = [
    ProgramSpec {
        name: "sched_switch",
        attach: Attach::BtfTracepoint("sched_switch"),
        optional: false,
    },
    ProgramSpec {
        name: "sched_wakeup",
        attach: Attach::BtfTracepoint("sched_wakeup"),
        optional: false,
    },
    ProgramSpec {
        name: "sched_wakeup_new",
        attach: Attach::BtfTracepoint("sched_wakeup_new"),
        optional: false,
    },
    // Charges tasks that keep their CPU without switching (see agent-ebpf/src/cpu.rs).
    ProgramSpec {
        name: "cpu_clock",
        attach: Attach::CpuClock {
            period_ns: 100_000_000,
        },
        optional: true,
    },
];

fn read(ebpf: &mut Ebpf, samples: &mut CgroupSamples) -> Result<(), CollectorError> {
    samples.for_each(ebpf, "CPU_STATS", |out, stats: &CpuStats| {
        let seconds = stats.on_cpu_ns as f64 / 1e9;
        out.counter(0, "crowsnest_container_cpu_seconds_total", &[], seconds);
        let name = "crowsnest_container_context_switches_total";
        out.counter(
            1,
            name,
            &[("kind", "voluntary")],
            stats.voluntary_switches as f64,
        );
        out.counter(
            2,
            name,
            &[("kind", "involuntary")],
            stats.involuntary_switches as f64,
        );
        let runq = "crowsnest_container_runqueue_latency_seconds";
        out.histogram(16, runq, &stats.runq_latency);
    })
}
