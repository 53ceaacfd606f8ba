//! The chart under several value sets: lint, render, check the chart's promises on the
//! rendered objects, validate them against the Kubernetes schemas; bad values must fail.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_yaml::Value;

use super::{KUBERNETES_VERSIONS, helm_template, output};
use crate::cmd;
use crate::pytools::Tools;

/// A named set of values (YAML, as a user would pass with `-f`).
pub struct ValueSet {
    /// File name stem of the rendered output.
    pub name: &'static str,
    /// The values.
    pub values: &'static str,
}

/// Value sets that must lint, render and validate.
pub const VALID: &[ValueSet] = &[
    ValueSet {
        name: "default",
        values: "{}",
    },
    ValueSet {
        name: "privileged",
        values: "privileged: true\n",
    },
    ValueSet {
        name: "etcd-secret",
        values: "etcd:\n  existingSecret:\n    name: etcd-client\n    certKey: client.crt\n    keyKey: client.key\n",
    },
    ValueSet {
        name: "monitoring",
        values: "serviceMonitor: {enabled: true, labels: {release: kps}}\n\
                 podMonitor: {enabled: true}\n\
                 prometheusRule: {enabled: true, labels: {release: kps}}\n\
                 dashboards: {enabled: true, folder: crowsnest}\n",
    },
    ValueSet {
        name: "scheduling",
        values: "tolerations: [{key: dedicated, operator: Equal, value: monitoring, effect: NoSchedule}]\n\
                 nodeSelector: {pool: system}\n\
                 priorityClassName: system-node-critical\n\
                 updateStrategy: {type: OnDelete}\n\
                 storage: {type: emptyDir, sizeLimit: 4Gi}\n\
                 hostNetwork: false\n\
                 dnsPolicy: ClusterFirst\n",
    },
    ValueSet {
        name: "remote-write-auth",
        values: "externalLabels: {cluster: prod-eu-1, region: eu}\n\
                 remoteWrite:\n\
                 - url: https://vm.example.com/api/v1/write\n  \
                   name: vm\n  \
                   basicAuth: {username: crowsnest, passwordSecret: {name: rw-auth, key: password}}\n  \
                   tls: {caSecret: {name: rw-ca, key: ca.crt}}\n  \
                   queueConfig: {disk_budget: 2GiB}\n\
                 - url: https://mimir.example.com/api/v1/push\n  \
                   bearerTokenSecret: {name: rw-auth, key: token}\n  \
                   headers: {X-Scope-OrgID: team-a}\n\
                 config:\n  \
                   collectors: {enabled: [cpu, tcp]}\n  \
                   scrapeConfigs: [{job_name: node, static_configs: [{targets: ['localhost:9100']}]}]\n",
    },
];

/// Value sets values.schema.json must reject, with a piece of the error helm prints.
pub const INVALID: &[(&str, &str, &str)] = &[
    ("port zero", "port: 0\n", "/port"),
    (
        "unknown storage type",
        "storage: {type: pvc}\n",
        "/storage/type",
    ),
    ("no remote write", "remoteWrite: []\n", "/remoteWrite"),
    (
        "remote write without URL",
        "remoteWrite: [{name: x}]\n",
        "/remoteWrite/0",
    ),
    (
        "remote write URL without scheme",
        "remoteWrite: [{url: 'vm:8428/api/v1/write'}]\n",
        "/remoteWrite/0/url",
    ),
    (
        "basic and bearer auth together",
        "remoteWrite: [{url: 'http://a/w', basicAuth: {username: u, passwordSecret: {name: s, key: p}}, bearerTokenSecret: {name: s, key: t}}]\n",
        "/remoteWrite/0",
    ),
    ("misspelt top-level key", "tolerationz: []\n", "tolerationz"),
    (
        "privileged through securityContext",
        "securityContext: {privileged: true}\n",
        "/securityContext/privileged",
    ),
    (
        "relative host path",
        "hostPaths: {cgroup: sys/fs/cgroup}\n",
        "/hostPaths/cgroup",
    ),
    (
        "external labels in config.global",
        "config: {global: {external_labels: {a: b}}}\n",
        "/config/global",
    ),
    (
        "bad label name",
        "externalLabels: {'bad-name': x}\n",
        "'bad-name' does not match",
    ),
];

/// Kinds without a schema in kubernetes-validate (Prometheus Operator CRDs).
const CRD_GROUPS: &[&str] = &["monitoring.coreos.com/"];

