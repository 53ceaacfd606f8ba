//! Runs the shared exposition conformance suites (see
//! `shared/conformance/exposition/MANIFEST.md`): the official OpenMetrics
//! parser tests, Prometheus' own parser cases, and real payloads.
//!
//! Where we knowingly differ from strict OpenMetrics (because Prometheus
//! accepts the input, or the check needs state across samples), the case is
//! listed in [`OM_ACCEPTED_BAD`] with the reason. Any other mismatch fails, and
//! so does a listed case that no longer mismatches (the list must stay true).

use std::fs;
use std::path::{Path, PathBuf};

use super::gotable::{GoSample, read_samples};
use super::{Entry, Format, Parser, canonical_label_value, validate};
use crate::model::MetricType;

/// Strict-OpenMetrics "bad" cases we accept, each with why.
const OM_ACCEPTED_BAD: &[(&str, &str)] = &[
    (
        "bad_counter_values_17",
        "summary _sum -1: client_golang exposes negative sums for negative observations (testdata alltypes.5mfs.om.txt)",
    ),
    (
        "bad_counter_values_19",
        "negative summary quantile value: same client_golang output (alltypes.5mfs.om.txt has one)",
    ),
    (
        "bad_histograms_3",
        "_sum next to negative buckets: client_golang exposes this (alltypes.5mfs.om.txt rpc_durations_histogram_seconds)",
    ),
    (
        "bad_histograms_2",
        "histogram _count without _sum: Prometheus' own OM test input has one (hhh_count)",
    ),
    (
        "bad_histograms_14",
        "gaugehistogram _gcount without _gsum: same rule as bad_histograms_2, kept consistent",
    ),
    (
        "bad_missing_or_invalid_labels_for_a_type_7",
        "stateset sample without the family-named label: Prometheus' OM test input has ss{A=\"a\"}",
    ),
    (
        "bad_exemplars_on_unallowed_samples_1",
        "a_sum under a gaugehistogram is a separate untyped family (as ggh_count in Prometheus' OM input), where exemplars are allowed",
    ),
    (
        "bad_grouping_or_ordering_3",
        "a family resumed after another family's samples: Prometheus' OM UTF-8 test input does this",
    ),
];

