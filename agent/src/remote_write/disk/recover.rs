//! Opening a queue directory: drop acknowledged segments, validate the rest,
//! cut torn tails at the last good record, count what is pending.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use super::position::{self, Position};
use super::segment::{self, Item};

/// What was found on disk.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// Where reading resumes.
    pub(crate) start: Position,
    /// Remaining segments, oldest first: `(seq, bytes, samples after start)`.
    pub(crate) segments: Vec<(u64, u64, u64)>,
    /// Samples in torn tails that were cut off.
    pub(crate) torn_samples: u64,
    /// Bytes cut off.
    pub(crate) torn_bytes: u64,
    /// Damage before this point was counted already (see [`position::Stored`]).
    pub(crate) counted: Position,
}

impl Recovered {
    /// Samples still to deliver (damaged records in the middle included:
    /// the reader counts them as dropped when it passes them).
    pub(crate) fn pending(&self) -> u64 {
        self.segments.iter().map(|s| s.2).sum()
    }
}

/// Scans `dir` (which must exist).
pub(crate) fn recover(dir: &Path) -> io::Result<Recovered> {
    let mut seqs = segment::list(dir)?;
    let stored = position::load(dir);
    let counted = stored.map(|s| s.counted).unwrap_or_default();
    let stored = stored.map(|s| s.committed);
    // Left by versions that replaced the position by rename.
    let _ = std::fs::remove_file(dir.join("position.tmp"));
    let mut start = match (stored, seqs.first()) {
        (Some(p), _) if seqs.contains(&p.segment) => p,
        // The position's segment was dropped (budget) or is missing: the
        // oldest remaining segment is the next unacknowledged data.
        (Some(p), Some(&first)) if p.segment < first => Position {
            segment: first,
            offset: 0,
        },
        (_, Some(&first)) => Position {
            segment: first,
            offset: 0,
        },
        (_, None) => Position::default(),
    };
    // Fully acknowledged segments.
    for &seq in seqs.iter().filter(|&&s| s < start.segment) {
        std::fs::remove_file(segment::path(dir, seq))?;
    }
    seqs.retain(|&s| s >= start.segment);
    let mut out = Recovered::default();
    for seq in seqs {
        let path = segment::path(dir, seq);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        let skip_to = if seq == start.segment {
            start.offset.min(len)
        } else {
            0
        };
        let (mut pos, mut samples) = (0u64, 0u64);
        while let Some(item) = segment::read_item(&file, pos, len)? {
            match item {
                Item::Record {
                    end, samples: n, ..
                }
                | Item::Damaged { end, samples: n } => {
                    if pos >= skip_to {
                        samples += u64::from(n);
                    }
                    pos = end;
                }
                Item::Torn { samples: n } => {
                    // Never the whole queue: only what follows the last good record.
                    tracing::warn!(
                        segment = seq,
                        offset = pos,
                        bytes = len - pos,
                        "cutting a torn or damaged segment tail"
                    );
                    file.set_len(pos)?;
                    file.sync_all()?;
                    out.torn_samples += u64::from(n);
                    out.torn_bytes += len - pos;
                    break;
                }
            }
        }
        if seq == start.segment && start.offset > pos {
            // The position points past the (cut) data: resume at its end.
            start.offset = pos;
        }
        out.segments.push((seq, pos, samples));
    }
    out.start = start;
    out.counted = counted;
    Ok(out)
}
