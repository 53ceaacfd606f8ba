//! Installs the external programs listed in `tests/dependencies.txt` (Debian packages).
//!
//! Missing programs are installed, never skipped: if that is impossible the error says why,
//! so CI fails loudly instead of silently running fewer tests.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::deps_table::{self, Dependency};

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Makes sure every binary of the dependency table exists, installing what is missing.
pub fn ensure() -> Result<()> {
    let deps = deps_table::dependencies().map_err(anyhow::Error::msg)?;
    let missing: Vec<&Dependency> = deps
        .iter()
        .filter(|dep| !Path::new(dep.binary).exists())
        .collect();
    if missing.is_empty() {
        for dep in &deps {
            eprintln!("xtask: found {} ({})", dep.binary, dep.package);
        }
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|dep| dep.package).collect();
    packages.sort_unstable();
    packages.dedup();
    for dep in &missing {
        eprintln!(
            "xtask: missing {} (Debian package {}): {}",
            dep.binary, dep.package, dep.purpose
        );
    }
    let privilege = Privilege::detect().with_context(|| {
        format!(
            "cannot install {}: not root and no sudo; install them yourself: \
             apt-get install -y --no-install-recommends {}",
            packages.join(" "),
            packages.join(" ")
        )
    })?;
    install(privilege, &packages)?;
    stop_services(privilege, &missing)?;
    let still_missing: Vec<&str> = missing
        .iter()
        .filter(|dep| !Path::new(dep.binary).exists())
        .map(|dep| dep.binary)
        .collect();
    if !still_missing.is_empty() {
        bail!(
            "installed {} but {} still missing",
            packages.join(" "),
            still_missing.join(", ")
        );
    }
    Ok(())
}

/// How to run a command as root.
#[derive(Debug, Clone, Copy)]
enum Privilege {
    Root,
    Sudo,
}

impl Privilege {
    fn detect() -> Result<Self> {
        let output = Command::new("id")
            .arg("-u")
            .output()
            .context("cannot run `id -u`")?;
        if String::from_utf8_lossy(&output.stdout).trim() == "0" {
            return Ok(Self::Root);
        }
        if cmd::on_path("sudo") {
            return Ok(Self::Sudo);
        }
        bail!("this user is not root and sudo is not installed")
    }

    /// `program args…`, through `sudo` when needed. `env` carries variables past sudo,
    /// which would otherwise reset them.
    fn command(self, program: &str, args: &[&str]) -> Command {
        let mut command = match self {
            Self::Root => Command::new("env"),
            Self::Sudo => {
                let mut sudo = Command::new("sudo");
                sudo.arg("env");
                sudo
            }
        };
        command
            .arg("DEBIAN_FRONTEND=noninteractive")
            .arg(program)
            .args(args);
        command
    }
}

fn install(privilege: Privilege, packages: &[&str]) -> Result<()> {
    // Debian starts a package's service on install unless policy-rc.d says no (exit 101).
    // Containers usually ship one; where there is none, add it for the install only, so no
    // Prometheus or VictoriaMetrics daemon is left holding ports and CPU during the tests.
    let guard = if Path::new(POLICY_RC_D).exists() {
        None
    } else {
        let script =
            format!("printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC_D} && chmod 755 {POLICY_RC_D}");
        cmd::run(&mut privilege.command("sh", &["-c", &script]))
            .context("cannot write policy-rc.d to keep services from starting")?;
        Some(PolicyGuard(privilege))
    };
    cmd::run(&mut privilege.command("apt-get", &["update"]))
        .context("apt-get update failed: is the Debian archive reachable?")?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend_from_slice(packages);
    cmd::run(&mut privilege.command("apt-get", &args))
        .with_context(|| format!("cannot install {}", packages.join(" ")))?;
    drop(guard);
    Ok(())
}

/// Removes the temporary policy-rc.d on drop, also when the install fails.
struct PolicyGuard(Privilege);

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        if let Err(err) = cmd::run(&mut self.0.command("rm", &["-f", POLICY_RC_D])) {
            eprintln!("xtask: warning: could not remove {POLICY_RC_D}: {err:#}");
        }
    }
}

/// On hosts run by systemd, units may still have been enabled and started by the package's
/// postinst (policy-rc.d does not stop `deb-systemd-helper enable`); stop and disable them.
/// Without systemd (containers), nothing was started.
fn stop_services(privilege: Privilege, installed: &[&Dependency]) -> Result<()> {
    if !Path::new("/run/systemd/system").exists() {
        return Ok(());
    }
    let units: Vec<&str> = installed.iter().filter_map(|dep| dep.service).collect();
    if units.is_empty() {
        return Ok(());
    }
    let mut args = vec!["disable", "--now"];
    args.extend_from_slice(&units);
    cmd::run(&mut privilege.command("systemctl", &args))
        .with_context(|| format!("cannot stop services {}", units.join(" ")))
}
