//! Change detection for files that rotate under us (certificates, keys, CA
//! bundles, service-account tokens).
//!
//! We compare a cheap stamp (modification time, length and, on Unix, the inode)
//! at most once per check interval instead of watching with inotify: it works
//! the same for Kubernetes' atomic symlink swaps (`..data`), plain rewrites and
//! bind mounts, and costs one `stat` per file every few seconds.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// How often rotated files are looked at by default.
pub(crate) const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// What we compare to notice that a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// Stamps the file at `path` (following symlinks, as a reader would).
    pub(crate) fn of(path: &Path) -> io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: inode(&meta),
        })
    }

    /// Stamps every path; a missing file stamps as `None` so that its
    /// reappearance counts as a change.
    pub(crate) fn of_all(paths: &[&Path]) -> Vec<Option<Self>> {
        paths.iter().map(|p| Self::of(p).ok()).collect()
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u64 {
    0
}

/// Rate limit for change checks.
#[derive(Debug)]
pub(crate) struct CheckClock {
    every: Duration,
    last: Instant,
}

impl CheckClock {
    /// A clock that is first due `every` from now (the files were just read).
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: Instant::now(),
        }
    }

    /// True (and restarts the interval) when a check is due.
    pub(crate) fn due(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.last) >= self.every {
            self.last = now;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use super::*;

    #[test]
    fn stamp_changes_with_content_and_replacement() {
        let dir = std::env::temp_dir().join(format!("crowsnest-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, "one").unwrap();
        let a = FileStamp::of(&path).unwrap();
        assert_eq!(a, FileStamp::of(&path).unwrap());
        std::fs::write(&path, "three").unwrap();
        let b = FileStamp::of(&path).unwrap();
        assert_ne!(a, b, "length change");
        // Same length, replaced by rename (how Kubernetes rotates secrets).
        let tmp = dir.join("f.tmp");
        std::fs::write(&tmp, "THREE").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_ne!(b, FileStamp::of(&path).unwrap(), "replacement");
        assert_eq!(FileStamp::of_all(&[&dir.join("missing")]), vec![None]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clock_is_due_only_after_interval() {
        let mut zero = CheckClock::new(Duration::ZERO);
        assert!(zero.due());
        let mut long = CheckClock::new(Duration::from_secs(3600));
        assert!(!long.due());
    }
}
