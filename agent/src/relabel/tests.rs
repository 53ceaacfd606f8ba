//! Data-driven tables: every action, every default and every validation error.

use super::*;

/// Expected outcome of one processing case.
enum Want {
    Kept(&'static [(&'static str, &'static str)]),
    Dropped,
}
use Want::{Dropped, Kept};

/// (name, rules as Prometheus YAML, input labels, expected outcome)
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Want,
);

fn rules(yaml: &str) -> Rules {
    let configs: Vec<RelabelConfig> = serde_yaml::from_str(yaml).unwrap();
    Rules::compile(&configs).unwrap()
}

#[rustfmt::skip]
const PROCESS: &[Case] = &[
    // --- replace and its defaults
    ("replace: all defaults copy the source value", "[{source_labels: [a], target_label: b}]",
        &[("a", "1")], Kept(&[("a", "1"), ("b", "1")])),
    ("replace: action defaults to replace, case-insensitive names", "[{source_labels: [a], target_label: b, action: RePlAcE}]",
        &[("a", "1")], Kept(&[("a", "1"), ("b", "1")])),
    ("replace: a missing source is \"\" and deletes the target", "[{source_labels: [missing], target_label: x}]",
        &[("x", "1"), ("y", "2")], Kept(&[("y", "2")])),
    ("replace: no source labels sets a constant", "[{target_label: env, replacement: prod}]",
        &[("a", "1")], Kept(&[("a", "1"), ("env", "prod")])),
    ("replace: separator defaults to ;", "[{source_labels: [a, b, c], target_label: d}]",
        &[("a", "1"), ("b", "2")], Kept(&[("a", "1"), ("b", "2"), ("d", "1;2;")])),
    ("replace: custom separator", "[{source_labels: [a, b], separator: '/', target_label: d}]",
        &[("a", "1"), ("b", "2")], Kept(&[("a", "1"), ("b", "2"), ("d", "1/2")])),
    ("replace: explicit empty separator", "[{source_labels: [a, b], separator: '', target_label: d}]",
        &[("a", "1"), ("b", "2")], Kept(&[("a", "1"), ("b", "2"), ("d", "12")])),
    ("replace: regex is anchored at both ends", "[{source_labels: [a], regex: o, target_label: b, replacement: x}]",
        &[("a", "foo")], Kept(&[("a", "foo")])),
    ("replace: .* un-anchors", "[{source_labels: [a], regex: '.*o.*', target_label: b, replacement: x}]",
        &[("a", "foo")], Kept(&[("a", "foo"), ("b", "x")])),
    ("replace: . matches newline", "[{source_labels: [a], regex: 'x.y', target_label: b, replacement: ok}]",
        &[("a", "x\ny")], Kept(&[("a", "x\ny"), ("b", "ok")])),
    ("replace: explicit empty regex matches only \"\" (hit)", "[{source_labels: [a], regex: '', target_label: b, replacement: empty}]",
        &[("c", "1")], Kept(&[("b", "empty"), ("c", "1")])),
    ("replace: explicit empty regex matches only \"\" (miss)", "[{source_labels: [a], regex: '', target_label: b, replacement: empty}]",
        &[("a", "1")], Kept(&[("a", "1")])),
    ("replace: default replacement is $1 of a custom regex", "[{source_labels: [a], regex: 'v(\\d+)\\..*', target_label: major}]",
        &[("a", "v12.3")], Kept(&[("a", "v12.3"), ("major", "12")])),
    ("replace: explicit empty replacement deletes the target", "[{source_labels: [a], target_label: b, replacement: ''}]",
        &[("a", "1"), ("b", "2")], Kept(&[("a", "1")])),
    ("replace: no match changes nothing", "[{source_labels: [a], regex: 'x(.*)', target_label: b}]",
        &[("a", "foo"), ("b", "keep")], Kept(&[("a", "foo"), ("b", "keep")])),
    ("replace: target and value expand groups and names", "[{source_labels: [a], regex: '(?P<k>[a-z]+)=(.*)', target_label: 'l_$k', replacement: '${2}_$1'}]",
        &[("a", "zone=eu")], Kept(&[("a", "zone=eu"), ("l_zone", "eu_zone")])),
    ("replace: $1x is the missing group named 1x", "[{source_labels: [a], regex: '(.*)', target_label: b, replacement: '$1x|${1}x'}]",
        &[("a", "v")], Kept(&[("a", "v"), ("b", "|vx")])),
    ("replace: $$ is a literal dollar", "[{source_labels: [a], target_label: b, replacement: '$$1'}]",
        &[("a", "v")], Kept(&[("a", "v"), ("b", "$1")])),
    ("replace: an expanded target that is not a label name is skipped", "[{source_labels: [a], regex: '(.*)', target_label: '${1}', replacement: x}]",
        &[("a", "0abc")], Kept(&[("a", "0abc")])),
    ("replace: an empty expanded value deletes the expanded target", "[{source_labels: [a], regex: '(.)(.*)', target_label: '$1', replacement: '$2'}]",
        &[("a", "f"), ("f", "gone")], Kept(&[("a", "f")])),
    ("replace: later rules see earlier results", "[{source_labels: [a], target_label: b}, {source_labels: [b], target_label: c, replacement: 'got_$1'}]",
        &[("a", "1")], Kept(&[("a", "1"), ("b", "1"), ("c", "got_1")])),
    // --- keep / drop
    ("keep: default regex keeps everything", "[{action: keep, source_labels: [missing]}]",
        &[("a", "1")], Kept(&[("a", "1")])),
    ("keep: match keeps", "[{action: keep, source_labels: [a], regex: '1|2'}]",
        &[("a", "2")], Kept(&[("a", "2")])),
    ("keep: no match drops", "[{action: keep, source_labels: [a], regex: '1|2'}]",
        &[("a", "12")], Dropped),
    ("keep: \\w is ASCII-only as in Go", "[{action: keep, source_labels: [a], regex: '\\w+'}]",
        &[("a", "héllo")], Dropped),
    ("drop: default regex drops everything", "[{action: drop}]",
        &[("a", "1")], Dropped),
    ("drop: match drops", "[{action: drop, source_labels: [__name__], regex: 'go_.*'}]",
        &[("__name__", "go_goroutines")], Dropped),
    ("drop: no match keeps", "[{action: drop, source_labels: [__name__], regex: 'go_.*'}]",
        &[("__name__", "up")], Kept(&[("__name__", "up")])),
    ("drop: first drop stops processing", "[{action: drop, source_labels: [a]}, {target_label: b, replacement: x}]",
        &[("a", "1")], Dropped),
    // --- keepequal / dropequal
    ("keepequal: equal keeps", "[{action: keepequal, source_labels: [a, b], target_label: c}]",
        &[("a", "1"), ("b", "2"), ("c", "1;2")], Kept(&[("a", "1"), ("b", "2"), ("c", "1;2")])),
    ("keepequal: unequal drops", "[{action: keepequal, source_labels: [a], target_label: c}]",
        &[("a", "1"), ("c", "2")], Dropped),
    ("keepequal: missing labels are \"\" and equal", "[{action: keepequal, source_labels: [x], target_label: y}]",
        &[("a", "1")], Kept(&[("a", "1")])),
    ("dropequal: equal drops", "[{action: DropEqual, source_labels: [a], target_label: c}]",
        &[("a", "1"), ("c", "1")], Dropped),
    ("dropequal: unequal keeps", "[{action: dropequal, source_labels: [a], target_label: c}]",
        &[("a", "1"), ("c", "2")], Kept(&[("a", "1"), ("c", "2")])),
    // --- hashmod (expected values from Python hashlib)
    ("hashmod: md5 of the joined value", "[{action: hashmod, source_labels: [a, b], modulus: 7, target_label: h}]",
        &[("a", "a"), ("b", "b")], Kept(&[("a", "a"), ("b", "b"), ("h", "2")])),
    ("hashmod: missing source hashes \"\"", "[{action: hashmod, source_labels: [x], modulus: 10, target_label: h}]",
        &[], Kept(&[("h", "8")])),
    ("hashmod: modulus 1 is always 0", "[{action: hashmod, source_labels: [a], modulus: 1, target_label: h}]",
        &[("a", "x")], Kept(&[("a", "x"), ("h", "0")])),
    ("hashmod: sharding recipe keeps this shard", "[{action: hashmod, source_labels: [__address__], modulus: 4, target_label: __tmp_hash}, {action: keep, source_labels: [__tmp_hash], regex: '3'}]",
        &[("__address__", "10.0.0.3:9100")], Kept(&[("__address__", "10.0.0.3:9100"), ("__tmp_hash", "3")])),
    ("hashmod: sharding recipe drops other shards", "[{action: hashmod, source_labels: [__address__], modulus: 4, target_label: __tmp_hash}, {action: keep, source_labels: [__tmp_hash], regex: '3'}]",
        &[("__address__", "10.0.0.4:9100")], Dropped),
    // --- labelmap
    ("labelmap: default replacement $1, originals kept", "[{action: labelmap, regex: '__meta_kubernetes_pod_label_(.+)'}]",
        &[("__meta_kubernetes_pod_label_app", "web"), ("a", "1")],
        Kept(&[("__meta_kubernetes_pod_label_app", "web"), ("a", "1"), ("app", "web")])),
    ("labelmap: default regex copies every label onto itself", "[{action: labelmap}]",
        &[("a", "1")], Kept(&[("a", "1")])),
    ("labelmap: created names are not mapped again", "[{action: labelmap, regex: '(.*)', replacement: 'x_$1'}]",
        &[("a", "1")], Kept(&[("a", "1"), ("x_a", "1")])),
    ("labelmap: an expanded name that is not a label name is skipped", "[{action: labelmap, regex: 'l_(.*)', replacement: '$1'}]",
        &[("l_0", "1"), ("l_ok", "2")], Kept(&[("l_0", "1"), ("l_ok", "2"), ("ok", "2")])),
    ("labelmap: overwrites an existing label", "[{action: labelmap, regex: 'new_(.*)'}]",
        &[("new_a", "2"), ("a", "1")], Kept(&[("a", "2"), ("new_a", "2")])),
    // --- labeldrop / labelkeep
    ("labeldrop: drops matching names", "[{action: labeldrop, regex: '__meta_.*|tmp'}]",
        &[("__meta_x", "1"), ("tmp", "2"), ("tmpx", "3")], Kept(&[("tmpx", "3")])),
    ("labeldrop: default regex drops every label", "[{action: labeldrop}]",
        &[("a", "1"), ("b", "2")], Kept(&[])),
    ("labelkeep: keeps only matching names", "[{action: labelkeep, regex: '__name__|job'}]",
        &[("__name__", "up"), ("job", "j"), ("pod", "p")], Kept(&[("__name__", "up"), ("job", "j")])),
    ("labelkeep: default regex keeps every label", "[{action: labelkeep}]",
        &[("a", "1")], Kept(&[("a", "1")])),
    // --- lowercase / uppercase
    ("lowercase: joined value, default separator", "[{action: lowercase, source_labels: [a, b], target_label: l}]",
        &[("a", "AbC"), ("b", "É")], Kept(&[("a", "AbC"), ("b", "É"), ("l", "abc;é")])),
    ("lowercase: empty input deletes the target", "[{action: lowercase, source_labels: [x], target_label: l}]",
        &[("l", "old")], Kept(&[])),
    ("uppercase: joined value", "[{action: uppercase, source_labels: [a], target_label: u}]",
        &[("a", "straße")], Kept(&[("a", "straße"), ("u", "STRAßE")])),
];

