//! Interned label pairs: every distinct `name="value"` is stored once and
//! shared by all the label sets that carry it.
//!
//! Series of one target repeat the same pairs (`job`, `instance`, `verb`,
//! `le`, ...), so a label set of shared pairs is a row of pointers: at 100k
//! series that is ~120 bytes a series less than packing every set's text,
//! and the encoder copies each pair's wire bytes from a few hot cache lines
//! instead of one cold buffer per series. Prometheus' remote write interns
//! label strings for the same reason.
//!
//! A pair lives while a label set holds it: the interner sweeps out pairs
//! only it still holds whenever a shard has doubled since its last sweep,
//! so churning label values cannot grow it without bound.

use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use hashbrown::HashTable;
use prost::encoding::{encode_varint, encoded_len_varint};

/// Field 1, length-delimited: `TimeSeries.labels`, `Label.name`.
const TAG_ONE: u8 = 0x0a;
/// Field 2, length-delimited: `Label.value`.
const TAG_TWO: u8 = 0x12;

/// Independent interner shards, so scrapes on different threads rarely
/// wait for each other.
const SHARDS: usize = 16;
/// A shard is not swept before it holds this many pairs.
const MIN_SWEEP: usize = 256;

/// One interned label; cloning it shares the pair.
#[derive(Clone)]
pub struct Pair(Arc<PairData>);

struct PairData {
    /// [`pair_hash`] of name and value, for the interner and `Hash`.
    hash: u64,
    /// Bytes of the name at the front of `text`.
    name_len: usize,
    /// Name then value. `packed` holds the same bytes, but slicing `&str`s
    /// out of it would mean checking UTF-8 on every read (the 2.0 encoder
    /// iterates every series' labels in every request); a distinct pair is
    /// stored once, so the second copy is cheap.
    text: Box<str>,
    /// The pair as a remote write 1.0 `Label` message, repeated field 1
    /// (`0x0a len 0x0a len name 0x12 len value`): what encoders copy.
    packed: Box<[u8]>,
}

impl Pair {
    /// The label name.
    pub fn name(&self) -> &str {
        self.0.text.split_at(self.0.name_len).0
    }

    /// The label value.
    pub fn value(&self) -> &str {
        self.0.text.split_at(self.0.name_len).1
    }

    /// The wire form (module docs of [`super::Labels`]).
    pub fn packed(&self) -> &[u8] {
        &self.0.packed
    }

    /// A hash of name and value, equal for equal pairs.
    pub fn hash(&self) -> u64 {
        self.0.hash
    }

    /// True when both are the same name and value.
    pub fn same(&self, other: &Pair) -> bool {
        // Interning makes equal pairs one allocation; the comparison only
        // backs that up.
        Arc::ptr_eq(&self.0, &other.0) || (self.0.hash == other.0.hash && self.text_eq(other))
    }

    fn text_eq(&self, other: &Pair) -> bool {
        self.0.name_len == other.0.name_len && self.0.text == other.0.text
    }

    /// True when only the interner still holds the pair.
    fn unused(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

/// The shared pair for `name="value"`, made on first use.
pub fn intern(name: &str, value: &str) -> Pair {
    let hash = pair_hash(name, value);
    // Middle bits: hashbrown takes a bucket from the low bits and its tag
    // from the top seven, which must still vary within a shard.
    let shard = &interner().shards[(hash >> 32) as usize % SHARDS];
    let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
    let found = shard.pairs.find(hash, |p| {
        p.0.hash == hash && p.name() == name && p.value() == value
    });
    if let Some(pair) = found {
        return pair.clone();
    }
    if shard.pairs.len() >= shard.sweep_at {
        shard.pairs.retain(|p| !p.unused());
        shard.sweep_at = (2 * shard.pairs.len()).max(MIN_SWEEP);
    }
    let pair = Pair(Arc::new(PairData {
        hash,
        name_len: name.len(),
        text: format!("{name}{value}").into_boxed_str(),
        packed: pack(name, value),
    }));
    shard.pairs.insert_unique(hash, pair.clone(), |p| p.0.hash);
    pair
}

/// Pairs named `name` the interner holds now (live ones and those not yet
/// swept).
#[cfg(test)]
fn interned(name: &str) -> usize {
    interner()
        .shards
        .iter()
        .map(|s| {
            let shard = s.lock().unwrap_or_else(PoisonError::into_inner);
            shard.pairs.iter().filter(|p| p.name() == name).count()
        })
        .sum()
}

struct Interner {
    shards: [Mutex<Shard>; SHARDS],
}

struct Shard {
    pairs: HashTable<Pair>,
    /// Sweep before growing past this many pairs.
    sweep_at: usize,
}

fn interner() -> &'static Interner {
    static INTERNER: OnceLock<Interner> = OnceLock::new();
    INTERNER.get_or_init(|| Interner {
        shards: std::array::from_fn(|_| {
            Mutex::new(Shard {
                pairs: HashTable::new(),
                sweep_at: MIN_SWEEP,
            })
        }),
    })
}

fn pair_hash(name: &str, value: &str) -> u64 {
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(name.as_bytes());
    h.write_u8(0xff);
    h.write(value.as_bytes());
    h.finish()
}

/// The `Label` message of one pair as repeated field 1.
fn pack(name: &str, value: &str) -> Box<[u8]> {
    let field = |s: &str| 1 + encoded_len_varint(s.len() as u64) + s.len();
    let inner = field(name) + field(value);
    let mut out = Vec::with_capacity(1 + encoded_len_varint(inner as u64) + inner);
    out.push(TAG_ONE);
    encode_varint(inner as u64, &mut out);
    out.push(TAG_ONE);
    encode_varint(name.len() as u64, &mut out);
    out.extend_from_slice(name.as_bytes());
    out.push(TAG_TWO);
    encode_varint(value.len() as u64, &mut out);
    out.extend_from_slice(value.as_bytes());
    out.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_pairs_are_one_allocation() {
        let a = intern("intern_test_job", "api");
        let b = intern("intern_test_job", "api");
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!((a.name(), a.value()), ("intern_test_job", "api"));
        // Name and value boundaries matter, not just the joined text.
        let c = intern("intern_test_joba", "pi");
        assert!(!a.same(&c));
    }

    #[test]
    fn pairs_nobody_holds_are_swept() {
        // Churn far past the sweep threshold: what the interner keeps stays
        // bounded by what is live, not by what was ever seen.
        let live: Vec<Pair> = (0..10)
            .map(|i| intern("intern_sweep_live", &i.to_string()))
            .collect();
        let churned = 50 * MIN_SWEEP * SHARDS;
        for i in 0..churned {
            drop(intern("intern_sweep_churn", &i.to_string()));
        }
        // A shard keeps at most what it gained since its last sweep, and
        // sweeps when it has doubled (other tests intern concurrently, so
        // the bound is loose).
        let kept = interned("intern_sweep_churn");
        assert!(
            kept <= churned / 4,
            "{kept} of {churned} churned pairs kept"
        );
        assert_eq!(interned("intern_sweep_live"), 10);
        for (i, p) in live.iter().enumerate() {
            assert!(intern("intern_sweep_live", &i.to_string()).same(p));
            assert!(Arc::ptr_eq(
                &intern("intern_sweep_live", &i.to_string()).0,
                &p.0
            ));
        }
    }
}
