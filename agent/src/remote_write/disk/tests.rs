//! Disk queue behaviour: order, acknowledgement, crash and restart, damage,
//! budget, resharding, and a randomized model check.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::model::{Labels, MetricType, Series, SeriesRef};

type Seen = Arc<Mutex<Losses>>;

fn opts(dir: &Path, shards: usize) -> DiskOptions {
    DiskOptions {
        dir: dir.to_path_buf(),
        shards,
        max_shards: 8,
        window: 1000,
        budget: 1 << 30,
        fsync_interval: Duration::from_millis(50),
    }
}

fn open(o: &DiskOptions) -> (DiskQueue, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let q = DiskQueue::open(
        o,
        Box::new(move |l| {
            let mut t = s.lock().expect("lock");
            t.disk_full += l.disk_full;
            t.corrupt += l.corrupt;
            t.io += l.io;
        }),
    )
    .expect("open");
    (q, seen)
}

/// Opens a queue on `o` and appends `records` records of the first `series`
/// series, at timestamps 0, 1, ...
fn open_filled(o: &DiskOptions, records: i64, series: usize) -> (DiskQueue, Seen) {
    let (q, seen) = open(o);
    for ts in 0..records {
        q.append(batch(series, ts));
    }
    (q, seen)
}

fn series(i: usize) -> SeriesRef {
    Series::new(
        Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]),
        MetricType::Counter,
    )
}

fn batch(n_series: usize, ts: i64) -> Vec<Sample> {
    (0..n_series)
        .map(|i| Sample {
            series: series(i),
            timestamp_ms: ts,
            value: ts as f64,
            extra: None,
        })
        .collect()
}

/// Each sample of `b` as (series `i` label, timestamp).
fn ids(b: &Batch) -> Vec<(String, i64)> {
    b.samples
        .iter()
        .map(|s| {
            (
                s.series.labels().get("i").unwrap_or("").to_owned(),
                s.timestamp_ms,
            )
        })
        .collect()
}

/// Rewinds `q` (a successor takes over) and drains it: with what was `sent`
/// before, each of `total` samples must have gone out exactly once.
async fn rewind_and_drain_once(q: &DiskQueue, mut sent: Vec<(String, i64)>, total: usize) {
    q.rewind();
    sent.extend(take(q, true, 100).await);
    assert_sent_once(&sent);
    assert_eq!(sent.len(), total);
}

/// Where the frames that carry samples start in a segment's bytes.
fn sample_frames(bytes: &[u8]) -> Vec<usize> {
    let (mut pos, mut frames) = (0, Vec::new());
    while pos < bytes.len() {
        let h = record::Header::parse(&bytes[pos..]).expect("header");
        if h.samples > 0 {
            frames.push(pos);
        }
        pos += record::HEADER_LEN + h.payload_len;
    }
    frames
}

/// Fails when a (series, timestamp) appears twice in `sent`.
fn assert_sent_once(sent: &[(String, i64)]) {
    let mut unique = sent.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        sent.len(),
        "a sample was sent twice: {sent:?}"
    );
}

/// Takes up to `max` samples from every shard (acking them unless
/// `ack` is false), until nothing arrives for a short while.
async fn take(q: &DiskQueue, ack: bool, max: usize) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    loop {
        let mut got = false;
        for shard in 0..q.max_shards() {
            let next = q.next_batch(shard, max, Duration::from_millis(1));
            if let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(20), next).await {
                got = true;
                out.extend(ids(&b));
                if ack {
                    q.ack(b);
                }
            }
        }
        if !got {
            return out;
        }
    }
}

fn per_series(got: &[(String, i64)]) -> HashMap<String, Vec<i64>> {
    let mut m: HashMap<String, Vec<i64>> = HashMap::new();
    for (s, ts) in got {
        m.entry(s.clone()).or_default().push(*ts);
    }
    m
}

