//! The reader position: where the first unacknowledged record starts.
//!
//! It is stored on every acknowledgement, so it must be cheap: the file is
//! opened once and overwritten in place (one `pwrite` of 28 bytes; a rename
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
/// Bytes per slot: sequence, segment, offset (u64 each), CRC32C, padding.
const SLOT: usize = 32;
/// What the CRC covers and where it sits.
const SLOT_DATA: usize = 24;
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

/// The stored position; `None` when absent or damaged (then the caller
/// starts from the oldest segment: at-least-once, never lost).
pub(crate) fn load(dir: &Path) -> Option<Position> {
    let b = std::fs::read(dir.join(FILE)).ok()?;
    if b.len() == LEGACY_LEN {
        let (data, crc) = b.split_at(16);
        return (crc32c::crc32c(data).to_le_bytes() == crc).then(|| Position {
            segment: u64_at(data, 0),
            offset: u64_at(data, 8),
        });
    }
    newest_slot(&b).map(|(_, p)| p)
}

/// The valid slot with the highest sequence number: (sequence, position).
fn newest_slot(b: &[u8]) -> Option<(u64, Position)> {
    b.chunks_exact(SLOT)
        .take(2)
        .filter_map(|slot| {
            let (data, rest) = slot.split_at(SLOT_DATA);
            (crc32c::crc32c(data).to_le_bytes() == rest[..4]).then(|| {
                let position = Position {
                    segment: u64_at(data, 8),
                    offset: u64_at(data, 16),
                };
                (u64_at(data, 0), position)
            })
        })
        .max_by_key(|(seq, _)| *seq)
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
    /// Opens (or creates) the file in `dir` and stores `pos` in it, durably:
    /// the caller recovered `pos` from what was there.
    pub(crate) fn create(dir: &Path, pos: Position) -> io::Result<Self> {
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
        // Both slots, so no older position (or a legacy file's tail) remains.
        this.store(pos)?;
        this.store(pos)?;
        this.file.set_len(2 * SLOT as u64)?;
        this.sync()?;
        Ok(this)
    }

    /// Overwrites the older slot with `pos` (no fsync: survives a killed
    /// process; [`Self::sync`] makes it survive a power loss).
    pub(crate) fn store(&mut self, pos: Position) -> io::Result<()> {
        let seq = self.seq + 1;
        let mut slot = [0u8; SLOT];
        slot[..8].copy_from_slice(&seq.to_le_bytes());
        slot[8..16].copy_from_slice(&pos.segment.to_le_bytes());
        slot[16..24].copy_from_slice(&pos.offset.to_le_bytes());
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

    fn at(segment: u64, offset: u64) -> Position {
        Position { segment, offset }
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
        assert_eq!(
            std::fs::metadata(dir.path().join(FILE))
                .expect("meta")
                .len(),
            64
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
}
