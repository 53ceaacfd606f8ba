//! The durable queue: an append-only log of checksummed records per
//! endpoint, under `storage.path/<endpoint>/`.
//!
//! - `record`: frame and payload format (CRC32C, series records + samples by id).
//! - `segment`: segment files and reading frames with resynchronisation.
//! - `position`: the reader position, two checksummed slots overwritten in turn.
//! - `recover`: validation at open; torn tails cut at the last good record.
//! - `state`: writer, reader cursor, shard windows, acknowledgement, budget.
//!
//! Durability: every append is written (`write(2)`) before `append`
//! returns, so a killed process loses nothing; data is fsynced every
//! `fsync_interval`, so a power loss loses at most that much. The position
//! is written on every acknowledgement (in place) and fsynced after the
//! data, so after a crash at most the unacknowledged window is sent again.

mod position;
mod record;
mod recover;
mod segment;
mod state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Notify;

pub use self::state::Losses;
use self::state::State;
use super::queue::{Appended, Batch, Look, Queue, batch_size, wait_for_batch};
use crate::model::Sample;

/// Settings of one disk queue.
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// The endpoint's directory.
    pub dir: PathBuf,
    /// Shards at start.
    pub shards: usize,
    /// Most shards (tasks started).
    pub max_shards: usize,
    /// Samples held in memory per shard, ahead of sending.
    pub window: usize,
    /// Bytes on disk at most; the oldest segments are dropped beyond it.
    pub budget: u64,
    /// How often written data is fsynced.
    pub fsync_interval: Duration,
}

impl DiskOptions {
    /// Segment size: small enough that dropping one frees a fraction of the
    /// budget, large enough that files stay few.
    fn segment_size(&self) -> u64 {
        segment_size(self.budget)
    }
}

/// Callback receiving losses as they happen (for the dropped counters).
pub type LossSink = Box<dyn Fn(Losses) + Send + Sync>;

/// Errors opening a disk queue.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the queue directory {dir}")]
pub struct DiskQueueError {
    /// The directory.
    pub dir: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl DiskQueueError {
    /// Short kind for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self.source.kind() {
            std::io::ErrorKind::PermissionDenied => "permission_denied",
            std::io::ErrorKind::StorageFull => "disk_full",
            std::io::ErrorKind::ReadOnlyFilesystem => "read_only",
            std::io::ErrorKind::WouldBlock => "in_use",
            _ => "io",
        }
    }
}

/// Shard wake-ups allocated up front, so `max_shards` can grow on reload.
const MIN_SHARD_SLOTS: usize = 256;

