//! The queue between the sink and the shard senders, behind a trait: the
//! durable on-disk queue (`disk`) in the agent, the bounded in-memory one
//! when no storage is given (library use, tests).
//!
//! Contract every implementation keeps:
//! - A series always maps to the same shard ([`Series::hash`] modulo the shard
//!   count), and a shard hands out its samples in append order, one batch at a
//!   time per consumer, so per-series timestamp order survives concurrency.
//! - A batch leaves the queue only when [`Queue::ack`]ed (after a 2xx, or a
//!   permanent rejection); a retried batch is simply held by its consumer and
//!   blocks the batches behind it.
//! - Changing the shard count must first drain (send and ack) everything of
//!   the old layout, then rehash: never reorder a series. The in-memory queue
//!   has a fixed shard count; the disk queue switches on [`Queue::set_shards`]
//!   once everything dealt under the old count is acknowledged.
//!
//! [`Series::hash`]: crate::model::Series::hash

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::model::Sample;

/// Samples taken from one shard, to be sent as one request.
#[derive(Debug)]
pub struct Batch {
    /// The shard the samples came from.
    pub shard: usize,
    /// The samples, in append order. A sender may release them once the
    /// request is encoded (see [`Batch::taken`]).
    pub samples: Vec<Sample>,
    /// How many samples the batch was handed out with: what the in-memory
    /// queue releases on [`Queue::ack`], whether or not `samples` still holds them.
    pub taken: usize,
    /// Which stored records the samples came from, as `(record, samples)`
    /// runs (empty for the in-memory queue); what [`Queue::ack`] releases.
    pub records: Vec<(u64, u32)>,
}

/// What a queue found when a shard looked for its next batch.
pub(crate) enum Look {
    /// A batch to send.
    Ready(Batch),
    /// Closed and nothing left for the shard: it stops.
    Done,
    /// Not yet: wait for an append or the linger deadline.
    Wait,
}

/// Samples waiting for a shard's sender, in append order, kept in the
/// buffers they were appended in. A batch is made of whole buffers where it
/// can be, and otherwise split or joined by bulk moves: a sample is never
/// moved on its own on the way to its request. (One deque of samples moved
/// each taken sample separately, 1–2 % of the agent's CPU at 100 targets x
/// 2,000 series, and its growth faulted in fresh pages.)
#[derive(Default)]
pub(crate) struct Pending {
    chunks: VecDeque<Vec<Sample>>,
    len: usize,
    /// An acknowledged batch's buffer, emptied, for samples pushed one by one.
    spare: Vec<Sample>,
}

/// Buffers larger than this many samples are freed, not kept as a spare
/// (256 KiB at 32 bytes a sample).
const SPARE_MAX: usize = 8 * 1024;

/// Samples appended in a buffer shorter than this join the last buffer
/// instead of queueing their own, so single samples do not make a deque of
/// tiny buffers.
const SMALL_CHUNK: usize = 64;

/// Samples a buffer made for samples pushed one by one starts with.
const PUSH_CHUNK: usize = 1024;

