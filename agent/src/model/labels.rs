//! Label sets with the invariants remote write demands: sorted by name in
//! byte order, no duplicate names, no empty names or values.
//!
//! A set is a row of interned pairs ([`super::intern`]): one small
//! allocation per series, with the text of each distinct pair stored once.
//! Each pair keeps its remote write 1.0 `Label` message as repeated field 1
//! (`0x0a len 0x0a len name 0x12 len value`), so the encoder writes a
//! set's `TimeSeries.labels` (or `Exemplar.labels`) by copying those.

use std::fmt;
use std::hash::{Hash, Hasher};

use super::intern::{Pair, intern};

/// One owned label: a name and its value (for building a [`Labels`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// Label name, e.g. `__name__` or `job`.
    pub name: String,
    /// Label value; never empty inside a [`Labels`].
    pub value: String,
}

/// One label of a [`Labels`], borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelRef<'a> {
    /// Label name, e.g. `__name__` or `job`.
    pub name: &'a str,
    /// Label value; never empty.
    pub value: &'a str,
}

/// A sorted label set. Setting a label to `""` removes it, exactly like
/// Prometheus' `labels.Builder`, so an empty value can never be stored.
#[derive(Clone, Default)]
pub struct Labels {
    // Sorted by name (byte order), unique names, non-empty values. Only
    // this module builds it.
    pairs: Box<[Pair]>,
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.pairs.len() == other.pairs.len()
            && self
                .pairs
                .iter()
                .zip(other.pairs.iter())
                .all(|(a, b)| a.same(b))
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.pairs.len());
        for p in self.pairs.iter() {
            state.write_u64(p.hash());
        }
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|l| (l.name, l.value)))
            .finish()
    }
}

impl Labels {
    /// An empty label set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from pairs; later pairs win over earlier ones with the
    /// same name and empty values are skipped.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let pairs: Vec<(N, V)> = pairs.into_iter().collect();
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        // Stable: among equal names the later pair sorts last and wins.
        order.sort_by(|&a, &b| {
            pairs[a]
                .0
                .as_ref()
                .as_bytes()
                .cmp(pairs[b].0.as_ref().as_bytes())
        });
        let mut out: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
        for i in order {
            let (n, v) = (pairs[i].0.as_ref(), pairs[i].1.as_ref());
            if n.is_empty() {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.0 == n => last.1 = v,
                _ => out.push((n, v)),
            }
        }
        Self::from_sorted(out.into_iter().filter(|(_, v)| !v.is_empty()))
    }

    /// A label set from owned labels (sorted, unique and non-empty as
    /// decoded from a label set this type wrote, or not: then as
    /// [`Self::from_pairs`] would build it).
    pub fn from_vec(labels: Vec<Label>) -> Self {
        let canonical = labels
            .windows(2)
            .all(|w| w[0].name.as_bytes() < w[1].name.as_bytes())
            && labels
                .iter()
                .all(|l| !l.name.is_empty() && !l.value.is_empty());
        if canonical {
            Self::from_sorted(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())))
        } else {
            Self::from_pairs(labels.iter().map(|l| (&l.name, &l.value)))
        }
    }

    /// Interns labels already sorted, unique and non-empty.
    fn from_sorted<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            pairs: labels.map(|(n, v)| intern(n, v)).collect(),
        }
    }

    /// Bytes of the set as remote write 1.0 `TimeSeries.labels` (or
    /// `Exemplar.labels`) fields.
    pub fn protobuf_len(&self) -> usize {
        self.pairs.iter().map(|p| p.packed().len()).sum()
    }

    /// Appends the set as remote write 1.0 `Label` messages, repeated
    /// field 1: the bytes of a `TimeSeries.labels` or `Exemplar.labels`.
    pub fn write_protobuf(&self, out: &mut Vec<u8>) {
        for p in self.pairs.iter() {
            out.extend_from_slice(p.packed());
        }
    }

    /// The value of `name`, or `None` when it is not set.
    pub fn get(&self, name: &str) -> Option<&str> {
        for l in self {
            match l.name.as_bytes().cmp(name.as_bytes()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Some(l.value),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// The value of `name`, or `""` when it is not set (Prometheus' rule for
    /// missing source labels).
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.remove(name);
            return;
        }
        if name.is_empty() || self.get(name) == Some(value) {
            return;
        }
        let mut pairs = Vec::with_capacity(self.pairs.len() + 1);
        let mut placed = false;
        for p in self.pairs.iter() {
            if !placed && p.name().as_bytes() >= name.as_bytes() {
                pairs.push(intern(name, value));
                placed = true;
                if p.name() == name {
                    continue;
                }
            }
            pairs.push(p.clone());
        }
        if !placed {
            pairs.push(intern(name, value));
        }
        self.pairs = pairs.into_boxed_slice();
    }

    /// Removes `name`; returns its value if it was set.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let old = self.get(name)?.to_owned();
        self.retain(|l| l.name != name);
        Some(old)
    }

    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&LabelRef<'_>) -> bool) {
        if self.iter().all(|l| keep(&l)) {
            return;
        }
        self.pairs = self
            .pairs
            .iter()
            .filter(|p| {
                keep(&LabelRef {
                    name: p.name(),
                    value: p.value(),
                })
            })
            .cloned()
            .collect();
    }

    /// The labels in byte order of their names.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            pairs: self.pairs.iter(),
        }
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when no label is set.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The metric name (`__name__`), if set.
    pub fn metric_name(&self) -> Option<&str> {
        self.get("__name__")
    }

    /// A stable 64-bit identity of the label set (FNV-1a over names and
    /// values with separators), used to shard series and key caches.
    pub fn stable_hash(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET;
        for l in self {
            for b in l
                .name
                .bytes()
                .chain([0xff])
                .chain(l.value.bytes())
                .chain([0xfe])
            {
                h ^= u64::from(b);
                h = h.wrapping_mul(PRIME);
            }
        }
        h
    }
}

