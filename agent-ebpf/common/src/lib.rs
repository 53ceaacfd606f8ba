//! The `#[repr(C)]` types crowsnest's eBPF programs and the agent share.
//!
//! Every map key and value crossing the kernel/user boundary is defined here exactly once: the
//! eBPF side writes them, the agent reads them (with the `user` feature, which implements
//! `aya::Pod`). Counters are cumulative since the program was loaded; user space turns them into
//! Prometheus counters.
#![no_std]

/// Number of log2 buckets in a [`Histogram`].
///
/// Bucket `i` counts values `v` (nanoseconds) with `64 - v.leading_zeros() == i`, that is
/// `2^(i-1) <= v < 2^i` (bucket 0 holds `v == 0`); the last bucket also takes everything larger.
/// 40 buckets reach 2^39 ns ≈ 550 s, far above any latency worth telling apart.
pub const HISTOGRAM_BUCKETS: usize = 40;

/// Index of the histogram bucket for a value in nanoseconds (see [`HISTOGRAM_BUCKETS`]).
///
/// Written as a branchy binary search rather than `leading_zeros`: BPF has no count-leading-zeros
/// instruction, and the bit tricks LLVM emits instead leave the verifier unable to bound the
/// result, so it rejects the array index. Here every path adds constants.
#[inline(always)]
#[must_use]
pub const fn bucket_index(ns: u64) -> usize {
    let mut v = ns;
    let mut log = 0usize;
    if v >= 1 << 32 {
        v >>= 32;
        log += 32;
    }
    if v >= 1 << 16 {
        v >>= 16;
        log += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        log += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        log += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        log += 2;
    }
    if v >= 1 << 1 {
        v >>= 1;
        log += 1;
    }
    // v is now 0 (only for ns == 0) or 1; log + 1 == 64 - leading_zeros for ns > 0.
    let i = log + v as usize;
    if i < HISTOGRAM_BUCKETS {
        i
    } else {
        HISTOGRAM_BUCKETS - 1
    }
}

/// Exclusive upper bound, in nanoseconds, of bucket `i` (`None` for the last, open-ended one).
#[must_use]
pub const fn bucket_upper_bound_ns(i: usize) -> Option<u64> {
    if i + 1 >= HISTOGRAM_BUCKETS {
        None
    } else {
        Some(1u64 << i)
    }
}

/// A log2 latency histogram aggregated in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histogram {
    /// Event counts per log2 bucket (see [`HISTOGRAM_BUCKETS`]).
    pub buckets: [u64; HISTOGRAM_BUCKETS],
    /// Sum of all observed values, in nanoseconds.
    pub sum_ns: u64,
}

impl Histogram {
    /// An empty histogram, used to create map entries.
    pub const ZERO: Self = Self {
        buckets: [0; HISTOGRAM_BUCKETS],
        sum_ns: 0,
    };
}

/// CPU counters per cgroup (map `CPU_STATS`, key: cgroup v2 id). The run-queue histogram
/// shares the entry so a context switch costs one hash lookup, not two.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuStats {
    /// Time tasks of the cgroup spent on a CPU, in nanoseconds.
    pub on_cpu_ns: u64,
    /// Context switches where the task gave up the CPU (blocked or slept).
    pub voluntary_switches: u64,
    /// Context switches where the task was preempted while still runnable.
    pub involuntary_switches: u64,
    /// Time from becoming runnable (wakeup or preemption) to running.
    pub runq_latency: Histogram,
}

impl CpuStats {
    /// All zero, used to create map entries.
    pub const ZERO: Self = Self {
        on_cpu_ns: 0,
        voluntary_switches: 0,
        involuntary_switches: 0,
        runq_latency: Histogram::ZERO,
    };
}

/// Per-CPU scratch state of the `cpu` collector (map `CPU_STATE`, one slot per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuState {
    /// `bpf_ktime_get_ns` of the last context switch on this CPU (0 = none seen yet).
    pub last_switch_ns: u64,
    /// Run-queue wait of the task now running on this CPU, charged to its cgroup when it is
    /// switched out (only then is it `current`, so its cgroup is known without reading
    /// `task_struct`). `NO_PENDING` when nothing is pending.
    pub pending_wait_ns: u64,
}

/// Marker for [`CpuState::pending_wait_ns`] meaning "nothing pending".
pub const NO_PENDING: u64 = u64::MAX;

/// Process lifecycle counters per cgroup (map `PROC_STATS`, key: cgroup v2 id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcStats {
    /// New processes (fork/clone without `CLONE_THREAD`), charged to the parent's cgroup.
    pub forks: u64,
    /// Successful `execve`s.
    pub execs: u64,
    /// Process exits (the thread-group leader exiting).
    pub exits: u64,
    /// Tasks chosen as victims by the OOM killer, charged to the victim's cgroup.
    pub oom_kills: u64,
}

