use prost::Message;

use super::*;
use crate::model::{MetricType, Series, SeriesRef, stale_nan};
use crate::remote_write::proto;

fn series(pairs: &[(&str, &str)]) -> SeriesRef {
    Series::new(Labels::from_pairs(pairs.iter().copied()), MetricType::Gauge)
}

fn sample(series: &SeriesRef, timestamp_ms: i64, value: f64) -> Sample {
    Sample {
        series: series.clone(),
        timestamp_ms,
        value,
        extra: None,
    }
}

/// What prost would build from the same samples: the reference.
fn expected(samples: &[Sample]) -> proto::WriteRequest {
    proto::WriteRequest {
        timeseries: samples
            .iter()
            .map(|s| proto::TimeSeries {
                labels: s
                    .series
                    .labels()
                    .iter()
                    .map(|l| proto::Label {
                        name: l.name.to_owned(),
                        value: l.value.to_owned(),
                    })
                    .collect(),
                samples: vec![proto::Sample {
                    value: s.value,
                    timestamp: s.timestamp_ms,
                }],
                exemplars: s
                    .exemplar()
                    .map(|e| proto::Exemplar {
                        labels: e
                            .labels
                            .iter()
                            .map(|l| proto::Label {
                                name: l.name.to_owned(),
                                value: l.value.to_owned(),
                            })
                            .collect(),
                        value: e.value,
                        timestamp: e.timestamp_ms,
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    }
}

fn golden_samples() -> Vec<Sample> {
    let up = series(&[
        ("__name__", "up"),
        ("job", "node"),
        ("instance", "10.0.0.1:9100"),
    ]);
    let long = series(&[("__name__", "x"), ("v", &"é".repeat(200))]);
    let upper = series(&[("A", "1"), ("__name__", "y"), ("z", "2")]);
    vec![
        sample(&up, 1_700_000_000_000, 1.0),
        sample(&up, 1_700_000_015_000, 0.0),
        sample(&long, 0, -0.0),
        sample(&long, -1, f64::MAX),
        sample(&upper, i64::MAX, f64::INFINITY),
        sample(&upper, i64::MIN, f64::NEG_INFINITY),
    ]
}

#[test]
fn fast_encoding_decodes_to_the_identical_write_request() {
    let samples = golden_samples();
    let mut enc = Encoder::new();
    for round in 0..2 {
        // Round 2 reuses the cached label bytes and the buffers.
        let (bytes, invalid) = enc.encode_proto(&samples);
        assert_eq!(invalid, 0);
        let decoded = proto::WriteRequest::decode(bytes).expect("valid protobuf");
        assert_eq!(decoded, expected(&samples), "round {round}");
    }
    assert!(
        samples
            .iter()
            .all(|s| s.series.wire_labels(|_| unreachable!()).is_ok()),
        "the label bytes are kept on each series"
    );
}

#[test]
fn stale_marker_and_nan_keep_their_exact_bits() {
    let s = series(&[("__name__", "gone")]);
    let samples = [
        sample(&s, 5, stale_nan()),
        sample(&s, 6, f64::NAN),
        sample(&s, 7, -0.0),
    ];
    let mut enc = Encoder::new();
    let decoded = proto::WriteRequest::decode(enc.encode_proto(&samples).0).expect("decode");
    let bits: Vec<u64> = decoded
        .timeseries
        .iter()
        .map(|t| t.samples[0].value.to_bits())
        .collect();
    assert_eq!(
        bits,
        [
            0x7ff0_0000_0000_0002,
            f64::NAN.to_bits(),
            (-0.0f64).to_bits()
        ]
    );
}

#[test]
fn bytes_equal_prost_encoding_when_no_field_is_zero() {
    // prost omits zero-valued scalars; we always write them (to keep -0.0),
    // so byte equality holds exactly when no value or timestamp is zero.
    let samples: Vec<_> = golden_samples()
        .into_iter()
        .filter(|s| s.value != 0.0 && s.timestamp_ms != 0)
        .collect();
    assert_eq!(samples.len(), 4);
    let mut enc = Encoder::new();
    assert_eq!(
        enc.encode_proto(&samples).0,
        expected(&samples).encode_to_vec().as_slice()
    );
}

#[test]
fn body_is_snappy_block_format() {
    let samples = golden_samples();
    let mut enc = Encoder::new();
    let mut batch = samples.clone();
    let out = enc.encode(&mut batch).expect("encode");
    assert!(batch.is_empty(), "released once written");
    assert_eq!(out.samples, samples.len());
    // Not the framing format: no stream identifier chunk.
    assert!(
        !out.body
            .starts_with(&[0xff, 0x06, 0x00, 0x00, b's', b'N', b'a', b'P', b'p', b'Y'])
    );
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&out.body)
        .expect("block format");
    assert_eq!(
        proto::WriteRequest::decode(raw.as_slice()).expect("decode"),
        expected(&samples)
    );
}

#[test]
fn invalid_label_sets_are_left_out_and_counted() {
    let bad_name = series(&[("__name__", "ok"), ("bad-name", "v")]);
    let bad_metric = series(&[("__name__", "1bad")]);
    let good = series(&[("__name__", "ok")]);
    let samples = [
        sample(&bad_name, 1, 1.0),
        sample(&good, 1, 1.0),
        sample(&bad_metric, 1, 1.0),
    ];
    let mut enc = Encoder::new();
    let out = enc.encode(&mut samples.to_vec()).expect("encode");
    assert_eq!((out.samples, out.invalid), (1, 2));
    assert_eq!(
        out.first_invalid,
        Some(InvalidLabels::LabelName("bad-name".into()))
    );
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&out.body)
        .expect("snappy");
    let decoded = proto::WriteRequest::decode(raw.as_slice()).expect("decode");
    assert_eq!(decoded, expected(&samples[1..2]));
}

#[test]
fn validation_table() {
    let cases: [(Labels, Result<(), InvalidLabels>); 6] = [
        (
            Labels::from_pairs([("__name__", "a:b"), ("le", "+Inf")]),
            Ok(()),
        ),
        (Labels::new(), Err(InvalidLabels::Empty)),
        (Labels::from_pairs([("__name__", "a"), ("a", "")]), Ok(())), // empty value removed on set
        (
            Labels::from_pairs([("__name__", "a"), ("é", "x")]),
            Err(InvalidLabels::LabelName("é".into())),
        ),
        (
            Labels::from_pairs([("__name__", "a-b")]),
            Err(InvalidLabels::MetricName("a-b".into())),
        ),
        (
            Labels::from_pairs([("1x", "v")]),
            Err(InvalidLabels::LabelName("1x".into())),
        ),
    ];
    for (labels, want) in cases {
        assert_eq!(validate(&labels), want, "{labels}");
    }
}

#[test]
fn headers_are_exactly_the_reserved_ones_plus_custom() {
    let custom = vec![
        (
            http::HeaderName::from_static("x-scope-orgid"),
            HeaderValue::from_static("t1"),
        ),
        // Refused by config loading; if one slipped through, the reserved value wins.
        (CONTENT_TYPE, HeaderValue::from_static("text/plain")),
    ];
    let h = request_headers(&custom);
    assert_eq!(
        h.get(CONTENT_ENCODING).map(HeaderValue::as_bytes),
        Some(&b"snappy"[..])
    );
    assert_eq!(h.get_all(CONTENT_TYPE).iter().count(), 1);
    assert_eq!(
        h.get(CONTENT_TYPE).map(HeaderValue::as_bytes),
        Some(&b"application/x-protobuf"[..])
    );
    assert_eq!(
        h.get(VERSION_HEADER).map(HeaderValue::as_bytes),
        Some(&b"0.1.0"[..])
    );
    assert!(USER_AGENT_VALUE.starts_with("crowsnest/"));
    assert_eq!(
        h.get("x-scope-orgid").map(HeaderValue::as_bytes),
        Some(&b"t1"[..])
    );
    let req = build_request(
        &"http://h/api/v1/write".parse().expect("uri"),
        &h,
        Bytes::new(),
    )
    .expect("request");
    assert_eq!(req.method(), http::Method::POST);
}

#[test]
fn exemplars_ride_in_their_samples_time_series() {
    use std::sync::Arc;

    use crate::model::{Exemplar, SampleExtra};
    let h = series(&[("__name__", "h_bucket"), ("le", "1")]);
    let with = |created_ms, exemplar| {
        let mut s = sample(&h, 1_700_000_000_000, 3.0);
        s.extra = Some(Arc::new(SampleExtra {
            created_ms,
            exemplar,
        }));
        s
    };
    let samples = vec![
        with(
            Some(5),
            Some(Exemplar {
                labels: Labels::from_pairs([("trace_id", "abc"), ("span_id", "d")]),
                value: 0.5,
                timestamp_ms: -3,
            }),
        ),
        with(
            None,
            Some(Exemplar {
                labels: Labels::new(),
                value: f64::NAN,
                timestamp_ms: 1,
            }),
        ),
        // 1.0 has no created timestamp: this is a plain sample.
        with(Some(5), None),
        sample(&h, 1_700_000_000_001, 4.0),
    ];
    let mut enc = Encoder::new();
    let (bytes, invalid) = enc.encode_proto(&samples);
    assert_eq!(invalid, 0);
    let got = proto::WriteRequest::decode(bytes).expect("decodes");
    let want = expected(&samples);
    assert_eq!(got.timeseries.len(), 4);
    assert_eq!(got.timeseries[0], want.timeseries[0]);
    assert_eq!(got.timeseries[0].exemplars[0].labels[0].name, "span_id");
    assert!(got.timeseries[1].exemplars[0].value.is_nan());
    assert_eq!(got.timeseries[2..], want.timeseries[2..]);
    assert!(got.timeseries[2].exemplars.is_empty());
}

#[test]
fn varint_words_are_prost_varints() {
    let mut values = vec![0, 300, 1_700_000_000_000, u64::MAX, i64::MIN as u64];
    values.extend((0..64).map(|bit| 1u64 << bit));
    values.extend((1..64).map(|bit| (1u64 << bit) - 1));
    for v in values {
        let mut want = Vec::new();
        encode_varint(v, &mut want);
        let (word, len) = varint_word(v);
        let mut got = vec![0xaa];
        put_word(&mut got, word, len);
        assert_eq!(got[1..], want[..], "{v:#x}");
    }
}
