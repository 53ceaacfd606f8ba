//! The loop that scrapes one target at its interval, reports the synthetic
//! `up`/`scrape_*` series and hands samples to delivery.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::fetch::{FetchError, ScrapeRequest, Source};
use super::ingest::{IngestFailure, IngestRules, IngestStats, SeriesCache, ingest};
use super::metrics::{ErrorLabels, JobLabels, ScrapeMetrics, TargetLabels};
use super::target::Target;
use crate::model::{MetricType, Sample, SampleSink, Series, SeriesRef, stale_nan};

/// What the status page shows of a target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    /// Job name.
    pub job: String,
    /// `instance` label.
    pub instance: String,
    /// URL without credentials.
    pub url: String,
    /// The target's labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: &'static str,
    /// Unix time (seconds) of the last scrape.
    pub last_scrape: Option<f64>,
    /// Duration of the last scrape in seconds.
    pub last_scrape_duration_seconds: Option<f64>,
    /// Samples kept from the last scrape.
    pub last_samples: usize,
    /// Series currently tracked for the target.
    pub series: usize,
    /// Error of the last scrape, if it failed.
    pub last_error: Option<String>,
    /// Short reason of the last error.
    pub last_error_reason: Option<&'static str>,
    /// Scrape interval in seconds.
    pub scrape_interval_seconds: f64,
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Fetching the body failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The body was invalid or broke a limit.
    #[error(transparent)]
    Ingest(#[from] IngestFailure),
}

impl ScrapeError {
    /// Short reason for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Fetch(e) => e.kind(),
            Self::Ingest(e) => e.kind(),
        }
    }
}

/// How many synthetic series a scrape adds.
const REPORT_SERIES: usize = 5;

/// The synthetic series Prometheus writes for every scrape.
struct ReportSeries {
    up: SeriesRef,
    duration: SeriesRef,
    scraped: SeriesRef,
    post_relabel: SeriesRef,
    added: SeriesRef,
}

impl ReportSeries {
    fn new(target: &Target) -> Self {
        let make = |name: &str, t: MetricType| {
            let mut labels = target.labels.clone();
            labels.set("__name__", name);
            Series::new(labels, t)
        };
        Self {
            up: make("up", MetricType::Gauge),
            duration: make("scrape_duration_seconds", MetricType::Gauge),
            scraped: make("scrape_samples_scraped", MetricType::Gauge),
            post_relabel: make("scrape_samples_post_metric_relabeling", MetricType::Gauge),
            added: make("scrape_series_added", MetricType::Gauge),
        }
    }

    fn all(&self) -> [&SeriesRef; REPORT_SERIES] {
        [
            &self.up,
            &self.duration,
            &self.scraped,
            &self.post_relabel,
            &self.added,
        ]
    }
}

/// Everything one target's loop needs.
pub struct ScrapeLoop {
    target: Target,
    source: Source,
    request: ScrapeRequest,
    rules: IngestRules,
    body_limit: u64,
    cache: SeriesCache,
    report: ReportSeries,
    sink: Arc<dyn SampleSink>,
    status: Arc<Mutex<TargetStatus>>,
    metrics: ScrapeMetrics,
    target_labels: TargetLabels,
    job_labels: JobLabels,
    last_error: Option<String>,
    // Whether any scrape ran, i.e. whether the synthetic series exist.
    scraped: bool,
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl ScrapeLoop {
    /// Prepares the loop; nothing runs until [`ScrapeLoop::run`].
    pub fn new(
        target: Target,
        source: Source,
        rules: IngestRules,
        body_limit: u64,
        sink: Arc<dyn SampleSink>,
        metrics: ScrapeMetrics,
    ) -> Self {
        let status = TargetStatus {
            job: target.job.clone(),
            instance: target.instance().to_owned(),
            url: target.display_url(),
            labels: target
                .labels
                .iter()
                .map(|l| (l.name.to_owned(), l.value.to_owned()))
                .collect(),
            health: "unknown",
            last_scrape: None,
            last_scrape_duration_seconds: None,
            last_samples: 0,
            series: 0,
            last_error: None,
            last_error_reason: None,
            scrape_interval_seconds: target.interval.as_secs_f64(),
        };
        Self {
            report: ReportSeries::new(&target),
            target_labels: TargetLabels {
                job: target.job.clone(),
                instance: target.instance().to_owned(),
            },
            job_labels: JobLabels {
                job: target.job.clone(),
            },
            request: ScrapeRequest::new(&target.url, target.timeout),
            target,
            source,
            rules,
            body_limit,
            cache: SeriesCache::default(),
            sink,
            status: Arc::new(Mutex::new(status)),
            metrics,
            last_error: None,
            scraped: false,
        }
    }

    /// Shared view of the target's status.
    pub fn status(&self) -> Arc<Mutex<TargetStatus>> {
        self.status.clone()
    }

    /// Delay before the first scrape, so that targets spread over the
    /// interval and keep their phase across restarts (as Prometheus does).
    fn initial_delay(&self) -> Duration {
        let interval = self.target.interval.as_nanos().max(1);
        let base =
            u128::from(self.target.labels.stable_hash() ^ fxhash_str(self.target.url.as_str()))
                % interval;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() % interval)
            .unwrap_or(0);
        let wait = (base + interval - now) % interval;
        Duration::from_nanos(u64::try_from(wait).unwrap_or(0))
    }

