//! A server process with its own temporary directory, kept for debugging when a test fails.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::time::{Instant, sleep};

use crate::http::HttpClient;
use crate::process::{ChildProcess, STOP_GRACE};

/// How long a server gets to report ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A child process plus the temp directory holding its config, data and `<name>.log`.
///
/// On drop the process is stopped first; then, if the thread is panicking (a failed test),
/// the directory is kept and its path and log tail are printed, otherwise it is deleted.
#[derive(Debug)]
pub struct Instance {
    name: String,
    process: ChildProcess,
    dir: Option<TempDir>,
}

impl Instance {
    /// Starts `command` with output to `<dir>/<name>.log`.
    ///
    /// # Errors
    /// When the program cannot start.
    pub fn start(name: &str, dir: TempDir, command: &mut Command) -> Result<Self> {
        let log = dir.path().join(format!("{name}.log"));
        let process = ChildProcess::spawn(name, command, &log)?;
        Ok(Self {
            name: name.to_owned(),
            process,
            dir: Some(dir),
        })
    }

    /// A fresh temp directory named after the program.
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn temp_dir(name: &str) -> Result<TempDir> {
        tempfile::Builder::new()
            .prefix(&format!("crowsnest-{name}-"))
            .tempdir()
            .context("create temp dir")
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or_else(|| Path::new("/nonexistent"), TempDir::path)
    }

    /// The underlying process (to signal it, read its log, or stop it early).
    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    /// Polls `GET url` until it answers 200, failing at once (with the log tail) if the
    /// process exits, or after `timeout`.
    ///
    /// # Errors
    /// When the process exits or `timeout` passes.
    pub async fn wait_http_ok(
        &mut self,
        client: &HttpClient,
        url: &str,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.process.ensure_running()?;
            let last = match client.get(url).await {
                Ok(response) if response.status == 200 => return Ok(()),
                Ok(response) => format!("status {}: {}", response.status, response.text()),
                Err(err) => format!("{err:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} not ready at {url} after {timeout:?} ({last}); last output:\n{}",
                    self.name,
                    self.process.log_tail(40)
                );
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Err(err) = self.process.stop(STOP_GRACE) {
            eprintln!("could not stop {}: {err:#}", self.name);
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "{} kept its files in {} for debugging; last output:\n{}",
                self.name,
                kept.display(),
                self.process.log_tail(40)
            );
        }
    }
}
