//! A map for snapshots that change one entry at a time: a large shared base and a small layer
//! of recent changes on top. Cloning costs two reference counts; a change copies only the small
//! layer, and the layer is folded into a new base once it grows past a fraction of the base, so a
//! change costs amortised O(1) copies however large the map. Lookups stay plain `HashMap`
//! lookups (the layer is skipped while it is empty, which it is after every fold).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// Fold the layer into the base once it holds this many entries, or twice the square root of
/// the base's size: a change then copies O(√n) layer entries and, amortised, O(√n) base entries
/// (a million entries: a layer of 2,000, folded every 2,000 changes).
const MIN_FOLD: usize = 256;

/// How many changes a layer on top of a base of `base` entries holds before it is folded in.
pub fn fold_at(base: usize) -> usize {
    MIN_FOLD.max(2 * base.isqrt())
}

/// A map of a shared base and a layer of changes (`None` marks a removal).
#[derive(Debug)]
pub struct Layered<K, V> {
    base: Arc<HashMap<K, V>>,
    top: Arc<HashMap<K, Option<V>>>,
}

impl<K, V> Clone for Layered<K, V> {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            top: self.top.clone(),
        }
    }
}

impl<K, V> Default for Layered<K, V> {
    fn default() -> Self {
        Self {
            base: Arc::new(HashMap::new()),
            top: Arc::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Layered<K, V> {
    /// A map with `base` as its contents.
    pub fn new(base: HashMap<K, V>) -> Self {
        Self {
            base: Arc::new(base),
            top: Arc::new(HashMap::new()),
        }
    }

    /// The value for `key`.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.top.is_empty()
            && let Some(changed) = self.top.get(key)
        {
            return changed.as_ref();
        }
        self.base.get(key)
    }

    /// A copy with `changes` applied (`None` removes the key).
    pub fn with(&self, changes: impl IntoIterator<Item = (K, Option<V>)>) -> Self {
        let mut top = (*self.top).clone();
        top.extend(changes);
        if top.len() >= fold_at(self.base.len()) {
            let mut base = (*self.base).clone();
            for (k, v) in top {
                match v {
                    Some(v) => base.insert(k, v),
                    None => base.remove(&k),
                };
            }
            return Self::new(base);
        }
        Self {
            base: self.base.clone(),
            top: Arc::new(top),
        }
    }

    /// Starts a batch of changes that reads its own writes; [`Edit::finish`] makes the new map.
    pub fn edit(&self) -> Edit<'_, K, V> {
        Edit {
            map: self,
            changes: HashMap::new(),
        }
    }

    /// Every entry (the layer's changes applied), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let top = &self.top;
        self.base
            .iter()
            .filter(move |(k, _)| !top.contains_key(*k))
            .chain(top.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v))))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Changes to a [`Layered`] map being collected: reads see them before they are applied.
pub struct Edit<'a, K, V> {
    map: &'a Layered<K, V>,
    changes: HashMap<K, Option<V>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Edit<'_, K, V> {
    /// The value for `key`, with the changes so far.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.changes.get(key) {
            Some(changed) => changed.as_ref(),
            None => self.map.get(key),
        }
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: K, value: V) {
        self.changes.insert(key, Some(value));
    }

    /// Removes `key`; answers with the value it had.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let old = self.get(key).cloned();
        if old.is_some() {
            self.changes.insert(key.clone(), None);
        }
        old
    }

    /// The map with the changes applied.
    pub fn finish(self) -> Layered<K, V> {
        if self.changes.is_empty() {
            return self.map.clone();
        }
        self.map.with(self.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_show_through_and_fold_into_the_base() {
        let mut m = Layered::new((0..10u32).map(|i| (i, i * 10)).collect());
        let old = m.clone();
        m = m.with([(3, Some(33)), (4, None), (100, Some(1000))]);
        assert_eq!(m.get(&3), Some(&33));
        assert_eq!(m.get(&4), None);
        assert_eq!(m.get(&100), Some(&1000));
        assert_eq!(m.get(&5), Some(&50));
        assert_eq!(m.len(), 10);
        // The old snapshot is untouched.
        assert_eq!(old.get(&3), Some(&30));
        assert_eq!(old.get(&4), Some(&40));
        // Many changes fold into a new base with the same contents.
        for i in 0..2000u32 {
            m = m.with([(1000 + i, Some(i))]);
        }
        assert!(m.top.len() < fold_at(m.base.len()), "folded");
        assert_eq!(m.get(&1999), Some(&999));
        assert_eq!(m.get(&3), Some(&33));
        assert_eq!(m.get(&4), None);
        assert_eq!(m.len(), 10 + 2000);
        m = m.with([(1999, None)]);
        assert_eq!(m.get(&1999), None);
        assert_eq!(m.len(), 10 + 1999);
        // An edit reads its own changes and leaves the map alone until it finishes.
        let mut e = m.edit();
        assert_eq!(e.remove(&3), Some(33));
        assert_eq!(e.get(&3), None);
        e.insert(5, 55);
        assert_eq!(e.get(&5), Some(&55));
        assert_eq!(e.remove(&424_242), None);
        let n = e.finish();
        assert_eq!((n.get(&3), n.get(&5), m.get(&3)), (None, Some(&55), Some(&33)));
    }
}
