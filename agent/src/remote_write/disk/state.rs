//! The queue's state behind one lock: the writer end (active segment, series
//! ids), the reader end (cursor, per-shard windows, unacknowledged records)
//! and the disk budget.
//!
//! Design: one ordered log per endpoint, read by one cursor that deals
//! samples to per-shard in-memory windows by series hash. Appends and replay
//! share the log, so a backlog and fresh data are sent in exactly the order
//! they were collected, and memory is bounded by the windows (not the
//! backlog). The reader position advances only over a prefix of records
//! whose samples were all acknowledged. The newest records are also kept in
//! memory (bounded), so a reader that keeps up deals them without reading
//! the file back; the file is what a restart or a lagging reader uses.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use hashbrown::HashTable;

use super::position::{Position, PositionFile, Stored};
use super::record;
use super::segment;
use crate::model::{Sample, SeriesRef};
use crate::remote_write::queue::Pending;

mod reader;

/// Samples per record at most; a record is also the unit of acknowledgement.
pub(crate) const RECORD_SAMPLES: usize = 4096;

/// Sample records read per lock hold, so appends are never held up for long.
const READ_PER_PUMP: usize = 64;

/// Records of any kind read per lock hold. A segment written after a
/// restart starts with one series record per series (100k at 100k series),
/// which must not count as sample records: a pump that reads only series
/// definitions deals nothing and wakes no shard, so the drain would crawl.
const ITEMS_PER_PUMP: usize = 16 * 1024;

/// Losses the queue reports to the endpoint's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Losses {
    /// Unread samples of segments dropped to stay within the budget.
    pub disk_full: u64,
    /// Samples in damaged records, or referring to a damaged series record.
    pub corrupt: u64,
    /// Samples that could not be written (I/O error).
    pub io: u64,
}

struct SegMeta {
    seq: u64,
    bytes: u64,
    /// Samples in the segment still counted as pending when written/recovered.
    samples: u64,
    /// Of those, samples the reader has taken (or counted as damaged).
    read: u64,
}

struct Rec {
    end: Position,
    /// Samples dealt to shards.
    placed: u32,
    /// Of those, not yet acknowledged.
    remaining: u32,
    /// Samples not dealt because they were acknowledged before a rewind.
    skipped: u32,
    /// Samples lost to damage (in the record, or in the series it uses).
    missing: u32,
}

/// What the shards had acknowledged when the queue was rewound, so reading
/// it again skips exactly that: a successor taking the queue over then sends
/// each sample once even when shards had acknowledged out of step.
///
/// Rewinds in a row stack: each one's acknowledgements were counted over the
/// samples the earlier ones let through, so a sample read again meets them
/// oldest first, and the first with room for it skips it. That holds under
/// any shard counts, since each keeps its own.
pub(crate) struct Skip {
    /// The shard count the acknowledgements were made under.
    shards: usize,
    /// Per old shard: `(record, n)`, all of its samples in records before
    /// `record` and its first `n` in `record` were acknowledged. Records
    /// count from `base`.
    acked: Vec<Option<(u64, u32)>>,
    /// The record id the re-read starts at (record 0 above).
    base: u64,
    /// Past this record (counted the same way) nothing is skipped.
    last: u64,
}

impl Skip {
    /// Built from per-shard reaches counted from `base`; `None` when
    /// nothing was acknowledged.
    fn new(shards: usize, acked: Vec<Option<(u64, u32)>>, base: u64) -> Option<Self> {
        let last = acked.iter().flatten().map(|&(r, _)| r).max()?;
        Some(Self {
            shards,
            acked,
            base,
            last,
        })
    }

    /// The same skip counted from a new `base`, after `committed` of its
    /// records were committed (they are not read again).
    fn rebased(&self, committed: u64, base: u64) -> Option<Self> {
        let acked = self
            .acked
            .iter()
            .map(|a| a.and_then(|(r, n)| r.checked_sub(committed).map(|r| (r, n))))
            .collect();
        Self::new(self.shards, acked, base)
    }

