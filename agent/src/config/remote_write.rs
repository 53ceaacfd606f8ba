//! `remote_write:`: endpoints, their headers, relabeling and queues.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::bytesize::ByteSize;
use super::duration::{PromDuration, format_duration};
use super::error::{ConfigError, field};
use super::flag::Flag;
use super::http_client::{RawAuthorization, RawBasicAuth, RawHttp, RawTls};
use super::scrape::compile;
use super::types::{ProtobufMessage, QueueConfig, RemoteWriteConfig, Secret};
use super::unique_map::UniqueMap;

/// Smallest `disk_budget`: a few segments of a useful size.
const MIN_DISK_BUDGET: u64 = 1 << 20;

/// Prometheus' default `remote_timeout`.
const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers the sender sets itself or that would break the request; a user
/// value would either be overwritten or corrupt the protocol. Lower case.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "x-prometheus-remote-write-version",
    "user-agent",
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
];

/// One `remote_write:` entry as written.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a remote_write entry (a map with url)"
)]
pub(super) struct RawRemoteWrite {
    /// Endpoint URL (http or https); required.
    url: Option<String>,
    /// Name in logs and self-metrics (default: URL host and path); unique.
    name: Option<String>,
    /// Extra HTTP headers, e.g. `X-Scope-OrgID`.
    headers: Option<UniqueMap<String>>,
    /// Timeout of one request (default 30s).
    remote_timeout: Option<PromDuration>,
    /// TLS settings.
    tls_config: Option<RawTls>,
    /// `Authorization` header settings.
    authorization: Option<RawAuthorization>,
    /// HTTP basic authentication.
    basic_auth: Option<RawBasicAuth>,
    /// Legacy inline bearer token.
    bearer_token: Option<Secret>,
    /// Legacy bearer token file.
    bearer_token_file: Option<PathBuf>,
    /// Relabeling before sending to this endpoint.
    write_relabel_configs: Option<Vec<crate::relabel::RelabelConfig>>,
    /// Queue and sharding.
    queue_config: Option<RawQueue>,
    /// `prometheus.WriteRequest` (default), `io.prometheus.write.v2.Request` or `auto`.
    protobuf_message: Option<String>,
    /// Send exemplars scraped from OpenMetrics targets (default false).
    send_exemplars: Option<Flag>,
}

/// `queue_config:` as written; unset fields take [`QueueConfig::default`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a queue_config map")]
pub(super) struct RawQueue {
    /// Samples buffered per shard.
    capacity: Option<u64>,
    /// Most shards.
    max_shards: Option<u64>,
    /// Fewest shards.
    min_shards: Option<u64>,
    /// Most samples per request.
    max_samples_per_send: Option<u64>,
    /// Longest wait before sending a partial batch.
    batch_send_deadline: Option<PromDuration>,
    /// First retry delay.
    min_backoff: Option<PromDuration>,
    /// Longest retry delay.
    max_backoff: Option<PromDuration>,
    /// Retry on HTTP 429.
    retry_on_http_429: Option<Flag>,
    /// Disk space of the endpoint's queue (default 1GiB).
    disk_budget: Option<ByteSize>,
    /// How often the queue is fsynced (default 1s).
    fsync_interval: Option<PromDuration>,
}

/// Validates every endpoint; names (given or derived) must be unique.
pub(super) fn build_all(raw: Vec<RawRemoteWrite>) -> Result<Vec<RemoteWriteConfig>, ConfigError> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let path = format!("remote_write[{i}]");
        let config = r.build(&path)?;
        if let Some(first) = names.insert(config.name.clone(), i) {
            return Err(ConfigError::invalid(
                field(&path, "name"),
                format!(
                    "({:?}) is already used by remote_write[{first}]",
                    config.name
                ),
                "set a distinct name on one of them (names default to the URL's host and path)",
            ));
        }
        out.push(config);
    }
    Ok(out)
}

