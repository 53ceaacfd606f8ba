//! Turns per-cgroup kernel map values into samples, with series built once per cgroup and
//! stale markers when a cgroup disappears.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
};

use aya::{Ebpf, Pod};
use crowsnest_ebpf_common::{HISTOGRAM_BUCKETS, Histogram, bucket_upper_bound_ns};

use super::{cgroups::CgroupResolver, error::CollectorError};
use crate::model::{Labels, MetricType, Sample, Series, SeriesRef, stale_nan};

/// Histogram buckets exported: `le` from 2^10 ns (~1 µs) to 2^34 ns (~17 s). Finer buckets
/// carry no signal for scheduling or connect latency and each costs a series per cgroup; the
/// cumulative counts stay exact because lower buckets are folded in.
const EXPORTED_BUCKETS: std::ops::RangeInclusive<usize> = 10..=34;

#[derive(Debug, Default)]
struct CgroupSeries {
    series: HashMap<u32, SeriesRef>,
}

/// Samples of one read, plus the series cache that outlives reads.
#[derive(Debug)]
pub struct CgroupSamples {
    /// Shared by all collectors: the tree is walked once per read of all of them.
    resolver: Arc<Mutex<CgroupResolver>>,
    cache: HashMap<u64, CgroupSeries>,
    seen: HashSet<u64>,
    rescanned: bool,
    now_ms: i64,
    out: Vec<Sample>,
}

/// Emits the samples of one cgroup.
pub struct Emitter<'a> {
    path: Arc<str>,
    entry: &'a mut CgroupSeries,
    out: &'a mut Vec<Sample>,
    now_ms: i64,
}

impl CgroupSamples {
    /// An empty cache resolving ids with `resolver`.
    pub fn new(resolver: Arc<Mutex<CgroupResolver>>) -> Self {
        Self {
            resolver,
            cache: HashMap::new(),
            seen: HashSet::new(),
            rescanned: false,
            now_ms: 0,
            out: Vec::new(),
        }
    }

    /// Starts a read at `now_ms`. The caller refreshes the shared resolver first (see
    /// `Collectors::read_all`), so removed cgroups are noticed.
    pub fn begin(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        self.seen.clear();
        self.rescanned = false;
        self.out.clear();
    }

    /// An emitter for cgroup `id`, or `None` when the cgroup no longer exists.
    pub fn emitter(&mut self, id: u64) -> Option<Emitter<'_>> {
        let path = {
            let mut resolver = self.resolver.lock().unwrap_or_else(PoisonError::into_inner);
            match resolver.resolve(id) {
                Some(path) => Some(path),
                // A cgroup created since the tree was walked: look once more before deciding
                // "gone", which deletes the cgroup's kernel entries.
                None if !self.rescanned => {
                    self.rescanned = true;
                    resolver.rescan(true);
                    resolver.resolve(id)
                }
                None => None,
            }
        }?;
        self.seen.insert(id);
        Some(Emitter {
            path,
            entry: self.cache.entry(id).or_default(),
            out: &mut self.out,
            now_ms: self.now_ms,
        })
    }

    /// Ends the read: cgroups emitted before but not now get a stale marker on each series.
    pub fn finish(&mut self) -> &[Sample] {
        let (seen, out, now_ms) = (&self.seen, &mut self.out, self.now_ms);
        self.cache.retain(|id, entry| {
            let live = seen.contains(id);
            if !live {
                out.extend(entry.series.values().map(|series| Sample {
                    series: series.clone(),
                    timestamp_ms: now_ms,
                    value: stale_nan(),
                    extra: None,
                }));
            }
            live
        });
        &self.out
    }

    /// Iterates a per-cgroup map: `f` gets an emitter and the value of each live cgroup;
    /// entries of cgroups that no longer exist are deleted from the map (churn clean-up).
    pub fn for_each<V: Pod>(
        &mut self,
        ebpf: &mut Ebpf,
        map: &'static str,
        mut f: impl FnMut(&mut Emitter<'_>, &V),
    ) -> Result<(), CollectorError> {
        let map_err = |source| CollectorError::Map { map, source };
        let data = ebpf.map_mut(map).ok_or(CollectorError::MissingMap(map))?;
        let mut table = aya::maps::HashMap::<_, u64, V>::try_from(data).map_err(map_err)?;
        let mut gone = Vec::new();
        // Collect first: deleting while iterating restarts a BPF hash map walk.
        let entries: Vec<(u64, V)> = table.iter().filter_map(Result::ok).collect();
        for (id, value) in &entries {
            match self.emitter(*id) {
                Some(mut emitter) => f(&mut emitter, value),
                None => gone.push(*id),
            }
        }
        for id in gone {
            // Already gone (raced with another delete) is fine.
            let _ = table.remove(&id);
        }
        Ok(())
    }
}

