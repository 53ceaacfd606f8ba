//! Turns one scraped body into samples: parse, attach target labels, metric
//! relabeling, limits, and staleness, with a per-target series cache so an
//! unchanged series costs one comparison with the entry where the body had it
//! last time (see `slots`) and no label work. Family
//! metadata (HELP, UNIT), OpenMetrics created timestamps and exemplars ride
//! along (see `family`); a text-format body without them costs nothing extra.

use std::sync::Arc;

use super::parse::{Entry, Exemplar as ParsedExemplar, Format, ParseError, Parser, SampleEntry};
use crate::model::{Exemplar, Labels, Metadata, Sample, SampleExtra, Series, SeriesRef, stale_nan};
use crate::relabel::Rules;

mod family;
#[cfg(test)]
mod meta_tests;
mod slots;

use family::{FamilyCache, point_key};
use slots::Slots;

/// What a scrape must apply to each series (fixed for the life of a target).
#[derive(Debug, Clone)]
pub struct IngestRules {
    /// The target's labels (`job`, `instance`, …).
    pub target_labels: Labels,
    /// Prefer the exposition's labels on clashes.
    pub honor_labels: bool,
    /// Use exposition timestamps when present.
    pub honor_timestamps: bool,
    /// `metric_relabel_configs`.
    pub metric_relabel: Rules,
    /// Most samples per scrape after relabeling (0: unlimited).
    pub sample_limit: usize,
    /// Most labels per series (0: unlimited).
    pub label_limit: usize,
    /// Keep exemplars (some remote-write endpoint has `send_exemplars`).
    pub keep_exemplars: bool,
}

/// Why ingesting a body failed; the whole scrape is then discarded.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not valid exposition text.
    #[error("parsing the scrape failed: {0}")]
    Parse(#[from] ParseError),
    /// More samples than `sample_limit`.
    #[error("sample_limit exceeded: more than {limit} samples after metric relabeling")]
    SampleLimit {
        /// The configured limit.
        limit: usize,
    },
    /// A series with more labels than `label_limit`.
    #[error("label_limit exceeded: series {series} has {count} labels, limit is {limit}")]
    LabelLimit {
        /// The configured limit.
        limit: usize,
        /// How many labels the series has.
        count: usize,
        /// The offending series.
        series: String,
    },
}

impl IngestError {
    /// Short reason for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Parse(_) => "parse",
            Self::SampleLimit { .. } => "sample_limit",
            Self::LabelLimit { .. } => "label_limit",
        }
    }
}

/// A failed ingest: why, and how far it got. Like Prometheus, the synthetic
/// `scrape_samples_*` series of a failed scrape count the samples read
/// before the failure.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct IngestFailure {
    /// Why the body was rejected.
    pub error: IngestError,
    /// Counts up to the failure.
    pub stats: IngestStats,
}

impl IngestFailure {
    /// Short reason for metric labels.
    pub fn kind(&self) -> &'static str {
        self.error.kind()
    }
}

/// Counts of one scrape, for the synthetic `scrape_*` series.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestStats {
    /// Samples in the body (`scrape_samples_scraped`).
    pub scraped: usize,
    /// Samples kept after metric relabeling (`scrape_samples_post_metric_relabeling`).
    pub post_relabel: usize,
    /// Series not seen in the previous scrape (`scrape_series_added`).
    pub added: usize,
    /// Samples skipped because their series already had a sample in this scrape.
    pub duplicates: usize,
    /// Series marked stale because they disappeared.
    pub stale: usize,
}

struct CacheEntry {
    // None: metric relabeling drops this series.
    series: Option<SeriesRef>,
    // Scrape generations, 32-bit: only compared for equality with the
    // current one, and an entry unseen in a scrape goes (8 bytes a series).
    first_seen: u32,
    last_seen: u32,
    // Prometheus does not mark series stale that carried their own timestamp.
    explicit_ts: bool,
    // OpenMetrics: which point of its family the series is (`family::point_key`).
    point: u64,
}

/// The per-target series cache, keyed by the series' text in the body
/// (its [`SeriesKey`](super::parse::SeriesKey)).
/// After every scrape it holds exactly the series of that scrape, so its size
/// is bounded by the target's own series count.
#[derive(Default)]
pub struct SeriesCache {
    entries: Slots<CacheEntry>,
    families: FamilyCache,
    generation: u32,
}