impl Pending {
    /// Samples waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push_back(&mut self, sample: Sample) {
        self.len += 1;
        if let Some(back) = self.chunks.back_mut()
            && (back.len() < back.capacity() || back.len() < PUSH_CHUNK)
        {
            back.push(sample);
            return;
        }
        let mut chunk = std::mem::take(&mut self.spare);
        chunk.reserve(PUSH_CHUNK);
        chunk.push(sample);
        self.chunks.push_back(chunk);
    }

    /// Appends all of `samples`, keeping their buffer when it is not small.
    pub(crate) fn append(&mut self, mut samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        self.len += samples.len();
        match self.chunks.back_mut() {
            Some(back) if samples.len() < SMALL_CHUNK => back.append(&mut samples),
            _ => self.chunks.push_back(samples),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// The first `n` samples (all of them when fewer wait). Whole buffers are
    /// handed over as they are; a buffer holding more than the batch needs
    /// is split where the smaller part is copied; parts are joined into the
    /// larger one's buffer.
    pub(crate) fn take(&mut self, n: usize) -> Vec<Sample> {
        let n = n.min(self.len);
        let mut batch: Vec<Sample> = Vec::new();
        while batch.len() < n {
            let Some(mut chunk) = self.chunks.pop_front() else {
                break;
            };
            let need = n - batch.len();
            if chunk.len() > need {
                if need <= chunk.len() / 2 {
                    let head: Vec<Sample> = chunk.drain(..need).collect();
                    self.chunks.push_front(chunk);
                    chunk = head;
                } else {
                    let rest = chunk.split_off(need);
                    self.chunks.push_front(rest);
                }
            }
            if batch.is_empty() {
                batch = chunk;
            } else if chunk.len() > batch.len() {
                chunk.splice(0..0, batch.drain(..));
                self.recycle(std::mem::replace(&mut batch, chunk));
            } else {
                batch.append(&mut chunk);
                self.recycle(chunk);
            }
        }
        self.len -= batch.len();
        batch
    }

    /// Keeps an acknowledged batch's buffer as the spare for
    /// [`Pending::push_back`], unless one is kept already or it is large.
    pub(crate) fn recycle(&mut self, mut buf: Vec<Sample>) {
        buf.clear();
        if self.spare.capacity() == 0 && buf.capacity() <= SPARE_MAX {
            self.spare = buf;
        }
    }
}

/// How many of `queued` samples to take now, if a batch is due: `max`
/// once that many are queued, otherwise whatever is there once the linger
/// deadline passed (`due`) or when no more is coming for now (`flush`: the
/// queue is closing, or a shard change waits for the windows to empty).
pub(crate) fn batch_size(queued: usize, max: usize, flush: bool, due: bool) -> Option<usize> {
    (queued >= max || (queued > 0 && (flush || due))).then(|| queued.min(max))
}

/// The batching wait both queues share: calls `look` (with whether the
/// linger deadline passed) until it yields a batch or the end, sleeping
/// between looks until `ready` is notified or the deadline comes.
pub(crate) async fn wait_for_batch(
    ready: &Notify,
    linger: Duration,
    mut look: impl FnMut(bool) -> Look,
) -> Option<Batch> {
    let mut deadline = Instant::now() + linger;
    loop {
        // Created before looking, so an append in between still wakes us.
        let notified = ready.notified();
        let now = Instant::now();
        match look(now >= deadline) {
            Look::Ready(batch) => return Some(batch),
            Look::Done => return None,
            Look::Wait => {}
        }
        if now >= deadline {
            deadline = now + linger;
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// What happened to the samples handed to [`Queue::append`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Queued for sending.
    pub accepted: usize,
    /// Refused because their shard was at capacity.
    pub full: usize,
    /// Refused because the queue was closed (shutting down).
    pub closed: usize,
}

/// A sharded sample queue with explicit acknowledgement.
pub trait Queue: Send + Sync {
    /// Number of shards receiving samples now.
    fn shards(&self) -> usize;

    /// Most shards this queue can use: consumers run for `0..max_shards()`;
    /// shards at or beyond [`Queue::shards`] get nothing until resharding.
    fn max_shards(&self) -> usize {
        self.shards()
    }

    /// Asks for `n` shards. A queue that supports it switches once every
    /// sample dealt under the old count is acknowledged (so a series is
    /// never sent by two shards at once); others ignore it.
    fn set_shards(&self, _n: usize) {}

    /// Adds samples, sharded by series hash. Never blocks or waits.
    fn append(&self, samples: Vec<Sample>) -> Appended;

    /// The next batch of `shard`: resolves as soon as `max` samples are queued,
    /// or once `linger` has passed with at least one sample queued (windows of
    /// `linger` restart while the shard is empty), or at once with what is left
    /// after [`Queue::close`]. `None` when closed and empty. Only one consumer
    /// per shard may wait at a time.
    fn next_batch(
        &self,
        shard: usize,
        max: usize,
        linger: Duration,
    ) -> BoxFuture<'_, Option<Batch>>;

    /// The batch was delivered (or permanently rejected): remove it for good.
    /// The disk queue keeps the batch's buffer for samples it deals one by
    /// one (see [`Pending::recycle`]); senders empty it first, so no sample
    /// is released under the queue's lock.
    fn ack(&self, batch: Batch);

    /// Forgets which samples were handed out but not acknowledged, so that
    /// new consumers get them again (a durable queue re-reads its log; the
    /// in-memory queue cannot and does nothing). Call only when no consumer runs.
    fn rewind(&self) {}

    /// Applies changed queue settings to a queue taken over by a replaced
    /// endpoint (budget, window, shard bounds, fsync interval). The
    /// in-memory queue is never taken over and ignores it.
    fn retune(&self, _config: &crate::config::QueueConfig) {}

    /// Bytes used on disk, for a durable queue.
    fn disk_bytes(&self) -> Option<u64> {
        None
    }

    /// Refuses further appends; consumers drain what is queued, then get `None`.
    fn close(&self);

    /// Samples not yet acknowledged (queued plus taken in batches).
    fn len(&self) -> usize;

    /// True when nothing is pending.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives up on everything not acknowledged; returns how many samples are
    /// lost by that (a durable queue keeps them for the next start and
    /// returns 0). Closes the queue.
    fn abandon(&self) -> usize;
}

/// The in-memory queue: per shard a bounded FIFO. When a shard is full new
/// samples are dropped (counted `reason="queue_full"` by the caller); the
/// durable queue will replace this loss with spilling to disk.
pub struct MemoryQueue {
    shards: Box<[ShardSlot]>,
    capacity: usize,
    closed: AtomicBool,
}

struct ShardSlot {
    state: Mutex<ShardState>,
    ready: Notify,
}

#[derive(Default)]
struct ShardState {
    queued: Pending,
    in_flight: usize,
}

impl ShardSlot {
    fn lock(&self) -> MutexGuard<'_, ShardState> {
        // A panic while holding the lock cannot leave the deque half-updated
        // in a way that matters more than losing the samples would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemoryQueue {
    /// A queue of `shards` shards holding at most `capacity` samples each.
    pub fn new(shards: usize, capacity: usize) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| ShardSlot {
                state: Mutex::default(),
                ready: Notify::new(),
            })
            .collect();
        Self {
            shards,
            capacity: capacity.max(1),
            closed: AtomicBool::new(false),
        }
    }

    fn shard_of(&self, hash: u64) -> usize {
        // usize is 64 bits on every target we build; the modulo fits anyway.
        (hash % self.shards.len() as u64) as usize
    }
}

impl Queue for MemoryQueue {
    fn shards(&self) -> usize {
        self.shards.len()
    }

    fn append(&self, samples: Vec<Sample>) -> Appended {
        let mut out = Appended::default();
        if self.closed.load(Ordering::Acquire) {
            out.closed = samples.len();
            return out;
        }
        let mut buckets: Vec<Vec<Sample>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for s in samples {
            let i = self.shard_of(s.series.hash());
            if let Some(bucket) = buckets.get_mut(i) {
                bucket.push(s);
            }
        }
        for (slot, bucket) in self.shards.iter().zip(buckets) {
            if bucket.is_empty() {
                continue;
            }
            let n = bucket.len();
            let room = {
                let mut st = slot.lock();
                let room = self.capacity.saturating_sub(st.queued.len()).min(n);
                let mut bucket = bucket;
                bucket.truncate(room);
                st.queued.append(bucket);
                room
            };
            out.accepted += room;
            out.full += n - room;
            if room > 0 {
                slot.ready.notify_one();
            }
        }
        out
    }

    fn next_batch(
        &self,
        shard: usize,
        max: usize,
        linger: Duration,
    ) -> BoxFuture<'_, Option<Batch>> {
        Box::pin(async move {
            let slot = self.shards.get(shard)?;
            let max = max.max(1);
            wait_for_batch(&slot.ready, linger, |due| {
                let mut st = slot.lock();
                let closed = self.closed.load(Ordering::Acquire);
                let n = st.queued.len();
                if let Some(take) = batch_size(n, max, closed, due) {
                    let samples = st.queued.take(take);
                    st.in_flight += take;
                    return Look::Ready(Batch {
                        shard,
                        taken: samples.len(),
                        samples,
                        records: Vec::new(),
                    });
                }
                if n == 0 && closed {
                    Look::Done
                } else {
                    Look::Wait
                }
            })
            .await
        })
    }

    fn ack(&self, batch: Batch) {
        if let Some(slot) = self.shards.get(batch.shard) {
            let mut st = slot.lock();
            // Its buffer is not kept: this queue appends whole buffers and
            // never pushes samples one by one.
            st.in_flight = st.in_flight.saturating_sub(batch.taken);
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for slot in &self.shards {
            slot.ready.notify_one();
        }
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let st = s.lock();
                st.queued.len() + st.in_flight
            })
            .sum()
    }

    fn abandon(&self) -> usize {
        self.close();
        self.shards
            .iter()
            .map(|s| {
                let mut st = s.lock();
                let lost = st.queued.len() + st.in_flight;
                st.queued.clear();
                st.in_flight = 0;
                lost
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, MetricType, Series, SeriesRef};

    fn series(i: usize) -> SeriesRef {
        Series::new(
            Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]),
            MetricType::Gauge,
        )
    }

    fn samples(series: &[SeriesRef], ts: i64) -> Vec<Sample> {
        series
            .iter()
            .map(|s| Sample {
                series: s.clone(),
                timestamp_ms: ts,
                value: 1.0,
                extra: None,
            })
            .collect()
    }

    /// A pending queue holding `sizes` appended buffers of consecutive
    /// timestamps from 0, then `pushed` samples pushed one by one.
    fn pending(sizes: &[usize], pushed: usize) -> Pending {
        let one = [series(0)];
        let mut q = Pending::default();
        let mut ts = 0;
        for &n in sizes {
            q.append((ts..ts + n as i64).flat_map(|t| samples(&one, t)).collect());
            ts += n as i64;
        }
        for t in ts..ts + pushed as i64 {
            q.push_back(samples(&one, t).remove(0));
        }
        q
    }

    #[test]
    fn take_keeps_order_whichever_way_buffers_split_and_join() {
        // Buffers of 100, 3 (joins the 100), 250 and 40 (joins the 250), then
        // 10 pushed: takes of every size split and join them.
        for take in [1, 5, 50, 103, 104, 200, 353, 400, 1000] {
            let mut q = pending(&[100, 3, 250, 40], 10);
            assert_eq!(q.len(), 403);
            let mut next = 0;
            while !q.is_empty() {
                let before = q.len();
                let batch = q.take(take);
                assert_eq!(batch.len(), take.min(before), "take {take}");
                assert_eq!(q.len(), before - batch.len());
                for s in &batch {
                    assert_eq!(s.timestamp_ms, next, "take {take}");
                    next += 1;
                }
                q.recycle(batch);
            }
            assert_eq!(next, 403);
            assert!(q.take(take).is_empty());
        }
    }

    #[test]
    fn a_whole_buffer_is_handed_over_without_a_copy() {
        let mut q = pending(&[100, 200], 0);
        let front = q.chunks.front().map(|c| c.as_ptr());
        let batch = q.take(100);
        assert_eq!(Some(batch.as_ptr()), front, "the appended buffer itself");
        // Taking most of a buffer keeps it and copies the few behind.
        let second = q.chunks.front().map(|c| c.as_ptr());
        let batch = q.take(150);
        assert_eq!(Some(batch.as_ptr()), second);
        assert_eq!(q.len(), 50);
    }

    #[test]
    fn an_acknowledged_buffer_takes_the_next_pushed_samples() {
        let mut q = pending(&[], 10);
        let batch = q.take(10);
        let batch_buf = batch.as_ptr();
        q.recycle(batch);
        assert!(
            q.spare.is_empty() && q.spare.as_ptr() == batch_buf,
            "kept, empty"
        );
        q.push_back(samples(&[series(0)], 10).remove(0));
        assert_eq!(q.chunks.front().map(|c| c.as_ptr()), Some(batch_buf));
        assert_eq!(q.spare.capacity(), 0);
        // One spare at a time, and none too large.
        q.recycle(Vec::with_capacity(SPARE_MAX + 1));
        assert_eq!(q.spare.capacity(), 0);
        q.recycle(Vec::with_capacity(16));
        let kept = q.spare.as_ptr();
        q.recycle(Vec::with_capacity(32));
        assert_eq!(q.spare.as_ptr(), kept);
    }

    #[tokio::test]
    async fn a_series_stays_on_one_shard_in_order() {
        let q = MemoryQueue::new(4, 1000);
        let all: Vec<_> = (0..50).map(series).collect();
        for ts in 0..5 {
            assert_eq!(q.append(samples(&all, ts)).accepted, 50);
        }
        q.close();
        let mut seen = std::collections::HashMap::new();
        for shard in 0..4 {
            while let Some(b) = q.next_batch(shard, 7, Duration::from_secs(60)).await {
                for s in &b.samples {
                    assert_eq!(q.shard_of(s.series.hash()), shard);
                    let last = seen.insert(s.series.hash(), s.timestamp_ms);
                    assert!(last.is_none_or(|l| l < s.timestamp_ms));
                }
                q.ack(b);
            }
        }
        assert_eq!(seen.len(), 50);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn full_shard_drops_new_samples_and_counts_them() {
        let q = MemoryQueue::new(1, 3);
        let s = [series(1)];
        let r: Vec<_> = (0..5).map(|ts| q.append(samples(&s, ts))).collect();
        assert_eq!(r.iter().map(|a| a.accepted).sum::<usize>(), 3);
        assert_eq!(r.iter().map(|a| a.full).sum::<usize>(), 2);
        q.close();
        assert_eq!(q.append(samples(&s, 9)).closed, 1);
        let b = q.next_batch(0, 10, Duration::ZERO).await;
        let ts: Vec<_> = b
            .iter()
            .flat_map(|b| &b.samples)
            .map(|s| s.timestamp_ms)
            .collect();
        assert_eq!(ts, [0, 1, 2], "the oldest samples are kept");
    }

    #[tokio::test]
    async fn batch_waits_for_linger_then_sends_partial() {
        let q = MemoryQueue::new(1, 100);
        q.append(samples(&[series(1)], 1));
        let start = Instant::now();
        let b = q.next_batch(0, 10, Duration::from_millis(50)).await;
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(b.map(|b| b.samples.len()), Some(1));
    }

    #[tokio::test]
    async fn full_batch_is_handed_out_without_waiting_and_unacked_counts_as_pending() {
        let q = MemoryQueue::new(1, 100);
        let all: Vec<_> = (0..10).map(series).collect();
        q.append(samples(&all, 1));
        let b = tokio::time::timeout(
            Duration::from_secs(1),
            q.next_batch(0, 10, Duration::from_secs(60)),
        )
        .await
        .expect("a full batch is ready at once")
        .expect("batch");
        assert_eq!(q.len(), 10, "taken but not acked is still pending");
        assert_eq!(q.abandon(), 10);
        assert_eq!(b.samples.len(), 10);
    }
}
