//! Validated runtime settings. Nothing here is a string that needs parsing
//! again: durations are `Duration`, URLs are `Url`, regexes are compiled.
//! `config::load` is the only way to build these from user input.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::model::Labels;
use crate::relabel;

/// The whole agent configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Defaults for every scrape and the external labels.
    pub global: Global,
    /// Prometheus-style scrape jobs.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Remote write endpoints; every series goes to each of them.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// The agent's own HTTP server.
    pub server: ServerConfig,
    /// Where the agent keeps state on disk.
    pub storage: StorageConfig,
    /// Log format and level.
    pub logging: LoggingConfig,
    /// `runtime:`.
    pub runtime: RuntimeConfig,
    /// Kubernetes metadata: pod watch, owners, enrichment.
    pub kubernetes: KubernetesConfig,
    /// eBPF collectors.
    pub collectors: super::collectors::CollectorsConfig,
    /// Zero-config discovery of the control plane on this node.
    pub discovery: DiscoveryConfig,
}

/// `global:` section.
#[derive(Debug, Clone)]
pub struct Global {
    /// Default scrape interval (Prometheus default 1m).
    pub scrape_interval: Duration,
    /// Default scrape timeout (Prometheus default 10s, never above the interval).
    pub scrape_timeout: Duration,
    /// Labels added to every series sent by remote write (unless the series has them).
    pub external_labels: Labels,
}

/// URL scheme of a scrape target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// One entry of `scrape_configs:`.
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    /// `job_name`: the default `job` label.
    pub job_name: String,
    /// How often each target is scraped.
    pub scrape_interval: Duration,
    /// How long one scrape may take.
    pub scrape_timeout: Duration,
    /// Default `__metrics_path__`.
    pub metrics_path: String,
    /// Default `__scheme__`.
    pub scheme: Scheme,
    /// URL query parameters, in order (a key may repeat).
    pub params: Vec<(String, String)>,
    /// Static targets and their labels.
    pub static_configs: Vec<StaticConfig>,
    /// Pod discovery on this node (`kubernetes_sd_configs`, role `pod`).
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Keep the target's labels on clashes instead of renaming them `exported_*`.
    pub honor_labels: bool,
    /// Use timestamps from the exposition when present.
    pub honor_timestamps: bool,
    /// TLS and authentication for the scrape requests.
    pub http: HttpClientConfig,
    /// Fail the scrape when it yields more samples than this after metric relabeling (0: no limit).
    pub sample_limit: usize,
    /// Fail the scrape when a series has more labels than this (0: no limit).
    pub label_limit: usize,
    /// Fail the scrape when the (uncompressed) body is larger than this many bytes (0: no limit).
    pub body_size_limit: u64,
    /// Target relabeling.
    pub relabel_configs: relabel::Rules,
    /// Series relabeling, applied to every scraped series.
    pub metric_relabel_configs: relabel::Rules,
}

/// One entry of `static_configs:`.
#[derive(Debug, Clone)]
pub struct StaticConfig {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels for every target of this group.
    pub labels: Labels,
}

/// TLS and authentication of an HTTP client (scrape or remote write).
#[derive(Debug, Clone, Default)]
pub struct HttpClientConfig {
    /// TLS settings.
    pub tls: TlsConfig,
    /// Authorization header source, if any.
    pub auth: Option<Auth>,
}

/// `tls_config:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA bundle to verify the server; the system roots when unset.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against (and send as SNI).
    pub server_name: Option<String>,
    /// Skip server certificate verification. Only ever when configured.
    pub insecure_skip_verify: bool,
}

