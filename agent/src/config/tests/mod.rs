//! Tests of loading whole configs: a full Prometheus-style file, defaults,
//! the shipped example. Validation errors, unknown fields and environment
//! overrides have their own files.

mod env;
mod unknown;
mod validation;

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::model::Labels;

/// Loads `yaml` with no environment, panicking with the error on failure.
pub(super) fn ok(yaml: &str) -> Config {
    match load_from_str(yaml, &[]) {
        Ok(c) => c,
        Err(e) => panic!("config should load, got: {e}\n---\n{yaml}"),
    }
}

/// Loads `yaml` with `env`, returning the error's message.
pub(super) fn err_with(yaml: &str, env: &[(&str, &str)]) -> String {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    match load_from_str(yaml, &env) {
        Ok(_) => panic!("config should be refused:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const FULL: &str = r#"
global:
  scrape_interval: 15s
  scrape_timeout: 5s
  evaluation_interval: 30s
  external_labels:
    cluster: prod-eu
    Replica: 1.10
scrape_configs:
  - job_name: node
    scrape_interval: 30s
    scrape_timeout: 20s
    metrics_path: /custom/metrics
    scheme: https
    params:
      module: [http_2xx, tcp]
      match[]: ['{job="x"}']
    honor_labels: yes  # YAML 1.1 boolean, as Prometheus reads it
    honor_timestamps: false
    tls_config:
      ca_file: /etc/ca.pem
      cert_file: /etc/cert.pem
      key_file: /etc/key.pem
      server_name: node.internal
      insecure_skip_verify: true
    authorization:
      credentials_file: /var/run/token
    sample_limit: 1000
    label_limit: 30
    body_size_limit: 10MB
    static_configs:
      - targets: ['10.0.0.1:9100', 'node-b:9100', '[::1]:9100']
        labels:
          env: prod
          version: 007
      - targets: [localhost:9100]
    relabel_configs:
      - source_labels: [__address__]
        regex: '(.*):\d+'
        target_label: host
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
  - job_name: defaults
    static_configs:
      - targets: [localhost:9090]
  - job_name: basic
    scrape_interval: 4s
    basic_auth:
      username: admin
      password: 0123
  - job_name: legacy
    bearer_token_file: token
    authorization: ~
remote_write:
  - url: https://mimir.example.com/api/v1/push
    headers:
      X-Scope-OrgID: tenant-1
    remote_timeout: 1m
    basic_auth:
      username: writer
      password_file: /etc/pw
    write_relabel_configs:
      - source_labels: [__name__]
        regex: up
        action: keep
    queue_config:
      capacity: 20000
      max_shards: 10
      min_shards: 2
      max_samples_per_send: 500
      batch_send_deadline: 10s
      min_backoff: 100ms
      max_backoff: 10s
      retry_on_http_429: true
  - url: http://victoria:8428/api/v1/write/
    name: vm
    authorization:
      type: Token
      credentials: s3cr3t
server:
  listen_address: 127.0.0.1:9999
storage:
  path: /data/crowsnest
logging:
  level: info,crowsnest::scrape=debug
  format: text
"#;

#[test]
fn full_prometheus_style_config() {
    let c = ok(FULL);
    assert_eq!(c.global.scrape_interval, secs(15));
    assert_eq!(c.global.scrape_timeout, secs(5));
    // Scalars keep their text, as in Prometheus: 1.10 stays "1.10".
    assert_eq!(
        c.global.external_labels,
        Labels::from_pairs([("Replica", "1.10"), ("cluster", "prod-eu")])
    );

    let [node, defaults, basic, legacy] = &c.scrape_configs[..] else {
        panic!("4 jobs, got {}", c.scrape_configs.len())
    };
    assert_eq!(node.job_name, "node");
    assert_eq!(
        (node.scrape_interval, node.scrape_timeout),
        (secs(30), secs(20))
    );
    assert_eq!(node.metrics_path, "/custom/metrics");
    assert_eq!(node.scheme, Scheme::Https);
    let params: Vec<(&str, &str)> = node
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        params,
        [
            ("match[]", "{job=\"x\"}"),
            ("module", "http_2xx"),
            ("module", "tcp")
        ]
    );
    assert!(node.honor_labels);
    assert!(!node.honor_timestamps);
    assert_eq!(
        node.http.tls,
        TlsConfig {
            ca_file: Some("/etc/ca.pem".into()),
            cert_file: Some("/etc/cert.pem".into()),
            key_file: Some("/etc/key.pem".into()),
            server_name: Some("node.internal".into()),
            insecure_skip_verify: true,
        }
    );
    assert_eq!(
        node.http.auth,
        Some(Auth::Authorization {
            kind: "Bearer".into(),
            credential: Credential::File("/var/run/token".into())
        })
    );
    assert_eq!(
        (node.sample_limit, node.label_limit, node.body_size_limit),
        (1000, 30, 10 << 20)
    );
    assert_eq!(node.static_configs.len(), 2);
    assert_eq!(
        node.static_configs[0].targets,
        ["10.0.0.1:9100", "node-b:9100", "[::1]:9100"]
    );
    assert_eq!(
        node.static_configs[0].labels,
        Labels::from_pairs([("env", "prod"), ("version", "007")])
    );
    assert_eq!(node.static_configs[1].targets, ["localhost:9100"]);
    assert!(node.static_configs[1].labels.is_empty());

    assert_eq!(
        (defaults.scrape_interval, defaults.scrape_timeout),
        (secs(15), secs(5))
    );
    assert_eq!(defaults.metrics_path, "/metrics");
    assert_eq!(defaults.scheme, Scheme::Http);
    assert!(defaults.params.is_empty());
    assert!(!defaults.honor_labels);
    assert!(defaults.honor_timestamps);
    assert_eq!(defaults.http.tls, TlsConfig::default());
    assert_eq!(defaults.http.auth, None);
    assert_eq!(
        (
            defaults.sample_limit,
            defaults.label_limit,
            defaults.body_size_limit
        ),
        (0, 0, 0)
    );

    // The global timeout is capped at a shorter job interval (Prometheus' rule).
    assert_eq!(
        (basic.scrape_interval, basic.scrape_timeout),
        (secs(4), secs(4))
    );
    assert_eq!(
        basic.http.auth,
        Some(Auth::Basic {
            username: "admin".into(),
            password: Some(Credential::Inline(Secret::new("0123")))
        })
    );
    assert_eq!(
        legacy.http.auth,
        Some(Auth::Authorization {
            kind: "Bearer".into(),
            credential: Credential::File("token".into())
        })
    );

    let [mimir, vm] = &c.remote_write[..] else {
        panic!("2 endpoints, got {}", c.remote_write.len())
    };
    assert_eq!(mimir.url.as_str(), "https://mimir.example.com/api/v1/push");
    assert_eq!(mimir.name, "mimir.example.com/api/v1/push");
    assert_eq!(mimir.headers.len(), 1);
    assert_eq!(mimir.headers[0].0.as_str(), "x-scope-orgid");
    assert_eq!(mimir.headers[0].1.to_str().ok(), Some("tenant-1"));
    assert_eq!(mimir.remote_timeout, secs(60));
    assert_eq!(
        mimir.http.auth,
        Some(Auth::Basic {
            username: "writer".into(),
            password: Some(Credential::File("/etc/pw".into()))
        })
    );
    assert_eq!(
        mimir.queue,
        QueueConfig {
            capacity: 20_000,
            max_shards: 10,
            min_shards: 2,
            max_samples_per_send: 500,
            batch_send_deadline: secs(10),
            min_backoff: Duration::from_millis(100),
            max_backoff: secs(10),
            retry_on_http_429: true,
            ..QueueConfig::default()
        }
    );
    assert_eq!(vm.name, "vm");
    assert_eq!(vm.remote_timeout, secs(30));
    assert_eq!(vm.queue, QueueConfig::default());
    assert_eq!(
        vm.http.auth,
        Some(Auth::Authorization {
            kind: "Token".into(),
            credential: Credential::Inline(Secret::new("s3cr3t"))
        })
    );

    assert_eq!(c.server.listen_address.to_string(), "127.0.0.1:9999");
    assert_eq!(c.storage.path, PathBuf::from("/data/crowsnest"));
    assert_eq!(c.logging.level, "info,crowsnest::scrape=debug");
    assert_eq!(c.logging.format, LogFormat::Text);
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let c = ok(FULL);
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cr3t"), "inline credential leaked");
    assert!(!debug.contains("0123"), "inline password leaked");
    assert!(
        !debug.contains("tenant-1"),
        "header values are marked sensitive"
    );
}

#[test]
fn empty_config_is_all_defaults() {
    for yaml in [
        "",
        "# only a comment\n",
        "{}",
        "global:\nscrape_configs:\nremote_write: []\n",
        "global:\n  external_labels:\nserver:\nstorage:\nlogging:\n",
    ] {
        let c = ok(yaml);
        assert_eq!(c.global.scrape_interval, secs(60), "{yaml:?}");
        assert_eq!(c.global.scrape_timeout, secs(10));
        assert!(c.global.external_labels.is_empty());
        assert!(c.scrape_configs.is_empty());
        assert!(c.remote_write.is_empty());
        assert_eq!(c.server.listen_address.to_string(), DEFAULT_LISTEN_ADDRESS);
        assert_eq!(c.storage.path, PathBuf::from(DEFAULT_STORAGE_PATH));
        assert_eq!(c.logging.level, DEFAULT_LOG_LEVEL);
        assert_eq!(c.logging.format, LogFormat::Json);
    }
}

#[test]
fn global_defaults_follow_prometheus() {
    // Unset timeout with a short interval: the timeout becomes the interval.
    let c = ok("global:\n  scrape_interval: 5s\n");
    assert_eq!(
        (c.global.scrape_interval, c.global.scrape_timeout),
        (secs(5), secs(5))
    );
    // Zero means "unset" in Prometheus.
    let c = ok("global:\n  scrape_interval: 0s\n  scrape_timeout: 0\n");
    assert_eq!(
        (c.global.scrape_interval, c.global.scrape_timeout),
        (secs(60), secs(10))
    );
    // Jobs inherit the global values; an unset job timeout is capped at the job interval.
    let c = ok(
        "global:\n  scrape_interval: 1m\n  scrape_timeout: 30s\nscrape_configs:\n- job_name: a\n- job_name: b\n  scrape_interval: 10s\n",
    );
    assert_eq!(
        (
            c.scrape_configs[0].scrape_interval,
            c.scrape_configs[0].scrape_timeout
        ),
        (secs(60), secs(30))
    );
    assert_eq!(
        (
            c.scrape_configs[1].scrape_interval,
            c.scrape_configs[1].scrape_timeout
        ),
        (secs(10), secs(10))
    );
}

#[test]
fn metrics_path_and_targets_forms() {
    let c = ok(
        "scrape_configs:\n- job_name: a\n  metrics_path: federate\n  static_configs:\n  - targets: [example.com, 'example.com:443', '127.0.0.1:80', '[2001:db8::1]:9100']\n",
    );
    assert_eq!(c.scrape_configs[0].metrics_path, "/federate");
    assert_eq!(c.scrape_configs[0].static_configs[0].targets.len(), 4);
}

#[test]
fn remote_write_names_derive_from_url() {
    let c = ok(
        "remote_write:\n- url: http://a:9090/api/v1/write\n- url: https://b.example/push/\n- url: https://b.example:8443/push\n",
    );
    let names: Vec<&str> = c.remote_write.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "a:9090/api/v1/write",
            "b.example/push",
            "b.example:8443/push"
        ]
    );
}

