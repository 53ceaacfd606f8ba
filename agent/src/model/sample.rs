//! Series identity and samples.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::{InvalidLabels, Labels};

/// The bit pattern Prometheus uses to mark a series stale (a signalling NaN
/// distinct from the NaN a target may legitimately expose).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True when `v` is the staleness marker (not any other NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The type of a metric family, as declared by `# TYPE` (OpenMetrics names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// No `# TYPE` line, or `untyped`/`unknown`.
    #[default]
    Unknown,
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram (`_bucket`, `_sum`, `_count`).
    Histogram,
    /// Gauge histogram (`_bucket`, `_gsum`, `_gcount`).
    GaugeHistogram,
    /// Summary (quantiles, `_sum`, `_count`).
    Summary,
    /// Info (`_info`).
    Info,
    /// State set.
    StateSet,
}

impl MetricType {
    /// The lower-case name used in expositions and status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
        }
    }
}

/// `# HELP` and `# UNIT` of a metric family. One allocation is shared by
/// every series of the family and reused across scrapes while the text stays
/// the same, so an unchanged series carries it at no cost.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// The help text (empty when the family has none).
    pub help: String,
    /// The unit (empty when the family has none).
    pub unit: String,
}

/// A series after all relabeling: immutable and shared, with its identity
/// hash computed once. Scrape caches hand out the same `Arc` on every scrape
/// of an unchanged series, so later stages can cache per series cheaply.
///
/// The fields are in a fixed order, hottest first. With 100k series they do
/// not stay in cache between stages, and every sample clones and drops the
/// `Arc` (its counts are the 16 bytes before these fields): the scrape's
/// checks of type and metadata then fall in the line the clone loads anyway,
/// and in half the allocations (96 bytes each, so every other one starts a
/// cache line) so does everything but the enrich memo.
#[derive(Debug)]
#[repr(C)]
pub struct Series {
    metadata: Option<Arc<Metadata>>,
    metric_type: MetricType,
    /// True once a request found the labels fit to send (their pairs hold
    /// the wire encoding, so only the verdict is kept).
    sendable: AtomicBool,
    /// The series' id in the on-disk queue's active segment, as a hint the
    /// queue checks against its own table (so a stale or foreign hint is
    /// only a miss, never a wrong id).
    queue_hint: AtomicU32,
    hash: u64,
    labels: Labels,
    /// `generation + 1` when the recorded result is "unchanged" (0: not
    /// recorded): the common case, read without taking the lock.
    unchanged_at: AtomicU64,
    /// What the enrich stage made of the series once it settled: kept on
    /// the series, so the stage needs no map entry for it and, while the pod
    /// cache does not change, no lookup at all.
    enriched: Mutex<Memo>,
}

impl PartialEq for Series {
    fn eq(&self, other: &Self) -> bool {
        // The sendable verdict is derived from the labels.
        self.hash == other.hash
            && self.metric_type == other.metric_type
            && self.labels == other.labels
            && self.same_metadata(other)
    }
}

/// What the enrich stage made of a settled series (its pod, or that it has
/// none), recorded on the series itself.
#[derive(Debug, Clone)]
pub struct Enriched {
    /// The pod-cache generation the result was recorded at.
    pub generation: u64,
    /// The series it becomes (`None`: it passes unchanged).
    pub output: Option<SeriesRef>,
    /// From when a pod-cache change may be looked at again (`None`: the
    /// result is final).
    pub recheck_after: Option<Instant>,
}

/// [`Enriched`] as a series stores it: 24 bytes instead of 32, since every
/// series carries one (the recheck time in whole seconds of [`epoch`]).
#[derive(Debug, Default)]
struct Memo {
    recorded: bool,
    generation: u64,
    output: Option<SeriesRef>,
    /// Seconds since [`epoch`], rounded up; `u32::MAX`: never.
    recheck_after: u32,
}