/// Lints and renders every value set, checks the objects, validates them, and makes sure
/// the bad value sets fail.
pub fn check(tools: &Tools, work: &Path) -> Result<()> {
    let mut to_validate = Vec::new();
    let mut skipped = Vec::new();
    for set in VALID {
        let values = work.join(format!("{}.values.yaml", set.name));
        std::fs::write(&values, set.values)?;
        let values_arg = values.to_string_lossy().into_owned();
        lint(&tools.helm, &values_arg)?;
        let rendered = helm_template(&tools.helm, &["-f", &values_arg], "monitoring")?;
        let docs = parse_docs(&rendered).with_context(|| format!("values {}", set.name))?;
        super::promises::check_objects(set.name, &docs)
            .with_context(|| format!("rendered with values {}", set.name))?;
        agent_accepts_config(set.name, &docs, work)?;
        // Helm's own text, not a re-serialisation: YAML 1.1 and 1.2 parsers disagree on
        // scalars such as 0400, and the cluster reads what helm wrote.
        let mut kept = String::new();
        let body = rendered.strip_prefix("---").unwrap_or(&rendered);
        for chunk in body.split("\n---") {
            let Some(doc) = parse_docs(chunk)?.into_iter().next() else {
                continue;
            };
            let api = str_at(&doc, &["apiVersion"]);
            if CRD_GROUPS.iter().any(|group| api.starts_with(group)) {
                skipped.push(format!("{}/{}", set.name, str_at(&doc, &["kind"])));
                continue;
            }
            kept.push_str("---");
            kept.push_str(chunk);
            kept.push('\n');
        }
        let path = work.join(format!("{}.yaml", set.name));
        std::fs::write(&path, kept)?;
        to_validate.push(path);
        eprintln!(
            "xtask: chart values {:<18} rendered {} objects",
            set.name,
            docs.len()
        );
    }
    validate(&tools.kubernetes_validate, &to_validate)?;
    if !skipped.is_empty() {
        eprintln!(
            "xtask: not schema-validated (CRDs, no schema in kubernetes-validate): {}",
            skipped.join(", ")
        );
    }
    for (what, values, expected) in INVALID {
        let path = work.join("invalid.values.yaml");
        std::fs::write(&path, values)?;
        let path_arg = path.to_string_lossy().into_owned();
        match helm_template(&tools.helm, &["-f", &path_arg], "monitoring") {
            Ok(_) => bail!("values.schema.json accepts bad values ({what}): {values}"),
            Err(err) => {
                let text = format!("{err:#}");
                ensure!(
                    text.contains(expected),
                    "bad values ({what}) failed, but not naming {expected}: {text}"
                );
            }
        }
    }
    eprintln!(
        "xtask: values.schema.json rejects all {} bad value sets",
        INVALID.len()
    );
    Ok(())
}

/// The agent must accept the config the chart renders: the chart's values and
/// the agent's config schema cannot drift apart unnoticed.
fn agent_accepts_config(set: &str, docs: &[Value], work: &Path) -> Result<()> {
    let configs: Vec<&str> = docs
        .iter()
        .filter(|d| str_at(d, &["kind"]) == "ConfigMap")
        .filter_map(|d| at(d, &["data", "config.yaml"]).and_then(Value::as_str))
        .collect();
    ensure!(
        configs.len() == 1,
        "values {set}: expected one agent config, found {}",
        configs.len()
    );
    let path = work.join(format!("{set}.agent-config.yaml"));
    std::fs::write(&path, configs[0])?;
    let mut check = cmd::cargo();
    check
        .args([
            "run",
            "--quiet",
            "-p",
            "crowsnest",
            "--bin",
            "crowsnest",
            "--",
            "check",
            "config",
        ])
        .arg(&path);
    cmd::run(&mut check)
        .with_context(|| format!("values {set}: the agent refuses the rendered config"))
}

fn lint(helm: &Path, values: &str) -> Result<()> {
    let chart = cmd::workspace_root().join("charts").join("crowsnest");
    let (ok, stdout, stderr) = output(
        Command::new(helm)
            .args(["lint", "--strict"])
            .arg(&chart)
            .args(["-f", values]),
    )?;
    ensure!(
        ok,
        "helm lint --strict -f {values} failed:\n{stdout}{stderr}"
    );
    Ok(())
}

/// `kubernetes-validate --strict` of all files, once per Kubernetes version.
fn validate(bin: &Path, files: &[PathBuf]) -> Result<()> {
    for version in KUBERNETES_VERSIONS {
        let (ok, stdout, stderr) = output(
            Command::new(bin)
                .args(["--strict", "--quiet", "-k", version])
                .args(files),
        )?;
        let mut report = String::new();
        let _ = write!(report, "{stdout}{stderr}");
        ensure!(
            ok && !report.contains("ERROR"),
            "kubernetes-validate --strict -k {version} failed:\n{report}"
        );
    }
    eprintln!(
        "xtask: {} rendered value sets valid (strict) for Kubernetes {} to {}",
        files.len(),
        KUBERNETES_VERSIONS[0],
        KUBERNETES_VERSIONS[KUBERNETES_VERSIONS.len() - 1]
    );
    Ok(())
}

/// The non-empty documents of a multi-document YAML stream.
pub fn parse_docs(text: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = <Value as serde::Deserialize>::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The string at a path of mapping keys, or "" when absent.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    at(value, path).and_then(Value::as_str).unwrap_or("")
}

/// The value at a path of mapping keys.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}
