//! Logging setup and the self-metrics registry.

mod logging;
mod process;

pub use logging::{LogHandle, LoggingError, init_logging};
pub use process::ProcessCollector;

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The agent's version, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `User-Agent` for every request the agent makes.
pub const USER_AGENT: &str = concat!("crowsnest/", env!("CARGO_PKG_VERSION"));

/// A registry with what every agent exposes regardless of configuration:
/// `crowsnest_build_info` and the process CPU/memory metrics.
pub fn base_registry() -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "crowsnest_build",
        "Build information of the running agent",
        Info::new(vec![
            ("version", VERSION),
            ("target_os", std::env::consts::OS),
            ("target_arch", std::env::consts::ARCH),
        ]),
    );
    registry.register_collector(Box::new(ProcessCollector::new()));
    registry
}

/// Renders `registry` in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail; an Err would only come from a
    // collector, and then the partial output is still the best answer.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::warn!(error = %e, "encoding self-metrics failed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_registry_has_build_info_and_process_metrics() {
        let text = encode(&base_registry());
        assert!(text.contains("crowsnest_build_info{"), "{text}");
        assert!(text.contains(&format!("version=\"{VERSION}\"")));
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
