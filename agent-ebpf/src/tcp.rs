//! `tcp` collector: connections opened (active/passive), failed connects, retransmits, bytes
//! sent/received and connect latency per cgroup.
//!
//! Connects start in the caller's context (SYN_SENT), so its cgroup is remembered with the start
//! time, keyed by socket, until the handshake ends in softirq context. Passive opens and
//! retransmits happen in softirq/timer context: they are charged to the socket's cgroup
//! (`sk->sk_cgrp_data`, set when the socket was created). Bytes come from the
//! `sock_send_length`/`sock_recv_length` tracepoints (Linux 6.3+), which run in the caller's
//! context; fexit on `tcp_sendmsg`/`tcp_recvmsg` would do too, but fentry/fexit cannot be loaded
//! on kernels locked down like the one this was developed on (`BPF_PROG_LOAD` returns EPERM).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![allow(
    missing_docs,
    reason = "the program attribute macros drop doc comments"
)]

use aya_ebpf::{
    bindings::BPF_ANY,
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use crowsnest_ebpf::{
    DEFAULT_CGROUPS, DEFAULT_INFLIGHT, Errno, add, cgroup_id, count_drop, observe, read_at, upsert,
};
use crowsnest_ebpf_common::{ConnectStart, Histogram, KernelOffsets, TcpStats, drops};

/// Per-cgroup TCP counters.
#[map]
static TCP_STATS: HashMap<u64, TcpStats> = HashMap::with_max_entries(DEFAULT_CGROUPS, 0);

/// Per-cgroup connect latency histogram.
#[map]
static CONNECT_LATENCY: HashMap<u64, Histogram> = HashMap::with_max_entries(DEFAULT_CGROUPS, 0);

/// Socket address -> connect start. LRU: sockets freed mid-handshake age out by themselves.
#[map]
static CONNECT_START: LruHashMap<u64, ConnectStart> =
    LruHashMap::with_max_entries(DEFAULT_INFLIGHT, 0);

/// Updates lost to full maps, per `drops` slot.
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drops::SLOTS, 0);

/// Kernel struct offsets, written by the agent before load.
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets::UNSET;

/// `-EBUSY`.
const EBUSY: i32 = -16;

// TCP states from <net/tcp_states.h>.
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;

#[derive(Clone, Copy)]
enum Field {
    ActiveOpens,
    PassiveOpens,
    FailedConnects,
    Retransmits,
    BytesSent,
    BytesReceived,
}

#[inline(always)]
fn bump(cgroup: u64, field: Field, delta: u64) {
    if let Some(stats) = upsert(
        &TCP_STATS,
        cgroup,
        &TcpStats::default(),
        &DROPS,
        drops::STATS,
    ) {
        // SAFETY: `stats` points into a live map value.
        unsafe {
            let counter = match field {
                Field::ActiveOpens => &raw mut (*stats).active_opens,
                Field::PassiveOpens => &raw mut (*stats).passive_opens,
                Field::FailedConnects => &raw mut (*stats).failed_connects,
                Field::Retransmits => &raw mut (*stats).retransmits,
                Field::BytesSent => &raw mut (*stats).bytes_sent,
                Field::BytesReceived => &raw mut (*stats).bytes_received,
            };
            add(counter, delta);
        }
    }
}

/// cgroup the socket belongs to (`sk->sk_cgrp_data.cgroup->kn->id`).
#[inline(always)]
fn sock_cgroup_id(sk: *const u8) -> Result<u64, Errno> {
    // SAFETY: a plain read of the patched global; `sk` is a kernel `struct sock *`.
    unsafe {
        let offsets = core::ptr::read_volatile(&raw const KERNEL_OFFSETS);
        let cgroup: *const u8 = read_at(sk, offsets.sock_cgroup)?;
        cgroup_id(cgroup, &offsets)
    }
}

/// `inet_sock_set_state(const struct sock *sk, const int oldstate, const int newstate)`.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    match try_set_state(&ctx) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