impl Emitter<'_> {
    fn series(&mut self, slot: u32, make: impl FnOnce(&str) -> SeriesRef) -> SeriesRef {
        let path = &self.path;
        self.entry
            .series
            .entry(slot)
            .or_insert_with(|| make(path))
            .clone()
    }

    fn push(&mut self, series: SeriesRef, value: f64) {
        self.out.push(Sample {
            series,
            timestamp_ms: self.now_ms,
            value,
            extra: None,
        });
    }

    /// A counter sample `name{cgroup, labels…}` stored at `slot` of this cgroup's table.
    pub fn counter(&mut self, slot: u32, name: &str, labels: &[(&str, &str)], value: f64) {
        let series = self.series(slot, |path| {
            let mut set = Labels::from_pairs([("__name__", name), ("cgroup", path)]);
            for (k, v) in labels {
                set.set(k, v);
            }
            Series::new(set, MetricType::Counter)
        });
        self.push(series, value);
    }

    /// A Prometheus histogram in seconds (`name_bucket{le}`, `name_sum`, `name_count`) from a
    /// kernel log2 histogram in nanoseconds; uses slots `base .. base + HISTOGRAM_BUCKETS + 3` (buckets, +Inf, sum, count).
    pub fn histogram(&mut self, base: u32, name: &str, hist: &Histogram) {
        let mut cumulative = 0u64;
        for (i, count) in hist.buckets.iter().enumerate() {
            cumulative += count;
            if !EXPORTED_BUCKETS.contains(&i) {
                continue;
            }
            let Some(upper_ns) = bucket_upper_bound_ns(i) else {
                continue;
            };
            let le = format_le(upper_ns);
            let series = self.series(base + i as u32, |p| {
                hist_series(name, "_bucket", Some(&le), p)
            });
            self.push(series, cumulative as f64);
        }
        let total: u64 = hist.buckets.iter().sum();
        let top = base + HISTOGRAM_BUCKETS as u32;
        let inf = self.series(top, |p| hist_series(name, "_bucket", Some("+Inf"), p));
        self.push(inf, total as f64);
        let sum = self.series(top + 1, |p| hist_series(name, "_sum", None, p));
        self.push(sum, hist.sum_ns as f64 / 1e9);
        let count = self.series(top + 2, |p| hist_series(name, "_count", None, p));
        self.push(count, total as f64);
    }
}

fn hist_series(name: &str, suffix: &str, le: Option<&str>, path: &str) -> SeriesRef {
    let metric = format!("{name}{suffix}");
    let mut set = Labels::from_pairs([("__name__", metric.as_str()), ("cgroup", path)]);
    if let Some(le) = le {
        set.set("le", le);
    }
    Series::new(set, MetricType::Histogram)
}

/// `le` of a bucket bound in nanoseconds, in seconds.
fn format_le(ns: u64) -> String {
    format!("{}", ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples_for(path_dir: &std::path::Path) -> (CgroupSamples, u64) {
        use std::os::unix::fs::MetadataExt as _;
        let id = std::fs::metadata(path_dir).expect("test setup").ino();
        (
            CgroupSamples::new(Arc::new(Mutex::new(CgroupResolver::new(
                path_dir.to_path_buf(),
            )))),
            id,
        )
    }

    #[test]
    fn histogram_is_cumulative_in_seconds_and_stale_when_gone() {
        let dir = std::env::temp_dir().join(format!("crowsnest-samples-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test setup");
        let (mut samples, id) = samples_for(&dir);
        let mut hist = Histogram::ZERO;
        hist.buckets[3] = 2; // < 8 ns
        hist.buckets[11] = 5; // [1024, 2048) ns
        hist.buckets[39] = 1; // huge
        hist.sum_ns = 3_000_000_000;

        samples.begin(1000);
        samples
            .emitter(id)
            .expect("test setup")
            .histogram(0, "x_seconds", &hist);
        let out = samples.finish().to_vec();
        let get = |name: &str, le: Option<&str>| {
            out.iter()
                .find(|s| {
                    s.series.labels().get("__name__") == Some(name)
                        && s.series.labels().get("le") == le
                })
                .map(|s| s.value)
        };
        assert_eq!(get("x_seconds_bucket", Some("0.000001024")), Some(2.0));
        assert_eq!(get("x_seconds_bucket", Some("0.000002048")), Some(7.0));
        assert_eq!(get("x_seconds_bucket", Some("+Inf")), Some(8.0));
        assert_eq!(get("x_seconds_count", None), Some(8.0));
        assert_eq!(get("x_seconds_sum", None), Some(3.0));
        assert_eq!(out[0].series.labels().get("cgroup"), Some("/"));
        assert_eq!(out.len(), EXPORTED_BUCKETS.count() + 3);

        // Next read without this cgroup: every series goes stale.
        samples.begin(2000);
        let stale = samples.finish();
        assert_eq!(stale.len(), out.len());
        assert!(
            stale
                .iter()
                .all(|s| crate::model::is_stale_nan(s.value) && s.timestamp_ms == 2000)
        );
        std::fs::remove_dir_all(&dir).expect("test setup");
    }
}
