//! The reader position: where the first unacknowledged record starts, and
//! how far damage met by readers was already counted.
//!
//! It is stored on every acknowledgement, so it must be cheap: the file is
//! opened once and overwritten in place (one `pwrite` of 48 bytes; a rename
//! per acknowledgement made ext4 start a data writeback each time). It has
//! two slots, written alternately, each with a sequence number and a
//! CRC32C: a killed process leaves a whole write or none, and a write torn
//! by a power loss damages only the slot being written, so `load` falls back
//! to the other slot, the position before.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const FILE: &str = "position";
/// Bytes per slot: sequence, committed segment and offset, counted segment
/// and offset (u64 each), CRC32C, padding.
const SLOT: usize = 48;
/// What the CRC covers and where it sits.
const SLOT_DATA: usize = 40;
/// The slot before the counted position: sequence, segment, offset, CRC32C,
/// padding.
const SLOT_V2: usize = 32;
const SLOT_V2_DATA: usize = 24;
/// The format before slots: segment, offset, CRC32C of both.
const LEGACY_LEN: usize = 20;

/// A place in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Position {
    /// Segment sequence number.
    pub(crate) segment: u64,
    /// Byte offset inside it.
    pub(crate) offset: u64,
}

/// What the position file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stored {
    /// Where the first unacknowledged record starts.
    pub(crate) committed: Position,
    /// Damage before this point was already counted as lost, by this
    /// process or one before it: reading it again (after a restart, or a
    /// rewind) does not count it twice.
    pub(crate) counted: Position,
}

/// The stored position; `None` when absent or damaged (then the caller
/// starts from the oldest segment: at-least-once, never lost).
pub(crate) fn load(dir: &Path) -> Option<Stored> {
    let b = std::fs::read(dir.join(FILE)).ok()?;
    if b.len() == LEGACY_LEN {
        let (data, crc) = b.split_at(16);
        return (crc32c::crc32c(data).to_le_bytes() == crc).then(|| Stored {
            committed: position_at(data, 0),
            counted: Position::default(),
        });
    }
    newest_slot(&b).map(|(_, p)| p)
}

/// The valid slot with the highest sequence number: (sequence, contents).
/// A file of two 32-byte slots is the format before the counted position.
fn newest_slot(b: &[u8]) -> Option<(u64, Stored)> {
    let (slot_len, data_len) = if b.len() == 2 * SLOT_V2 {
        (SLOT_V2, SLOT_V2_DATA)
    } else {
        (SLOT, SLOT_DATA)
    };
    b.chunks_exact(slot_len)
        .take(2)
        .filter_map(|slot| {
            let (data, rest) = slot.split_at(data_len);
            (crc32c::crc32c(data).to_le_bytes() == rest[..4]).then(|| {
                let stored = Stored {
                    committed: position_at(data, 8),
                    counted: if data_len == SLOT_DATA {
                        position_at(data, 24)
                    } else {
                        Position::default()
                    },
                };
                (u64_at(data, 0), stored)
            })
        })
        .max_by_key(|(seq, _)| *seq)
}

