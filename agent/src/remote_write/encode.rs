//! Request builder: samples -> `prometheus.WriteRequest` protobuf -> snappy
//! block -> HTTP POST with the remote write 1.0 headers.
//!
//! The protobuf is written directly instead of building [`super::proto`]
//! structs: each distinct label pair is encoded once, when it is interned,
//! and a sample's series hands over its pairs directly (no lookup); buffers
//! are reused between requests, so a sample costs a few varints and a copy
//! of its pairs' bytes. The golden test below proves the bytes decode with
//! prost into the identical `WriteRequest`.

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use http_body_util::Full;
use prost::encoding::{encode_varint, encoded_len_varint};

pub use crate::model::InvalidLabels;
use crate::model::{Exemplar, Labels, Sample, is_valid_label_name, is_valid_metric_name};

/// `User-Agent` sent with every request.
pub const USER_AGENT_VALUE: &str = concat!("crowsnest/", env!("CARGO_PKG_VERSION"));
/// Protocol version header name and the 1.0 value.
pub const VERSION_HEADER: &str = "x-prometheus-remote-write-version";
/// The only version this encoder speaks.
pub const VERSION_1_0: &str = "0.1.0";

// Protobuf tags: (field number << 3) | wire type.
const TAG_TIMESERIES: u8 = 1 << 3 | 2; // WriteRequest.timeseries, length-delimited
const TAG_TS_SAMPLES: u8 = 2 << 3 | 2; // TimeSeries.samples
const TAG_TS_EXEMPLARS: u8 = 3 << 3 | 2; // TimeSeries.exemplars
const TAG_EXEMPLAR_VALUE: u8 = 2 << 3 | 1; // Exemplar.value, 64-bit
const TAG_EXEMPLAR_TS: u8 = 3 << 3; // Exemplar.timestamp, varint
const TAG_SAMPLE_VALUE: u8 = 1 << 3 | 1; // Sample.value, 64-bit
const TAG_SAMPLE_TS: u8 = 2 << 3; // Sample.timestamp, varint

/// Checks the 1.0 label rules: sorted by name, no repeats, no empty names or
/// values, legacy name syntax.
pub fn validate(labels: &Labels) -> Result<(), InvalidLabels> {
    if labels.is_empty() {
        return Err(InvalidLabels::Empty);
    }
    let mut prev: Option<&str> = None;
    for l in labels {
        if prev.is_some_and(|p| p.as_bytes() >= l.name.as_bytes()) {
            return Err(InvalidLabels::Unsorted(l.name.to_owned()));
        }
        prev = Some(l.name);
        if !is_valid_label_name(l.name) {
            return Err(InvalidLabels::LabelName(l.name.to_owned()));
        }
        if l.value.is_empty() {
            return Err(InvalidLabels::EmptyValue(l.name.to_owned()));
        }
        if l.name == "__name__" && !is_valid_metric_name(l.value) {
            return Err(InvalidLabels::MetricName(l.value.to_owned()));
        }
    }
    Ok(())
}

/// Encoding failures.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Snappy refused the input (larger than its 4 GiB block limit).
    #[error("snappy compression failed")]
    Snappy(#[from] snap::Error),
    /// The HTTP request could not be assembled.
    #[error("building the HTTP request failed")]
    Request(#[from] http::Error),
}

impl EncodeError {
    /// Short kind for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Snappy(_) => "snappy",
            Self::Request(_) => "request",
        }
    }
}

/// One encoded request body.
#[derive(Debug)]
pub struct Encoded {
    /// Snappy-compressed (block format) `WriteRequest`.
    pub body: Bytes,
    /// Samples in the request.
    pub samples: usize,
    /// Samples left out because their labels are invalid.
    pub invalid: usize,
    /// Why the first of them was left out.
    pub first_invalid: Option<InvalidLabels>,
}

