//! Per-endpoint series rewriting: external labels, then `write_relabel_configs`
//! (Prometheus' order), computed once per series and cached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::cache::SeriesCache;
use crate::model::{Labels, Series, SeriesRef};
use crate::relabel::Rules;

/// Independent cache locks, so concurrent scrapes rarely wait on each other.
const STRIPES: usize = 16;

/// The rewriting rules of one endpoint.
#[derive(Debug)]
pub(crate) struct SeriesRules {
    external_labels: Labels,
    write_relabel: Rules,
    generation: u64,
}

impl SeriesRules {
    /// True when every series maps to itself (no external labels, no write
    /// relabeling).
    pub(crate) fn is_identity(&self) -> bool {
        self.external_labels.is_empty() && self.write_relabel.is_empty()
    }

    /// The final series for `series`, or `None` when relabeling drops it.
    fn rewrite(&self, series: &Series) -> Option<SeriesRef> {
        let mut labels = series.labels().clone();
        for l in &self.external_labels {
            if labels.get(l.name).is_none() {
                labels.set(l.name, l.value);
            }
        }
        // Labels keeps itself sorted, unique and free of empty values; the
        // remaining 1.0 rules (name syntax) are checked by the encoder.
        (self.write_relabel.process(&mut labels) && !labels.is_empty())
            .then(|| series.relabeled(labels))
    }
}

struct Stripe {
    generation: u64,
    cache: SeriesCache<Option<SeriesRef>>,
}

/// Maps input series to the series an endpoint sends, with a bounded cache.
pub(crate) struct SeriesMapper {
    rules: RwLock<Arc<SeriesRules>>,
    next_generation: AtomicU64,
    stripes: Box<[Mutex<Stripe>]>,
}

impl SeriesMapper {
    /// A mapper caching up to about `2 * cache_size` series.
    pub(crate) fn new(external_labels: Labels, write_relabel: Rules, cache_size: usize) -> Self {
        let per_stripe = cache_size.div_ceil(STRIPES);
        Self {
            rules: RwLock::new(Arc::new(SeriesRules {
                external_labels,
                write_relabel,
                generation: 0,
            })),
            next_generation: AtomicU64::new(1),
            stripes: (0..STRIPES)
                .map(|_| {
                    Mutex::new(Stripe {
                        generation: 0,
                        cache: SeriesCache::new(per_stripe),
                    })
                })
                .collect(),
        }
    }

    /// Swaps the rules; cached results of the old ones are discarded lazily.
    pub(crate) fn set_rules(&self, external_labels: Labels, write_relabel: Rules) {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let rules = Arc::new(SeriesRules {
            external_labels,
            write_relabel,
            generation,
        });
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = rules;
    }

    /// The rules in force.
    pub(crate) fn rules(&self) -> Arc<SeriesRules> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The final series of `series` under `rules` (from [`Self::rules`]).
    pub(crate) fn map(&self, rules: &SeriesRules, series: &SeriesRef) -> Option<SeriesRef> {
        if rules.external_labels.is_empty() && rules.write_relabel.is_empty() {
            // Nothing to rewrite: no lock, no cache entry.
            return Some(Arc::clone(series));
        }
        // Stripe choice only needs to be stable per series.
        let stripe = self.stripes.get((series.hash() >> 58) as usize % STRIPES)?;
        let mut stripe = stripe.lock().unwrap_or_else(PoisonError::into_inner);
        if stripe.generation != rules.generation {
            stripe.cache.clear();
            stripe.generation = rules.generation;
        }
        stripe
            .cache
            .get_or_insert_with(series, |s| rules.rewrite(s))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetricType;

    fn series(pairs: &[(&str, &str)]) -> SeriesRef {
        Series::new(
            Labels::from_pairs(pairs.iter().copied()),
            MetricType::Counter,
        )
    }

    #[test]
    fn external_labels_fill_only_missing_names_and_results_are_cached() {
        let m = SeriesMapper::new(
            Labels::from_pairs([("cluster", "c1"), ("job", "ext")]),
            Rules::default(),
            64,
        );
        let input = series(&[("__name__", "up"), ("job", "node")]);
        let rules = m.rules();
        let out = m.map(&rules, &input).expect("kept");
        assert_eq!(
            out.labels(),
            &Labels::from_pairs([("__name__", "up"), ("cluster", "c1"), ("job", "node")])
        );
        assert_eq!(out.metric_type(), MetricType::Counter);
        let again = m.map(&rules, &input).expect("kept");
        assert!(Arc::ptr_eq(&out, &again), "second lookup is a cache hit");
    }

    #[test]
    fn rewritten_series_keep_type_help_and_unit() {
        let m = SeriesMapper::new(
            Labels::from_pairs([("cluster", "c1")]),
            Rules::default(),
            64,
        );
        let meta = Arc::new(crate::model::Metadata {
            help: "Requests.".to_owned(),
            unit: "requests".to_owned(),
        });
        let input = Series::with_metadata(
            Labels::from_pairs([("__name__", "req_total")]),
            MetricType::Counter,
            Some(Arc::clone(&meta)),
        );
        let out = m.map(&m.rules(), &input).expect("kept");
        assert_eq!(out.labels().get("cluster"), Some("c1"));
        assert_eq!((out.help(), out.unit()), ("Requests.", "requests"));
        assert!(Arc::ptr_eq(out.metadata().expect("kept"), &meta));
        // New help for the same labels is a different series to the cache.
        let changed = Series::with_metadata(
            input.labels().clone(),
            MetricType::Counter,
            Some(Arc::new(crate::model::Metadata {
                help: "All requests.".to_owned(),
                unit: "requests".to_owned(),
            })),
        );
        assert_eq!(
            m.map(&m.rules(), &changed).expect("kept").help(),
            "All requests."
        );
    }

    #[test]
    fn without_rules_the_input_series_passes_through_uncached() {
        let m = SeriesMapper::new(Labels::new(), Rules::default(), 64);
        let input = series(&[("__name__", "up")]);
        let out = m.map(&m.rules(), &input).expect("kept");
        assert!(Arc::ptr_eq(&out, &input));
        assert!(
            m.stripes
                .iter()
                .all(|s| s.lock().expect("lock").cache.len() == 0)
        );
    }

    #[test]
    fn new_rules_replace_cached_results() {
        let m = SeriesMapper::new(
            Labels::from_pairs([("cluster", "c1")]),
            Rules::default(),
            64,
        );
        let input = series(&[("__name__", "up")]);
        let first = m.map(&m.rules(), &input).expect("kept");
        m.set_rules(Labels::from_pairs([("cluster", "c2")]), Rules::default());
        let second = m.map(&m.rules(), &input).expect("kept");
        assert_eq!(first.labels().get("cluster"), Some("c1"));
        assert_eq!(second.labels().get("cluster"), Some("c2"));
    }
}
