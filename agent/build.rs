//! Builds the eBPF programs in `agent-ebpf/` (one object per collector) with aya-build and
//! leaves them in `OUT_DIR` for `include_bytes!`.
//!
//! The eBPF build needs the nightly toolchain with `rust-src` and `bpf-linker`
//! (`cargo xtask setup-ebpf` installs both). Without them, or with `CROWSNEST_SKIP_EBPF=1`,
//! the objects are left empty: `cargo check`, clippy and unit tests still work, and the agent
//! reports every collector as failed ("agent built without eBPF programs").

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

/// One object per collector: the `[[bin]]` names of `agent-ebpf/Cargo.toml`.
const PROGRAMS: &[&str] = &["cpu", "process", "tcp"];
const SKIP_ENV: &str = "CROWSNEST_SKIP_EBPF";

fn main() -> Result<()> {
    println!("cargo:rerun-if-env-changed={SKIP_ENV}");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let ebpf_dir = manifest_dir.join("../agent-ebpf");

    if let Some(reason) = skip_reason() {
        println!("cargo:warning=eBPF programs not built ({reason}); collectors will report failed");
        // Rebuild once `cargo install bpf-linker` (via xtask) changes cargo's bin directory.
        println!("cargo:rerun-if-changed={}", ebpf_dir.display());
        if let Some(bin) = cargo_bin_dir() {
            println!("cargo:rerun-if-changed={}", bin.display());
        }
        return write_empty(&out_dir);
    }

    let ebpf_dir = ebpf_dir
        .canonicalize()
        .with_context(|| format!("agent-ebpf not found at {}", ebpf_dir.display()))?;
    let root_dir = ebpf_dir.to_str().context("agent-ebpf path is not UTF-8")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "crowsnest-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}

/// Why the eBPF build cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    if env::var(SKIP_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        return Some(format!("{SKIP_ENV} is set"));
    }
    if find_in_path("bpf-linker").is_none() {
        return Some("bpf-linker not found in PATH; run `cargo xtask setup-ebpf`".to_owned());
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    match sysroot {
        None => Some("nightly toolchain not installed; run `cargo xtask setup-ebpf`".to_owned()),
        Some(root) if !root.join("lib/rustlib/src/rust/library/core").is_dir() => {
            Some("nightly rust-src missing; run `cargo xtask setup-ebpf`".to_owned())
        }
        Some(_) => None,
    }
}

fn cargo_bin_dir() -> Option<PathBuf> {
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("bin"))
}

fn find_in_path(binary: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

fn write_empty(out_dir: &Path) -> Result<()> {
    for name in PROGRAMS {
        let path = out_dir.join(name);
        fs::write(&path, []).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
