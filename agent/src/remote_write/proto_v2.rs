//! The remote write 2.0 wire schema, `io.prometheus.write.v2.Request`, as
//! prost types mirroring `prompb/io/prometheus/write/v2/types.proto` (field
//! numbers and types). Native histograms are not produced by crowsnest and
//! are left out; receivers skip unknown fields.

/// `io.prometheus.write.v2.Request`. Fields 1 to 3 are reserved.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// The string table: every label name and value, help and unit text is
    /// referred to by index. Index 0 is always the empty string.
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    /// The series.
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<TimeSeries>,
}

/// `io.prometheus.write.v2.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Pairs of (name, value) symbol refs, sorted by name.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Samples in timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Exemplars.
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<Exemplar>,
    /// Type, help and unit of the series' family.
    #[prost(message, optional, tag = "5")]
    pub metadata: Option<Metadata>,
}

/// `io.prometheus.write.v2.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
    /// Created (start) timestamp of a counter, ms; 0 when unknown.
    #[prost(int64, tag = "3")]
    pub start_timestamp: i64,
}

/// `io.prometheus.write.v2.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Label symbol refs.
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    /// Value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `io.prometheus.write.v2.Metadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// A [`MetricType`] value.
    #[prost(enumeration = "MetricType", tag = "1")]
    pub r#type: i32,
    /// Symbol ref of the HELP text (0: none).
    #[prost(uint32, tag = "3")]
    pub help_ref: u32,
    /// Symbol ref of the unit (0: none).
    #[prost(uint32, tag = "4")]
    pub unit_ref: u32,
}

/// `io.prometheus.write.v2.Metadata.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// Unknown or untyped.
    Unspecified = 0,
    /// Counter.
    Counter = 1,
    /// Gauge.
    Gauge = 2,
    /// Histogram (classic: the `_bucket`/`_sum`/`_count` series).
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

impl From<crate::model::MetricType> for MetricType {
    fn from(t: crate::model::MetricType) -> Self {
        use crate::model::MetricType as M;
        match t {
            M::Unknown => Self::Unspecified,
            M::Counter => Self::Counter,
            M::Gauge => Self::Gauge,
            M::Histogram => Self::Histogram,
            M::GaugeHistogram => Self::Gaugehistogram,
            M::Summary => Self::Summary,
            M::Info => Self::Info,
            M::StateSet => Self::Stateset,
        }
    }
}
