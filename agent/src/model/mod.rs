//! The pipeline's own data types: label sets, series identity and samples.
//!
//! Every stage speaks these types, so a sample can be followed from the
//! scrape (or kernel map) that produced it to the request that carries it.

mod intern;
mod labels;
mod sample;

pub use labels::{
    InvalidLabels, Label, LabelRef, Labels, is_valid_label_name, is_valid_metric_name,
};
pub use sample::{
    Enriched, Exemplar, Metadata, MetricType, STALE_NAN_BITS, Sample, SampleExtra, SampleSink,
    Series, SeriesRef, is_stale_nan, stale_nan,
};
