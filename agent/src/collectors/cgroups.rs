//! cgroup id -> cgroup v2 path, the identity collectors put on every series.
//!
//! A cgroup v2 id is the inode number of the cgroup's directory in the cgroup2 filesystem, so
//! the resolver walks that mount (found in `/proc/self/mountinfo`, never assumed: it is
//! `/sys/fs/cgroup` on pure v2 hosts and e.g. `/sys/fs/cgroup/unified` on hybrid ones) and
//! indexes directories by inode. It rescans only when asked about an unknown id.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

/// Finds the cgroup2 mount point in a mountinfo text (`/proc/self/mountinfo` format).
pub fn cgroup2_mount_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        // Field 5 is the mount point (octal escapes for spaces are not expected here).
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// The cgroup2 mount of this host, if cgroup v2 is mounted at all.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    cgroup2_mount_in(&mountinfo)
}

/// Maps cgroup ids to paths relative to the cgroup2 mount (`/`, `/system.slice/x.service`).
#[derive(Debug)]
pub struct CgroupResolver {
    root: PathBuf,
    paths: HashMap<u64, Arc<str>>,
    last_scan: Option<Instant>,
}

/// Rescans are rate-limited: an id that never resolves (a cgroup created and removed between
/// two reads) must not cause a directory walk on every read.
const MIN_RESCAN: Duration = Duration::from_millis(500);

impl CgroupResolver {
    /// A resolver over the cgroup2 filesystem mounted at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            paths: HashMap::new(),
            last_scan: None,
        }
    }

    /// The mount this resolver walks.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of cgroup `id`, rescanning once if it is unknown. `None` means the cgroup no longer
    /// exists (or was never visible to us).
    pub fn resolve(&mut self, id: u64) -> Option<Arc<str>> {
        if !self.paths.contains_key(&id) {
            self.rescan(false);
        }
        self.paths.get(&id).cloned()
    }

    /// Walks the hierarchy again (always when `force`, else at most every [`MIN_RESCAN`]).
    pub fn rescan(&mut self, force: bool) {
        if !force && self.last_scan.is_some_and(|t| t.elapsed() < MIN_RESCAN) {
            return;
        }
        self.last_scan = Some(Instant::now());
        self.paths.clear();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let rel = dir
                .strip_prefix(&self.root)
                .map_or_else(|_| "/".to_owned(), |p| format!("/{}", p.display()));
            self.paths.insert(meta.ino(), rel.into());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_mount_in_hybrid_and_pure_layouts() {
        let cases = [
            (
                "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
                Some("/sys/fs/cgroup/unified"),
            ),
            (
                "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
                Some("/sys/fs/cgroup"),
            ),
            (
                "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
                None,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(cgroup2_mount_in(text), want.map(PathBuf::from), "{text}");
        }
    }

    #[test]
    fn resolves_directory_inodes_to_relative_paths() {
        let tmp = std::env::temp_dir().join(format!("crowsnest-cg-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("a.slice/b.service")).expect("test setup");
        let ino = std::fs::metadata(tmp.join("a.slice/b.service"))
            .expect("test setup")
            .ino();
        let root_ino = std::fs::metadata(&tmp).expect("test setup").ino();
        let mut resolver = CgroupResolver::new(tmp.clone());
        assert_eq!(resolver.resolve(ino).as_deref(), Some("/a.slice/b.service"));
        assert_eq!(resolver.resolve(root_ino).as_deref(), Some("/"));
        std::fs::remove_dir_all(&tmp).expect("test setup");
        resolver.rescan(true);
        assert_eq!(resolver.resolve(ino), None);
    }
}