    /// Scrapes until `stop` turns true, then marks every series stale.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let delay = self.initial_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(&mut stop) => { return self.finish(); }
        }
        let mut ticker = tokio::time::interval(self.target.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.scrape_once().await,
                () = stopped(&mut stop) => break,
            }
        }
        self.finish();
    }

    /// One scrape: fetch, ingest, report, deliver.
    pub async fn scrape_once(&mut self) {
        let started = Instant::now();
        let scrape_time = SystemTime::now();
        let ts = unix_ms(scrape_time);
        // Sized from the last scrape and freed after this one: kept per
        // target, these buffers were 6.5 MB at 100 targets x 2000 series.
        let mut buf = Vec::with_capacity(self.cache.len() + REPORT_SERIES);
        let result = match self
            .source
            .fetch_prepared(&mut self.request, self.body_limit)
            .await
        {
            Ok(fetched) => {
                let ingested = ingest(
                    &mut self.cache,
                    &self.rules,
                    &fetched.body,
                    fetched.format,
                    ts,
                    &mut buf,
                );
                self.source.give_back(fetched.body);
                ingested.map_err(ScrapeError::from)
            }
            Err(e) => {
                self.cache.mark_all_stale(ts, &mut buf);
                Err(ScrapeError::from(e))
            }
        };
        let duration = started.elapsed().as_secs_f64();
        let (up, stats) = match &result {
            Ok(stats) => (1.0, *stats),
            Err(ScrapeError::Ingest(failure)) => (0.0, failure.stats),
            Err(ScrapeError::Fetch(_)) => (0.0, IngestStats::default()),
        };
        for (series, value) in [
            (&self.report.up, up),
            (&self.report.duration, duration),
            (&self.report.scraped, stats.scraped as f64),
            (&self.report.post_relabel, stats.post_relabel as f64),
            (&self.report.added, stats.added as f64),
        ] {
            buf.push(Sample {
                series: series.clone(),
                timestamp_ms: ts,
                value,
                extra: None,
            });
        }
        self.sink.append(buf);
        self.scraped = true;
        self.record(
            &result,
            scrape_time,
            duration,
            stats.post_relabel,
            stats.duplicates,
        );
    }

    fn record(
        &mut self,
        result: &Result<IngestStats, ScrapeError>,
        scrape_time: SystemTime,
        duration: f64,
        samples: usize,
        duplicates: usize,
    ) {
        self.metrics.scrapes.get_or_create(&self.job_labels).inc();
        self.metrics
            .samples
            .get_or_create(&self.job_labels)
            .inc_by(samples as u64);
        if duplicates > 0 {
            self.metrics
                .duplicates
                .get_or_create(&self.job_labels)
                .inc_by(duplicates as u64);
            debug!(job = %self.target.job, instance = %self.target.instance(), duplicates, "duplicate series in scrape; kept the first sample of each");
        }
        self.metrics
            .last_duration
            .get_or_create(&self.target_labels)
            .set(duration);
        self.metrics
            .last_samples
            .get_or_create(&self.target_labels)
            .set(i64::try_from(samples).unwrap_or(i64::MAX));
        self.metrics
            .target_up
            .get_or_create(&self.target_labels)
            .set(i64::from(result.is_ok()));
        let error = result.as_ref().err();
        if let Some(e) = error {
            self.metrics
                .errors
                .get_or_create(&ErrorLabels {
                    job: self.target.job.clone(),
                    reason: e.kind().to_owned(),
                })
                .inc();
        }
        // Log on changes only: a target down for hours must not flood the log.
        let message = error.map(ToString::to_string);
        if message != self.last_error {
            match (&message, error) {
                (Some(msg), Some(e)) => {
                    warn!(job = %self.target.job, instance = %self.target.instance(), url = %self.target.display_url(), reason = e.kind(), error = %msg, "scrape failed")
                }
                _ => {
                    info!(job = %self.target.job, instance = %self.target.instance(), "scrape recovered")
                }
            }
        }
        let now_secs = scrape_time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        if let Ok(mut s) = self.status.lock() {
            s.health = if error.is_none() { "up" } else { "down" };
            s.last_scrape = Some(now_secs);
            s.last_scrape_duration_seconds = Some(duration);
            s.last_samples = samples;
            s.series = self.cache.len();
            s.last_error.clone_from(&message);
            s.last_error_reason = error.map(ScrapeError::kind);
        }
        self.last_error = message;
    }

    /// End of run: every series of the target, synthetic ones included, goes stale.
    fn finish(mut self) {
        let ts = unix_ms(SystemTime::now());
        let mut buf = Vec::new();
        self.cache.mark_all_stale(ts, &mut buf);
        for series in self.report.all().into_iter().filter(|_| self.scraped) {
            buf.push(Sample {
                series: series.clone(),
                timestamp_ms: ts,
                value: stale_nan(),
                extra: None,
            });
        }
        self.sink.append(buf);
        self.metrics.remove_target(&self.target_labels);
        debug!(job = %self.target.job, instance = %self.target.instance(), "target stopped; series marked stale");
    }
}

/// Resolves when `stop` turns true (or its sender is gone). The watch guard
/// is dropped inside, so the loop's future stays `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn fxhash_str(s: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(s.as_bytes());
    h.finish()
}
