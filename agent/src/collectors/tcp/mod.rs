//! `tcp` collector: connections, failed connects, retransmits, bytes and connect latency per
//! cgroup (kernel side: `agent-ebpf/src/tcp.rs`).

use aya::Ebpf;
use crowsnest_ebpf_common::{Histogram, TcpStats};

use super::{
    error::CollectorError,
    samples::CgroupSamples,
    spec::{Attach, ProgramSpec, Spec},
};
use crate::config::collectors::CollectorKind;

/// The collector's definition.
pub static SPEC: Spec = Spec {
    kind: CollectorKind::Tcp,
    object: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcp")),
    programs: &[
        ProgramSpec {
            name: "inet_sock_set_state",
            attach: Attach::BtfTracepoint("inet_sock_set_state"),
            optional: false,
        },
        ProgramSpec {
            name: "tcp_retransmit_skb",
            attach: Attach::BtfTracepoint("tcp_retransmit_skb"),
            optional: false,
        },
        // Linux 6.3+, so optional: older kernels get every tcp metric but bytes. fexit on
        // tcp_sendmsg/tcp_recvmsg would reach them, but fentry/fexit loads fail with EPERM on
        // locked-down kernels such as our test host.
        ProgramSpec {
            name: "sock_send_length",
            attach: Attach::BtfTracepoint("sock_send_length"),
            optional: true,
        },
        ProgramSpec {
            name: "sock_recv_length",
            attach: Attach::BtfTracepoint("sock_recv_length"),
            optional: true,
        },
    ],
    cgroup_maps: &["TCP_STATS", "CONNECT_LATENCY"],
    inflight_maps: &["CONNECT_START"],
    read,
};

fn read(ebpf: &mut Ebpf, samples: &mut CgroupSamples) -> Result<(), CollectorError> {
    samples.for_each(ebpf, "TCP_STATS", |out, s: &TcpStats| {
        let opened = "crowsnest_container_tcp_connections_opened_total";
        out.counter(0, opened, &[("direction", "active")], s.active_opens as f64);
        out.counter(
            1,
            opened,
            &[("direction", "passive")],
            s.passive_opens as f64,
        );
        out.counter(
            2,
            "crowsnest_container_tcp_connect_failures_total",
            &[],
            s.failed_connects as f64,
        );
        out.counter(
            3,
            "crowsnest_container_tcp_retransmits_total",
            &[],
            s.retransmits as f64,
        );
        out.counter(
            4,
            "crowsnest_container_tcp_sent_bytes_total",
            &[],
            s.bytes_sent as f64,
        );
        out.counter(
            5,
            "crowsnest_container_tcp_received_bytes_total",
            &[],
            s.bytes_received as f64,
        );
    })?;
    samples.for_each(ebpf, "CONNECT_LATENCY", |out, hist: &Histogram| {
        out.histogram(16, "crowsnest_container_tcp_connect_latency_seconds", hist);
    })
}
