//! Every validation error, table-driven: a YAML snippet and the substrings its
//! message must contain (the field path first, then what is wrong / the fix).

use super::err_with;

/// (yaml, expected substrings)
const CASES: &[(&str, &[&str])] = &[
    // --- YAML shape and value syntax ---
    (
        "global:\n  scrape_interval: '15s\n",
        &[
            "global.scrape_interval:",
            "quoted scalar at line 2 column 20",
        ],
    ),
    (
        "global: [",
        &["global:", "expected the global section (a map)"],
    ),
    (
        "global:\n  scrape_interval: 1.5m\n",
        &["global.scrape_interval:", "fraction", "(line 2, column 20)"],
    ),
    (
        "global:\n  scrape_interval: 15\n",
        &["global.scrape_interval:", "no unit"],
    ),
    (
        "global:\n  scrape_timeout: 1m1h\n",
        &["global.scrape_timeout:", "largest to smallest"],
    ),
    (
        "global:\n  scrape_interval: [1m]\n",
        &["global.scrape_interval:", "Prometheus duration"],
    ),
    (
        "global:\n  external_labels: [a]\n",
        &["global.external_labels:", "expected a map"],
    ),
    (
        "scrape_configs: {}\n",
        &["scrape_configs:", "expected a sequence"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  sample_limit: 1.5\n",
        &["scrape_configs[0].sample_limit:", "invalid type"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  sample_limit: -1\n",
        &[
            "scrape_configs[0].sample_limit:",
            "invalid type: integer `-1`",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  honor_labels: maybe\n",
        &[
            "scrape_configs[0].honor_labels:",
            "invalid value: string \"maybe\", expected true or false",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  body_size_limit: 10mb\n",
        &["scrape_configs[0].body_size_limit:", "unknown unit \"mb\""],
    ),
    (
        "scrape_configs:\n- job_name: a\n  body_size_limit: -5\n",
        &["scrape_configs[0].body_size_limit:", "negative"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    min_backoff: 1x\n",
        &["remote_write[0].queue_config.min_backoff:", "unknown unit"],
    ),
    // --- global ---
    (
        "global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n",
        &[
            "global.scrape_timeout (10s) is longer than scrape_interval (5s): lower scrape_timeout or raise scrape_interval",
        ],
    ),
    (
        "global:\n  external_labels:\n    1bad: x\n",
        &[
            "global.external_labels has an invalid label name \"1bad\"",
            "letters, digits and underscores",
        ],
    ),
    (
        "global:\n  external_labels:\n    a-b: x\n",
        &["global.external_labels has an invalid label name \"a-b\""],
    ),
    (
        "global:\n  external_labels:\n    __name__: x\n",
        &["global.external_labels.__name__ uses the reserved prefix __"],
    ),
    (
        "global:\n  external_labels:\n    a: ''\n",
        &[
            "global.external_labels.a has an empty value",
            "give the label a value or remove it",
        ],
    ),
    // --- scrape_configs ---
    (
        "scrape_configs:\n- scrape_interval: 1m\n",
        &["scrape_configs[0].job_name is missing", "unique job_name"],
    ),
    (
        "scrape_configs:\n- job_name: ''\n",
        &["scrape_configs[0].job_name is missing"],
    ),
    (
        "scrape_configs:\n- job_name: a\n- job_name: b\n- job_name: a\n",
        &[
            "scrape_configs[2].job_name (\"a\") is already used",
            "unique job_name",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  scrape_interval: 15s\n  scrape_timeout: 20s\n",
        &[
            "scrape_configs[0].scrape_timeout (20s) is longer than scrape_interval (15s): lower scrape_timeout or raise scrape_interval",
        ],
    ),
    (
        "global:\n  scrape_timeout: 20s\nscrape_configs:\n- job_name: a\n  scrape_timeout: 2m\n",
        &["scrape_configs[0].scrape_timeout (2m) is longer than scrape_interval (1m)"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  scheme: ftp\n",
        &["scrape_configs[0].scheme (\"ftp\") is not a scrape scheme: use http or https"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['http://x:1']\n",
        &[
            "scrape_configs[0].static_configs[0].targets[0] (\"http://x:1\") has a scheme",
            "host:port",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: [ok:1, 'x:1/metrics']\n",
        &[
            "scrape_configs[0].static_configs[0].targets[1] (\"x:1/metrics\") is not a host:port address",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['x:99999']\n",
        &["targets[0] (\"x:99999\")"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['x:0']\n",
        &["targets[0] (\"x:0\") has an invalid port"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['x:']\n",
        &["targets[0] (\"x:\") has an invalid port"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: [':9100']\n",
        &["targets[0] (\":9100\")"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['::1:9100']\n",
        &["targets[0] (\"::1:9100\") is not a host:port address"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['a b:1']\n",
        &["targets[0] (\"a b:1\") is not a host:port address"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['u@x:1']\n",
        &["targets[0] (\"u@x:1\") is not a host:port address"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - labels:\n      bad-name: x\n",
        &["scrape_configs[0].static_configs[0].labels has an invalid label name \"bad-name\""],
    ),
    (
        "scrape_configs:\n- job_name: a\n  relabel_configs:\n  - regex: '('\n",
        &["scrape_configs[0].relabel_configs:", "regex"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  metric_relabel_configs:\n  - {regex: 'a', action: keep}\n  - regex: '[z-a]'\n",
        &["scrape_configs[0].metric_relabel_configs:", "1"],
    ),
    (
        "scrape_configs:\n- job_name: crowsnest\n",
        &[
            "scrape_configs[0].job_name",
            "reserved for the agent's own metrics",
        ],
    ),
    // --- TLS and auth (scrape and remote write share them) ---
    (
        "scrape_configs:\n- job_name: a\n  tls_config:\n    cert_file: c.pem\n",
        &["scrape_configs[0].tls_config.cert_file is set without key_file"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  tls_config:\n    key_file: k.pem\n",
        &["scrape_configs[0].tls_config.key_file is set without cert_file"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  tls_config:\n    server_name: ''\n",
        &["scrape_configs[0].tls_config.server_name is empty"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  authorization:\n    credentials: x\n    credentials_file: f\n",
        &[
            "scrape_configs[0].authorization.credentials and credentials_file are both set: keep only one of them",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  authorization:\n    type: Bearer\n",
        &["scrape_configs[0].authorization.credentials is missing"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  authorization:\n    type: basic\n    credentials: x\n",
        &[
            "scrape_configs[0].authorization.type (Basic) is not allowed here",
            "basic_auth",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  authorization:\n    type: 'Bearer x'\n    credentials: x\n",
        &[
            "scrape_configs[0].authorization.type (\"Bearer x\") is not an HTTP authentication scheme",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  authorization:\n    credentials: x\n  bearer_token_file: f\n",
        &[
            "scrape_configs[0].bearer_token_file is set together with authorization",
            "one way of authenticating",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  basic_auth:\n    username: u\n  bearer_token_file: f\n",
        &["scrape_configs[0].bearer_token_file is set together with basic_auth"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  basic_auth:\n    username: u\n  authorization:\n    credentials: x\n",
        &["scrape_configs[0].basic_auth is set together with authorization"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  bearer_token: t\n  bearer_token_file: f\n",
        &["scrape_configs[0].bearer_token and bearer_token_file are both set"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  basic_auth:\n    username: u\n    password: p\n    password_file: f\n",
        &["scrape_configs[0].basic_auth.password and password_file are both set"],
    ),
    (
        "scrape_configs:\n- job_name: a\n  basic_auth: {}\n",
        &["scrape_configs[0].basic_auth.username and password are both missing"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  tls_config:\n    cert_file: c\n",
        &["remote_write[0].tls_config.cert_file is set without key_file"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  basic_auth:\n    username: u\n  bearer_token_file: f\n",
        &["remote_write[0].bearer_token_file is set together with basic_auth"],
    ),
    // --- remote_write ---
    (
        "remote_write:\n- name: x\n",
        &[
            "remote_write[0].url is missing",
            "http://prometheus:9090/api/v1/write",
        ],
    ),
    (
        "remote_write:\n- url: 'not a url'\n",
        &["remote_write[0].url is not a valid URL"],
    ),
    (
        "remote_write:\n- url: ftp://a/w\n",
        &["remote_write[0].url has scheme \"ftp\": use an http:// or https:// URL"],
    ),
    (
        "remote_write:\n- url: 'http://user:hunter2@a/w'\n",
        &["remote_write[0].url contains credentials", "basic_auth"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  name: ''\n",
        &["remote_write[0].name is empty"],
    ),
    (
        "remote_write:\n- url: http://a/w\n- url: http://a/w/\n",
        &[
            "remote_write[1].name (\"a/w\") is already used by remote_write[0]",
            "distinct name",
        ],
    ),
    (
        "remote_write:\n- url: http://a/w\n  name: x\n- url: http://b/w\n  name: x\n",
        &["remote_write[1].name (\"x\") is already used by remote_write[0]"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  headers:\n    content-type: text/plain\n",
        &["remote_write[0].headers.content-type is set by crowsnest itself"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  headers:\n    Content-Encoding: gzip\n",
        &["remote_write[0].headers.Content-Encoding is set by crowsnest itself"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  headers:\n    X-Prometheus-Remote-Write-Version: 2.0.0\n",
        &["remote_write[0].headers.X-Prometheus-Remote-Write-Version is set by crowsnest"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  headers:\n    USER-AGENT: me\n",
        &["remote_write[0].headers.USER-AGENT is set by crowsnest"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  headers:\n    Authorization: Bearer x\n  bearer_token_file: f\n",
        &["remote_write[0].headers.Authorization conflicts with the configured authentication"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  headers:\n    'bad header': x\n",
        &["remote_write[0].headers has an invalid header name \"bad header\""],
    ),
    (
        "remote_write:\n- url: http://a/w\n  headers:\n    X-Token: \"a\\nb\"\n",
        &["remote_write[0].headers.X-Token has a value with characters not allowed"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  remote_timeout: 0s\n",
        &["remote_write[0].remote_timeout is 0"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  write_relabel_configs:\n  - regex: '('\n",
        &["remote_write[0].write_relabel_configs:"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    min_shards: 5\n    max_shards: 2\n",
        &[
            "remote_write[0].queue_config.min_shards (5) is larger than max_shards (2): lower min_shards or raise max_shards",
        ],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    disk_budget: 1KiB\n",
        &["remote_write[0].queue_config.disk_budget (1024 bytes) is below the minimum of 1MiB"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    disk_budget: lots\n",
        &["remote_write[0].queue_config.disk_budget:"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    fsync_interval: 0s\n",
        &["remote_write[0].queue_config.fsync_interval is 0"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  protobuf_message: v2\n",
        &[
            "remote_write[0].protobuf_message (\"v2\") is not a known message",
            "io.prometheus.write.v2.Request or auto",
        ],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    capacity: 0\n",
        &[
            "remote_write[0].queue_config.capacity (0) is out of range",
            "1 or more (default 10000)",
        ],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    max_shards: 0\n",
        &["remote_write[0].queue_config.max_shards (0) is out of range"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    min_shards: 0\n",
        &["remote_write[0].queue_config.min_shards (0) is out of range"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    max_samples_per_send: 0\n",
        &["remote_write[0].queue_config.max_samples_per_send (0) is out of range"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    batch_send_deadline: 0s\n",
        &["remote_write[0].queue_config.batch_send_deadline is 0"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    min_backoff: 0s\n",
        &["remote_write[0].queue_config.min_backoff is 0"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  queue_config:\n    min_backoff: 10s\n    max_backoff: 1s\n",
        &[
            "remote_write[0].queue_config.min_backoff (10s) is longer than max_backoff (1s): lower min_backoff or raise max_backoff",
        ],
    ),
    (
        "remote_write:\n- url: http://a/w\n  headers:\n    X-A: '1'\n    x-a: '2'\n",
        &["remote_write[0].headers.x-a repeats a header already set"],
    ),
    (
        "remote_write:\n- url: http://a/w\n  headers:\n    X-A: '1'\n    X-A: '2'\n",
        &["remote_write[0].headers:", "key \"X-A\" appears twice"],
    ),
    (
        "global:\n  external_labels:\n    a: x\n    a: y\n",
        &[
            "global.external_labels:",
            "key \"a\" appears twice: keep one of them",
            "line 3",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  static_configs:\n  - labels: {a: x, a: y}\n",
        &[
            "scrape_configs[0].static_configs[0].labels:",
            "appears twice",
        ],
    ),
    (
        "scrape_configs:\n- job_name: a\n  params: {a: [x], a: [y]}\n",
        &["scrape_configs[0].params:", "appears twice"],
    ),
    // --- server, storage, logging ---
    (
        "server:\n  listen_address: localhost:9465\n",
        &[
            "server.listen_address (\"localhost:9465\") is not an ip:port address",
            "0.0.0.0:9465",
        ],
    ),
    (
        "server:\n  listen_address: 0.0.0.0\n",
        &["server.listen_address (\"0.0.0.0\") is not an ip:port address"],
    ),
    ("storage:\n  path: ''\n", &["storage.path is empty"]),
    ("logging:\n  level: ''\n", &["logging.level is empty"]),
    (
        "logging:\n  level: 'crowsnest=loud'\n",
        &["logging.level (\"crowsnest=loud\") is not a log filter"],
    ),
    (
        "logging:\n  format: logfmt\n",
        &["logging.format (\"logfmt\") is not a log format: use json (the default) or text"],
    ),
    (
        "runtime:\n  worker_threads: 100000\n",
        &["runtime.worker_threads (100000) is more than 256: use 1 (the default)"],
    ),
];

#[test]
fn every_validation_error_names_path_problem_and_fix() {
    let mut failures = Vec::new();
    for (yaml, wants) in CASES {
        let result = std::panic::catch_unwind(|| err_with(yaml, &[]));
        match result {
            Ok(msg) => {
                for want in *wants {
                    if !msg.contains(want) {
                        failures.push(format!("{yaml:?}\n  message: {msg}\n  missing: {want}"));
                    }
                }
            }
            Err(_) => failures.push(format!("{yaml:?}\n  was accepted")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn errors_never_echo_secrets() {
    let cases = [
        "remote_write:\n- url: 'http://user:hunter2@a/w'\n",
        "remote_write:\n- url: http://a/w\n  headers:\n    X-Token: \"hunter2\\n\"\n",
        "scrape_configs:\n- job_name: a\n  basic_auth:\n    username: u\n    password: hunter2\n    password_file: f\n",
        "scrape_configs:\n- job_name: a\n  authorization:\n    credentials: hunter2\n    credentials_file: f\n",
    ];
    for yaml in cases {
        let msg = err_with(yaml, &[]);
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