impl Memo {
    fn of(e: Option<Enriched>) -> Self {
        let Some(e) = e else {
            return Self::default();
        };
        let recheck_after = e.recheck_after.map_or(u32::MAX, |t| {
            let since = t.saturating_duration_since(epoch());
            let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX - 1)
        });
        Self {
            recorded: true,
            generation: e.generation,
            output: e.output,
            recheck_after,
        }
    }

    fn get(&self) -> Option<Enriched> {
        self.recorded.then(|| Enriched {
            generation: self.generation,
            output: self.output.clone(),
            recheck_after: (self.recheck_after != u32::MAX)
                .then(|| epoch() + Duration::from_secs(u64::from(self.recheck_after))),
        })
    }
}

/// The process-wide origin of [`Memo`]'s recheck times.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Shared handle to a [`Series`].
pub type SeriesRef = Arc<Series>;

impl Series {
    /// Wraps a final label set.
    pub fn new(labels: Labels, metric_type: MetricType) -> SeriesRef {
        Self::with_metadata(labels, metric_type, None)
    }

    /// Wraps a final label set with its family's help and unit.
    pub fn with_metadata(
        labels: Labels,
        metric_type: MetricType,
        metadata: Option<Arc<Metadata>>,
    ) -> SeriesRef {
        let hash = labels.stable_hash();
        Arc::new(Self {
            labels,
            hash,
            metric_type,
            sendable: AtomicBool::new(false),
            enriched: Mutex::default(),
            unchanged_at: AtomicU64::new(0),
            queue_hint: AtomicU32::new(u32::MAX),
            metadata,
        })
    }

    /// The same family (type, help, unit) under other labels: what later
    /// stages (enrichment, external labels, write relabeling) build.
    pub fn relabeled(&self, labels: Labels) -> SeriesRef {
        Self::with_metadata(labels, self.metric_type, self.metadata.clone())
    }

    /// True when `other` has the same labels, type and metadata: caches
    /// keyed by series use it so a family whose HELP changed is rebuilt.
    pub fn same_as(&self, other: &Series) -> bool {
        std::ptr::eq(self, other)
            || (self.labels == other.labels
                && self.metric_type == other.metric_type
                && self.same_metadata(other))
    }

    fn same_metadata(&self, other: &Series) -> bool {
        match (&self.metadata, &other.metadata) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            (a, b) => a.is_none() && b.is_none(),
        }
    }

    /// The series' labels (sorted, no empty values).
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Identity hash of the label set ([`Labels::stable_hash`]).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Type of the family the series belongs to.
    pub fn metric_type(&self) -> MetricType {
        self.metric_type
    }

    /// The labels, once found fit for remote write 1.0, or why they cannot
    /// be sent. `validate` runs until it passes once: for a valid set on
    /// first use only, for an invalid one (rare: an eBPF or relabeling bug)
    /// on every use, so the series does not carry the error. Only the remote
    /// write encoders call this, always with the same function.
    pub fn wire_labels(
        &self,
        validate: impl FnOnce(&Labels) -> Result<(), InvalidLabels>,
    ) -> Result<&Labels, InvalidLabels> {
        if !self.sendable.load(Ordering::Relaxed) {
            validate(&self.labels)?;
            self.sendable.store(true, Ordering::Relaxed);
        }
        Ok(&self.labels)
    }

    /// The enrich stage's result if it was recorded at `generation`:
    /// `Some(None)` when the series passes unchanged, `Some(Some(s))` when it
    /// becomes `s`.
    pub fn enriched(&self, generation: u64) -> Option<Option<SeriesRef>> {
        if self.passes_unchanged(generation) {
            return Some(None);
        }
        let memo = self.enriched.lock().unwrap_or_else(PoisonError::into_inner);
        (memo.recorded && memo.generation == generation).then(|| memo.output.clone())
    }

    /// The enrich stage's last recorded result, at whatever generation.
    pub fn enriched_memo(&self) -> Option<Enriched> {
        self.enriched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get()
    }

    /// True when the enrich stage recorded at `generation` that the series
    /// passes unchanged (one atomic load, no lock).
    pub fn passes_unchanged(&self, generation: u64) -> bool {
        self.unchanged_at.load(Ordering::Acquire) == generation.wrapping_add(1)
    }

    /// Records the enrich stage's result (see [`Self::enriched`]), or forgets
    /// it with `None`. The output must not be this series itself (that would
    /// be a cycle).
    pub fn set_enriched(&self, memo: Option<Enriched>) {
        let unchanged = match &memo {
            Some(e) if e.output.is_none() => e.generation.wrapping_add(1),
            _ => 0,
        };
        *self.enriched.lock().unwrap_or_else(PoisonError::into_inner) = Memo::of(memo);
        self.unchanged_at.store(unchanged, Ordering::Release);
    }

    /// The on-disk queue's last recorded id for this series (`u32::MAX`: none).
    pub fn queue_hint(&self) -> u32 {
        self.queue_hint.load(Ordering::Relaxed)
    }

    /// Records the series' id in the on-disk queue's active segment.
    pub fn set_queue_hint(&self, id: u32) {
        self.queue_hint.store(id, Ordering::Relaxed);
    }

    /// Help and unit of the family, if the exposition declared any.
    pub fn metadata(&self) -> Option<&Arc<Metadata>> {
        self.metadata.as_ref()
    }

    /// The family's help text, `""` when none.
    pub fn help(&self) -> &str {
        self.metadata.as_ref().map_or("", |m| m.help.as_str())
    }

    /// The family's unit, `""` when none.
    pub fn unit(&self) -> &str {
        self.metadata.as_ref().map_or("", |m| m.unit.as_str())
    }
}

