//! Test fixtures: privilege check, cgroups that remove themselves, a recording sink.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    sync::Mutex,
    time::Duration,
};

use crate::{
    collectors::cgroups::cgroup2_mount,
    model::{Sample, SampleSink},
};

/// Whether this process may load BPF programs and create cgroups. Prints a skip notice when
/// not; panics when not and `CI=true`.
pub fn privileged(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    let ok = root && cgroup2_mount().is_some() && Path::new("/sys/kernel/btf/vmlinux").exists();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: needs root, cgroup2 and kernel BTF (CI=true forbids skipping)"
        );
        eprintln!("skip {test}: needs root, cgroup2 and kernel BTF");
    }
    ok
}

/// A cgroup v2 directory under the detected cgroup2 mount, removed (with its processes killed)
/// on drop, even when the test panics.
pub struct TestCgroup {
    dir: PathBuf,
    rel: String,
}

impl TestCgroup {
    /// Creates `crowsnest-test-<pid>-<name>`.
    pub fn new(name: &str) -> Self {
        let root = cgroup2_mount().expect("cgroup2 mount");
        let leaf = format!("crowsnest-test-{}-{name}", std::process::id());
        let dir = root.join(&leaf);
        std::fs::create_dir(&dir).expect("create cgroup");
        Self {
            dir,
            rel: format!("/{leaf}"),
        }
    }

    /// The path as collectors report it (`cgroup` label).
    pub fn path(&self) -> &str {
        &self.rel
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `script` with `sh -c` inside the cgroup: the shell moves itself in before running
    /// anything, so every process of the workload is charged to the cgroup.
    pub fn run(&self, script: &str) -> std::io::Result<ExitStatus> {
        let procs = self.dir.join("cgroup.procs");
        let wrapped = format!("echo $$ > {} && {script}", procs.display());
        Command::new("sh").arg("-c").arg(wrapped).status()
    }

    /// `usage_usec` of the cgroup's `cpu.stat`, in seconds.
    pub fn cpu_usage_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).expect("cpu.stat");
        let usec: f64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse().ok())
            .expect("usage_usec");
        usec / 1e6
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // cgroup.kill exists since 5.14; older kernels leave stragglers to the retry below.
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.dir.display());
    }
}

/// Keeps every sample it is given.
#[derive(Default)]
pub struct RecordingSink {
    samples: Mutex<Vec<Sample>>,
}

impl SampleSink for RecordingSink {
    fn append(&self, samples: &[Sample]) {
        self.samples.lock().unwrap().extend_from_slice(samples);
    }
}

impl RecordingSink {
    /// The latest value of `name{cgroup=path, labels…}`.
    pub fn last(&self, name: &str, path: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let samples = self.samples.lock().unwrap();
        samples
            .iter()
            .rev()
            .find(|s| {
                let l = s.series.labels();
                l.get("__name__") == Some(name)
                    && l.get("cgroup") == Some(path)
                    && labels.iter().all(|(k, v)| l.get(k) == Some(*v))
            })
            .map(|s| s.value)
    }
}