impl SeriesCache {
    /// Number of cached series.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// Stale markers for every cached series, and an empty cache: used when
    /// a scrape fails or the target goes away. Only series of the last
    /// successful scrape are cached at that point, so only series that were
    /// actually sent go stale.
    pub fn mark_all_stale(&mut self, timestamp_ms: i64, out: &mut Vec<Sample>) -> usize {
        let mut stale = 0;
        self.entries.drain(|e| {
            if let (Some(series), false) = (e.series, e.explicit_ts) {
                out.push(Sample {
                    series,
                    timestamp_ms,
                    value: stale_nan(),
                    extra: None,
                });
                stale += 1;
            }
        });
        stale
    }
}

/// Parses `body` and appends its samples (and stale markers for series that
/// disappeared) to `out`. On error `out` is left as it was and the cache is
/// emptied after staling what the previous scrape sent.
pub fn ingest(
    cache: &mut SeriesCache,
    rules: &IngestRules,
    body: &[u8],
    format: Format,
    scrape_ts: i64,
    out: &mut Vec<Sample>,
) -> Result<IngestStats, IngestFailure> {
    let start_len = out.len();
    cache.generation = cache.generation.wrapping_add(1);
    let generation = cache.generation;
    let mut stats = IngestStats::default();
    match ingest_body(cache, rules, body, format, scrape_ts, out, &mut stats) {
        Ok(()) => {
            cache.families.retain_seen(generation);
            // Series of the previous scrape that are gone now go stale.
            cache.entries.finish(|e| {
                if e.last_seen == generation {
                    return true;
                }
                if let (Some(series), false) = (&e.series, e.explicit_ts) {
                    out.push(Sample {
                        series: series.clone(),
                        timestamp_ms: scrape_ts,
                        value: stale_nan(),
                        extra: None,
                    });
                    stats.stale += 1;
                }
                false
            });
            Ok(stats)
        }
        Err(error) => {
            out.truncate(start_len);
            // Forget what only this scrape introduced; stale the rest.
            cache.entries.retain(|e| e.first_seen != generation);
            stats.stale = cache.mark_all_stale(scrape_ts, out);
            Err(IngestFailure { error, stats })
        }
    }
}

fn ingest_body(
    cache: &mut SeriesCache,
    rules: &IngestRules,
    body: &[u8],
    format: Format,
    scrape_ts: i64,
    out: &mut Vec<Sample>,
    stats: &mut IngestStats,
) -> Result<(), IngestError> {
    let generation = cache.generation;
    let om = format == Format::OpenMetrics;
    let SeriesCache {
        entries, families, ..
    } = cache;
    let mut families = families.scrape(generation);
    let mut parser = Parser::new(body, format);
    // The parser skips the labels of a series found where the last scrape
    // had it (the usual case): they are only needed for a new series.
    loop {
        let expected = entries.expected();
        let Some(entry) = parser.next_entry_expecting(expected)? else {
            break;
        };
        let s = match entry {
            Entry::Sample(s) => s,
            Entry::Help { family, help } => {
                families.help(family, help);
                continue;
            }
            Entry::Type {
                family,
                metric_type,
            } => {
                families.set_type(family, metric_type);
                continue;
            }
            Entry::Unit { family, unit } => {
                families.unit(family, unit);
                continue;
            }
        };
        stats.scraped += 1;
        let timestamp_ms = match (rules.honor_timestamps, s.timestamp_ms) {
            (true, Some(ts)) => ts,
            _ => scrape_ts,
        };
        let explicit_ts = rules.honor_timestamps && s.timestamp_ms.is_some();
        // Unparsed labels mean the parser recognised the expected text.
        let key = match expected {
            Some(key) if !s.labels_parsed => key,
            _ => s.key(),
        };
        let (series, point) = match entries.get_mut(key, |e| e.last_seen != generation) {
            Some(e) => {
                if e.last_seen == generation {
                    stats.duplicates += 1;
                    continue;
                }
                e.last_seen = generation;
                e.explicit_ts = explicit_ts;
                if let Some(series) = &mut e.series {
                    families.refresh(series, &s.name, s.metric_type);
                }
                (e.series.clone(), e.point)
            }
            None => {
                // Unparsed labels only come with the text of the expected
                // entry, which `get_mut` finds first.
                debug_assert!(s.labels_parsed, "a known series must be in the cache");
                let series = build_series(rules, &s, families.metadata_for(&s.name))?;
                if series.is_some() {
                    stats.added += 1;
                }
                let point = if om { point_key(s.labels) } else { 0 };
                entries.insert(
                    key,
                    CacheEntry {
                        series: series.clone(),
                        first_seen: generation,
                        last_seen: generation,
                        explicit_ts,
                        point,
                    },
                );
                (series, point)
            }
        };
        let Some(series) = series else {
            // A dropped `_created` series still dates its point.
            if om {
                families.created(&s.name, point, s.value, None, out);
            }
            continue;
        };
        stats.post_relabel += 1;
        if rules.sample_limit > 0 && stats.post_relabel > rules.sample_limit {
            return Err(IngestError::SampleLimit {
                limit: rules.sample_limit,
            });
        }
        let mut sample = Sample::new(series, timestamp_ms, s.value);
        if rules.keep_exemplars
            && let Some(e) = &s.exemplar
        {
            sample.extra = Some(Arc::new(SampleExtra {
                created_ms: None,
                exemplar: Some(exemplar(e, timestamp_ms)),
            }));
        }
        if om {
            families.created(&s.name, point, s.value, Some(&mut sample), out);
        }
        out.push(sample);
    }
    Ok(())
}

