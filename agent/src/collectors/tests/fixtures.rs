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
    let built = !crate::collectors::REGISTERED
        .iter()
        .any(|spec| spec.object.is_empty());
    let ok =
        built && root && cgroup2_mount().is_some() && Path::new("/sys/kernel/btf/vmlinux").exists();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: needs the eBPF objects built, root, cgroup2 and kernel BTF \
             (CI=true forbids skipping)"
        );
        eprintln!("skip {test}: needs the eBPF objects built, root, cgroup2 and kernel BTF");
    }
    ok
}

/// Whether the external programs a test drives are installed (`cargo xtask test` installs them
/// from `tests/dependencies.txt`). Prints a skip notice when not; panics when `CI=true`.
pub fn tools_present(test: &str, tools: &[&str]) -> bool {
    for tool in tools {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
        if !found {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: {tool} missing; CI=true forbids skipping"
            );
            eprintln!("skip {test}: {tool} not installed");
            return false;
        }
    }
    true
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

    /// The cgroup id (the directory's inode number).
    pub fn id(&self) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(&self.dir).expect("cgroup dir").ino()
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

    /// Starts `script` in the cgroup without waiting (the cgroup's drop kills it).
    pub fn spawn(&self, script: &str) -> std::io::Result<std::process::Child> {
        let procs = self.dir.join("cgroup.procs");
        let wrapped = format!("echo $$ > {} && {script}", procs.display());
        Command::new("sh").arg("-c").arg(wrapped).spawn()
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
    fn append(&self, samples: Vec<Sample>) {
        self.samples.lock().expect("sink lock").extend(samples);
    }
}

impl RecordingSink {
    /// The latest value of `name{cgroup=path, labels…}`.
    pub fn last(&self, name: &str, path: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let samples = self.samples.lock().expect("sink lock");
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

/// A memory limit for a [`TestCgroup`]'s workload, removed on drop.
pub enum MemoryLimit {
    /// cgroup v2 `memory.max` on the test cgroup itself.
    V2,
    /// A sibling cgroup in the v1 memory hierarchy.
    V1(PathBuf),
}

impl MemoryLimit {
    /// Limits the workload to `bytes`, on whichever hierarchy holds the memory controller.
    pub fn new(cg: &TestCgroup, bytes: u64) -> Self {
        if std::fs::write(cg.dir().join("memory.max"), bytes.to_string()).is_ok() {
            return Self::V2;
        }
        // Pure v2 host whose parent does not delegate memory yet: enable it and retry.
        if let Some(parent) = cg.dir().parent() {
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
            if std::fs::write(cg.dir().join("memory.max"), bytes.to_string()).is_ok() {
                return Self::V2;
            }
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let v1 = mountinfo
            .lines()
            .find_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                let mut fields = right.split_whitespace();
                let is_memory = fields.next()? == "cgroup"
                    && fields.nth(1)?.split(',').any(|opt| opt == "memory");
                let mount = left.split_whitespace().nth(4)?;
                is_memory.then(|| PathBuf::from(mount))
            })
            .expect("neither cgroup v2 memory.max nor a v1 memory hierarchy is available");
        let dir = v1.join(cg.path().trim_start_matches('/'));
        std::fs::create_dir(&dir).expect("create v1 memory cgroup");
        std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string()).expect("limit");
        Self::V1(dir)
    }

    /// `cgroup.procs` files the workload must join besides the test cgroup's own.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match self {
            Self::V2 => Vec::new(),
            Self::V1(dir) => vec![dir.join("cgroup.procs")],
        }
    }
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        if let Self::V1(dir) = self {
            for _ in 0..50 {
                if std::fs::remove_dir(dir.as_path()).is_ok() || !dir.exists() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("warning: could not remove {}", dir.display());
        }
    }
}

impl TestCgroup {
    /// Like [`TestCgroup::run`], capturing stdout and stderr.
    pub fn output(&self, script: &str) -> std::io::Result<std::process::Output> {
        let procs = self.dir.join("cgroup.procs");
        let wrapped = format!("echo $$ > {} && {script}", procs.display());
        Command::new("sh").arg("-c").arg(wrapped).output()
    }
}

/// A network namespace joined to the host by a veth pair (host 10.213.N.1, namespace .2),
/// deleted on drop.
pub struct NetNs {
    name: String,
    host_if: String,
    peer: String,
}

impl NetNs {
    /// Creates it (callers check `tools_present(.., &["ip", "nft"])` first).
    pub fn new(tag: &str) -> Self {
        let id = std::process::id();
        let subnet = id % 200 + 20;
        let ns = Self {
            name: format!("crowsnest-{tag}-{id}"),
            host_if: format!("cn{tag}{}", id % 100_000),
            peer: format!("10.213.{subnet}.2"),
        };
        let peer_if = format!("{}p", ns.host_if);
        let host_addr = format!("10.213.{subnet}.1/24");
        let peer_addr = format!("{}/24", ns.peer);
        let steps: [&[&str]; 8] = [
            &["netns", "add", &ns.name],
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer_if,
            ],
            &["link", "set", &peer_if, "netns", &ns.name],
            &["addr", "add", &host_addr, "dev", &ns.host_if],
            &["link", "set", &ns.host_if, "up"],
            &["-n", &ns.name, "addr", "add", &peer_addr, "dev", &peer_if],
            &["-n", &ns.name, "link", "set", &peer_if, "up"],
            &["-n", &ns.name, "link", "set", "lo", "up"],
        ];
        for args in steps {
            let out = Command::new("ip").args(args).output().expect("ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ns
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Address of the namespace end.
    pub fn peer_addr(&self) -> &str {
        &self.peer
    }

    /// Runs an nft script inside the namespace.
    pub fn nft(&self, script: &str) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", script])
            .output()
            .expect("nft");
        assert!(
            out.status.success(),
            "nft {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys the peer, which destroys the host end too.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