/// Reusable encoder; one per shard, so it needs no lock.
pub struct Encoder {
    first_invalid: Option<InvalidLabels>,
    proto: Vec<u8>,
    // One exemplar message, before its length is known.
    exemplar: Vec<u8>,
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// A new encoder with empty buffers.
    pub fn new() -> Self {
        Self {
            first_invalid: None,
            proto: Vec::new(),
            exemplar: Vec::new(),
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    /// The uncompressed `WriteRequest` of `samples` (one `TimeSeries` per
    /// sample, like Prometheus; a kept exemplar rides in its sample's
    /// `TimeSeries.exemplars`), left in an internal buffer.
    pub fn encode_proto(&mut self, samples: &[Sample]) -> (&[u8], usize) {
        self.proto.clear();
        let mut invalid = 0;
        self.first_invalid = None;
        for s in samples {
            let labels = match s.series.wire_labels(validate) {
                Ok(labels) => labels,
                Err(e) => {
                    invalid += 1;
                    if self.first_invalid.is_none() {
                        self.first_invalid = Some(e);
                    }
                    continue;
                }
            };
            let ts = s.timestamp_ms as u64; // protobuf int64 is the two's complement as varint
            let (ts_word, ts_len) = varint_word(ts);
            // At most 20, so its varint is one byte.
            let sample_len = 1 + 8 + 1 + ts_len;
            let mut series_len = labels.protobuf_len() + 2 + sample_len;
            self.exemplar.clear();
            if let Some(e) = s.exemplar() {
                encode_exemplar(e, &mut self.exemplar);
                series_len +=
                    1 + encoded_len_varint(self.exemplar.len() as u64) + self.exemplar.len();
            }
            let (len_word, len_len) = varint_word(series_len as u64);
            put_word(
                &mut self.proto,
                u128::from(TAG_TIMESERIES) | len_word << 8,
                1 + len_len,
            );
            labels.write_protobuf(&mut self.proto);
            // The value is always written, even 0.0, so -0.0 and NaN payloads
            // (the stale marker) keep their exact bits.
            let fields = u128::from(TAG_TS_SAMPLES)
                | (sample_len as u128) << 8
                | u128::from(TAG_SAMPLE_VALUE) << 16
                | u128::from(s.value.to_bits()) << 24
                | u128::from(TAG_SAMPLE_TS) << 88;
            put_word(&mut self.proto, fields, 12);
            put_word(&mut self.proto, ts_word, ts_len);
            if !self.exemplar.is_empty() {
                self.proto.push(TAG_TS_EXEMPLARS);
                encode_varint(self.exemplar.len() as u64, &mut self.proto);
                self.proto.extend_from_slice(&self.exemplar);
            }
        }
        (&self.proto, invalid)
    }

    /// The compressed request body for `samples`, releasing them as soon as
    /// their protobuf is written (`samples` is left empty). Their series were
    /// just read, so releasing them now hits the cache; after the round trip
    /// every release missed it (2 % of the agent's CPU in the benchmark).
    /// A 1.0 request is final, and its body is all a retry needs.
    pub fn encode(&mut self, samples: &mut Vec<Sample>) -> Result<Encoded, EncodeError> {
        let (_, invalid) = self.encode_proto(samples);
        let total = samples.len();
        samples.clear();
        // 0 when the input is too big; `compress` then reports the error.
        self.compressed
            .resize(snap::raw::max_compress_len(self.proto.len()), 0);
        let n = self.snappy.compress(&self.proto, &mut self.compressed)?;
        Ok(Encoded {
            body: Bytes::copy_from_slice(&self.compressed[..n]),
            samples: total - invalid,
            invalid,
            first_invalid: self.first_invalid.take(),
        })
    }
}

/// Appends the first `len` (at most 16) bytes of `word`, little-endian.
/// The per-sample fields are assembled in registers and written this way:
/// a copy of a fixed size is a store or two, where one of a varying size is
/// a call to `memmove`, bytes written one by one check the buffer's
/// capacity each time (`prost`'s varint writer was 2.5 % of the agent's
/// CPU), and bytes assembled on the stack stall the wide load that reads
/// them back.
fn put_word(out: &mut Vec<u8>, word: u128, len: usize) {
    debug_assert!(len <= 16);
    let end = out.len() + len;
    out.extend_from_slice(&word.to_le_bytes());
    out.truncate(end);
}

/// `v` as a protobuf varint in the low bytes of a word, and its length (1 to 10).
fn varint_word(v: u64) -> (u128, usize) {
    let len = encoded_len_varint(v);
    let mut word = 0u128;
    // A fixed count of shifts, unrolled: no branch per byte.
    for group in 0..10 {
        word |= u128::from((v >> (7 * group)) & 0x7f) << (8 * group);
    }
    // Every byte but the last says another follows.
    let more = 0x8080_8080_8080_8080_8080_u128 & ((1u128 << (8 * (len - 1))) - 1);
    (word | more, len)
}

/// The fields of an `Exemplar` message (without its tag and length).
fn encode_exemplar(e: &Exemplar, out: &mut Vec<u8>) {
    // A label set writes `Label` messages as field 1, which `Exemplar.labels` is.
    e.labels.write_protobuf(out);
    out.push(TAG_EXEMPLAR_VALUE);
    out.extend_from_slice(&e.value.to_bits().to_le_bytes());
    out.push(TAG_EXEMPLAR_TS);
    encode_varint(e.timestamp_ms as u64, out);
}

/// The reserved remote write 1.0 headers, after the configured ones so the
/// reserved values always win (config loading also refuses them).
pub fn request_headers(custom: &[(http::HeaderName, HeaderValue)]) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(custom.len() + 4);
    for (name, value) in custom {
        h.append(name.clone(), value.clone());
    }
    h.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    h.insert(
        http::HeaderName::from_static(VERSION_HEADER),
        HeaderValue::from_static(VERSION_1_0),
    );
    h
}

/// A POST of `body` to `uri` with `headers` (from [`request_headers`]).
pub fn build_request(
    uri: &http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<http::Request<Full<Bytes>>, EncodeError> {
    let mut req = http::Request::post(uri.clone()).body(Full::new(body))?;
    *req.headers_mut() = headers.clone();
    Ok(req)
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
