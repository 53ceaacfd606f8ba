//! Per-family state of a scrape: the HELP/UNIT metadata series share, and
//! OpenMetrics `_created` values turned into created (start) timestamps of
//! the samples of the same point.
//!
//! Metadata follows Prometheus' scrape loop: the last HELP/TYPE/UNIT lines
//! describe the family that follows, and a sample belongs to it when its name
//! is the family name or the family name plus a suffix its type gives its
//! samples (`isSeriesPartOfFamily`). The `Arc` of a family is kept across
//! scrapes while its text is unchanged, so a cached series checks its
//! metadata with one pointer comparison.

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;

use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::model::{Metadata, MetricType, Sample, SampleExtra, Series, SeriesRef};
use crate::scrape::parse::LabelRef;

/// Label names that tell the samples of one point apart; a point's
/// `_created` line has neither.
const POINT_LABELS: [&str; 2] = ["le", "quantile"];

struct Known {
    metadata: Arc<Metadata>,
    seen: u32,
}

/// What a target keeps between scrapes: family metadata and reusable buffers.
#[derive(Default)]
pub(super) struct FamilyCache {
    known: FxHashMap<Box<str>, Known>,
    // (index in the scrape's output, point key) of the current family's samples.
    points: Vec<(usize, u64)>,
    // (point key, created ms) of `_created` lines seen before their samples.
    created: Vec<(u64, i64)>,
}

impl FamilyCache {
    /// The state of one scrape over a body living for `'a`.
    pub(super) fn scrape<'a>(&mut self, generation: u32) -> ScrapeFamilies<'a, '_> {
        self.points.clear();
        self.created.clear();
        ScrapeFamilies {
            cache: self,
            generation,
            name: "",
            metric_type: MetricType::Unknown,
            help: None,
            unit: None,
            resolved: None,
        }
    }

    /// Forgets families not seen in the scrape of `generation`.
    pub(super) fn retain_seen(&mut self, generation: u32) {
        self.known.retain(|_, k| k.seen == generation);
    }
}

/// The family the last metadata lines described, during one scrape.
pub(super) struct ScrapeFamilies<'a, 'c> {
    cache: &'c mut FamilyCache,
    generation: u32,
    name: &'a str,
    metric_type: MetricType,
    help: Option<Cow<'a, str>>,
    unit: Option<&'a str>,
    // The family's shared metadata once looked up; `Some(None)`: it has none.
    resolved: Option<Option<Arc<Metadata>>>,
}

impl<'a> ScrapeFamilies<'a, '_> {
    fn switch_to(&mut self, family: &'a str) {
        if self.name != family {
            self.name = family;
            self.metric_type = MetricType::Unknown;
            self.help = None;
            self.unit = None;
            self.cache.points.clear();
            self.cache.created.clear();
        }
        self.resolved = None;
    }

    /// A `# HELP` line.
    pub(super) fn help(&mut self, family: &'a str, help: Cow<'a, str>) {
        self.switch_to(family);
        self.help = Some(help);
    }

    /// A `# TYPE` line.
    pub(super) fn set_type(&mut self, family: &'a str, metric_type: MetricType) {
        self.switch_to(family);
        self.metric_type = metric_type;
    }

    /// A `# UNIT` line.
    pub(super) fn unit(&mut self, family: &'a str, unit: &'a str) {
        self.switch_to(family);
        self.unit = Some(unit);
    }

    /// The current family's shared metadata, reusing last scrape's `Arc`
    /// when the text is unchanged (allocates only when it changed).
    fn current(&mut self) -> Option<&Arc<Metadata>> {
        if self.resolved.is_none() {
            let help = self.help.as_deref().unwrap_or("");
            let unit = self.unit.unwrap_or("");
            let found = if help.is_empty() && unit.is_empty() {
                None
            } else {
                Some(self.cache.lookup(self.name, self.generation, help, unit))
            };
            self.resolved = Some(found);
        }
        self.resolved.as_ref().and_then(Option::as_ref)
    }
}

impl FamilyCache {
    /// The shared metadata of family `name`: last scrape's when the text is
    /// the same, a new one otherwise.
    fn lookup(&mut self, name: &str, generation: u32, help: &str, unit: &str) -> Arc<Metadata> {
        if let Some(k) = self.known.get_mut(name) {
            k.seen = generation;
            if k.metadata.help == help && k.metadata.unit == unit {
                return Arc::clone(&k.metadata);
            }
            k.metadata = Arc::new(Metadata {
                help: help.to_owned(),
                unit: unit.to_owned(),
            });
            return Arc::clone(&k.metadata);
        }
        let metadata = Arc::new(Metadata {
            help: help.to_owned(),
            unit: unit.to_owned(),
        });
        self.known.insert(
            name.into(),
            Known {
                metadata: Arc::clone(&metadata),
                seen: generation,
            },
        );
        metadata
    }
}

impl ScrapeFamilies<'_, '_> {
    /// Metadata for a new series named `name`.
    pub(super) fn metadata_for(&mut self, name: &str) -> Option<Arc<Metadata>> {
        if belongs(name, self.name, self.metric_type) {
            self.current().cloned()
        } else {
            None
        }
    }

