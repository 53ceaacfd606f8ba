//! Developer tasks: `cargo xtask run`, `cargo xtask test`.

mod ebpf;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    // Minimal hook; the lead's clap-based main wires these into `run`/`test`/`bench`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["setup-ebpf"] => ebpf::ensure_toolchain(),
        ["bench", "ebpf", rest @ ..] => {
            let release = rest.contains(&"--release");
            let rest: Vec<String> = rest
                .iter()
                .filter(|a| **a != "--release")
                .map(|a| (*a).to_owned())
                .collect();
            ebpf::bench(release, &rest)
        }
        other => bail!("unknown task {other:?}; available: setup-ebpf, bench ebpf [--release]"),
    }
}