#[test]
fn authorization_header_allowed_without_auth() {
    let c = ok("remote_write:\n- url: http://a/w\n  headers:\n    Authorization: Bearer xyz\n");
    assert_eq!(c.remote_write[0].headers[0].0, http::header::AUTHORIZATION);
}

#[test]
fn example_file_loads() {
    let yaml = include_str!("../../../config/example.yaml");
    let c = ok(yaml);
    assert_eq!(c.scrape_configs.len(), 1);
    assert_eq!(c.remote_write.len(), 1);
    assert_eq!(c.server.listen_address.to_string(), DEFAULT_LISTEN_ADDRESS);
    assert_eq!(c.remote_write[0].queue, QueueConfig::default());
    assert!(c.kubernetes.annotation_job.is_some());
    assert_eq!(c.kubernetes.pod_labels.len(), 4);
}

#[test]
fn load_reads_a_file_and_resolves_relative_paths() {
    let dir = std::env::temp_dir().join(format!("crowsnest-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("crowsnest.yaml");
    std::fs::write(&file, "scrape_configs:\n- job_name: a\n  bearer_token_file: token\n  tls_config:\n    ca_file: /abs/ca.pem\n").expect("write");
    let loaded = load(Some(&file));
    let missing = load(Some(&dir.join("missing.yaml")));
    std::fs::remove_dir_all(&dir).ok();
    let c = loaded.expect("loads");
    assert_eq!(
        c.scrape_configs[0].http.auth,
        Some(Auth::Authorization {
            kind: "Bearer".into(),
            credential: Credential::File(dir.join("token"))
        })
    );
    assert_eq!(
        c.scrape_configs[0].http.tls.ca_file,
        Some(PathBuf::from("/abs/ca.pem"))
    );
    let e = missing.expect_err("missing file");
    assert_eq!(e.kind(), "read");
    assert!(e.to_string().contains("missing.yaml"), "{e}");
}