#[tokio::test]
async fn delivers_everything_in_per_series_order_and_survives_restart_empty() {
    let dir = tempfile::tempdir().expect("dir");
    let o = opts(dir.path(), 4);
    let (q, _) = open(&o);
    for ts in 0..50 {
        assert_eq!(q.append(batch(20, ts)).accepted, 20);
    }
    assert_eq!(q.len(), 1000);
    let got = take(&q, true, 64).await;
    let m = per_series(&got);
    assert_eq!(m.len(), 20);
    for ts in m.values() {
        assert_eq!(*ts, (0..50).collect::<Vec<_>>());
    }
    assert_eq!(q.len(), 0);
    drop(q);
    let (q, _) = open(&o);
    assert_eq!(q.len(), 0);
    assert!(take(&q, true, 64).await.is_empty());
    // Acknowledged segments are deleted.
    assert!(segment::list(dir.path()).expect("list").len() <= 2);
}

/// Overwrites the first `len` bytes of every segment with zeros.
fn zero_segments(dir: &Path, len: u64) {
    use std::os::unix::fs::FileExt;
    for seq in segment::list(dir).expect("list") {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(segment::path(dir, seq))
            .expect("open segment");
        let n = len.min(f.metadata().expect("stat").len());
        f.write_all_at(&vec![0; n as usize], 0).expect("zero");
    }
}

fn segment_bytes(dir: &Path) -> u64 {
    segment::list(dir)
        .expect("list")
        .iter()
        .map(|&seq| std::fs::metadata(segment::path(dir, seq)).map_or(0, |m| m.len()))
        .sum()
}

#[tokio::test]
async fn records_just_written_are_dealt_from_memory_without_reading_them_back() {
    let dir = tempfile::tempdir().expect("dir");
    let (q, seen) = open_filled(&opts(dir.path(), 2), 50, 20);
    // The file is ruined before the reader gets to it: what it deals can
    // only have come from memory.
    zero_segments(dir.path(), u64::MAX);
    let m = per_series(&take(&q, true, 64).await);
    assert_eq!(m.len(), 20);
    for ts in m.values() {
        assert_eq!(*ts, (0..50).collect::<Vec<_>>());
    }
    assert_eq!(*seen.lock().expect("lock"), Losses::default());
}

#[tokio::test]
async fn a_backlog_beyond_the_memory_bound_is_read_from_disk() {
    let dir = tempfile::tempdir().expect("dir");
    let mut o = opts(dir.path(), 1);
    o.window = 10;
    let (q, _) = open(&o);
    // Five records of 2000; memory keeps the newest that fit in
    // RECORD_SAMPLES (the last two), the rest only the file has.
    let mut older = 0;
    for ts in 0..5 {
        q.append(batch(2000, ts));
        if ts == 2 {
            older = segment_bytes(dir.path());
        }
    }
    // Ruin exactly the three older records: the reader has to read them
    // from the file (and finds nothing there), while the two in memory
    // are still dealt.
    zero_segments(dir.path(), older);
    let m = per_series(&take(&q, true, 500).await);
    assert_eq!(m.len(), 2000);
    for ts in m.values() {
        assert_eq!(*ts, vec![3, 4]);
    }

    // Undamaged, the same backlog arrives whole and in order.
    let dir = tempfile::tempdir().expect("dir");
    o.dir = dir.path().to_path_buf();
    let (q, seen) = open_filled(&o, 5, 2000);
    let m = per_series(&take(&q, true, 500).await);
    assert_eq!(m.len(), 2000);
    for ts in m.values() {
        assert_eq!(*ts, (0..5).collect::<Vec<_>>());
    }
    assert_eq!(*seen.lock().expect("lock"), Losses::default());
    assert_eq!(q.len(), 0);
}

