//! The last resort: well-known ports on this node, probed with the same TLS
//! and credentials a scrape would use, a short timeout and bounded
//! concurrency. A port counts only when it answers like the component: its
//! body holds a metric family only that component exposes, or (for the
//! bearer-protected HTTPS components, whose body we may not read yet) it
//! answers 401/403 over TLS, which is how they refuse an unauthorised client;
//! that target is then reported with the refusal, so the status page says
//! what to fix.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use serde::Serialize;

use super::components::{AuthKind, Component};
use super::{Discovered, Found, Source};
use crate::config::{DiscoveryConfig, Scheme};
use crate::http::HttpClient;
use crate::scrape::fetch::{FetchError, Source as FetchSource};

/// Probes in flight at once: enough to finish a node in about one timeout.
const CONCURRENCY: usize = 8;
/// A probe reads at most this much of a body (etcd's is ~200 KiB).
const PROBE_BODY_LIMIT: u64 = 8 << 20;

/// How one probe ended.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeOutcome {
    /// The component looked for.
    pub component: &'static str,
    /// `scheme://host:port`.
    pub target: String,
    /// `found`, `found_refused`, `not_component`, or the error kind.
    pub result: &'static str,
}

/// Certificates etcd's well-known ports are probed with when none are
/// configured: kops' etcd-manager layout on 4001, kubeadm's elsewhere.
fn etcd_defaults(port: u16) -> (PathBuf, (PathBuf, PathBuf)) {
    if port == 4001 {
        let dir = PathBuf::from("/etc/kubernetes/pki/etcd-manager-main");
        (
            dir.join("etcd-clients-ca.crt"),
            (
                dir.join("etcd-clients-ca.crt"),
                dir.join("etcd-clients-ca.key"),
            ),
        )
    } else {
        let dir = PathBuf::from("/etc/kubernetes/pki/etcd");
        (
            dir.join("ca.crt"),
            (
                dir.join("healthcheck-client.crt"),
                dir.join("healthcheck-client.key"),
            ),
        )
    }
}

/// The candidate a well-known port would be.
fn candidate(component: Component, port: u16, local: &str) -> Found {
    let spec = component.spec();
    let scheme = spec
        .ports
        .iter()
        .find(|p| p.port == port)
        .map(|p| p.scheme)
        .unwrap_or(if spec.auth == AuthKind::None {
            Scheme::Http
        } else {
            Scheme::Https
        });
    let mut found = Found::new(component, scheme, local, port);
    found.origin = format!("port {port}");
    if component == Component::Etcd && scheme == Scheme::Https {
        let (ca, cert) = etcd_defaults(port);
        found.ca_file = Some(ca);
        found.client_cert = Some(cert);
    }
    found
}

/// Probes every enabled component not in `skip` on its ports; per
/// component, the first port (in configured order) that answers wins.
pub async fn probe_all(
    cfg: &DiscoveryConfig,
    local: &str,
    skip: &[Component],
) -> (Vec<Discovered>, Vec<ProbeOutcome>) {
    let mut candidates = Vec::new();
    for c in &cfg.components {
        if !c.enabled || skip.contains(&c.component) {
            continue;
        }
        for (rank, &port) in c.ports.iter().enumerate() {
            let found = candidate(c.component, port, local);
            candidates.push((rank, Discovered::new(found, Source::Probe, cfg)));
        }
    }
    let timeout = cfg.probe_timeout;
    let results: Vec<(usize, Discovered, &'static str)> = stream::iter(candidates)
        .map(|(rank, d)| async move {
            let result = probe_one(&d, timeout).await;
            (rank, d, result)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut best: HashMap<Component, (usize, Discovered)> = HashMap::new();
    let mut outcomes = Vec::with_capacity(results.len());
    for (rank, mut d, result) in results {
        outcomes.push(ProbeOutcome {
            component: d.component().job(),
            target: format!("{}://{}", d.found.scheme.as_str(), d.found.address),
            result,
        });
        if !result.starts_with("found") {
            continue;
        }
        if result == "found_refused" {
            d.found.note = Some(
                "answered the probe with 401/403: check the token and the crowsnest ClusterRole"
                    .to_owned(),
            );
        }
        let better = best.get(&d.component()).is_none_or(|(r, _)| rank < *r);
        if better {
            best.insert(d.component(), (rank, d));
        }
    }
    outcomes.sort_by(|a, b| (a.component, &a.target).cmp(&(b.component, &b.target)));
    let found = best.into_values().map(|(_, d)| d).collect();
    (found, outcomes)
}

/// One probe: `found`, `found_refused`, `not_component` or an error kind.
async fn probe_one(d: &Discovered, timeout: Duration) -> &'static str {
    let client = match HttpClient::new(&d.http) {
        Ok(c) => c,
        // Missing or unreadable cert files: this layout is not on this node.
        Err(e) => return e.kind(),
    };
    let spec = d.component().spec();
    let raw = format!(
        "{}://{}{}",
        d.found.scheme.as_str(),
        d.found.address,
        spec.paths.first().copied().unwrap_or("/metrics")
    );
    let Ok(url) = url::Url::parse(&raw) else {
        return "invalid_request";
    };
    match FetchSource::Http(client)
        .fetch(&url, timeout, PROBE_BODY_LIMIT)
        .await
    {
        Ok(fetched) => {
            let sig = spec.signature.as_bytes();
            if fetched.body.windows(sig.len()).any(|w| w == sig) {
                "found"
            } else {
                "not_component"
            }
        }
        Err(FetchError::Status { status, .. })
            if d.found.scheme == Scheme::Https
                && spec.auth == AuthKind::Bearer
                && matches!(status.as_u16(), 401 | 403) =>
        {
            "found_refused"
        }
        Err(e) => e.kind(),
    }
}