impl RawRemoteWrite {
    fn build(self, path: &str) -> Result<RemoteWriteConfig, ConfigError> {
        let url = parse_url(self.url, &field(path, "url"))?;
        let name = match self.name {
            Some(n) if n.is_empty() => {
                return Err(ConfigError::invalid(
                    field(path, "name"),
                    "is empty",
                    "remove it to derive the name from the URL, or give a name",
                ));
            }
            Some(n) => n,
            None => derived_name(&url),
        };
        let http = RawHttp {
            tls_config: self.tls_config,
            authorization: self.authorization,
            basic_auth: self.basic_auth,
            bearer_token: self.bearer_token,
            bearer_token_file: self.bearer_token_file,
        }
        .build(path)?;
        let headers = build_headers(
            self.headers.unwrap_or_default().0,
            &field(path, "headers"),
            http.auth.is_some(),
        )?;
        let remote_timeout = self.remote_timeout.map_or(DEFAULT_REMOTE_TIMEOUT, |d| d.0);
        positive(remote_timeout, &field(path, "remote_timeout"))?;
        let queue = match self.queue_config {
            Some(q) => q.build(&field(path, "queue_config"))?,
            None => QueueConfig::default(),
        };
        let protobuf_message = match self.protobuf_message {
            None => ProtobufMessage::default(),
            Some(m) => ProtobufMessage::NAMES
                .iter()
                .find(|(n, _)| *n == m)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        field(path, "protobuf_message"),
                        format!("({m:?}) is not a known message"),
                        "use prometheus.WriteRequest, io.prometheus.write.v2.Request or auto",
                    )
                })?,
        };
        Ok(RemoteWriteConfig {
            protobuf_message,
            send_exemplars: self.send_exemplars.is_some_and(|f| f.0),
            url,
            name,
            headers,
            remote_timeout,
            http,
            write_relabel_configs: compile(
                self.write_relabel_configs,
                &field(path, "write_relabel_configs"),
            )?,
            queue,
        })
    }
}

fn parse_url(raw: Option<String>, path: &str) -> Result<url::Url, ConfigError> {
    let raw = raw.filter(|u| !u.is_empty()).ok_or_else(|| {
        ConfigError::invalid(
            path,
            "is missing",
            "set url to the receiver's write endpoint, e.g. http://prometheus:9090/api/v1/write",
        )
    })?;
    let url = url::Url::parse(&raw).map_err(|e| {
        ConfigError::invalid(
            path,
            format!("is not a valid URL ({e})"),
            "write a full URL such as https://host:port/api/v1/write",
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            path,
            format!("has scheme {:?}", url.scheme()),
            "use an http:// or https:// URL",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            path,
            "has no host",
            "write a full URL such as https://host:port/api/v1/write",
        ));
    }
    // Credentials in the URL would end up in logs and Debug output.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            path,
            "contains credentials",
            "remove user:password@ from the URL and use basic_auth instead",
        ));
    }
    Ok(url)
}

/// `host[:port]/path` without a trailing slash: stable, readable, bounded.
fn derived_name(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let mut name = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    name.push_str(url.path().trim_end_matches('/'));
    name
}

fn build_headers(
    raw: BTreeMap<String, String>,
    path: &str,
    has_auth: bool,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(ConfigError::invalid(
                field(path, &name),
                "is set by crowsnest itself",
                "remove this header; remote write sets it as the protocol requires",
            ));
        }
        if lower == "authorization" && has_auth {
            return Err(ConfigError::invalid(
                field(path, &name),
                "conflicts with the configured authentication",
                "remove the Authorization header or the authorization/basic_auth/bearer_token_file setting",
            ));
        }
        let header_name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ConfigError::invalid(
                path,
                format!("has an invalid header name {name:?}"),
                "use letters, digits and dashes",
            )
        })?;
        // The value is not echoed: headers often carry tokens.
        let mut header_value = http::HeaderValue::from_str(&value).map_err(|_| {
            ConfigError::invalid(
                field(path, &name),
                "has a value with characters not allowed in HTTP headers",
                "use visible ASCII characters and spaces only",
            )
        })?;
        // Keeps the value out of Debug output and marks it for HPACK as never-indexed.
        header_value.set_sensitive(true);
        if out.iter().any(|(n, _)| *n == header_name) {
            return Err(ConfigError::invalid(
                field(path, &name),
                "repeats a header already set (header names ignore case)",
                "keep one spelling of the header",
            ));
        }
        out.push((header_name, header_value));
    }
    Ok(out)
}

