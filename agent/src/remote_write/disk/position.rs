//! The reader position: where the first unacknowledged record starts.
//! Replaced atomically (write a temporary file, rename over), so a crash
//! leaves either the old or the new position, never a mix.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

const FILE: &str = "position";
const TMP: &str = "position.tmp";

/// A place in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Position {
    /// Segment sequence number.
    pub(crate) segment: u64,
    /// Byte offset inside it.
    pub(crate) offset: u64,
}

/// The stored position; `None` when absent or damaged (then the caller
/// starts from the oldest segment: at-least-once, never lost).
pub(crate) fn load(dir: &Path) -> Option<Position> {
    let b = std::fs::read(dir.join(FILE)).ok()?;
    let b: &[u8; 20] = b.as_slice().try_into().ok()?;
    let (data, crc) = b.split_at(16);
    if crc32c::crc32c(data).to_le_bytes() != crc {
        return None;
    }
    let (s, o) = data.split_at(8);
    Some(Position {
        segment: u64::from_le_bytes(s.try_into().ok()?),
        offset: u64::from_le_bytes(o.try_into().ok()?),
    })
}

/// Replaces the stored position. Without `sync` the rename survives a
/// process crash (the page cache does); with it, also a power loss.
pub(crate) fn store(dir: &Path, pos: Position, sync: bool) -> io::Result<()> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&pos.segment.to_le_bytes());
    b.extend_from_slice(&pos.offset.to_le_bytes());
    b.extend_from_slice(&crc32c::crc32c(&b).to_le_bytes());
    let tmp = dir.join(TMP);
    let mut f = File::create(&tmp)?;
    f.write_all(&b)?;
    if sync {
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(FILE))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes renames, creations and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_means_none() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(load(dir.path()), None);
        let p = Position {
            segment: 3,
            offset: 4096,
        };
        store(dir.path(), p, true).expect("store");
        assert_eq!(load(dir.path()), Some(p));
        store(
            dir.path(),
            Position {
                segment: 4,
                offset: 0,
            },
            false,
        )
        .expect("store");
        assert_eq!(load(dir.path()).map(|p| p.segment), Some(4));
        let mut b = std::fs::read(dir.path().join(FILE)).expect("read");
        b[3] ^= 1;
        std::fs::write(dir.path().join(FILE), b).expect("write");
        assert_eq!(load(dir.path()), None);
    }
}
