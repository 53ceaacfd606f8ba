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
//!
//! Kind 1 is the original series record, still written when nothing more
//! is needed; kind 3 adds help and unit to a series. Sample records are
//! written as kind 5, or kind 6 with per-sample extras (created timestamp,
//! exemplar): each id and timestamp is the zigzag difference from the
//! previous sample's in the record. A scrape's samples share a timestamp
//! and mostly have consecutive ids, so a sample takes ~10 bytes instead of
//! 17. Kinds 2 and 4 (the same with absolute ids and timestamps) are what
//! earlier versions wrote; segments holding them decode unchanged.

use std::sync::Arc;

use prost::encoding::{decode_varint, encode_varint};

use crate::model::{Exemplar, Label, Labels, Metadata, MetricType, SampleExtra, Series};

/// Marks the start of a frame ("CNQ1").
pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"CNQ1");
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 20;
/// Larger payloads are refused on write and treated as damage on read.
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

const KIND_SERIES: u8 = 1;
const KIND_SAMPLES: u8 = 2;
const KIND_SERIES_META: u8 = 3;
const KIND_SAMPLES_EXTRA: u8 = 4;
const KIND_DELTAS: u8 = 5;
const KIND_DELTAS_EXTRA: u8 = 6;

// Flags of a sample's extras in a kind 4 or 6 record.
const EXTRA_CREATED: u8 = 1;
const EXTRA_EXEMPLAR: u8 = 2;

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
        /// Help and unit (kind 3 records only).
        metadata: Option<Arc<Metadata>>,
    },
    /// Samples in record order.
    Samples(Vec<RecordSample>),
}

/// One sample of a samples record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordSample {
    /// Segment-local series id.
    pub(crate) id: u32,
    /// Milliseconds since the epoch.
    pub(crate) timestamp_ms: i64,
    /// The value with its exact bits.
    pub(crate) value: f64,
    /// Created timestamp and exemplar (kind 4 records only).
    pub(crate) extra: Option<Arc<SampleExtra>>,
}

/// Encodes a series definition: kind 1 without metadata, kind 3 with it.
pub(crate) fn series_payload(out: &mut Vec<u8>, id: u32, series: &Series) {
    let metadata = series.metadata();
    out.push(if metadata.is_some() {
        KIND_SERIES_META
    } else {
        KIND_SERIES
    });
    encode_varint(u64::from(id), out);
    out.push(type_code(series.metric_type()));
    push_labels(out, series.labels());
    if let Some(m) = metadata {
        push_string(out, &m.help);
        push_string(out, &m.unit);
    }
}

fn push_string(out: &mut Vec<u8>, s: &str) {
    encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

fn push_labels(out: &mut Vec<u8>, labels: &Labels) {
    encode_varint(labels.len() as u64, out);
    for l in labels {
        push_string(out, l.name);
        push_string(out, l.value);
    }
}

/// Starts a samples payload of `n` samples; add each with
/// [`SampleCoder::push`]. With `extras`, every sample must be followed by
/// [`push_extra`].
pub(crate) fn samples_payload(out: &mut Vec<u8>, n: usize, extras: bool) -> SampleCoder {
    out.push(if extras {
        KIND_DELTAS_EXTRA
    } else {
        KIND_DELTAS
    });
    encode_varint(n as u64, out);
    SampleCoder::default()
}

/// Writes the samples of one payload, each relative to the one before.
#[derive(Default)]
pub(crate) struct SampleCoder {
    id: u32,
    timestamp_ms: i64,
}

impl SampleCoder {
    /// Adds one sample. The value keeps its exact bits (stale NaN).
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, id: u32, timestamp_ms: i64, value: f64) {
        push_i64(out, i64::from(id) - i64::from(self.id));
        push_i64(out, timestamp_ms.wrapping_sub(self.timestamp_ms));
        out.extend_from_slice(&value.to_bits().to_le_bytes());
        self.id = id;
        self.timestamp_ms = timestamp_ms;
    }
}

