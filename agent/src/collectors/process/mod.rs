//! `process` collector: fork/exec/exit counts and OOM kills per cgroup
//! (kernel side: `agent-ebpf/src/process.rs`).

use aya::Ebpf;
use crowsnest_ebpf_common::ProcStats;

use super::{
    error::CollectorError,
    samples::CgroupSamples,
    spec::{Attach, ProgramSpec, Spec},
};
use crate::config::collectors::CollectorKind;

/// The collector's definition.
pub static SPEC: Spec = Spec {
    kind: CollectorKind::Process,
    object: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/process")),
    programs: &[
        // task_newtask carries clone_flags, so threads can be told from processes;
        // sched_process_fork does not.
        ProgramSpec {
            name: "task_newtask",
            attach: Attach::BtfTracepoint("task_newtask"),
            optional: false,
        },
        ProgramSpec {
            name: "sched_process_exec",
            attach: Attach::BtfTracepoint("sched_process_exec"),
            optional: false,
        },
        ProgramSpec {
            name: "sched_process_exit",
            attach: Attach::BtfTracepoint("sched_process_exit"),
            optional: false,
        },
        ProgramSpec {
            name: "mark_victim",
            attach: Attach::BtfTracepoint("mark_victim"),
            optional: false,
        },
    ],
    cgroup_maps: &["PROC_STATS"],
    inflight_maps: &[],
    read,
};

fn read(ebpf: &mut Ebpf, samples: &mut CgroupSamples) -> Result<(), CollectorError> {
    samples.for_each(ebpf, "PROC_STATS", |out, stats: &ProcStats| {
        out.counter(
            0,
            "crowsnest_container_processes_started_total",
            &[],
            stats.forks as f64,
        );
        out.counter(
            1,
            "crowsnest_container_process_execs_total",
            &[],
            stats.execs as f64,
        );
        out.counter(
            2,
            "crowsnest_container_process_exits_total",
            &[],
            stats.exits as f64,
        );
        out.counter(
            3,
            "crowsnest_container_oom_kills_total",
            &[],
            stats.oom_kills as f64,
        );
    })
}
