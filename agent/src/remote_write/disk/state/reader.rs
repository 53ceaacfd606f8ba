//! The reader end of [`State`]: the cursor deals records to shard windows,
//! skipping what was delivered before a restart, counting damage, and
//! rewinding for a new set of consumers.

use std::fs::File;
use std::io;
use std::sync::Arc;

use super::super::position::Position;
use super::super::record::{self, Payload};
use super::super::segment::{self, Item};
use super::{Fresh, ITEMS_PER_PUMP, READ_PER_PUMP, Rec, Skip, State, Window};
use crate::model::{Sample, Series};

impl State {
    /// True when the cursor has read everything written.
    pub(crate) fn caught_up(&self) -> bool {
        self.segments
            .back()
            .is_none_or(|s| self.cursor.segment >= s.seq && self.cursor.offset >= s.bytes)
    }

    /// True while a shard change waits for the windows to empty.
    pub(crate) fn resharding(&self) -> bool {
        self.want_shards != self.shards
    }

    /// Reads records into the shard windows while they have room. Returns
    /// true when anything was dealt, or when it stopped with more to read
    /// (callers then wake the shards, so one of them pumps again).
    pub(crate) fn pump(&mut self) -> bool {
        if self.resharding() {
            if self.windows.iter().all(Window::is_empty)
                && self.records.iter().all(|r| r.remaining == 0)
            {
                self.shards = self.want_shards;
                self.windows = (0..self.shards).map(|_| Window::default()).collect();
                self.acked_to = vec![None; self.shards];
            } else {
                return false;
            }
        }
        let mut dealt = false;
        let (mut records, mut items) = (0, 0);
        while records < READ_PER_PUMP && items < ITEMS_PER_PUMP {
            if self.windows.iter().any(|w| w.len() >= self.window) {
                break;
            }
            items += 1;
            match self.read_one() {
                Ok(Some(d)) => {
                    dealt |= d;
                    records += usize::from(d);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, segment = self.cursor.segment, "cannot read the queue; skipping to the next segment");
                    self.next_segment();
                }
            }
        }
        self.advance();
        // Stopped at the item cap: more is ready, so a shard should pump again.
        dealt || items >= ITEMS_PER_PUMP
    }

    fn next_segment(&mut self) {
        let next = self
            .segments
            .iter()
            .map(|s| s.seq)
            .find(|&s| s > self.cursor.segment);
        if let Some(seq) = next {
            // Whatever the reader did not take of the old segment is lost.
            self.cursor = Position {
                segment: seq,
                offset: 0,
            };
            self.reader = None;
            self.series.clear();
            self.prune_tables();
        }
    }

    /// Reads one item; `Some(dealt anything)`, `None` at the end of the log.
    fn read_one(&mut self) -> io::Result<Option<bool>> {
        let Some(idx) = self
            .segments
            .iter()
            .position(|s| s.seq >= self.cursor.segment)
        else {
            return Ok(None);
        };
        if self.segments[idx].seq != self.cursor.segment {
            self.cursor = Position {
                segment: self.segments[idx].seq,
                offset: 0,
            };
            self.reader = None;
            self.series.clear();
            self.prune_tables();
        }
        let limit = self.segments[idx].bytes;
        if self.cursor.offset >= limit {
            if idx + 1 < self.segments.len() {
                self.next_segment();
                return Ok(Some(false));
            }
            return Ok(None);
        }
        let replayed = self.cursor < self.skip_to;
        // The record the writer just wrote, still in memory: dealt as is.
        if !replayed && let Some(fresh) = self.take_fresh() {
            let end = Position {
                segment: self.cursor.segment,
                offset: fresh.end,
            };
            self.cursor = end;
            let dealt = self.deal(fresh.samples);
            return Ok(Some(self.close_record(idx, end, dealt)));
        }
        if self.reader.is_none() {
            self.reader = Some(File::open(segment::path(&self.dir, self.cursor.segment))?);
        }
        let Some(file) = self.reader.as_ref() else {
            return Ok(None);
        };
        let Some(item) = segment::read_item(file, self.cursor.offset, limit)? else {
            return Ok(None);
        };
        let (end, lost, payload) = match item {
            Item::Record {
                end,
                payload,
                samples,
            } => (end, samples, Some(payload)),
            Item::Damaged { end, samples } => (end, samples, None),
            Item::Torn { samples } => (limit, samples, None),
        };
        let end = Position {
            segment: self.cursor.segment,
            offset: end,
        };
        self.cursor = end;
        let mut dealt = Dealt {
            missing: if payload.is_some() {
                0
            } else {
                u64::from(lost)
            },
            ..Dealt::default()
        };
        // A segment this process is writing (or wrote last) has its series
        // in the writer's table: no need to decode their label sets.
        let table = self
            .tables
            .iter()
            .find(|(seq, _)| *seq == end.segment)
            .map(|(_, t)| t);
        let payload = payload.filter(|p| table.is_none() || !record::is_series(p));
        match payload.as_deref().map(record::decode) {
            Some(Some(Payload::Series {
                id,
                metric_type,
                labels,
                metadata,
            })) => {
                self.series
                    .insert(id, Series::with_metadata(labels, metric_type, metadata));
            }
            Some(Some(Payload::Samples(samples))) if !replayed => {
                let mut found = Vec::with_capacity(samples.len());
                for r in samples {
                    let series = match table {
                        Some(t) => t.get(r.id as usize),
                        None => self.series.get(&r.id),
                    };
                    let Some(series) = series else {
                        dealt.missing += 1;
                        continue;
                    };
                    found.push(Sample {
                        series: Arc::clone(series),
                        timestamp_ms: r.timestamp_ms,
                        value: r.value,
                        extra: r.extra,
                    });
                }
                dealt = Dealt {
                    missing: dealt.missing,
                    ..self.deal(found)
                };
            }
            Some(Some(Payload::Samples(_))) => {}
            // Checksummed yet undecodable (never written by us): the header's count is lost.
            Some(None) => dealt.missing += u64::from(lost),
            None => {}
        }
        // Only frames that carry samples are numbered records: series
        // definitions get no number, so a record dealt from memory (its
        // definitions and samples at once) numbers as reading the file does,
        // which the skip after a rewind relies on.
        if replayed || lost == 0 {
            return Ok(Some(false));
        }
        Ok(Some(self.close_record(idx, end, dealt)))
    }

    /// Deals the samples of the next record to the shard windows by series
    /// hash, skipping what was acknowledged before a rewind.
    fn deal(&mut self, samples: Vec<Sample>) -> Dealt {
        let record = self.next_record();
        let mut dealt = Dealt::default();
        // After rewinds: per skip, its shard count and how many of each of
        // its shards' samples in this record to skip.
        let mut quotas: Vec<(usize, Vec<u32>)> =
            self.skips.iter().filter_map(|s| s.quota(record)).collect();
        if quotas.is_empty()
            && let [window] = self.windows.as_mut_slice()
        {
            // One shard and nothing to skip: the record goes whole, without
            // reading each sample's series for its hash.
            dealt.placed = u32::try_from(samples.len()).unwrap_or(u32::MAX);
            window.extend(samples, record);
            return dealt;
        }
        for sample in samples {
            let hash = sample.series.hash();
            let shard = (hash % self.shards as u64) as usize;
            // The oldest skip with room for the sample takes it.
            let skipped = quotas.iter_mut().any(|(shards, quota)| {
                match quota.get_mut((hash % *shards as u64) as usize) {
                    Some(q) if *q > 0 => {
                        *q -= 1;
                        true
                    }
                    _ => false,
                }
            });
            if skipped {
                dealt.skipped += 1;
                continue;
            }
            if let Some(w) = self.windows.get_mut(shard) {
                w.push(sample, record);
                dealt.placed += 1;
            }
        }
        dealt
    }

    /// The id the next record read gets in `records` (every frame with
    /// samples read past `skip_to` gets one).
    fn next_record(&self) -> u64 {
        self.first_record + self.records.len() as u64
    }

    /// Accounts for a record read past `skip_to` whose samples were dealt
    /// (segment `idx`, ending at `end`); true when anything was placed.
    fn close_record(&mut self, idx: usize, end: Position, dealt: Dealt) -> bool {
        let Dealt {
            placed,
            skipped,
            missing,
        } = dealt;
        if missing > 0 {
            self.pending = self.pending.saturating_sub(missing);
            // Counted once, however often a restart or a rewind reads it.
            if end > self.damage_counted {
                self.damage_counted = end;
                self.position_dirty = true;
                self.losses.corrupt += missing;
                tracing::warn!(
                    segment = end.segment,
                    offset = end.offset,
                    samples = missing,
                    "skipped damaged queue data"
                );
            }
        }
        if let Some(seg) = self.segments.get_mut(idx) {
            seg.read += u64::from(placed + skipped) + missing;
        }
        // Skipped samples were acknowledged before the rewind counted them
        // as pending again.
        self.pending = self.pending.saturating_sub(u64::from(skipped));
        self.records.push_back(Rec {
            end,
            placed,
            remaining: placed,
            skipped,
            missing: u32::try_from(missing).unwrap_or(u32::MAX),
        });
        placed > 0
    }

    /// The record the writer just wrote at the cursor, if it is still in
    /// memory; records the cursor has passed (read from disk after a lag or
    /// a rewind) are dropped on the way.
    fn take_fresh(&mut self) -> Option<Fresh> {
        while self.fresh.front().is_some_and(|f| f.start < self.cursor) {
            self.pop_fresh();
        }
        if self.fresh.front()?.start == self.cursor {
            self.pop_fresh()
        } else {
            None
        }
    }

    /// Forgets what was dealt but not acknowledged and reads it again from
    /// the committed position (for a new set of consumers taking over).
    /// Samples acknowledged after the first unacknowledged one are skipped
    /// when read again, so nothing is sent twice.
    pub(crate) fn rewind(&mut self) {
        let first = self.first_record;
        let acked = self
            .acked_to
            .iter()
            .map(|a| a.and_then(|(r, n)| r.checked_sub(first).map(|nth| (nth, n))))
            .collect();
        self.first_record += 1 << 32;
        let base = self.first_record;
        // Earlier skips whose records are not all committed keep skipping,
        // counted from the new base (records committed since are not read
        // again); this rewind's acknowledgements were counted over what
        // they let through, so it goes last.
        let mut skips: Vec<Skip> = self
            .skips
            .iter()
            .filter_map(|s| s.rebased(first.wrapping_sub(s.base), base))
            .collect();
        skips.extend(Skip::new(self.shards, acked, base));
        self.skips = skips;
        self.acked_to = vec![None; self.shards];
        for r in self.records.drain(..) {
            let again = u64::from(r.placed + r.skipped) + u64::from(r.missing);
            if let Some(seg) = self.segments.iter_mut().find(|s| s.seq == r.end.segment) {
                seg.read = seg.read.saturating_sub(again);
            }
            // Acknowledged, skipped and lost ones are read again: pending
            // until skipped, acknowledged or found lost once more.
            self.pending += again - u64::from(r.remaining);
        }
        for w in &mut self.windows {
            w.clear();
        }
        self.skip_to = self.committed;
        self.cursor = Position {
            segment: self.committed.segment,
            offset: 0,
        };
        self.reader = None;
        self.series.clear();
        self.prune_tables();
    }
}

/// What became of the samples of one record.
#[derive(Default)]
struct Dealt {
    /// Placed in a shard window.
    placed: u32,
    /// Not placed: acknowledged before a rewind.
    skipped: u32,
    /// Lost: damaged, or their series record is.
    missing: u64,
}