impl RawQueue {
    fn build(self, path: &str) -> Result<QueueConfig, ConfigError> {
        let d = QueueConfig::default();
        let count = |v: Option<u64>, default: usize, name: &str| -> Result<usize, ConfigError> {
            let Some(v) = v else { return Ok(default) };
            match usize::try_from(v) {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(ConfigError::invalid(
                    field(path, name),
                    format!("({v}) is out of range"),
                    format!("use a number of 1 or more (default {default})"),
                )),
            }
        };
        let q = QueueConfig {
            capacity: count(self.capacity, d.capacity, "capacity")?,
            max_shards: count(self.max_shards, d.max_shards, "max_shards")?,
            min_shards: count(self.min_shards, d.min_shards, "min_shards")?,
            max_samples_per_send: count(
                self.max_samples_per_send,
                d.max_samples_per_send,
                "max_samples_per_send",
            )?,
            batch_send_deadline: self
                .batch_send_deadline
                .map_or(d.batch_send_deadline, |v| v.0),
            min_backoff: self.min_backoff.map_or(d.min_backoff, |v| v.0),
            max_backoff: self.max_backoff.map_or(d.max_backoff, |v| v.0),
            retry_on_http_429: self.retry_on_http_429.map_or(d.retry_on_http_429, |f| f.0),
            disk_budget: self.disk_budget.map_or(d.disk_budget, |b| b.0),
            fsync_interval: self.fsync_interval.map_or(d.fsync_interval, |v| v.0),
        };
        positive(q.fsync_interval, &field(path, "fsync_interval"))?;
        if q.disk_budget < MIN_DISK_BUDGET {
            return Err(ConfigError::invalid(
                field(path, "disk_budget"),
                format!("({} bytes) is below the minimum of 1MiB", q.disk_budget),
                "use at least 1MiB (default 1GiB)",
            ));
        }
        positive(q.batch_send_deadline, &field(path, "batch_send_deadline"))?;
        positive(q.min_backoff, &field(path, "min_backoff"))?;
        positive(q.max_backoff, &field(path, "max_backoff"))?;
        if q.min_shards > q.max_shards {
            return Err(ConfigError::invalid(
                field(path, "min_shards"),
                format!(
                    "({}) is larger than max_shards ({})",
                    q.min_shards, q.max_shards
                ),
                "lower min_shards or raise max_shards",
            ));
        }
        if q.min_backoff > q.max_backoff {
            return Err(ConfigError::invalid(
                field(path, "min_backoff"),
                format!(
                    "({}) is longer than max_backoff ({})",
                    format_duration(q.min_backoff),
                    format_duration(q.max_backoff)
                ),
                "lower min_backoff or raise max_backoff",
            ));
        }
        Ok(q)
    }
}

fn positive(d: Duration, path: &str) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::invalid(
            path,
            "is 0",
            "use a duration above zero, e.g. 5s, or remove it for the default",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{ProtobufMessage, load_from_str};

    #[test]
    fn durable_queue_and_protocol_fields() {
        let cases = [
            ("", 1 << 30, Duration::from_secs(1), ProtobufMessage::V1),
            (
                "  protobuf_message: auto\n  queue_config:\n    disk_budget: 2GiB\n    fsync_interval: 250ms\n",
                2 << 30,
                Duration::from_millis(250),
                ProtobufMessage::Auto,
            ),
            (
                "  protobuf_message: io.prometheus.write.v2.Request\n",
                1 << 30,
                Duration::from_secs(1),
                ProtobufMessage::V2,
            ),
            (
                "  protobuf_message: prometheus.WriteRequest\n  queue_config:\n    disk_budget: 1048576\n",
                1 << 20,
                Duration::from_secs(1),
                ProtobufMessage::V1,
            ),
        ];
        for (extra, budget, fsync, message) in cases {
            let yaml = format!("remote_write:\n- url: http://a/w\n{extra}");
            let c = load_from_str(&yaml, &[]).expect("valid");
            let rw = &c.remote_write[0];
            assert_eq!(
                (
                    rw.queue.disk_budget,
                    rw.queue.fsync_interval,
                    rw.protobuf_message
                ),
                (budget, fsync, message),
                "{extra}"
            );
        }
    }
}
