//! Request builder for remote write 2.0: samples -> `io.prometheus.write.v2.Request`
//! (symbol table, label refs, per-series metadata) -> snappy block.
//!
//! Samples of one series in a batch share one `TimeSeries` (they arrive in
//! timestamp order, so grouping keeps it). Correctness first: the request is
//! built as prost structs; the 1.0 encoder is the hand-tuned one.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use prost::Message;

use super::encode::{EncodeError, Encoded, InvalidLabels, USER_AGENT_VALUE, VERSION_HEADER};
use super::proto_v2::{Exemplar, Metadata, MetricType, Request, Sample, TimeSeries};
use crate::model::{Labels, Sample as ModelSample};

/// The 2.0 version header value.
pub const VERSION_2_0: &str = "2.0.0";
/// The 2.0 content type.
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// Reusable 2.0 encoder; one per shard.
#[derive(Default)]
pub struct EncoderV2 {
    proto: Vec<u8>,
    compressed: Vec<u8>,
}

/// Interns strings into the request's symbol table.
struct Symbols<'a> {
    table: Vec<&'a str>,
    index: HashMap<&'a str, u32>,
}

impl<'a> Symbols<'a> {
    fn new() -> Self {
        // Spec: the first symbol is always the empty string.
        Self {
            table: vec![""],
            index: HashMap::from([("", 0)]),
        }
    }

    fn get(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = u32::try_from(self.table.len()).unwrap_or(u32::MAX);
        self.table.push(s);
        self.index.insert(s, i);
        i
    }

    /// Name and value refs of `labels`, in order.
    fn refs(&mut self, labels: &'a Labels) -> Vec<u32> {
        let mut refs = Vec::with_capacity(labels.len() * 2);
        for l in labels {
            refs.push(self.get(l.name));
            refs.push(self.get(l.value));
        }
        refs
    }
}

impl EncoderV2 {
    /// A new encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The uncompressed request for `samples`, and how many were left out
    /// (empty label sets) with the first reason.
    pub fn build(samples: &[ModelSample]) -> (Request, usize, Option<InvalidLabels>) {
        let mut symbols = Symbols::new();
        let mut series: Vec<TimeSeries> = Vec::new();
        // Keyed by the series allocation, confirmed by labels on a hash match.
        let mut by_series: HashMap<u64, Vec<(usize, &ModelSample)>> = HashMap::new();
        let (mut invalid, mut first_invalid) = (0, None);
        for s in samples {
            if s.series.labels().is_empty() {
                invalid += 1;
                first_invalid.get_or_insert(InvalidLabels::Empty);
                continue;
            }
            let slot = by_series.entry(s.series.hash()).or_default();
            let found = slot
                .iter()
                .find(|(_, other)| other.series.labels() == s.series.labels())
                .map(|(i, _)| *i);
            let i = match found {
                Some(i) => i,
                None => {
                    series.push(TimeSeries {
                        labels_refs: symbols.refs(s.series.labels()),
                        samples: Vec::new(),
                        exemplars: Vec::new(),
                        metadata: Some(Metadata {
                            r#type: MetricType::from(s.series.metric_type()) as i32,
                            // The empty string is symbol 0: no help, no unit.
                            help_ref: symbols.get(s.series.help()),
                            unit_ref: symbols.get(s.series.unit()),
                        }),
                    });
                    slot.push((series.len() - 1, s));
                    series.len() - 1
                }
            };
            if let Some(ts) = series.get_mut(i) {
                ts.samples.push(Sample {
                    value: s.value,
                    timestamp: s.timestamp_ms,
                    // 0 means unset; ingest never stores a created time of 0.
                    start_timestamp: s.created_ms().unwrap_or(0),
                });
                if let Some(e) = s.exemplar() {
                    ts.exemplars.push(Exemplar {
                        labels_refs: symbols.refs(&e.labels),
                        value: e.value,
                        timestamp: e.timestamp_ms,
                    });
                }
            }
        }
        let request = Request {
            symbols: symbols.table.iter().map(|s| (*s).to_owned()).collect(),
            timeseries: series,
        };
        (request, invalid, first_invalid)
    }

    /// The compressed request body for `samples`.
    pub fn encode(&mut self, samples: &[ModelSample]) -> Result<Encoded, EncodeError> {
        let (request, invalid, first_invalid) = Self::build(samples);
        self.proto.clear();
        // Encoding into a Vec cannot run out of space.
        let _ = request.encode(&mut self.proto);
        self.compressed
            .resize(snap::raw::max_compress_len(self.proto.len()), 0);
        let n = snap::raw::Encoder::new().compress(&self.proto, &mut self.compressed)?;
        Ok(Encoded {
            body: Bytes::copy_from_slice(&self.compressed[..n]),
            samples: samples.len() - invalid,
            invalid,
            first_invalid,
        })
    }
}

