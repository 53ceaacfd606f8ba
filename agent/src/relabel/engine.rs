//! Runs one compiled rule against a label set (Prometheus' `relabel()`).

use std::borrow::Cow;
use std::fmt::Write as _;

use md5::{Digest, Md5};

use super::compile::{Matcher, Op, Rule};
use super::template::{Replace, Template};
use crate::model::{Labels, is_valid_label_name};

/// Reusable buffers, so the common paths do not allocate per series.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    joined: String,
    target: String,
    value: String,
}

impl Scratch {
    pub(crate) const fn new() -> Self {
        Self {
            joined: String::new(),
            target: String::new(),
            value: String::new(),
        }
    }

    /// Drops buffers that one huge value grew, so a thread does not keep them forever.
    pub(crate) fn shrink(&mut self) {
        const KEEP: usize = 16 * 1024;
        for buf in [&mut self.joined, &mut self.target, &mut self.value] {
            if buf.capacity() > KEEP {
                *buf = String::new();
            }
        }
    }
}

/// Applies `rule`; false means the series/target is dropped.
pub(crate) fn apply(rule: &Rule, labels: &mut Labels, s: &mut Scratch) -> bool {
    let Scratch {
        joined,
        target,
        value,
    } = s;
    joined.clear();
    for (i, name) in rule.source_labels.iter().enumerate() {
        if i > 0 {
            joined.push_str(&rule.separator);
        }
        // A missing source label counts as "".
        joined.push_str(labels.get_or_empty(name));
    }
    let val = joined.as_str();
    match &rule.op {
        Op::Drop(m) => !m.is_match(val),
        Op::Keep(m) => m.is_match(val),
        Op::DropEqual(t) => labels.get_or_empty(t) != val,
        Op::KeepEqual(t) => labels.get_or_empty(t) == val,
        Op::Replace {
            regex,
            target: t,
            replacement,
        } => {
            replace(regex, t, replacement, val, labels, (target, value));
            true
        }
        Op::Lowercase(t) => {
            value.clear();
            go_to_lower(val, value);
            labels.set(t, value);
            true
        }
        Op::Uppercase(t) => {
            value.clear();
            go_to_upper(val, value);
            labels.set(t, value);
            true
        }
        Op::HashMod { target: t, modulus } => {
            value.clear();
            let _ = write!(value, "{}", hash_mod(val, *modulus));
            labels.set(t, value);
            true
        }
        Op::LabelMap { regex, replacement } => {
            label_map(regex, replacement, labels);
            true
        }
        Op::LabelDrop(regex) => {
            labels.retain(|l| !regex.is_match(l.name));
            true
        }
        Op::LabelKeep(regex) => {
            labels.retain(|l| regex.is_match(l.name));
            true
        }
    }
}

fn replace(
    regex: &Matcher,
    target_tpl: &Template,
    replacement: &Template,
    val: &str,
    labels: &mut Labels,
    bufs: (&mut String, &mut String),
) {
    let templates = (target_tpl, replacement);
    if regex.matches_all {
        // `(.*)` always matches; groups 0 and 1 are the whole input. This
        // covers Prometheus' fast path and skips the regex altogether.
        expand_and_set(templates, |i| (i < 2).then_some(val), labels, bufs);
    } else if !target_tpl.uses_groups() && !replacement.uses_groups() {
        // Constant templates only need a yes/no match, which captures nothing.
        if regex.regex.is_match(val) {
            expand_and_set(templates, |_| None, labels, bufs);
        }
    } else if let Some(caps) = regex.regex.captures(val) {
        expand_and_set(templates, |i| caps.get(i).map(|m| m.as_str()), labels, bufs);
    }
}

fn expand_and_set<'h>(
    (target_tpl, replacement): (&Template, &Template),
    group: impl Fn(usize) -> Option<&'h str> + Copy,
    labels: &mut Labels,
    (target, value): (&mut String, &mut String),
) {
    target.clear();
    target_tpl.expand_into(group, target);
    // A name that expands to something invalid is skipped, not an error.
    if !is_valid_label_name(target) {
        return;
    }
    value.clear();
    replacement.expand_into(group, value);
    // An empty value deletes the target label.
    labels.set(target, value);
}

