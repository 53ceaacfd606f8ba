//! The eBPF toolchain (nightly `rust-src` + `bpf-linker` built against nightly's LLVM) and the
//! eBPF benchmark.
//!
//! `ensure_toolchain` is idempotent and cheap when everything is present (a couple of
//! `rustup run` calls), so `cargo xtask run`/`test` can call it every time.

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

const NIGHTLY: &str = "nightly";

/// Makes sure the agent's `build.rs` can compile `agent-ebpf`: the nightly toolchain with
/// `rust-src`, and a `bpf-linker` that runs under it. Installs what is missing; fails with a
/// message saying what to do when that is impossible (offline, no rustup, ...).
pub fn ensure_toolchain() -> Result<()> {
    let sysroot = ensure_rust_src()?;
    ensure_bpf_linker(&sysroot)
}

/// Returns the nightly sysroot, installing the toolchain and its `rust-src` when absent.
fn ensure_rust_src() -> Result<PathBuf> {
    let sysroot = match nightly_sysroot() {
        Some(sysroot) => sysroot,
        None => {
            eprintln!("xtask: installing the {NIGHTLY} toolchain (needed to build eBPF programs)");
            run(Command::new("rustup").args([
                "toolchain",
                "install",
                NIGHTLY,
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))
            .context("the nightly toolchain is required to build the eBPF programs")?;
            nightly_sysroot().context("rustup installed nightly but it does not run")?
        }
    };
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        eprintln!("xtask: adding rust-src to {NIGHTLY} (eBPF builds compile `core` themselves)");
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
            .context("`rust-src` for nightly is required to build the eBPF programs")?;
    }
    Ok(sysroot)
}

/// `cargo xtask bench ebpf`: builds the agent's `ebpf_bench` example (release with `release`)
/// and runs it as root: a context-switch storm with per-program ns/event from bpf_stats, then
/// the idle agent's CPU use. `args` go to the example (`--storm-secs N`, `--idle-secs N`).
pub fn bench(release: bool, args: &[String]) -> Result<()> {
    ensure_toolchain()?;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        bail!("the eBPF benchmark loads BPF programs: run it as root");
    }
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "crowsnest",
        "--example",
        "ebpf_bench",
    ]);
    if release {
        cmd.arg("--release");
    }
    run(cmd.arg("--").args(args))
}

fn nightly_sysroot() -> Option<PathBuf> {
    let out = Command::new("rustup")
        .args(["run", NIGHTLY, "rustc", "--print", "sysroot"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Installs `bpf-linker` linked against the nightly toolchain's own libLLVM unless one already
/// runs under nightly (rustup puts the toolchain's lib/ on the loader path, which is how the
/// linker finds libLLVM at run time).
fn ensure_bpf_linker(sysroot: &Path) -> Result<()> {
    let works = Command::new("rustup")
        .args(["run", NIGHTLY, "bpf-linker", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if works {
        return Ok(());
    }
    let (libllvm, major) = nightly_libllvm(sysroot)?;
    // bpf-linker's build finds LLVM as `$LLVM_PREFIX/lib/libLLVM.so`; nightly ships it with a
    // versioned name only, so give it a prefix holding a plain-named symlink.
    let prefix = cache_dir()?.join("llvm-nightly");
    let lib = prefix.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let link = lib.join("libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("linking {} -> {}", link.display(), libllvm.display()))?;

    eprintln!(
        "xtask: building bpf-linker against {} (takes a few minutes)",
        libllvm.display()
    );
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix))
    .context(
        "could not build bpf-linker; the eBPF programs cannot be built (set \
         CROWSNEST_SKIP_EBPF=1 to build the agent without them)",
    )?;
    Ok(())
}

/// Finds `lib/libLLVM.so.<major>…` in the nightly sysroot (the version changes with nightly, so
/// it is looked up, never hard-coded) and returns it with its major version.
fn nightly_libllvm(sysroot: &Path) -> Result<(PathBuf, u32)> {
    let lib = sysroot.join("lib");
    let entries = std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(major) = llvm_major(&name) {
            return Ok((entry.path(), major));
        }
    }
    bail!(
        "no libLLVM.so.<version> in {}; is the nightly toolchain complete?",
        lib.display()
    )
}

/// `libLLVM.so.22.1-rust-1.97.0-nightly` -> 22.
fn llvm_major(file_name: &OsStr) -> Option<u32> {
    let rest = file_name.to_str()?.strip_prefix("libLLVM.so.")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("crowsnest"));
    }
    let home = env::var_os("HOME").context("HOME not set")?;
    Ok(PathBuf::from(home).join(".cache/crowsnest"))
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_file_names() {
        for (name, want) in [
            ("libLLVM.so.22.1-rust-1.97.0-nightly", Some(22)),
            ("libLLVM.so.19", Some(19)),
            ("libLLVM-22-rust-1.97.0-nightly.so", None),
            ("librustc_driver-b5a965480ee51f9a.so", None),
        ] {
            assert_eq!(llvm_major(OsStr::new(name)), want, "{name}");
        }
    }
}
