//! Configuration: YAML (Prometheus-compatible where Prometheus has the same
//! setting) plus `CROWSNEST_…` environment overrides, validated once at start
//! into the typed settings of [`types`].

pub mod collectors;
mod types;

pub use types::*;
