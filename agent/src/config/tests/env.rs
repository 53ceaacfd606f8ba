//! `CROWSNEST_…` environment overrides on top of the file.

use std::time::Duration;

use super::super::*;
use super::err_with;
use crate::model::Labels;

fn with_env(yaml: &str, env: &[(&str, &str)]) -> Config {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    match load_from_str(yaml, &env) {
        Ok(c) => c,
        Err(e) => panic!("should load: {e}"),
    }
}

const FILE: &str = "global:\n  scrape_interval: 15s\n  external_labels:\n    cluster: a\n    Team: x\nlogging:\n  level: warn\n  format: text\nscrape_configs:\n- job_name: j\n";

#[test]
fn environment_overrides_file_values() {
    let c = with_env(
        FILE,
        &[
            ("CROWSNEST_GLOBAL__SCRAPE_INTERVAL", "30s"),
            ("CROWSNEST_GLOBAL__SCRAPE_TIMEOUT", "20s"),
            ("CROWSNEST_SERVER__LISTEN_ADDRESS", "0.0.0.0:9090"),
            ("CROWSNEST_STORAGE__PATH", "/tmp/state"),
            ("CROWSNEST_LOGGING__LEVEL", "debug"),
            ("UNRELATED", "x"),
        ],
    );
    assert_eq!(c.global.scrape_interval, Duration::from_secs(30));
    assert_eq!(c.global.scrape_timeout, Duration::from_secs(20));
    // The job inherits the overridden global interval.
    assert_eq!(c.scrape_configs[0].scrape_interval, Duration::from_secs(30));
    assert_eq!(c.server.listen_address.to_string(), "0.0.0.0:9090");
    assert_eq!(c.storage.path, std::path::PathBuf::from("/tmp/state"));
    assert_eq!(c.logging.level, "debug");
    // Fields not overridden keep the file's value.
    assert_eq!(c.logging.format, LogFormat::Text);
}

#[test]
fn environment_alone_sets_values_over_defaults() {
    let c = with_env(
        "",
        &[
            ("CROWSNEST_LOGGING__FORMAT", "text"),
            ("crowsnest_logging__level", "trace"),
            ("CROWSNEST_RUNTIME__WORKER_THREADS", "3"),
        ],
    );
    assert_eq!(c.logging.format, LogFormat::Text);
    assert_eq!(c.logging.level, "trace");
    assert_eq!(c.runtime.worker_threads, 3);
    let defaults = with_env("", &[]);
    assert_eq!(defaults.runtime.worker_threads, 1);
    let per_cpu = with_env("runtime:\n  worker_threads: 0\n", &[]);
    assert_eq!(
        per_cpu.runtime.worker_threads,
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    );
}

#[test]
fn external_label_names_keep_their_case() {
    let c = with_env(
        FILE,
        &[
            ("CROWSNEST_GLOBAL__EXTERNAL_LABELS__cluster", "b"),
            ("CROWSNEST_GLOBAL__EXTERNAL_LABELS__Region", "eu-1"),
        ],
    );
    assert_eq!(
        c.global.external_labels,
        Labels::from_pairs([("Region", "eu-1"), ("Team", "x"), ("cluster", "b")])
    );
}

#[test]
fn environment_values_are_validated_like_file_values() {
    let msg = err_with(FILE, &[("CROWSNEST_GLOBAL__SCRAPE_TIMEOUT", "1m")]);
    assert!(
        msg.contains("global.scrape_timeout (1m) is longer than scrape_interval (15s)"),
        "{msg}"
    );
    let msg = err_with("", &[("CROWSNEST_GLOBAL__EXTERNAL_LABELS__bad-name", "x")]);
    assert!(msg.contains("invalid label name \"bad-name\""), "{msg}");
}

#[test]
fn environment_errors_name_the_variable() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "CROWSNEST_LOGGING__LEVLE",
            "debug",
            &[
                "environment variable CROWSNEST_LOGGING__LEVLE",
                "logging.levle: unknown field `levle`",
                "`level`",
            ],
        ),
        (
            "CROWSNEST_GLOBAL__SCRAPE_INTERVAL",
            "30",
            &[
                "environment variable CROWSNEST_GLOBAL__SCRAPE_INTERVAL",
                "global.scrape_interval",
                "no unit",
            ],
        ),
        (
            "CROWSNEST_BOGUS__X",
            "1",
            &[
                "environment variable CROWSNEST_BOGUS__X",
                "unknown field `bogus`",
            ],
        ),
        (
            "CROWSNEST_LOGGING_LEVEL",
            "debug",
            &[
                "environment variable CROWSNEST_LOGGING_LEVEL",
                "two underscores",
                "CROWSNEST_LOGGING__<FIELD>",
            ],
        ),
        (
            "CROWSNEST_SCRAPE_CONFIGS__0__JOB_NAME",
            "x",
            &[
                "environment variable CROWSNEST_SCRAPE_CONFIGS__0__JOB_NAME",
                "scrape_configs is a list",
                "config file",
            ],
        ),
        (
            "CROWSNEST_REMOTE_WRITE__URL",
            "http://a/w",
            &["remote_write is a list"],
        ),
    ];
    for (var, value, wants) in cases {
        let msg = err_with("", &[(var, value)]);
        for want in *wants {
            assert!(msg.contains(want), "{var}: {msg}\n  missing: {want}");
        }
    }
}

#[test]
fn non_config_variables_with_the_prefix_are_ignored() {
    // E.g. a variable the CLI reads for the config file's path.
    let c = with_env("", &[("CROWSNEST_CONFIG", "/etc/crowsnest.yaml")]);
    assert_eq!(c.logging.level, DEFAULT_LOG_LEVEL);
}
