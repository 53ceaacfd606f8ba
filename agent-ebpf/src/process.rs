//! `process` collector: fork, exec and exit counts per cgroup, and OOM kills charged to the
//! victim's cgroup.
//!
//! fork/exec/exit run in the context of the task concerned (the parent for a fork), so the
//! cgroup is `bpf_get_current_cgroup_id`. The OOM killer runs in whatever task hit the limit,
//! so the victim's cgroup is read from its `task_struct`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![allow(
    missing_docs,
    reason = "the program attribute macros drop doc comments"
)]

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid},
    macros::{btf_tracepoint, map},
    maps::{HashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use crowsnest_ebpf::{DEFAULT_CGROUPS, Errno, add, task_cgroup_id, upsert};
use crowsnest_ebpf_common::{KernelOffsets, ProcStats, drops};

/// Per-cgroup process counters.
#[map]
static PROC_STATS: HashMap<u64, ProcStats> = HashMap::with_max_entries(DEFAULT_CGROUPS, 0);

/// Updates lost to full maps, per `drops` slot.
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drops::SLOTS, 0);

/// Kernel struct offsets, written by the agent before load.
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets::UNSET;

/// `CLONE_THREAD` from `<linux/sched.h>`: the new task is a thread, not a process.
const CLONE_THREAD: u64 = 0x0001_0000;

#[derive(Clone, Copy)]
enum Field {
    Forks,
    Execs,
    Exits,
    OomKills,
}

#[inline(always)]
fn bump(cgroup: u64, field: Field) {
    if let Some(stats) = upsert(
        &PROC_STATS,
        cgroup,
        &ProcStats::default(),
        &DROPS,
        drops::STATS,
    ) {
        // SAFETY: `stats` points into a live map value.
        unsafe {
            let counter = match field {
                Field::Forks => &raw mut (*stats).forks,
                Field::Execs => &raw mut (*stats).execs,
                Field::Exits => &raw mut (*stats).exits,
                Field::OomKills => &raw mut (*stats).oom_kills,
            };
            add(counter, 1);
        }
    }
}

/// `task_newtask(struct task_struct *task, u64 clone_flags)`, in the parent's context.
#[btf_tracepoint(function = "task_newtask")]
pub fn task_newtask(ctx: BtfTracePointContext) -> i32 {
    let clone_flags: u64 = ctx.arg(1);
    if clone_flags & CLONE_THREAD == 0 {
        bump(unsafe { bpf_get_current_cgroup_id() }, Field::Forks);
    }
    0
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(_ctx: BtfTracePointContext) -> i32 {
    bump(unsafe { bpf_get_current_cgroup_id() }, Field::Execs);
    0
}

/// `sched_process_exit(struct task_struct *p, ...)`: fires for every thread; a process exit is
/// its thread-group leader exiting.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(_ctx: BtfTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if pid_tgid >> 32 == pid_tgid & 0xffff_ffff {
        bump(unsafe { bpf_get_current_cgroup_id() }, Field::Exits);
    }
    0
}

/// `mark_victim(struct task_struct *task, uid_t uid)`: the OOM killer picked `task`.
#[btf_tracepoint(function = "mark_victim")]
pub fn mark_victim(ctx: BtfTracePointContext) -> i32 {
    match try_mark_victim(&ctx) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

fn try_mark_victim(ctx: &BtfTracePointContext) -> Result<(), Errno> {
    let task: *const u8 = ctx.arg(0);
    // SAFETY: a plain read of the patched global; `task` is the tracepoint's task_struct.
    let cgroup = unsafe {
        let offsets = core::ptr::read_volatile(&raw const KERNEL_OFFSETS);
        task_cgroup_id(task, &offsets)?
    };
    bump(cgroup, Field::OomKills);
    Ok(())
}

crowsnest_ebpf::program_boilerplate!();