/// One value of one series at one time.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The series the value belongs to.
    pub series: SeriesRef,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The value; [`stale_nan`] marks the series stale.
    pub value: f64,
    /// Rare per-sample extras (created timestamp, exemplar); `None` for
    /// almost every sample, so a sample stays four words.
    pub extra: Option<Arc<SampleExtra>>,
}

impl Sample {
    /// A plain sample without extras.
    pub fn new(series: SeriesRef, timestamp_ms: i64, value: f64) -> Self {
        Self {
            series,
            timestamp_ms,
            value,
            extra: None,
        }
    }

    /// This sample's value, time and extras under another series.
    pub fn with_series(&self, series: SeriesRef) -> Self {
        Self {
            series,
            timestamp_ms: self.timestamp_ms,
            value: self.value,
            extra: self.extra.clone(),
        }
    }

    /// The created (start) time of the counter, histogram or summary this
    /// sample belongs to, in ms, if the exposition gave one (`_created`).
    pub fn created_ms(&self) -> Option<i64> {
        self.extra.as_ref().and_then(|e| e.created_ms)
    }

    /// The sample's exemplar, if one was kept.
    pub fn exemplar(&self) -> Option<&Exemplar> {
        self.extra.as_ref().and_then(|e| e.exemplar.as_ref())
    }
}

/// What only some samples carry, behind one pointer in [`Sample`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleExtra {
    /// Created (start) time in ms, from OpenMetrics `_created`.
    pub created_ms: Option<i64>,
    /// The exemplar attached to the sample (kept only when an endpoint sends exemplars).
    pub exemplar: Option<Exemplar>,
}

impl SampleExtra {
    /// `None` when nothing is set, so empty extras cost no allocation downstream.
    pub fn into_option(self) -> Option<Arc<Self>> {
        (self.created_ms.is_some() || self.exemplar.is_some()).then(|| Arc::new(self))
    }
}

/// An OpenMetrics exemplar: an example observation, typically a trace id.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// The exemplar's labels (e.g. `trace_id`).
    pub labels: Labels,
    /// The observed value.
    pub value: f64,
    /// Milliseconds since the epoch; the sample's time when the exposition gave none.
    pub timestamp_ms: i64,
}

