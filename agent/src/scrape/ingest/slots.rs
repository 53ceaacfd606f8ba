//! Storage of the per-target series cache, kept in the order of the body.
//!
//! Exporters write their series in the same order on every scrape, so the
//! cache keeps its entries in the order of the last successful scrape and
//! first compares a series with the entry where it is expected: the parser
//! hashes the span of the body where that entry's text would be, and the
//! slots are read front to back. Only a series out of place (or new) goes
//! through the hash index; the entries are then put in the new order at the
//! end of the scrape, and the index rebuilt.

use hashbrown::HashTable;

use crate::scrape::parse::SeriesKey;

struct Slot<E> {
    key: SeriesKey,
    entry: E,
}

/// Entries keyed by the series' text in the body ([`SeriesKey`]).
pub(super) struct Slots<E> {
    /// In the body order of the last successful scrape, then new entries.
    slots: Vec<Slot<E>>,
    /// Slot numbers by key (4 bytes a series: the keys live in the slots).
    index: HashTable<u32>,
    /// Where the next series of this scrape is expected.
    cursor: usize,
    /// Slots in this scrape's body order (first sighting only).
    order: Vec<u32>,
    /// True while this scrape met every series exactly where expected.
    in_place: bool,
}

impl<E> Default for Slots<E> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            index: HashTable::new(),
            cursor: 0,
            order: Vec::new(),
            in_place: true,
        }
    }
}

impl<E> Slots<E> {
    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The key expected next in this scrape.
    pub(super) fn expected(&self) -> Option<SeriesKey> {
        self.slots.get(self.cursor).map(|s| s.key)
    }

    /// The entry of `key`. `first_sighting` tells whether this is the first
    /// time the scrape meets it (duplicates do not change the order).
    pub(super) fn get_mut(
        &mut self,
        key: SeriesKey,
        first_sighting: impl Fn(&E) -> bool,
    ) -> Option<&mut E> {
        let i = match self.slots.get(self.cursor) {
            Some(s) if s.key == key => self.cursor,
            _ => {
                self.in_place = false;
                self.find(key)?
            }
        };
        if first_sighting(&self.slots[i].entry) {
            self.order.push(u32::try_from(i).unwrap_or(u32::MAX));
        }
        self.cursor = i + 1;
        Some(&mut self.slots[i].entry)
    }

    fn find(&self, key: SeriesKey) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(key.short_hash(), |&i| {
                slots.get(i as usize).is_some_and(|s| s.key == key)
            })
            .map(|&i| i as usize)
    }

    /// Adds an entry for a `key` that [`Self::get_mut`] did not find.
    pub(super) fn insert(&mut self, key: SeriesKey, entry: E) {
        self.in_place = false;
        let i = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot { key, entry });
        self.order.push(i);
        let slots = &self.slots;
        self.index
            .insert_unique(key.short_hash(), i, |&j| rehash(slots, j));
    }

    /// Ends a scrape: entries for which `keep` is false are removed (it is
    /// called once for each entry the scrape did not meet), the rest are put
    /// in this scrape's order.
    pub(super) fn finish(&mut self, mut keep: impl FnMut(&E) -> bool) {
        let order = std::mem::take(&mut self.order);
        self.cursor = 0;
        let all_in_place = std::mem::replace(&mut self.in_place, true);
        if all_in_place && order.len() == self.slots.len() {
            // Every entry met exactly where expected: nothing moves.
            self.order = order;
            self.order.clear();
            return;
        }
        let mut old: Vec<Option<Slot<E>>> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(Some)
            .collect();
        let mut slots = Vec::with_capacity(old.len());
        for &i in &order {
            if let Some(s) = old.get_mut(i as usize).and_then(Option::take) {
                slots.push(s);
            }
        }
        slots.extend(old.into_iter().flatten().filter(|s| keep(&s.entry)));
        self.slots = slots;
        self.reindex();
        self.order = order;
        self.order.clear();
    }

    /// Removes every entry, handing each to `f`.
    pub(super) fn drain(&mut self, f: impl FnMut(E)) {
        self.slots.drain(..).map(|s| s.entry).for_each(f);
        self.index.clear();
        self.order.clear();
        self.cursor = 0;
        self.in_place = true;
    }

    /// Removes the entries for which `keep` is false (no order change).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        self.slots.retain(|s| keep(&s.entry));
        self.reindex();
        self.order.clear();
        self.cursor = 0;
        self.in_place = true;
    }

    fn reindex(&mut self) {
        let slots = &self.slots;
        self.index.clear();
        self.index.reserve(slots.len(), |&j| rehash(slots, j));
        for (i, s) in slots.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            self.index
                .insert_unique(s.key.short_hash(), i, |&j| rehash(slots, j));
        }
    }
}

