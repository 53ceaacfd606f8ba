//! `discovery:`: zero-config discovery of the control plane on this node
//! (static pod manifests, then well-known ports). Every setting has a
//! default, so an absent section means "discover everything".

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::PromDuration;
use super::error::{ConfigError, field};
use super::flag::Flag;
use super::global::nonzero;
use super::types::{ComponentConfig, DiscoveryConfig, MetricSet};
use super::unique_map::UniqueMap;
use crate::discovery::Component;

/// Where kubeadm and kops put static pod manifests.
pub const DEFAULT_MANIFESTS_PATH: &str = "/etc/kubernetes/manifests";
/// The pod's service-account token (projected, rotated by the kubelet).
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The cluster CA as mounted into every pod.
pub const DEFAULT_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// `discovery:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the discovery section (a map)")]
pub(super) struct RawDiscovery {
    /// Master switch (default true).
    enabled: Option<Flag>,
    /// How often to look again (default 1m).
    refresh_interval: Option<PromDuration>,
    /// Folder of static pod manifests (default `/etc/kubernetes/manifests`).
    manifests_path: Option<PathBuf>,
    /// The `node` label (default: `NODE_NAME`, else the host name).
    node_name: Option<String>,
    /// Address the well-known ports are probed on (default 127.0.0.1).
    probe_address: Option<String>,
    /// Timeout of one probe (default 1s).
    probe_timeout: Option<PromDuration>,
    /// Bearer token file for kube-apiserver, -controller-manager, -scheduler and kubelet.
    token_file: Option<PathBuf>,
    /// CA to verify kube-apiserver with (default the service account's ca.crt).
    ca_file: Option<PathBuf>,
    /// Per-component settings, keyed by job name (`etcd`, `kube-proxy`, …).
    components: Option<UniqueMap<RawComponent>>,
}

/// One `discovery.components.<job>` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a component's settings (a map)")]
struct RawComponent {
    /// Discover this component (default true).
    enabled: Option<Flag>,
    /// `curated` (default) or `all`.
    metrics: Option<String>,
    /// Well-known ports to probe (default per component; `[]`: never probe).
    ports: Option<Vec<u16>>,
    /// CA to verify the component with (overrides the discovered one).
    ca_file: Option<PathBuf>,
    /// Client certificate (overrides the discovered one; etcd).
    cert_file: Option<PathBuf>,
    /// Client key (overrides the discovered one; etcd).
    key_file: Option<PathBuf>,
    /// Skip verifying the serving certificate (default per component, see docs).
    insecure_skip_verify: Option<Flag>,
}

impl RawDiscovery {
    /// Overrides the scalar fields set in `over` (the environment layer).
    pub(super) fn overlay(&mut self, over: RawDiscovery) {
        self.enabled = over.enabled.or(self.enabled.take());
        self.refresh_interval = over.refresh_interval.or(self.refresh_interval.take());
        self.manifests_path = over.manifests_path.or(self.manifests_path.take());
        self.node_name = over.node_name.or(self.node_name.take());
        self.probe_address = over.probe_address.or(self.probe_address.take());
        self.probe_timeout = over.probe_timeout.or(self.probe_timeout.take());
        self.token_file = over.token_file.or(self.token_file.take());
        self.ca_file = over.ca_file.or(self.ca_file.take());
        // Per component: an environment entry replaces the file's entry for
        // that component only.
        if let Some(over) = over.components {
            let mine = self.components.get_or_insert_default();
            mine.0.extend(over.0);
        }
    }

    /// Validates into [`DiscoveryConfig`].
    pub(super) fn build(self) -> Result<DiscoveryConfig, ConfigError> {
        let path = "discovery";
        let refresh_interval = nonzero(self.refresh_interval).unwrap_or(DEFAULT_REFRESH);
        let probe_timeout = nonzero(self.probe_timeout).unwrap_or(DEFAULT_PROBE_TIMEOUT);
        if probe_timeout > refresh_interval {
            return Err(ConfigError::invalid(
                field(path, "probe_timeout"),
                "is longer than refresh_interval",
                "use a probe_timeout of about a second; probes only check that a port answers",
            ));
        }
        let probe_address = match self.probe_address.as_deref() {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(a) => a.parse().map_err(|_| {
                ConfigError::invalid(
                    field(path, "probe_address"),
                    format!("({a:?}) is not an IP address"),
                    "give the IP the node's components listen on, e.g. 127.0.0.1",
                )
            })?,
        };
        let mut raw_components = self.components.unwrap_or_default().0;
        let comp_path = field(path, "components");
        if let Some(unknown) = raw_components
            .keys()
            .find(|k| Component::from_job(k).is_none())
        {
            let known: Vec<&str> = Component::all().map(Component::job).collect();
            return Err(ConfigError::invalid(
                field(&comp_path, unknown),
                "is not a component discovery knows",
                format!("use one of {}", known.join(", ")),
            ));
        }
        let components = Component::all()
            .map(|c| {
                let raw = raw_components.remove(c.job()).unwrap_or_default();
                raw.build(c, &field(&comp_path, c.job()))
            })
            .collect::<Result<_, _>>()?;
        Ok(DiscoveryConfig {
            enabled: self.enabled.is_none_or(|f| f.0),
            refresh_interval,
            manifests_path: self
                .manifests_path
                .unwrap_or_else(|| PathBuf::from(DEFAULT_MANIFESTS_PATH)),
            node_name: self.node_name.filter(|n| !n.is_empty()),
            probe_address,
            probe_timeout,
            token_file: self
                .token_file
                .unwrap_or_else(|| PathBuf::from(DEFAULT_TOKEN_FILE)),
            ca_file: self
                .ca_file
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CA_FILE)),
            components,
        })
    }
}

