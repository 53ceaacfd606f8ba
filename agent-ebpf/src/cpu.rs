//! `cpu` collector: on-CPU time, voluntary/involuntary context switches and run-queue latency
//! per cgroup.
//!
//! `sched_switch` fires in `__schedule` before the switch, so `current` is still the outgoing
//! task: its cgroup comes from `bpf_get_current_cgroup_id` without reading `task_struct`. On-CPU
//! time is the gap between two switches on the same CPU (per-CPU slot, no per-task map).
//! Run-queue latency is wakeup (or preemption) -> switch-in, keyed by pid; it is charged when the
//! task next switches out, again as `current`. A task that keeps its CPU without switching (alone
//! on it) would be charged only when it finally switches, so a per-CPU clock event (`cpu_clock`,
//! every 100 ms) charges the running task's time so far, in its own context, and moves the
//! per-CPU mark forward.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![allow(
    missing_docs,
    reason = "the program attribute macros drop doc comments"
)]

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map, perf_event},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::{BtfTracePointContext, PerfEventContext},
};
use crowsnest_ebpf::{
    DEFAULT_CGROUPS, DEFAULT_INFLIGHT, Errno, add, count_drop, observe_into, upsert,
};
use crowsnest_ebpf_common::{CpuState, CpuStats, KernelOffsets, NO_PENDING, drops};

/// Per-cgroup CPU counters.
#[map]
static CPU_STATS: HashMap<u64, CpuStats> = HashMap::with_max_entries(DEFAULT_CGROUPS, 0);

/// pid -> time it became runnable. Entries are not deleted when read: every switch-in is
/// preceded by a fresh write (wakeup, or preemption at switch-out), and LRU eviction bounds the
/// map, which saves a hash operation per context switch.
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
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets::UNSET;

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

    // SAFETY: `next` is the tracepoint's trusted task_struct pointer and the offset its `pid`
    // member; the verifier checks this direct load against BTF (no helper call needed).
    let next_pid: u32 =
        unsafe { core::ptr::read_volatile(next.wrapping_add(offsets().task_pid as usize).cast()) };
    let next_wait = wait_since_runnable(next_pid, now);

    let state = CPU_STATE.get_ptr_mut(0).ok_or(-1)?;
    // SAFETY: per-CPU slot, only touched by this CPU's programs, which never interleave
    // (sched_switch runs with interrupts off, the clock event in interrupt context).
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
    // Same rule the kernel uses for nvcsw/nivcsw: preempted or still runnable -> involuntary.
    let involuntary = preempt & 1 != 0 || prev_state as u32 == 0;
    if involuntary {
        mark_runnable(prev_pid, now);
    }
    let switch = if involuntary {
        Switch::Involuntary
    } else {
        Switch::Voluntary
    };
    charge(now, last_switch, pending_wait, switch);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Switch {
    None,
    Voluntary,
    Involuntary,
}

/// Charges the current task's cgroup with its time on this CPU since `last_switch`, its
/// pending run-queue wait and the context switch, if any.
#[inline(always)]
fn charge(now: u64, last_switch: u64, pending_wait: u64, switch: Switch) {
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    let Some(stats) = upsert(&CPU_STATS, cgroup, &CpuStats::ZERO, &DROPS, drops::STATS) else {
        return;
    };
    // SAFETY: `stats` points into a live map value.
    unsafe {
        if last_switch != 0 {
            add(&raw mut (*stats).on_cpu_ns, now.saturating_sub(last_switch));
        }
        match switch {
            Switch::Voluntary => add(&raw mut (*stats).voluntary_switches, 1),
            Switch::Involuntary => add(&raw mut (*stats).involuntary_switches, 1),
            Switch::None => {}
        }
        if pending_wait != NO_PENDING {
            observe_into(&raw mut (*stats).runq_latency, pending_wait);
        }
    }
}

/// Per-CPU clock event (user space attaches it on every CPU, every 100 ms): charges the running
/// task's time so far, so a task that never switches out still shows up.
#[perf_event]
pub fn cpu_clock(_ctx: PerfEventContext) -> u32 {
    let _ = try_cpu_clock();
    0
}

fn try_cpu_clock() -> Result<(), Errno> {
    let now = unsafe { bpf_ktime_get_ns() };
    let state = CPU_STATE.get_ptr_mut(0).ok_or(-1)?;
    // SAFETY: per-CPU slot (see `try_sched_switch`).
    let (last_switch, pending_wait) = unsafe {
        let previous = *state;
        (*state).last_switch_ns = now;
        (*state).pending_wait_ns = NO_PENDING;
        (previous.last_switch_ns, previous.pending_wait_ns)
    };
    if bpf_get_current_pid_tgid() as u32 == 0 {
        return Ok(());
    }
    charge(now, last_switch, pending_wait, Switch::None);
    Ok(())
}

/// Wait of `pid` since it became runnable (from `WAKEUP_TS`), or `NO_PENDING`.
#[inline(always)]
fn wait_since_runnable(pid: u32, now: u64) -> u64 {
    if pid == 0 {
        return NO_PENDING;
    }
    // SAFETY: the value is copied out at once.
    match unsafe { WAKEUP_TS.get(pid) } {
        Some(since) => now.saturating_sub(*since),
        None => NO_PENDING,
    }
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
    // SAFETY: `task` is the tracepoint's trusted task_struct pointer (see `try_sched_switch`).
    let pid: u32 =
        unsafe { core::ptr::read_volatile(task.wrapping_add(offsets().task_pid as usize).cast()) };
    if pid == 0 {
        return Ok(());
    }
    mark_runnable(pid, unsafe { bpf_ktime_get_ns() });
    Ok(())
}

/// Records that `pid` became runnable at `now`. Overwrites in place when the task already has
/// an entry (the common case): an LRU map update allocates and frees a node, a store does not.
#[inline(always)]
fn mark_runnable(pid: u32, now: u64) {
    match WAKEUP_TS.get_ptr_mut(pid) {
        // SAFETY: `since` points into a live map value.
        Some(since) => unsafe { core::ptr::write_volatile(since, now) },
        None => {
            if WAKEUP_TS.insert(pid, now, u64::from(BPF_ANY)).is_err() {
                count_drop(&DROPS, drops::INFLIGHT);
            }
        }
    }
}

crowsnest_ebpf::program_boilerplate!();
