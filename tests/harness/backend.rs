//! What the real Prometheus and VictoriaMetrics servers share as test backends: a process
//! started in its own directory, ready once an HTTP path answers, a Prometheus-compatible
//! query API and a remote-write receiver at `/api/v1/write`.

use std::ops::Deref;
use std::process::Command;

use anyhow::Result;
use tempfile::TempDir;

use crate::instance::{Instance, READY_TIMEOUT};
use crate::prom_api::PromApi;

/// A running backend on 127.0.0.1; stopped on drop. Derefs to [`PromApi`] for queries.
#[derive(Debug)]
pub struct Backend {
    api: PromApi,
    instance: Instance,
}

impl Backend {
    /// Runs `command` as `name` in `dir` and waits until `ready_path` answers 200.
    pub(crate) async fn start(
        name: &str,
        dir: TempDir,
        command: &mut Command,
        api: PromApi,
        ready_path: &str,
    ) -> Result<Self> {
        let mut instance = Instance::start(name, dir, command)?;
        let ready = format!("{}{ready_path}", api.base_url());
        instance
            .wait_http_ok(api.http(), &ready, READY_TIMEOUT)
            .await?;
        Ok(Self { api, instance })
    }

    /// Where remote write requests go.
    pub fn remote_write_url(&self) -> String {
        format!("{}/api/v1/write", self.api.base_url())
    }

    /// The query client.
    pub fn api(&self) -> &PromApi {
        &self.api
    }

    /// The process and its directory (log file, config, data).
    pub fn instance(&mut self) -> &mut Instance {
        &mut self.instance
    }
}

impl Deref for Backend {
    type Target = PromApi;

    fn deref(&self) -> &PromApi {
        &self.api
    }
}