/// The reserved 2.0 headers, after the configured ones so they always win.
pub fn request_headers_v2(custom: &[(http::HeaderName, HeaderValue)]) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(custom.len() + 4);
    for (name, value) in custom {
        h.append(name.clone(), value.clone());
    }
    h.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V2));
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    h.insert(
        http::HeaderName::from_static(VERSION_HEADER),
        HeaderValue::from_static(VERSION_2_0),
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, MetricType as M, Series, stale_nan};

    #[test]
    fn symbols_start_empty_refs_are_sorted_pairs_and_samples_group_per_series() {
        let a = Series::new(
            Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            M::Gauge,
        );
        let b = Series::new(
            Labels::from_pairs([("__name__", "up"), ("job", "b")]),
            M::Counter,
        );
        let s = |series: &crate::model::SeriesRef, ts, v| ModelSample {
            series: series.clone(),
            timestamp_ms: ts,
            value: v,
            extra: None,
        };
        let samples = [s(&a, 1, 1.0), s(&b, 1, 2.0), s(&a, 2, stale_nan())];
        let mut enc = EncoderV2::new();
        let out = enc.encode(&samples).expect("encode");
        assert_eq!((out.samples, out.invalid), (3, 0));
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&out.body)
            .expect("snappy");
        let req = Request::decode(raw.as_slice()).expect("decode");
        assert_eq!(req.symbols, ["", "__name__", "up", "job", "a", "b"]);
        assert_eq!(req.timeseries.len(), 2);
        let labels = |ts: &TimeSeries| -> Vec<(String, String)> {
            ts.labels_refs
                .chunks(2)
                .map(|p| {
                    (
                        req.symbols[p[0] as usize].clone(),
                        req.symbols[p[1] as usize].clone(),
                    )
                })
                .collect()
        };
        assert_eq!(
            labels(&req.timeseries[0]),
            [("__name__".into(), "up".into()), ("job".into(), "a".into())]
        );
        let ts: Vec<i64> = req.timeseries[0]
            .samples
            .iter()
            .map(|s| s.timestamp)
            .collect();
        assert_eq!(ts, [1, 2]);
        assert_eq!(
            req.timeseries[0].samples[1].value.to_bits(),
            stale_nan().to_bits()
        );
        assert_eq!(
            req.timeseries[1].metadata.as_ref().map(|m| m.r#type),
            Some(MetricType::Counter as i32)
        );
        assert_eq!(
            req.timeseries[0].metadata.as_ref().map(|m| m.r#type),
            Some(MetricType::Gauge as i32)
        );
    }

    #[test]
    fn help_unit_created_and_exemplars_use_the_deduplicated_symbol_table() {
        use std::sync::Arc;

        use crate::model::{Exemplar as ModelExemplar, Metadata as ModelMetadata, SampleExtra};
        let meta = Some(Arc::new(ModelMetadata {
            help: "Request latency.".to_owned(),
            unit: "seconds".to_owned(),
        }));
        let bucket = Series::with_metadata(
            Labels::from_pairs([("__name__", "rpc_seconds_bucket"), ("le", "1")]),
            M::Histogram,
            meta.clone(),
        );
        let count = Series::with_metadata(
            Labels::from_pairs([("__name__", "rpc_seconds_count")]),
            M::Histogram,
            meta,
        );
        let plain = Series::new(Labels::from_pairs([("__name__", "seconds")]), M::Gauge);
        let extra = |exemplar| {
            Some(Arc::new(SampleExtra {
                created_ms: Some(1_600_000_000_000),
                exemplar,
            }))
        };
        let samples = [
            ModelSample {
                extra: extra(Some(ModelExemplar {
                    labels: Labels::from_pairs([("trace_id", "seconds")]),
                    value: 0.25,
                    timestamp_ms: 7,
                })),
                ..ModelSample::new(bucket, 10, 1.0)
            },
            ModelSample {
                extra: extra(None),
                ..ModelSample::new(count, 10, 1.0)
            },
            ModelSample::new(plain, 10, 2.0),
        ];
        let (req, invalid, _) = EncoderV2::build(&samples);
        assert_eq!(invalid, 0);
        assert_eq!(req.symbols[0], "");
        let mut unique = req.symbols.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), req.symbols.len(), "{:?}", req.symbols);
        let sym = |i: u32| req.symbols[i as usize].as_str();
        for ts in &req.timeseries[..2] {
            let m = ts.metadata.as_ref().expect("metadata");
            assert_eq!(
                (sym(m.help_ref), sym(m.unit_ref)),
                ("Request latency.", "seconds")
            );
            assert_eq!(m.r#type, MetricType::Histogram as i32);
            assert_eq!(ts.samples[0].start_timestamp, 1_600_000_000_000);
        }
        let m = req.timeseries[2].metadata.as_ref().expect("metadata");
        assert_eq!(
            (m.help_ref, m.unit_ref),
            (0, 0),
            "no help or unit: the empty symbol"
        );
        assert_eq!(req.timeseries[2].samples[0].start_timestamp, 0);
        let e = &req.timeseries[0].exemplars;
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].labels_refs.iter().map(|&r| sym(r)).collect::<Vec<_>>(),
            ["trace_id", "seconds"]
        );
        assert_eq!((e[0].value, e[0].timestamp), (0.25, 7));
        assert!(req.timeseries[1].exemplars.is_empty());
    }

    #[test]
    fn headers_name_the_v2_message() {
        let h = request_headers_v2(&[]);
        assert_eq!(h[CONTENT_TYPE], CONTENT_TYPE_V2);
        assert_eq!(h[VERSION_HEADER], VERSION_2_0);
        assert_eq!(h[CONTENT_ENCODING], "snappy");
    }
}