struct Inner {
    state: Mutex<State>,
    /// The fsync interval in nanoseconds (changeable by [`Queue::retune`]).
    fsync_nanos: AtomicU64,
    ready: Box<[Notify]>,
    closed: AtomicBool,
    /// Set by tests that simulate a crash: nothing more reaches the disk.
    crashed: AtomicBool,
    on_loss: LossSink,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes every consumer: for changes any of them may act on (closing,
    /// resharding, a rewind, new settings).
    fn wake_all(&self) {
        self.wake(self.ready.len());
    }

    /// Wakes the consumers of the first `shards` shards. New data only
    /// concerns the shards in use: waking all `max_shards` consumers (50 by
    /// default) on every append and acknowledgement made each of them take
    /// the lock for nothing, thousands of times a second.
    fn wake(&self, shards: usize) {
        for n in self.ready.iter().take(shards) {
            n.notify_one();
        }
    }

    fn report(&self, st: &mut State) {
        let l = std::mem::take(&mut st.losses);
        if l != Losses::default() {
            (self.on_loss)(l);
        }
    }

    /// Makes written data and the position durable.
    fn flush(&self) {
        if self.crashed.load(Ordering::Acquire) {
            return;
        }
        let (data, position, dir) = {
            let mut st = self.lock();
            st.store_position();
            let data = std::mem::take(&mut st.dirty).then(|| st.active_handle());
            let position = std::mem::take(&mut st.position_unsynced)
                .then(|| st.position_handle())
                .flatten();
            let dir = std::mem::take(&mut st.dir_dirty).then(|| st.dir.clone());
            (data, position, dir)
        };
        // Data first: a durable position must never point past durable data.
        for (file, what) in [(data, "queue segment"), (position, "queue position")] {
            if let Some(Err(e)) = file.map(|f| f.and_then(|f| f.sync_data())) {
                tracing::error!(error = %e, "cannot fsync the {what}");
            }
        }
        if let Some(dir) = dir
            && let Err(e) = position::sync_dir(&dir)
        {
            tracing::error!(error = %e, "cannot fsync the queue directory");
        }
    }
}

/// The durable queue. See the module docs.
pub struct DiskQueue {
    inner: Arc<Inner>,
    /// Consumers run for `0..max_shards`; at most `inner.ready.len()`.
    max_shards: AtomicUsize,
    /// Samples found at open: pending then, plus torn tails cut (counted as
    /// dropped `corrupt`), so the accounting identity holds from the start.
    recovered: u64,
    /// Held exclusively for the queue's life: two queues (or two agents)
    /// appending to one directory would interleave garbage.
    _lock: std::fs::File,
    /// Dropping it stops the flusher thread.
    _stop: mpsc::Sender<()>,
}

impl DiskQueue {
    /// Opens (or creates) the queue in `opts.dir`, recovering what a
    /// previous run left there.
    pub fn open(opts: &DiskOptions, on_loss: LossSink) -> Result<Self, DiskQueueError> {
        let max_shards = opts.max_shards.max(opts.shards).max(1);
        let err = |source| DiskQueueError {
            dir: opts.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&opts.dir).map_err(err)?;
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(opts.dir.join("lock"))
            .map_err(err)?;
        lock.try_lock().map_err(|e| err(e.into()))?;
        let mut state = State::open(
            opts.dir.clone(),
            opts.shards,
            opts.window,
            opts.budget,
            opts.segment_size(),
        )
        .map_err(|source| DiskQueueError {
            dir: opts.dir.clone(),
            source,
        })?;
        let recovered = state.pending + state.losses.corrupt;
        let inner = Arc::new(Inner {
            ready: (0..max_shards.max(MIN_SHARD_SLOTS))
                .map(|_| Notify::new())
                .collect(),
            fsync_nanos: AtomicU64::new(nanos(opts.fsync_interval)),
            closed: AtomicBool::new(false),
            crashed: AtomicBool::new(false),
            on_loss,
            state: Mutex::new({
                state.store_position();
                state
            }),
        });
        if recovered > 0 {
            tracing::info!(dir = %opts.dir.display(), samples = recovered, "resuming the queue left by the previous run");
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let weak = Arc::downgrade(&inner);
        let mut interval = opts.fsync_interval;
        let spawned = std::thread::Builder::new()
            .name("queue-fsync".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(interval.max(Duration::from_millis(1)))
                {
                    match weak.upgrade() {
                        Some(inner) => {
                            inner.flush();
                            interval =
                                Duration::from_nanos(inner.fsync_nanos.load(Ordering::Relaxed));
                        }
                        None => return,
                    }
                }
            });
        if let Err(e) = spawned {
            return Err(DiskQueueError {
                dir: opts.dir.clone(),
                source: e,
            });
        }
        Ok(Self {
            inner,
            recovered,
            max_shards: AtomicUsize::new(max_shards),
            _lock: lock,
            _stop: stop,
        })
    }

    /// Samples found on disk at open that are still to be delivered, plus
    /// the current backlog; same as [`Queue::len`].
    pub fn pending(&self) -> u64 {
        self.inner.lock().pending
    }

    /// Samples the previous run left (see the field).
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    /// Bytes the queue occupies on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.inner.lock().disk_bytes()
    }

    /// The directory of the queue.
    pub fn dir(&self) -> PathBuf {
        self.inner.lock().dir.clone()
    }

    /// Makes everything written durable now.
    pub fn flush(&self) {
        self.inner.flush();
    }
}