    /// Per shard of this skip, how many of its samples in `record` to skip;
    /// `None` past everything it skips.
    fn quota(&self, record: u64) -> Option<(usize, Vec<u32>)> {
        let nth = record.wrapping_sub(self.base);
        if nth > self.last {
            return None;
        }
        let quota = self
            .acked
            .iter()
            .map(|a| match *a {
                Some((r, _)) if nth < r => u32::MAX,
                Some((r, n)) if nth == r => n,
                _ => 0,
            })
            .collect();
        Some((self.shards, quota))
    }

    /// True once the first `committed` records from `base` cover all it
    /// skips: a later rewind reads none of them again.
    fn committed(&self, committed: u64) -> bool {
        committed > self.last
    }
}

/// A record this process just wrote, its samples still in memory: a reader
/// that keeps up deals them as they are, instead of reading the record back
/// and decoding it (a read, a checksum and a table lookup per sample).
pub(crate) struct Fresh {
    /// Where the record's frames start (the series it defines, then its samples).
    pub(crate) start: Position,
    /// Where they end, in the same segment.
    pub(crate) end: u64,
    pub(crate) samples: Vec<Sample>,
}

/// One shard's samples waiting to be sent, with the records they came from
/// kept as runs (a record deals its samples for a shard in a row), so a
/// batch is taken in bulk and a waiting sample costs no more than itself.
#[derive(Default)]
pub(crate) struct Window {
    samples: Pending,
    /// `(record, samples)` runs covering `samples`, in order.
    runs: VecDeque<(u64, u32)>,
}

impl Window {
    /// Samples waiting.
    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Adds a sample dealt from `record`.
    pub(crate) fn push(&mut self, sample: Sample, record: u64) {
        self.add_run(record, 1);
        self.samples.push_back(sample);
    }

    /// Adds all of `samples`, dealt from `record`.
    pub(crate) fn extend(&mut self, samples: Vec<Sample>, record: u64) {
        if samples.is_empty() {
            return;
        }
        // A record holds far fewer than 2^32 samples (`MAX_PAYLOAD`).
        self.add_run(record, u32::try_from(samples.len()).unwrap_or(u32::MAX));
        self.samples.append(samples);
    }

    /// Counts `n` more samples from `record` at the back.
    fn add_run(&mut self, record: u64, n: u32) {
        match self.runs.back_mut() {
            Some((r, count)) if *r == record => *count += n,
            _ => self.runs.push_back((record, n)),
        }
    }

    /// Takes the first `n` samples, with the `(record, samples)` runs they
    /// came from.
    pub(crate) fn take(&mut self, n: usize) -> (Vec<Sample>, Vec<(u64, u32)>) {
        let samples = self.samples.take(n);
        let mut records = Vec::new();
        let mut left = samples.len();
        while left > 0 {
            let Some(run) = self.runs.front_mut() else {
                break;
            };
            let count = run.1 as usize;
            if count <= left {
                records.push(*run);
                self.runs.pop_front();
                left -= count;
            } else {
                // `left < count`, a u32.
                let part = u32::try_from(left).unwrap_or(u32::MAX);
                records.push((run.0, part));
                run.1 -= part;
                left = 0;
            }
        }
        (samples, records)
    }

    /// Keeps an acknowledged batch's buffer for samples dealt one by one.
    pub(crate) fn recycle(&mut self, buf: Vec<Sample>) {
        self.samples.recycle(buf);
    }

    pub(crate) fn clear(&mut self) {
        self.samples.clear();
        self.runs.clear();
    }
}

