//! Sample values and timestamps.
//!
//! Values follow Go's `strconv.ParseFloat` as Prometheus uses it: decimal
//! floats, `Inf`/`Infinity`/`NaN` in any case with an optional sign on the
//! infinities; no hex floats, no `_` separators; out-of-range values are
//! errors rather than infinities.

/// Largest number of decimal digits that always converts to f64 exactly.
const EXACT_DIGITS: usize = 15;

/// Parses a sample value (both formats) or an OpenMetrics timestamp.
pub(super) fn parse_float(s: &[u8]) -> Option<f64> {
    if let Some(v) = parse_small_int(s) {
        return Some(v);
    }
    let text = std::str::from_utf8(s).ok()?;
    // Rust would accept a sign before NaN; Go does not.
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.starts_with(['n', 'N']) && unsigned.len() != text.len() {
        return None;
    }
    let v: f64 = text.parse().ok()?;
    // Go reports overflow as an error; Rust rounds to infinity.
    if v.is_infinite() && !unsigned.starts_with(['i', 'I']) {
        return None;
    }
    Some(v)
}

/// Fast path for the common case: a short, optionally signed, plain integer.
fn parse_small_int(s: &[u8]) -> Option<f64> {
    let (negative, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > EXACT_DIGITS {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    // Exact: n < 10^15 < 2^53.
    #[allow(clippy::cast_precision_loss, reason = "n < 2^53 converts exactly")]
    let v = n as f64;
    Some(if negative { -v } else { v })
}

/// Text format 0.0.4 timestamp: decimal digits, milliseconds since the epoch.
pub(super) fn parse_text_timestamp(s: &[u8]) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(d))?;
    }
    Some(n)
}

/// OpenMetrics timestamp: float seconds, converted to milliseconds the way
/// Prometheus does (multiply, then truncate toward zero; saturating).
pub(super) fn parse_om_timestamp(s: &[u8]) -> Option<i64> {
    let secs = parse_float(s)?;
    if !secs.is_finite() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "truncation is the defined conversion"
    )]
    Some((secs * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let cases: &[(&str, Option<f64>)] = &[
            ("0", Some(0.0)),
            ("-0", Some(-0.0)),
            ("1", Some(1.0)),
            ("+7", Some(7.0)),
            ("-12", Some(-12.0)),
            ("123456789012345", Some(123_456_789_012_345.0)),
            ("9223372036854775808", Some(9_223_372_036_854_775_808.0)),
            ("1.5", Some(1.5)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("1e3", Some(1000.0)),
            ("1E-3", Some(0.001)),
            ("4.9351e-05", Some(4.9351e-05)),
            (
                "0000000000000000000000000000000000000000001.2e-1",
                Some(0.12),
            ),
            ("+Inf", Some(f64::INFINITY)),
            ("-Inf", Some(f64::NEG_INFINITY)),
            ("inf", Some(f64::INFINITY)),
            ("Infinity", Some(f64::INFINITY)),
            ("1e400", None),
            ("-1e400", None),
            ("", None),
            ("-", None),
            ("true", None),
            ("1_2", None),
            ("0x1", None),
            ("0x1p-3", None),
            ("0b1", None),
            ("0o1", None),
            ("1.1.1", None),
            ("1 ", None),
            ("+NaN", None),
            ("-nan", None),
        ];
        for (text, want) in cases {
            let got = parse_float(text.as_bytes());
            match (got, want) {
                (Some(g), Some(w)) => {
                    assert!(g == *w && g.signum() == w.signum(), "{text}: {g} != {w}")
                }
                (None, None) => {}
                _ => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
        for nan in ["NaN", "nan", "NAN"] {
            assert!(
                parse_float(nan.as_bytes()).is_some_and(f64::is_nan),
                "{nan}"
            );
        }
    }

    #[test]
    fn text_timestamps() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("123123", Some(123_123)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("-1", None),
            ("1.5", None),
            ("1_2", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_text_timestamp(text.as_bytes()), *want, "{text}");
        }
    }

    #[test]
    fn om_timestamps() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("1.5e3", Some(1_500_000)),
            ("123.123", Some(123_123)),
            ("-1.1", Some(-1100)),
            ("0.0000000001", Some(0)),
            ("12345678901234567890.1234567890", Some(i64::MAX)),
            ("NaN", None),
            ("Inf", None),
            ("-Inf", None),
            ("1z", None),
            ("0x1p-3", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_om_timestamp(text.as_bytes()), *want, "{text}");
        }
    }
}
