//! Remote write: per-endpoint durable queue, request encoding (protobuf +
//! snappy, remote write 1.0 and 2.0), sending, retries and dynamic sharding.
//!
//! A sample's path: [`SampleSink::append`] (the [`RemoteWriter::sink`])
//! -> per endpoint, `series` adds external labels and applies
//! `write_relabel_configs` (cached per series) -> [`Queue`]: with
//! `storage.path`, the on-disk [`disk::DiskQueue`] (one ordered, checksummed
//! log per endpoint, dealt to shards by series hash; see `disk`), otherwise
//! the bounded [`MemoryQueue`] -> `shard` loop (batch by
//! `max_samples_per_send` / `batch_send_deadline`) -> `negotiate` picks the
//! message -> `encode` (1.0, protobuf written directly with cached label
//! bytes) or `encode_v2` (2.0, symbol table) -> snappy -> HTTP POST -> `retry`
//! (5xx, network errors, optionally 429 with Retry-After) -> ack, which
//! advances the durable reader position. `shards` resizes the shard count
//! from throughput and backlog.
//!
//! Delivery is at-least-once. Accounting per endpoint always adds up:
//! `collected + recovered = sent + dropped (by reason) + pending`.

mod cache;
pub mod disk;
pub mod encode;
pub mod encode_v2;
mod endpoint;
mod metrics;
mod negotiate;
pub mod proto;
pub mod proto_v2;
pub mod queue;
mod retry;
mod series;
mod shard;
mod shards;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::endpoint::{Endpoint, EndpointShared, RELOAD_DRAIN_DEADLINE, display_url};
use self::metrics::Metrics;
pub use self::queue::{Appended, Batch, MemoryQueue, Queue};
use crate::config::RemoteWriteConfig;
use crate::http::HttpError;
pub use crate::model::SampleSink;
use crate::model::{Labels, Sample};

/// Errors of [`RemoteWriter::apply`]. On error nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// The URL is not usable as an HTTP request URI.
    #[error("remote_write {name:?}: url {url} is not a valid request URI")]
    Url {
        /// Endpoint name.
        name: String,
        /// The URL without credentials.
        url: String,
        /// Why.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The HTTP client could not be built from the TLS/auth settings.
    #[error("remote_write {name:?}: cannot build the HTTP client")]
    Client {
        /// Endpoint name.
        name: String,
        /// Why.
        #[source]
        source: HttpError,
    },
    /// Two endpoints share a name.
    #[error("remote_write: name {0:?} is used by more than one endpoint")]
    DuplicateName(String),
    /// The on-disk queue could not be opened.
    #[error("remote_write {name:?}: cannot open the on-disk queue")]
    Queue {
        /// Endpoint name.
        name: String,
        /// Why.
        #[source]
        source: disk::DiskQueueError,
    },
}

impl RemoteWriteError {
    /// Short kind for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Url { .. } => "url",
            Self::Client { .. } => "client",
            Self::DuplicateName(_) => "duplicate_name",
            Self::Queue { .. } => "queue",
        }
    }
}

/// What `/api/v1/status` shows about one endpoint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointStatus {
    /// `remote_name`.
    pub name: String,
    /// URL without credentials or query string.
    pub url: String,
    /// Wire protocol spoken.
    pub protocol: &'static str,
    /// Samples pending: queued (in memory or on disk) or in flight.
    /// `samples_collected + samples_recovered = samples_sent + sum(samples_dropped) + queue_length`.
    pub queue_length: usize,
    /// Bytes of the on-disk queue (`None` for an in-memory queue).
    pub disk_bytes: Option<u64>,
    /// Samples handed to this endpoint since start (before write relabeling).
    pub samples_collected: u64,
    /// Samples found in the on-disk queue at start.
    pub samples_recovered: u64,
    /// Sending shards.
    pub shards: usize,
    /// Samples delivered.
    pub samples_sent: u64,
    /// Samples rejected by the receiver (non-retryable status).
    pub samples_failed: u64,
    /// Samples re-sent after retryable failures.
    pub samples_retried: u64,
    /// Samples lost, by reason.
    pub samples_dropped: BTreeMap<&'static str, u64>,
    /// Compressed bytes delivered.
    pub bytes_sent: u64,
    /// Unix milliseconds of the last delivered request.
    pub last_success_unix_ms: Option<u64>,
    /// The last failure: `HTTP <code>` or the client error kind.
    pub last_error: Option<String>,
}

/// The sink handed to producers: fans samples out to the current endpoints.
#[derive(Default)]
struct Fanout {
    endpoints: RwLock<Arc<[Arc<EndpointShared>]>>,
}

impl Fanout {
    fn set(&self, endpoints: Arc<[Arc<EndpointShared>]>) {
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = endpoints;
    }
}