/// Segment size for a budget: small enough that dropping one frees a
/// fraction of the budget, large enough that files stay few.
fn segment_size(budget: u64) -> u64 {
    (budget / 8).clamp(4096, 64 << 20)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The directory of endpoint `name` under `root`: the name with every
/// character outside `[A-Za-z0-9._-]` replaced, plus a short hash of the
/// exact name so two names that sanitize alike never share a queue.
pub fn endpoint_dir(root: &Path, name: &str) -> PathBuf {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    root.join(format!("{clean}-{:08x}", crc32c::crc32c(name.as_bytes())))
}

impl Queue for DiskQueue {
    fn shards(&self) -> usize {
        self.inner.lock().shards
    }

    fn max_shards(&self) -> usize {
        self.max_shards.load(Ordering::Relaxed)
    }

    fn retune(&self, config: &crate::config::QueueConfig) {
        let max = config.max_shards.clamp(1, self.inner.ready.len());
        self.max_shards.store(max, Ordering::Relaxed);
        self.inner
            .fsync_nanos
            .store(nanos(config.fsync_interval), Ordering::Relaxed);
        let mut st = self.inner.lock();
        st.retune(
            config.disk_budget,
            config.capacity,
            segment_size(config.disk_budget),
        );
        self.inner.report(&mut st);
        st.want_shards = st.want_shards.clamp(config.min_shards.max(1), max);
        drop(st);
        self.inner.wake_all();
    }

    fn set_shards(&self, n: usize) {
        let mut st = self.inner.lock();
        st.want_shards = n.clamp(1, self.max_shards.load(Ordering::Relaxed));
        drop(st);
        self.inner.wake_all();
    }

    fn append(&self, samples: Vec<Sample>) -> Appended {
        let mut out = Appended::default();
        if self.inner.closed.load(Ordering::Acquire) {
            out.closed = samples.len();
            return out;
        }
        let active = {
            let mut st = self.inner.lock();
            out.accepted = st.append(samples);
            self.inner.report(&mut st);
            st.shards
        };
        self.inner.wake(active);
        out
    }

    fn next_batch(
        &self,
        shard: usize,
        max: usize,
        linger: Duration,
    ) -> BoxFuture<'_, Option<Batch>> {
        Box::pin(async move {
            let inner = &*self.inner;
            let ready = inner.ready.get(shard)?;
            let max = max.max(1);
            wait_for_batch(ready, linger, |due| {
                let mut st = inner.lock();
                if st.pump() {
                    inner.wake(st.shards);
                }
                inner.report(&mut st);
                st.store_position();
                let closed = inner.closed.load(Ordering::Acquire);
                let n = st.windows.get(shard).map_or(0, state::Window::len);
                // A shard change waits for every window to empty, and nothing
                // new is dealt meanwhile: what is there goes now, not after
                // the linger (5 s by default, during which nothing was sent).
                let flush = closed || st.resharding();
                if let Some(take) = batch_size(n, max, flush, due) {
                    let (samples, records) = st
                        .windows
                        .get_mut(shard)
                        .map(|w| w.take(take))
                        .unwrap_or_default();
                    return Look::Ready(Batch {
                        shard,
                        taken: samples.len(),
                        samples,
                        records,
                    });
                }
                if n == 0 && closed && st.caught_up() && !st.resharding() {
                    Look::Done
                } else {
                    Look::Wait
                }
            })
            .await
        })
    }

    fn ack(&self, batch: Batch) {
        let resharding = {
            let mut st = self.inner.lock();
            for &(record, n) in &batch.records {
                st.ack(batch.shard, record, n);
            }
            if let Some(window) = st.windows.get_mut(batch.shard) {
                window.recycle(batch.samples);
            }
            st.advance();
            st.store_position();
            st.resharding()
        };
        // A shard change waits for the last acknowledgement; otherwise the
        // acknowledging consumer looks again itself, and pumps for the rest.
        if resharding {
            self.inner.wake_all();
        }
    }

    fn rewind(&self) {
        self.inner.lock().rewind();
        self.inner.wake_all();
    }

    fn disk_bytes(&self) -> Option<u64> {
        Some(DiskQueue::disk_bytes(self))
    }

    fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wake_all();
    }

    fn len(&self) -> usize {
        usize::try_from(self.pending()).unwrap_or(usize::MAX)
    }

    fn abandon(&self) -> usize {
        self.close();
        self.inner.flush();
        // Everything unacknowledged stays on disk for the next start.
        0
    }
}

#[cfg(test)]
impl DiskQueue {
    /// Simulates a killed process: stops without flushing or storing anything.
    pub(crate) fn crash(self) {
        self.inner.crashed.store(true, Ordering::Release);
    }
}

impl Drop for DiskQueue {
    fn drop(&mut self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests;
