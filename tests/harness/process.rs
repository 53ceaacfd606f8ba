//! A child process owned by a test: output to a log file, stopped on drop.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal, kill_process};

/// How long a process gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running child whose stdout and stderr go to one log file.
///
/// Dropping it sends SIGTERM, waits up to [`STOP_GRACE`], then SIGKILLs and reaps it, so no
/// test leaves a server behind even when it panics.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
    exit: Option<ExitStatus>,
}

impl ChildProcess {
    /// Starts `command` with output appended to `log_path`; `name` is used in messages.
    ///
    /// # Errors
    /// When the log file cannot be created or the program cannot start.
    pub fn spawn(name: &str, command: &mut Command, log_path: &Path) -> Result<Self> {
        let log = File::create(log_path)
            .with_context(|| format!("create log file {}", log_path.display()))?;
        let stderr = log.try_clone().context("clone log file handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("start {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log_path: log_path.to_path_buf(),
            exit: None,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `max_lines` lines of its output (for failure messages).
    pub fn log_tail(&self, max_lines: usize) -> String {
        tail(&self.log_path, max_lines)
    }

    /// Fails with the exit status and log tail if the process has already exited.
    ///
    /// # Errors
    /// When the process is no longer running.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.try_exit_status()? {
            bail!(
                "{} exited early ({status}); last output:\n{}",
                self.name,
                self.log_tail(40)
            );
        }
        Ok(())
    }

    /// The exit status if the process has exited, without blocking.
    ///
    /// # Errors
    /// When the status cannot be queried.
    pub fn try_exit_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().context("query child status")?;
        }
        Ok(self.exit)
    }

    /// Sends SIGTERM and waits up to `grace` for the process to exit, then SIGKILLs it.
    /// Returns how it exited.
    ///
    /// # Errors
    /// When signalling or waiting fails.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_exit_status()? {
            return Ok(status);
        }
        self.signal(Signal::TERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit_status()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} ignored SIGTERM for {grace:?}; killing it", self.name);
        self.child.kill().context("SIGKILL child")?;
        let status = self.child.wait().context("reap child")?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Sends `signal` to the process (e.g. SIGHUP to reload).
    ///
    /// # Errors
    /// When the process cannot be signalled.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let raw = i32::try_from(self.child.id()).context("pid out of range")?;
        let pid = Pid::from_raw(raw).context("pid 0")?;
        kill_process(pid, signal).with_context(|| format!("send {signal:?} to {}", self.name))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Err(err) = self.stop(STOP_GRACE) {
            eprintln!("could not stop {}: {err:#}", self.name);
        }
    }
}

/// The last `max_lines` lines of a file, reading at most its last 64 KiB.
pub fn tail(path: &Path, max_lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(max_lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_terminates_a_sleeping_child_and_tail_shows_its_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sh.log");
        let mut child = ChildProcess::spawn(
            "sh",
            Command::new("sh").args(["-c", "echo one; echo two; exec sleep 30"]),
            &log,
        )
        .expect("spawn sh");
        let started = Instant::now();
        while !child.log_tail(5).contains("two") && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        child.ensure_running().expect("still sleeping");
        let status = child.stop(Duration::from_secs(5)).expect("stopped");
        assert!(!status.success(), "killed by SIGTERM, not a clean exit");
        assert_eq!(child.log_tail(1), "two");
        assert!(child.ensure_running().is_err());
    }
}