impl SampleSink for Fanout {
    fn append(&self, samples: Vec<Sample>) {
        let endpoints = Arc::clone(
            &self
                .endpoints
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        // Every endpoint but the last gets a copy; the last takes the batch.
        if let Some((last, others)) = endpoints.split_last() {
            for e in others {
                e.append(samples.clone());
            }
            last.append(samples);
        }
    }
}

/// Owns every remote write endpoint.
pub struct RemoteWriter {
    metrics: Metrics,
    endpoints: Vec<Endpoint>,
    fanout: Arc<Fanout>,
    /// Removed endpoints still draining in the background.
    retiring: Vec<JoinHandle<()>>,
    /// Fires when shutdown's deadline passes, to cut retiring drains short.
    abort: watch::Sender<shard::Stop>,
    /// Root of the on-disk queues (`storage.path`); `None`: in memory.
    storage: Option<PathBuf>,
}

enum Plan {
    /// Same transport: keep the running endpoint (and its queue).
    Keep(Endpoint),
    /// New, or replacing the previous endpoint of that name once it drained.
    Start(Box<endpoint::Prepared>, Option<Endpoint>),
}

impl RemoteWriter {
    /// A writer with no endpoints and bounded in-memory queues (lost on
    /// restart); registers the metric families once.
    pub fn new(registry: &mut prometheus_client::registry::Registry) -> Self {
        Self {
            metrics: Metrics::register(registry),
            endpoints: Vec::new(),
            fanout: Arc::default(),
            retiring: Vec::new(),
            abort: watch::channel(shard::Stop::No).0,
            storage: None,
        }
    }

    /// A writer whose endpoints queue on disk under
    /// `storage/<endpoint name>-<hash>/`, surviving restarts and crashes.
    pub fn with_storage(
        registry: &mut prometheus_client::registry::Registry,
        storage: PathBuf,
    ) -> Self {
        Self {
            storage: Some(storage),
            ..Self::new(registry)
        }
    }

    /// Starts, keeps or stops endpoints so they match `configs` (matched by
    /// name). An endpoint whose only changes are relabeling or external
    /// labels keeps its queue and applies them to new samples. One whose URL,
    /// headers, client, timeout or queue settings changed is replaced: the old
    /// one drains (up to 30 s) before the new one sends, so no series is
    /// reordered. Removed endpoints drain in the background. External labels
    /// are added to series that lack them, before write relabeling.
    pub async fn apply(
        &mut self,
        configs: &[RemoteWriteConfig],
        external_labels: &Labels,
    ) -> Result<(), RemoteWriteError> {
        let mut names = HashSet::new();
        for c in configs {
            if !names.insert(c.name.as_str()) {
                return Err(RemoteWriteError::DuplicateName(c.name.clone()));
            }
        }
        let mut old: HashMap<String, Endpoint> = self
            .endpoints
            .drain(..)
            .map(|e| (e.shared().config.name.clone(), e))
            .collect();
        // Build everything fallible before changing anything.
        let mut plans = Vec::with_capacity(configs.len());
        for c in configs {
            let plan = match old.remove(&c.name) {
                Some(e) if e.same_transport(c) => Ok(Plan::Keep(e)),
                previous => Endpoint::prepare(c, self.storage.as_deref(), previous.is_some())
                    .map(|p| Plan::Start(Box::new(p), previous)),
            };
            match plan {
                Ok(p) => plans.push(p),
                Err(e) => {
                    // Roll back: every endpoint keeps running unchanged.
                    for p in plans {
                        match p {
                            Plan::Keep(e) | Plan::Start(_, Some(e)) => self.endpoints.push(e),
                            Plan::Start(_, None) => {}
                        }
                    }
                    self.endpoints.extend(old.into_values());
                    return Err(e);
                }
            }
        }
        // Before anything starts: a drained predecessor must not remove the
        // metric series its successor shares.
        self.metrics.set_in_use(
            configs
                .iter()
                .map(|c| (c.name.clone(), display_url(&c.url))),
        );
        let next: Vec<Endpoint> = configs
            .iter()
            .zip(plans)
            .map(|(c, plan)| match plan {
                Plan::Keep(e) => {
                    e.set_rules(c, external_labels);
                    e
                }
                Plan::Start(p, previous) => {
                    Endpoint::start(*p, external_labels, &self.metrics, previous)
                }
            })
            .collect();
        self.endpoints = next;
        self.fanout.set(
            self.endpoints
                .iter()
                .map(|e| Arc::clone(e.shared()))
                .collect(),
        );
        self.retiring.retain(|h| !h.is_finished());
        for (_, removed) in old {
            let (metrics, abort) = (self.metrics.clone(), self.abort.subscribe());
            self.retiring.push(tokio::spawn(async move {
                let (name, url) = (
                    removed.shared().config.name.clone(),
                    removed.shared().url.clone(),
                );
                removed.drain(RELOAD_DRAIN_DEADLINE, Some(abort)).await;
                metrics.retire(&name, &url);
            }));
        }
        Ok(())
    }

    /// The producers' handle; stays valid across [`Self::apply`].
    pub fn sink(&self) -> Arc<dyn SampleSink> {
        Arc::clone(&self.fanout) as Arc<dyn SampleSink>
    }

    /// Status of every current endpoint, in config order.
    pub fn status(&self) -> Vec<EndpointStatus> {
        self.endpoints.iter().map(Endpoint::status).collect()
    }

    /// Sends what is queued, within `deadline`; what could not be sent is
    /// counted as dropped `reason="shutdown"`. Appends after this point are
    /// refused and counted the same way.
    pub async fn shutdown(self, deadline: Duration) {
        let Self {
            endpoints,
            retiring,
            abort,
            ..
        } = self;
        let drains =
            futures_util::future::join_all(endpoints.into_iter().map(|e| e.drain(deadline, None)));
        let work = async { tokio::join!(drains, futures_util::future::join_all(retiring)) };
        tokio::pin!(work);
        tokio::select! {
            _ = &mut work => return,
            () = tokio::time::sleep(deadline) => {}
        }
        // Retiring drains see the abort and finish at once; the current
        // endpoints' drains end at the same deadline by themselves.
        let _ = abort.send(shard::Stop::Now);
        work.await;
    }
}
