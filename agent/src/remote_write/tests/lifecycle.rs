//! Shutdown, bounded queues and reloads.

use std::time::Duration;

use prometheus_client::registry::Registry;

use super::receiver::{Receiver, Reply};
use super::{WAIT, config, eventually, samples, series, status, writer};
use crate::config::QueueConfig;
use crate::model::Labels;
use crate::remote_write::RemoteWriter;

#[tokio::test]
async fn shutdown_flushes_queued_samples() {
    let rx = Receiver::start(|_| Reply::status(200)).await;
    // A long deadline: without the flush nothing would be sent for a minute.
    let w = writer(
        &[config("r", rx.url(), |q| {
            q.batch_send_deadline = Duration::from_secs(60)
        })],
        &Labels::new(),
    )
    .await;
    let all: Vec<_> = (0..50).map(series).collect();
    w.sink().append(samples(&all, 1000));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rx.received().len(), 0);
    let sink = w.sink();
    let started = tokio::time::Instant::now();
    w.shutdown(WAIT).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(rx.delivered().len(), 50);
    // The sink outlives the writer harmlessly.
    sink.append(samples(&all, 2000));
}

#[tokio::test]
async fn shutdown_deadline_counts_unsent_samples() {
    let rx = Receiver::start(|_| Reply::status(503)).await;
    let mut registry = Registry::default();
    let mut w = RemoteWriter::new(&mut registry);
    w.apply(&[config("r", rx.url(), |_| {})], &Labels::new())
        .await
        .expect("apply");
    let all: Vec<_> = (0..30).map(series).collect();
    w.sink().append(samples(&all, 1000));
    assert!(eventually(WAIT, || !rx.received().is_empty()).await);
    let started = tokio::time::Instant::now();
    w.shutdown(Duration::from_millis(300)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the deadline"
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(text.contains(r#"reason="shutdown"} 30"#), "{text}");
}

#[tokio::test]
async fn full_queue_drops_new_samples_and_counts_them() {
    let rx = Receiver::start(|_| Reply::status(200)).await;
    let w = writer(
        &[config("r", rx.url(), |q| {
            q.min_shards = 1;
            q.max_shards = 1;
            q.capacity = 10;
            q.batch_send_deadline = Duration::from_secs(60);
            q.max_samples_per_send = 1000;
        })],
        &Labels::new(),
    )
    .await;
    let all: Vec<_> = (0..25).map(series).collect();
    w.sink().append(samples(&all, 1000));
    let st = status(&w);
    assert_eq!(
        (st.queue_length, st.samples_dropped["queue_full"]),
        (10, 15)
    );
    w.shutdown(WAIT).await;
    assert_eq!(rx.delivered().len(), 10);
}

#[tokio::test]
async fn apply_keeps_unchanged_queues_and_drains_replaced_endpoints_first() {
    let old_rx = Receiver::start(|_| Reply::status(200)).await;
    let new_rx = Receiver::start(|_| Reply::status(200)).await;
    let slow = |q: &mut QueueConfig| q.batch_send_deadline = Duration::from_secs(60);
    let mut registry = Registry::default();
    let mut w = RemoteWriter::new(&mut registry);
    w.apply(
        &[config("r", old_rx.url(), slow)],
        &Labels::from_pairs([("cluster", "a")]),
    )
    .await
    .expect("apply");
    let sink = w.sink();
    let all: Vec<_> = (0..10).map(series).collect();
    sink.append(samples(&all, 1000));
    // Only external labels change: same queue, nothing sent yet.
    w.apply(
        &[config("r", old_rx.url(), slow)],
        &Labels::from_pairs([("cluster", "b")]),
    )
    .await
    .expect("apply");
    assert_eq!(status(&w).queue_length, 10);
    sink.append(samples(&all, 2000));
    assert_eq!(status(&w).queue_length, 20);
    // A new URL replaces the endpoint: the old queue drains to the old URL.
    w.apply(
        &[config("r", new_rx.url(), |_| {})],
        &Labels::from_pairs([("cluster", "b")]),
    )
    .await
    .expect("apply");
    sink.append(samples(&all, 3000));
    assert!(
        eventually(WAIT, || old_rx.delivered().len() == 20
            && new_rx.delivered().len() == 10)
        .await
    );
    let clusters: Vec<_> = old_rx
        .delivered()
        .into_keys()
        .map(|(l, ts)| (ts, l.contains("cluster=a")))
        .collect();
    assert!(
        clusters.iter().all(|&(ts, a)| a == (ts == 1000)),
        "queued samples keep their labels: {clusters:?}"
    );
    let last_old = old_rx
        .received()
        .iter()
        .map(|r| r.at)
        .max()
        .expect("old requests");
    let first_new = new_rx
        .received()
        .iter()
        .map(|r| r.at)
        .min()
        .expect("new requests");
    assert!(
        first_new >= last_old,
        "the new endpoint waited for the old one to drain"
    );
    let exported = |needle: String| {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text.contains(&needle)
    };
    let (old_addr, new_addr) = (old_rx.addr.to_string(), new_rx.addr.to_string());
    assert!(
        eventually(WAIT, || !exported(old_addr.clone())).await,
        "drained endpoint's series removed"
    );
    assert!(exported(new_addr.clone()));
    // Removing every endpoint: it is flushed, the sink keeps working and sends nowhere.
    sink.append(samples(&all, 4000));
    w.apply(&[], &Labels::new()).await.expect("apply");
    sink.append(samples(&all, 5000));
    assert!(w.status().is_empty());
    assert!(eventually(WAIT, || new_rx.delivered().len() == 20).await);
    assert!(eventually(WAIT, || !exported(new_addr.clone())).await);
    w.shutdown(WAIT).await;
    assert_eq!(new_rx.delivered().len(), 20);
}

#[tokio::test]
async fn invalid_configs_are_refused_without_changing_anything() {
    let rx = Receiver::start(|_| Reply::status(200)).await;
    let mut w = writer(&[config("r", rx.url(), |_| {})], &Labels::new()).await;
    let dup = [config("a", rx.url(), |_| {}), config("a", rx.url(), |_| {})];
    let err = w
        .apply(&dup, &Labels::new())
        .await
        .expect_err("duplicate names");
    assert_eq!(err.kind(), "duplicate_name");
    let mut tls = config("b", rx.url(), |_| {});
    tls.http.tls.ca_file = Some("/nonexistent/crowsnest-test-ca.pem".into());
    let mut changed = config("r", rx.url(), |q| q.capacity = 5);
    changed.remote_timeout = Duration::from_secs(1);
    let err = w
        .apply(&[changed, tls], &Labels::new())
        .await
        .expect_err("unreadable CA file");
    assert_eq!(err.kind(), "client");
    assert_eq!(w.status().len(), 1);
    w.sink().append(samples(&[series(1)], 1000));
    assert!(eventually(WAIT, || rx.delivered().len() == 1).await);
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn urls_in_status_and_metrics_carry_no_credentials() {
    let rx = Receiver::start(|_| Reply::status(200)).await;
    let mut url = rx.url();
    url.set_username("user").expect("user");
    url.set_password(Some("hunter2")).expect("password");
    url.set_query(Some("token=secret"));
    let w = writer(&[config("r", url, |_| {})], &Labels::new()).await;
    let st = status(&w);
    assert!(
        !st.url.contains("hunter2") && !st.url.contains("secret") && !st.url.contains("user"),
        "{}",
        st.url
    );
    assert_eq!(st.protocol, "prometheus.WriteRequest (remote write 1.0)");
    w.shutdown(WAIT).await;
}