#[test]
fn a_directory_is_used_by_one_queue_at_a_time() {
    let dir = tempfile::tempdir().expect("dir");
    let (q, _) = open(&opts(dir.path(), 1));
    let second = DiskQueue::open(&opts(dir.path(), 1), Box::new(|_| {}));
    assert_eq!(second.err().map(|e| e.kind()), Some("in_use"));
    drop(q);
    assert!(DiskQueue::open(&opts(dir.path(), 1), Box::new(|_| {})).is_ok());
}

#[tokio::test]
async fn a_position_file_that_cannot_be_created_does_not_stop_the_queue() {
    let dir = tempfile::tempdir().expect("dir");
    // A directory where the file belongs: creating it fails, as on a full disk.
    let blocker = dir.path().join("position");
    std::fs::create_dir(&blocker).expect("dir");
    let o = opts(dir.path(), 1);
    let (q, _) = open_filled(&o, 3, 10);
    let b = q.next_batch(0, 10, Duration::ZERO).await.expect("batch");
    q.ack(b);
    // Once the file can be created, the next acknowledgement stores the position.
    std::fs::remove_dir(&blocker).expect("rm");
    let b = q.next_batch(0, 10, Duration::ZERO).await.expect("batch");
    q.ack(b);
    q.crash();
    let (q, _) = open(&o);
    assert_eq!(
        q.len(),
        10,
        "the two acknowledged records are not sent again"
    );
}

#[tokio::test]
async fn crash_replays_exactly_the_unacknowledged_samples() {
    let dir = tempfile::tempdir().expect("dir");
    let o = opts(dir.path(), 1);
    let (q, _) = open_filled(&o, 10, 10);
    // Ack the first 30 samples (3 whole records), take 10 more unacked.
    let b = q.next_batch(0, 30, Duration::ZERO).await.expect("batch");
    q.ack(b);
    let unacked = q.next_batch(0, 10, Duration::ZERO).await.expect("batch");
    assert_eq!(unacked.samples[0].timestamp_ms, 3);
    q.crash();
    let (q, _) = open(&o);
    assert_eq!(q.len(), 70);
    let got = take(&q, true, 1000).await;
    assert_eq!(
        got.len(),
        70,
        "nothing acked is resent, nothing unacked lost"
    );
    assert_eq!(got.first().map(|g| g.1), Some(3));
}

#[tokio::test]
async fn torn_tail_and_flipped_byte_lose_only_the_damaged_records() {
    let dir = tempfile::tempdir().expect("dir");
    let o = opts(dir.path(), 2);
    let (q, seen) = open_filled(&o, 10, 5);
    q.crash();
    let seg = segment::list(dir.path()).expect("list")[0];
    let path = segment::path(dir.path(), seg);
    let mut bytes = std::fs::read(&path).expect("read");
    // The first record set is 5 series frames + 1 sample frame; flip a byte
    // inside the payload of a later sample record (the 4th of 10).
    let sample_frames = sample_frames(&bytes);
    bytes[sample_frames[3] + record::HEADER_LEN + 4] ^= 0x40;
    // Tear the last record in half.
    let last = sample_frames[9];
    bytes.truncate(last + 12);
    std::fs::write(&path, &bytes).expect("write");
    let (q, seen2) = open(&o);
    assert_eq!(seen.lock().expect("lock").corrupt, 0);
    assert_eq!(
        std::fs::metadata(&path).expect("meta").len(),
        last as u64,
        "tail cut at the last good record"
    );
    let got = take(&q, true, 100).await;
    let m = per_series(&got);
    for ts in m.values() {
        assert_eq!(*ts, [0, 1, 2, 4, 5, 6, 7, 8]);
    }
    assert_eq!(got.len(), 40);
    // Torn tail: header unreadable (cut at 12 bytes) so 0 known; flipped: 5.
    assert_eq!(seen2.lock().expect("lock").corrupt, 5);
    assert_eq!(q.len(), 0);
}

