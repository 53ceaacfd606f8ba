//! Prometheus 3 label-value normalisation for classic histograms and summaries.
//!
//! Prometheus 3 rewrites the `le` label of histogram buckets and the
//! `quantile` label of summaries to one canonical float text, so that
//! `le="1"` and `le="1.0"` are the same series. The parser returns values as
//! written (so series text stays a zero-copy cache key); callers apply this
//! once per new series.

use std::borrow::Cow;

use super::number::parse_float;
use crate::model::MetricType;

/// The value Prometheus 3 stores for label `name` = `value` in a family of
/// type `metric_type`: canonical float text for a histogram's `le` and a
/// summary's `quantile` (when they parse as floats), else `value` unchanged.
pub fn canonical_label_value<'v>(
    metric_type: MetricType,
    name: &str,
    value: &'v str,
) -> Cow<'v, str> {
    let applies = (metric_type == MetricType::Histogram && name == "le")
        || (metric_type == MetricType::Summary && name == "quantile");
    if !applies {
        return Cow::Borrowed(value);
    }
    let Some(f) = parse_float(value.as_bytes()) else {
        return Cow::Borrowed(value);
    };
    let canonical = format_openmetrics_float(f);
    if canonical == value {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(canonical)
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` plus ".0" when the result has
/// neither a '.' nor an exponent (Prometheus' `formatOpenMetricsFloat`).
fn format_openmetrics_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let mut out = format_go_g(f);
    if !out.contains(['e', '.']) {
        out.push_str(".0");
    }
    out
}

/// Go's shortest `%g`: scientific when the decimal exponent is < -4 or >= 6
/// (`1e+06`, `1.5e-05`: sign and at least two exponent digits), else plain.
fn format_go_g(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-5".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        out.push_str(&abs.to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        // 0 <= exp < 6: the point goes after exp + 1 digits.
        let int_len = usize::try_from(exp).unwrap_or(0) + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_prometheus() {
        // (written, canonical) for a histogram `le`; Go outputs checked by hand.
        let cases = [
            ("1", "1.0"),
            ("1.0", "1.0"),
            ("0", "0.0"),
            ("0.0", "0.0"),
            ("-1", "-1.0"),
            ("+Inf", "+Inf"),
            ("-Inf", "-Inf"),
            ("NaN", "NaN"),
            ("0.25", "0.25"),
            ("0.005", "0.005"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("1e-04", "0.0001"),
            ("1.1e-4", "0.00011"),
            ("10", "10.0"),
            ("2.5", "2.5"),
            ("100000", "100000.0"),
            ("1e+05", "100000.0"),
            ("1000000", "1e+06"),
            ("10000000000", "1e+10"),
            ("123456789", "1.23456789e+08"),
            ("-0.000012345", "-1.2345e-05"),
            ("1e-300", "1e-300"),
            ("12345.678", "12345.678"),
            ("not-a-number", "not-a-number"),
        ];
        for (written, want) in cases {
            assert_eq!(
                canonical_label_value(MetricType::Histogram, "le", written),
                want,
                "{written}"
            );
        }
    }

    #[test]
    fn applies_only_to_histogram_le_and_summary_quantile() {
        let cases = [
            (MetricType::Histogram, "le", "1", "1.0"),
            (MetricType::Summary, "quantile", "0", "0.0"),
            (MetricType::Summary, "le", "1", "1"),
            (MetricType::Histogram, "quantile", "0", "0"),
            (MetricType::GaugeHistogram, "le", "1", "1"),
            (MetricType::Unknown, "le", "1", "1"),
            (MetricType::Counter, "le", "1", "1"),
        ];
        for (t, name, value, want) in cases {
            assert_eq!(canonical_label_value(t, name, value), want, "{t:?} {name}");
        }
        assert!(matches!(
            canonical_label_value(MetricType::Histogram, "le", "0.5"),
            Cow::Borrowed(_)
        ));
    }
}
