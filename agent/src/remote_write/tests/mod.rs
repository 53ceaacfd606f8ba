//! End-to-end tests: a real `RemoteWriter` against the in-process receiver.

mod durable;
mod extras;
mod lifecycle;
mod receiver;
mod relabel;
mod v2;

use std::collections::HashMap;
use std::time::Duration;

use prometheus_client::registry::Registry;

use self::receiver::{Receiver, Reply};
use super::{EndpointStatus, RemoteWriter};
use crate::config::{ProtobufMessage, QueueConfig, RemoteWriteConfig};
use crate::model::{Labels, MetricType, Sample, Series, SeriesRef, stale_nan};
use crate::relabel::Rules;

fn config(name: &str, url: url::Url, tune: impl FnOnce(&mut QueueConfig)) -> RemoteWriteConfig {
    let mut queue = QueueConfig {
        batch_send_deadline: Duration::from_millis(20),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        ..QueueConfig::default()
    };
    tune(&mut queue);
    RemoteWriteConfig {
        url,
        name: name.to_owned(),
        headers: vec![(
            http::HeaderName::from_static("x-scope-orgid"),
            http::HeaderValue::from_static("tenant-1"),
        )],
        remote_timeout: Duration::from_secs(5),
        http: Default::default(),
        write_relabel_configs: Rules::default(),
        queue,
        protobuf_message: ProtobufMessage::V1,
        send_exemplars: false,
    }
}

fn series(i: usize) -> SeriesRef {
    Series::new(
        Labels::from_pairs([
            ("__name__", "test_metric"),
            ("job", "j"),
            ("series", &i.to_string()),
        ]),
        MetricType::Gauge,
    )
}

fn samples(all: &[SeriesRef], ts: i64) -> Vec<Sample> {
    all.iter()
        .map(|s| Sample {
            series: s.clone(),
            timestamp_ms: ts,
            value: ts as f64,
            extra: None,
        })
        .collect()
}

async fn writer(configs: &[RemoteWriteConfig], external: &Labels) -> RemoteWriter {
    let mut registry = Registry::default();
    let mut w = RemoteWriter::new(&mut registry);
    w.apply(configs, external).await.expect("apply");
    w
}

/// Polls `cond` every 10 ms for up to `limit`; true once it held.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