#[tokio::test]
async fn disk_budget_drops_oldest_counts_them_and_keeps_newest() {
    let dir = tempfile::tempdir().expect("dir");
    let mut o = opts(dir.path(), 1);
    o.budget = 64 * 1024;
    let (q, seen) = open(&o);
    let mut appended = 0;
    for ts in 0..2000 {
        appended += q.append(batch(10, ts)).accepted as u64;
    }
    assert!(q.disk_bytes() <= o.budget + 8192, "{}", q.disk_bytes());
    let dropped = seen.lock().expect("lock").disk_full;
    assert!(dropped > 0);
    assert_eq!(q.len() as u64 + dropped, appended);
    let got = take(&q, true, 500).await;
    assert_eq!(got.len() as u64 + dropped, appended, "accounting adds up");
    let m = per_series(&got);
    for ts in m.values() {
        assert_eq!(ts.last(), Some(&1999), "newest kept");
        assert!(
            ts.windows(2).all(|w| w[0] + 1 == w[1]),
            "a contiguous newest range"
        );
    }
}

#[tokio::test]
async fn resharding_waits_for_acks_and_keeps_series_order() {
    let dir = tempfile::tempdir().expect("dir");
    let (q, _) = open_filled(&opts(dir.path(), 1), 20, 16);
    let first = q.next_batch(0, 50, Duration::ZERO).await.expect("batch");
    q.set_shards(4);
    assert_eq!(q.shards(), 1, "not before the dealt samples are acked");
    let mut got = ids(&first);
    // Shard 0 still drains its window under the old layout.
    got.extend(take(&q, true, 1000).await);
    q.ack(first);
    got.extend(take(&q, true, 7).await);
    assert_eq!(q.shards(), 4);
    assert_eq!(got.len(), 320);
    for ts in per_series(&got).values() {
        assert_eq!(*ts, (0..20).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn resharding_sends_partial_batches_without_waiting_for_the_linger() {
    let dir = tempfile::tempdir().expect("dir");
    let (q, _) = open_filled(&opts(dir.path(), 2), 3, 10);
    // The first look deals all 30 samples to the two windows.
    let first = q.next_batch(0, 2, Duration::ZERO).await.expect("batch");
    let mut got = ids(&first);
    q.ack(first);
    q.set_shards(1);
    // What is left is far from a full batch, and the linger is an hour.
    let linger = Duration::from_secs(3600);
    for shard in 0..2 {
        // A bound far below the linger, so waiting for it fails the test.
        let next = tokio::time::timeout(Duration::from_secs(30), q.next_batch(shard, 1000, linger));
        let batch = next.await.expect("sent before the linger").expect("open");
        got.extend(ids(&batch));
        q.ack(batch);
    }
    assert_eq!(got.len(), 30);
    // Both acknowledged: the next look switches to one shard, which gets all.
    q.append(batch(10, 3));
    let next = q.next_batch(0, 10, linger).await.expect("batch");
    assert_eq!((q.shards(), next.samples.len()), (1, 10));
}

/// Random interleavings of append, take, ack, crash/restart and damage
/// against a model: the set of samples not yet acknowledged.
#[tokio::test]
async fn randomized_operations_match_the_model() {
    // `QUEUE_MODEL_SEEDS=N` runs more (1500 pass).
    let seeds = std::env::var("QUEUE_MODEL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40u64);
    for seed in 0..seeds {
        // Half the seeds also damage segments.
        let damage = seed % 2 == 1;
        let mut damaged = false;
        let mut rng = fastrand::Rng::with_seed(seed);
        let dir = tempfile::tempdir().expect("dir");
        let mut o = opts(dir.path(), 1 + rng.usize(..3));
        o.max_shards = 3;
        o.window = 50;
        let (mut q, mut seen) = open(&o);
        // Model: per series, timestamps appended and not acknowledged.
        let mut pending: std::collections::BTreeSet<(usize, i64)> = Default::default();
        let mut delivered: HashMap<usize, i64> = HashMap::new();
        let mut corrupted = 0u64;
        let mut appended = 0u64;
        let mut in_flight: Vec<Batch> = Vec::new();
        // Acknowledged since the last crash: a rewind must not deal them again.
        let mut acked: std::collections::HashSet<(usize, i64)> = Default::default();
        let mut ts = 0;
        for _step in 0..80 {
            match rng.u8(..12) {
                0..=3 => {
                    // Later records define new series too, not only the first.
                    let first = rng.usize(..=ts as usize);
                    let n = 1 + rng.usize(..6);
                    let b = batch(first + n, ts).split_off(first);
                    appended += n as u64;
                    for s in &b {
                        pending.insert((
                            s.series
                                .labels()
                                .get("i")
                                .and_then(|i| i.parse().ok())
                                .unwrap_or(0),
                            ts,
                        ));
                    }
                    q.append(b);
                    ts += 1;
                }
                4..=5 => {
                    let shard = rng.usize(..3);
                    // One batch in flight per shard, as the senders do.
                    if in_flight.iter().any(|b| b.shard == shard) {
                        continue;
                    }
                    let next = q.next_batch(shard, 1 + rng.usize(..20), Duration::ZERO);
                    if let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(5), next).await
                    {
                        in_flight.push(b);
                    }
                }
                6..=7 if !in_flight.is_empty() => {
                    let b = in_flight.swap_remove(rng.usize(..in_flight.len()));
                    for s in &b.samples {
                        let i: usize = s
                            .series
                            .labels()
                            .get("i")
                            .and_then(|i| i.parse().ok())
                            .unwrap_or(0);
                        let last = delivered.insert(i, s.timestamp_ms);
                        assert!(
                            last.is_none_or(|l| l < s.timestamp_ms),
                            "seed {seed}: order of series {i}"
                        );
                        pending.remove(&(i, s.timestamp_ms));
                        assert!(
                            acked.insert((i, s.timestamp_ms)),
                            "seed {seed}: series {i} at {} sent again after a rewind",
                            s.timestamp_ms
                        );
                    }
                    q.ack(b);
                }
                10 => {
                    // A successor takes over: batches in flight are never acknowledged.
                    in_flight.clear();
                    q.rewind();
                }
                11 => q.set_shards(1 + rng.usize(..3)),
                8 | 9 if !damage => {
                    q.crash();
                    in_flight.clear();
                    acked.clear();
                    // Samples delivered but unacked may come again: forget order history.
                    delivered.clear();
                    (q, seen) = open(&o);
                }
                6..=7 => {}
                _ => {
                    damaged = true;
                    // Damage: flip a byte in a random non-active segment, then restart.
                    q.crash();
                    in_flight.clear();
                    delivered.clear();
                    acked.clear();
                    let segs = segment::list(dir.path()).expect("list");
                    if let Some(&seq) = segs.first() {
                        let p = segment::path(dir.path(), seq);
                        let mut b = std::fs::read(&p).expect("read");
                        if !b.is_empty() {
                            let at = rng.usize(..b.len());
                            b[at] ^= 0xff;
                            std::fs::write(&p, b).expect("write");
                        }
                    }
                    let prev = seen.lock().expect("lock").corrupt;
                    corrupted += prev;
                    (q, seen) = open(&o);
                }
            }
        }
        // Drain: every pending sample arrives, unless lost to counted damage.
        for b in in_flight.drain(..) {
            for s in &b.samples {
                let i: usize = s
                    .series
                    .labels()
                    .get("i")
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(0);
                pending.remove(&(i, s.timestamp_ms));
            }
            q.ack(b);
        }
        let got = take(&q, true, 1000).await;
        for (i, t) in &got {
            pending.remove(&(i.parse().unwrap_or(0), *t));
        }
        corrupted += seen.lock().expect("lock").corrupt;
        let lost = pending.len() as u64;
        if damaged {
            // A flipped header byte hides its record's count; a flipped
            // payload byte is counted exactly, and once, however many
            // restarts read it again. Never more than was appended.
            assert!(
                corrupted <= appended,
                "seed {seed}: {corrupted} counted corrupt of {appended} appended"
            );
        } else {
            assert_eq!(
                (lost, corrupted),
                (0, 0),
                "seed {seed}: nothing lost without damage"
            );
        }
        assert_eq!(q.len(), 0, "seed {seed}");
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Write and read throughput with a backlog far larger than the windows;
/// memory must not follow the backlog. Run by `cargo xtask soak`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement: run with cargo xtask soak"]
async fn soak_throughput_and_memory() {
    let dir = tempfile::tempdir().expect("dir");
    let mut o = opts(dir.path(), 4);
    o.window = 10_000;
    o.fsync_interval = Duration::from_secs(1);
    let (q, _) = open(&o);
    let series_n = 10_000;
    let rounds = 300; // 3M samples
    let all: Vec<_> = (0..series_n).map(series).collect();
    let rss_before = rss_kib();
    let started = std::time::Instant::now();
    for ts in 0..rounds {
        let batch: Vec<Sample> = all
            .iter()
            .map(|s| Sample {
                series: Arc::clone(s),
                timestamp_ms: 1_700_000_000_000 + ts * 1000,
                value: ts as f64,
                extra: None,
            })
            .collect();
        q.append(batch);
    }
    let write = started.elapsed();
    let total = series_n as u64 * rounds as u64;
    let bytes = q.disk_bytes();
    let rss_backlog = rss_kib();
    eprintln!(
        "disk queue: wrote {total} samples in {:.2}s = {:.0} samples/s, {:.1} bytes/sample on disk; RSS {rss_before} -> {rss_backlog} KiB",
        write.as_secs_f64(),
        total as f64 / write.as_secs_f64(),
        bytes as f64 / total as f64
    );
    let q = Arc::new(q);
    let started = std::time::Instant::now();
    let max_rss = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..o.shards)
        .map(|shard| {
            let (q, max_rss) = (Arc::clone(&q), Arc::clone(&max_rss));
            tokio::spawn(async move {
                let mut n = 0u64;
                while let Ok(Some(b)) = tokio::time::timeout(
                    Duration::from_millis(500),
                    q.next_batch(shard, 2000, Duration::from_millis(5)),
                )
                .await
                {
                    n += b.samples.len() as u64;
                    q.ack(b);
                    if n % 200_000 < 2000 {
                        max_rss.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
                n
            })
        })
        .collect();
    let mut read = 0;
    for t in tasks {
        read += t.await.expect("task");
    }
    let took = started.elapsed();
    eprintln!(
        "disk queue: read+acked {read} samples in {:.2}s = {:.0} samples/s; max RSS while reading {} KiB",
        took.as_secs_f64(),
        read as f64 / took.as_secs_f64(),
        max_rss.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(read, total);
    assert_eq!(q.len(), 0);
}

#[tokio::test]
async fn series_shared_by_two_queues_keep_their_own_ids_in_each() {
    // Two endpoints see the same series objects in different orders, so each
    // queue overwrites the id hint the series carries for the other.
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (oa, ob) = (opts(dir_a.path(), 1), opts(dir_b.path(), 1));
    let shared: Vec<SeriesRef> = (0..8).map(series).collect();
    let samples = |order: &mut dyn Iterator<Item = usize>, ts: i64| -> Vec<Sample> {
        order
            .map(|i| Sample::new(Arc::clone(&shared[i]), ts, i as f64))
            .collect()
    };
    {
        let (qa, _) = open(&oa);
        let (qb, _) = open(&ob);
        for ts in 0..5 {
            qa.append(samples(&mut (0..8), ts));
            qb.append(samples(&mut (0..8).rev(), ts));
        }
        // Read live (from the writers' tables) and from disk after a restart.
        for q in [&qa, &qb] {
            let b = q.next_batch(0, 1000, Duration::ZERO).await.expect("batch");
            assert_eq!(b.samples.len(), 40);
            for s in &b.samples {
                assert_eq!(
                    s.series.labels().get("i"),
                    Some(s.value.to_string().as_str())
                );
            }
        }
    }
    for o in [&oa, &ob] {
        let (q, _) = open(o);
        let b = q.next_batch(0, 1000, Duration::ZERO).await.expect("batch");
        assert_eq!(b.samples.len(), 40, "unacknowledged samples come back");
        for s in &b.samples {
            assert_eq!(
                s.series.labels().get("i"),
                Some(s.value.to_string().as_str())
            );
        }
    }
}

#[tokio::test]
async fn a_segment_starting_with_many_series_definitions_is_read_without_waiting() {
    // After a restart every series is defined again at the head of the
    // segment: far more series records than sample records per pump. A
    // pump that dealt nothing used to leave the shards waiting for their
    // linger (here an hour) instead of reading on.
    let dir = tempfile::tempdir().expect("dir");
    let o = opts(dir.path(), 1);
    {
        let (q, _) = open(&o);
        q.append(batch(1000, 1));
    }
    let (q, _) = open(&o);
    let next = q.next_batch(0, 1000, Duration::from_secs(3600));
    let b = tokio::time::timeout(Duration::from_secs(60), next)
        .await
        .expect("the backlog is dealt at once, not after the linger")
        .expect("batch");
    assert_eq!(b.samples.len(), 1000);
}

#[tokio::test]
async fn many_long_label_sets_do_not_turn_segments_into_series_definitions() {
    let dir = tempfile::tempdir().expect("dir");
    let mut o = opts(dir.path(), 1);
    // 128 KiB segments; 200 series of ~300 bytes define ~60 KiB per segment.
    o.budget = 1 << 20;
    let (q, _) = open(&o);
    let long = "x".repeat(280);
    let all: Vec<SeriesRef> = (0..200)
        .map(|i| {
            Series::new(
                Labels::from_pairs([("__name__", "m"), ("i", &i.to_string()), ("long", &long)]),
                MetricType::Gauge,
            )
        })
        .collect();
    for ts in 0..400 {
        let samples: Vec<Sample> = all
            .iter()
            .map(|s| Sample {
                series: Arc::clone(s),
                timestamp_ms: ts,
                value: 1.0,
                extra: None,
            })
            .collect();
        q.append(samples);
    }
    q.flush();
    let (mut definitions, mut total) = (0usize, 0usize);
    let segs = segment::list(dir.path()).expect("list");
    // The active segment has just started with its definitions: closed ones only.
    let closed = &segs[..segs.len() - 1];
    assert!(closed.len() >= 2, "{segs:?}");
    for &seq in closed {
        let bytes = std::fs::read(segment::path(dir.path(), seq)).expect("read");
        let mut pos = 0;
        while pos + 20 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4")) as usize;
            let samples = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().expect("4"));
            if samples == 0 {
                definitions += 20 + len;
            }
            pos += 20 + len;
        }
        total += bytes.len();
    }
    assert!(
        definitions * 4 <= total,
        "series definitions are {definitions} of {total} bytes"
    );
}

#[test]
fn a_window_hands_out_its_samples_with_the_records_they_came_from() {
    let mut w = state::Window::default();
    for (record, n) in [(7, 3), (8, 1), (9, 4)] {
        for ts in 0..n {
            w.push(batch(1, ts).remove(0), record);
        }
    }
    assert_eq!(w.len(), 8);
    // A run split by the batch boundary continues in the next batch.
    let (samples, records) = w.take(5);
    assert_eq!(samples.len(), 5);
    assert_eq!(records, vec![(7, 3), (8, 1), (9, 1)]);
    let (samples, records) = w.take(100);
    let ts: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
    assert_eq!(ts, vec![1, 2, 3]);
    assert_eq!(records, vec![(9, 3)]);
    assert!(w.is_empty());
    let (samples, records) = w.take(1);
    assert!(samples.is_empty() && records.is_empty());
}

#[tokio::test]
async fn a_rewind_after_reading_fresh_records_that_define_series_sends_nothing_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let (q, _) = open(&opts(dir.path(), 2));
    // The first record defines its series (frames before its samples),
    // the second reuses them; both are dealt from memory.
    q.append(batch(10, 0));
    q.append(batch(10, 1));
    // Shard 0 sends and acknowledges all it has; shard 1 nothing, so the
    // committed position stays before both records.
    let b = q.next_batch(0, 100, Duration::ZERO).await.expect("batch");
    let sent = ids(&b);
    assert!(!sent.is_empty());
    q.ack(b);
    // A successor reads the log again from the committed position, from
    // the file this time: what shard 0 acknowledged must be skipped.
    rewind_and_drain_once(&q, sent, 20).await;
}

#[tokio::test]
async fn two_rewinds_in_a_row_keep_what_the_first_would_skip() {
    let dir = tempfile::tempdir().expect("dir");
    let (q, _) = open_filled(&opts(dir.path(), 2), 3, 10);
    // Shard 0 acknowledges its share; shard 1 holds the committed
    // position back.
    let b = q.next_batch(0, 100, Duration::ZERO).await.expect("batch");
    let sent = ids(&b);
    q.ack(b);
    // Two successors in a row, the first reading nothing before the second.
    q.rewind();
    rewind_and_drain_once(&q, sent, 30).await;
}

#[tokio::test]
async fn rewinds_across_a_shard_change_send_nothing_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let mut o = opts(dir.path(), 2);
    // Small windows, so the re-read stops before it passes what it skips.
    o.window = 4;
    let (q, _) = open_filled(&o, 3, 10);
    let b = q.next_batch(0, 100, Duration::ZERO).await.expect("batch");
    let mut sent = ids(&b);
    q.ack(b);
    q.rewind();
    // The re-read runs under three shards; one of them acknowledges a batch.
    q.set_shards(3);
    let mut acked = false;
    for shard in 0..3 {
        let next = q.next_batch(shard, 2, Duration::ZERO);
        if let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(20), next).await {
            sent.extend(ids(&b));
            q.ack(b);
            acked = true;
            break;
        }
    }
    assert!(acked);
    assert_eq!(q.shards(), 3);
    rewind_and_drain_once(&q, sent, 30).await;
}

#[tokio::test]
async fn damage_is_counted_once_however_often_it_is_read() {
    let dir = tempfile::tempdir().expect("dir");
    let o = opts(dir.path(), 1);
    let (q, _) = open_filled(&o, 4, 5);
    q.crash();
    // Flip a payload byte of the third sample record.
    let path = segment::path(dir.path(), segment::list(dir.path()).expect("list")[0]);
    let mut bytes = std::fs::read(&path).expect("read");
    let third = sample_frames(&bytes)[2];
    bytes[third + record::HEADER_LEN + 4] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    let mut corrupt = 0;
    // Each process reads past the damage while the first record stays
    // unacknowledged (so the committed position stays before it), and a
    // rewind reads it once more.
    for _ in 0..3 {
        let (q, seen) = open(&o);
        let b = q.next_batch(0, 5, Duration::ZERO).await.expect("batch");
        assert_eq!(ids(&b).len(), 5);
        q.rewind();
        let _ = take(&q, false, 100).await;
        q.crash();
        corrupt += seen.lock().expect("lock").corrupt;
    }
    let (q, seen) = open(&o);
    assert_eq!(take(&q, true, 100).await.len(), 15);
    corrupt += seen.lock().expect("lock").corrupt;
    assert_eq!(corrupt, 5, "the damaged record's samples, once");
    assert_eq!(q.len(), 0);
}
