//! Help, unit, created timestamps and exemplars through the on-disk queue
//! (written while the backends are down, read back after a restart) to a
//! 2.0 and a 1.0 receiver.

use std::sync::Arc;
use std::time::Duration;

use super::durable::durable_writer;
use super::receiver::{Receiver, Reply, V2, V2Meta};
use super::{WAIT, config, eventually};
use crate::config::ProtobufMessage;
use crate::model::{Exemplar, Labels, Metadata, MetricType, Sample, SampleExtra, Series};
use crate::remote_write::proto;

fn batch() -> Vec<Sample> {
    let meta = Some(Arc::new(Metadata {
        help: "Request latency.".to_owned(),
        unit: "seconds".to_owned(),
    }));
    let bucket = Series::with_metadata(
        Labels::from_pairs([("__name__", "rpc_seconds_bucket"), ("le", "+Inf")]),
        MetricType::Histogram,
        meta.clone(),
    );
    let count = Series::with_metadata(
        Labels::from_pairs([("__name__", "rpc_seconds_count")]),
        MetricType::Histogram,
        meta,
    );
    let plain = Series::new(Labels::from_pairs([("__name__", "up")]), MetricType::Gauge);
    let created = |exemplar| {
        Some(Arc::new(SampleExtra {
            created_ms: Some(1_600_000_000_000),
            exemplar,
        }))
    };
    vec![
        Sample {
            extra: created(Some(Exemplar {
                labels: Labels::from_pairs([("trace_id", "abc")]),
                value: 0.25,
                timestamp_ms: 900,
            })),
            ..Sample::new(bucket, 1000, 4.0)
        },
        Sample {
            extra: created(None),
            ..Sample::new(count, 1000, 4.0)
        },
        Sample::new(plain, 1000, 1.0),
    ]
}

/// Every 2xx request's series as 1.0 `TimeSeries` and 2.0 extras.
fn delivered(rx: &Receiver) -> (Vec<proto::TimeSeries>, Vec<V2Meta>) {
    let ok: Vec<_> = rx
        .received()
        .into_iter()
        .filter(|r| (200..300).contains(&r.status))
        .collect();
    (
        ok.iter()
            .flat_map(|r| r.request.timeseries.clone())
            .collect(),
        ok.into_iter().flat_map(|r| r.v2_meta).collect(),
    )
}

fn exemplars(ts: &[proto::TimeSeries], name: &str) -> Vec<(String, f64, i64)> {
    ts.iter()
        .filter(|t| t.labels.iter().any(|l| l.value == name))
        .flat_map(|t| &t.exemplars)
        .map(|e| {
            let labels: Vec<_> = e
                .labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect();
            (labels.join(","), e.value, e.timestamp)
        })
        .collect()
}

#[tokio::test]
async fn metadata_created_and_exemplars_survive_the_disk_queue() {
    let dir = tempfile::tempdir().expect("dir");
    let configs = |v2: &Receiver, v1: &Receiver, plain: &Receiver| {
        let mut a = config("v2", v2.url(), |_| {});
        a.protobuf_message = ProtobufMessage::V2;
        a.send_exemplars = true;
        let mut b = config("v1", v1.url(), |_| {});
        b.send_exemplars = true;
        let c = config("plain", plain.url(), |_| {});
        [a, b, c]
    };
    let down = || Receiver::start_v2("127.0.0.1:0", V2::Speaks, |_| Reply::status(503));
    let (d2, d1, dp) = (down().await, down().await, down().await);
    let w = durable_writer(dir.path(), &configs(&d2, &d1, &dp)).await;
    w.sink().append(batch());
    assert!(
        eventually(WAIT, || !d2.received().is_empty()
            && !d1.received().is_empty())
        .await
    );
    w.shutdown(Duration::from_millis(200)).await;

    let up = || Receiver::start_v2("127.0.0.1:0", V2::Speaks, |_| Reply::status(200));
    let (rx2, rx1, rxp) = (up().await, up().await, up().await);
    let w = durable_writer(dir.path(), &configs(&rx2, &rx1, &rxp)).await;
    let all = |w: &crate::remote_write::RemoteWriter| w.status();
    assert!(
        all(&w).iter().all(|s| s.samples_recovered == 3),
        "every endpoint reads its 3 samples back from disk: {:?}",
        all(&w)
    );
    assert!(
        eventually(WAIT, || all(&w).iter().all(|s| s.queue_length == 0)).await,
        "{:?}",
        all(&w)
    );
    assert_eq!(rx2.v2_errors(), Vec::<String>::new());

    let (ts2, meta2) = delivered(&rx2);
    assert!(rx2.received().iter().all(|r| r.v2));
    let meta_of = |labels: &str| {
        meta2
            .iter()
            .find(|m| m.labels == labels)
            .unwrap_or_else(|| panic!("{labels} not in {meta2:?}"))
            .clone()
    };
    let bucket = meta_of("__name__=rpc_seconds_bucket,le=+Inf");
    assert_eq!(
        (bucket.help.as_str(), bucket.unit.as_str()),
        ("Request latency.", "seconds")
    );
    assert_eq!(bucket.start_timestamps, [1_600_000_000_000]);
    let count = meta_of("__name__=rpc_seconds_count");
    assert_eq!(
        (count.help.as_str(), count.start_timestamps[0]),
        ("Request latency.", 1_600_000_000_000)
    );
    let up_meta = meta_of("__name__=up");
    assert_eq!(
        (
            up_meta.help.as_str(),
            up_meta.unit.as_str(),
            up_meta.start_timestamps[0]
        ),
        ("", "", 0)
    );
    let want = vec![("trace_id=abc".to_owned(), 0.25, 900)];
    assert_eq!(exemplars(&ts2, "rpc_seconds_bucket"), want);
    assert!(exemplars(&ts2, "rpc_seconds_count").is_empty());

    let (ts1, meta1) = delivered(&rx1);
    assert!(meta1.is_empty() && rx1.received().iter().all(|r| !r.v2));
    assert_eq!(ts1.len(), 3);
    assert_eq!(exemplars(&ts1, "rpc_seconds_bucket"), want);

    let (tsp, _) = delivered(&rxp);
    assert_eq!(tsp.len(), 3);
    assert!(
        tsp.iter().all(|t| t.exemplars.is_empty()),
        "send_exemplars: false"
    );
    w.shutdown(WAIT).await;
}
