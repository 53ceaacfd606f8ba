//! Why a collector could not start or read its maps.

use super::btf::BtfError;

/// A collector failure; the collector is marked failed with this as its reason, the others run.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// `build.rs` skipped the eBPF build (no bpf-linker/nightly, or `CROWSNEST_SKIP_EBPF=1`).
    #[error("agent built without eBPF programs")]
    NotBuilt,
    /// Kernel struct offsets could not be resolved from BTF.
    #[error(transparent)]
    Btf(#[from] BtfError),
    /// aya could not read the kernel's BTF (needed for BTF tracepoints and fentry/fexit).
    #[error("kernel BTF unavailable: {0}")]
    KernelBtf(#[source] aya::BtfError),
    /// No cgroup2 filesystem is mounted, so series cannot carry a cgroup identity.
    #[error("no cgroup2 mount found in /proc/self/mountinfo")]
    NoCgroup2,
    /// The object could not be loaded (maps created, relocations applied).
    #[error("loading eBPF object: {0}")]
    Load(#[source] aya::EbpfError),
    /// The object lacks a program the collector expects (build mismatch).
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static str),
    /// The object lacks a map the collector reads (build mismatch).
    #[error("map {0} missing from the eBPF object")]
    MissingMap(&'static str),
    /// The verifier rejected a program, or its attach target does not exist.
    #[error("loading program {program}: {source}")]
    ProgramLoad {
        /// Program name.
        program: &'static str,
        /// aya's error (carries the verifier log).
        #[source]
        source: aya::programs::ProgramError,
    },
    /// Attaching a loaded program failed.
    #[error("attaching program {program}: {source}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The list of online CPUs (for per-CPU attachments) could not be read.
    #[error("reading online CPUs: {0}")]
    OnlineCpus(#[source] std::io::Error),
    /// Reading or updating a map failed.
    #[error("map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
}

impl CollectorError {
    /// Short kind for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotBuilt => "not_built",
            Self::Btf(e) => e.kind(),
            Self::KernelBtf(_) => "kernel_btf",
            Self::NoCgroup2 => "no_cgroup2",
            Self::Load(_) => "load",
            Self::MissingProgram(_) => "missing_program",
            Self::MissingMap(_) => "missing_map",
            Self::ProgramLoad { .. } => "program_load",
            Self::Attach { .. } => "attach",
            Self::OnlineCpus(_) => "online_cpus",
            Self::Map { .. } => "map",
        }
    }

    /// The error and its sources on one line, bounded (verifier logs can be megabytes).
    pub fn reason(&self) -> String {
        const MAX: usize = 2000;
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            let next = err.to_string();
            if !text.contains(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = err.source();
        }
        if text.len() > MAX {
            // Keep both ends: the verifier states its verdict on the last lines.
            let head = floor_boundary(&text, MAX / 2);
            let tail = ceil_boundary(&text, text.len() - MAX / 2);
            text = format!("{} … {}", &text[..head], &text[tail..]);
        }
        text
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}
