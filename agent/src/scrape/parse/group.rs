//! OpenMetrics rules across samples: a family's samples come in groups (one
//! label set, ignoring `le`/`quantile`), each group is contiguous, a repeated
//! series keeps its timestamps in order, and a histogram group is complete
//! and consistent (a `+Inf` bucket, increasing `le`, cumulative counts,
//! count equal to the `+Inf` bucket, no sum without a count).
//!
//! State is one small struct plus a set of finished group keys per family,
//! reused across families, so this stays allocation-free once warm.

use std::collections::HashSet;

use super::LabelRef;
use super::family::Role;
use super::number::parse_float;
use crate::model::MetricType;

/// What the group rules see of one sample.
pub(super) struct Point<'s, 'a> {
    /// Index of the sample's family (changes when the family changes).
    pub family: usize,
    pub metric_type: MetricType,
    pub role: Role,
    pub labels: &'s [LabelRef<'a>],
    pub value: f64,
    pub series_text: &'a [u8],
    pub timestamp_ms: Option<i64>,
}

#[derive(Debug, Default)]
struct Histogram {
    last_le: Option<f64>,
    last_bucket: f64,
    inf_bucket: Option<f64>,
    negative_le: bool,
    count: Option<f64>,
    sum: Option<f64>,
}

/// Group tracking for one body.
#[derive(Debug, Default)]
pub(super) struct Groups<'a> {
    family: Option<usize>,
    metric_type: MetricType,
    key: u64,
    histogram: Histogram,
    finished: HashSet<u64>,
    last_series: &'a [u8],
    last_timestamp: Option<i64>,
}

fn is_histogram(t: MetricType) -> bool {
    matches!(t, MetricType::Histogram | MetricType::GaugeHistogram)
}

impl<'a> Groups<'a> {
    /// Checks one sample against the rules; on error, the index of the
    /// family concerned (the sample's, or the one whose group just ended) and the rule broken.
    pub(super) fn sample(&mut self, p: &Point<'_, 'a>) -> Result<(), (usize, &'static str)> {
        self.check_sample(p).map_err(|rule| (p.family, rule))?;
        let key = group_key(p.labels, p.metric_type);
        if self.family != Some(p.family) {
            self.finish()?;
            self.finished.clear();
            self.start(p.family, p.metric_type, key);
        } else if key != self.key {
            self.finish()?;
            self.finished.insert(self.key);
            if self.finished.contains(&key) {
                return Err((
                    p.family,
                    "samples of one label set must be contiguous within their family",
                ));
            }
            self.start(p.family, p.metric_type, key);
        }
        if is_histogram(self.metric_type) {
            self.histogram_sample(p).map_err(|rule| (p.family, rule))?;
        }
        Ok(())
    }

    fn check_sample(&mut self, p: &Point<'_, 'a>) -> Result<(), &'static str> {
        if p.series_text == self.last_series {
            match (self.last_timestamp, p.timestamp_ms) {
                (Some(prev), Some(ts)) if ts < prev => {
                    return Err("timestamps of a repeated series must not go backwards");
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Err("a repeated series needs a timestamp on every sample");
                }
                _ => {}
            }
        }
        self.last_series = p.series_text;
        self.last_timestamp = p.timestamp_ms;
        Ok(())
    }

    fn start(&mut self, family: usize, metric_type: MetricType, key: u64) {
        self.family = Some(family);
        self.metric_type = metric_type;
        self.key = key;
        self.histogram = Histogram::default();
    }

    fn histogram_sample(&mut self, p: &Point<'_, 'a>) -> Result<(), &'static str> {
        let h = &mut self.histogram;
        match p.role {
            Role::Bucket => {
                // A missing or invalid `le` is reported by the per-sample rules.
                let Some(le) = p
                    .labels
                    .iter()
                    .find(|l| l.name == "le")
                    .and_then(|l| parse_float(l.value.as_bytes()))
                else {
                    return Ok(());
                };
                if h.last_le.is_some_and(|prev| le <= prev) {
                    return Err("histogram buckets must be in increasing \"le\" order");
                }
                if h.last_le.is_some() && p.value < h.last_bucket {
                    return Err("histogram bucket counts must not decrease");
                }
                h.last_le = Some(le);
                h.last_bucket = p.value;
                h.negative_le |= le < 0.0;
                if le == f64::INFINITY {
                    h.inf_bucket = Some(p.value);
                }
            }
            Role::Count | Role::GCount => h.count = Some(p.value),
            Role::Sum | Role::GSum => h.sum = Some(p.value),
            _ => {}
        }
        Ok(())
    }

    /// Metadata for family `family` arrived: if that is another family, the
    /// current one is interrupted. Its group is closed, and a later return
    /// to it starts afresh (Prometheus accepts families split by metadata).
    pub(super) fn metadata(&mut self, family: usize) -> Result<(), (usize, &'static str)> {
        if self.family.is_some_and(|f| f != family) {
            self.finish()?;
            self.family = None;
            self.finished.clear();
        }
        Ok(())
    }

    /// Closes the current group: call when it ends (another group, family, or `# EOF`).
    pub(super) fn finish(&self) -> Result<(), (usize, &'static str)> {
        match self.family {
            Some(family) if is_histogram(self.metric_type) => {
                self.finish_histogram().map_err(|rule| (family, rule))
            }
            _ => Ok(()),
        }
    }

    fn finish_histogram(&self) -> Result<(), &'static str> {
        let h = &self.histogram;
        let Some(inf) = h.inf_bucket else {
            return Err("a histogram needs a bucket with le=\"+Inf\"");
        };
        if h.count.is_some_and(|c| c != inf) {
            return Err("histogram count must equal the +Inf bucket");
        }
        if h.sum.is_some() && h.count.is_none() {
            return Err("a histogram with a sum needs a count");
        }
        if h.sum.is_some_and(|s| s < 0.0) && !h.negative_le {
            return Err("a negative histogram sum needs negative buckets");
        }
        Ok(())
    }
}

/// Identity of a sample's group: its labels, order-independent, without the
/// label that tells samples of one point apart (`le`, `quantile`).
fn group_key(labels: &[LabelRef<'_>], t: MetricType) -> u64 {
    let skip = match t {
        MetricType::Histogram | MetricType::GaugeHistogram => "le",
        MetricType::Summary => "quantile",
        _ => "",
    };
    labels
        .iter()
        .filter(|l| l.name != skip)
        .map(|l| {
            mix(fnv1a(
                fnv1a(FNV_OFFSET, l.name.as_bytes()) ^ 0xff,
                l.value.as_bytes(),
            ))
        })
        .fold(0u64, u64::wrapping_add)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Spreads bits so that summing per-label hashes stays collision-resistant.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}
