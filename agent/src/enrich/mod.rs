//! Enrichment: adds `node`, `namespace`, `pod`, `container`,
//! `workload_kind`, `workload` and allowlisted pod labels to series that
//! carry a `cgroup` label (eBPF) and to scraped series whose `instance` is a
//! pod on this node. It sits between the producers and remote write as a
//! [`SampleSink`] wrapper.
//!
//! Cost: once a series is settled (its pod is known, or it has none), the
//! result is recorded on the series itself ([`Enriched`]; producers hand out
//! the same `Arc` for an unchanged series), so while the pod cache does not
//! change a sample costs one atomic load, and the stage keeps no per-series
//! state of its own. Only series waiting for their pod have an entry in the
//! stage's map. A settled result is looked at again after a pod-cache change
//! only when it can change (an unrelated series, at most every few seconds).
//!
//! Never blocking: samples of a cgroup whose pod/container the cache does not
//! know yet are held (at most `hold`, at most `hold_max_samples`), then sent
//! with what is known. When a series' labels later become complete, its old
//! label set gets a stale marker so no half-labelled twin lingers. Series of
//! deleted pods go stale through their producers (the collector's cgroup
//! removal, the scrape loop's finish()).
//!
//! Label rules: labels a series already has are never overwritten; pod label
//! keys are sanitized like Prometheus' Kubernetes discovery (`.`/`/`/`-` →
//! `_`); in plain-host mode eBPF series get `node` and `container_id` only.

mod labels;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use labels::{LabelPlan, Resolution, names, sanitize};

use crate::kube::{PodStore, Synced};
use crate::model::{Enriched, Labels, Sample, SampleSink, SeriesRef, stale_nan};

/// How often held samples are re-checked and idle map entries dropped.
const TICK: Duration = Duration::from_millis(250);
/// Map entries of series not seen for this long are dropped.
const IDLE: Duration = Duration::from_secs(600);
/// Series unrelated to pods (most scraped series) are re-checked after a pod
/// change at most this often, so pod churn does not re-enrich them all.
const RECHECK_UNRELATED: Duration = Duration::from_secs(5);

/// Enrichment self-metrics.
#[derive(Clone, Default)]
pub struct EnrichMetrics {
    /// Series waiting for their pod or container (entries in the map).
    pub waiting: Gauge,
    /// Samples currently held.
    pub held: Gauge,
    /// Samples sent after their hold expired without complete labels.
    pub hold_expired: Counter,
    /// Samples not held because the hold buffer was full.
    pub hold_overflow: Counter,
}

impl EnrichMetrics {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "crowsnest_enrich_waiting_series",
            "Series whose pod or container the pod cache does not know yet",
            m.waiting.clone(),
        );
        registry.register(
            "crowsnest_enrich_held_samples",
            "Samples held while their pod or container is not known yet",
            m.held.clone(),
        );
        registry.register(
            "crowsnest_enrich_hold_expired",
            "Samples sent with incomplete labels after the hold",
            m.hold_expired.clone(),
        );
        registry.register(
            "crowsnest_enrich_hold_overflow",
            "Held samples flushed early because the hold buffer was full",
            m.hold_overflow.clone(),
        );
        m
    }
}

/// Hold settings.
#[derive(Clone)]
pub struct HoldConfig {
    /// How long a series of an unknown container is held (zero: never).
    pub hold: Duration,
    /// Bound on held samples.
    pub max_samples: usize,
    /// Until the pod cache's first list (or the deadline, whichever comes
    /// first), series of unknown pods are held at least that long: after a
    /// restart nothing is sent unlabelled just because the list is slow.
    pub until_synced: Option<(Synced, Instant)>,
}

impl HoldConfig {
    /// True until the pod cache's first list (always true without one).
    fn synced(&self) -> bool {
        self.until_synced
            .as_ref()
            .is_none_or(|(s, _)| s.is_synced())
    }

    /// Whether `e`'s samples are still held at `now`. Once the cache is
    /// synced, the plain `hold` (from first sight) applies again, so a
    /// series held for the first list is not held longer than needed.
    fn still_held(&self, e: &Entry, now: Instant) -> bool {
        e.resolution == Resolution::Waiting
            && e.hold_until.is_some_and(|t| t > now)
            && (!self.synced() || e.first_seen + self.hold > now)
    }