/// The input of the delivery stage: whatever produces samples (a scrape, a
/// collector) hands them here. Implementations never block the producer.
pub trait SampleSink: Send + Sync {
    /// Takes a batch of samples. Ownership passes down the pipeline, so a
    /// stage that keeps them (the queue) moves them instead of cloning each
    /// series handle and dropping the originals.
    fn append(&self, samples: Vec<Sample>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_fits_a_96_byte_allocation() {
        // With Arc's two counters: one of jemalloc's 96-byte classes per series.
        assert!(std::mem::size_of::<Series>() <= 80);
    }

    #[test]
    fn what_every_scrape_checks_shares_the_reference_counts_cache_line() {
        // The counts take the allocation's first 16 bytes and jemalloc's
        // 96-byte regions start on 32-byte boundaries, so the next 16 bytes
        // are always in the counts' cache line.
        use std::mem::offset_of;
        assert!(offset_of!(Series, metadata) + size_of::<Option<Arc<Metadata>>>() <= 16);
        assert!(offset_of!(Series, metric_type) < 16);
    }

    #[test]
    fn recheck_times_round_up_to_whole_seconds() {
        let s = Series::new(Labels::from_pairs([("__name__", "m")]), MetricType::Gauge);
        let asked = Instant::now() + Duration::from_millis(5500);
        s.set_enriched(Some(Enriched {
            generation: 1,
            output: None,
            recheck_after: Some(asked),
        }));
        let got = s
            .enriched_memo()
            .and_then(|e| e.recheck_after)
            .expect("recorded");
        assert!(got >= asked && got < asked + Duration::from_secs(1));
        s.set_enriched(Some(Enriched {
            generation: 2,
            output: None,
            recheck_after: None,
        }));
        assert_eq!(s.enriched_memo().map(|e| e.recheck_after), Some(None));
    }

    #[test]
    fn sample_stays_four_words() {
        // The hot path moves millions of these; extras live behind one pointer.
        assert!(std::mem::size_of::<Sample>() <= 32);
        assert_eq!(std::mem::size_of::<Option<Arc<SampleExtra>>>(), 8);
    }

    #[test]
    fn enriched_results_hold_for_their_generation_only() {
        let s = Series::new(Labels::from_pairs([("__name__", "m")]), MetricType::Gauge);
        let out = Series::new(
            Labels::from_pairs([("__name__", "m"), ("pod", "p")]),
            MetricType::Gauge,
        );
        assert_eq!(s.enriched(0), None, "nothing recorded");
        let at = |generation, output: Option<&SeriesRef>| {
            Some(Enriched {
                generation,
                output: output.cloned(),
                recheck_after: None,
            })
        };
        s.set_enriched(at(7, None));
        assert_eq!(s.enriched(7), Some(None));
        assert_eq!(s.enriched(8), None);
        s.set_enriched(at(8, Some(&out)));
        assert!(matches!(s.enriched(8), Some(Some(o)) if Arc::ptr_eq(&o, &out)));
        assert_eq!(s.enriched(7), None);
        assert!(
            !s.passes_unchanged(8),
            "a changed result is not 'unchanged'"
        );
        s.set_enriched(at(9, None));
        assert_eq!(s.enriched(9), Some(None));
        assert_eq!(s.enriched_memo().map(|e| e.generation), Some(9));
        s.set_enriched(None);
        assert_eq!((s.enriched(9), s.enriched_memo().is_none()), (None, true));
    }

    #[test]
    fn same_as_compares_labels_type_and_metadata() {
        let labels = Labels::from_pairs([("__name__", "m")]);
        let help = |h: &str| {
            Some(Arc::new(Metadata {
                help: h.to_owned(),
                unit: String::new(),
            }))
        };
        let a = Series::with_metadata(labels.clone(), MetricType::Counter, help("x"));
        let b = Series::with_metadata(labels.clone(), MetricType::Counter, help("x"));
        let c = Series::with_metadata(labels.clone(), MetricType::Counter, help("y"));
        let d = Series::new(labels.clone(), MetricType::Counter);
        assert!(a.same_as(&b));
        assert!(!a.same_as(&c));
        assert!(!a.same_as(&d));
        let moved = a.relabeled(Labels::from_pairs([("__name__", "n")]));
        assert_eq!(
            (moved.help(), moved.metric_type()),
            ("x", MetricType::Counter)
        );
        assert!(Arc::ptr_eq(
            moved.metadata().expect("kept"),
            a.metadata().expect("set")
        ));
    }

    #[test]
    fn stale_marker_is_not_any_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(!is_stale_nan(f64::NAN));
        assert!(stale_nan().is_nan());
    }
}
