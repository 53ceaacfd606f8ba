//! Finds the control-plane components running on this node and turns them
//! into scrape jobs, with TLS and authentication filled in.
//!
//! ```text
//! manifest (static pods) ─┐
//!                         ├─> Found ─> Discovered (TLS, auth) ─> jobs::scrape_configs ─> ScrapeManager
//! probe (well-known ports)┘
//! ```
//!
//! Sources, in order of preference ([`Source`]): static pod manifests say
//! exactly where and how a component serves; a component no manifest names
//! is probed on its well-known ports and reported only when the answer looks
//! like that component. Pod-watch discovery (kube-proxy and CoreDNS pods on
//! this node) will be a third source once the metadata watch exists.
//!
//! De-duplication: a component a manifest names is not probed at all (its
//! manifest address is the authoritative one, and probing another port of the
//! same etcd would scrape it twice); the same component at the same address
//! is kept once. A component a probe found stays a target when it stops
//! answering (so it shows `up=0` instead of vanishing; see `Refresher`). How
//! discovered jobs meet the user's `scrape_configs` is described in
//! [`jobs::merge`].

mod components;
pub mod jobs;
pub mod manifest;
mod metrics;
pub mod probe;
mod refresh;

use std::path::PathBuf;

use serde::Serialize;

pub use components::{AuthKind, COMMON_CURATED, Component, SPECS, Spec, curated_regex};
pub use metrics::DiscoveryMetrics;
pub use refresh::{DiscoveryBoard, Refresher};

use crate::config::{Auth, Credential, DiscoveryConfig, HttpClientConfig, Scheme, TlsConfig};
use crate::kube::PodRef;

/// Where a target was found. Order = preference when two sources find the same target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A static pod manifest.
    Manifest,
    /// A pod on this node from the metadata watch (`k8s-app=kube-proxy`,
    /// `k8s-app=kube-dns`).
    Pod,
    /// A well-known port that answered like the component.
    Probe,
}

impl Source {
    /// Every source, for zeroing gauges.
    pub const ALL: [Source; 3] = [Source::Manifest, Source::Pod, Source::Probe];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::Pod => "pod",
            Self::Probe => "probe",
        }
    }
}

