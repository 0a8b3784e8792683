//! The dedupe index: the offset of each (tenant, event_id) in the retained
//! segments, keyed by a 64-bit hash of the pair.
//!
//! The index stores no strings, so it takes about 20 bytes per event and
//! appending needs no key allocations. Two different pairs can share a hash,
//! so a hash match is only a candidate: the caller checks the stored record's
//! tenant and event_id before it treats an event as a duplicate.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// The dedupe index. Hashes are seeded per process, so a producer cannot
/// choose event ids that collide on purpose.
pub(crate) struct IdIndex {
    seed: foldhash::fast::RandomState,
    /// Hash to the offset of the first retained pair with that hash.
    first: HashMap<u64, u64, BuildHasherDefault<PassThroughHasher>>,
    /// Hash to the offsets of further pairs with the same hash.
    colliding: HashMap<u64, Vec<u64>>,
}

impl IdIndex {
    pub fn new() -> Self {
        IdIndex {
            seed: foldhash::fast::RandomState::default(),
            first: HashMap::default(),
            colliding: HashMap::new(),
        }
    }

    /// Returns the hash that keys (tenant, event_id).
    pub fn hash(&self, tenant: &str, event_id: &str) -> u64 {
        self.seed.hash_one((tenant, event_id))
    }

    /// Returns the offset of the pair with `hash` for which `is_match`
    /// returns true, or `None`. `is_match` is called with each candidate
    /// offset and checks the stored record's tenant and event_id.
    pub fn find<E>(
        &self,
        hash: u64,
        mut is_match: impl FnMut(u64) -> Result<bool, E>,
    ) -> Result<Option<u64>, E> {
        let Some(&offset) = self.first.get(&hash) else {
            return Ok(None);
        };
        if is_match(offset)? {
            return Ok(Some(offset));
        }
        for &offset in self.colliding.get(&hash).into_iter().flatten() {
            if is_match(offset)? {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// Returns the offset of the pair with `hash` for which `is_match`
    /// returns true, like [`IdIndex::find`]. When there is none, adds the
    /// pair at `offset` and returns `None`. One hash-table probe serves both
    /// steps when the hash is new, the common case.
    pub fn find_or_insert<E>(
        &mut self,
        hash: u64,
        offset: u64,
        mut is_match: impl FnMut(u64) -> Result<bool, E>,
    ) -> Result<Option<u64>, E> {
        let first = match self.first.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(offset);
                return Ok(None);
            }
            Entry::Occupied(slot) => *slot.get(),
        };
        if is_match(first)? {
            return Ok(Some(first));
        }
        let colliding = self.colliding.entry(hash).or_default();
        for &candidate in colliding.iter() {
            if is_match(candidate)? {
                return Ok(Some(candidate));
            }
        }
        colliding.push(offset);
        Ok(None)
    }

    /// Adds every pair of `other`, none of which may be in `self` already.
    /// Both indexes must have been given hashes from the same seed.
    pub fn merge(&mut self, other: IdIndex) {
        self.first.reserve(other.first.len());
        for (hash, offset) in other.first {
            self.insert(hash, offset);
        }
        for (hash, offsets) in other.colliding {
            for offset in offsets {
                self.insert(hash, offset);
            }
        }
    }

    /// Adds a pair that [`IdIndex::find`] did not find.
    pub fn insert(&mut self, hash: u64, offset: u64) {
        if let Some(&existing) = self.first.get(&hash) {
            if existing != offset {
                self.colliding.entry(hash).or_default().push(offset);
            }
        } else {
            self.first.insert(hash, offset);
        }
    }

    /// Replaces the offset `old` of an indexed pair with `new`.
    pub fn replace(&mut self, hash: u64, old: u64, new: u64) {
        if let Some(offset) = self.first.get_mut(&hash)
            && *offset == old
        {
            *offset = new;
            return;
        }
        for offset in self.colliding.get_mut(&hash).into_iter().flatten() {
            if *offset == old {
                *offset = new;
            }
        }
    }

    /// Keeps only the pairs for which `keep` returns true for the offset.
    pub fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.first.retain(|_, offset| keep(*offset));
        self.colliding.retain(|hash, offsets| {
            offsets.retain(|offset| keep(*offset));
            // A colliding pair whose first pair is gone takes its place, so
            // `find` reaches it through `first`.
            if !offsets.is_empty() && !self.first.contains_key(hash) {
                self.first.insert(*hash, offsets.remove(0));
            }
            !offsets.is_empty()
        });
    }

    /// Returns the number of indexed pairs.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.first.len() + self.colliding.values().map(Vec::len).sum::<usize>()
    }
}

