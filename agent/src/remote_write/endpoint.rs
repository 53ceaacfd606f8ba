//! One remote write endpoint: its queue, series rewriting, shard tasks and
//! lifecycle (start after a predecessor drained, drain, abandon).

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::disk::{DiskOptions, DiskQueue, Losses, endpoint_dir};
use super::encode::request_headers;
use super::encode_v2::request_headers_v2;
use super::metrics::{DropReason, EndpointMetrics, Metrics};
use super::negotiate::{Negotiator, REPROBE_AFTER};
use super::queue::{MemoryQueue, Queue};
use super::series::SeriesMapper;
use super::shard::{self, EncoderPool, Stop};
use super::{EndpointStatus, RemoteWriteError};
use crate::config::RemoteWriteConfig;
use crate::http::HttpClient;
use crate::model::{Labels, Sample, SampleExtra};

/// Shards used when `min_shards` asks for fewer (fixed until dynamic
/// resharding exists), always within `min_shards..=max_shards`.
const DEFAULT_SHARDS: usize = 4;

/// Series whose rewritten form is cached per endpoint (two generations).
const SERIES_CACHE: usize = 256 * 1024;

/// How long a replaced endpoint may take to drain before its successor,
/// which waits for it to keep series in order, starts anyway.
pub(crate) const RELOAD_DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// The shard count for a queue config.
pub(crate) fn shard_count(min_shards: usize, max_shards: usize) -> usize {
    DEFAULT_SHARDS
        .max(min_shards)
        .min(max_shards.max(min_shards))
        .max(1)
}

/// The URL without credentials or query (which may carry tokens): safe for
/// logs, metric labels and status.
pub(crate) fn display_url(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[derive(Default)]
struct Health {
    last_success: Option<SystemTime>,
    last_error: Option<String>,
    /// When the last "queue full" warning was logged (they are rate-limited).
    full_warned: Option<Instant>,
}

/// "Queue full" is logged at most this often per endpoint.
const FULL_WARN_EVERY: Duration = Duration::from_secs(30);

/// What the sink side and the shard tasks share.
pub(crate) struct EndpointShared {
    pub(crate) config: RemoteWriteConfig,
    pub(crate) url: String,
    pub(crate) uri: http::Uri,
    pub(crate) headers: http::HeaderMap,
    pub(crate) headers_v2: http::HeaderMap,
    pub(crate) negotiator: Negotiator,
    pub(crate) client: HttpClient,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) mapper: SeriesMapper,
    pub(crate) metrics: EndpointMetrics,
    pub(crate) encoders: EncoderPool,
    /// Nanoseconds spent in successful requests (for dynamic sharding).
    pub(crate) busy_nanos: AtomicU64,
    /// Failed attempts so far (for dynamic sharding).
    pub(crate) failures: AtomicU64,
    health: Mutex<Health>,
}

impl EndpointShared {
    /// Rewrites and enqueues samples; never blocks on the network.
    pub(crate) fn append(&self, samples: Vec<Sample>) {
        let collected = samples.len();
        self.metrics.collected.inc_by(collected as u64);
        let rules = self.mapper.rules();
        let keep_exemplars = self.config.send_exemplars;
        // The usual case: no external labels, no write relabeling, nothing to
        // strip. The samples go to the queue as they are.
        let as_is = rules.is_identity()
            && (keep_exemplars || samples.iter().all(|s| s.exemplar().is_none()));
        let samples = if as_is {
            samples
        } else {
            samples
                .into_iter()
                .filter_map(|mut sample| {
                    sample.series = self.mapper.map(&rules, &sample.series)?;
                    if !keep_exemplars && sample.exemplar().is_some() {
                        // Another endpoint wants them; this one keeps only the created time.
                        sample.extra = sample.extra.and_then(|e| {
                            SampleExtra {
                                created_ms: e.created_ms,
                                exemplar: None,
                            }
                            .into_option()
                        });
                    }
                    Some(sample)
                })
                .collect()
        };
        self.metrics
            .drop_samples(DropReason::RelabelDrop, collected - samples.len());
        if samples.is_empty() {
            return;
        }
        let r = self.queue.append(samples);
        self.metrics.drop_samples(DropReason::QueueFull, r.full);
        self.metrics.drop_samples(DropReason::Shutdown, r.closed);
        self.update_queue_gauge();
        if r.full > 0 {
            let mut health = self.health();
            if health
                .full_warned
                .is_none_or(|t| t.elapsed() >= FULL_WARN_EVERY)
            {
                health.full_warned = Some(Instant::now());
                drop(health);
                tracing::warn!(
                    remote_name = %self.config.name,
                    url = %self.url,
                    dropped = r.full,
                    capacity = self.config.queue.capacity,
                    "remote write queue full; dropping new samples (receiver slow or down?)"
                );
            }
        }
    }