/// Iterator over the labels of a [`Labels`], in name order.
#[derive(Clone)]
pub struct Iter<'a> {
    pairs: std::slice::Iter<'a, Pair>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = LabelRef<'a>;

    fn next(&mut self) -> Option<LabelRef<'a>> {
        self.pairs.next().map(|p| LabelRef {
            name: p.name(),
            value: p.value(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.pairs.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Labels {
    type Item = LabelRef<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Display for Labels {
    /// Prometheus notation: `name{a="b", c="d"}` with escaped values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.iter().filter(|l| l.name != "__name__") {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}=\"", l.name)?;
            for c in l.value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// Why a label set may not be sent (remote write 1.0 §Labels).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLabels {
    /// No labels at all.
    #[error("empty label set")]
    Empty,
    /// A label with an empty value.
    #[error("label {0:?} has an empty value")]
    EmptyValue(String),
    /// Names not strictly increasing in byte order (unsorted or repeated).
    #[error("label {0:?} is out of order or repeated")]
    Unsorted(String),
    /// A name outside `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {0:?}")]
    LabelName(String),
    /// A metric name outside `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {0:?}")]
    MetricName(String),
}

/// True for a legacy Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True for a legacy Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_by_bytes_unique_and_never_empty() {
        let mut l = Labels::from_pairs([("b", "2"), ("__name__", "up"), ("A", "x"), ("a", "1")]);
        l.set("a", "3");
        l.set("c", "");
        let names: Vec<_> = l.iter().map(|l| l.name).collect();
        assert_eq!(names, ["A", "__name__", "a", "b"]);
        assert_eq!(l.get("a"), Some("3"));
        l.set("b", "");
        assert_eq!(l.get("b"), None);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn from_vec_keeps_canonical_input_and_repairs_the_rest() {
        let l = |n: &str, v: &str| Label {
            name: n.into(),
            value: v.into(),
        };
        let sorted = Labels::from_vec(vec![l("a", "1"), l("b", "2")]);
        assert_eq!(sorted, Labels::from_pairs([("a", "1"), ("b", "2")]));
        let messy = Labels::from_vec(vec![l("b", "2"), l("a", "1"), l("c", ""), l("a", "3")]);
        assert_eq!(messy, Labels::from_pairs([("a", "3"), ("b", "2")]));
    }

    #[test]
    fn packed_form_is_the_protobuf_encoding_of_the_labels() {
        use prost::Message;
        // Long names and values need multi-byte lengths.
        let long = "v".repeat(300);
        let l = Labels::from_pairs([("__name__", "m"), ("z", long.as_str()), ("a", "é")]);
        let ts = crate::remote_write::proto::TimeSeries {
            labels: l
                .iter()
                .map(|l| crate::remote_write::proto::Label {
                    name: l.name.to_owned(),
                    value: l.value.to_owned(),
                })
                .collect(),
            ..Default::default()
        };
        let mut packed = Vec::new();
        l.write_protobuf(&mut packed);
        assert_eq!(packed, ts.encode_to_vec());
        assert_eq!(l.protobuf_len(), packed.len());
        let back: Vec<_> = l.iter().map(|l| (l.name, l.value)).collect();
        assert_eq!(back, [("__name__", "m"), ("a", "é"), ("z", long.as_str())]);
    }

    #[test]
    fn set_remove_and_retain_keep_the_set_sorted() {
        let mut l = Labels::new();
        for (n, v) in [("m", "1"), ("b", "2"), ("z", "3"), ("a", "4"), ("m", "5")] {
            l.set(n, v);
        }
        assert_eq!(
            l,
            Labels::from_pairs([("a", "4"), ("b", "2"), ("m", "5"), ("z", "3")])
        );
        assert_eq!(l.remove("b").as_deref(), Some("2"));
        assert_eq!(l.remove("b"), None);
        l.retain(|l| l.name != "z");
        assert_eq!(l, Labels::from_pairs([("a", "4"), ("m", "5")]));
        assert_eq!(
            (l.get("a"), l.get("c"), l.get("zz")),
            (Some("4"), None, None)
        );
        // Later pairs win, and an empty later value removes the name.
        let p = Labels::from_pairs([("a", "1"), ("b", "2"), ("a", "3"), ("b", ""), ("", "x")]);
        assert_eq!(p, Labels::from_pairs([("a", "3")]));
        assert_eq!(format!("{p:?}"), r#"{"a": "3"}"#);
    }

    #[test]
    fn display_escapes_values() {
        let l = Labels::from_pairs([("__name__", "m"), ("a", "x\"y\\\n")]);
        assert_eq!(l.to_string(), r#"m{a="x\"y\\\n"}"#);
    }

    #[test]
    fn hash_depends_on_names_and_values() {
        let a = Labels::from_pairs([("a", "bc")]);
        let b = Labels::from_pairs([("ab", "c")]);
        assert_ne!(a.stable_hash(), b.stable_hash());
        assert_eq!(
            a.stable_hash(),
            Labels::from_pairs([("a", "bc")]).stable_hash()
        );
    }

    #[test]
    fn name_validation() {
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a:b"));
        assert!(is_valid_metric_name("a:b_c"));
        assert!(!is_valid_metric_name(""));
    }
}
