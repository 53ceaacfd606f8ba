//! Remote write 2.0 and `protobuf_message: auto` against receivers that
//! speak 2.0, refuse it (415), or ignore Content-Type (1.0 receivers).

use std::time::Duration;

use super::receiver::{Receiver, Reply, V2};
use super::{WAIT, config, eventually, samples, series, status, writer};
use crate::config::ProtobufMessage;
use crate::model::Labels;

fn with_message(rx: &Receiver, message: ProtobufMessage) -> crate::config::RemoteWriteConfig {
    let mut c = config("r", rx.url(), |q| q.max_shards = 2);
    c.protobuf_message = message;
    c
}

/// Sends 3 rounds of 5 series and checks every sample arrived once, in order.
async fn round_trip(
    rx: &Receiver,
    message: ProtobufMessage,
) -> crate::remote_write::EndpointStatus {
    let w = writer(&[with_message(rx, message)], &Labels::new()).await;
    let all: Vec<_> = (0..5).map(series).collect();
    for ts in 1..=3 {
        w.sink().append(samples(&all, ts * 1000));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        eventually(WAIT, || status(&w).samples_sent == 15).await,
        "{:?}",
        status(&w)
    );
    let delivered = rx.delivered();
    assert_eq!(delivered.len(), 15);
    assert!(delivered.values().all(|n| *n == 1), "{delivered:?}");
    assert_eq!(rx.v2_errors(), Vec::<String>::new());
    let st = status(&w);
    w.shutdown(WAIT).await;
    st
}

#[tokio::test]
async fn v2_requests_are_structurally_valid_with_v2_headers() {
    let rx = Receiver::start_v2("127.0.0.1:0", V2::Speaks, |_| Reply::status(204)).await;
    let st = round_trip(&rx, ProtobufMessage::V2).await;
    assert!(st.protocol.contains("2.0"));
    let got = rx.received();
    assert!(got.iter().all(|r| r.v2));
    let h = &got[0].headers;
    assert_eq!(
        h["content-type"],
        "application/x-protobuf;proto=io.prometheus.write.v2.Request"
    );
    assert_eq!(h["x-prometheus-remote-write-version"], "2.0.0");
    assert_eq!(h["content-encoding"], "snappy");
}

#[tokio::test]
async fn auto_keeps_v2_when_the_receiver_speaks_it() {
    let rx = Receiver::start_v2("127.0.0.1:0", V2::Speaks, |_| Reply::status(204)).await;
    let st = round_trip(&rx, ProtobufMessage::Auto).await;
    assert!(st.protocol.contains("2.0"), "{st:?}");
    assert!(rx.received().iter().all(|r| r.v2));
}

#[tokio::test]
async fn auto_falls_back_on_415_and_keeps_working() {
    let rx = Receiver::start_v2("127.0.0.1:0", V2::Refuses, |_| Reply::status(204)).await;
    let st = round_trip(&rx, ProtobufMessage::Auto).await;
    assert!(st.protocol.contains("1.0"), "{st:?}");
    assert_eq!(st.samples_dropped.values().sum::<u64>(), 0, "{st:?}");
    // Only the first request of each shard at most was a 2.0 probe.
    let got = rx.received();
    assert!(got.iter().all(|r| !r.v2));
    assert_eq!(
        got.iter()
            .filter(|r| r.headers["x-prometheus-remote-write-version"] == "2.0.0")
            .count(),
        0,
        "refused ones are not recorded"
    );
}

#[tokio::test]
async fn auto_falls_back_when_a_1_0_receiver_answers_2xx_without_written_headers() {
    let rx = Receiver::start_v2("127.0.0.1:0", V2::Blind, |_| Reply::status(204)).await;
    let st = round_trip(&rx, ProtobufMessage::Auto).await;
    assert!(st.protocol.contains("1.0"), "{st:?}");
    // The blind receiver "accepted" the 2.0 probe as an empty 1.0 request;
    // the batch was sent again as 1.0, so nothing is missing.
    let empty = rx
        .received()
        .iter()
        .filter(|r| r.request.timeseries.is_empty())
        .count();
    assert!(empty >= 1, "the probe reached the receiver");
}

#[tokio::test]
async fn explicit_v2_against_a_refusing_receiver_is_rejected_not_retried() {
    let rx = Receiver::start_v2("127.0.0.1:0", V2::Refuses, |_| Reply::status(204)).await;
    let w = writer(&[with_message(&rx, ProtobufMessage::V2)], &Labels::new()).await;
    w.sink().append(samples(&[series(1)], 1000));
    assert!(eventually(WAIT, || status(&w).samples_dropped["rejected"] == 1).await);
    assert_eq!(status(&w).samples_sent, 0);
    w.shutdown(WAIT).await;
}