/// The hash of slot `i`'s key, for the index to grow.
fn rehash<E>(slots: &[Slot<E>], i: u32) -> u64 {
    slots.get(i as usize).map_or(0, |s| s.key.short_hash())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SeriesKey {
        SeriesKey::of(text.as_bytes())
    }

    /// Looks up (or inserts) `keys` in body order, as a scrape does.
    fn meet(slots: &mut Slots<(String, u64)>, generation: u64, keys: &[&str]) {
        for k in keys {
            match slots.get_mut(key(k), |e| e.1 != generation) {
                Some(e) => e.1 = generation,
                None => slots.insert(key(k), ((*k).to_owned(), generation)),
            }
        }
    }

    /// One whole scrape.
    fn scrape(slots: &mut Slots<(String, u64)>, generation: u64, keys: &[&str]) {
        meet(slots, generation, keys);
        slots.finish(|e| e.1 == generation);
    }

    fn keys(slots: &Slots<(String, u64)>) -> Vec<&str> {
        slots.slots.iter().map(|s| s.entry.0.as_str()).collect()
    }

    #[test]
    fn entries_follow_the_body_order_and_vanished_ones_go() {
        let mut s = Slots::default();
        scrape(&mut s, 1, &["a", "b", "c"]);
        assert_eq!(keys(&s), ["a", "b", "c"]);
        // Same order: every series found where expected.
        meet(&mut s, 2, &["a", "b", "c"]);
        assert!(s.in_place);
        s.finish(|_| unreachable!("all were met"));
        assert_eq!(keys(&s), ["a", "b", "c"]);
        // One missing: found out of place, so the order is rebuilt.
        meet(&mut s, 3, &["a", "c"]);
        assert!(!s.in_place);
        s.finish(|e| e.1 == 3);
        assert_eq!(keys(&s), ["a", "c"]);
        scrape(&mut s, 4, &["a", "b", "c"]);
        // Reordered, one new, one gone.
        scrape(&mut s, 5, &["c", "d", "a"]);
        assert_eq!(keys(&s), ["c", "d", "a"]);
        for k in ["a", "c", "d"] {
            assert!(s.find(key(k)).is_some(), "{k} indexed");
        }
        assert!(s.find(key("b")).is_none());
    }

    #[test]
    fn keep_decides_for_unmet_entries_only_once() {
        let mut s: Slots<(String, u64)> = Slots::default();
        scrape(&mut s, 1, &["a", "b"]);
        let mut asked = Vec::new();
        assert!(s.get_mut(key("b"), |_| true).is_some());
        s.finish(|e| {
            asked.push(e.0.clone());
            true
        });
        assert_eq!(asked, ["a"]);
        assert_eq!(keys(&s), ["b", "a"]);
    }

    #[test]
    fn colliding_hashes_still_find_their_own_entry() {
        let mut s: Slots<u8> = Slots::default();
        // Three keys with the same short hash.
        let [x, y, z] = [1, 2, 3].map(|h| SeriesKey::with_hash([7, h], 1));
        s.insert(x, 1);
        s.insert(y, 2);
        assert_eq!(s.find(x), Some(0));
        assert_eq!(s.find(y), Some(1));
        assert_eq!(s.find(z), None);
        // Rebuilt indexes keep both.
        s.reindex();
        assert_eq!(s.find(y), Some(1));
    }

    #[test]
    fn duplicates_do_not_disturb_the_order() {
        let mut s = Slots::default();
        scrape(&mut s, 1, &["a", "b"]);
        scrape(&mut s, 2, &["a", "a", "b"]);
        assert_eq!(keys(&s), ["a", "b"]);
        let mut drained = Vec::new();
        s.drain(|e| drained.push(e.0));
        assert_eq!(drained, ["a", "b"]);
        assert_eq!(s.len(), 0);
    }
}
