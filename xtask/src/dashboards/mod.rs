//! Grafana dashboards as code: `cargo xtask dashboards` writes `deploy/dashboards/*.json` from
//! the definitions here (one source); `cargo xtask test` checks that the committed files are
//! current and well-formed, and that every query is valid PromQL.
//!
//! Whether each query returns data from a real crowsnest is not checked here yet: that needs
//! the merged agent (eBPF collectors, discovery, Kubernetes labels) in an end-to-end test.

mod agent;
mod check;
mod containers;
mod control_plane;
mod model;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cmd;
use model::Dashboard;

/// Every dashboard, with its file name.
fn all() -> Vec<(&'static str, Dashboard)> {
    vec![
        ("agent-health.json", agent::dashboard()),
        ("etcd.json", control_plane::etcd()),
        ("kube-proxy.json", control_plane::kube_proxy()),
        (
            "kube-controller-manager.json",
            control_plane::kube_controller_manager(),
        ),
        ("containers.json", containers::dashboard()),
    ]
}

/// The folder of the committed dashboards.
pub fn dir() -> PathBuf {
    cmd::workspace_root().join("deploy").join("dashboards")
}

/// File name -> JSON text, as `cargo xtask dashboards` writes it.
fn render() -> Result<Vec<(&'static str, String)>> {
    all()
        .into_iter()
        .map(|(file, dashboard)| {
            let mut text = serde_json::to_string_pretty(&dashboard.to_json())?;
            text.push('\n');
            Ok((file, text))
        })
        .collect()
}

/// `cargo xtask dashboards`: (re)writes `deploy/dashboards/*.json`.
pub fn write() -> Result<()> {
    let dir = dir();
    std::fs::create_dir_all(&dir)?;
    for (file, text) in render()? {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}

/// The committed files equal a fresh render, and each is well-formed.
pub fn check(work: &std::path::Path) -> Result<()> {
    let rendered = render()?;
    let files = json_files()?;
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let mut expected: Vec<String> = rendered.iter().map(|(f, _)| (*f).to_owned()).collect();
    expected.sort();
    anyhow::ensure!(
        names == expected,
        "deploy/dashboards holds {names:?}, the definitions make {expected:?}: run `cargo xtask dashboards`"
    );
    for (file, text) in &rendered {
        let committed = std::fs::read_to_string(dir().join(file))?;
        anyhow::ensure!(
            committed == *text,
            "deploy/dashboards/{file} is out of date: run `cargo xtask dashboards` and commit"
        );
    }
    check::structure(&rendered, work)
}

/// The `*.json` files of `deploy/dashboards`, sorted.
pub fn json_files() -> Result<Vec<PathBuf>> {
    let dir = dir();
    let mut files = Vec::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
