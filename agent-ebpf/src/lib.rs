//! Helpers shared by crowsnest's eBPF programs (one binary per collector: `cpu`, `process`,
//! `tcp`).
//!
//! Everything here runs in the kernel: constant work per event, no loops over data, and every
//! failure returned as an error code so each program has a single exit.
#![no_std]
// core has no atomic read-modify-write for the BPF target, so the kernel side uses the
// intrinsic directly (the BPF build is nightly anyway); host builds (clippy) use `AtomicU64`.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(
    target_arch = "bpf",
    allow(internal_features, reason = "atomic_xadd, see above")
)]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::bpf_probe_read_kernel,
    maps::{HashMap, PerCpuArray},
};
pub use crowsnest_ebpf_common as common;
use crowsnest_ebpf_common::{Histogram, KernelOffsets, bucket_index};

/// Default size of the per-cgroup maps: 250 pods with a few containers each plus the node's own
/// system slices, with headroom. The agent overrides it from its configuration.
pub const DEFAULT_CGROUPS: u32 = 2048;

/// Default size of the per-task / per-socket in-flight maps (LRU, so never "full").
pub const DEFAULT_INFLIGHT: u32 = 16384;

/// `-EEXIST`: another CPU created the entry between our lookup and insert.
const EEXIST: i32 = -17;

/// Error codes the programs return; only the program's single exit looks at them.
pub type Errno = i32;

/// Reads a `T` at `base + offset` from kernel memory.
///
/// # Safety
/// `base` must be a kernel pointer and `offset` a member offset of the struct it points to;
/// `bpf_probe_read_kernel` makes a wrong guess fail instead of fault.
#[inline(always)]
pub unsafe fn read_at<T>(base: *const u8, offset: u64) -> Result<T, Errno> {
    let ptr = (base as usize).wrapping_add(offset as usize) as *const T;
    // SAFETY: probe_read validates the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel(ptr).map_err(|e| e as Errno) }
}

/// cgroup v2 id of a `struct cgroup *` (`cgrp->kn->id`, the cgroup directory's inode number).
///
/// # Safety
/// `cgroup` must be a kernel `struct cgroup *` and `offsets` the running kernel's offsets.
#[inline(always)]
pub unsafe fn cgroup_id(cgroup: *const u8, offsets: &KernelOffsets) -> Result<u64, Errno> {
    // SAFETY: forwarded contract.
    unsafe {
        let kn: *const u8 = read_at(cgroup, offsets.cgroup_kn)?;
        read_at(kn, offsets.kernfs_node_id)
    }
}

/// cgroup v2 id of any task (`task->cgroups->dfl_cgrp->kn->id`), for events that do not run in
/// the task's own context (for example the OOM killer choosing a victim).
///
/// # Safety
/// `task` must be a kernel `struct task_struct *`.
#[inline(always)]
pub unsafe fn task_cgroup_id(task: *const u8, offsets: &KernelOffsets) -> Result<u64, Errno> {
    // SAFETY: forwarded contract.
    unsafe {
        let css_set: *const u8 = read_at(task, offsets.task_cgroups)?;
        let cgroup: *const u8 = read_at(css_set, offsets.css_set_dfl_cgrp)?;
        cgroup_id(cgroup, offsets)
    }
}

/// Adds `delta` to a counter in a map value shared by all CPUs.
///
/// # Safety
/// `counter` must point into a live map value.
#[inline(always)]
pub unsafe fn add(counter: *mut u64, delta: u64) {
    // SAFETY: map values are 8-byte aligned and live while the program runs; this compiles to
    // a BPF atomic add.
    #[cfg(target_arch = "bpf")]
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            counter, delta,
        );
    }
    #[cfg(not(target_arch = "bpf"))]
    unsafe { core::sync::atomic::AtomicU64::from_ptr(counter) }
        .fetch_add(delta, core::sync::atomic::Ordering::Relaxed);
}

/// Bumps this CPU's counter in `drops` at `slot` (see `common::drops`).
#[inline(always)]
pub fn count_drop(drops: &PerCpuArray<u64>, slot: u32) {
    if let Some(ptr) = drops.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot is only touched by programs on this CPU.
        unsafe { *ptr += 1 };
    }
}

/// Returns the value for `key`, creating it from `zero` when absent. A full map bumps `drops`
/// at `slot` and returns `None`, so a lost update is counted, never silent.
#[inline(always)]
pub fn upsert<V>(
    map: &HashMap<u64, V>,
    key: u64,
    zero: &V,
    drops: &PerCpuArray<u64>,
    slot: u32,
) -> Option<*mut V> {
    if let Some(ptr) = map.get_ptr_mut(key) {
        return Some(ptr);
    }
    match map.insert(key, zero, u64::from(BPF_NOEXIST)) {
        Ok(()) => {}
        Err(EEXIST) => {}
        Err(_) => {
            count_drop(drops, slot);
            return None;
        }
    }
    map.get_ptr_mut(key)
}

/// Records one observation of `ns` nanoseconds into the histogram of cgroup `key`.
#[inline(always)]
pub fn observe(
    map: &HashMap<u64, Histogram>,
    key: u64,
    ns: u64,
    drops: &PerCpuArray<u64>,
    slot: u32,
) {
    if let Some(hist) = upsert(map, key, &Histogram::ZERO, drops, slot) {
        // SAFETY: `hist` points into a live map value.
        unsafe { observe_into(hist, ns) };
    }
}

/// Records one observation of `ns` nanoseconds into `hist`.
///
/// # Safety
/// `hist` must point into a live map value.
#[inline(always)]
pub unsafe fn observe_into(hist: *mut Histogram, ns: u64) {
    let index = bucket_index(ns);
    // SAFETY: forwarded contract; `index` is < HISTOGRAM_BUCKETS.
    unsafe {
        if let Some(bucket) = (*hist).buckets.get_mut(index) {
            add(bucket, 1);
        }
        add(&raw mut (*hist).sum_ns, ns);
    }
}

/// What every program binary needs besides its programs: the licence
/// section (the kernel requires GPL for the GPL-only helpers the programs
/// call), a panic handler (never reached: the verifier refuses code that
/// could panic) and, for host builds such as clippy, an empty `main`.
#[macro_export]
macro_rules! program_boilerplate {
    () => {
        /// Required by the kernel for GPL-only helpers.
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
    };
}