pub(crate) struct State {
    pub(crate) dir: PathBuf,
    segment_size: u64,
    budget: u64,
    window: usize,
    // Writer.
    segments: VecDeque<SegMeta>,
    active: File,
    /// Ids in the active segment (indexes of the active table), found by
    /// series hash: 4 bytes a series, since the series live in the table
    /// (a map from hash to id took 16, 2 MB at 100k series).
    ids: HashTable<u32>,
    /// Series tables (id -> series) of segments this process wrote, kept for
    /// the active segment and the reader's, so reading a live segment shares
    /// the writer's series instead of decoding label sets a second time.
    tables: VecDeque<(u64, Vec<SeriesRef>)>,
    buf: Vec<u8>,
    payload: Vec<u8>,
    /// Bytes of series definitions in the active segment.
    defined: u64,
    /// Records just written, oldest first, at most `window` samples in all
    /// (older ones are read from disk like any record).
    fresh: VecDeque<Fresh>,
    fresh_samples: usize,
    /// A write to the active segment failed part way: its offsets no longer
    /// match the file, so nothing in it is kept as fresh.
    torn_active: bool,
    pub(crate) dirty: bool,
    pub(crate) dir_dirty: bool,
    // Reader.
    cursor: Position,
    /// Records before this offset of the cursor's segment were delivered
    /// before a restart: only their series definitions are needed.
    skip_to: Position,
    reader: Option<File>,
    series: HashMap<u32, SeriesRef>,
    pub(crate) windows: Vec<Window>,
    pub(crate) shards: usize,
    pub(crate) want_shards: usize,
    records: VecDeque<Rec>,
    first_record: u64,
    /// Per shard, how far its acknowledgements reach: `(record, n)`, the
    /// first `n` samples it was dealt from `record` and all it was dealt
    /// before. A shard acknowledges its window in order, so this is exact.
    acked_to: Vec<Option<(u64, u32)>>,
    /// Set by rewinds, oldest first, each until what it skips is committed
    /// (until then a later rewind reads those records again).
    skips: Vec<Skip>,
    pub(crate) committed: Position,
    /// Damage before this point was counted as lost already (by this
    /// process, or one before it): read again, it is not counted twice.
    damage_counted: Position,
    /// The committed or counted position changed since it was last written.
    position_dirty: bool,
    /// The position was written since the last fsync.
    pub(crate) position_unsynced: bool,
    /// `None` while the file cannot be created (a full disk): the queue
    /// runs on, and every store tries again, as a failing write would.
    position: Option<PositionFile>,
    pub(crate) pending: u64,
    pub(crate) losses: Losses,
}

impl State {
    /// Opens `dir` (created if missing), recovering what is there.
    pub(crate) fn open(
        dir: PathBuf,
        shards: usize,
        window: usize,
        budget: u64,
        segment_size: u64,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let rec = super::recover::recover(&dir)?;
        let next_seq = rec.segments.last().map_or(1, |s| s.0 + 1);
        let active = create_segment(&dir, next_seq)?;
        let mut segments: VecDeque<SegMeta> = rec
            .segments
            .iter()
            .map(|&(seq, bytes, samples)| SegMeta {
                seq,
                bytes,
                samples,
                read: 0,
            })
            .collect();
        segments.push_back(SegMeta {
            seq: next_seq,
            bytes: 0,
            samples: 0,
            read: 0,
        });
        let start = if rec.segments.is_empty() {
            Position {
                segment: next_seq,
                offset: 0,
            }
        } else {
            rec.start
        };
        let shards = shards.max(1);
        let stored = Stored {
            committed: start,
            counted: rec.counted,
        };
        let position = PositionFile::create(&dir, stored)
            .inspect_err(|e| tracing::error!(dir = %dir.display(), error = %e, "cannot create the queue position file; trying again on every acknowledgement"))
            .ok();
        Ok(Self {
            dir,
            segment_size: segment_size.max(1),
            budget,
            window: window.max(1),
            segments,
            active,
            ids: HashTable::new(),
            tables: VecDeque::from([(next_seq, Vec::new())]),
            buf: Vec::new(),
            payload: Vec::new(),
            defined: 0,
            fresh: VecDeque::new(),
            fresh_samples: 0,
            torn_active: false,
            dirty: false,
            dir_dirty: true,
            cursor: Position {
                segment: start.segment,
                offset: 0,
            },
            skip_to: start,
            reader: None,
            series: HashMap::new(),
            windows: (0..shards).map(|_| Window::default()).collect(),
            shards,
            want_shards: shards,
            records: VecDeque::new(),
            first_record: 0,
            acked_to: vec![None; shards],
            skips: Vec::new(),
            committed: start,
            damage_counted: rec.counted,
            position_dirty: position.is_none(),
            position_unsynced: false,
            position,
            pending: rec.pending(),
            losses: Losses {
                corrupt: rec.torn_samples,
                ..Losses::default()
            },
        })
    }

