//! Self-metrics of remote write. Families are registered once by
//! [`super::RemoteWriter::new`]; each endpoint takes its handles up front, so
//! nothing is looked up per sample. Labels carry only bounded values.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Why samples were lost (the `reason` label); the one loss counter is
/// `crowsnest_remote_write_dropped_samples_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The shard's in-memory queue was at capacity (the durable queue will remove this loss).
    QueueFull,
    /// The receiver rejected the batch with a non-retryable status (4xx, 429 without retry, 3xx).
    Rejected,
    /// Still queued when the shutdown (or reload) deadline passed.
    Shutdown,
    /// The label set breaks the 1.0 label rules after relabeling.
    InvalidLabels,
    /// The request could not be encoded.
    Encode,
    /// The oldest queued data was dropped to stay within the disk budget.
    DiskFull,
    /// Queued data was damaged on disk (checksum mismatch, torn write).
    Corrupt,
    /// The queue could not write to disk.
    Io,
    /// `write_relabel_configs` dropped the series.
    RelabelDrop,
}

impl DropReason {
    /// Every reason, for status output and cleanup.
    pub const ALL: [Self; 9] = [
        Self::QueueFull,
        Self::Rejected,
        Self::Shutdown,
        Self::InvalidLabels,
        Self::Encode,
        Self::DiskFull,
        Self::Corrupt,
        Self::Io,
        Self::RelabelDrop,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Rejected => "rejected",
            Self::Shutdown => "shutdown",
            Self::InvalidLabels => "invalid_labels",
            Self::Encode => "encode",
            Self::DiskFull => "disk_full",
            Self::Corrupt => "corrupt",
            Self::Io => "io_error",
            Self::RelabelDrop => "relabel_drop",
        }
    }
}

