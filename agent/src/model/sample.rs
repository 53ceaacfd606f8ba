//! Series identity and samples.

use std::sync::{Arc, OnceLock};

use super::{InvalidLabels, Labels};

/// The bit pattern Prometheus uses to mark a series stale (a signalling NaN
/// distinct from the NaN a target may legitimately expose).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is the staleness marker (not any other NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The type of a metric family, as declared by `# TYPE` (OpenMetrics names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// No `# TYPE` line, or `untyped`/`unknown`.
    #[default]
    Unknown,
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram (`_bucket`, `_sum`, `_count`).
    Histogram,
    /// Gauge histogram (`_bucket`, `_gsum`, `_gcount`).
    GaugeHistogram,
    /// Summary (quantiles, `_sum`, `_count`).
    Summary,
    /// Info (`_info`).
    Info,
    /// State set.
    StateSet,
}

impl MetricType {
    /// The lower-case name used in expositions and status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
        }
    }
}

/// A series after all relabeling: immutable and shared, with its identity
/// hash computed once. Scrape caches hand out the same `Arc` on every scrape
/// of an unchanged series, so later stages can cache per series cheaply.
#[derive(Debug)]
pub struct Series {
    labels: Labels,
    hash: u64,
    metric_type: MetricType,
    /// The remote write encoding of the labels, made by the first request
    /// that carries the series: kept here rather than in a per-encoder map,
    /// so sending a sample costs no lookup and no second copy of the bytes.
    wire: OnceLock<WireLabels>,
}

/// A series' labels as remote write 1.0 `TimeSeries.labels` fields, or why
/// they cannot be sent.
pub type WireLabels = Result<Box<[u8]>, InvalidLabels>;

impl PartialEq for Series {
    fn eq(&self, other: &Self) -> bool {
        // The wire cache is derived from the labels.
        self.hash == other.hash
            && self.metric_type == other.metric_type
            && self.labels == other.labels
    }
}

/// Shared handle to a [`Series`].
pub type SeriesRef = Arc<Series>;

impl Series {
    /// Wraps a final label set.
    pub fn new(labels: Labels, metric_type: MetricType) -> SeriesRef {
        let hash = labels.stable_hash();
        Arc::new(Self {
            labels,
            hash,
            metric_type,
            wire: OnceLock::new(),
        })
    }

    /// The series' labels (sorted, no empty values).
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Identity hash of the label set ([`Labels::stable_hash`]).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Type of the family the series belongs to.
    pub fn metric_type(&self) -> MetricType {
        self.metric_type
    }

    /// The wire encoding of the labels, computed by `encode` on first use.
    /// Only the remote write 1.0 encoder calls this, always with the same
    /// function, so the cached bytes are never those of another encoding.
    pub fn wire_labels(&self, encode: impl FnOnce(&Labels) -> WireLabels) -> &WireLabels {
        self.wire.get_or_init(|| encode(&self.labels))
    }
}

/// One value of one series at one time.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The series the value belongs to.
    pub series: SeriesRef,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value; [`stale_nan`] marks the series stale.
    pub value: f64,
}

/// The input of the delivery stage: whatever produces samples (a scrape, a
/// collector) hands them here. Implementations never block the producer.
pub trait SampleSink: Send + Sync {
    /// Takes a batch of samples; the caller keeps ownership of the slice.
    fn append(&self, samples: &[Sample]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_not_any_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        assert!(stale_nan().is_nan());
    }
}
