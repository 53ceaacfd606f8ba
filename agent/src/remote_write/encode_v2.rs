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
use super::proto_v2::{Metadata, MetricType, Request, Sample, TimeSeries};
use crate::model::Sample as ModelSample;

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
                    let mut refs = Vec::with_capacity(s.series.labels().len() * 2);
                    for l in s.series.labels() {
                        refs.push(symbols.get(&l.name));
                        refs.push(symbols.get(&l.value));
                    }
                    series.push(TimeSeries {
                        labels_refs: refs,
                        samples: Vec::new(),
                        exemplars: Vec::new(),
                        metadata: Some(Metadata {
                            r#type: MetricType::from(s.series.metric_type()) as i32,
                            help_ref: 0,
                            unit_ref: 0,
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
                    start_timestamp: 0,
                });
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
    fn headers_name_the_v2_message() {
        let h = request_headers_v2(&[]);
        assert_eq!(h[CONTENT_TYPE], CONTENT_TYPE_V2);
        assert_eq!(h[VERSION_HEADER], VERSION_2_0);
        assert_eq!(h[CONTENT_ENCODING], "snappy");
    }
}
