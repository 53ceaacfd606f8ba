//! Grafana dashboards of `deploy/dashboards`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cmd;

/// The folder of the committed dashboards.
pub fn dir() -> PathBuf {
    cmd::workspace_root().join("deploy").join("dashboards")
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
