//! A bounded per-series cache, keyed by series identity.
//!
//! Scrape caches hand out the same `Arc<Series>` for an unchanged series, so
//! a hit is usually a pointer comparison; when the pointer differs (a series
//! rebuilt elsewhere, or a hash collision) the label sets are compared, so a
//! hit is never wrong. Memory stays bounded with two generations: when the
//! current map is full it becomes the previous one (dropping the older), and
//! hits in the previous map are promoted. Series that stop appearing age out
//! after two rotations without any per-entry bookkeeping.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::model::{Series, SeriesRef};

/// The key is already a good 64-bit hash ([`Series::hash`]); hashing it again
/// would only cost time.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for our keys; fold anything else in anyway.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map<V> = HashMap<u64, Slot<V>, BuildHasherDefault<IdentityHasher>>;

struct Slot<V> {
    series: SeriesRef,
    value: V,
}

fn same(a: &SeriesRef, b: &Series) -> bool {
    a.same_as(b)
}

/// Bounded map from a series to a value derived from it.
pub(crate) struct SeriesCache<V> {
    current: Map<V>,
    previous: Map<V>,
    generation_size: usize,
}

impl<V> SeriesCache<V> {
    /// A cache holding at most `2 * generation_size` series.
    pub(crate) fn new(generation_size: usize) -> Self {
        Self {
            current: Map::default(),
            previous: Map::default(),
            generation_size: generation_size.max(1),
        }
    }

    /// The cached value for `series`, computing it with `make` on a miss.
    pub(crate) fn get_or_insert_with(
        &mut self,
        series: &SeriesRef,
        make: impl FnOnce(&Series) -> V,
    ) -> &V {
        let key = series.hash();
        if self.current.len() >= self.generation_size && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        match self.current.entry(key) {
            Entry::Occupied(mut slot) => {
                if !same(&slot.get().series, series) {
                    // A hash collision: the newer series takes the slot.
                    slot.insert(Slot {
                        series: Arc::clone(series),
                        value: make(series),
                    });
                } else if !Arc::ptr_eq(&slot.get().series, series) {
                    // Same labels, new allocation: remember the new pointer so
                    // the next hit is a pointer comparison again.
                    slot.get_mut().series = Arc::clone(series);
                }
                &slot.into_mut().value
            }
            Entry::Vacant(vacant) => {
                let value = match self.previous.remove(&key) {
                    Some(old) if same(&old.series, series) => old.value,
                    _ => make(series),
                };
                &vacant
                    .insert(Slot {
                        series: Arc::clone(series),
                        value,
                    })
                    .value
            }
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.current.clear();
        self.previous.clear();
    }

    /// Number of cached series.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, MetricType};

    fn series(name: &str) -> SeriesRef {
        Series::new(Labels::from_pairs([("__name__", name)]), MetricType::Gauge)
    }

    #[test]
    fn hit_by_pointer_or_equal_labels_and_computes_once() {
        let mut cache = SeriesCache::new(16);
        let a = series("a");
        let mut calls = 0;
        assert_eq!(
            *cache.get_or_insert_with(&a, |_| {
                calls += 1;
                1
            }),
            1
        );
        assert_eq!(
            *cache.get_or_insert_with(&a, |_| {
                calls += 1;
                2
            }),
            1
        );
        // A different allocation with equal labels is the same series.
        assert_eq!(
            *cache.get_or_insert_with(&series("a"), |_| {
                calls += 1;
                3
            }),
            1
        );
        assert_eq!(calls, 1);
    }

    #[test]
    fn stays_bounded_and_promotes_recent_entries() {
        let mut cache = SeriesCache::new(4);
        let all: Vec<_> = (0..100).map(|i| series(&format!("s{i}"))).collect();
        for s in &all {
            cache.get_or_insert_with(s, |s| s.hash());
            assert!(cache.len() <= 8);
        }
        // The last series is still cached: no recomputation.
        let last = &all[99];
        assert_eq!(*cache.get_or_insert_with(last, |_| 0), last.hash());
    }

    #[test]
    fn colliding_hash_never_returns_the_other_series_value() {
        // Two series forced into the same key through a tiny map is not
        // possible with real hashes, so check the comparison directly.
        let a = series("a");
        let b = series("b");
        assert!(same(&a, &a));
        assert!(!same(&a, &b));
    }
}
