//! Configuration: YAML (Prometheus-compatible where Prometheus has the same
//! setting) plus `CROWSNEST_…` environment overrides, validated once at start
//! into the typed settings of [`types`].
//!
//! One file per section turns its raw serde structs (unknown keys refused)
//! into the typed values: `global.rs`, `scrape.rs`, `remote_write.rs`,
//! `http_client.rs` (TLS and auth shared by both), `server.rs` (server,
//! storage, logging), `discovery.rs` (control-plane discovery). `load.rs` reads the file, layers the environment and
//! assembles the result; `duration.rs`, `bytesize.rs`, `flag.rs` (YAML 1.1
//! booleans) and `unique_map.rs` (no duplicate keys) read values the way
//! Prometheus does. `agent/config/example.yaml` documents every setting.
//!
//! Environment overrides: `CROWSNEST_<SECTION>__<FIELD>=value`, e.g.
//! `CROWSNEST_GLOBAL__SCRAPE_INTERVAL=30s`,
//! `CROWSNEST_SERVER__LISTEN_ADDRESS=0.0.0.0:9090`,
//! `CROWSNEST_LOGGING__LEVEL=debug`,
//! `CROWSNEST_GLOBAL__EXTERNAL_LABELS__cluster=prod` (label name case kept).
//! Lists (`scrape_configs`, `remote_write`) are set in the file only.

mod bytesize;
pub mod collectors;
mod discovery;
mod duration;
mod error;
mod flag;
mod global;
mod http_client;
mod kubernetes;
mod load;
mod remote_write;
mod scrape;
mod server;
mod types;
mod unique_map;

#[cfg(test)]
mod tests;

pub use bytesize::parse_bytes;
pub use discovery::{DEFAULT_CA_FILE, DEFAULT_MANIFESTS_PATH, DEFAULT_TOKEN_FILE};
pub use duration::{format_duration, parse_duration};
pub use error::ConfigError;
pub use kubernetes::{ANNOTATION_JOB, ANNOTATION_JOB_YAML};
pub use load::{load, load_from_str};
pub use scrape::SELF_JOB;
pub use server::{DEFAULT_LISTEN_ADDRESS, DEFAULT_LOG_LEVEL, DEFAULT_STORAGE_PATH};
pub use types::*;
