//! The one exposition parser: Prometheus text format 0.0.4 and OpenMetrics 1.0.
//!
//! [`Parser`] is a pull parser: [`Parser::next_entry`] returns one HELP, TYPE,
//! UNIT or sample entry at a time. Entries borrow the body and the parser's
//! scratch buffers, so a sample costs no heap allocation unless a name or
//! value contains escapes (then only that string is copied).
//!
//! Text format 0.0.4 is parsed as leniently as Prometheus' own scraper
//! (blanks anywhere, optional commas between labels, free-form comments).
//! OpenMetrics is parsed strictly: `# EOF` is required, the line grammar is
//! exact, metadata must be unique and precede its family's samples, and the
//! per-sample rules of each type are checked. Rules that need state across
//! samples (bucket ordering, grouping) are not enforced, matching Prometheus;
//! the conformance test lists each such case.
//!
//! ```
//! use crowsnest::scrape::parse::{Entry, Format, Parser};
//!
//! let body = b"# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 7\n";
//! let format = Format::from_content_type(Some("text/plain; version=0.0.4"));
//! let mut parser = Parser::new(body, format);
//! let mut total = 0.0;
//! while let Some(entry) = parser.next_entry()? {
//!     if let Entry::Sample(s) = entry {
//!         // `s.series_text` identifies the series; labels borrow the body.
//!         assert_eq!(s.series_text, b"http_requests_total{code=\"200\"}");
//!         total += s.value;
//!     }
//! }
//! assert_eq!(total, 7.0);
//! # Ok::<(), crowsnest::scrape::parse::ParseError>(())
//! ```
//!
//! Prometheus 3 canonicalises `le`/`quantile` values (`le="1"` is stored as
//! `"1.0"`); [`canonical_label_value`] does that for callers, once per new series.
//!
//! Layout: `lex` (bytes, names, escapes), `number` (values, timestamps),
//! `labels` (label sets), `tail` (value, timestamp, exemplar), `family`
//! (families and metadata rules), `group` (cross-sample rules), `rules`
//! (per-sample OpenMetrics rules), `parser` (the line grammar), `error`,
//! `canonical` (Prometheus 3 `le`/`quantile` normalisation), `series_key`
//! (a series text's identity for caches).

use std::borrow::Cow;

use crate::model::MetricType;

mod canonical;
mod error;
mod family;
mod group;
mod label_set;
mod labels;
mod lex;
mod number;
mod parser;
mod rules;
mod series_key;
mod tail;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod gotable;
#[cfg(test)]
mod om_tests;
#[cfg(test)]
mod tests;

pub use canonical::canonical_label_value;
pub use error::{Found, ParseError, Reason};
pub use label_set::parse_label_set;
pub use parser::Parser;
pub use series_key::SeriesKey;

/// The exposition format of a body, from the scrape response's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`), the default.
    Prometheus,
    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// OpenMetrics for `application/openmetrics-text` (any parameters, any
    /// case); text 0.0.4 for anything else, including a missing header, as
    /// Prometheus does.
    pub fn from_content_type(ct: Option<&str>) -> Format {
        let media_type = ct
            .and_then(|ct| ct.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// One line of an exposition that carries data.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a, 'p> {
    /// `# HELP family text` (escapes undone).
    Help {
        /// The family name as written (a quoted name keeps its escapes).
        family: &'a str,
        /// The help text.
        help: Cow<'a, str>,
    },
    /// `# TYPE family type`.
    Type {
        /// The family name as written.
        family: &'a str,
        /// The declared type (`untyped` and `unknown` are [`MetricType::Unknown`]).
        metric_type: MetricType,
    },
    /// `# UNIT family unit` (OpenMetrics only).
    Unit {
        /// The family name as written.
        family: &'a str,
        /// The unit; may be empty.
        unit: &'a str,
    },
    /// A sample line.
    Sample(SampleEntry<'a, 'p>),
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleEntry<'a, 'p> {
    /// Exact bytes of the series (metric name + label block) in the body: the
    /// scrape loop keys its series cache on these bytes, so an unchanged
    /// series costs no label work.
    pub series_text: &'a [u8],
    /// The metric name (unescaped if it was quoted).
    pub name: Cow<'a, str>,
    /// Bytes the metric name takes at the start of `series_text` (0 when
    /// the text starts with `{`), as the parser found it; see [`SampleEntry::key`].
    name_len: usize,
    /// Labels in exposition order, without the metric name; values unescaped
    /// (`Cow::Borrowed` when there were no escapes). Empty values are kept.
    pub labels: &'p [LabelRef<'a>],
    /// False when the label set was not parsed because the caller knew the
    /// series text ([`Parser::next_entry_expecting`]); `labels` is then empty.
    pub labels_parsed: bool,
    /// The sample value.
    pub value: f64,
    /// Milliseconds since the epoch. Text 0.0.4 writes integer milliseconds;
    /// OpenMetrics writes float seconds, converted as Prometheus does.
    pub timestamp_ms: Option<i64>,
    /// The exemplar after `#` (OpenMetrics only).
    pub exemplar: Option<Exemplar<'a, 'p>>,
    /// The type of the sample's family ([`MetricType::Unknown`] if none was declared).
    pub metric_type: MetricType,
}

impl SampleEntry<'_, '_> {
    /// The series cache key of `series_text`, with the name length the
    /// parser already found (so the key is not scanned for it again).
    pub fn key(&self) -> SeriesKey {
        SeriesKey::with_name_len(self.series_text, self.name_len)
    }
}

/// A label as it appears in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRef<'a> {
    /// The label name (unescaped if it was quoted).
    pub name: Cow<'a, str>,
    /// The label value, unescaped.
    pub value: Cow<'a, str>,
}

/// An OpenMetrics exemplar: `# {labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a, 'p> {
    /// The exemplar's labels.
    pub labels: &'p [LabelRef<'a>],
    /// The exemplar value.
    pub value: f64,
    /// Milliseconds since the epoch, if given.
    pub timestamp_ms: Option<i64>,
}

/// What [`validate`] counted in a well-formed body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Sample lines (including `_created`, `_sum`, ... lines).
    pub samples: usize,
    /// Distinct metric families, declared by metadata or sampled.
    pub families: usize,
}

/// Parses the whole body; the counts, or the first error (used by
/// `crowsnest check metrics`).
pub fn validate(body: &[u8], format: Format) -> Result<ParseStats, ParseError> {
    let mut parser = Parser::new(body, format);
    while parser.next_entry()?.is_some() {}
    Ok(ParseStats {
        samples: parser.samples(),
        families: parser.families(),
    })
}