fn status(w: &RemoteWriter) -> EndpointStatus {
    w.status().into_iter().next().expect("one endpoint")
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn method_headers_path_and_sorted_labels_are_exact() {
    let rx = Receiver::start(|_| Reply::status(204)).await;
    let external = Labels::from_pairs([("cluster", "c1"), ("job", "external-loses")]);
    let w = writer(&[config("r", rx.url(), |_| {})], &external).await;
    // Built unsorted with an empty value: Labels sorts and drops it.
    let s = Series::new(
        Labels::from_pairs([
            ("zone", "z"),
            ("__name__", "m"),
            ("empty", ""),
            ("A", "1"),
            ("job", "node"),
        ]),
        MetricType::Gauge,
    );
    w.sink().append(vec![
        Sample {
            series: s.clone(),
            timestamp_ms: 1000,
            value: 1.5,
            extra: None,
        },
        Sample {
            series: s,
            timestamp_ms: 2000,
            value: stale_nan(),
            extra: None,
        },
    ]);
    assert!(eventually(WAIT, || rx.delivered().len() == 2).await);
    let got = rx.received();
    let r = &got[0];
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.path, "/api/v1/write");
    let h = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(h("content-encoding").as_deref(), Some("snappy"));
    assert_eq!(h("content-type").as_deref(), Some("application/x-protobuf"));
    assert_eq!(
        h("x-prometheus-remote-write-version").as_deref(),
        Some("0.1.0")
    );
    assert_eq!(
        h("user-agent"),
        Some(format!("crowsnest/{}", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(h("x-scope-orgid").as_deref(), Some("tenant-1"));
    let ts = &r.request.timeseries[0];
    let labels: Vec<(&str, &str)> = ts
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("A", "1"),
            ("__name__", "m"),
            ("cluster", "c1"),
            ("job", "node"),
            ("zone", "z")
        ]
    );
    let stale = got
        .iter()
        .flat_map(|r| &r.request.timeseries)
        .flat_map(|t| &t.samples)
        .find(|s| s.timestamp == 2000);
    assert_eq!(
        stale.map(|s| s.value.to_bits()),
        Some(0x7ff0_0000_0000_0002)
    );
    assert_eq!(rx.decode_errors(), 0);
    // The receiver records a request before the sender sees the response.
    assert!(eventually(WAIT, || status(&w).samples_sent == 2).await);
    let st = status(&w);
    assert_eq!(st.samples_sent, 2);
    assert!(st.last_success_unix_ms.is_some() && st.bytes_sent > 0);
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn server_error_is_retried_and_each_sample_is_delivered_exactly_once() {
    let rx = Receiver::start(|n| Reply::status(if n == 0 { 500 } else { 200 })).await;
    let w = writer(&[config("r", rx.url(), |_| {})], &Labels::new()).await;
    let all: Vec<_> = (0..5).map(series).collect();
    w.sink().append(samples(&all, 1000));
    assert!(eventually(WAIT, || rx.delivered().len() == 5).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = &rx.received()[0];
    assert_eq!(first.status, 500);
    let seen = rx.seen();
    let delivered = rx.delivered();
    for k in first.keys() {
        assert_eq!(
            seen.get(&k),
            Some(&2),
            "{k:?}: sent once more after the 500, no more"
        );
        assert_eq!(delivered.get(&k), Some(&1));
    }
    // The receiver records a request before the sender sees the response.
    assert!(eventually(WAIT, || status(&w).samples_sent == 5).await);
    let st = status(&w);
    assert_eq!(
        (st.samples_sent, st.samples_retried),
        (5, first.keys().len() as u64)
    );
    assert_eq!(st.last_error.as_deref(), Some("HTTP 500"));
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn client_error_is_never_resent_and_is_counted() {
    let rx = Receiver::start(|n| Reply {
        body: "bad sample: out of order",
        ..Reply::status(if n == 0 { 400 } else { 200 })
    })
    .await;
    let w = writer(
        &[config("r", rx.url(), |q| q.max_shards = 1)],
        &Labels::new(),
    )
    .await;
    let all: Vec<_> = (0..3).map(series).collect();
    w.sink().append(samples(&all, 1000));
    assert!(eventually(WAIT, || status(&w).samples_failed == 3).await);
    w.sink().append(samples(&all, 2000));
    assert!(eventually(WAIT, || rx.delivered().len() == 3).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = rx.seen();
    for s in &all {
        let key = (
            format!(
                "__name__=test_metric,job=j,series={}",
                s.labels().get_or_empty("series")
            ),
            1000,
        );
        assert_eq!(seen.get(&key), Some(&1), "rejected sample never resent");
    }
    // The receiver records a request before the sender sees the response.
    assert!(eventually(WAIT, || status(&w).samples_sent == 3).await);
    let st = status(&w);
    assert_eq!(st.samples_dropped["rejected"], 3);
    assert_eq!((st.samples_sent, st.samples_retried), (3, 0));
    assert_eq!(st.last_error.as_deref(), Some("HTTP 400"));
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn too_many_requests_honours_retry_after_only_when_enabled() {
    let reply = |n| {
        if n == 0 {
            Reply {
                headers: vec![("retry-after", "1".to_owned())],
                ..Reply::status(429)
            }
        } else {
            Reply::status(200)
        }
    };
    let all: Vec<_> = (0..2).map(series).collect();
    // Enabled: the batch comes back after Retry-After (1 s), not the 10 ms backoff.
    let rx = Receiver::start(reply).await;
    let w = writer(
        &[config("r", rx.url(), |q| {
            q.retry_on_http_429 = true;
            q.max_shards = 1
        })],
        &Labels::new(),
    )
    .await;
    w.sink().append(samples(&all, 1000));
    assert!(eventually(WAIT, || rx.delivered().len() == 2).await);
    let got = rx.received();
    assert_eq!(got[0].status, 429);
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
    assert_eq!(got[1].keys(), got[0].keys());
    w.shutdown(WAIT).await;
    // Disabled (the default, like Prometheus): dropped as rejected.
    let rx = Receiver::start(reply).await;
    let w = writer(
        &[config("r", rx.url(), |q| q.max_shards = 1)],
        &Labels::new(),
    )
    .await;
    w.sink().append(samples(&all, 1000));
    assert!(eventually(WAIT, || status(&w).samples_dropped["rejected"] == 2).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.received().len(), 1);
    w.shutdown(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_shards_with_random_delays_and_errors_keep_every_series_in_order() {
    const SERIES: usize = 500;
    const STEPS: i64 = 20;
    let rx = Receiver::start(|_| Reply {
        delay: Duration::from_millis(fastrand::u64(0..=50)),
        ..Reply::status(if fastrand::u8(0..10) == 0 { 503 } else { 200 })
    })
    .await;
    let w = writer(
        &[config("r", rx.url(), |q| {
            q.min_shards = 4;
            q.max_samples_per_send = 300;
            q.max_backoff = Duration::from_millis(30);
        })],
        &Labels::new(),
    )
    .await;
    assert_eq!(status(&w).shards, 4);
    let all: Vec<_> = (0..SERIES).map(series).collect();
    for step in 0..STEPS {
        w.sink().append(samples(&all, 1000 + step));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        eventually(Duration::from_secs(60), || rx.delivered().len()
            == SERIES * STEPS as usize)
        .await
    );
    w.shutdown(WAIT).await;
    // Replay delivered requests in arrival order: per series, timestamps strictly increase.
    let mut last: HashMap<String, i64> = HashMap::new();
    for r in rx.received().iter().filter(|r| r.status == 200) {
        for (series, ts) in r.keys() {
            if let Some(prev) = last.insert(series.clone(), ts) {
                assert!(ts > prev, "{series}: {ts} after {prev}");
            }
        }
    }
    assert_eq!(last.len(), SERIES);
    assert!(
        rx.delivered().values().all(|&n| n == 1),
        "every sample delivered exactly once"
    );
    assert_eq!(rx.decode_errors(), 0);
}

#[tokio::test]
async fn network_errors_are_retried_until_the_receiver_is_up() {
    // Reserve a port, then close it: connections are refused until the receiver starts.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let url: url::Url = format!("http://{addr}/write").parse().expect("url");
    let w = writer(&[config("r", url, |q| q.max_shards = 1)], &Labels::new()).await;
    let all: Vec<_> = (0..3).map(series).collect();
    w.sink().append(samples(&all, 1000));
    assert!(eventually(WAIT, || status(&w).samples_retried >= 6).await);
    assert_eq!(status(&w).last_error.as_deref(), Some("connection_refused"));
    let rx = Receiver::start_at(&addr.to_string(), |_| Reply::status(200)).await;
    assert!(eventually(WAIT, || rx.delivered().len() == 3).await);
    assert!(eventually(WAIT, || status(&w).samples_sent == 3).await);
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn retries_back_off_exponentially_up_to_the_maximum() {
    let rx = Receiver::start(|n| Reply::status(if n < 6 { 503 } else { 200 })).await;
    let w = writer(
        &[config("r", rx.url(), |q| {
            q.max_shards = 1;
            q.min_backoff = Duration::from_millis(20);
            q.max_backoff = Duration::from_millis(160);
        })],
        &Labels::new(),
    )
    .await;
    w.sink().append(samples(&[series(1)], 1000));
    assert!(eventually(WAIT, || rx.delivered().len() == 1).await);
    let at: Vec<_> = rx.received().iter().map(|r| r.at).collect();
    let gaps: Vec<f64> = at
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    assert_eq!(gaps.len(), 6);
    // Backoff 20, 40, 80, 160, 160, 160 ms, each shortened by at most 15% jitter.
    for (gap, base) in gaps.iter().zip([20.0, 40.0, 80.0, 160.0, 160.0, 160.0]) {
        assert!(*gap >= base * 0.85 - 1.0, "gaps {gaps:?}");
    }
    w.shutdown(WAIT).await;
}

#[tokio::test]
async fn series_breaking_the_label_rules_are_dropped_and_counted() {
    let rx = Receiver::start(|_| Reply::status(200)).await;
    let w = writer(&[config("r", rx.url(), |_| {})], &Labels::new()).await;
    let bad = Series::new(
        Labels::from_pairs([("__name__", "m"), ("bad-name", "v")]),
        MetricType::Gauge,
    );
    let mut batch = samples(&[series(1)], 1000);
    batch.push(Sample {
        series: bad,
        timestamp_ms: 1000,
        value: 1.0,
        extra: None,
    });
    w.sink().append(batch);
    assert!(eventually(WAIT, || status(&w).samples_dropped["invalid_labels"] == 1).await);
    assert!(eventually(WAIT, || status(&w).samples_sent == 1).await);
    assert_eq!(rx.delivered().len(), 1);
    w.shutdown(WAIT).await;
}
