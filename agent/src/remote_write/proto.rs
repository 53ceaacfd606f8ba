//! The v1 remote-write wire schema, `prometheus.WriteRequest`, as prost types.
//!
//! These mirror `prompb/remote.proto` and `prompb/types.proto` field for field
//! (numbers, types, `oneof`s) and are what `prost-build` would generate from
//! them; they are written by hand because the build machine has no `protoc`.
//! The hot path does not build these structs (see [`super::encode`]); they are
//! the reference the fast encoder is tested against, and what receivers decode.

/// `prometheus.WriteRequest`. Field 2 is reserved (Cortex).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series with their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    /// Metric metadata (a Prometheus extension; not part of the 1.0 spec).
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// The complete, sorted label set.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples in timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars (extension).
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histograms (extension).
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value (the stale marker is the NaN with bits `0x7ff0000000000002`).
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Exemplar labels (may be empty).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Observed value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`. Field 3 is unused upstream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// A [`MetricType`] value.
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    /// Family name.
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    /// HELP text.
    #[prost(string, tag = "4")]
    pub help: String,
    /// Unit.
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// `prometheus.MetricMetadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// Untyped.
    Unknown = 0,
    /// Counter.
    Counter = 1,
    /// Gauge.
    Gauge = 2,
    /// Histogram.
    Histogram = 3,
    /// Gauge histogram.
    Gaugehistogram = 4,
    /// Summary.
    Summary = 5,
    /// Info.
    Info = 6,
    /// State set.
    Stateset = 7,
}

/// `prometheus.Histogram` (native histogram; an extension of the 1.0 spec).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Count of observations.
    #[prost(oneof = "histogram::Count", tags = "1, 2")]
    pub count: Option<histogram::Count>,
    /// Sum of observations.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// Bucket schema.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// Breadth of the zero bucket.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Count in the zero bucket.
    #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
    pub zero_count: Option<histogram::ZeroCount>,
    /// Negative bucket spans.
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// Negative bucket count deltas (integer histograms).
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// Negative bucket counts (float histograms).
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    /// Positive bucket spans.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Positive bucket count deltas (integer histograms).
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// Positive bucket counts (float histograms).
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    /// A `histogram::ResetHint` value.
    #[prost(enumeration = "histogram::ResetHint", tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    /// Not for remote-write clients (upstream internal use).
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// Nested types of [`Histogram`].
pub mod histogram {
    /// `oneof count`.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum Count {
        /// Integer count.
        #[prost(uint64, tag = "1")]
        CountInt(u64),
        /// Float count.
        #[prost(double, tag = "2")]
        CountFloat(f64),
    }

    /// `oneof zero_count`.
    #[derive(Clone, Copy, PartialEq, prost::Oneof)]
    pub enum ZeroCount {
        /// Integer zero-bucket count.
        #[prost(uint64, tag = "6")]
        ZeroCountInt(u64),
        /// Float zero-bucket count.
        #[prost(double, tag = "7")]
        ZeroCountFloat(f64),
    }

    /// `Histogram.ResetHint`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum ResetHint {
        /// Test for a reset explicitly.
        Unknown = 0,
        /// First histogram after a reset.
        Yes = 1,
        /// No reset since the previous histogram.
        No = 2,
        /// Gauge histogram: resets do not happen.
        Gauge = 3,
    }
}

/// `prometheus.BucketSpan`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct BucketSpan {
    /// Gap to the previous span (or the start for the first one).
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Number of consecutive buckets.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}