    pub(crate) fn update_queue_gauge(&self) {
        self.metrics
            .queue_length
            .set(i64::try_from(self.queue.len()).unwrap_or(i64::MAX));
        // Only a disk queue has bytes and a budget: an alert compares the two.
        if let Some(bytes) = self.queue.disk_bytes() {
            self.metrics
                .disk_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            self.metrics
                .disk_budget
                .set(i64::try_from(self.config.queue.disk_budget).unwrap_or(i64::MAX));
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn record_success(&self, at: SystemTime) {
        self.health().last_success = Some(at);
    }

    pub(crate) fn record_error(&self, error: String) {
        self.health().last_error = Some(error);
    }
}

/// Where a starting endpoint's queue comes from.
enum QueueSource {
    /// A bounded in-memory queue (no storage configured).
    Memory,
    /// The on-disk queue, opened by `prepare`; its loss counters are
    /// connected once the endpoint's metrics exist.
    Disk(Arc<DiskQueue>, Arc<OnceLock<EndpointMetrics>>),
    /// The predecessor's on-disk queue (same name, same directory): taken
    /// over after its senders stopped.
    Inherit,
}

/// A checked config with its URI, client and queue, not running yet.
pub(crate) struct Prepared {
    config: RemoteWriteConfig,
    uri: http::Uri,
    client: HttpClient,
    queue: QueueSource,
}

/// Counts the disk queue's losses on the endpoint's counters.
fn loss_sink(slot: Arc<OnceLock<EndpointMetrics>>) -> super::disk::LossSink {
    Box::new(move |l: Losses| {
        if let Some(m) = slot.get() {
            let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
            m.drop_samples(DropReason::DiskFull, n(l.disk_full));
            m.drop_samples(DropReason::Corrupt, n(l.corrupt));
            m.drop_samples(DropReason::Io, n(l.io));
        }
    })
}

/// A running endpoint.
pub(crate) struct Endpoint {
    shared: Arc<EndpointShared>,
    runner: JoinHandle<()>,
    abandon: watch::Sender<Stop>,
}

impl Endpoint {
    /// Checks a config and builds what can fail (URI, HTTP client, the
    /// on-disk queue under `storage`), so `apply` can refuse a config before
    /// changing anything. With `inherit`, the queue of the running endpoint
    /// of that name is taken over at start instead of opened here.
    pub(crate) fn prepare(
        config: &RemoteWriteConfig,
        storage: Option<&Path>,
        inherit: bool,
    ) -> Result<Prepared, RemoteWriteError> {
        let uri: http::Uri =
            config
                .url
                .as_str()
                .parse()
                .map_err(|source| RemoteWriteError::Url {
                    name: config.name.clone(),
                    url: display_url(&config.url),
                    source,
                })?;
        let client = HttpClient::new(&config.http).map_err(|source| RemoteWriteError::Client {
            name: config.name.clone(),
            source,
        })?;
        let queue = match storage {
            None => QueueSource::Memory,
            Some(_) if inherit => QueueSource::Inherit,
            Some(root) => {
                let slot = Arc::new(OnceLock::new());
                let opts = DiskOptions {
                    dir: endpoint_dir(root, &config.name),
                    shards: shard_count(config.queue.min_shards, config.queue.max_shards),
                    max_shards: config.queue.max_shards,
                    window: config.queue.capacity,
                    budget: config.queue.disk_budget,
                    fsync_interval: config.queue.fsync_interval,
                };
                let q = DiskQueue::open(&opts, loss_sink(Arc::clone(&slot))).map_err(|source| {
                    RemoteWriteError::Queue {
                        name: config.name.clone(),
                        source,
                    }
                })?;
                QueueSource::Disk(Arc::new(q), slot)
            }
        };
        Ok(Prepared {
            config: config.clone(),
            uri,
            client,
            queue,
        })
    }

    /// Starts a prepared endpoint. It sends only once `predecessor` (the same
    /// endpoint under its previous config) has drained, so no series is sent
    /// out of order across the switch; samples queue meanwhile.
    pub(crate) fn start(
        prepared: Prepared,
        external_labels: &Labels,
        metrics: &Metrics,
        predecessor: Option<Endpoint>,
    ) -> Self {
        let Prepared {
            config,
            uri,
            client,
            queue,
        } = prepared;
        let url = display_url(&config.url);
        let endpoint_metrics = metrics.endpoint(&config.name, &url);
        let (queue, handover): (Arc<dyn Queue>, bool) = match (queue, &predecessor) {
            (QueueSource::Disk(q, slot), _) => {
                let _ = slot.set(endpoint_metrics.clone());
                endpoint_metrics.recovered.inc_by(q.recovered());
                (q, false)
            }
            (QueueSource::Inherit, Some(old)) => {
                let q = Arc::clone(&old.shared.queue);
                q.retune(&config.queue);
                (q, true)
            }
            // Inherit always comes with a predecessor; a memory queue otherwise.
            (QueueSource::Inherit | QueueSource::Memory, _) => {
                let shards = shard_count(config.queue.min_shards, config.queue.max_shards);
                (
                    Arc::new(MemoryQueue::new(shards, config.queue.capacity)) as Arc<dyn Queue>,
                    false,
                )
            }
        };
        endpoint_metrics
            .shards
            .set(i64::try_from(queue.shards()).unwrap_or(i64::MAX));
        let span = tracing::info_span!("remote_write", remote_name = %config.name, url = %url);
        let shared = Arc::new(EndpointShared {
            headers: request_headers(&config.headers),
            headers_v2: request_headers_v2(&config.headers),
            negotiator: Negotiator::new(config.protobuf_message, REPROBE_AFTER),
            mapper: SeriesMapper::new(
                external_labels.clone(),
                config.write_relabel_configs.clone(),
                SERIES_CACHE,
            ),
            config,
            url,
            uri,
            client,
            queue,
            metrics: endpoint_metrics,
            encoders: EncoderPool::default(),
            busy_nanos: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            health: Mutex::default(),
        });
        let (abandon, abandon_rx) = watch::channel(Stop::No);
        let task = run(
            Arc::clone(&shared),
            predecessor,
            handover,
            metrics.clone(),
            abandon_rx,
        );
        let runner = tokio::spawn(task.instrument(span));
        Self {
            shared,
            runner,
            abandon,
        }
    }

    /// The sink side.
    pub(crate) fn shared(&self) -> &Arc<EndpointShared> {
        &self.shared
    }

    /// True when `config` can be served by this endpoint without a restart:
    /// only relabeling (and external labels) differ, which [`Self::set_rules`]
    /// swaps in place.
    pub(crate) fn same_transport(&self, config: &RemoteWriteConfig) -> bool {
        let c = &self.shared.config;
        c.name == config.name
            && c.url == config.url
            && c.headers == config.headers
            && c.remote_timeout == config.remote_timeout
            && c.protobuf_message == config.protobuf_message
            && c.send_exemplars == config.send_exemplars
            && c.queue == config.queue
            && c.http.tls == config.http.tls
            && c.http.auth == config.http.auth
    }

    /// Swaps external labels and write relabeling for new samples; queued
    /// samples keep the labels they were queued with.
    pub(crate) fn set_rules(&self, config: &RemoteWriteConfig, external_labels: &Labels) {
        self.shared.mapper.set_rules(
            external_labels.clone(),
            config.write_relabel_configs.clone(),
        );
    }

    /// Stops accepting samples, sends what is queued for up to `deadline`
    /// (or until `abort` fires), then gives up on the rest, counted as
    /// dropped `reason="shutdown"`.
    pub(crate) async fn drain(self, deadline: Duration, abort: Option<watch::Receiver<Stop>>) {
        let Self {
            shared,
            mut runner,
            abandon,
        } = self;
        shared.queue.close();
        tracing::debug!(remote_name = %shared.config.name, queued = shared.queue.len(), "draining");
        let aborted = async {
            match abort {
                Some(mut rx) => shard::stopping(&mut rx).await,
                None => std::future::pending().await,
            }
        };
        let finished = tokio::select! {
            r = &mut runner => Some(r),
            () = tokio::time::sleep(deadline) => None,
            () = aborted => None,
        };
        let result = match finished {
            Some(r) => r,
            None => {
                let _ = abandon.send(Stop::Now);
                runner.await
            }
        };
        if let Err(e) = result {
            tracing::error!(remote_name = %shared.config.name, error = %e, "remote write task failed");
        }
        let lost = shared.queue.abandon();
        shared.metrics.drop_samples(DropReason::Shutdown, lost);
        shared.update_queue_gauge();
        if lost > 0 {
            tracing::warn!(remote_name = %shared.config.name, samples = lost, "samples not delivered before the deadline; dropped");
        }
    }

    /// Stops the senders after their requests in flight (what is still
    /// unacknowledged stays in the durable queue) so a successor can take
    /// the queue over. A hanging backend holds this up for at most the
    /// remote timeout; samples keep queueing meanwhile.
    async fn stop_for_handover(self) {
        let Self {
            shared,
            runner,
            abandon,
        } = self;
        let _ = abandon.send(Stop::AfterInFlight);
        if let Err(e) = runner.await {
            tracing::error!(remote_name = %shared.config.name, error = %e, "remote write task failed");
        }
    }

    /// The endpoint's status.
    pub(crate) fn status(&self) -> EndpointStatus {
        let s = &self.shared;
        let m = &s.metrics;
        let health = s.health();
        EndpointStatus {
            name: s.config.name.clone(),
            url: s.url.clone(),
            protocol: s.negotiator.current().describe(),
            queue_length: s.queue.len(),
            disk_bytes: s.queue.disk_bytes(),
            samples_collected: m.collected.get(),
            samples_recovered: m.recovered.get(),
            shards: s.queue.shards(),
            samples_sent: m.sent.get(),
            samples_failed: m.failed.get(),
            samples_retried: m.retried.get(),
            samples_dropped: DropReason::ALL
                .iter()
                .map(|r| (r.as_str(), m.dropped(*r).get()))
                .collect(),
            bytes_sent: m.bytes.get(),
            last_success_unix_ms: health
                .last_success
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            last_error: health.last_error.clone(),
        }
    }
}

/// The endpoint's supervisor: waits for the predecessor, then runs the shards.
async fn run(
    shared: Arc<EndpointShared>,
    predecessor: Option<Endpoint>,
    handover: bool,
    metrics: Metrics,
    abandon: watch::Receiver<Stop>,
) {
    if let Some(old) = predecessor {
        let (name, url) = (old.shared.config.name.clone(), old.shared.url.clone());
        if handover {
            // Same durable queue: stop the old senders, then deal again
            // what they held unacknowledged. Order is kept by the log.
            old.stop_for_handover().await;
            shared.queue.rewind();
        } else {
            old.drain(RELOAD_DRAIN_DEADLINE, Some(abandon.clone()))
                .await;
        }
        metrics.retire(&name, &url);
    }
    if *abandon.borrow() != Stop::No {
        return;
    }
    let scaler = tokio::spawn(
        super::shards::autoscale(Arc::clone(&shared), abandon.clone()).in_current_span(),
    );
    let shards: Vec<_> = (0..shared.queue.max_shards())
        .map(|i| {
            tokio::spawn(shard::run(Arc::clone(&shared), i, abandon.clone()).in_current_span())
        })
        .collect();
    for h in shards {
        if let Err(e) = h.await {
            tracing::error!(error = %e, "remote write shard failed");
        }
    }
    scaler.abort();
}