    /// Bytes on disk.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Writes samples as records; returns how many were written.
    pub(crate) fn append(&mut self, mut samples: Vec<Sample>) -> usize {
        let mut written = 0;
        while !samples.is_empty() {
            let rest = if samples.len() > RECORD_SAMPLES {
                samples.split_off(RECORD_SAMPLES)
            } else {
                Vec::new()
            };
            let n = samples.len();
            match self.append_record(samples) {
                Ok(()) => written += n,
                Err(e) => {
                    tracing::error!(error = %e, samples = n, "cannot write to the queue directory; samples dropped");
                    self.losses.io += n as u64;
                }
            }
            samples = rest;
        }
        written
    }

    fn append_record(&mut self, chunk: Vec<Sample>) -> io::Result<()> {
        self.buf.clear();
        self.payload.clear();
        let extras = chunk.iter().any(|s| s.extra.is_some());
        let mut coder = record::samples_payload(&mut self.payload, chunk.len(), extras);
        let mut series_payload = Vec::new();
        for s in &chunk {
            let id = match self.series_id(&s.series) {
                Some(id) => id,
                None => {
                    let id = self.define_series(&s.series);
                    series_payload.clear();
                    record::series_payload(&mut series_payload, id, &s.series);
                    let before = self.buf.len();
                    record::frame(&mut self.buf, 0, &series_payload);
                    self.defined += (self.buf.len() - before) as u64;
                    id
                }
            };
            coder.push(&mut self.payload, id, s.timestamp_ms, s.value);
            if extras {
                record::push_extra(&mut self.payload, s.extra.as_deref());
            }
        }
        let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        record::frame(&mut self.buf, n, &self.payload);
        if let Err(e) = self.active.write_all(&self.buf) {
            // A partial write is cut at open like a torn tail; start a fresh
            // segment so later records are not appended after garbage. If
            // even that fails, series are defined again under new ids (the
            // table keeps the old ones, so ids and table stay in step).
            self.ids.clear();
            self.torn_active = true;
            let _ = self.roll();
            return Err(e);
        }
        self.dirty = true;
        let n = chunk.len() as u64;
        self.pending += n;
        if let Some(seg) = self.segments.back()
            && !self.torn_active
        {
            let fresh = Fresh {
                start: Position {
                    segment: seg.seq,
                    offset: seg.bytes,
                },
                end: seg.bytes + self.buf.len() as u64,
                samples: chunk,
            };
            self.keep_fresh(fresh);
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.bytes += self.buf.len() as u64;
            seg.samples += n;
            if seg.bytes >= self.roll_at() {
                self.roll()?;
            }
        }
        self.enforce_budget();
        Ok(())
    }

    /// The id of `series` in the active segment, if it has one.
    fn series_id(&self, series: &SeriesRef) -> Option<u32> {
        let table = &self.tables.back()?.1;
        // The hint the series carries is right when the table holds this very
        // series under it: then no map lookup is needed (the usual case).
        let hint = series.queue_hint();
        if table
            .get(hint as usize)
            .is_some_and(|s| Arc::ptr_eq(s, series))
        {
            return Some(hint);
        }
        let &id = self.ids.find(id_hash(series), |&id| {
            table.get(id as usize).is_some_and(|s| same(s, series))
        })?;
        series.set_queue_hint(id);
        Some(id)
    }

