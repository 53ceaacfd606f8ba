//! Unknown keys are refused at every level, with the path and the accepted keys.

use super::err_with;

/// (yaml, path of the unknown key, a key the message must offer instead)
const CASES: &[(&str, &str, &str)] = &[
    ("bogus: 1\n", "bogus", "scrape_configs"),
    (
        "global:\n  scrape_intervall: 1m\n",
        "global.scrape_intervall",
        "scrape_interval",
    ),
    (
        "scrape_configs:\n- job_name: a\n  jobname: b\n",
        "scrape_configs[0].jobname",
        "job_name",
    ),
    (
        "scrape_configs:\n- job_name: a\n- job_name: b\n  tls_config:\n    ca_fle: x\n",
        "scrape_configs[1].tls_config.ca_fle",
        "ca_file",
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: []\n    label: {}\n",
        "scrape_configs[0].static_configs[0].label",
        "labels",
    ),
    (
        "scrape_configs:\n- job_name: a\n  basic_auth:\n    user: u\n",
        "scrape_configs[0].basic_auth.user",
        "username",
    ),
    (
        "scrape_configs:\n- job_name: a\n  authorization:\n    token: t\n",
        "scrape_configs[0].authorization.token",
        "credentials",
    ),
    (
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - sourcelabels: [a]\n",
        "scrape_configs[0].relabel_configs[0].sourcelabels",
        "source_labels",
    ),
    (
        "scrape_configs:\n- job_name: a\n  metric_relabel_configs:\n  - actions: drop\n",
        "scrape_configs[0].metric_relabel_configs[0].actions",
        "action",
    ),
    (
        "remote_write:\n- url: http://a/w\n  timeout: 1s\n",
        "remote_write[0].timeout",
        "remote_timeout",
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    shards: 1\n",
        "remote_write[0].queue_config.shards",
        "max_shards",
    ),
    (
        "remote_write:\n- url: http://a/w\n  write_relabel_configs:\n  - regexp: x\n",
        "remote_write[0].write_relabel_configs[0].regexp",
        "regex",
    ),
    (
        "remote_write:\n- url: http://a/w\n  tls_config:\n    insecure: true\n",
        "remote_write[0].tls_config.insecure",
        "insecure_skip_verify",
    ),
    ("server:\n  port: 1\n", "server.port", "listen_address"),
    ("storage:\n  dir: /x\n", "storage.dir", "path"),
    ("logging:\n  levl: debug\n", "logging.levl", "level"),
];

#[test]
fn unknown_fields_are_refused_at_every_level() {
    for (yaml, path, offered) in CASES {
        let msg = err_with(yaml, &[]);
        let name = path.rsplit('.').next().unwrap_or(path);
        assert!(
            msg.starts_with(&format!("{path}: unknown field `{name}`")),
            "{yaml:?}: {msg}"
        );
        assert!(
            msg.contains(&format!("`{offered}`")),
            "{yaml:?} should offer {offered}: {msg}"
        );
        assert!(
            msg.contains("(line "),
            "{yaml:?} should give the line: {msg}"
        );
    }
}

#[test]
fn unsupported_prometheus_settings_explain_themselves() {
    let cases: &[(&str, &str)] = &[
        (
            "scrape_configs:\n- job_name: a\n  consul_sd_configs:\n  - server: c:8500\n",
            "service discovery other than static_configs",
        ),
        ("rule_files: []\n", "evaluates no rules"),
        ("alerting: {}\n", "sends no alerts"),
        (
            "scrape_configs:\n- job_name: a\n  oauth2: {}\n",
            "not supported yet",
        ),
        (
            "remote_write:\n- url: http://a/w\n  send_native_histograms: true\n",
            "native histograms",
        ),
    ];
    for (yaml, hint) in cases {
        let msg = err_with(yaml, &[]);
        assert!(
            msg.contains("unknown field") && msg.contains(hint),
            "{yaml:?}: {msg}"
        );
    }
}