fn try_set_state(ctx: &BtfTracePointContext) -> Result<(), Errno> {
    let sk: *const u8 = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    let key = sk as u64;
    let now = unsafe { bpf_ktime_get_ns() };
    if new == TCP_SYN_SENT {
        let start = ConnectStart {
            start_ns: now,
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        };
        if CONNECT_START
            .insert(key, start, u64::from(BPF_ANY))
            .is_err()
        {
            count_drop(&DROPS, drops::INFLIGHT);
        }
        return Ok(());
    }
    if old == TCP_SYN_SENT {
        // SAFETY: the value is copied out before the entry is removed.
        let start = unsafe { CONNECT_START.get(key) }.copied();
        let _ = CONNECT_START.remove(key);
        let cgroup = match start {
            Some(start) => start.cgroup_id,
            // Connect began before the agent loaded: fall back to the socket's cgroup.
            None => sock_cgroup_id(sk)?,
        };
        if new == TCP_ESTABLISHED {
            bump(cgroup, Field::ActiveOpens, 1);
            if let Some(start) = start {
                let ns = now.saturating_sub(start.start_ns);
                observe(&CONNECT_LATENCY, cgroup, ns, &DROPS, drops::HISTOGRAM);
            }
        } else if new == TCP_CLOSE {
            bump(cgroup, Field::FailedConnects, 1);
        }
        return Ok(());
    }
    if old == TCP_SYN_RECV && new == TCP_ESTABLISHED {
        bump(sock_cgroup_id(sk)?, Field::PassiveOpens, 1);
    }
    Ok(())
}

/// `tcp_retransmit_skb(const struct sock *sk, const struct sk_buff *skb[, int err])`: counts
/// the segments of each retransmit, as the kernel's own `total_retrans` does.
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb(ctx: BtfTracePointContext) -> i32 {
    match try_retransmit(&ctx) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

fn try_retransmit(ctx: &BtfTracePointContext) -> Result<(), Errno> {
    // SAFETY: a plain read of the patched global.
    let offsets = unsafe { core::ptr::read_volatile(&raw const KERNEL_OFFSETS) };
    // A constant to the verifier: on kernels without the argument this read is dead code.
    // With it, the tracepoint also reports attempts refused with -EBUSY (the skb is still in a
    // host queue) before the kernel counts anything; other errors come after the kernel added
    // the segments to total_retrans, so they count here too.
    if offsets.retransmit_has_err != 0 {
        let err: i64 = ctx.arg(2);
        if err as i32 == EBUSY {
            return Ok(());
        }
    }
    let sk: *const u8 = ctx.arg(0);
    let skb: *const u8 = ctx.arg(1);
    // SAFETY: `skb` is the tracepoint's `struct sk_buff *` and `head + end` is its
    // `skb_shared_info` (what `skb_shinfo()` computes on 64-bit).
    let segs: u16 = unsafe {
        let head: u64 = read_at(skb, offsets.skb_head)?;
        let end: u32 = read_at(skb, offsets.skb_end)?;
        let shinfo = head.wrapping_add(u64::from(end)) as *const u8;
        read_at(shinfo, offsets.shinfo_gso_segs)?
    };
    bump(
        sock_cgroup_id(sk)?,
        Field::Retransmits,
        u64::from(segs.max(1)),
    );
    Ok(())
}

/// `sock_send_length(struct sock *sk, int ret, int flags)`: returned bytes of every socket send.
#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
    match count_bytes(&ctx, Field::BytesSent) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

/// `sock_recv_length(struct sock *sk, int ret, int flags)`: returned bytes of every socket
/// receive.
#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    match count_bytes(&ctx, Field::BytesReceived) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

/// `IPPROTO_TCP`: these tracepoints fire for every socket family and protocol.
const IPPROTO_TCP: u16 = 6;

#[inline(always)]
fn count_bytes(ctx: &BtfTracePointContext, field: Field) -> Result<(), Errno> {
    let bytes: i32 = ctx.arg(1);
    if bytes <= 0 {
        return Ok(());
    }
    let sk: *const u8 = ctx.arg(0);
    // SAFETY: a plain read of the patched global; `sk` is the tracepoint's `struct sock *`.
    let protocol: u16 = unsafe {
        let offsets = core::ptr::read_volatile(&raw const KERNEL_OFFSETS);
        read_at(sk, offsets.sock_protocol)?
    };
    if protocol == IPPROTO_TCP {
        // Sends and receives run in the caller's context.
        bump(unsafe { bpf_get_current_cgroup_id() }, field, bytes as u64);
    }
    Ok(())
}

crowsnest_ebpf::program_boilerplate!();
