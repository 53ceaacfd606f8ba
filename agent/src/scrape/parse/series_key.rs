//! [`SeriesKey`]: the identity of a series text, without the text.

use xxhash_rust::xxh3::xxh3_128;

/// A series text of a body (`name{labels}` as written) identified by its
/// length and a 128-bit hash of its bytes. Per-target caches keep this
/// instead of the text, ~130 bytes per series less, and recognise the text
/// in the next scrape by hashing the same span. Two different texts of the
/// same length share a key with probability ~2^-128. The hash is not keyed:
/// a target could at worst confuse two of its own series, which it can do
/// anyway by sending whatever labels it likes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesKey {
    hash: [u64; 2],
    len: u32,
}

impl SeriesKey {
    /// The key of `text`.
    pub fn of(text: &[u8]) -> Self {
        let hash = xxh3_128(text);
        Self {
            // Split so the key aligns to 8 bytes, not 16 (24 bytes, not 32).
            #[allow(clippy::cast_possible_truncation, reason = "the two halves")]
            hash: [hash as u64, (hash >> 64) as u64],
            // Bodies are far below 4 GiB (body_limit); a longer text gets a
            // length no span has, so it is never recognised, only re-parsed.
            len: u32::try_from(text.len()).unwrap_or(u32::MAX),
        }
    }

    /// The length of the text in bytes.
    pub fn len(self) -> usize {
        self.len as usize
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
        Self { hash, len }
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
    }
}
