//! Static pod manifests: which control-plane component each file runs, and
//! where and how it serves metrics, read from the container's command flags.
//!
//! Layouts understood (each a fixture under `testdata/`):
//! - kubeadm: `etcd`, `kube-apiserver`, `kube-controller-manager`,
//!   `kube-scheduler` binaries with `--flag=value` arguments;
//! - kops: `etcd-manager` run through `/bin/sh -c "... /etcd-manager
//!   --client-urls=https://__name__:4001 ..."`, its client certificates in the
//!   host folder `/etc/kubernetes/pki/etcd-manager-<cluster>` mounted into
//!   the container.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Found;
use super::components::Component;
use crate::config::Scheme;

/// A manifest that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a pod manifest.
    #[error("{} is not a pod manifest: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

impl ManifestError {
    /// A short, bounded name of the error, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Yaml { .. } => "yaml",
        }
    }
}

// Only the fields we read; unknown ones are ignored (this is Kubernetes' format, not ours).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Pod {
    metadata: Meta,
    spec: PodSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Meta {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PodSpec {
    containers: Vec<Container>,
    volumes: Vec<Volume>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Container {
    command: Vec<String>,
    args: Vec<String>,
    volume_mounts: Vec<Mount>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Mount {
    name: String,
    mount_path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Volume {
    name: String,
    host_path: Option<HostPath>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HostPath {
    path: String,
}

/// The binaries we recognise, by the basename of a command word.
const BINARIES: &[(&str, Binary)] = &[
    ("etcd", Binary::Etcd),
    ("etcd-manager", Binary::EtcdManager),
    ("kube-apiserver", Binary::Apiserver),
    ("kube-controller-manager", Binary::ControllerManager),
    ("kube-scheduler", Binary::Scheduler),
];

#[derive(Debug, Clone, Copy)]
enum Binary {
    Etcd,
    EtcdManager,
    Apiserver,
    ControllerManager,
    Scheduler,
}

/// Reads every `*.yaml`, `*.yml`, `*.json` and `*.manifest` (kops) file of `dir`. A missing
/// folder is no manifests (a worker node); unreadable or foreign files are
/// reported and skipped.
pub fn scan(dir: &Path, local: &str) -> (Vec<Found>, Vec<ManifestError>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (found, errors),
        Err(source) => {
            errors.push(ManifestError::Read {
                path: dir.to_owned(),
                source,
            });
            return (found, errors);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json" | "manifest"))
        })
        .collect();
    files.sort();
    for path in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse(&text, &path, local) {
                Ok(f) => found.extend(f),
                Err(e) => errors.push(e),
            },
            Err(source) => errors.push(ManifestError::Read { path, source }),
        }
    }
    (found, errors)
}

/// The components one manifest runs. `local` replaces wildcard and
/// placeholder hosts (we scrape the node's own components).
pub fn parse(text: &str, path: &Path, local: &str) -> Result<Vec<Found>, ManifestError> {
    let pod: Pod = serde_yaml::from_str(text).map_err(|e| ManifestError::Yaml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for c in &pod.spec.containers {
        let words = words(c);
        let Some((i, binary)) = words.iter().enumerate().find_map(|(i, w)| {
            let base = w.rsplit('/').next().unwrap_or(w);
            BINARIES
                .iter()
                .find(|(n, _)| *n == base)
                .map(|(_, b)| (i, *b))
        }) else {
            continue;
        };
        let flags = Flags::parse(&words[i + 1..]);
        let host_path = |p: &str| to_host(p, c, &pod.spec.volumes);
        let found = match binary {
            Binary::Etcd => Some(etcd(&flags, local, &host_path)),
            Binary::EtcdManager => etcd_manager(&flags, local, &pod, c),
            Binary::Apiserver => secure(Component::Apiserver, &flags, 6443, local),
            Binary::ControllerManager => secure(Component::ControllerManager, &flags, 10257, local),
            Binary::Scheduler => secure(Component::Scheduler, &flags, 10259, local),
        };
        out.extend(found.map(|mut f| {
            f.origin = path.display().to_string();
            f
        }));
    }
    Ok(out)
}

/// Command and args as words; a `sh -c "script"` is split into its words
/// (kops runs etcd-manager that way).
fn words(c: &Container) -> Vec<String> {
    let all: Vec<&String> = c.command.iter().chain(&c.args).collect();
    let mut out = Vec::new();
    let mut iter = all.iter().peekable();
    while let Some(w) = iter.next() {
        let base = w.rsplit('/').next().unwrap_or(w);
        if matches!(base, "sh" | "bash" | "ash") && iter.peek().is_some_and(|n| n.as_str() == "-c")
        {
            iter.next();
            if let Some(script) = iter.next() {
                out.extend(
                    script
                        .split(|ch: char| ch.is_whitespace() || ch == ';')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.trim_matches(|ch| ch == '"' || ch == '\'').to_owned()),
                );
            }
            continue;
        }
        out.push((*w).clone());
    }
    out
}

/// `--name=value` and `--name value` flags.
struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(words: &[String]) -> Self {
        let mut map = HashMap::new();
        let mut i = 0;
        while i < words.len() {
            if let Some(flag) = words[i].strip_prefix("--") {
                if let Some((k, v)) = flag.split_once('=') {
                    map.insert(k.to_owned(), v.to_owned());
                } else if words.get(i + 1).is_some_and(|n| !n.starts_with('-')) {
                    map.insert(flag.to_owned(), words[i + 1].clone());
                    i += 1;
                } else {
                    map.insert(flag.to_owned(), "true".to_owned());
                }
            }
            i += 1;
        }
        Self(map)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// A container path as seen on the host, through the hostPath volume mounted
/// at the longest matching prefix.
fn to_host(path: &str, c: &Container, volumes: &[Volume]) -> PathBuf {
    let best = c
        .volume_mounts
        .iter()
        .filter(|m| {
            let mp = m.mount_path.trim_end_matches('/');
            path == mp || path.starts_with(&format!("{mp}/"))
        })
        .filter_map(|m| {
            volumes
                .iter()
                .find(|v| v.name == m.name)
                .and_then(|v| v.host_path.as_ref())
                .map(|h| (m.mount_path.trim_end_matches('/'), h.path.as_str()))
        })
        .max_by_key(|(mp, _)| mp.len());
    match best {
        Some((mp, host)) => PathBuf::from(format!("{host}{}", &path[mp.len()..])),
        None => PathBuf::from(path),
    }
}

/// A host we can reach: wildcards and kops' `__name__` placeholder mean this node.
fn reachable(host: &str, local: &str) -> String {
    match host.trim_matches(['[', ']']) {
        "" | "0.0.0.0" | "::" | "__name__" => local.to_owned(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_owned(),
    }
}

/// The best URL of a comma-separated list: loopback first, then plain HTTP.
fn pick_url(list: &str, local: &str) -> Option<(Scheme, String, u16)> {
    let mut urls: Vec<(Scheme, String, u16)> = list
        .split(',')
        .filter_map(|u| url::Url::parse(u.trim()).ok())
        .filter_map(|u| {
            let scheme = match u.scheme() {
                "http" => Scheme::Http,
                "https" => Scheme::Https,
                _ => return None,
            };
            let port = u.port_or_known_default()?;
            Some((scheme, reachable(u.host_str().unwrap_or(""), local), port))
        })
        .collect();
    urls.sort_by_key(|(scheme, host, _)| {
        let loopback = host.starts_with("127.") || host == "[::1]" || host == "localhost";
        (!loopback, *scheme == Scheme::Https)
    });
    urls.into_iter().next()
}

fn etcd(flags: &Flags, local: &str, host_path: &dyn Fn(&str) -> PathBuf) -> Found {
    // kubeadm's plain metrics port needs no certificate: prefer it. Without
    // either flag etcd serves its default client URL.
    let (scheme, host, port) = flags
        .get("listen-metrics-urls")
        .and_then(|l| pick_url(l, local))
        .or_else(|| {
            flags
                .get("listen-client-urls")
                .and_then(|l| pick_url(l, local))
        })
        .unwrap_or((Scheme::Https, local.to_owned(), 2379));
    let mut found = Found::new(Component::Etcd, scheme, &host, port);
    if scheme == Scheme::Https {
        let ca = flags.get("trusted-ca-file").map(host_path);
        // kubeadm writes a client cert for health checks beside the CA; the
        // server cert (also valid for client auth under kubeadm) is the fallback.
        let healthcheck = ca.as_ref().and_then(|ca| ca.parent()).map(|dir| {
            (
                dir.join("healthcheck-client.crt"),
                dir.join("healthcheck-client.key"),
            )
        });
        found.client_cert = match healthcheck {
            Some((c, k)) if c.exists() && k.exists() => Some((c, k)),
            _ => flags
                .get("cert-file")
                .zip(flags.get("key-file"))
                .map(|(c, k)| (host_path(c), host_path(k))),
        };
        found.ca_file = ca;
    }
    found
}

/// Where kops' etcd-manager container expects its certificates.
const ETCD_MANAGER_PKI: &str = "/etc/kubernetes/pki/etcd-manager";

/// kops: `etcd-manager-main` (4001) and `etcd-manager-events` (4002). The
/// client CA's certificate and key double as the client certificate, as in
/// kops' own instructions.
fn etcd_manager(flags: &Flags, local: &str, pod: &Pod, c: &Container) -> Option<Found> {
    let (scheme, host, port) = flags.get("client-urls").and_then(|l| pick_url(l, local))?;
    let cluster = pod
        .metadata
        .name
        .strip_prefix("etcd-manager-")
        .map(|n| n.split('-').next().unwrap_or(n))
        .or_else(|| {
            flags
                .get("cluster-name")
                .map(|n| n.trim_start_matches("etcd-"))
        })
        .unwrap_or("main");
    let default_dir = format!("/etc/kubernetes/pki/etcd-manager-{cluster}");
    // etcd-manager reads its certificates from this folder in the container;
    // the host folder is whatever the manifest mounts there.
    let dir = c
        .volume_mounts
        .iter()
        .find(|m| m.mount_path.trim_end_matches('/') == ETCD_MANAGER_PKI)
        .and_then(|m| pod.spec.volumes.iter().find(|v| v.name == m.name))
        .and_then(|v| v.host_path.as_ref())
        .map_or_else(|| PathBuf::from(&default_dir), |h| PathBuf::from(&h.path));
    let mut found = Found::new(Component::Etcd, scheme, &host, port);
    if scheme == Scheme::Https {
        found.ca_file = Some(dir.join("etcd-clients-ca.crt"));
        found.client_cert = Some((
            dir.join("etcd-clients-ca.crt"),
            dir.join("etcd-clients-ca.key"),
        ));
    }
    Some(found)
}

/// kube-apiserver, -controller-manager, -scheduler: HTTPS on `--secure-port`
/// at `--bind-address`, bearer-token authenticated.
fn secure(component: Component, flags: &Flags, default_port: u16, local: &str) -> Option<Found> {
    let port = match flags.get("secure-port").map(str::parse::<u16>) {
        None => default_port,
        // 0 switches the secure port off: nothing to scrape.
        Some(Ok(0)) => return None,
        Some(Ok(p)) => p,
        Some(Err(_)) => default_port,
    };
    let host = reachable(flags.get("bind-address").unwrap_or(""), local);
    let mut found = Found::new(component, Scheme::Https, &host, port);
    if component != Component::Apiserver
        && (flags.get("authentication-kubeconfig").is_none()
            || flags.get("authorization-kubeconfig").is_none())
    {
        found.note = Some(
            "no --authentication-kubeconfig/--authorization-kubeconfig: it cannot check our token, expect 401/403"
                .to_owned(),
        );
    }
    Some(found)
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
