//! Byte sizes such as `body_size_limit: 10MB`, read like Prometheus'
//! `units.Base2Bytes`: `KB` and `KiB` both mean 1024 bytes, fractions and
//! sequences (`1.5GB`, `1MB512KB`) are allowed. Plain integers are bytes.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Unit suffixes and their sizes; both spellings are powers of 1024, as in Prometheus.
const UNITS: [(&str, u64); 13] = [
    ("B", 1),
    ("KB", 1 << 10),
    ("KiB", 1 << 10),
    ("MB", 1 << 20),
    ("MiB", 1 << 20),
    ("GB", 1 << 30),
    ("GiB", 1 << 30),
    ("TB", 1 << 40),
    ("TiB", 1 << 40),
    ("PB", 1 << 50),
    ("PiB", 1 << 50),
    ("EB", 1 << 60),
    ("EiB", 1 << 60),
];

/// Parses a byte size: digits alone are bytes, otherwise one or more
/// `<number>[.<fraction>]<unit>` parts that add up.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map_err(|_| format!("{s:?} is too large for a byte size"));
    }
    if s.is_empty() {
        return Err("empty byte size, expected e.g. 10MB, 1GiB or 1048576".to_owned());
    }
    let mut rest = s;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, tail) = rest.split_at(int_len);
        let (frac, tail) = match tail.strip_prefix('.') {
            Some(t) => {
                let n = t.bytes().take_while(u8::is_ascii_digit).count();
                t.split_at(n)
            }
            None => ("", tail),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(format!(
                "{s:?} is not a byte size: expected a number before each unit, e.g. 10MB"
            ));
        }
        let unit_len = tail
            .bytes()
            .take_while(|b| !b.is_ascii_digit() && *b != b'.')
            .count();
        let (unit, tail) = tail.split_at(unit_len);
        let Some(&(_, size)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "{s:?} has an unknown unit {unit:?}: use B, KB, MB, GB, TB, PB, EB (or KiB, MiB, ...; all powers of 1024)"
            ));
        };
        total = add_part(int, frac, size)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("{s:?} is too large for a byte size"))?;
        rest = tail;
    }
    Ok(total)
}

/// `int.frac * size`, truncated to whole bytes; `None` on overflow.
fn add_part(int: &str, frac: &str, size: u64) -> Option<u64> {
    let whole = if int.is_empty() {
        0
    } else {
        int.parse::<u64>().ok()?
    };
    let mut bytes = whole.checked_mul(size)?;
    // Digits past 19 cannot change a u64 result; ignoring them avoids overflow.
    let frac = &frac[..frac.len().min(19)];
    if !frac.is_empty() {
        let numerator = u128::from(frac.parse::<u64>().ok()?) * u128::from(size);
        let denominator = 10u128.pow(u32::try_from(frac.len()).ok()?);
        bytes = bytes.checked_add(u64::try_from(numerator / denominator).ok()?)?;
    }
    Some(bytes)
}

/// A byte size read from config: an integer or a string with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ByteSize(pub(super) u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as 10MB, 1GiB or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_bytes(v).map(ByteSize).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("{v} is negative: a byte size is 0 or more")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_units() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("1048576", 1 << 20),
            ("0B", 0),
            ("512B", 512),
            ("10KB", 10 << 10),
            ("10KiB", 10 << 10),
            ("10MB", 10 << 20),
            ("1GiB", 1 << 30),
            ("1.5GB", 3 << 29),
            ("1MB512KB", (1 << 20) + (512 << 10)),
            (".5KB", 512),
            ("15EB", 15 << 60),
        ];
        for (input, want) in ok {
            assert_eq!(parse_bytes(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn rejects_bad_sizes() {
        let bad: &[(&str, &str)] = &[
            ("", "empty"),
            ("10mb", "unknown unit \"mb\""),
            ("10 MB", "unknown unit \" MB\""),
            ("MB", "number before each unit"),
            ("-1MB", "number before each unit"),
            ("16EB", "too large"),
            ("99999999999999999999", "too large"),
        ];
        for (input, want) in bad {
            let err = parse_bytes(input).expect_err(input);
            assert!(err.contains(want), "{input}: {err}");
        }
    }
}
