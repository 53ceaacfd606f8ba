//! Label sets with the invariants remote write demands: sorted by name in
//! byte order, no duplicate names, no empty names or values.

use std::fmt;

/// One label: a name and its value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// Label name, e.g. `__name__` or `job`.
    pub name: String,
    /// Label value; never empty inside a [`Labels`].
    pub value: String,
}

/// A sorted label set. Setting a label to `""` removes it, exactly like
/// Prometheus' `labels.Builder`, so an empty value can never be stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    // Sorted by name (byte order), unique names, non-empty values.
    labels: Vec<Label>,
}

impl Labels {
    /// An empty label set.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty label set with room for `n` labels.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            labels: Vec::with_capacity(n),
        }
    }

    /// Builds a set from pairs; later pairs win over earlier ones with the
    /// same name and empty values are skipped.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut labels = Self::new();
        for (n, v) in pairs {
            labels.set(n.as_ref(), v.as_ref());
        }
        labels
    }

    /// A label set from owned labels, taking them without copying when they
    /// are already sorted, unique and non-empty (as decoded from a label set
    /// this type wrote); otherwise as [`Self::from_pairs`] would build it.
    pub fn from_vec(labels: Vec<Label>) -> Self {
        let canonical = labels
            .windows(2)
            .all(|w| w[0].name.as_bytes() < w[1].name.as_bytes())
            && labels
                .iter()
                .all(|l| !l.name.is_empty() && !l.value.is_empty());
        if canonical {
            Self { labels }
        } else {
            Self::from_pairs(labels.iter().map(|l| (&l.name, &l.value)))
        }
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.labels
            .binary_search_by(|l| l.name.as_bytes().cmp(name.as_bytes()))
    }

    /// The value of `name`, or `None` when it is not set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name)
            .ok()
            .map(|i| self.labels[i].value.as_str())
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
        if name.is_empty() {
            return;
        }
        match self.position(name) {
            Ok(i) => {
                if self.labels[i].value != value {
                    value.clone_into(&mut self.labels[i].value);
                }
            }
            Err(i) => self.labels.insert(
                i,
                Label {
                    name: name.to_owned(),
                    value: value.to_owned(),
                },
            ),
        }
    }

    /// Removes `name`; returns its value if it was set.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.position(name)
            .ok()
            .map(|i| self.labels.remove(i).value)
    }

    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) {
        self.labels.retain(|l| keep(l));
    }

    /// The labels in byte order of their names.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when no label is set.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
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
        for l in &self.labels {
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

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.labels.iter()
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
        for l in self.labels.iter().filter(|l| l.name != "__name__") {
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
        let names: Vec<_> = l.iter().map(|l| l.name.as_str()).collect();
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