    /// Gives `series` the next id of the active segment.
    fn define_series(&mut self, series: &SeriesRef) -> u32 {
        let Some((_, table)) = self.tables.back_mut() else {
            return 0;
        };
        // A segment holds far fewer than 2^32 series (its size is bounded).
        let id = u32::try_from(table.len()).unwrap_or(u32::MAX);
        table.push(Arc::clone(series));
        series.set_queue_hint(id);
        let table = &*table;
        self.ids.insert_unique(id_hash(series), id, |&j| {
            table.get(j as usize).map_or(0, id_hash)
        });
        id
    }

    /// Drops the series tables of segments the reader is done with. The
    /// tables of segments still ahead of it are kept: they hold only
    /// pointers to series the writer defined (8 bytes each), while reading
    /// such a segment without its table would decode a second copy of every
    /// label set in it. At most one table per segment on disk.
    fn prune_tables(&mut self) {
        let reading = self.cursor.segment;
        self.tables.retain(|(seq, _)| *seq >= reading);
    }

    /// The size at which the active segment is closed: the configured
    /// segment size, but at least four times the series definitions it
    /// holds. Every segment defines the series it uses, so with many
    /// series (200k long label sets are ~50 MB) a fixed size would make
    /// most of each segment definitions and roll every few seconds. Half
    /// the budget at most, so dropping a segment still frees room.
    fn roll_at(&self) -> u64 {
        self.segment_size
            .max(self.defined.saturating_mul(4))
            .min((self.budget / 2).max(self.segment_size))
    }

    /// Keeps the record just written in memory for the reader, within the
    /// bound.
    fn keep_fresh(&mut self, fresh: Fresh) {
        self.fresh_samples += fresh.samples.len();
        self.fresh.push_back(fresh);
        while self.fresh_samples > self.window.max(RECORD_SAMPLES) {
            self.pop_fresh();
        }
    }

    /// The oldest fresh record, taken out.
    fn pop_fresh(&mut self) -> Option<Fresh> {
        let f = self.fresh.pop_front()?;
        self.fresh_samples -= f.samples.len();
        Some(f)
    }

    /// Starts a new active segment.
    fn roll(&mut self) -> io::Result<()> {
        let seq = self.segments.back().map_or(1, |s| s.seq + 1);
        let file = create_segment(&self.dir, seq)?;
        // The finished segment is made durable now; later fsyncs only touch the active one.
        self.active.sync_data()?;
        self.active = file;
        self.torn_active = false;
        self.defined = 0;
        self.ids.clear();
        self.tables.push_back((seq, Vec::new()));
        self.dir_dirty = true;
        self.segments.push_back(SegMeta {
            seq,
            bytes: 0,
            samples: 0,
            read: 0,
        });
        self.prune_tables();
        Ok(())
    }

    /// New budget and window size (a reload); the budget applies at once.
    pub(crate) fn retune(&mut self, budget: u64, window: usize, segment_size: u64) {
        self.budget = budget;
        self.window = window.max(1);
        self.segment_size = segment_size.max(1);
        // The active segment is never dropped: close it so it can be.
        if self
            .segments
            .back()
            .is_some_and(|s| s.bytes >= self.roll_at())
            && let Err(e) = self.roll()
        {
            tracing::error!(error = %e, "cannot start a new queue segment");
        }
        self.enforce_budget();
    }

    /// Drops the oldest segments (never the active one) while over budget.
    fn enforce_budget(&mut self) {
        while self.disk_bytes() > self.budget && self.segments.len() > 1 {
            let Some(old) = self.segments.pop_front() else {
                break;
            };
            let unread = old.samples.saturating_sub(old.read);
            self.pending = self.pending.saturating_sub(unread);
            self.losses.disk_full += unread;
            if let Err(e) = std::fs::remove_file(segment::path(&self.dir, old.seq)) {
                tracing::error!(error = %e, segment = old.seq, "cannot remove a dropped segment");
            }
            self.dir_dirty = true;
            if self.cursor.segment <= old.seq {
                self.jump_to_oldest();
            }
            tracing::warn!(
                segment = old.seq,
                dropped_samples = unread,
                budget = self.budget,
                "disk budget reached; dropped the oldest queued samples"
            );
        }
    }

