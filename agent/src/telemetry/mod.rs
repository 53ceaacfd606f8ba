//! Logging setup and the self-metrics registry.
