//! Table-driven tests of the OpenMetrics grammar and rules.

use super::tests::{check, render};
use super::{Format, validate};

const OM: Format = Format::OpenMetrics;

#[test]
fn openmetrics_accepts() {
    check(&[
        (OM, "# EOF", &[]),
        (OM, "# EOF\n", &[]),
        (OM, "a 1\n# EOF\n", &["a{} 1 (unknown)"]),
        (
            OM,
            "# TYPE a counter\n# UNIT a \n# HELP a h\\\"i\na_total 1 1.5 # {t=\"x\"} 2 3.25\na_created 7\n# EOF\n",
            &[
                "TYPE a counter",
                "UNIT a \"\"",
                "HELP a \"h\\\"i\"",
                "a_total{} 1 @1500 # {t=\"x\"} 2 @3250 (counter)",
                "a_created{} 7 (counter)",
            ],
        ),
        (
            OM,
            "# TYPE s stateset\ns{s=\"a\"} 1\ns{s=\"b\"} 0\n# TYPE i info\ni_info{v=\"1\"} 1\n# EOF\n",
            &[
                "TYPE s stateset",
                "s{s=\"a\"} 1 (stateset)",
                "s{s=\"b\"} 0 (stateset)",
                "TYPE i info",
                "i_info{v=\"1\"} 1 (info)",
            ],
        ),
        (
            OM,
            "# TYPE g gaugehistogram\ng_bucket{le=\"-1\"} 1\ng_bucket{le=\"+Inf\"} 2\ng_gcount 2\ng_gsum -3\n# EOF\n",
            &[
                "TYPE g gaugehistogram",
                "g_bucket{le=\"-1\"} 1 (gaugehistogram)",
                "g_bucket{le=\"+Inf\"} 2 (gaugehistogram)",
                "g_gcount{} 2 (gaugehistogram)",
                "g_gsum{} -3 (gaugehistogram)",
            ],
        ),
        (
            OM,
            "# TYPE q summary\nq{quantile=\"0.5\"} NaN\nq_sum 1\nq_count 2\n# EOF\n",
            &[
                "TYPE q summary",
                "q{quantile=\"0.5\"} NaN (summary)",
                "q_sum{} 1 (summary)",
                "q_count{} 2 (summary)",
            ],
        ),
        (
            OM,
            "a 1 1\na 2 1\n# EOF\n",
            &["a{} 1 @1000 (unknown)", "a{} 2 @1000 (unknown)"],
        ),
        (
            OM,
            "{\"a.b\",c=\"d\"} 1\n# EOF\n",
            &["a.b{c=\"d\"} 1 (unknown)"],
        ),
    ]);
}