/// The `code` label of the requests counter: the status class, or `error`
/// when there was no response.
pub const CODE_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// Index into [`CODE_CLASSES`] for a status code.
pub fn code_class(status: http::StatusCode) -> usize {
    (usize::from(status.as_u16() / 100)).clamp(1, 5) - 1
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    remote_name: String,
    url: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    remote_name: String,
    url: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    remote_name: String,
    url: String,
    code: &'static str,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 5 ms .. ~20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// The registered families.
#[derive(Clone)]
pub struct Metrics {
    collected: Family<EndpointLabels, Counter>,
    recovered: Family<EndpointLabels, Counter>,
    sent: Family<EndpointLabels, Counter>,
    failed: Family<EndpointLabels, Counter>,
    retried: Family<EndpointLabels, Counter>,
    dropped: Family<ReasonLabels, Counter>,
    queue_length: Family<EndpointLabels, Gauge>,
    disk_bytes: Family<EndpointLabels, Gauge>,
    disk_budget: Family<EndpointLabels, Gauge>,
    shards: Family<EndpointLabels, Gauge>,
    last_success: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    bytes: Family<EndpointLabels, Counter>,
    requests: Family<CodeLabels, Counter>,
    duration: HistogramFamily,
    /// Endpoints in the current config: their series are never removed.
    in_use: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Metrics {
    /// Creates and registers every family (call once per registry).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            collected: Family::default(),
            recovered: Family::default(),
            sent: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            dropped: Family::default(),
            queue_length: Family::default(),
            disk_bytes: Family::default(),
            disk_budget: Family::default(),
            shards: Family::default(),
            last_success: Family::default(),
            bytes: Family::default(),
            requests: Family::default(),
            duration: HistogramFamily::new_with_constructor(duration_histogram),
            in_use: Arc::default(),
        };
        let r = registry;
        r.register(
            "crowsnest_remote_write_collected_samples",
            "Samples handed to this endpoint. collected + recovered = sent + dropped + pending (queue_length).",
            m.collected.clone(),
        );
        r.register(
            "crowsnest_remote_write_recovered_samples",
            "Samples found in the on-disk queue at start, left by the previous run.",
            m.recovered.clone(),
        );
        r.register(
            "crowsnest_remote_write_samples",
            "Samples delivered (2xx).",
            m.sent.clone(),
        );
        r.register(
            "crowsnest_remote_write_samples_failed",
            "Samples in batches the receiver rejected with a non-retryable status (also in dropped_samples_total{reason=\"rejected\"}).",
            m.failed.clone(),
        );
        r.register(
            "crowsnest_remote_write_samples_retried",
            "Samples in requests that failed with a retryable error and were sent again.",
            m.retried.clone(),
        );
        r.register(
            "crowsnest_remote_write_dropped_samples",
            "Samples lost, by reason.",
            m.dropped.clone(),
        );
        r.register(
            "crowsnest_remote_write_queue_length",
            "Samples queued or in flight, not yet acknowledged.",
            m.queue_length.clone(),
        );
        r.register(
            "crowsnest_remote_write_queue_disk_bytes",
            "Bytes of the endpoint's on-disk queue.",
            m.disk_bytes.clone(),
        );
        r.register(
            "crowsnest_remote_write_queue_disk_budget_bytes",
            "The on-disk queue's budget (queue_config.disk_budget); the oldest samples are dropped beyond it.",
            m.disk_budget.clone(),
        );
        r.register(
            "crowsnest_remote_write_shards",
            "Sending shards.",
            m.shards.clone(),
        );
        r.register(
            "crowsnest_remote_write_last_success_timestamp_seconds",
            "Unix time of the last delivered request.",
            m.last_success.clone(),
        );
        r.register(
            "crowsnest_remote_write_bytes",
            "Compressed request bytes delivered.",
            m.bytes.clone(),
        );
        r.register(
            "crowsnest_remote_write_requests",
            "Requests by status class (code=\"error\": no response).",
            m.requests.clone(),
        );
        r.register(
            "crowsnest_remote_write_request_duration_seconds",
            "Duration of one request attempt.",
            m.duration.clone(),
        );
        m
    }

    /// The handles of one endpoint.
    pub fn endpoint(&self, remote_name: &str, url: &str) -> EndpointMetrics {
        let e = EndpointLabels {
            remote_name: remote_name.to_owned(),
            url: url.to_owned(),
        };
        let reason = |r: DropReason| ReasonLabels {
            remote_name: e.remote_name.clone(),
            url: e.url.clone(),
            reason: r.as_str(),
        };
        let code = |c: &'static str| CodeLabels {
            remote_name: e.remote_name.clone(),
            url: e.url.clone(),
            code: c,
        };
        EndpointMetrics {
            collected: self.collected.get_or_create_owned(&e),
            recovered: self.recovered.get_or_create_owned(&e),
            sent: self.sent.get_or_create_owned(&e),
            failed: self.failed.get_or_create_owned(&e),
            retried: self.retried.get_or_create_owned(&e),
            dropped: DropReason::ALL.map(|r| self.dropped.get_or_create_owned(&reason(r))),
            queue_length: self.queue_length.get_or_create_owned(&e),
            disk_bytes: self.disk_bytes.get_or_create_owned(&e),
            disk_budget: self.disk_budget.get_or_create_owned(&e),
            shards: self.shards.get_or_create_owned(&e),
            last_success: self.last_success.get_or_create_owned(&e),
            bytes: self.bytes.get_or_create_owned(&e),
            requests: CODE_CLASSES.map(|c| self.requests.get_or_create_owned(&code(c))),
            duration: self.duration.get_or_create_owned(&e),
        }
    }

    /// Declares the `(remote_name, url)` pairs of the configured endpoints.
    pub fn set_in_use(&self, endpoints: impl IntoIterator<Item = (String, String)>) {
        *self.in_use.lock().unwrap_or_else(PoisonError::into_inner) =
            endpoints.into_iter().collect();
    }

    /// Removes a drained endpoint's series, unless a configured endpoint
    /// still uses the same labels.
    pub fn retire(&self, remote_name: &str, url: &str) {
        let key = (remote_name.to_owned(), url.to_owned());
        if !self
            .in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            self.forget(remote_name, url);
        }
    }

    /// Removes an endpoint's series.
    fn forget(&self, remote_name: &str, url: &str) {
        let e = EndpointLabels {
            remote_name: remote_name.to_owned(),
            url: url.to_owned(),
        };
        self.collected.remove(&e);
        self.recovered.remove(&e);
        self.sent.remove(&e);
        self.failed.remove(&e);
        self.retried.remove(&e);
        self.queue_length.remove(&e);
        self.disk_bytes.remove(&e);
        self.disk_budget.remove(&e);
        self.shards.remove(&e);
        self.last_success.remove(&e);
        self.bytes.remove(&e);
        self.duration.remove(&e);
        for r in DropReason::ALL {
            self.dropped.remove(&ReasonLabels {
                remote_name: e.remote_name.clone(),
                url: e.url.clone(),
                reason: r.as_str(),
            });
        }
        for c in CODE_CLASSES {
            self.requests.remove(&CodeLabels {
                remote_name: e.remote_name.clone(),
                url: e.url.clone(),
                code: c,
            });
        }
    }
}