/// A component found by a source, before TLS and auth are decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The component.
    pub component: Component,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port`.
    pub address: String,
    /// CA named by the component's flags.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key named by the component's flags or layout.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Something the operator should know (e.g. why auth will fail).
    pub note: Option<String>,
    /// The manifest file, or `port N`.
    pub origin: String,
}

impl Found {
    /// A bare finding at `host:port`.
    pub fn new(component: Component, scheme: Scheme, host: &str, port: u16) -> Self {
        Self {
            component,
            scheme,
            address: format!("{host}:{port}"),
            ca_file: None,
            client_cert: None,
            note: None,
            origin: String::new(),
        }
    }
}

/// A target discovery will scrape.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// What was found, and where.
    pub found: Found,
    /// Which source found it.
    pub source: Source,
    /// TLS and authentication of its scrapes.
    pub http: HttpClientConfig,
}

/// What `/api/v1/status` shows of a discovered target: no secrets, only
/// where it is and how it is scraped.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveredStatus {
    /// Component (its job name).
    pub component: &'static str,
    /// `manifest` or `probe`.
    pub source: &'static str,
    /// `host:port`.
    pub address: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Paths scraped.
    pub metrics_paths: Vec<&'static str>,
    /// `none`, `client_cert`, `bearer` (or `client_cert+bearer`).
    pub auth: &'static str,
    /// Whether the serving certificate is verified.
    pub insecure_skip_verify: bool,
    /// The manifest file or probed port.
    pub origin: String,
    /// A warning for the operator, if any.
    pub note: Option<String>,
}

impl Discovered {
    /// Builds the scrape settings of a finding: per-component overrides
    /// first, then what the source found, then the component's defaults.
    pub fn new(found: Found, source: Source, cfg: &DiscoveryConfig) -> Self {
        let spec = found.component.spec();
        let c = cfg.component(found.component);
        let mut tls = TlsConfig::default();
        if found.scheme == Scheme::Https {
            tls.ca_file = c
                .ca_file
                .clone()
                .or_else(|| found.ca_file.clone())
                .or_else(|| (found.component == Component::Apiserver).then(|| cfg.ca_file.clone()));
            let cert = c
                .cert_file
                .clone()
                .zip(c.key_file.clone())
                .or_else(|| found.client_cert.clone());
            (tls.cert_file, tls.key_file) = cert.unzip();
            tls.server_name = spec.server_name.map(str::to_owned);
            // A CA given for a component normally self-signed means "verify".
            tls.insecure_skip_verify = c
                .insecure_skip_verify
                .unwrap_or(spec.insecure_skip_verify && c.ca_file.is_none());
        }
        let auth = (spec.auth == AuthKind::Bearer).then(|| Auth::Authorization {
            kind: "Bearer".to_owned(),
            credential: Credential::File(cfg.token_file.clone()),
        });
        Self {
            found,
            source,
            http: HttpClientConfig { tls, auth },
        }
    }

    /// The component.
    pub fn component(&self) -> Component {
        self.found.component
    }

    /// The status-page view.
    pub fn status(&self) -> DiscoveredStatus {
        let auth = match (self.http.tls.cert_file.is_some(), self.http.auth.is_some()) {
            (false, false) => "none",
            (true, false) => "client_cert",
            (false, true) => "bearer",
            (true, true) => "client_cert+bearer",
        };
        DiscoveredStatus {
            component: self.found.component.job(),
            source: self.source.as_str(),
            address: self.found.address.clone(),
            scheme: self.found.scheme.as_str(),
            metrics_paths: self.found.component.spec().paths.to_vec(),
            auth,
            insecure_skip_verify: self.http.tls.insecure_skip_verify,
            origin: self.found.origin.clone(),
            note: self.found.note.clone(),
        }
    }
}

/// One discovery pass.
#[derive(Debug, Default)]
pub struct Report {
    /// Targets to scrape, de-duplicated, in component order.
    pub targets: Vec<Discovered>,
    /// Manifests that could not be read (logged by the caller).
    pub problems: Vec<manifest::ManifestError>,
    /// Every probe and how it ended (for `crowsnest discover`).
    pub probes: Vec<probe::ProbeOutcome>,
}

/// `probe_address` as a URL host.
fn local_host(cfg: &DiscoveryConfig) -> String {
    match cfg.probe_address {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// Components found among this node's pods by their `k8s-app` label:
/// kube-proxy (on the host network, its metrics bound to the node's loopback
/// by default, so at the probe address) and CoreDNS (at its pod IP). The port
/// is the component's first configured port.
pub fn from_pods(pods: &[PodRef], cfg: &DiscoveryConfig) -> Vec<Discovered> {
    let local = local_host(cfg);
    pods.iter()
        .filter(|p| p.phase == "Running")
        .filter_map(|pod| {
            let component = match pod.k8s_app.as_deref()? {
                "kube-proxy" => Component::KubeProxy,
                "kube-dns" => Component::CoreDns,
                _ => return None,
            };
            let settings = cfg.component(component);
            let port = *settings.ports.first()?;
            if !settings.enabled {
                return None;
            }
            let host = if pod.host_network || pod.ip.is_empty() {
                local.clone()
            } else if pod.ip.contains(':') {
                format!("[{}]", pod.ip)
            } else {
                pod.ip.clone()
            };
            // The scheme of the matching well-known port (both serve plain HTTP).
            let scheme = component
                .spec()
                .ports
                .iter()
                .find(|p| p.port == port)
                .map_or(Scheme::Http, |p| p.scheme);
            let mut found = Found::new(component, scheme, &host, port);
            found.origin = format!("pod {}/{}", pod.namespace, pod.name);
            Some(Discovered::new(found, Source::Pod, cfg))
        })
        .collect()
}

/// Runs every source once: manifests, this node's pods (`pods`, empty
/// without the metadata watch), then port probes. Disabled components are
/// left out; a component a manifest names is not probed.
pub async fn discover(cfg: &DiscoveryConfig, pods: &[PodRef]) -> Report {
    let mut report = Report::default();
    if !cfg.enabled {
        return report;
    }
    let enabled = |c: Component| cfg.component(c).enabled;
    let local = local_host(cfg);
    let (found, problems) = manifest::scan(&cfg.manifests_path, &local);
    report.problems = problems;
    let mut targets: Vec<Discovered> = found
        .into_iter()
        .filter(|f| enabled(f.component))
        .map(|f| Discovered::new(f, Source::Manifest, cfg))
        .collect();
    targets.extend(from_pods(pods, cfg));
    let named: Vec<Component> = targets
        .iter()
        .filter(|t| t.source == Source::Manifest)
        .map(Discovered::component)
        .collect();
    let (probed, outcomes) = probe::probe_all(cfg, &local, &named).await;
    report.probes = outcomes;
    targets.extend(probed);
    report.targets = dedup(targets);
    report
}

/// Keeps the first target of each (component, address), sources in
/// preference order, and sorts by component.
pub fn dedup(mut targets: Vec<Discovered>) -> Vec<Discovered> {
    targets.sort_by_key(|t| (t.component(), t.source));
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert((t.component(), t.found.address.clone())));
    targets
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