impl DiscoveryConfig {
    /// Makes relative paths relative to `dir`, the config file's folder.
    pub(super) fn resolve_paths(&mut self, dir: &std::path::Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        resolve(&mut self.manifests_path);
        resolve(&mut self.token_file);
        resolve(&mut self.ca_file);
        for c in &mut self.components {
            for p in [&mut c.ca_file, &mut c.cert_file, &mut c.key_file]
                .into_iter()
                .flatten()
            {
                resolve(p);
            }
        }
    }
}

impl RawComponent {
    fn build(self, component: Component, path: &str) -> Result<ComponentConfig, ConfigError> {
        let metrics = match self.metrics.as_deref() {
            None | Some("curated") => MetricSet::Curated,
            Some("all") => MetricSet::All,
            Some(other) => {
                return Err(ConfigError::invalid(
                    field(path, "metrics"),
                    format!("({other:?}) is not a metric set"),
                    "use curated (the families worth watching) or all",
                ));
            }
        };
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(ConfigError::invalid(
                field(path, "cert_file"),
                "and key_file must be set together",
                "set both to the client certificate and its key, or neither",
            ));
        }
        let ports = match self.ports {
            Some(p) => {
                if p.contains(&0) {
                    return Err(ConfigError::invalid(
                        field(path, "ports"),
                        "contains port 0",
                        "list TCP ports from 1 to 65535, or [] to never probe",
                    ));
                }
                p
            }
            None => component.spec().ports.iter().map(|p| p.port).collect(),
        };
        Ok(ComponentConfig {
            component,
            enabled: self.enabled.is_none_or(|f| f.0),
            metrics,
            ports,
            ca_file: self.ca_file,
            cert_file: self.cert_file,
            key_file: self.key_file,
            insecure_skip_verify: self.insecure_skip_verify.map(|f| f.0),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test should panic loudly")]
mod tests {
    use crate::config::{MetricSet, load_from_str};
    use crate::discovery::Component;

    #[test]
    fn absent_section_discovers_everything_with_defaults() {
        let c = load_from_str("", &[]).unwrap().discovery;
        assert!(c.enabled);
        assert_eq!(c.refresh_interval.as_secs(), 60);
        assert_eq!(c.manifests_path.to_str(), Some("/etc/kubernetes/manifests"));
        assert_eq!(c.components.len(), Component::all().count());
        let etcd = c.component(Component::Etcd);
        assert_eq!(etcd.ports, vec![4001, 2379, 2381]);
        assert_eq!(etcd.metrics, MetricSet::Curated);
        assert!(etcd.enabled);
    }

    #[test]
    fn per_component_settings() {
        let yaml = "discovery:\n  refresh_interval: 10s\n  components:\n    kube-proxy: {ports: [20249], metrics: all}\n    coredns: {enabled: false}\n    etcd: {cert_file: c.pem, key_file: k.pem, insecure_skip_verify: true}\n";
        let c = load_from_str(yaml, &[]).unwrap().discovery;
        assert_eq!(c.refresh_interval.as_secs(), 10);
        let kp = c.component(Component::KubeProxy);
        assert_eq!(
            (kp.ports.as_slice(), kp.metrics),
            (&[20249][..], MetricSet::All)
        );
        assert!(!c.component(Component::CoreDns).enabled);
        assert_eq!(
            c.component(Component::Etcd).insecure_skip_verify,
            Some(true)
        );
    }

    #[test]
    fn errors_name_the_field_and_the_fix() {
        let cases = [
            (
                "discovery: {components: {etc: {}}}",
                "discovery.components.etc is not a component",
            ),
            (
                "discovery: {components: {etcd: {metrics: some}}}",
                "discovery.components.etcd.metrics (\"some\")",
            ),
            (
                "discovery: {components: {etcd: {cert_file: c}}}",
                "discovery.components.etcd.cert_file and key_file",
            ),
            (
                "discovery: {components: {etcd: {ports: [0]}}}",
                "contains port 0",
            ),
            (
                "discovery: {probe_address: localhost}",
                "discovery.probe_address (\"localhost\") is not an IP",
            ),
            (
                "discovery: {probe_timeout: 2m}",
                "discovery.probe_timeout is longer",
            ),
            ("discovery: {enabeld: true}", "enabeld"),
        ];
        for (yaml, want) in cases {
            let err = load_from_str(yaml, &[]).unwrap_err().to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn environment_can_switch_discovery_off() {
        let env = [(
            "CROWSNEST_DISCOVERY__ENABLED".to_owned(),
            "false".to_owned(),
        )];
        assert!(!load_from_str("", &env).unwrap().discovery.enabled);
    }

    #[test]
    fn environment_overrides_one_component_and_keeps_the_others() {
        let env = [(
            "CROWSNEST_DISCOVERY__COMPONENTS__ETCD__ENABLED".to_owned(),
            "false".to_owned(),
        )];
        let yaml = "discovery: {components: {kubelet: {metrics: all}}}";
        let c = load_from_str(yaml, &env).unwrap().discovery;
        assert!(!c.component(Component::Etcd).enabled);
        assert_eq!(c.component(Component::Kubelet).metrics, MetricSet::All);
    }
}
