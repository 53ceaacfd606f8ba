//! The agent's own sections: `server:`, `storage:`, `logging:` and `runtime:`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::error::{ConfigError, field};
use super::types::{LogFormat, LoggingConfig, RuntimeConfig, ServerConfig, StorageConfig};

/// Default listen address. Every port in Prometheus' 9100–9999 exporter range
/// is allocated to some exporter; 9465 avoids the ones found next to this
/// agent on a node: Prometheus (9090), node-exporter (9100), the
/// OpenTelemetry Prometheus exporter (9464), kubelet (10250/10255),
/// kube-proxy (10249/10256) and vmagent (8429). All interfaces, because in a
/// pod the kubelet's probes and Prometheus reach the agent on the pod IP.
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:9465";
/// Default state directory.
pub const DEFAULT_STORAGE_PATH: &str = "/var/lib/crowsnest";
/// Default log filter.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// `server:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the server section (a map)")]
pub(super) struct RawServer {
    /// `ip:port` of the HTTP server (default `0.0.0.0:9465`).
    listen_address: Option<String>,
}

/// `storage:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the storage section (a map)")]
pub(super) struct RawStorage {
    /// State directory (default `/var/lib/crowsnest`).
    path: Option<PathBuf>,
}

/// Default number of async worker threads. One thread carries the whole
/// pipeline at ~1.4 M samples/s on the benchmark machine, and with two the
/// same work cost 16 % more CPU in cross-thread wake-ups (`cargo xtask bench
/// compare`, 100 targets x 2,000 series). fsync has its own thread and eBPF
/// map reads run on tokio's blocking pool, so neither holds the worker up.
pub const DEFAULT_WORKER_THREADS: usize = 1;

/// `runtime:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the runtime section (a map)")]
pub(super) struct RawRuntime {
    /// Async worker threads (default 1; 0: one per CPU).
    worker_threads: Option<usize>,
}

impl RawRuntime {
    /// Overrides the fields set in `over` (the environment layer).
    pub(super) fn overlay(&mut self, over: RawRuntime) {
        self.worker_threads = over.worker_threads.or(self.worker_threads.take());
    }

    /// Validates into [`RuntimeConfig`].
    pub(super) fn build(self) -> Result<RuntimeConfig, ConfigError> {
        let worker_threads = match self.worker_threads.unwrap_or(DEFAULT_WORKER_THREADS) {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n if n > MAX_WORKER_THREADS => {
                return Err(ConfigError::invalid(
                    field("runtime", "worker_threads"),
                    format!("({n}) is more than {MAX_WORKER_THREADS}"),
                    "use 1 (the default) to a few, or 0 for one per CPU",
                ));
            }
            n => n,
        };
        Ok(RuntimeConfig { worker_threads })
    }
}

/// More worker threads than this is a typo, not a node agent.
const MAX_WORKER_THREADS: usize = 256;

/// `logging:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the logging section (a map)")]
pub(super) struct RawLogging {
    /// `tracing` filter directive (default `info`).
    level: Option<String>,
    /// `json` (default) or `text`.
    format: Option<String>,
}

impl RawServer {
    /// Overrides the fields set in `over` (the environment layer).
    pub(super) fn overlay(&mut self, over: RawServer) {
        self.listen_address = over.listen_address.or(self.listen_address.take());
    }

    /// Validates into [`ServerConfig`].
    pub(super) fn build(self) -> Result<ServerConfig, ConfigError> {
        let raw = self
            .listen_address
            .unwrap_or_else(|| DEFAULT_LISTEN_ADDRESS.to_owned());
        let listen_address = raw.parse::<SocketAddr>().map_err(|_| {
            ConfigError::invalid(
                "server.listen_address",
                format!("({raw:?}) is not an ip:port address"),
                "write an IP and a port, e.g. 0.0.0.0:9465 or [::]:9465 (host names are not resolved)",
            )
        })?;
        Ok(ServerConfig { listen_address })
    }
}

impl RawStorage {
    /// Overrides the fields set in `over` (the environment layer).
    pub(super) fn overlay(&mut self, over: RawStorage) {
        self.path = over.path.or(self.path.take());
    }

    /// Validates into [`StorageConfig`].
    pub(super) fn build(self) -> Result<StorageConfig, ConfigError> {
        let path = self
            .path
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORAGE_PATH));
        if path.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "storage.path",
                "is empty",
                format!("remove it to use {DEFAULT_STORAGE_PATH}, or give a directory"),
            ));
        }
        Ok(StorageConfig { path })
    }
}

impl RawLogging {
    /// Overrides the fields set in `over` (the environment layer).
    pub(super) fn overlay(&mut self, over: RawLogging) {
        self.level = over.level.or(self.level.take());
        self.format = over.format.or(self.format.take());
    }

    /// Validates into [`LoggingConfig`]; the level must parse as an
    /// `EnvFilter`, so a typo fails at start instead of silently logging nothing.
    pub(super) fn build(self) -> Result<LoggingConfig, ConfigError> {
        let level = self.level.unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_owned());
        if level.trim().is_empty() {
            return Err(ConfigError::invalid(
                field("logging", "level"),
                "is empty",
                "use a level such as info or debug, or remove it for info",
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
            return Err(ConfigError::invalid(
                field("logging", "level"),
                format!("({level:?}) is not a log filter ({e})"),
                "use a level (error, warn, info, debug, trace) or directives like info,crowsnest::scrape=debug",
            ));
        }
        let format = match self.format.as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError::invalid(
                    field("logging", "format"),
                    format!("({other:?}) is not a log format"),
                    "use json (the default) or text",
                ));
            }
        };
        Ok(LoggingConfig { level, format })
    }
}
