//! The on-disk queue end to end: outages, restarts, reloads and faults,
//! with exact per-series counts and order at the receiver.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use prometheus_client::registry::Registry;

use super::receiver::{Receiver, Reply};
use super::{WAIT, config, eventually, samples, series, status};
use crate::config::RemoteWriteConfig;
use crate::model::Labels;
use crate::remote_write::{EndpointStatus, RemoteWriter};

pub(super) async fn durable_writer(storage: &Path, configs: &[RemoteWriteConfig]) -> RemoteWriter {
    let mut registry = Registry::default();
    let mut w = RemoteWriter::with_storage(&mut registry, storage.to_path_buf());
    w.apply(configs, &Labels::new()).await.expect("apply");
    w
}

/// Per series, the timestamps delivered (2xx), in arrival order.
fn delivered_in_order(rx: &Receiver) -> HashMap<String, Vec<i64>> {
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for r in rx
        .received()
        .iter()
        .filter(|r| (200..300).contains(&r.status))
    {
        for (k, ts) in r.keys() {
            out.entry(k).or_default().push(ts);
        }
    }
    out
}

/// Stops a receiver and waits until its port is free again.
async fn take_down(rx: Receiver) {
    drop(rx);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Every series got exactly `want` timestamps, once each, in order.
fn assert_exact(rx: &Receiver, series: usize, want: &[i64]) {
    let got = delivered_in_order(rx);
    assert_eq!(got.len(), series, "series delivered");
    for (k, ts) in &got {
        assert_eq!(ts, want, "{k}: every sample exactly once, in order");
    }
}

fn adds_up(st: &EndpointStatus) {
    let dropped: u64 = st.samples_dropped.values().sum();
    assert_eq!(
        st.samples_collected + st.samples_recovered,
        st.samples_sent + dropped + st.queue_length as u64,
        "{st:?}"
    );
}

#[tokio::test]
async fn backend_down_then_up_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let rx = Receiver::start(|_| Reply::status(200)).await;
    let (addr, url) = (rx.addr, rx.url());
    take_down(rx).await;
    let w = durable_writer(
        dir.path(),
        &[config("r", url, |q| {
            q.max_backoff = Duration::from_millis(50)
        })],
    )
    .await;
    let all: Vec<_> = (0..20).map(series).collect();
    for ts in 0..40 {
        w.sink().append(samples(&all, ts));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = status(&w);
    assert_eq!(st.queue_length, 800);
    assert!(st.disk_bytes.is_some_and(|b| b > 0));
    adds_up(&st);
    let rx = Receiver::start_at(&addr.to_string(), |_| Reply::status(200)).await;
    assert!(eventually(WAIT, || status(&w).queue_length == 0).await);
    assert_exact(&rx, 20, &(0..40).collect::<Vec<_>>());
    adds_up(&status(&w));
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn restart_resumes_the_backlog_left_on_disk() {
    let dir = tempfile::tempdir().expect("dir");
    let down = Receiver::start(|_| Reply::status(503)).await;
    let all: Vec<_> = (0..10).map(series).collect();
    let w = durable_writer(dir.path(), &[config("r", down.url(), |_| {})]).await;
    for ts in 0..30 {
        w.sink().append(samples(&all, ts));
    }
    assert!(eventually(WAIT, || !down.received().is_empty()).await);
    w.shutdown(Duration::from_millis(200)).await;
    let rx = Receiver::start(|_| Reply::status(200)).await;
    let w = durable_writer(dir.path(), &[config("r", rx.url(), |_| {})]).await;
    let st = status(&w);
    assert_eq!((st.samples_recovered, st.queue_length), (300, 300));
    for ts in 30..40 {
        w.sink().append(samples(&all, ts));
    }
    assert!(eventually(WAIT, || status(&w).queue_length == 0).await);
    assert_exact(&rx, 10, &(0..40).collect::<Vec<_>>());
    let st = status(&w);
    assert_eq!(
        st.samples_dropped.values().sum::<u64>(),
        0,
        "shutdown loses nothing: it stays on disk"
    );
    adds_up(&st);
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn resets_timeouts_and_server_errors_are_retried_until_delivered() {
    let dir = tempfile::tempdir().expect("dir");
    let rx = Receiver::start(|n| match n % 5 {
        0 => Reply::reset(),
        1 => Reply {
            delay: Duration::from_millis(400),
            ..Reply::status(200)
        },
        2 => Reply::status(503),
        3 => Reply {
            headers: vec![("retry-after", "0".to_owned())],
            ..Reply::status(429)
        },
        _ => Reply::status(200),
    })
    .await;
    let w = durable_writer(
        dir.path(),
        &[{
            let mut c = config("r", rx.url(), |q| {
                q.retry_on_http_429 = true;
                q.max_samples_per_send = 7;
            });
            c.remote_timeout = Duration::from_millis(200);
            c
        }],
    )
    .await;
    let all: Vec<_> = (0..6).map(series).collect();
    for ts in 0..10 {
        w.sink().append(samples(&all, ts));
    }
    assert!(eventually(Duration::from_secs(30), || status(&w).queue_length == 0).await);
    // A timed-out request may have been accepted by the receiver: at least
    // once, and per series in order with every sample present.
    let got = delivered_in_order(&rx);
    assert_eq!(got.len(), 6);
    for (k, ts) in &got {
        // Re-sent batches repeat a run; first arrivals are complete and in order.
        let mut first = Vec::new();
        for t in ts {
            if !first.contains(t) {
                first.push(*t);
            }
        }
        assert_eq!(first, (0..10).collect::<Vec<_>>(), "{k}");
    }
    adds_up(&status(&w));
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn bad_request_is_dropped_once_and_500_is_resent_once() {
    let dir = tempfile::tempdir().expect("dir");
    let rx = Receiver::start(|n| match n {
        0 => Reply {
            body: "out of order",
            ..Reply::status(400)
        },
        1 => Reply::status(500),
        _ => Reply::status(200),
    })
    .await;
    let w = durable_writer(dir.path(), &[config("r", rx.url(), |q| q.max_shards = 1)]).await;
    let all: Vec<_> = (0..4).map(series).collect();
    w.sink().append(samples(&all, 1));
    assert!(eventually(WAIT, || status(&w).samples_failed == 4).await);
    w.sink().append(samples(&all, 2));
    assert!(eventually(WAIT, || status(&w).samples_sent == 4).await);
    let seen = rx.seen();
    for k in rx.received()[0].keys() {
        assert_eq!(seen[&k], 1, "rejected: never resent");
    }
    for k in rx.received()[1].keys() {
        assert_eq!(seen[&k], 2, "500: sent once more");
    }
    let st = status(&w);
    assert_eq!((st.samples_dropped["rejected"], st.samples_retried), (4, 4));
    adds_up(&st);
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn reload_hands_the_queue_over_without_loss_or_reordering() {
    let dir = tempfile::tempdir().expect("dir");
    let rx = Receiver::start(|n| Reply::status(if n < 6 { 503 } else { 200 })).await;
    let mut w = durable_writer(dir.path(), &[config("r", rx.url(), |_| {})]).await;
    let all: Vec<_> = (0..8).map(series).collect();
    for ts in 0..20 {
        w.sink().append(samples(&all, ts));
    }
    assert!(eventually(WAIT, || rx.received().len() >= 2).await);
    // A transport change replaces the endpoint; the queue carries over.
    let mut changed = config("r", rx.url(), |_| {});
    changed.remote_timeout = Duration::from_secs(7);
    w.apply(&[changed], &Labels::new()).await.expect("apply");
    for ts in 20..30 {
        w.sink().append(samples(&all, ts));
    }
    assert!(eventually(WAIT, || status(&w).queue_length == 0).await);
    assert_exact(&rx, 8, &(0..30).collect::<Vec<_>>());
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn tiny_disk_budget_keeps_the_newest_and_counts_the_rest() {
    let dir = tempfile::tempdir().expect("dir");
    let down = Receiver::start(|_| Reply::status(503)).await;
    let (addr, url) = (down.addr, down.url());
    take_down(down).await;
    let w = durable_writer(dir.path(), &[config("r", url, |q| q.disk_budget = 1 << 20)]).await;
    let all: Vec<_> = (0..100).map(series).collect();
    for ts in 0..2000 {
        w.sink().append(samples(&all, ts));
    }
    let st = status(&w);
    assert!(st.samples_dropped["disk_full"] > 0, "{st:?}");
    assert!(
        st.disk_bytes.is_some_and(|b| b <= (1 << 20) + (64 << 10)),
        "{st:?}"
    );
    adds_up(&st);
    let rx = Receiver::start_at(&addr.to_string(), |_| Reply::status(200)).await;
    assert!(eventually(Duration::from_secs(30), || status(&w).queue_length == 0).await);
    for (k, ts) in delivered_in_order(&rx) {
        assert_eq!(ts.last(), Some(&1999), "{k}: newest kept");
        assert!(
            ts.windows(2).all(|p| p[0] + 1 == p[1]),
            "{k}: one contiguous newest range"
        );
    }
    adds_up(&status(&w));
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn damaged_queue_files_lose_only_the_damaged_records_and_say_so() {
    let dir = tempfile::tempdir().expect("dir");
    let down = Receiver::start(|_| Reply::status(503)).await;
    let all: Vec<_> = (0..10).map(series).collect();
    let w = durable_writer(dir.path(), &[config("r", down.url(), |_| {})]).await;
    for ts in 0..20 {
        w.sink().append(samples(&all, ts));
    }
    w.shutdown(Duration::from_millis(100)).await;
    // Damage: a flipped byte in the payload of the 6th samples record, and
    // the last record torn in the middle of its payload.
    let qdir = crate::remote_write::disk::endpoint_dir(dir.path(), "r");
    let mut segs: Vec<_> = std::fs::read_dir(&qdir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let path = segs
        .iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .expect("a segment")
        .clone();
    let mut bytes = std::fs::read(&path).expect("read");
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos + 20 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().expect("4")) as usize;
        let samples = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().expect("4"));
        frames.push((pos, len, samples));
        pos += 20 + len;
    }
    let sample_frames: Vec<_> = frames.iter().filter(|f| f.2 > 0).collect();
    assert_eq!(sample_frames.len(), 20);
    let (p5, _, _) = sample_frames[5];
    bytes[p5 + 20 + 3] ^= 0x01;
    let (last, len, _) = sample_frames[19];
    bytes.truncate(last + 20 + len / 2);
    std::fs::write(&path, bytes).expect("write");

    let rx = Receiver::start(|_| Reply::status(200)).await;
    let w = durable_writer(dir.path(), &[config("r", rx.url(), |_| {})]).await;
    assert!(eventually(WAIT, || status(&w).queue_length == 0).await);
    let want: Vec<i64> = (0..19).filter(|t| *t != 5).collect();
    assert_exact(&rx, 10, &want);
    let st = status(&w);
    assert_eq!(st.samples_dropped["corrupt"], 20, "{st:?}");
    assert_eq!(st.samples_recovered, 200);
    adds_up(&st);
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn reload_applies_a_new_disk_budget_to_the_queue_it_takes_over() {
    let dir = tempfile::tempdir().expect("dir");
    let down = Receiver::start(|_| Reply::status(503)).await;
    let mut w = durable_writer(dir.path(), &[config("r", down.url(), |_| {})]).await;
    let all: Vec<_> = (0..100).map(series).collect();
    for ts in 0..3000 {
        w.sink().append(samples(&all, ts));
    }
    let before = status(&w);
    assert!(before.disk_bytes.is_some_and(|b| b > 2 << 20), "{before:?}");
    assert_eq!(before.samples_dropped["disk_full"], 0);
    w.apply(
        &[config("r", down.url(), |q| {
            q.disk_budget = 1 << 20;
            q.max_shards = 3;
        })],
        &Labels::new(),
    )
    .await
    .expect("apply");
    // The old backlog was one segment larger than the new budget: dropped
    // whole, counted.
    let after = status(&w);
    assert_eq!(after.samples_dropped["disk_full"], 300_000, "{after:?}");
    assert!(after.disk_bytes.is_some_and(|b| b <= 1 << 20), "{after:?}");
    // New data keeps within the new budget, newest kept.
    for ts in 3000..4000 {
        w.sink().append(samples(&all, ts));
    }
    let later = status(&w);
    assert!(later.disk_bytes.is_some_and(|b| b <= 1 << 20), "{later:?}");
    assert!(later.queue_length > 0, "{later:?}");
    adds_up(&later);
    assert!(
        eventually(WAIT, || status(&w).shards <= 3).await,
        "max_shards applied"
    );
    w.shutdown(Duration::from_millis(100)).await;
}