    /// Rebuilds a cached series whose family metadata or type changed since
    /// it was built. The common case is one pointer comparison.
    pub(super) fn refresh(&mut self, series: &mut SeriesRef, name: &str, metric_type: MetricType) {
        let same = |s: &Series, m: Option<&Arc<Metadata>>| {
            s.metric_type() == metric_type
                && match (s.metadata(), m) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (a, b) => a.is_none() && b.is_none(),
                }
        };
        if same(series, self.current()) {
            return;
        }
        let expected = self.metadata_for(name);
        if !same(series, expected.as_ref()) {
            *series = Series::with_metadata(series.labels().clone(), metric_type, expected);
        }
    }

    /// OpenMetrics created timestamps. `sample` (about to be pushed at the
    /// end of `out`, or `None` when relabeling dropped its series) gets the
    /// created time of its point if that was already seen; a `_created`
    /// line sets it on the point's earlier samples in `out`.
    pub(super) fn created(
        &mut self,
        name: &str,
        point: u64,
        value: f64,
        sample: Option<&mut Sample>,
        out: &mut [Sample],
    ) {
        if !matches!(
            self.metric_type,
            MetricType::Counter | MetricType::Histogram | MetricType::Summary
        ) || !belongs(name, self.name, self.metric_type)
        {
            return;
        }
        let is_created = name
            .strip_prefix(self.name)
            .is_some_and(|rest| rest == "_created");
        if !is_created {
            let Some(sample) = sample else { return };
            if let Some(&(_, ms)) = self.cache.created.iter().find(|(k, _)| *k == point) {
                set_created(sample, ms, &mut None);
            }
            self.cache.points.push((out.len(), point));
            return;
        }
        if !value.is_finite() {
            return;
        }
        // OpenMetrics writes seconds; the protocol wants ms, and 0 means unset.
        #[allow(
            clippy::cast_possible_truncation,
            reason = "saturating float to int conversion is the intent"
        )]
        let ms = match (value * 1000.0).round() as i64 {
            0 => 1,
            ms => ms,
        };
        let mut shared = None;
        for &(i, key) in &self.cache.points {
            if key == point
                && let Some(s) = out.get_mut(i)
            {
                set_created(s, ms, &mut shared);
            }
        }
        self.cache.created.push((point, ms));
    }
}

/// Sets the created time; samples without other extras share one allocation.
fn set_created(s: &mut Sample, ms: i64, shared: &mut Option<Arc<SampleExtra>>) {
    match &mut s.extra {
        Some(extra) => Arc::make_mut(extra).created_ms = Some(ms),
        None => {
            let extra = shared.get_or_insert_with(|| {
                Arc::new(SampleExtra {
                    created_ms: Some(ms),
                    exemplar: None,
                })
            });
            s.extra = Some(Arc::clone(extra));
        }
    }
}

/// Identity of a sample's point: its labels without `le`/`quantile`, in
/// any order.
pub(super) fn point_key(labels: &[LabelRef<'_>]) -> u64 {
    labels
        .iter()
        .filter(|l| !POINT_LABELS.contains(&l.name.as_ref()) && !l.value.is_empty())
        .map(|l| FxBuildHasher.hash_one((l.name.as_ref(), l.value.as_ref())))
        .fold(0u64, u64::wrapping_add)
}

/// Prometheus' `isSeriesPartOfFamily`, plus `_created` for the types that
/// have it (crowsnest sends `_created` as its own series, like Prometheus 2).
fn belongs(name: &str, family: &str, t: MetricType) -> bool {
    if family.is_empty() || !name.starts_with(family) {
        return false;
    }
    let strip = |suffixes: &[&str]| {
        suffixes
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name)
    };
    let (family, base) = match t {
        MetricType::Counter => (
            family.strip_suffix("_total").unwrap_or(family),
            strip(&["_total", "_created"]),
        ),
        MetricType::Histogram => (family, strip(&["_bucket", "_sum", "_count", "_created"])),
        MetricType::GaugeHistogram => (family, strip(&["_bucket", "_gsum", "_gcount"])),
        MetricType::Summary => (family, strip(&["_sum", "_count", "_created"])),
        MetricType::Info => (
            family.strip_suffix("_info").unwrap_or(family),
            strip(&["_info"]),
        ),
        MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => (family, name),
    };
    family == base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_membership_follows_prometheus() {
        use MetricType as T;
        let cases = [
            ("foo_total", "foo", T::Counter, true),
            ("foo_created", "foo", T::Counter, true),
            ("foo_total", "foo_total", T::Counter, true),
            ("foo", "foo", T::Counter, true),
            ("foo_bucket", "foo", T::Histogram, true),
            ("foo_sum", "foo", T::Histogram, true),
            ("foo_count", "foo", T::Summary, true),
            ("foo_bucket", "foo", T::Summary, false),
            ("foo_gsum", "foo", T::GaugeHistogram, true),
            ("foo_info", "foo", T::Info, true),
            ("foo_total", "foo", T::Gauge, false),
            ("foo_bar", "foo", T::Histogram, false),
            ("foobar_sum", "foo", T::Histogram, false),
            ("bar", "foo", T::Unknown, false),
            ("foo", "", T::Unknown, false),
        ];
        for (name, family, t, want) in cases {
            assert_eq!(belongs(name, family, t), want, "{name} in {family} ({t:?})");
        }
    }

    #[test]
    fn point_key_ignores_le_quantile_and_order() {
        let l = |n: &'static str, v: &'static str| LabelRef {
            name: n.into(),
            value: v.into(),
        };
        let a = point_key(&[l("a", "1"), l("b", "2"), l("le", "0.5")]);
        let b = point_key(&[l("b", "2"), l("a", "1")]);
        let c = point_key(&[l("a", "1"), l("b", "3")]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(point_key(&[l("quantile", "0.9")]), point_key(&[]));
    }
}
