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
        other => bail!("unknown task {other:?}; available: setup-ebpf"),
    }
}
