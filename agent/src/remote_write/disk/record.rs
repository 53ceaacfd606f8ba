//! Record framing and payloads of the on-disk queue.
//!
//! A segment is a sequence of frames:
//!
//! ```text
//! magic u32 | payload_len u32 | samples u32 | payload_crc u32 | header_crc u32 | payload
//! ```
//!
//! all little-endian, CRC32C. The header has its own checksum so that a
//! damaged payload still tells how many samples were lost, and the magic lets
//! a reader find the next frame after a damaged one (resynchronisation)
//! instead of giving up on the rest of the segment.
//!
//! Payloads start with a kind byte. A series record defines a segment-local
//! id for a label set once; sample records refer to ids, so label sets are
//! not repeated per sample. Every segment is self-contained (ids restart), so
//! dropping the oldest segment never orphans the samples of another.

use prost::encoding::{decode_varint, encode_varint};

use crate::model::{Label, Labels, MetricType};

/// Marks the start of a frame ("CNQ1").
pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"CNQ1");
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 20;
/// Larger payloads are refused on write and treated as damage on read.
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

const KIND_SERIES: u8 = 1;
const KIND_SAMPLES: u8 = 2;

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Payload bytes after the header.
    pub(crate) payload_len: usize,
    /// Samples the payload carries (0 for series records).
    pub(crate) samples: u32,
    /// CRC32C of the payload.
    pub(crate) payload_crc: u32,
}

impl Header {
    /// Parses and checks a header; `None` when it is not a valid one.
    pub(crate) fn parse(b: &[u8]) -> Option<Self> {
        let b: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if word(0) != MAGIC || crc32c::crc32c(&b[..16]) != word(16) {
            return None;
        }
        let payload_len = usize::try_from(word(4)).ok()?;
        (payload_len <= MAX_PAYLOAD).then_some(Self {
            payload_len,
            samples: word(8),
            payload_crc: word(12),
        })
    }
}