/// An owned exemplar; without its own timestamp it takes the sample's, as
/// Prometheus does (remote write 2.0 requires one).
fn exemplar(e: &ParsedExemplar<'_, '_>, sample_ts: i64) -> Exemplar {
    Exemplar {
        labels: Labels::from_pairs(e.labels.iter().map(|l| (&*l.name, &*l.value))),
        value: e.value,
        timestamp_ms: e.timestamp_ms.unwrap_or(sample_ts),
    }
}

/// The slow path, once per new series: labels, target labels, relabeling.
fn build_series(
    rules: &IngestRules,
    s: &SampleEntry<'_, '_>,
    metadata: Option<Arc<Metadata>>,
) -> Result<Option<SeriesRef>, IngestError> {
    let mut labels = Labels::from_pairs(
        std::iter::once(("__name__", &*s.name))
            .chain(s.labels.iter().map(|l| (&*l.name, &*l.value))),
    );
    merge_target_labels(&mut labels, &rules.target_labels, rules.honor_labels);
    if !rules.metric_relabel.process(&mut labels) || labels.is_empty() {
        return Ok(None);
    }
    if rules.label_limit > 0 && labels.len() > rules.label_limit {
        return Err(IngestError::LabelLimit {
            limit: rules.label_limit,
            count: labels.len(),
            series: labels.to_string(),
        });
    }
    Ok(Some(Series::with_metadata(labels, s.metric_type, metadata)))
}

