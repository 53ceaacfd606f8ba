//! What the chart promises, checked on the rendered objects of each value set: a schema says
//! a manifest is well-formed, these say it is the one we meant.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail, ensure};
use serde_yaml::Value;

use super::chart::{at, str_at};
use super::rules;

/// Labels every object carries.
const STANDARD_LABELS: &[&str] = &[
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
];

/// Capabilities the default values add, each justified in values.yaml.
const CAPABILITIES: &[&str] = &[
    "BPF",
    "PERFMON",
    "SYS_RESOURCE",
    "DAC_READ_SEARCH",
    "SYS_PTRACE",
];

/// Checks the objects rendered with value set `set`.
pub fn check_objects(set: &str, docs: &[Value]) -> Result<()> {
    for doc in docs {
        let kind = str_at(doc, &["kind"]);
        for label in STANDARD_LABELS {
            ensure!(
                !str_at(doc, &["metadata", "labels", label]).is_empty(),
                "{kind} {} lacks label {label}",
                str_at(doc, &["metadata", "name"])
            );
        }
    }
    let daemonset = one(docs, "DaemonSet")?;
    check_daemonset(set, daemonset)?;
    let config_map = docs
        .iter()
        .find(|d| str_at(d, &["kind"]) == "ConfigMap" && at(d, &["data", "config.yaml"]).is_some())
        .context("no ConfigMap with config.yaml")?;
    check_config(set, str_at(config_map, &["data", "config.yaml"]))?;
    check_rbac(docs)?;
    if set == "monitoring" {
        check_monitoring(docs)?;
    }
    Ok(())
}

fn one<'a>(docs: &'a [Value], kind: &str) -> Result<&'a Value> {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| str_at(d, &["kind"]) == kind)
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        _ => bail!("expected one {kind}, found {}", found.len()),
    }
}

fn seq<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

