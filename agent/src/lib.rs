//! crowsnest: a Kubernetes node agent.
//!
//! Data flows through the modules in this order, one job each:
//!
//! ```text
//! discovery (control plane on this node) ─> scrape jobs
//! scrape (discover, fetch, parse) ─┐
//!                                  ├─> relabel ─> remote_write (queue, encode, send)
//! collectors (eBPF, later) ────────┘
//! ```
//!
//! `config` turns YAML into validated, typed settings; `app` wires the stages
//! from those settings; `server` and `telemetry` expose what the stages are doing.

pub mod app;
pub mod collectors;
pub mod config;
pub mod discovery;
pub mod enrich;
pub mod http;
pub mod kube;
pub mod model;
pub mod relabel;
pub mod remote_write;
pub mod scrape;
pub mod server;
pub mod telemetry;