/// A hasher for keys that are already well-mixed 64-bit hashes.
#[derive(Default)]
pub(crate) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `HashMap<u64, _>`; this fallback keeps
        // the hasher correct for other key types.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys by offset, standing in for the records on disk.
    fn key_is(keys: &[(&str, &str)], tenant: &str, id: &str) -> impl Fn(u64) -> Result<bool, ()> {
        let keys: Vec<(String, String)> = keys
            .iter()
            .map(|(t, i)| (t.to_string(), i.to_string()))
            .collect();
        let (tenant, id) = (tenant.to_string(), id.to_string());
        move |offset| Ok(keys[offset as usize] == (tenant.clone(), id.clone()))
    }

    #[test]
    fn find_returns_inserted_offset() {
        let keys = [("acme", "e0"), ("acme", "e1")];
        let mut index = IdIndex::new();
        for (offset, (tenant, id)) in keys.iter().enumerate() {
            index.insert(index.hash(tenant, id), offset as u64);
        }
        let hash = index.hash("acme", "e1");
        assert_eq!(index.find(hash, key_is(&keys, "acme", "e1")), Ok(Some(1)));
        let hash = index.hash("other", "e1");
        assert_eq!(index.find(hash, key_is(&keys, "other", "e1")), Ok(None));
    }

    #[test]
    fn colliding_pairs_are_told_apart() {
        // Three pairs forced onto one hash, as a real collision would be.
        let keys = [("acme", "a"), ("acme", "b"), ("beta", "a")];
        let mut index = IdIndex::new();
        let hash = 42;
        for offset in 0..3 {
            index.insert(hash, offset);
        }
        assert_eq!(index.len(), 3);
        for (offset, (tenant, id)) in keys.iter().enumerate() {
            assert_eq!(
                index.find(hash, key_is(&keys, tenant, id)),
                Ok(Some(offset as u64)),
                "{tenant}/{id}"
            );
        }
        assert_eq!(index.find(hash, key_is(&keys, "acme", "c")), Ok(None));
    }

    #[test]
    fn find_or_insert_adds_only_new_pairs() {
        let keys = [("acme", "a"), ("acme", "b"), ("acme", "a")];
        let mut index = IdIndex::new();
        assert_eq!(
            index.find_or_insert(7, 0, key_is(&keys, "acme", "a")),
            Ok(None)
        );
        // Same hash, different pair: a collision, so it is added.
        assert_eq!(
            index.find_or_insert(7, 1, key_is(&keys, "acme", "b")),
            Ok(None)
        );
        // The first pair again: found, not added.
        assert_eq!(
            index.find_or_insert(7, 2, key_is(&keys, "acme", "a")),
            Ok(Some(0))
        );
        assert_eq!(
            index.find_or_insert(7, 2, key_is(&keys, "acme", "b")),
            Ok(Some(1))
        );
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn merge_keeps_colliding_pairs_apart() {
        let keys = [("acme", "a"), ("acme", "b"), ("beta", "a"), ("acme", "c")];
        let mut index = IdIndex::new();
        index.insert(7, 0);
        let mut batch = IdIndex::new();
        batch.insert(7, 1);
        batch.insert(7, 2);
        batch.insert(9, 3);
        index.merge(batch);

        assert_eq!(index.len(), 4);
        for (offset, (tenant, id)) in keys.iter().enumerate().take(3) {
            assert_eq!(
                index.find(7, key_is(&keys, tenant, id)),
                Ok(Some(offset as u64)),
                "{tenant}/{id}"
            );
        }
        assert_eq!(index.find(9, key_is(&keys, "acme", "c")), Ok(Some(3)));
    }

    #[test]
    fn retain_promotes_colliding_pair() {
        let keys = [("acme", "a"), ("acme", "b"), ("beta", "a")];
        let mut index = IdIndex::new();
        for offset in 0..3 {
            index.insert(7, offset);
        }
        index.retain(|offset| offset >= 1);
        assert_eq!(index.len(), 2);
        assert_eq!(index.find(7, key_is(&keys, "acme", "a")), Ok(None));
        assert_eq!(index.find(7, key_is(&keys, "acme", "b")), Ok(Some(1)));
        assert_eq!(index.find(7, key_is(&keys, "beta", "a")), Ok(Some(2)));
    }

    #[test]
    fn replace_moves_a_pair() {
        let keys = [("acme", "a"), ("acme", "b"), ("acme", "a")];
        let mut index = IdIndex::new();
        index.insert(7, 0);
        index.insert(7, 1);
        index.replace(7, 0, 2);
        assert_eq!(index.find(7, key_is(&keys, "acme", "a")), Ok(Some(2)));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn hash_separates_tenant_from_id() {
        let index = IdIndex::new();
        assert_ne!(index.hash("ab", "c"), index.hash("a", "bc"));
    }
}