/// The shared conformance folder, when this checkout has it beside the repo.
fn shared(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance"
    ))
    .join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!("skipping: {} not found", dir.display());
    None
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn should_parse(json_path: &Path) -> bool {
    let text = fs::read_to_string(json_path).expect("read json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("parse json");
    v["shouldParse"].as_bool().expect("shouldParse is a bool")
}

fn outcome(body: &[u8], format: Format) -> String {
    match validate(body, format) {
        Ok(stats) => format!("accepted ({} samples)", stats.samples),
        Err(e) => format!("rejected: {e}"),
    }
}

#[test]
fn openmetrics_parser_suite() {
    let Some(root) = shared("exposition/openmetrics-parsers") else {
        return;
    };
    let mut failures = Vec::new();
    let mut allowed_seen = Vec::new();
    let cases = subdirs(&root);
    assert!(
        cases.len() > 200,
        "expected the full suite, found {}",
        cases.len()
    );
    for case in &cases {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .expect("case name");
        let want = should_parse(&case.join("test.json"));
        let body = fs::read(case.join("metrics")).expect("read metrics");
        let got = validate(&body, Format::OpenMetrics).is_ok();
        if got == want {
            continue;
        }
        if !want && OM_ACCEPTED_BAD.iter().any(|(n, _)| *n == name) {
            allowed_seen.push(name.to_owned());
            continue;
        }
        failures.push(format!(
            "{name}: want {}, {}",
            if want { "accept" } else { "reject" },
            outcome(&body, Format::OpenMetrics)
        ));
    }
    for (name, _) in OM_ACCEPTED_BAD {
        if !allowed_seen.iter().any(|s| s == name) {
            failures.push(format!(
                "{name}: listed in OM_ACCEPTED_BAD but no longer accepted (remove it)"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn prometheus_textparse_cases() {
    let Some(root) = shared("exposition/prometheus-textparse") else {
        return;
    };
    let mut failures = Vec::new();
    let mut count = 0;
    for (sub, format) in [
        ("promparse", Format::Prometheus),
        ("openmetricsparse", Format::OpenMetrics),
    ] {
        for group in subdirs(&root.join(sub)) {
            let mut cases = subdirs(&group);
            if cases.is_empty() {
                cases.push(group.clone());
            }
            for case in cases {
                let want = should_parse(&case.join("expected.json"));
                let body = fs::read(case.join("input.txt")).expect("read input");
                count += 1;
                if validate(&body, format).is_ok() != want {
                    let rel = case
                        .strip_prefix(&root)
                        .unwrap_or(&case)
                        .display()
                        .to_string();
                    failures.push(format!(
                        "{rel}: want {}, {}",
                        if want { "accept" } else { "reject" },
                        outcome(&body, format)
                    ));
                }
            }
        }
    }
    assert!(count > 100, "expected the full case set, found {count}");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Prometheus' good inputs give the same samples as its own parser: series
/// text, value, timestamp, label set (with Prometheus 3's `le`/`quantile`
/// canonicalisation applied via [`canonical_label_value`]) and exemplars.
/// Its OpenMetrics parser was run with `_created` series folded into start
/// timestamps, so those are skipped here.
#[test]
fn prometheus_good_inputs_match_expected_entries() {
    let Some(root) = shared("exposition/prometheus-textparse") else {
        return;
    };
    let cases = [
        ("promparse/TestPromParse", Format::Prometheus),
        ("promparse/TestUTF8PromParse", Format::Prometheus),
        ("openmetricsparse/TestOpenMetricsParse", Format::OpenMetrics),
        (
            "openmetricsparse/TestOpenMetricsParse_UTF8",
            Format::OpenMetrics,
        ),
    ];
    for (dir, format) in cases {
        let go =
            fs::read_to_string(root.join(dir).join("expected_entries.go.txt")).expect("read table");
        let want = read_samples(&go);
        let body = fs::read(root.join(dir).join("input.txt")).expect("read input");
        let mut parser = Parser::new(&body, format);
        let mut got: Vec<GoSample> = Vec::new();
        while let Some(entry) = parser.next_entry().unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let Entry::Sample(s) = entry else { continue };
            let start_time_series = format == Format::OpenMetrics
                && s.name.ends_with("_created")
                && matches!(
                    s.metric_type,
                    MetricType::Counter | MetricType::Histogram | MetricType::Summary
                );
            if start_time_series {
                continue;
            }
            let mut lset = vec![("__name__".to_owned(), s.name.to_string())];
            lset.extend(s.labels.iter().map(|l| {
                let value = canonical_label_value(s.metric_type, &l.name, &l.value);
                (l.name.to_string(), value.into_owned())
            }));
            lset.sort();
            let es = s
                .exemplar
                .iter()
                .map(|e| {
                    let mut labels: Vec<(String, String)> = e
                        .labels
                        .iter()
                        .map(|l| (l.name.to_string(), l.value.to_string()))
                        .collect();
                    labels.sort();
                    (labels, e.value, e.timestamp_ms)
                })
                .collect();
            got.push(GoSample {
                m: String::from_utf8_lossy(s.series_text).into_owned(),
                v: (!s.value.is_nan()).then_some(s.value),
                t: s.timestamp_ms,
                lset,
                es,
            });
        }
        assert!(want.len() > 5, "{dir}: table not read");
        assert_eq!(got.len(), want.len(), "{dir}: sample count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{dir}");
        }
    }
}

#[test]
fn prometheus_bulk_testdata_parses() {
    let Some(root) = shared("exposition/prometheus-textparse/testdata") else {
        return;
    };
    for file in [
        "alltypes.237mfs.prom.txt",
        "alltypes.237mfs.nometa.prom.txt",
        "alltypes.5mfs.om.txt",
        "1histogram.om.txt",
    ] {
        let format = if file.ends_with(".om.txt") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        };
        let body = fs::read(root.join(file)).expect("read testdata");
        let stats = validate(&body, format).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(stats.samples > 0, "{file}: no samples");
    }
}

/// Real control-plane payloads: every sample line parses, and the counts
/// match the MANIFEST (sample lines, TYPE lines).
#[test]
fn real_payloads_parse_with_manifest_counts() {
    let Some(root) = shared("payloads") else {
        return;
    };
    let cases = [
        ("etcd_k8s-1.35_etcd-3.6.prom", 1461, 130),
        ("kube-controller-manager_k8s-1.35.prom", 2852, 235),
        ("kubelet-cadvisor_k8s-1.16.prom", 3579, 53),
        ("cadvisor_golden_with-timestamps.prom", 287, 107),
    ];
    for (file, want_samples, want_types) in cases {
        let body = fs::read(root.join(file)).expect("read payload");
        let mut parser = Parser::new(&body, Format::Prometheus);
        let (mut samples, mut types, mut with_ts) = (0, 0, 0);
        while let Some(entry) = parser
            .next_entry()
            .unwrap_or_else(|e| panic!("{file}: {e}"))
        {
            match entry {
                Entry::Sample(s) => {
                    samples += 1;
                    with_ts += usize::from(s.timestamp_ms.is_some());
                }
                Entry::Type { .. } => types += 1,
                _ => {}
            }
        }
        assert_eq!((samples, types), (want_samples, want_types), "{file}");
        if file.starts_with("cadvisor_golden") {
            assert_eq!(with_ts, 276, "{file}: explicit timestamps");
        }
    }
}