/// Each OpenMetrics rule, broken once: (rule, input, expected error).
const OM_REJECTS: &[(&str, &str, &str)] = &[
    ("no EOF", "a 1\n", "ERR missing_eof 2:1"),
    ("data after EOF", "# EOF\na 1\n", "ERR text_after_eof 2:1"),
    ("EOF with suffix", "# EOFx\n", "ERR text_after_eof 1:6"),
    ("blank line", "a 1\n\n# EOF\n", "ERR blank_line 2:1"),
    (
        "free comment",
        "# hello\n# EOF\n",
        "ERR invalid_comment 1:1",
    ),
    ("tab separator", "a\t1\n# EOF\n", "ERR syntax 1:2"),
    ("two spaces", "a  1\n# EOF\n", "ERR syntax 1:3"),
    ("trailing space", "a 1 \n# EOF\n", "ERR syntax 1:5"),
    (
        "blank in braces",
        "a{b=\"c\", d=\"e\"} 1\n# EOF\n",
        "ERR syntax 1:9",
    ),
    (
        "missing comma",
        "a{b=\"c\"d=\"e\"} 1\n# EOF\n",
        "ERR syntax 1:8",
    ),
    ("trailing comma", "a{b=\"c\",} 1\n# EOF\n", "ERR syntax 1:9"),
    (
        "NaN timestamp",
        "a 1 NaN\n# EOF\n",
        "ERR invalid_timestamp 1:5",
    ),
    (
        "untyped",
        "# TYPE a untyped\n# EOF\n",
        "ERR invalid_type 1:10",
    ),
    ("HELP without text", "# HELP a\n# EOF\n", "ERR syntax 1:9"),
    (
        "repeated HELP",
        "# HELP a x\n# HELP a y\n# EOF\n",
        "ERR misplaced_metadata 2:8",
    ),
    (
        "TYPE after samples",
        "a 1\n# TYPE a gauge\n# EOF\n",
        "ERR misplaced_metadata 2:8",
    ),
    (
        "family reopened by metadata",
        "# HELP a x\n# HELP b y\n# TYPE a gauge\n# EOF\n",
        "ERR misplaced_metadata 3:8",
    ),
    (
        "clash with sample name",
        "# TYPE a_total gauge\n# TYPE a counter\n# EOF\n",
        "ERR clashing_family 2:8",
    ),
    (
        "clash as sample name",
        "# TYPE a histogram\n# TYPE a_count gauge\n# EOF\n",
        "ERR clashing_family 2:8",
    ),
    (
        "unit not a suffix",
        "# UNIT a_meters seconds\n# EOF\n",
        "ERR invalid_unit 1:8",
    ),
    (
        "unit on info",
        "# TYPE a_u info\n# UNIT a_u u\n# EOF\n",
        "ERR invalid_unit 2:8",
    ),
    (
        "negative counter",
        "# TYPE a counter\na_total -1\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "bucket without le",
        "# TYPE a histogram\na_bucket 0\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "bad le",
        "# TYPE a histogram\na_bucket{le=\"+INF\"} 0\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "no +Inf bucket",
        "# TYPE a histogram\na_bucket{le=\"1\"} 0\n# EOF\n",
        "ERR type_rule 3:1",
    ),
    (
        "le order",
        "# TYPE a histogram\na_bucket{le=\"2\"} 0\na_bucket{le=\"1\"} 0\n# EOF\n",
        "ERR type_rule 3:1",
    ),
    (
        "bucket decreases",
        "# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\n# EOF\n",
        "ERR type_rule 3:1",
    ),
    (
        "count mismatch",
        "# TYPE a histogram\na_bucket{le=\"+Inf\"} 1\na_count 2\na_sum 1\n# EOF\n",
        "ERR type_rule 5:1",
    ),
    (
        "sum without count",
        "# TYPE a histogram\na_bucket{le=\"+Inf\"} 1\na_sum 1\n# EOF\n",
        "ERR type_rule 4:1",
    ),
    (
        "negative gsum",
        "# TYPE a gaugehistogram\na_bucket{le=\"+Inf\"} 1\na_gcount 1\na_gsum -1\n# EOF\n",
        "ERR type_rule 5:1",
    ),
    (
        "NaN sum",
        "# TYPE a summary\na_sum NaN\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "quantile missing",
        "# TYPE a summary\na 1\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "quantile range",
        "# TYPE a summary\na{quantile=\"1.5\"} 1\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "stateset value",
        "# TYPE a stateset\na{a=\"x\"} 2\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "info value",
        "# TYPE a info\na_info 0\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "exemplar on gauge",
        "# TYPE a gauge\na 1 # {x=\"y\"} 1\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "exemplar on _created",
        "# TYPE a counter\na_created 1 # {x=\"y\"} 1\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    (
        "group split",
        "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 1\na{x=\"1\"} 1\n# EOF\n",
        "ERR type_rule 4:1",
    ),
    (
        "timestamp backwards",
        "a 1 2\na 1 1\n# EOF\n",
        "ERR type_rule 2:1",
    ),
    ("timestamp mix", "a 1\na 1 1\n# EOF\n", "ERR type_rule 2:1"),
    (
        "exemplar name-only label",
        "a_total 1 # {\"x\"} 1\n# EOF\n",
        "ERR syntax 1:17",
    ),
    (
        "exemplar without value",
        "a_total 1 # {x=\"y\"}\n# EOF\n",
        "ERR syntax 1:20",
    ),
];

#[test]
fn openmetrics_rejects_each_rule() {
    for (rule, body, want) in OM_REJECTS {
        let got = render(body.as_bytes(), OM);
        assert_eq!(
            got.last().map(String::as_str),
            Some(*want),
            "{rule}: {body:?} gave {got:?}"
        );
    }
}

#[test]
fn exemplar_length_limit_counts_characters() {
    let at_limit = format!("a_total 1 # {{a=\"{}\"}} 1\n# EOF\n", "é".repeat(127));
    assert!(validate(at_limit.as_bytes(), OM).is_ok());
    let over = format!("a_total 1 # {{a=\"{}\"}} 1\n# EOF\n", "é".repeat(128));
    assert_eq!(
        validate(over.as_bytes(), OM).map_err(|e| e.kind()),
        Err("type_rule")
    );
}