fn check_daemonset(set: &str, ds: &Value) -> Result<()> {
    let pod = at(ds, &["spec", "template", "spec"]).context("no pod spec")?;
    let containers = seq(pod, &["containers"]);
    let [agent] = containers else {
        bail!("expected one container, found {}", containers.len());
    };
    ensure!(
        str_at(pod, &["securityContext", "seccompProfile", "type"]) == "RuntimeDefault",
        "pod seccompProfile is not RuntimeDefault"
    );
    let sc = at(agent, &["securityContext"]).context("no container securityContext")?;
    ensure!(
        at(sc, &["readOnlyRootFilesystem"]) == Some(&Value::Bool(true)),
        "root filesystem is writable"
    );
    let privileged = at(sc, &["privileged"]) == Some(&Value::Bool(true));
    if set == "privileged" {
        ensure!(
            privileged,
            "privileged: true did not make the container privileged"
        );
    } else {
        ensure!(
            !privileged,
            "container is privileged without privileged: true"
        );
        let drop: Vec<&str> = seq(sc, &["capabilities", "drop"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        ensure!(drop == ["ALL"], "capabilities.drop is {drop:?}, not [ALL]");
        let add: Vec<&str> = seq(sc, &["capabilities", "add"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        ensure!(add == CAPABILITIES, "capabilities.add is {add:?}");
        ensure!(
            at(sc, &["allowPrivilegeEscalation"]) == Some(&Value::Bool(false)),
            "allowPrivilegeEscalation is not false"
        );
    }
    let host_network = set != "scheduling";
    ensure!(
        at(pod, &["hostNetwork"]) == Some(&Value::Bool(host_network)),
        "hostNetwork is not {host_network}"
    );
    ensure!(
        at(pod, &["hostPID"]) == Some(&Value::Bool(true)),
        "hostPID is not true"
    );
    if host_network {
        ensure!(
            str_at(pod, &["dnsPolicy"]) == "ClusterFirstWithHostNet",
            "hostNetwork without dnsPolicy ClusterFirstWithHostNet"
        );
    }
    let node_name = seq(agent, &["env"]).iter().any(|e| {
        str_at(e, &["name"]) == "NODE_NAME"
            && str_at(e, &["valueFrom", "fieldRef", "fieldPath"]) == "spec.nodeName"
    });
    ensure!(node_name, "NODE_NAME is not set from spec.nodeName");
    ensure!(
        str_at(agent, &["livenessProbe", "httpGet", "path"]) == "/healthz"
            && str_at(agent, &["readinessProbe", "httpGet", "path"]) == "/readyz",
        "probes are not /healthz and /readyz"
    );
    check_mounts(set, pod, agent)?;
    let config = seq(agent, &["volumeMounts"])
        .iter()
        .find(|m| str_at(m, &["name"]) == "config")
        .context("the config is not mounted")?;
    // subPath mounts never see ConfigMap updates.
    ensure!(
        config.get("subPath").is_none(),
        "the config is mounted with subPath"
    );
    let want = format!("--config={}/config.yaml", str_at(config, &["mountPath"]));
    ensure!(
        seq(agent, &["args"])
            .iter()
            .any(|a| a.as_str() == Some(want.as_str())),
        "the agent's args do not name the mounted config ({want})"
    );
    let tolerations = seq(pod, &["tolerations"]);
    let control_plane = tolerations
        .iter()
        .any(|t| str_at(t, &["key"]) == "node-role.kubernetes.io/control-plane");
    ensure!(
        control_plane == (set != "scheduling"),
        "control-plane toleration present: {control_plane} with values {set}"
    );
    Ok(())
}

/// Host paths are mounted read-only, except the queue's state directory.
fn check_mounts(set: &str, pod: &Value, agent: &Value) -> Result<()> {
    let host_volumes: BTreeSet<&str> = seq(pod, &["volumes"])
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| str_at(v, &["name"]))
        .collect();
    let mounts = seq(agent, &["volumeMounts"]);
    let mut mounted = BTreeSet::new();
    for mount in mounts {
        let name = str_at(mount, &["name"]);
        mounted.insert(str_at(mount, &["mountPath"]));
        let read_only = at(mount, &["readOnly"]) == Some(&Value::Bool(true));
        if host_volumes.contains(name) && name != "state" {
            ensure!(read_only, "host path volume {name} is mounted writable");
        }
        if name == "state" {
            ensure!(!read_only, "the queue's state directory is read-only");
        }
    }
    let mut expected = vec![
        "/sys/fs/cgroup",
        "/sys/kernel/btf",
        "/host/proc",
        "/etc/kubernetes/manifests",
        "/var/lib/crowsnest",
    ];
    expected.push(if set == "etcd-secret" {
        "/etc/crowsnest/etcd"
    } else {
        "/etc/kubernetes/pki/etcd"
    });
    for path in expected {
        ensure!(mounted.contains(path), "{path} is not mounted");
    }
    let state_is_host = host_volumes.contains("state");
    ensure!(
        state_is_host == (set != "scheduling"),
        "state volume is hostPath: {state_is_host} with values {set}"
    );
    Ok(())
}

/// The agent's config: server port, storage, credentials as files only.
fn check_config(set: &str, text: &str) -> Result<()> {
    let config: Value = serde_yaml::from_str(text).context("config.yaml is not YAML")?;
    ensure!(
        str_at(&config, &["server", "listen_address"]) == "0.0.0.0:9465",
        "server.listen_address is not 0.0.0.0:9465"
    );
    ensure!(
        str_at(&config, &["storage", "path"]) == "/var/lib/crowsnest",
        "storage.path is not /var/lib/crowsnest"
    );
    let remote = seq(&config, &["remote_write"]);
    ensure!(!remote.is_empty(), "no remote_write entry");
    if set == "remote-write-auth" {
        ensure!(
            str_at(&config, &["global", "external_labels", "cluster"]) == "prod-eu-1",
            "externalLabels.cluster did not reach global.external_labels"
        );
        ensure!(
            str_at(&remote[0], &["basic_auth", "password_file"])
                == "/etc/crowsnest/secrets/rw-auth/password",
            "basic auth password is not read from the mounted Secret"
        );
        ensure!(
            str_at(&remote[1], &["authorization", "credentials_file"])
                == "/etc/crowsnest/secrets/rw-auth/token",
            "bearer token is not read from the mounted Secret"
        );
    }
    if set == "etcd-secret" {
        ensure!(
            str_at(&config, &["discovery", "components", "etcd", "cert_file"])
                == "/etc/crowsnest/etcd/client.crt",
            "etcd client certificate of the Secret is not configured"
        );
    }
    Ok(())
}

/// Read-only, and only the verbs the agent uses.
fn check_rbac(docs: &[Value]) -> Result<()> {
    let role = one(docs, "ClusterRole")?;
    for rule in seq(role, &["rules"]) {
        for verb in seq(rule, &["verbs"]).iter().filter_map(Value::as_str) {
            ensure!(
                matches!(verb, "get" | "list" | "watch"),
                "ClusterRole grants {verb}"
            );
        }
        for resource in seq(rule, &["resources"]).iter().filter_map(Value::as_str) {
            ensure!(
                !resource.contains("secret") && resource != "*",
                "ClusterRole grants access to {resource}"
            );
        }
    }
    Ok(())
}

/// The PrometheusRule carries exactly the rule groups of deploy/rules; one dashboard ConfigMap
/// per deploy/dashboards/*.json, labelled for the Grafana sidecar.
fn check_monitoring(docs: &[Value]) -> Result<()> {
    one(docs, "ServiceMonitor")?;
    one(docs, "PodMonitor")?;
    let rule = one(docs, "PrometheusRule")?;
    // Same rules, not just the same names: helm must not template the annotations'
    // {{ $labels }} or drop anything on the way.
    let rendered = seq(rule, &["spec", "groups"]);
    let expected = rules::groups()?;
    ensure!(
        rendered == expected.as_slice(),
        "PrometheusRule groups differ from deploy/rules/*.yaml"
    );
    let dashboards = docs
        .iter()
        .filter(|d| {
            str_at(d, &["kind"]) == "ConfigMap"
                && str_at(d, &["metadata", "labels", "grafana_dashboard"]) == "1"
        })
        .count();
    let files = crate::dashboards::json_files()?.len();
    ensure!(
        dashboards == files,
        "{dashboards} dashboard ConfigMaps for {files} files in deploy/dashboards"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::chart::parse_docs;

    /// The chart's objects with default values: the committed plain manifests, without the
    /// Namespace they add.
    fn default_objects() -> Vec<Value> {
        let text = std::fs::read_to_string(crate::deploy::manifests_path()).expect("manifests");
        parse_docs(&text)
            .expect("YAML")
            .into_iter()
            .filter(|d| str_at(d, &["kind"]) != "Namespace")
            .collect()
    }

    fn container(docs: &mut [Value]) -> &mut Value {
        let ds = docs
            .iter_mut()
            .find(|d| str_at(d, &["kind"]) == "DaemonSet")
            .expect("DaemonSet");
        &mut ds["spec"]["template"]["spec"]["containers"][0]
    }

    fn error(docs: &[Value]) -> String {
        format!(
            "{:#}",
            check_objects("default", docs).expect_err("must fail")
        )
    }

    #[test]
    fn default_manifests_keep_the_promises() {
        check_objects("default", &default_objects()).expect("promises hold");
    }

    #[test]
    fn privileged_container_is_caught() {
        let mut docs = default_objects();
        container(&mut docs)["securityContext"]["privileged"] = Value::Bool(true);
        assert!(error(&docs).contains("privileged"));
    }

    #[test]
    fn writable_host_mount_is_caught() {
        let mut docs = default_objects();
        let mounts = &mut container(&mut docs)["volumeMounts"];
        let cgroup = mounts
            .as_sequence_mut()
            .expect("mounts")
            .iter_mut()
            .find(|m| str_at(m, &["name"]) == "cgroup")
            .expect("cgroup mount");
        cgroup["readOnly"] = Value::Bool(false);
        assert!(error(&docs).contains("cgroup is mounted writable"));
    }

    #[test]
    fn missing_node_name_is_caught() {
        let mut docs = default_objects();
        container(&mut docs)["env"] = Value::Sequence(Vec::new());
        assert!(error(&docs).contains("NODE_NAME"));
    }

    #[test]
    fn write_verbs_in_the_cluster_role_are_caught() {
        let mut docs = default_objects();
        let role = docs
            .iter_mut()
            .find(|d| str_at(d, &["kind"]) == "ClusterRole")
            .expect("ClusterRole");
        role["rules"][0]["verbs"] =
            serde_yaml::from_str("[get, list, watch, delete]").expect("yaml");
        assert!(error(&docs).contains("grants delete"));
    }
}