/// A secret value: never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// Where a credential comes from. Files are re-read when they change, so
/// rotated service-account tokens keep working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Given inline in the config.
    Inline(Secret),
    /// Read from this file (trailing whitespace trimmed).
    File(PathBuf),
}

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: <kind> <credential>` (`authorization:` or `bearer_token_file:`).
    Authorization {
        /// The scheme, `Bearer` by default.
        kind: String,
        /// The credential.
        credential: Credential,
    },
    /// `basic_auth:`.
    Basic {
        /// User name.
        username: String,
        /// Password, if any.
        password: Option<Credential>,
    },
}

/// One entry of `remote_write:`.
#[derive(Debug, Clone)]
pub struct RemoteWriteConfig {
    /// Where to POST.
    pub url: Url,
    /// Name used in self-metrics and logs (`remote_name`); derived from the URL when unset.
    pub name: String,
    /// Extra headers (reserved remote-write headers are refused at load).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Timeout of one request.
    pub remote_timeout: Duration,
    /// TLS and authentication.
    pub http: HttpClientConfig,
    /// Relabeling applied to series before they are sent to this endpoint.
    pub write_relabel_configs: relabel::Rules,
    /// Queue and sharding settings.
    pub queue: QueueConfig,
    /// Which wire message to send (`protobuf_message`).
    pub protobuf_message: ProtobufMessage,
    /// Send exemplars (`send_exemplars`, default false, as in Prometheus).
    pub send_exemplars: bool,
}

/// `protobuf_message:` of a remote_write endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtobufMessage {
    /// `prometheus.WriteRequest` (remote write 1.0).
    #[default]
    V1,
    /// `io.prometheus.write.v2.Request` (remote write 2.0).
    V2,
    /// Try 2.0; fall back to 1.0 when the receiver does not speak it.
    Auto,
}

impl ProtobufMessage {
    /// The names accepted in the config, with their values.
    pub const NAMES: [(&'static str, Self); 3] = [
        ("prometheus.WriteRequest", Self::V1),
        ("io.prometheus.write.v2.Request", Self::V2),
        ("auto", Self::Auto),
    ];
}

/// `queue_config:` with Prometheus' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Samples buffered per shard.
    pub capacity: usize,
    /// Upper bound on concurrent shards.
    pub max_shards: usize,
    /// Lower bound on concurrent shards.
    pub min_shards: usize,
    /// Samples per request at most.
    pub max_samples_per_send: usize,
    /// Send a partial batch after this long.
    pub batch_send_deadline: Duration,
    /// First retry delay.
    pub min_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
    /// Retry on 429 Too Many Requests (honouring Retry-After).
    pub retry_on_http_429: bool,
    /// Bytes the endpoint's on-disk queue may use; the oldest data is
    /// dropped (and counted) beyond it.
    pub disk_budget: u64,
    /// How often queued data is fsynced (what a power loss can lose).
    pub fsync_interval: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        // Prometheus' DefaultQueueConfig.
        Self {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2_000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
            disk_budget: 1 << 30,
            fsync_interval: Duration::from_secs(1),
        }
    }
}

/// `server:` section.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of the HTTP server (`/metrics`, `/healthz`, `/readyz`, `/api/v1/status`).
    pub listen_address: SocketAddr,
}

/// `runtime:` section, read once at start (a reload does not change it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Async worker threads of the agent's runtime.
    pub worker_threads: usize,
}

/// `storage:` section.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Directory for the agent's state (the remote-write queue, later).
    pub path: PathBuf,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (development).
    Text,
}

/// `logging:` section.
#[derive(Debug, Clone)]
pub struct LoggingConfig {
    /// `tracing_subscriber::EnvFilter` directive, e.g. `info` or `crowsnest::scrape=debug`.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// Whether the agent talks to the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeMode {
    /// Use it when a client config is found (in-cluster or kubeconfig);
    /// otherwise run in plain-host mode.
    Auto,
    /// Always try (and keep retrying); unreachable is an error in logs and status.
    Enabled,
    /// Never: plain-host mode.
    Disabled,
}

/// `kubernetes:` section.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// Whether to use the API.
    pub mode: KubeMode,
    /// Node name override (else env `NODE_NAME`, else the hostname).
    pub node_name: Option<String>,
    /// Kubeconfig for development (else in-cluster, else the default kubeconfig).
    pub kubeconfig: Option<PathBuf>,
    /// Bounded wait for the first pod list before the first eBPF export.
    pub sync_timeout: Duration,
    /// Pod label keys copied onto series.
    pub pod_labels: Vec<String>,
    /// TTL of owner lookups.
    pub owner_cache_ttl: Duration,
    /// Owner cache capacity.
    pub owner_cache_size: usize,
    /// Hold of samples whose container is not known yet (zero: no hold).
    pub hold: Duration,
    /// Bound on held samples.
    pub hold_max_samples: usize,
    /// Add the community chart's `kubernetes-pods` job (pods annotated
    /// `prometheus.io/scrape: "true"`), unless a job has that name.
    pub annotation_discovery: bool,
    /// That job, built and validated at load time (`None` when off, disabled
    /// or a user job has its name).
    pub annotation_job: Option<ScrapeConfig>,
}

/// One `kubernetes_sd_configs:` entry: `role: pod`, restricted to this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesSdConfig {
    /// Namespaces to keep (empty: all).
    pub namespaces: Vec<String>,
}

/// `discovery:` section: which control-plane components to look for on this
/// node and how (see `crate::discovery`).
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Master switch.
    pub enabled: bool,
    /// How often discovery runs again (unchanged jobs keep running).
    pub refresh_interval: Duration,
    /// Folder of static pod manifests.
    pub manifests_path: PathBuf,
    /// The `node` label; `None`: `NODE_NAME`, else the host name.
    pub node_name: Option<String>,
    /// Address the well-known ports are probed on.
    pub probe_address: std::net::IpAddr,
    /// Timeout of one probe.
    pub probe_timeout: Duration,
    /// Bearer token file for the components that take one.
    pub token_file: PathBuf,
    /// CA bundle for kube-apiserver (the cluster CA).
    pub ca_file: PathBuf,
    /// One entry per component, in `crate::discovery::SPECS` order.
    pub components: Vec<ComponentConfig>,
}

impl DiscoveryConfig {
    /// The settings of `component` (every component has an entry).
    pub fn component(&self, component: crate::discovery::Component) -> ComponentConfig {
        self.components
            .iter()
            .find(|c| c.component == component)
            .cloned()
            .unwrap_or_else(|| ComponentConfig::defaults(component))
    }
}

/// Which metric families of a discovered component are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricSet {
    /// The families worth watching (`crate::discovery::curated_regex`).
    Curated,
    /// Everything the component exposes.
    All,
}

/// `discovery.components.<job>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentConfig {
    /// The component.
    pub component: crate::discovery::Component,
    /// Whether to discover it at all.
    pub enabled: bool,
    /// Curated or all metrics.
    pub metrics: MetricSet,
    /// Well-known ports to probe when no manifest names it (empty: never probe).
    pub ports: Vec<u16>,
    /// CA override.
    pub ca_file: Option<PathBuf>,
    /// Client certificate override (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// Client key override (with `cert_file`).
    pub key_file: Option<PathBuf>,
    /// `insecure_skip_verify` override; `None`: the component's default.
    pub insecure_skip_verify: Option<bool>,
}

impl ComponentConfig {
    /// The built-in settings of `component`.
    pub fn defaults(component: crate::discovery::Component) -> Self {
        Self {
            component,
            enabled: true,
            metrics: MetricSet::Curated,
            ports: component.spec().ports.iter().map(|p| p.port).collect(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            insecure_skip_verify: None,
        }
    }
}