    /// When a series first seen `now` without its pod stops being held.
    fn deadline(&self, now: Instant) -> Option<Instant> {
        let mut until = (!self.hold.is_zero()).then(|| now + self.hold);
        if let Some((synced, deadline)) = &self.until_synced
            && !synced.is_synced()
            && *deadline > now
        {
            until = Some(until.map_or(*deadline, |u| u.max(*deadline)));
        }
        until
    }
}

struct Entry {
    input: SeriesRef,
    output: SeriesRef,
    resolution: Resolution,
    /// Store generation the entry was resolved at.
    generation: u64,
    /// While `Some` and in the future, samples are held.
    hold_until: Option<Instant>,
    first_seen: Instant,
    last_seen: Instant,
    /// When the entry was last resolved.
    checked: Instant,
}

impl Entry {
    /// A series found waiting for its pod at `now`.
    fn waiting(
        input: &SeriesRef,
        output: SeriesRef,
        generation: u64,
        hold_until: Option<Instant>,
        now: Instant,
    ) -> Self {
        Self {
            input: input.clone(),
            output,
            resolution: Resolution::Waiting,
            generation,
            hold_until,
            first_seen: now,
            last_seen: now,
            checked: now,
        }
    }
}

#[derive(Default)]
struct State {
    /// Series waiting for their pod, keyed by the series' identity hash
    /// (which needs no rehashing by SipHash). Settled series are not here.
    waiting: rustc_hash::FxHashMap<u64, Entry>,
    held: VecDeque<Sample>,
    last_sweep: Option<Instant>,
}

struct Inner {
    next: Arc<dyn SampleSink>,
    store: PodStore,
    plan: LabelPlan,
    hold: HoldConfig,
    metrics: EnrichMetrics,
    state: Mutex<State>,
}

/// The enrichment stage. Cheap to clone.
#[derive(Clone)]
pub struct Enricher {
    inner: Arc<Inner>,
}

impl Enricher {
    /// Wraps `next`; must be called inside a Tokio runtime (a task releases
    /// held samples; it ends when the last clone is dropped).
    pub fn spawn(
        next: Arc<dyn SampleSink>,
        store: PodStore,
        plan: LabelPlan,
        hold: HoldConfig,
        metrics: EnrichMetrics,
    ) -> Self {
        let inner = Arc::new(Inner {
            next,
            store,
            plan,
            hold,
            metrics,
            state: Mutex::default(),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.tick(Instant::now());
            }
        });
        Self { inner }
    }

    /// This stage as the sink producers write to.
    pub fn sink(&self) -> Arc<dyn SampleSink> {
        Arc::new(self.clone())
    }

    /// Releases every held sample now (shutdown), with what is known.
    pub fn flush(&self) {
        let mut st = self.inner.lock();
        let mut out = Vec::new();
        self.inner.release(&mut st, Instant::now(), true, &mut out);
        self.inner.next.append(out);
    }
}

