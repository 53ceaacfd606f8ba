//! [`SeriesKey`]: the identity of a series text, without the text.

use xxhash_rust::xxh3::xxh3_128;

use super::lex::{is_metric_start, metric_name_end};

/// A series text of a body (`name{labels}` as written) identified by its
/// length and a 128-bit hash of its bytes. Per-target caches keep this
/// instead of the text, ~130 bytes per series less, and recognise the text
/// in the next scrape by hashing the same span. Two different texts of the
/// same length share a key with probability ~2^-128. The hash is not keyed:
/// a target could at worst confuse two of its own series, which it can do
/// anyway by sending whatever labels it likes.
///
/// It also keeps the length of the metric name the text starts with, so a
/// recognised text needs no scan for it (scanning names byte by byte was
/// the parser's largest cost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesKey {
    hash: [u64; 2],
    len: u32,
    name_len: u32,
}

/// Bytes of the metric name at the start of `text` (0 before a `{`).
fn leading_name_len(text: &[u8]) -> usize {
    match text.first() {
        Some(&b) if is_metric_start(b) => metric_name_end(text, 0),
        _ => 0,
    }
}

/// xxh3-128 of `text`, split so a key aligns to 8 bytes, not 16 (24 bytes, not 32).
fn hash(text: &[u8]) -> [u64; 2] {
    let hash = xxh3_128(text);
    #[allow(clippy::cast_possible_truncation, reason = "the two halves")]
    [hash as u64, (hash >> 64) as u64]
}

impl SeriesKey {
    /// The key of `text`.
    pub fn of(text: &[u8]) -> Self {
        Self::with_name_len(text, leading_name_len(text))
    }

    /// The key of `text`, whose metric name takes its first `name_len`
    /// bytes: what a parser that has read the name knows already.
    pub(super) fn with_name_len(text: &[u8], name_len: usize) -> Self {
        debug_assert_eq!(name_len, leading_name_len(text), "{text:?}");
        Self {
            hash: hash(text),
            // Bodies are far below 4 GiB (body_limit); a longer text gets a
            // length no span has, so it is never recognised, only re-parsed.
            len: u32::try_from(text.len()).unwrap_or(u32::MAX),
            name_len: u32::try_from(name_len).unwrap_or(0),
        }
    }

    /// True when `text` is the text this key was made of (up to the
    /// hash's collision odds).
    pub fn is_key_of(self, text: &[u8]) -> bool {
        text.len() == self.len() && hash(text) == self.hash
    }

    /// The length of the text in bytes.
    pub fn len(self) -> usize {
        self.len as usize
    }

    /// The length of the metric name at the start of the text (0 when it
    /// starts with `{`).
    pub fn name_len(self) -> usize {
        self.name_len as usize
    }

    /// True for the key of the empty text.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// 64 bits of the hash, for hash tables.
    pub fn short_hash(self) -> u64 {
        self.hash[0]
    }

    /// A key with a chosen hash, for tests of hash collisions.
    #[cfg(test)]
    pub(crate) fn with_hash(hash: [u64; 2], len: u32) -> Self {
        Self {
            hash,
            len,
            name_len: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_a_key_and_others_do_not() {
        let a = SeriesKey::of(b"m{a=\"1\"}");
        assert_eq!(a, SeriesKey::of(b"m{a=\"1\"}"));
        assert_eq!(a.len(), 8);
        for other in [&b"m{a=\"2\"}"[..], b"m{a=\"1\"} ", b"m{a=\"1\""] {
            assert_ne!(a, SeriesKey::of(other));
        }
        assert!(SeriesKey::of(b"").is_empty());
        assert_eq!(std::mem::size_of::<SeriesKey>(), 24);
        assert!(a.is_key_of(b"m{a=\"1\"}") && !a.is_key_of(b"m{a=\"2\"}"));
    }

    #[test]
    fn the_key_knows_the_name_length() {
        for (text, name_len) in [
            (&b"http_requests_total{code=\"200\"}"[..], 19),
            (b"up", 2),
            (b"a:b_c {x=\"y\"}", 5),
            (b"{__name__=\"up\"}", 0),
            (b"", 0),
        ] {
            assert_eq!(SeriesKey::of(text).name_len(), name_len, "{text:?}");
        }
    }
}