/// True when `payload` is a series definition (checked without decoding it).
pub(crate) fn is_series(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(&(KIND_SERIES | KIND_SERIES_META)))
}

/// The extras of the sample just pushed (records started with `extras`).
pub(crate) fn push_extra(out: &mut Vec<u8>, extra: Option<&SampleExtra>) {
    let created = extra.and_then(|e| e.created_ms);
    let exemplar = extra.and_then(|e| e.exemplar.as_ref());
    let mut flags = 0;
    if created.is_some() {
        flags |= EXTRA_CREATED;
    }
    if exemplar.is_some() {
        flags |= EXTRA_EXEMPLAR;
    }
    out.push(flags);
    if let Some(ms) = created {
        push_i64(out, ms);
    }
    if let Some(e) = exemplar {
        push_labels(out, &e.labels);
        out.extend_from_slice(&e.value.to_bits().to_le_bytes());
        push_i64(out, e.timestamp_ms);
    }
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    // Zigzag so negative timestamps stay short too.
    encode_varint(((v << 1) ^ (v >> 63)) as u64, out);
}

fn i64_from(buf: &mut &[u8]) -> Option<i64> {
    let z = decode_varint(buf).ok()?;
    Some(((z >> 1) as i64) ^ -((z & 1) as i64))
}

fn f64_from(buf: &mut &[u8]) -> Option<f64> {
    let (v, rest) = buf.split_first_chunk::<8>()?;
    *buf = rest;
    Some(f64::from_bits(u64::from_le_bytes(*v)))
}

fn labels_from(buf: &mut &[u8]) -> Option<Labels> {
    let n = usize::try_from(decode_varint(buf).ok()?).ok()?;
    let mut labels = Vec::with_capacity(n.min(256));
    for _ in 0..n {
        let name = string(buf)?;
        let value = string(buf)?;
        labels.push(Label { name, value });
    }
    Some(Labels::from_vec(labels))
}

fn extra_from(buf: &mut &[u8]) -> Option<Option<Arc<SampleExtra>>> {
    let (&flags, rest) = buf.split_first()?;
    *buf = rest;
    if flags & !(EXTRA_CREATED | EXTRA_EXEMPLAR) != 0 {
        return None;
    }
    let created_ms = if flags & EXTRA_CREATED != 0 {
        Some(i64_from(buf)?)
    } else {
        None
    };
    let exemplar = if flags & EXTRA_EXEMPLAR != 0 {
        Some(Exemplar {
            labels: labels_from(buf)?,
            value: f64_from(buf)?,
            timestamp_ms: i64_from(buf)?,
        })
    } else {
        None
    };
    Some(
        SampleExtra {
            created_ms,
            exemplar,
        }
        .into_option(),
    )
}