/// One endpoint's metric handles (shared with its family; cloning is cheap).
#[derive(Clone, Debug)]
pub struct EndpointMetrics {
    /// Samples handed to the endpoint (before write relabeling).
    pub collected: Counter,
    /// Samples found queued on disk at start.
    pub recovered: Counter,
    /// Samples delivered.
    pub sent: Counter,
    /// Samples rejected (non-retryable).
    pub failed: Counter,
    /// Samples re-sent after a retryable failure.
    pub retried: Counter,
    dropped: [Counter; DropReason::ALL.len()],
    /// Pending samples.
    pub queue_length: Gauge,
    /// Bytes of the on-disk queue.
    pub disk_bytes: Gauge,
    /// The on-disk queue's budget.
    pub disk_budget: Gauge,
    /// Shard count.
    pub shards: Gauge,
    /// Unix seconds of the last success.
    pub last_success: Gauge<f64, AtomicU64>,
    /// Bytes delivered.
    pub bytes: Counter,
    requests: [Counter; CODE_CLASSES.len()],
    /// Request durations.
    pub duration: Histogram,
}

impl EndpointMetrics {
    /// The dropped counter of `reason`.
    pub fn dropped(&self, reason: DropReason) -> &Counter {
        // The array is built from DropReason::ALL in order.
        &self.dropped[reason as usize]
    }

    /// Counts `n` dropped samples (no-op for 0).
    pub fn drop_samples(&self, reason: DropReason, n: usize) {
        if n > 0 {
            self.dropped(reason).inc_by(n as u64);
        }
    }

    /// Counts one request with a response of `status`.
    pub fn request(&self, status: http::StatusCode) {
        self.requests[code_class(status)].inc();
    }

    /// Counts one request that got no response.
    pub fn request_error(&self) {
        self.requests[CODE_CLASSES.len() - 1].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_expose_the_documented_names_and_bounded_labels() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let e = m.endpoint("r1", "http://h/w");
        e.sent.inc_by(3);
        e.drop_samples(DropReason::QueueFull, 2);
        e.request(http::StatusCode::SERVICE_UNAVAILABLE);
        e.request_error();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for want in [
            r#"crowsnest_remote_write_samples_total{remote_name="r1",url="http://h/w"} 3"#,
            r#"crowsnest_remote_write_dropped_samples_total{remote_name="r1",url="http://h/w",reason="queue_full"} 2"#,
            r#"crowsnest_remote_write_requests_total{remote_name="r1",url="http://h/w",code="5xx"} 1"#,
            r#"crowsnest_remote_write_requests_total{remote_name="r1",url="http://h/w",code="error"} 1"#,
            "crowsnest_remote_write_request_duration_seconds_bucket",
            "crowsnest_remote_write_last_success_timestamp_seconds{",
            "crowsnest_remote_write_queue_length{",
            "crowsnest_remote_write_queue_disk_bytes{",
            "crowsnest_remote_write_queue_disk_budget_bytes{",
            "crowsnest_remote_write_shards{",
            "crowsnest_remote_write_bytes_total{",
            "crowsnest_remote_write_samples_failed_total{",
            "crowsnest_remote_write_samples_retried_total{",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        m.set_in_use([("r1".to_owned(), "http://h/w".to_owned())]);
        m.retire("r1", "http://h/w");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains("r1"), "still configured: kept");
        m.set_in_use([]);
        m.retire("r1", "http://h/w");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(!text.contains("r1"), "{text}");
    }

    #[test]
    fn code_classes() {
        let c = |n| CODE_CLASSES[code_class(http::StatusCode::from_u16(n).expect("code"))];
        assert_eq!(
            [c(200), c(302), c(400), c(429), c(503)],
            ["2xx", "3xx", "4xx", "4xx", "5xx"]
        );
    }
}
