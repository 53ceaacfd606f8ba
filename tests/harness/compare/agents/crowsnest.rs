//! crowsnest: its YAML config; the integration tests' [`crate::Agent`] launcher adds the
//! listen address and the storage directory (so the on-disk queue runs as in production).

use serde_json::json;

use super::scrape_configs;

/// Scrape the targets, remote-write to `remote_write`, nothing else: no eBPF collectors
/// and no control-plane discovery, which the other agents do not do either.
pub(super) fn config(targets: &[String], remote_write: &str) -> String {
    json!({
        "global": { "scrape_interval": "1s", "scrape_timeout": "1s" },
        "scrape_configs": scrape_configs(targets),
        "remote_write": [{ "url": remote_write }],
        "logging": { "level": "warn", "format": "text" },
        "collectors": { "enabled": [] },
        "discovery": { "enabled": false },
    })
    .to_string()
}
