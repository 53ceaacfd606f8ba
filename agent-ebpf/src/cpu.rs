//! `cpu` collector: on-CPU time, voluntary/involuntary context switches and run-queue latency
//! per cgroup.
//!
//! `sched_switch` fires in `__schedule` before the switch, so `current` is still the outgoing
//! task: its cgroup comes from `bpf_get_current_cgroup_id` without reading `task_struct`. On-CPU
//! time is the gap between two switches on the same CPU (per-CPU slot, no per-task map).
//! Run-queue latency is wakeup (or preemption) -> switch-in, keyed by pid; it is charged when the
//! task next switches out, again as `current`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![allow(
    missing_docs,
    reason = "the program attribute macros drop doc comments"
)]

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use crowsnest_ebpf::{
    DEFAULT_CGROUPS, DEFAULT_INFLIGHT, Errno, add, count_drop, observe, read_at, upsert,
};
use crowsnest_ebpf_common::{CpuState, CpuStats, Histogram, KernelOffsets, NO_PENDING, drops};

/// Per-cgroup CPU counters.
#[map]
static CPU_STATS: HashMap<u64, CpuStats> = HashMap::with_max_entries(DEFAULT_CGROUPS, 0);

/// Per-cgroup run-queue latency histogram.
#[map]
static RUNQ_LATENCY: HashMap<u64, Histogram> = HashMap::with_max_entries(DEFAULT_CGROUPS, 0);

/// pid -> time it became runnable. LRU: tasks that exit while runnable age out by themselves.
#[map]
static WAKEUP_TS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(DEFAULT_INFLIGHT, 0);

/// This CPU's last switch time and pending run-queue wait.
#[map]
static CPU_STATE: PerCpuArray<CpuState> = PerCpuArray::with_max_entries(1, 0);

/// Updates lost to full maps, per `drops` slot.
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drops::SLOTS, 0);

/// Kernel struct offsets, written by the agent before load.
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    task_pid: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    sock_cgroup: 0,
    sock_protocol: 0,
    skb_head: 0,
    skb_end: 0,
    shinfo_gso_segs: 0,
};

#[inline(always)]
fn offsets() -> KernelOffsets {
    // SAFETY: a plain read of a global the loader patched; volatile so the compiler does not
    // fold the zero initialiser.
    unsafe { core::ptr::read_volatile(&raw const KERNEL_OFFSETS) }
}

/// `sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
/// unsigned int prev_state)`.
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> i32 {
    match try_sched_switch(&ctx) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

fn try_sched_switch(ctx: &BtfTracePointContext) -> Result<(), Errno> {
    let now = unsafe { bpf_ktime_get_ns() };
    let preempt: u64 = ctx.arg(0);
    let next: *const u8 = ctx.arg(2);
    let prev_state: u64 = ctx.arg(3);
    let prev_pid = bpf_get_current_pid_tgid() as u32;

    // SAFETY: `next` is the tracepoint's task_struct argument.
    let next_pid: u32 = unsafe { read_at(next, offsets().task_pid)? };
    let next_wait = wait_since_runnable(next_pid, now);

    let state = CPU_STATE.get_ptr_mut(0).ok_or(-1)?;
    // SAFETY: per-CPU slot, only touched by this CPU's programs.
    let (last_switch, pending_wait) = unsafe {
        let previous = *state;
        (*state).last_switch_ns = now;
        (*state).pending_wait_ns = next_wait;
        (previous.last_switch_ns, previous.pending_wait_ns)
    };

    // The idle task (pid 0) is not a workload.
    if prev_pid == 0 {
        return Ok(());
    }
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    // Same rule the kernel uses for nvcsw/nivcsw: preempted or still runnable -> involuntary.
    let involuntary = preempt & 1 != 0 || prev_state as u32 == 0;
    if involuntary && WAKEUP_TS.insert(prev_pid, now, u64::from(BPF_ANY)).is_err() {
        count_drop(&DROPS, drops::INFLIGHT);
    }

    if let Some(stats) = upsert(
        &CPU_STATS,
        cgroup,
        &CpuStats::default(),
        &DROPS,
        drops::STATS,
    ) {
        // SAFETY: `stats` points into a live map value.
        unsafe {
            if last_switch != 0 {
                add(&raw mut (*stats).on_cpu_ns, now.saturating_sub(last_switch));
            }
            if involuntary {
                add(&raw mut (*stats).involuntary_switches, 1);
            } else {
                add(&raw mut (*stats).voluntary_switches, 1);
            }
        }
    }
    if pending_wait != NO_PENDING {
        observe(
            &RUNQ_LATENCY,
            cgroup,
            pending_wait,
            &DROPS,
            drops::HISTOGRAM,
        );
    }
    Ok(())
}

/// Takes the wakeup time of `pid` out of `WAKEUP_TS` and returns the wait, or `NO_PENDING`.
#[inline(always)]
fn wait_since_runnable(pid: u32, now: u64) -> u64 {
    if pid == 0 {
        return NO_PENDING;
    }
    // SAFETY: the value is copied out before the entry is removed.
    let Some(since) = (unsafe { WAKEUP_TS.get(pid) }).copied() else {
        return NO_PENDING;
    };
    let _ = WAKEUP_TS.remove(pid);
    now.saturating_sub(since)
}

/// `sched_wakeup(struct task_struct *p)`.
#[btf_tracepoint(function = "sched_wakeup")]
pub fn sched_wakeup(ctx: BtfTracePointContext) -> i32 {
    match try_record_wakeup(&ctx) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

/// `sched_wakeup_new(struct task_struct *p)`: first wakeup of a new task.
#[btf_tracepoint(function = "sched_wakeup_new")]
pub fn sched_wakeup_new(ctx: BtfTracePointContext) -> i32 {
    match try_record_wakeup(&ctx) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

fn try_record_wakeup(ctx: &BtfTracePointContext) -> Result<(), Errno> {
    let task: *const u8 = ctx.arg(0);
    // SAFETY: `task` is the tracepoint's task_struct argument.
    let pid: u32 = unsafe { read_at(task, offsets().task_pid)? };
    if pid == 0 {
        return Ok(());
    }
    let now = unsafe { bpf_ktime_get_ns() };
    if WAKEUP_TS.insert(pid, now, u64::from(BPF_ANY)).is_err() {
        count_drop(&DROPS, drops::INFLIGHT);
    }
    Ok(())
}

/// Required by the kernel for GPL-only helpers; matches the project's licence choice for BPF.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