fn label_map(regex: &regex::Regex, replacement: &Template, labels: &mut Labels) {
    // Prometheus iterates a snapshot of the labels, so names created here are
    // not mapped again; collect first, then set. (Its snapshot lists labels
    // added by earlier rules last, ours is sorted: this only matters when two
    // labels map to the same name.)
    let mut mapped: Vec<(String, String)> = Vec::new();
    for l in labels.iter() {
        // `is_match` first: it needs no captures, so non-matching labels cost
        // no allocation (Prometheus also checks MatchString first).
        if !regex.is_match(l.name) {
            continue;
        }
        if let Cow::Owned(name) = regex.replace_all(l.name, Replace(replacement)) {
            // Deliberate deviation: Prometheus sets even an invalid name and
            // fails the scrape later; we skip it, as `replace` does, so relabel
            // output always carries valid names.
            if is_valid_label_name(&name) {
                mapped.push((name, l.value.to_owned()));
            }
        }
    }
    for (name, value) in mapped {
        labels.set(&name, &value);
    }
}

/// Big-endian u64 of the last 8 bytes of md5(`val`), modulo `modulus` (> 0 by validation).
pub(crate) fn hash_mod(val: &str, modulus: u64) -> u64 {
    let digest = Md5::digest(val.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(tail).checked_rem(modulus).unwrap_or(0)
}

/// Go's `strings.ToLower`: per-rune simple case mapping. Rust's full mapping
/// differs only for U+0130 (İ), whose simple lower-case is plain `i`, the
/// first char of the full mapping.
pub(crate) fn go_to_lower(val: &str, out: &mut String) {
    if val.is_ascii() {
        out.push_str(val);
        out.make_ascii_lowercase();
        return;
    }
    out.extend(val.chars().map(|c| c.to_lowercase().next().unwrap_or(c)));
}

/// Go's `strings.ToUpper`: per-rune simple case mapping. Where Rust's full
/// mapping has several chars (ß → SS, ligatures, Greek with ypogegrammeni),
/// Go keeps the char, except for the Greek letters whose simple upper-case is
/// the title-case letter with prosgegrammeni.
pub(crate) fn go_to_upper(val: &str, out: &mut String) {
    if val.is_ascii() {
        out.push_str(val);
        out.make_ascii_uppercase();
        return;
    }
    out.extend(val.chars().map(|c| {
        let mut upper = c.to_uppercase();
        match (upper.next(), upper.next()) {
            (Some(u), None) => u,
            _ => simple_upper_greek(c).unwrap_or(c),
        }
    }));
}

fn simple_upper_greek(c: char) -> Option<char> {
    let shifted = match u32::from(c) {
        cp @ (0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7) => cp + 8,
        0x1FB3 => 0x1FBC,
        0x1FC3 => 0x1FCC,
        0x1FF3 => 0x1FFC,
        _ => return None,
    };
    char::from_u32(shifted)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should panic on unexpected errors"
)]
mod tests {
    use super::*;

    #[test]
    fn hash_mod_matches_prometheus() {
        assert_eq!(hash_mod("baz", 1000), 976);
        assert_eq!(hash_mod("foo\nbar", 1000), 734);
        assert_eq!(hash_mod("anything", 1), 0);
    }

    #[test]
    fn case_mapping_follows_go() {
        // (input, Go strings.ToLower, Go strings.ToUpper)
        let table = [
            ("bAr123Foo", "bar123foo", "BAR123FOO"),
            ("Straße", "straße", "STRAßE"),
            ("İstanbul", "istanbul", "İSTANBUL"),
            ("ΟΔΟΣ", "οδοσ", "ΟΔΟΣ"), // no final-sigma rule in Go
            ("ﬁx", "ﬁx", "ﬁX"),
            ("ᾳ", "ᾳ", "ᾼ"),
            ("ᾼ", "ᾳ", "ᾼ"),
            ("", "", ""),
        ];
        for (input, lower, upper) in table {
            let mut out = String::new();
            go_to_lower(input, &mut out);
            assert_eq!(out, lower, "lower {input:?}");
            out.clear();
            go_to_upper(input, &mut out);
            assert_eq!(out, upper, "upper {input:?}");
        }
    }
}
