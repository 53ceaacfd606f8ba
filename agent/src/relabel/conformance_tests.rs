//! Runs every case of Prometheus' `TestRelabel` table (from the shared
//! conformance folder, never copied into the repo) through our engine.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::*;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/relabel_cases.json"
);

/// One `TestRelabel` case as stored in `relabel_cases.json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    line: u32,
    input: BTreeMap<String, String>,
    relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    output: Option<BTreeMap<String, String>>,
    #[serde(default)]
    drop: bool,
    #[serde(default)]
    #[expect(dead_code, reason = "present in the file; only for humans")]
    comments: Vec<String>,
}

/// Cases (1-based, as numbered in relabel_cases.md) that Prometheus runs with
/// UTF-8 label-name validation. We validate legacy names (`[a-zA-Z_][a-zA-Z0-9_]*`)
/// like Prometheus 2.42 and remote write 1.0, so these configs are rejected at
/// compile time with the given error kind, exactly as legacy Prometheus rejects
/// them while loading its config. The test checks that they fail that way.
const EXCEPTIONS: &[(usize, &str, &str)] = &[
    (
        29,
        "invalid_source_label",
        "source label \"utf-8.label\" is not a legacy label name; Prometheus with legacy validation \
         rejects it while decoding source_labels",
    ),
    (
        30,
        "invalid_name",
        "target_label \"utf-8.label\" is not a legacy label name; legacy Config.Validate rejects it",
    ),
    (
        31,
        "invalid_name",
        "target_label \"utf-8.label${1}\" does not match the legacy $-template pattern; legacy \
         Config.Validate rejects it",
    ),
];

#[test]
fn prometheus_relabel_cases() {
    if !Path::new(CASES).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but the conformance cases are missing: {CASES}"
        );
        eprintln!("skipping relabel conformance: {CASES} not found");
        return;
    }
    let text = std::fs::read_to_string(CASES).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert_eq!(
        cases.len(),
        34,
        "relabel_cases.json should hold all 34 TestRelabel cases"
    );

    let mut failures = Vec::new();
    for (number, case) in (1..).zip(&cases) {
        let exception = EXCEPTIONS.iter().find(|(n, ..)| *n == number);
        let compiled = Rules::compile(&case.relabel_configs);
        if let Some((_, kind, reason)) = exception {
            match compiled {
                Err(err) if err.kind() == *kind => {}
                Err(err) => failures.push(format!(
                    "case {number}: listed exception ({reason}) failed differently: {err}"
                )),
                Ok(_) => failures.push(format!(
                    "case {number}: listed as an exception ({reason}) but now compiles; remove it"
                )),
            }
            continue;
        }
        let rules = match compiled {
            Ok(rules) => rules,
            Err(err) => {
                failures.push(format!(
                    "case {number} (L{}): does not compile: {err}",
                    case.line
                ));
                continue;
            }
        };
        let mut labels = Labels::from_pairs(&case.input);
        let kept = rules.process(&mut labels);
        let outcome = match (&case.output, case.drop) {
            (_, true) if kept => Some(format!("expected a drop, got {labels}")),
            (_, true) => None,
            (Some(_), false) if !kept => Some("unexpected drop".to_owned()),
            (Some(want), false) => {
                let want = Labels::from_pairs(want);
                (labels != want).then(|| format!("got {labels}, want {want}"))
            }
            (None, false) => Some("case has neither output nor drop".to_owned()),
        };
        if let Some(why) = outcome {
            failures.push(format!("case {number} (L{}): {why}", case.line));
        }
    }
    assert!(
        failures.is_empty(),
        "relabel conformance mismatches:\n{}",
        failures.join("\n")
    );
}