/// Decodes a payload whose checksum already matched; `None` if malformed
/// (which a matching checksum makes a bug or deliberate damage).
pub(crate) fn decode(mut b: &[u8]) -> Option<Payload> {
    let (&kind, rest) = b.split_first()?;
    b = rest;
    let buf = &mut b;
    match kind {
        KIND_SERIES | KIND_SERIES_META => {
            let id = u32::try_from(decode_varint(buf).ok()?).ok()?;
            let (&t, rest) = buf.split_first()?;
            *buf = rest;
            let labels = labels_from(buf)?;
            let metadata = if kind == KIND_SERIES_META {
                Some(Arc::new(Metadata {
                    help: string(buf)?,
                    unit: string(buf)?,
                }))
            } else {
                None
            };
            Some(Payload::Series {
                id,
                metric_type: type_from(t),
                labels,
                metadata,
            })
        }
        KIND_SAMPLES | KIND_SAMPLES_EXTRA | KIND_DELTAS | KIND_DELTAS_EXTRA => {
            let deltas = matches!(kind, KIND_DELTAS | KIND_DELTAS_EXTRA);
            let extras = matches!(kind, KIND_SAMPLES_EXTRA | KIND_DELTAS_EXTRA);
            let n = usize::try_from(decode_varint(buf).ok()?).ok()?;
            let mut out = Vec::with_capacity(n.min(1 << 16));
            let (mut id, mut timestamp_ms) = (0u32, 0i64);
            for _ in 0..n {
                if deltas {
                    // Checked: a payload is only trusted as far as its checksum.
                    id = u32::try_from(i64::from(id).checked_add(i64_from(buf)?)?).ok()?;
                    timestamp_ms = timestamp_ms.wrapping_add(i64_from(buf)?);
                } else {
                    id = u32::try_from(decode_varint(buf).ok()?).ok()?;
                    timestamp_ms = i64_from(buf)?;
                }
                let value = f64_from(buf)?;
                let extra = if extras { extra_from(buf)? } else { None };
                out.push(RecordSample {
                    id,
                    timestamp_ms,
                    value,
                    extra,
                });
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

    fn series(metadata: Option<Metadata>) -> crate::model::SeriesRef {
        Series::with_metadata(
            Labels::from_pairs([("__name__", "m"), ("a", "é")]),
            MetricType::Counter,
            metadata.map(Arc::new),
        )
    }

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let mut payload = Vec::new();
        series_payload(&mut payload, 7, &series(None));
        assert_eq!(payload[0], KIND_SERIES, "no metadata: the original record");
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
                metadata,
            }) => {
                assert_eq!((id, metric_type), (7, MetricType::Counter));
                assert_eq!(labels.get("a"), Some("é"));
                assert_eq!(metadata, None);
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
    fn series_metadata_round_trips() {
        let meta = Metadata {
            help: "Bytes \"sent\".".to_owned(),
            unit: "bytes".to_owned(),
        };
        let mut p = Vec::new();
        series_payload(&mut p, 3, &series(Some(meta.clone())));
        assert_eq!(p[0], KIND_SERIES_META);
        let Some(Payload::Series { id, metadata, .. }) = decode(&p) else {
            panic!("decode")
        };
        assert_eq!((id, metadata.as_deref()), (3, Some(&meta)));
        assert_eq!(decode(&p[..p.len() - 1]), None, "cut unit");
    }

    /// Bytes of records written before kinds 3 and 4 existed: a series
    /// `{__name__="up"}` (gauge, id 1) and one sample (id 1, t=-5, 1.5).
    #[test]
    fn records_of_the_first_format_still_decode() {
        let mut series = vec![1, 1, 2, 1, 8];
        series.extend_from_slice(b"__name__");
        series.extend_from_slice(&[2, b'u', b'p']);
        let Some(Payload::Series {
            id,
            metric_type,
            labels,
            metadata,
        }) = decode(&series)
        else {
            panic!("series")
        };
        assert_eq!((id, metric_type, metadata), (1, MetricType::Gauge, None));
        assert_eq!(labels, Labels::from_pairs([("__name__", "up")]));
        let mut samples = vec![2, 1, 1, 9];
        samples.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        let Some(Payload::Samples(s)) = decode(&samples) else {
            panic!("samples")
        };
        assert_eq!(
            s,
            [RecordSample {
                id: 1,
                timestamp_ms: -5,
                value: 1.5,
                extra: None
            }]
        );
    }

    #[test]
    fn samples_keep_exact_bits_and_negative_timestamps() {
        let mut p = Vec::new();
        let mut coder = samples_payload(&mut p, 5, false);
        coder.push(&mut p, 1, -5, -0.0);
        coder.push(&mut p, 2, i64::MAX, stale_nan());
        coder.push(&mut p, 300, 1_700_000_000_000, 1.5);
        coder.push(&mut p, 0, i64::MIN, 2.0);
        coder.push(&mut p, u32::MAX, i64::MAX, 3.0);
        let Some(Payload::Samples(s)) = decode(&p) else {
            panic!("decode")
        };
        assert_eq!(s[0].id, 1);
        assert_eq!(s[0].timestamp_ms, -5);
        assert_eq!(s[0].value.to_bits(), (-0.0f64).to_bits());
        assert_eq!(
            (s[1].timestamp_ms, s[1].value.to_bits()),
            (i64::MAX, stale_nan().to_bits())
        );
        assert_eq!(
            (s[2].id, s[2].timestamp_ms, s[2].value),
            (300, 1_700_000_000_000, 1.5)
        );
        assert_eq!((s[3].id, s[3].timestamp_ms), (0, i64::MIN));
        assert_eq!((s[4].id, s[4].timestamp_ms), (u32::MAX, i64::MAX));
        assert_eq!(decode(&p[..p.len() - 1]), None, "short payload");
        assert_eq!(decode(&[9]), None, "unknown kind");
        // Differences that leave the id range, or overflow, are malformed.
        for delta in [-6, i64::MAX] {
            let mut bad = vec![KIND_DELTAS, 2];
            for d in [5, delta] {
                push_i64(&mut bad, d);
                push_i64(&mut bad, 0);
                bad.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
            }
            assert_eq!(decode(&bad), None, "id difference {delta}");
        }
    }

    #[test]
    fn a_scrapes_samples_take_ten_bytes_each() {
        let mut p = Vec::new();
        let mut coder = samples_payload(&mut p, 2000, false);
        for id in 100_000..102_000 {
            coder.push(&mut p, id, 1_700_000_000_000, 1.5);
        }
        assert!(p.len() <= 2000 * 10 + 16, "{} bytes", p.len());
    }

    #[test]
    fn records_of_earlier_versions_decode() {
        // Kinds 2 and 4: absolute ids and zigzag timestamps.
        let old = |extras: bool| {
            let mut p = vec![if extras { 4 } else { 2 }, 2];
            for (id, ts) in [(300u32, 1_700_000_000_000i64), (7, -5)] {
                encode_varint(u64::from(id), &mut p);
                push_i64(&mut p, ts);
                p.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
                if extras {
                    p.push(0);
                }
            }
            p
        };
        for extras in [false, true] {
            let Some(Payload::Samples(s)) = decode(&old(extras)) else {
                panic!("decode")
            };
            let got: Vec<_> = s.iter().map(|r| (r.id, r.timestamp_ms, r.value)).collect();
            assert_eq!(got, [(300, 1_700_000_000_000, 1.5), (7, -5, 1.5)]);
        }
    }

    #[test]
    fn sample_extras_round_trip() {
        let both = SampleExtra {
            created_ms: Some(-1),
            exemplar: Some(Exemplar {
                labels: Labels::from_pairs([("trace_id", "abc")]),
                value: 0.25,
                timestamp_ms: 1_700_000_000_123,
            }),
        };
        let created = SampleExtra {
            created_ms: Some(1_600_000_000_000),
            exemplar: None,
        };
        let mut p = Vec::new();
        let mut coder = samples_payload(&mut p, 3, true);
        for (i, extra) in [Some(&both), None, Some(&created)].into_iter().enumerate() {
            coder.push(&mut p, i as u32, 10, 1.0);
            push_extra(&mut p, extra);
        }
        let Some(Payload::Samples(s)) = decode(&p) else {
            panic!("decode")
        };
        let got: Vec<Option<SampleExtra>> = s.iter().map(|r| r.extra.as_deref().cloned()).collect();
        assert_eq!(got, [Some(both), None, Some(created)]);
        assert_eq!(decode(&p[..p.len() - 1]), None, "short extras");
        let mut bad = Vec::new();
        samples_payload(&mut bad, 1, true).push(&mut bad, 0, 1, 1.0);
        bad.push(0x80);
        assert_eq!(decode(&bad), None, "unknown extra flag");
    }

    #[test]
    fn every_metric_type_round_trips() {
        for t in TYPES {
            assert_eq!(type_from(type_code(t)), t);
        }
    }
}