#[test]
fn every_action_and_default() {
    for (name, yaml, input, want) in PROCESS {
        let rules = rules(yaml);
        let mut labels = Labels::from_pairs(input.iter().copied());
        let kept = rules.process(&mut labels);
        match want {
            Dropped => assert!(!kept, "{name}: expected a drop, got {labels}"),
            Kept(expected) => {
                assert!(kept, "{name}: unexpected drop");
                assert_eq!(
                    labels,
                    Labels::from_pairs(expected.iter().copied()),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn every_action_is_covered() {
    for action in Action::ALL {
        let covered = PROCESS
            .iter()
            .any(|(_, yaml, ..)| rules(yaml).actions().any(|a| a == action));
        assert!(covered, "no processing case for {action}");
        assert_eq!(Action::parse(&action.as_str().to_uppercase()), Some(action));
    }
}

/// (rules as YAML, error kind, field, full message or "" to skip the text check)
#[rustfmt::skip]
const INVALID: &[(&str, &str, &str, &str)] = &[
    ("[{action: foo}]", "unknown_action", "action",
        "relabel rule 0: action \"foo\" is unknown; expected one of replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase"),
    ("[{action: ''}]", "unknown_action", "action", ""),
    ("[{action: ~}]", "unknown_action", "action", ""),
    ("[{source_labels: [a], regex: '(', target_label: b}]", "invalid_regex", "regex",
        "relabel rule 0: regex \"(\" is invalid: unclosed group"),
    ("[{source_labels: [a]}]", "missing_field", "target_label",
        "relabel rule 0: target_label is required for action \"replace\""),
    ("[{source_labels: [a], target_label: ''}]", "missing_field", "target_label", ""),
    ("[{action: hashmod, source_labels: [a], modulus: 2}]", "missing_field", "target_label", ""),
    ("[{action: lowercase, source_labels: [a]}]", "missing_field", "target_label",
        "relabel rule 0: target_label is required for action \"lowercase\""),
    ("[{action: uppercase, source_labels: [a]}]", "missing_field", "target_label", ""),
    ("[{action: keepequal, source_labels: [a]}]", "missing_field", "target_label", ""),
    ("[{action: dropequal, source_labels: [a]}]", "missing_field", "target_label", ""),
    ("[{action: hashmod, source_labels: [a], target_label: h}]", "zero_modulus", "modulus",
        "relabel rule 0: modulus must be greater than 0 for action \"hashmod\""),
    ("[{action: hashmod, source_labels: [a], target_label: h, modulus: 0}]", "zero_modulus", "modulus", ""),
    ("[{source_labels: [a], target_label: a-b}]", "invalid_name", "target_label",
        "relabel rule 0: target_label \"a-b\" is invalid for action \"replace\"; expected a label name matching [a-zA-Z_][a-zA-Z0-9_]*"),
    ("[{source_labels: [a], target_label: '0${1}'}]", "invalid_name", "target_label",
        "relabel rule 0: target_label \"0${1}\" is invalid for action \"replace\"; expected letters, digits, '_' and $1/${1}/$name/${name} references, not starting with a digit"),
    ("[{source_labels: [a], target_label: 'utf-8.label${1}'}]", "invalid_name", "target_label", ""),
    ("[{action: lowercase, target_label: '${3}'}]", "invalid_name", "target_label", ""),
    ("[{action: uppercase, target_label: '1a'}]", "invalid_name", "target_label", ""),
    ("[{action: keepequal, source_labels: [a], target_label: 'a.b'}]", "invalid_name", "target_label", ""),
    ("[{action: hashmod, source_labels: [a], target_label: '$1', modulus: 2}]", "invalid_name", "target_label", ""),
    ("[{action: labelmap, regex: '(.*)', replacement: 'a-$1'}]", "invalid_name", "replacement",
        "relabel rule 0: replacement \"a-$1\" is invalid for action \"labelmap\"; expected letters, digits, '_' and $1/${1}/$name/${name} references, not starting with a digit"),
    ("[{action: labelmap, replacement: ''}]", "invalid_name", "replacement", ""),
    ("[{action: lowercase, source_labels: [a], target_label: b, replacement: x}]", "field_not_allowed", "replacement",
        "relabel rule 0: replacement cannot be set for action \"lowercase\"; it writes the joined source values"),
    ("[{action: uppercase, source_labels: [a], target_label: b, replacement: ''}]", "field_not_allowed", "replacement", ""),
    ("[{action: keepequal, source_labels: [a], target_label: b, regex: '(.*)'}]", "field_not_allowed", "regex",
        "relabel rule 0: regex cannot be set for action \"keepequal\"; only source_labels and target_label may be set"),
    ("[{action: dropequal, source_labels: [a], target_label: b, separator: ','}]", "field_not_allowed", "separator", ""),
    ("[{action: dropequal, source_labels: [a], target_label: b, modulus: 3}]", "field_not_allowed", "modulus", ""),
    ("[{action: keepequal, source_labels: [a], target_label: b, replacement: x}]", "field_not_allowed", "replacement", ""),
    ("[{action: labeldrop, source_labels: [a]}]", "field_not_allowed", "source_labels",
        "relabel rule 0: source_labels cannot be set for action \"labeldrop\"; only regex may be set"),
    ("[{action: labelkeep, target_label: a}]", "field_not_allowed", "target_label", ""),
    ("[{action: labeldrop, modulus: 2}]", "field_not_allowed", "modulus", ""),
    ("[{action: labelkeep, separator: ','}]", "field_not_allowed", "separator", ""),
    ("[{action: labeldrop, replacement: x}]", "field_not_allowed", "replacement", ""),
    ("[{source_labels: [a, utf-8.label], target_label: b}]", "invalid_source_label", "source_labels",
        "relabel rule 0: source_labels[1] \"utf-8.label\" is invalid; expected a label name matching [a-zA-Z_][a-zA-Z0-9_]*"),
    ("[{action: drop}, {action: keep}, {source_labels: [a]}]", "missing_field", "target_label",
        "relabel rule 2: target_label is required for action \"replace\""),
];

#[test]
fn every_validation_error() {
    for (yaml, kind, field, message) in INVALID {
        let configs: Vec<RelabelConfig> = serde_yaml::from_str(yaml).unwrap();
        let err = Rules::compile(&configs).expect_err(yaml);
        assert_eq!(err.kind(), *kind, "{yaml}: {err}");
        assert_eq!(err.field(), *field, "{yaml}: {err}");
        assert_eq!(err.index(), configs.len() - 1, "{yaml}");
        if !message.is_empty() {
            assert_eq!(err.to_string(), *message, "{yaml}");
        }
    }
}

/// Valid edge cases Prometheus accepts (TestRelabelValidate 6 and 9–10, explicit defaults).
#[test]
fn valid_edge_cases_compile() {
    for yaml in [
        "[{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}]",
        "[{action: labelmap, regex: '__meta_kubernetes_pod_label_(strimzi_io_.+)', replacement: '$1'}]",
        "[{action: labelmap, regex: '__meta_(.+)', replacement: '${1}'}]",
        "[{action: keepequal, source_labels: [a], target_label: b, separator: ';', replacement: '$1', modulus: 0}]",
        "[{action: labeldrop, regex: a, separator: ';', replacement: '$1', target_label: '', source_labels: []}]",
        "[{action: KEEP, regex: ''}]",
        "[{target_label: __tmp_x}]",
    ] {
        let configs: Vec<RelabelConfig> = serde_yaml::from_str(yaml).unwrap();
        if let Err(err) = Rules::compile(&configs) {
            panic!("{yaml}: {err}");
        }
    }
}

#[test]
fn regex_error_keeps_its_source() {
    let configs = [RelabelConfig {
        regex: Some("a{2,1}".into()),
        ..Default::default()
    }];
    let err = Rules::compile(&configs).unwrap_err();
    assert!(std::error::Error::source(&err).is_some());
    assert!(
        err.to_string()
            .starts_with("relabel rule 0: regex \"a{2,1}\" is invalid: "),
        "{err}"
    );
}

#[test]
fn empty_rules_change_nothing() {
    let rules = Rules::default();
    assert!(rules.is_empty());
    assert_eq!(rules.len(), 0);
    let mut labels = Labels::from_pairs([("a", "1")]);
    assert!(rules.process(&mut labels));
    assert_eq!(labels, Labels::from_pairs([("a", "1")]));
    assert_eq!(Rules::compile(&[]).unwrap().len(), 0);
}

#[test]
fn observer_sees_each_step_until_the_drop() {
    let rules = rules(
        "[{target_label: a, replacement: x}, {action: drop, source_labels: [a], regex: x}, {action: labeldrop}]",
    );
    assert_eq!(rules.len(), 3);
    let mut steps = Vec::new();
    let mut labels = Labels::new();
    let kept = rules.process_observed(&mut labels, |s| {
        steps.push((s.index, s.action, s.labels.to_string(), s.kept));
    });
    assert!(!kept);
    assert_eq!(
        steps,
        [
            (0, Action::Replace, "{a=\"x\"}".to_owned(), true),
            (1, Action::Drop, "{a=\"x\"}".to_owned(), false),
        ]
    );
}

#[test]
fn nested_processing_from_an_observer_works() {
    let outer = rules("[{target_label: a, replacement: x}, {source_labels: [a], target_label: b}]");
    let inner = rules("[{source_labels: [c], target_label: d}]");
    let mut labels = Labels::new();
    assert!(outer.process_observed(&mut labels, |_| {
        let mut other = Labels::from_pairs([("c", "1")]);
        assert!(inner.process(&mut other));
        assert_eq!(other.get("d"), Some("1"));
    }));
    assert_eq!(labels, Labels::from_pairs([("a", "x"), ("b", "x")]));
}

#[test]
fn rules_are_reusable_and_cloneable() {
    let rules =
        rules("[{source_labels: [a], regex: '(.+)-(.+)', target_label: '$1', replacement: '$2'}]");
    let copy = rules.clone();
    for (value, name, expected) in [("k-v", "k", "v"), ("x-y", "x", "y")] {
        let mut labels = Labels::from_pairs([("a", value)]);
        assert!(copy.process(&mut labels));
        assert_eq!(labels.get(name), Some(expected));
    }
}