    fn jump_to_oldest(&mut self) {
        let seq = self.segments.front().map_or(0, |s| s.seq);
        self.cursor = Position {
            segment: seq,
            offset: 0,
        };
        self.reader = None;
        self.series.clear();
        // Record counts from the committed position no longer line up.
        self.skips.clear();
        self.prune_tables();
    }

    /// Acknowledges `n` samples of record `id` dealt to `shard`.
    pub(crate) fn ack(&mut self, shard: usize, id: u64, n: u32) {
        if let Some(r) = id
            .checked_sub(self.first_record)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.records.get_mut(i))
        {
            // A batch from before a rewind refers to no current record: ignored.
            let n = n.min(r.remaining);
            r.remaining -= n;
            self.pending = self.pending.saturating_sub(u64::from(n));
            if let Some(to) = self.acked_to.get_mut(shard) {
                reach_over(to, id, n);
            }
        }
    }

    /// Moves the committed position over fully acknowledged records and
    /// deletes segments that are entirely behind it.
    pub(crate) fn advance(&mut self) {
        let before = self.committed;
        while self.records.front().is_some_and(|r| r.remaining == 0) {
            if let Some(r) = self.records.pop_front() {
                self.committed = r.end;
                self.first_record += 1;
            }
        }
        let first = self.first_record;
        self.skips
            .retain(|s| !s.committed(first.wrapping_sub(s.base)));
        if self.records.is_empty() && self.cursor >= self.skip_to {
            self.committed = self.cursor;
        }
        if self.committed != before {
            self.position_dirty = true;
            while self.segments.len() > 1
                && self
                    .segments
                    .front()
                    .is_some_and(|s| s.seq < self.committed.segment)
            {
                if let Some(old) = self.segments.pop_front() {
                    let _ = std::fs::remove_file(segment::path(&self.dir, old.seq));
                    self.dir_dirty = true;
                }
            }
        }
    }

    /// Writes the committed position if it changed (no fsync: survives a
    /// process crash; the flusher makes it durable).
    pub(crate) fn store_position(&mut self) {
        if self.position_dirty {
            let now = Stored {
                committed: self.committed,
                counted: self.damage_counted,
            };
            let stored = if let Some(file) = &mut self.position {
                file.store(now)
            } else {
                PositionFile::create(&self.dir, now).map(|f| self.position = Some(f))
            };
            match stored {
                Ok(()) => {
                    self.position_dirty = false;
                    self.position_unsynced = true;
                }
                Err(e) => tracing::error!(error = %e, "cannot store the queue position"),
            }
        }
    }

    /// A handle to fsync the position file outside the lock.
    pub(crate) fn position_handle(&self) -> Option<io::Result<File>> {
        self.position.as_ref().map(PositionFile::handle)
    }

    /// A handle to fsync outside the lock.
    pub(crate) fn active_handle(&self) -> io::Result<File> {
        self.active.try_clone()
    }
}

/// Moves a shard's acknowledgement reach over `n` more samples of `record`.
fn reach_over(to: &mut Option<(u64, u32)>, record: u64, n: u32) {
    *to = match *to {
        Some((r, m)) if r == record => Some((r, m + n)),
        _ => Some((record, n)),
    };
}

/// The hash [`State::ids`] files a series under: its identity hash (FNV-1a,
/// whose low bits are good and high bits weaker) multiplied like FxHash, so
/// the high bits the table's tags use are mixed too.
fn id_hash(series: &SeriesRef) -> u64 {
    series.hash().wrapping_mul(0x517c_c1b7_2722_0a95)
}

fn same(a: &SeriesRef, b: &SeriesRef) -> bool {
    a.same_as(b)
}

fn create_segment(dir: &std::path::Path, seq: u64) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment::path(dir, seq))
}