impl SampleSink for Enricher {
    fn append(&self, mut samples: Vec<Sample>) {
        let inner = &self.inner;
        let generation = inner.store.generation();
        // The usual case: every series passes unchanged at this generation,
        // so the batch goes on as it is, without a copy.
        let Some(first) = samples
            .iter()
            .position(|s| !s.series.passes_unchanged(generation))
        else {
            inner.next.append(samples);
            return;
        };
        // The unchanged prefix stays where it is; the rest is routed after it.
        let rest = samples.split_off(first);
        let mut out = samples;
        out.reserve(rest.len());
        // At most one lock per batch, and none while every series' result is
        // recorded on the series for this pod-cache generation (the usual
        // case). `next.append` never blocks (SampleSink's contract), and
        // calling it under the lock keeps each series' samples in order
        // between held and direct paths.
        let mut locked: Option<(MutexGuard<'_, State>, Instant)> = None;
        for mut s in rest {
            if let Some(output) = s.series.enriched(generation) {
                if let Some(series) = output {
                    s.series = series;
                }
                out.push(s);
                continue;
            }
            let (st, now) = locked.get_or_insert_with(|| (inner.lock(), Instant::now()));
            inner.route(st, &s, *now, generation, &mut out);
        }
        if let Some((st, _)) = &locked {
            inner
                .metrics
                .held
                .set(i64::try_from(st.held.len()).unwrap_or(i64::MAX));
        }
        inner.next.append(out);
        drop(locked);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn route(
        &self,
        st: &mut State,
        s: &Sample,
        now: Instant,
        generation: u64,
        out: &mut Vec<Sample>,
    ) {
        let key = s.series.hash();
        let waiting = st
            .waiting
            .get(&key)
            .is_some_and(|e| e.input.same_as(&s.series));
        if !waiting {
            if let Some(memo) = s.series.enriched_memo() {
                self.revisit(st, s, memo, now, generation, out);
                return;
            }
            let (labels, resolution) = self.plan.enrich(&self.store, s.series.labels());
            let output = becomes(&s.series, labels);
            if resolution != Resolution::Waiting {
                settle(
                    &s.series,
                    &output,
                    generation,
                    recheck_from(resolution, now),
                );
                out.push(s.with_series(output));
                return;
            }
            let entry = Entry::waiting(&s.series, output, generation, self.hold.deadline(now), now);
            st.waiting.insert(key, entry);
            self.count_waiting(st);
        }
        let holding = {
            let Some(entry) = st.waiting.get_mut(&key) else {
                return;
            };
            entry.last_seen = now;
            if entry.resolution == Resolution::Waiting && entry.generation != generation {
                entry.checked = now;
                self.refresh(entry, generation, s.timestamp_ms, out);
            }
            let holding = self.hold.still_held(entry, now);
            if !holding && entry.hold_until.is_some() {
                // Its hold just ended (resolved or expired): earlier samples
                // still queued must go out before this one.
                None
            } else {
                Some(holding)
            }
        };
        match holding {
            None => self.release(st, now, false, out),
            Some(true) if st.held.len() >= self.hold.max_samples => {
                // Full: release everything in order rather than reorder a series.
                self.metrics.hold_overflow.inc_by(st.held.len() as u64);
                self.release(st, now, true, out);
            }
            Some(true) => {
                st.held.push_back(s.clone());
                return;
            }
            Some(false) => {}
        }
        // Not held, so none of this series' samples are held any more.
        let Some(entry) = st.waiting.get_mut(&key) else {
            return;
        };
        entry.hold_until = None;
        let output = entry.output.clone();
        if entry.resolution != Resolution::Waiting
            && let Some(entry) = st.waiting.remove(&key)
        {
            // Settled: the result moves onto the series, the entry goes.
            let recheck_after = recheck_from(entry.resolution, entry.checked);
            settle(&s.series, &entry.output, generation, recheck_after);
            self.count_waiting(st);
        }
        out.push(s.with_series(output));
    }

    /// A settled series after a pod-cache change: its recorded result holds
    /// unless it can change and is due for a look (at most every
    /// [`RECHECK_UNRELATED`], so pod churn does not re-enrich every series).
    fn revisit(
        &self,
        st: &mut State,
        s: &Sample,
        memo: Enriched,
        now: Instant,
        generation: u64,
        out: &mut Vec<Sample>,
    ) {
        let mut output = memo.output.unwrap_or_else(|| s.series.clone());
        let mut recheck_after = memo.recheck_after;
        if recheck_after.is_some_and(|t| now >= t) {
            // The old label set was sent: a change ends it with a stale marker.
            let resolution;
            (output, resolution) =
                self.resolve_again(&s.series, &output, true, s.timestamp_ms, out);
            if resolution == Resolution::Waiting {
                // Waiting again (its pod went away): back to the map, not
                // held, since the series was already being sent.
                s.series.set_enriched(None);
                let entry = Entry::waiting(&s.series, output.clone(), generation, None, now);
                st.waiting.insert(s.series.hash(), entry);
                self.count_waiting(st);
                out.push(s.with_series(output));
                return;
            }
            recheck_after = recheck_from(resolution, now);
        }
        settle(&s.series, &output, generation, recheck_after);
        out.push(s.with_series(output));
    }

    fn count_waiting(&self, st: &State) {
        self.metrics
            .waiting
            .set(i64::try_from(st.waiting.len()).unwrap_or(i64::MAX));
    }

    /// Re-resolves a waiting entry (see [`Self::resolve_again`]); held
    /// samples were never sent under the old labels.
    fn refresh(
        &self,
        entry: &mut Entry,
        generation: u64,
        timestamp_ms: i64,
        out: &mut Vec<Sample>,
    ) {
        entry.generation = generation;
        let sent = entry.hold_until.is_none();
        (entry.output, entry.resolution) =
            self.resolve_again(&entry.input, &entry.output, sent, timestamp_ms, out);
    }

    /// Resolves `input` again. When its labels differ from `current`'s, the
    /// new output replaces `current`, which gets a stale marker if it was
    /// `sent` (so no half-labelled twin lingers).
    fn resolve_again(
        &self,
        input: &SeriesRef,
        current: &SeriesRef,
        sent: bool,
        timestamp_ms: i64,
        out: &mut Vec<Sample>,
    ) -> (SeriesRef, Resolution) {
        let (labels, resolution) = self.plan.enrich(&self.store, input.labels());
        if labels == *current.labels() {
            return (current.clone(), resolution);
        }
        if sent {
            out.push(Sample::new(current.clone(), timestamp_ms, stale_nan()));
        }
        (becomes(input, labels), resolution)
    }

    /// Sends held samples whose series resolved or whose hold expired (all
    /// when `all`), keeping the order of the queue.
    fn release(&self, st: &mut State, now: Instant, all: bool, out: &mut Vec<Sample>) {
        let generation = self.store.generation();
        let mut keep = VecDeque::new();
        while let Some(s) = st.held.pop_front() {
            let key = s.series.hash();
            let Some(entry) = st.waiting.get_mut(&key) else {
                out.push(s);
                continue;
            };
            if entry.resolution == Resolution::Waiting && entry.generation != generation {
                self.refresh(entry, generation, s.timestamp_ms, out);
            }
            // All samples of one series share the entry, so a series is
            // released or kept as a whole and its order is preserved.
            if !all && self.hold.still_held(entry, now) {
                keep.push_back(s);
                continue;
            }
            if entry.resolution == Resolution::Waiting {
                self.metrics.hold_expired.inc();
            }
            // Released: later samples of this series go straight through.
            entry.hold_until = None;
            out.push(s.with_series(entry.output.clone()));
        }
        st.held = keep;
        self.metrics
            .held
            .set(i64::try_from(st.held.len()).unwrap_or(i64::MAX));
    }

    fn tick(&self, now: Instant) {
        let mut st = self.lock();
        let mut out = Vec::new();
        if !st.held.is_empty() {
            self.release(&mut st, now, false, &mut out);
        }
        if st
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= IDLE / 10)
        {
            st.last_sweep = Some(now);
            // Series passed on through their recorded result do not touch
            // `last_seen`; an entry whose input a producer still holds
            // (its scrape or collector cache) is alive all the same.
            st.waiting.retain(|_, e| {
                now.duration_since(e.last_seen) < IDLE || Arc::strong_count(&e.input) > 1
            });
            self.count_waiting(&st);
        }
        self.next.append(out);
    }
}

/// Records a settled result on the series (see [`Enriched`]).
fn settle(series: &SeriesRef, output: &SeriesRef, generation: u64, recheck_after: Option<Instant>) {
    series.set_enriched(Some(Enriched {
        generation,
        output: (!Arc::ptr_eq(output, series)).then(|| output.clone()),
        recheck_after,
    }));
}

/// When a result resolved at `checked` may be looked at again: a complete
/// one never, any other after [`RECHECK_UNRELATED`] (only unrelated series
/// settle with an incomplete result).
fn recheck_from(resolution: Resolution, checked: Instant) -> Option<Instant> {
    match resolution {
        Resolution::Complete => None,
        Resolution::Waiting | Resolution::Unrelated => Some(checked + RECHECK_UNRELATED),
    }
}

/// What `input` becomes under the enriched `labels`: itself when they did
/// not change, so the output shares the input's `Arc`.
fn becomes(input: &SeriesRef, labels: Labels) -> SeriesRef {
    if labels == *input.labels() {
        input.clone()
    } else {
        input.relabeled(labels)
    }
}
