//! Test harness for crowsnest's integration tests: real Prometheus and VictoriaMetrics
//! processes, an in-process scrape target, an in-process Kubernetes API server, the agent
//! binary, and a remote-write encoder.
//!
//! Everything listens on 127.0.0.1 on ports chosen at run time, every wait is bounded, and
//! every child process is stopped when its handle drops. External programs come from
//! `tests/dependencies.txt`; a test calls [`require_binary`] first so that a missing one
//! skips locally but fails in CI (`CI=true` or `CROWSNEST_TEST_REQUIRE_DEPS=1`).

pub mod agent;
pub mod backend;
pub mod compare;
pub mod deps;
pub mod deps_table;
pub mod exporter;
pub mod fault_receiver;
pub mod http;
pub mod instance;
pub mod kube_api;
pub mod ports;
pub mod process;
pub mod prom_api;
pub mod prometheus;
pub mod remote_write;
pub mod victoria;
pub mod wait;

pub use agent::Agent;
pub use deps::{Availability, PROMETHEUS_BIN, VICTORIA_METRICS_BIN, VMAGENT_BIN, require_binary};
pub use exporter::Exporter;
pub use fault_receiver::{Fault, FaultReceiver};
pub use prom_api::{LabelSet, PromApi};
pub use prometheus::{Prometheus, PrometheusConfig};
/// Signals for [`process::ChildProcess::signal`] (e.g. `Signal::HUP` to reload the agent).
pub use rustix::process::Signal;
pub use victoria::VictoriaMetrics;