/// TCP counters per cgroup (map `TCP_STATS`, key: cgroup v2 id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Connections established by `connect()` (SYN_SENT -> ESTABLISHED).
    pub active_opens: u64,
    /// Connections accepted (SYN_RECV -> ESTABLISHED), charged to the listener's cgroup.
    pub passive_opens: u64,
    /// Connects that never got established (SYN_SENT -> CLOSE).
    pub failed_connects: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Bytes handed to `tcp_sendmsg` and accepted by it.
    pub bytes_sent: u64,
    /// Bytes returned by `tcp_recvmsg`.
    pub bytes_received: u64,
}

/// A connect in progress (map `CONNECT_START`, key: the `struct sock` address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectStart {
    /// `bpf_ktime_get_ns` when the socket entered SYN_SENT.
    pub start_ns: u64,
    /// cgroup of the task that called `connect()`.
    pub cgroup_id: u64,
}

/// Indexes into each object's `DROPS` per-CPU array: one counter per map that can fill up.
pub mod drops {
    /// The per-cgroup counters map (`CPU_STATS`, `PROC_STATS` or `TCP_STATS`) was full.
    pub const STATS: u32 = 0;
    /// The per-cgroup histogram map (`RUNQ_LATENCY` or `CONNECT_LATENCY`) was full.
    pub const HISTOGRAM: u32 = 1;
    /// The in-flight map (`WAKEUP_TS` or `CONNECT_START`) was full.
    pub const INFLIGHT: u32 = 2;
    /// Number of slots in `DROPS`.
    pub const SLOTS: u32 = 3;
}

/// Kernel struct member offsets (and one tracepoint shape), resolved by the agent from the
/// running kernel's BTF and written into the programs' read-only globals before load (Rust eBPF cannot emit CO-RE relocations, so
/// the agent performs the equivalent lookup itself).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.pid`.
    pub task_pid: u64,
    /// `task_struct.cgroups` (a `struct css_set *`).
    pub task_cgroups: u64,
    /// `css_set.dfl_cgrp` (the task's cgroup v2 `struct cgroup *`).
    pub css_set_dfl_cgrp: u64,
    /// `cgroup.kn` (`struct kernfs_node *`).
    pub cgroup_kn: u64,
    /// `kernfs_node.id` (the cgroup id, equal to the directory's inode number).
    pub kernfs_node_id: u64,
    /// `sock.sk_cgrp_data` + `sock_cgroup_data.cgroup` (the socket's `struct cgroup *`).
    pub sock_cgroup: u64,
    /// `sock.sk_protocol` (a `u16`).
    pub sock_protocol: u64,
    /// `sk_buff.head` (start of the buffer).
    pub skb_head: u64,
    /// `sk_buff.end` (offset of `skb_shared_info` from `head` on 64-bit kernels).
    pub skb_end: u64,
    /// `skb_shared_info.gso_segs` (a `u16`: TCP segments the buffer carries).
    pub shinfo_gso_segs: u64,
    /// 1 when the `tcp_retransmit_skb` tracepoint has the `err` argument (newer kernels also
    /// fire it for failed attempts, which must not count), else 0.
    pub retransmit_has_err: u64,
}

impl KernelOffsets {
    /// Every offset 0: the initial value of each object's `KERNEL_OFFSETS`
    /// global, which the agent overwrites from the kernel's BTF before load.
    pub const UNSET: Self = Self {
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
        retransmit_has_err: 0,
    };
}

/// Name of the global every program object reads its [`KernelOffsets`] from.
pub const OFFSETS_GLOBAL: &str = "KERNEL_OFFSETS";

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C), made only of u64 fields (no padding, every bit pattern valid).
    unsafe impl aya::Pod for super::Histogram {}
    unsafe impl aya::Pod for super::CpuStats {}
    unsafe impl aya::Pod for super::CpuState {}
    unsafe impl aya::Pod for super::ProcStats {}
    unsafe impl aya::Pod for super::TcpStats {}
    unsafe impl aya::Pod for super::ConnectStart {}
    unsafe impl aya::Pod for super::KernelOffsets {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2_and_clamped() {
        for (ns, want) in [
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 2),
            (4, 3),
            (1023, 10),
            (1024, 11),
        ] {
            assert_eq!(bucket_index(ns), want, "ns={ns}");
        }
        assert_eq!(bucket_index(u64::MAX), HISTOGRAM_BUCKETS - 1);
        for ns in (0..64)
            .map(|s| 1u64 << s)
            .chain([0, 3, 5, 7, 999, 123_456_789])
        {
            let want = ((64 - ns.leading_zeros()) as usize).min(HISTOGRAM_BUCKETS - 1);
            assert_eq!(bucket_index(ns), want, "ns={ns}");
        }
        for ns in [0u64, 1, 5, 1000, 123_456_789] {
            let i = bucket_index(ns);
            if let Some(upper) = bucket_upper_bound_ns(i) {
                assert!(ns < upper, "ns={ns} bucket={i} upper={upper}");
            }
        }
        assert_eq!(bucket_upper_bound_ns(HISTOGRAM_BUCKETS - 1), None);
    }
}