/// Appends one frame holding `payload` to `out`.
pub(crate) fn frame(out: &mut Vec<u8>, samples: u32, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    // Callers keep payloads far below 4 GiB (MAX_PAYLOAD).
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&samples.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&out[start..start + 16]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A decoded payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Payload {
    /// Defines `id` for a series in this segment.
    Series {
        /// Segment-local id.
        id: u32,
        /// The metric type.
        metric_type: MetricType,
        /// The label set.
        labels: Labels,
    },
    /// Samples as `(series id, timestamp ms, value)`.
    Samples(Vec<(u32, i64, f64)>),
}

/// Encodes a series definition.
pub(crate) fn series_payload(out: &mut Vec<u8>, id: u32, metric_type: MetricType, labels: &Labels) {
    out.push(KIND_SERIES);
    encode_varint(u64::from(id), out);
    out.push(type_code(metric_type));
    encode_varint(labels.len() as u64, out);
    for l in labels {
        for s in [&l.name, &l.value] {
            encode_varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Starts a samples payload of `n` samples; add each with [`push_sample`].
pub(crate) fn samples_payload(out: &mut Vec<u8>, n: usize) {
    out.push(KIND_SAMPLES);
    encode_varint(n as u64, out);
}

/// Adds one sample to a samples payload. The value keeps its exact bits (stale NaN).
pub(crate) fn push_sample(out: &mut Vec<u8>, id: u32, timestamp_ms: i64, value: f64) {
    encode_varint(u64::from(id), out);
    // Zigzag so negative timestamps stay short too.
    encode_varint(((timestamp_ms << 1) ^ (timestamp_ms >> 63)) as u64, out);
    out.extend_from_slice(&value.to_bits().to_le_bytes());
}

/// True when `payload` is a series definition (checked without decoding it).
pub(crate) fn is_series(payload: &[u8]) -> bool {
    payload.first() == Some(&KIND_SERIES)
}

/// Decodes a payload whose checksum already matched; `None` if malformed
/// (which a matching checksum makes a bug or deliberate damage).
pub(crate) fn decode(mut b: &[u8]) -> Option<Payload> {
    let (&kind, rest) = b.split_first()?;
    b = rest;
    let buf = &mut b;
    match kind {
        KIND_SERIES => {
            let id = u32::try_from(decode_varint(buf).ok()?).ok()?;
            let (&t, rest) = buf.split_first()?;
            *buf = rest;
            let n = usize::try_from(decode_varint(buf).ok()?).ok()?;
            let mut labels = Vec::with_capacity(n.min(256));
            for _ in 0..n {
                let name = string(buf)?;
                let value = string(buf)?;
                labels.push(Label { name, value });
            }
            Some(Payload::Series {
                id,
                metric_type: type_from(t),
                labels: Labels::from_vec(labels),
            })
        }
        KIND_SAMPLES => {
            let n = usize::try_from(decode_varint(buf).ok()?).ok()?;
            let mut out = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let id = u32::try_from(decode_varint(buf).ok()?).ok()?;
                let z = decode_varint(buf).ok()?;
                let ts = ((z >> 1) as i64) ^ -((z & 1) as i64);
                let (v, rest) = buf.split_first_chunk::<8>()?;
                *buf = rest;
                out.push((id, ts, f64::from_bits(u64::from_le_bytes(*v))));
            }
            Some(Payload::Samples(out))
        }
        _ => None,
    }
}

fn string(buf: &mut &[u8]) -> Option<String> {
    let n = usize::try_from(decode_varint(buf).ok()?).ok()?;
    let (s, rest) = (buf.get(..n)?, buf.get(n..)?);
    *buf = rest;
    String::from_utf8(s.to_vec()).ok()
}

/// The metric types, in their on-disk code order (the code is the index).
const TYPES: [MetricType; 8] = [
    MetricType::Unknown,
    MetricType::Counter,
    MetricType::Gauge,
    MetricType::Histogram,
    MetricType::GaugeHistogram,
    MetricType::Summary,
    MetricType::Info,
    MetricType::StateSet,
];

fn type_code(t: MetricType) -> u8 {
    TYPES
        .iter()
        .position(|x| *x == t)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0)
}

fn type_from(code: u8) -> MetricType {
    TYPES
        .get(usize::from(code))
        .copied()
        .unwrap_or(MetricType::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stale_nan;

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let mut payload = Vec::new();
        series_payload(
            &mut payload,
            7,
            MetricType::Counter,
            &Labels::from_pairs([("__name__", "m"), ("a", "é")]),
        );
        let mut buf = Vec::new();
        frame(&mut buf, 0, &payload);
        let h = Header::parse(&buf).expect("header");
        assert_eq!(h.payload_len, payload.len());
        let body = &buf[HEADER_LEN..];
        assert_eq!(crc32c::crc32c(body), h.payload_crc);
        match decode(body) {
            Some(Payload::Series {
                id,
                metric_type,
                labels,
            }) => {
                assert_eq!((id, metric_type), (7, MetricType::Counter));
                assert_eq!(labels.get("a"), Some("é"));
            }
            other => panic!("{other:?}"),
        }
        for i in 0..HEADER_LEN {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert_eq!(Header::parse(&bad), None, "flipped header byte {i}");
        }
    }

    #[test]
    fn samples_keep_exact_bits_and_negative_timestamps() {
        let mut p = Vec::new();
        samples_payload(&mut p, 3);
        push_sample(&mut p, 1, -5, -0.0);
        push_sample(&mut p, 2, i64::MAX, stale_nan());
        push_sample(&mut p, 300, 1_700_000_000_000, 1.5);
        let Some(Payload::Samples(s)) = decode(&p) else {
            panic!("decode")
        };
        assert_eq!(s[0].0, 1);
        assert_eq!(s[0].1, -5);
        assert_eq!(s[0].2.to_bits(), (-0.0f64).to_bits());
        assert_eq!(
            (s[1].1, s[1].2.to_bits()),
            (i64::MAX, stale_nan().to_bits())
        );
        assert_eq!((s[2].0, s[2].1, s[2].2), (300, 1_700_000_000_000, 1.5));
        assert_eq!(decode(&p[..p.len() - 1]), None, "short payload");
        assert_eq!(decode(&[9]), None, "unknown kind");
    }

    #[test]
    fn every_metric_type_round_trips() {
        for t in TYPES {
            assert_eq!(type_from(type_code(t)), t);
        }
    }
}