fn position_at(b: &[u8], at: usize) -> Position {
    Position {
        segment: u64_at(b, at),
        offset: u64_at(b, at + 8),
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The position file, open for the queue's life.
#[derive(Debug)]
pub(crate) struct PositionFile {
    file: File,
    /// Sequence number of the last write.
    seq: u64,
}

impl PositionFile {
    /// Opens (or creates) the file in `dir` and stores `stored` in it,
    /// durably: the caller recovered it from what was there.
    pub(crate) fn create(dir: &Path, stored: Stored) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(FILE))?;
        let mut old = Vec::new();
        io::Read::read_to_end(&mut &file, &mut old)?;
        let seq = newest_slot(&old).map_or(0, |(seq, _)| seq);
        let mut this = Self { file, seq };
        // Both slots, so no older position (or an older format's tail) remains.
        this.store(stored)?;
        this.store(stored)?;
        this.file.set_len(2 * SLOT as u64)?;
        this.sync()?;
        Ok(this)
    }

    /// Overwrites the older slot with `stored` (no fsync: survives a killed
    /// process; [`Self::sync`] makes it survive a power loss).
    pub(crate) fn store(&mut self, stored: Stored) -> io::Result<()> {
        let seq = self.seq + 1;
        let mut slot = [0u8; SLOT];
        for (i, word) in [
            seq,
            stored.committed.segment,
            stored.committed.offset,
            stored.counted.segment,
            stored.counted.offset,
        ]
        .into_iter()
        .enumerate()
        {
            slot[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        let crc = crc32c::crc32c(&slot[..SLOT_DATA]);
        slot[SLOT_DATA..SLOT_DATA + 4].copy_from_slice(&crc.to_le_bytes());
        let at = (seq % 2) * SLOT as u64;
        self.file.write_all_at(&slot, at)?;
        self.seq = seq;
        Ok(())
    }

    /// A handle to fsync outside the queue's lock.
    pub(crate) fn handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Makes creations and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u64) -> Stored {
        Stored {
            committed: Position { segment, offset },
            counted: Position::default(),
        }
    }

    #[test]
    fn round_trip_through_alternating_slots() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(load(dir.path()), None);
        let mut f = PositionFile::create(dir.path(), at(3, 4096)).expect("create");
        assert_eq!(load(dir.path()), Some(at(3, 4096)));
        for i in 0..5 {
            f.store(at(4, i)).expect("store");
            assert_eq!(load(dir.path()), Some(at(4, i)));
        }
        let counted = Stored {
            counted: Position {
                segment: 4,
                offset: 900,
            },
            ..at(4, 5)
        };
        f.store(counted).expect("store");
        assert_eq!(load(dir.path()), Some(counted));
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE))
                .expect("meta")
                .len(),
            2 * SLOT as u64
        );
        // Reopened: continues the sequence, so the newest write still wins.
        drop(f);
        let mut f = PositionFile::create(dir.path(), at(5, 0)).expect("reopen");
        f.store(at(5, 10)).expect("store");
        assert_eq!(load(dir.path()), Some(at(5, 10)));
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_position_before() {
        let dir = tempfile::tempdir().expect("dir");
        let mut f = PositionFile::create(dir.path(), at(1, 0)).expect("create");
        f.store(at(1, 100)).expect("store");
        f.store(at(1, 200)).expect("store");
        // Damage the newest slot, as a write cut by a power loss would.
        let path = dir.path().join(FILE);
        let mut b = std::fs::read(&path).expect("read");
        let newest = usize::try_from(f.seq % 2).expect("0 or 1") * SLOT;
        b[newest + 10] ^= 1;
        std::fs::write(&path, &b).expect("write");
        assert_eq!(load(dir.path()), Some(at(1, 100)));
        // Both damaged: no position (the caller starts from the oldest segment).
        b[(SLOT - newest) + 3] ^= 1;
        std::fs::write(&path, &b).expect("write");
        assert_eq!(load(dir.path()), None);
    }

    #[test]
    fn the_legacy_format_is_read_and_replaced() {
        let dir = tempfile::tempdir().expect("dir");
        let mut b = Vec::new();
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&512u64.to_le_bytes());
        b.extend_from_slice(&crc32c::crc32c(&b).to_le_bytes());
        std::fs::write(dir.path().join(FILE), &b).expect("write");
        assert_eq!(load(dir.path()), Some(at(7, 512)));
        let mut f = PositionFile::create(dir.path(), at(7, 512)).expect("create");
        f.store(at(8, 0)).expect("store");
        assert_eq!(load(dir.path()), Some(at(8, 0)));
    }

    #[test]
    fn slots_without_the_counted_position_are_read_and_replaced() {
        let dir = tempfile::tempdir().expect("dir");
        // Two 32-byte slots as the previous version wrote them; the second newer.
        let mut b = Vec::new();
        for (seq, offset) in [(4u64, 100u64), (5, 200)] {
            let mut slot = [0u8; SLOT_V2];
            slot[..8].copy_from_slice(&seq.to_le_bytes());
            slot[8..16].copy_from_slice(&2u64.to_le_bytes());
            slot[16..24].copy_from_slice(&offset.to_le_bytes());
            let crc = crc32c::crc32c(&slot[..SLOT_V2_DATA]);
            slot[SLOT_V2_DATA..SLOT_V2_DATA + 4].copy_from_slice(&crc.to_le_bytes());
            b.extend_from_slice(&slot);
        }
        std::fs::write(dir.path().join(FILE), &b).expect("write");
        assert_eq!(load(dir.path()), Some(at(2, 200)));
        let mut f = PositionFile::create(dir.path(), at(2, 200)).expect("create");
        assert_eq!(f.seq, 7, "the sequence continues");
        f.store(at(2, 300)).expect("store");
        assert_eq!(load(dir.path()), Some(at(2, 300)));
    }
}
