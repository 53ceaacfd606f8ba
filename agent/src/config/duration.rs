//! Prometheus durations (`1h30m`, `15s`, `500ms`, `1d`, `1w`, `1y`), parsed
//! exactly like Prometheus' `model.ParseDuration` so a Prometheus config means
//! the same thing here.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Units from largest to smallest; a duration must use them in this order,
/// each at most once (Prometheus' rule).
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Largest duration Prometheus accepts: Go's `time.Duration` is `i64` nanoseconds.
const MAX_MILLIS: u64 = i64::MAX as u64 / 1_000_000;

/// Parses a Prometheus duration. `"0"` is zero; every other value is one or
/// more `<integer><unit>` parts with units in descending order.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match s {
        "0" => return Ok(Duration::ZERO),
        "" => return Err("empty duration, expected e.g. 15s, 1m30s or 500ms".to_owned()),
        _ => {}
    }
    let mut rest = s;
    let mut total: u64 = 0;
    // Index into UNITS of the last unit seen; the next one must come later.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "{s:?} is not a duration: expected a number before each unit, e.g. 1m30s"
            ));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(|b| !b.is_ascii_digit()).count();
        let (unit, tail) = tail.split_at(unit_len);
        if unit.contains('.') {
            return Err(format!(
                "{s:?} has a fraction: Prometheus durations take whole numbers, e.g. 1m30s instead of 1.5m"
            ));
        }
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                format!("{s:?} has no unit: add one of ms, s, m, h, d, w, y (e.g. {number}s)")
            } else {
                format!("{s:?} has an unknown unit {unit:?}: use ms, s, m, h, d, w or y")
            });
        };
        if pos < next_unit {
            return Err(format!(
                "{s:?} is not a duration: units must go from largest to smallest, each once (y w d h m s ms)"
            ));
        }
        next_unit = pos + 1;
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(UNITS[pos].1))
            .and_then(|ms| total.checked_add(ms))
            .filter(|&ms| ms <= MAX_MILLIS);
        total = part
            .ok_or_else(|| format!("{s:?} is out of range: the longest duration is about 292y"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way Prometheus prints one (`1m30s`, `500ms`, `0s`),
/// so error messages echo values in the user's notation.
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&(ms / size).to_string());
            out.push_str(unit);
            ms %= size;
        }
    }
    out
}

/// A duration read from config; deserializes from a Prometheus duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PromDuration(pub(super) Duration);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PromDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Prometheus duration such as 15s, 1m30s or 500ms")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PromDuration, E> {
                parse_duration(v).map(PromDuration).map_err(E::custom)
            }
            // A bare YAML `0` arrives as an integer; Prometheus accepts it.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PromDuration, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PromDuration, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_prometheus() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("0s", 0),
            ("500ms", 500),
            ("15s", 15_000),
            ("1m", 60_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            (
                "1y2w3d4h5m6s7ms",
                31_536_000_000 + 1_209_600_000 + 259_200_000 + 14_400_000 + 300_000 + 6_000 + 7,
            ),
            ("90s", 90_000),
            ("292y", 292 * 31_536_000_000),
        ];
        for (input, ms) in ok {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_millis(*ms)),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        let bad: &[(&str, &str)] = &[
            ("", "empty"),
            ("15", "no unit"),
            ("1.5m", "fraction"),
            ("1m1h", "largest to smallest"),
            ("1s1s", "largest to smallest"),
            ("10x", "unknown unit \"x\""),
            ("s", "number before each unit"),
            ("-1s", "number before each unit"),
            (" 1s", "number before each unit"),
            ("1S", "unknown unit"),
            ("300y", "out of range"),
            ("99999999999999999999s", "out of range"),
        ];
        for (input, want) in bad {
            let err = parse_duration(input).expect_err(input);
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["0s", "500ms", "15s", "1m30s", "1h", "1d12h", "2w", "1y1ms"] {
            let d = parse_duration(s).expect(s);
            assert_eq!(format_duration(d), s);
        }
    }
}
