//! OpenMetrics rules that one sample can be checked against on its own
//! (no state across samples), as a table: which samples a rule applies to,
//! the check, and the message when it fails.
//!
//! Rules Prometheus does not enforce and real exporters break are left out
//! on purpose (e.g. negative histogram/summary sums, which client_golang
//! emits for negative observations); see the conformance test's allowlist.

use super::LabelRef;
use super::family::Role;
use super::number::parse_float;
use crate::model::MetricType;

/// What a rule sees of a sample.
pub(super) struct SampleView<'s, 'a> {
    pub metric_type: MetricType,
    pub role: Role,
    pub labels: &'s [LabelRef<'a>],
    pub value: f64,
    pub exemplar: Option<&'s [LabelRef<'a>]>,
}

impl SampleView<'_, '_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| &*l.value)
    }
}

/// OpenMetrics caps exemplar label sets (names and values) at 128 characters.
const EXEMPLAR_MAX_CHARS: usize = 128;

struct Rule {
    applies: fn(MetricType, Role) -> bool,
    holds: fn(&SampleView<'_, '_>) -> bool,
    message: &'static str,
}

fn non_negative(v: f64) -> bool {
    v >= 0.0
}

fn is_histogram(t: MetricType) -> bool {
    matches!(t, MetricType::Histogram | MetricType::GaugeHistogram)
}

fn valid_le(le: &str) -> bool {
    parse_float(le.as_bytes()).is_some_and(|v| v.is_finite() || le == "+Inf")
}

fn valid_quantile(q: &str) -> bool {
    parse_float(q.as_bytes()).is_some_and(|v| (0.0..=1.0).contains(&v))
}

const RULES: &[Rule] = &[
    Rule {
        applies: |t, r| t == MetricType::Counter && r == Role::Total,
        holds: |s| non_negative(s.value),
        message: "counter value must be a non-negative number",
    },
    Rule {
        applies: |t, r| is_histogram(t) && r == Role::Bucket,
        holds: |s| s.label("le").is_some(),
        message: "histogram bucket needs an \"le\" label",
    },
    Rule {
        applies: |t, r| is_histogram(t) && r == Role::Bucket,
        holds: |s| s.label("le").is_none_or(valid_le),
        message: "\"le\" must be a number or \"+Inf\"",
    },
    Rule {
        applies: |t, r| {
            (is_histogram(t) && matches!(r, Role::Bucket | Role::Count | Role::GCount))
                || (t == MetricType::Summary && r == Role::Count)
        },
        holds: |s| non_negative(s.value),
        message: "bucket and count values must be non-negative numbers",
    },
    Rule {
        applies: |_, r| matches!(r, Role::Sum | Role::GSum),
        holds: |s| !s.value.is_nan(),
        message: "sum must not be NaN",
    },
    Rule {
        applies: |t, r| t == MetricType::Summary && r == Role::Bare,
        holds: |s| s.label("quantile").is_some(),
        message: "summary sample needs a \"quantile\" label",
    },
    Rule {
        applies: |t, r| t == MetricType::Summary && r == Role::Bare,
        holds: |s| s.label("quantile").is_none_or(valid_quantile),
        message: "\"quantile\" must be a number between 0 and 1",
    },
    Rule {
        applies: |t, _| t == MetricType::StateSet,
        holds: |s| s.value == 0.0 || s.value == 1.0,
        message: "stateset value must be 0 or 1",
    },
    Rule {
        applies: |t, _| t == MetricType::Info,
        holds: |s| s.value == 1.0,
        message: "info value must be 1",
    },
    Rule {
        applies: |t, _| {
            matches!(
                t,
                MetricType::Gauge | MetricType::Info | MetricType::StateSet
            )
        },
        holds: |s| s.exemplar.is_none(),
        message: "exemplars are not allowed on gauge, info or stateset samples",
    },
    Rule {
        applies: |_, r| r == Role::Created,
        holds: |s| s.exemplar.is_none(),
        message: "exemplars are not allowed on _created samples",
    },
    Rule {
        applies: |_, _| true,
        holds: |s| {
            s.exemplar
                .is_none_or(|e| exemplar_chars(e) <= EXEMPLAR_MAX_CHARS)
        },
        message: "exemplar labels exceed 128 characters",
    },
];

fn exemplar_chars(labels: &[LabelRef<'_>]) -> usize {
    labels
        .iter()
        .map(|l| l.name.chars().count() + l.value.chars().count())
        .sum()
}

/// The first OpenMetrics per-sample rule `sample` breaks, if any.
pub(super) fn check(sample: &SampleView<'_, '_>) -> Result<(), &'static str> {
    for rule in RULES {
        if (rule.applies)(sample.metric_type, sample.role) && !(rule.holds)(sample) {
            return Err(rule.message);
        }
    }
    Ok(())
}