/// Prometheus' `mutateSampleLabels`: with `honor_labels` the exposition wins;
/// otherwise target labels win and clashing exposed labels are kept as
/// `exported_<name>` (`exported_exported_<name>` if that is taken too).
pub fn merge_target_labels(labels: &mut Labels, target: &Labels, honor_labels: bool) {
    for t in target {
        match labels.get(t.name) {
            None => labels.set(t.name, t.value),
            Some(_) if honor_labels => {}
            Some(exposed) => {
                let exposed = exposed.to_owned();
                let mut name = format!("exported_{}", t.name);
                while labels.get(&name).is_some() {
                    name.insert_str(0, "exported_");
                }
                labels.set(&name, &exposed);
                labels.set(t.name, t.value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_stale_nan;
    use crate::relabel::RelabelConfig;

    /// A sample as (series text, value, timestamp).
    type Rendered = (String, f64, i64);

    pub(super) fn rules() -> IngestRules {
        IngestRules {
            target_labels: Labels::from_pairs([("job", "j"), ("instance", "i:1")]),
            honor_labels: false,
            honor_timestamps: true,
            metric_relabel: Rules::default(),
            sample_limit: 0,
            label_limit: 0,
            keep_exemplars: false,
        }
    }

    fn run(
        cache: &mut SeriesCache,
        r: &IngestRules,
        body: &str,
        ts: i64,
    ) -> (Result<IngestStats, IngestFailure>, Vec<Rendered>) {
        let mut out = Vec::new();
        let res = ingest(cache, r, body.as_bytes(), Format::Prometheus, ts, &mut out);
        let rendered = out
            .iter()
            .map(|s| (s.series.labels().to_string(), s.value, s.timestamp_ms))
            .collect();
        (res, rendered)
    }

    #[test]
    fn target_labels_attach_and_clashes_become_exported() {
        let mut c = SeriesCache::default();
        let (res, out) = run(
            &mut c,
            &rules(),
            "m{job=\"x\",instance=\"y\",exported_job=\"z\",a=\"\"} 1\n",
            1000,
        );
        let stats = res.expect("ok");
        assert_eq!(
            stats,
            IngestStats {
                scraped: 1,
                post_relabel: 1,
                added: 1,
                duplicates: 0,
                stale: 0
            }
        );
        assert_eq!(
            out,
            [(r#"m{exported_exported_job="x", exported_instance="y", exported_job="z", instance="i:1", job="j"}"#.to_owned(), 1.0, 1000)]
        );
    }

    #[test]
    fn honor_labels_keeps_exposed_values() {
        let mut r = rules();
        r.honor_labels = true;
        let (_, out) = run(&mut SeriesCache::default(), &r, "m{job=\"x\"} 1\n", 5);
        assert_eq!(out[0].0, r#"m{instance="i:1", job="x"}"#);
    }

    #[test]
    fn timestamps_honoured_or_replaced() {
        let body = "a 1 123\nb 2\n";
        let (_, out) = run(&mut SeriesCache::default(), &rules(), body, 999);
        assert_eq!((out[0].2, out[1].2), (123, 999));
        let mut r = rules();
        r.honor_timestamps = false;
        let (_, out) = run(&mut SeriesCache::default(), &r, body, 999);
        assert_eq!((out[0].2, out[1].2), (999, 999));
    }

    #[test]
    fn vanished_series_go_stale_once_and_cache_is_reused() {
        let mut c = SeriesCache::default();
        let (_, first) = run(&mut c, &rules(), "a 1\nb 2\n", 1000);
        assert_eq!(first.len(), 2);
        let (res, second) = run(&mut c, &rules(), "a 3\n", 2000);
        assert_eq!(res.expect("ok").stale, 1);
        assert_eq!(second.len(), 2);
        assert_eq!(
            second[0],
            (r#"a{instance="i:1", job="j"}"#.to_owned(), 3.0, 2000)
        );
        assert!(second[1].1.is_nan() && second[1].0.starts_with("b{"));
        assert_eq!(c.len(), 1);
        let (res, third) = run(&mut c, &rules(), "a 4\n", 3000);
        assert_eq!((res.expect("ok").added, third.len()), (0, 1));
    }

    #[test]
    fn series_with_own_timestamps_are_not_marked_stale() {
        let mut c = SeriesCache::default();
        run(&mut c, &rules(), "a 1 100\n", 1000).0.expect("ok");
        let (_, out) = run(&mut c, &rules(), "", 2000);
        assert!(out.is_empty());
    }

    #[test]
    fn failed_parse_sends_nothing_and_stales_the_previous_scrape() {
        let mut c = SeriesCache::default();
        run(&mut c, &rules(), "a 1\nb 1\n", 1000).0.expect("ok");
        let mut out = Vec::new();
        let err = ingest(
            &mut c,
            &rules(),
            b"a 2\nc 3\nbroken{ 1\n",
            Format::Prometheus,
            2000,
            &mut out,
        )
        .expect_err("must fail");
        assert_eq!(err.kind(), "parse");
        assert_eq!(out.len(), 2, "stale markers for a and b only");
        assert!(
            out.iter()
                .all(|s| is_stale_nan(s.value) && s.timestamp_ms == 2000)
        );
        assert!(c.is_empty());
    }

    #[test]
    fn duplicates_keep_the_first_sample() {
        let (res, out) = run(&mut SeriesCache::default(), &rules(), "a 1\na 2\n", 1);
        assert_eq!(res.expect("ok").duplicates, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, 1.0);
    }

    #[test]
    fn metric_relabel_drop_and_limits() {
        let mut r = rules();
        let cfg: Vec<RelabelConfig> =
            serde_yaml::from_str("- {source_labels: [__name__], regex: drop_.*, action: drop}")
                .expect("yaml");
        r.metric_relabel = Rules::compile(&cfg).expect("compile");
        r.sample_limit = 2;
        let (res, out) = run(
            &mut SeriesCache::default(),
            &r,
            "drop_me 1\nkeep 1\nkeep2 1\n",
            1,
        );
        let stats = res.expect("within limit");
        assert_eq!((stats.scraped, stats.post_relabel, out.len()), (3, 2, 2));
        let (res, out) = run(&mut SeriesCache::default(), &r, "a 1\nb 1\nc 1\n", 1);
        assert_eq!(res.expect_err("limit").kind(), "sample_limit");
        assert!(out.is_empty());
        let mut r = rules();
        r.label_limit = 3;
        let (res, _) = run(&mut SeriesCache::default(), &r, "a{x=\"1\",y=\"2\"} 1\n", 1);
        assert_eq!(res.expect_err("label limit").kind(), "label_limit");
    }

    #[test]
    fn a_cache_entry_stays_32_bytes() {
        // With its 24-byte key, 56 bytes a cached series.
        assert!(std::mem::size_of::<CacheEntry>() <= 32);
    }
}
