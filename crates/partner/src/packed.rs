//! String → string maps packed into three allocations, for directories of millions of entries.
//!
//! A [`Packed`] map keeps every key and value back to back in one string, one `(start, split)`
//! pair per entry and a hash index of entry numbers: about 2 × 4 bytes of index and 8 bytes of
//! entry besides the text itself, against two reference-counted allocations and a 32-byte slot
//! per entry in a `HashMap<Arc<str>, Arc<str>>`. It is built once and then read; changes go to
//! [`PackedLayered`], which keeps them in a small layer on top of a shared base (as
//! [`postern_core::layered::Layered`] does) and folds them into a copy of the base now and then.
//! The copy is flat (`memcpy` of the text, the entries and the index); replaced and removed
//! entries stay in the text as garbage until a fold finds more garbage than live entries and
//! packs the map anew.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::DefaultHashBuilder;
use hashbrown::hash_table::{Entry, HashTable};
use postern_core::layered::fold_at;

/// The map's text would pass 4 GiB (positions are 32-bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// An immutable-once-built map from strings to strings.
#[derive(Clone, Default)]
pub struct Packed {
    /// Keys and values, entry after entry.
    text: String,
    /// Per entry: where its key starts and where its value starts (it ends where the next entry
    /// starts, or at the end of the text).
    entries: Vec<[u32; 2]>,
    /// Live entries by the hash of their key.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// Entries no longer in the index (replaced or removed).
    dead: usize,
    /// Bytes of text those entries hold.
    dead_bytes: usize,
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("len", &self.len())
            .field("dead", &self.dead)
            .field("dead_bytes", &self.dead_bytes)
            .field("text_bytes", &self.text.len())
            .finish()
    }
}

impl Packed {
    fn span(&self, i: u32) -> (usize, usize, usize) {
        span(&self.text, &self.entries, i)
    }

    fn key(&self, i: u32) -> &str {
        let (start, split, _) = self.span(i);
        &self.text[start..split]
    }

    fn value(&self, i: u32) -> &str {
        let (_, split, end) = self.span(i);
        &self.text[split..end]
    }

    /// The value for `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&str> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&i| self.key(i) == key)
            .map(|&i| self.value(i))
    }

    /// Sets `key` to `value` (replacing what it had).
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), Full> {
        let start = self.text.len();
        let fits = |n: usize| u32::try_from(n).is_ok();
        if !fits(start + key.len() + value.len()) || !fits(self.entries.len() + 1) {
            return Err(Full);
        }
        // Both conversions were checked just above.
        let (at, split, new) = (
            start as u32,
            (start + key.len()) as u32,
            self.entries.len() as u32,
        );
        let hash = self.hasher.hash_one(key);
        let Self {
            text,
            entries,
            index,
            hasher,
            dead,
            dead_bytes,
        } = self;
        let (text_ref, entries_ref) = (&*text, &*entries);
        let key_of = |i: u32| {
            let (s, k, _) = span(text_ref, entries_ref, i);
            &text_ref[s..k]
        };
        match index.entry(hash, |&i| key_of(i) == key, |&i| hasher.hash_one(key_of(i))) {
            Entry::Occupied(mut o) => {
                let (s, _, e) = span(text_ref, entries_ref, *o.get());
                *o.get_mut() = new;
                *dead += 1;
                *dead_bytes += e - s;
            }
            Entry::Vacant(v) => {
                v.insert(new);
            }
        }
        text.push_str(key);
        text.push_str(value);
        entries.push([at, split]);
        Ok(())
    }

    /// Removes `key`; answers whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let hash = self.hasher.hash_one(key);
        let (text, entries) = (&self.text, &self.entries);
        match self.index.find_entry(hash, |&i| {
            let (s, k, _) = span(text, entries, i);
            &text[s..k] == key
        }) {
            Ok(o) => {
                let (old, _) = o.remove();
                let (s, _, e) = span(text, entries, old);
                self.dead += 1;
                self.dead_bytes += e - s;
                true
            }
            Err(_) => false,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.index.iter().map(|&i| (self.key(i), self.value(i)))
    }

    /// The same entries without the garbage, in as little memory as they need.
    pub fn packed(&self) -> Packed {
        let mut out = Packed {
            text: String::with_capacity(self.iter().map(|(k, v)| k.len() + v.len()).sum()),
            entries: Vec::with_capacity(self.len()),
            index: HashTable::with_capacity(self.len()),
            hasher: self.hasher.clone(),
            dead: 0,
            dead_bytes: 0,
        };
        for (k, v) in self.iter() {
            // The live text is a part of this map's text, which fits.
            let _ = out.insert(k, v);
        }
        out
    }

    /// Whether replaced and removed entries outweigh the live ones, in number or in text (a few
    /// long values replaced again and again weigh more than their count).
    fn mostly_garbage(&self) -> bool {
        self.dead > self.len() || 2 * self.dead_bytes > self.text.len()
    }

    /// Gives back the memory that growing left over.
    pub fn shrink(&mut self) {
        if self.mostly_garbage() {
            *self = self.packed();
            return;
        }
        self.text.shrink_to_fit();
        self.entries.shrink_to_fit();
        let (text, entries, hasher) = (&self.text, &self.entries, &self.hasher);
        self.index.shrink_to_fit(|&i| {
            let (s, k, _) = span(text, entries, i);
            hasher.hash_one(&text[s..k])
        });
    }
}

/// Entry `i`'s key start, value start and end in `text`.
#[inline]
fn span(text: &str, entries: &[[u32; 2]], i: u32) -> (usize, usize, usize) {
    let i = i as usize;
    let [start, split] = entries[i];
    let end = entries.get(i + 1).map_or(text.len(), |e| e[0] as usize);
    (start as usize, split as usize, end)
}

/// Changes on top of a [`Packed`] base: `None` marks a removal. Reference-counted, so that
/// copying the layer for the next snapshot copies no text.
type Layer = HashMap<Arc<str>, Option<Arc<str>>>;

/// A [`Packed`] base shared between snapshots and a small layer of changes on top. Cloning costs
/// two reference counts; a change copies the layer, and the layer is folded into a copy of the
/// base once it reaches [`fold_at`] entries.
#[derive(Clone, Debug, Default)]
pub struct PackedLayered {
    base: Arc<Packed>,
    top: Arc<Layer>,
}

impl PackedLayered {
    /// A map with `base` as its contents.
    pub fn new(mut base: Packed) -> Self {
        base.shrink();
        Self {
            base: Arc::new(base),
            top: Arc::default(),
        }
    }

    /// The value for `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&str> {
        if !self.top.is_empty()
            && let Some(changed) = self.top.get(key)
        {
            return changed.as_deref();
        }
        self.base.get(key)
    }

    /// A copy with `changes` applied.
    fn with(&self, changes: Layer) -> Self {
        let mut top = (*self.top).clone();
        top.extend(changes);
        // When the text would pass 4 GiB even packed, the changes stay in the layer.
        if top.len() >= fold_at(self.base.len())
            && let Some(base) = fold(&self.base, &top)
        {
            return Self {
                base: Arc::new(base),
                top: Arc::default(),
            };
        }
        Self {
            base: self.base.clone(),
            top: Arc::new(top),
        }
    }

    /// Starts a batch of changes that reads its own writes; [`PackedEdit::finish`] makes the
    /// new map.
    pub fn edit(&self) -> PackedEdit<'_> {
        PackedEdit {
            map: self,
            changes: Layer::new(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        let mut n = self.base.len();
        for (k, v) in self.top.iter() {
            match (self.base.get(k).is_some(), v.is_some()) {
                (false, true) => n += 1,
                (true, false) => n -= 1,
                _ => {}
            }
        }
        n
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `base` with `top` applied; packed anew when garbage would outweigh the live entries.
fn fold(base: &Packed, top: &Layer) -> Option<Packed> {
    let apply = |mut b: Packed| -> Result<Packed, Full> {
        for (k, v) in top {
            match v {
                Some(v) => b.insert(k, v)?,
                None => {
                    b.remove(k);
                }
            }
        }
        Ok(b)
    };
    let copy = if base.mostly_garbage() || base.dead + top.len() > base.len() {
        base.packed()
    } else {
        base.clone()
    };
    let mut out = match apply(copy) {
        Ok(b) => b,
        Err(Full) => apply(base.packed()).ok()?,
    };
    if out.mostly_garbage() {
        out = out.packed();
    }
    Some(out)
}

/// Changes to a [`PackedLayered`] map being collected: reads see them before they are applied.
pub struct PackedEdit<'a> {
    map: &'a PackedLayered,
    changes: Layer,
}

impl PackedEdit<'_> {
    /// The value for `key`, with the changes so far.
    pub fn get(&self, key: &str) -> Option<&str> {
        match self.changes.get(key) {
            Some(changed) => changed.as_deref(),
            None => self.map.get(key),
        }
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: &str, value: &str) {
        self.changes.insert(key.into(), Some(value.into()));
    }

    /// Removes `key`; answers with the value it had.
    pub fn remove(&mut self, key: &str) -> Option<Arc<str>> {
        let old: Option<Arc<str>> = self.get(key).map(Arc::from);
        if old.is_some() {
            self.changes.insert(key.into(), None);
        }
        old
    }

    /// The map with the changes applied.
    pub fn finish(self) -> PackedLayered {
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
    fn inserts_replace_and_removals_hide() {
        let mut p = Packed::default();
        assert_eq!(p.get(""), None);
        p.insert("a", "1").expect("fits");
        p.insert("", "empty key").expect("fits");
        p.insert("bb", "").expect("fits");
        p.insert("a", "2").expect("fits");
        assert_eq!(
            (p.get("a"), p.get(""), p.get("bb"), p.get("b")),
            (Some("2"), Some("empty key"), Some(""), None)
        );
        assert_eq!((p.len(), p.dead), (3, 1));
        assert!(p.remove("bb"));
        assert!(!p.remove("bb"));
        assert_eq!((p.get("bb"), p.len(), p.dead), (None, 2, 2));
        let mut all: Vec<_> = p.iter().collect();
        all.sort();
        assert_eq!(all, [("", "empty key"), ("a", "2")]);
        let q = p.packed();
        assert_eq!((q.len(), q.dead, q.text.len()), (2, 0, "empty keya2".len()));
        assert_eq!((q.get("a"), q.get("")), (Some("2"), Some("empty key")));
        // Keys and values are not confused where they meet in the text ("ab" + "c" vs "a" + "bc").
        let mut r = Packed::default();
        r.insert("ab", "c").expect("fits");
        r.insert("a", "bc").expect("fits");
        assert_eq!(
            (r.get("ab"), r.get("a"), r.get("abc")),
            (Some("c"), Some("bc"), None)
        );
    }

    #[test]
    fn layered_changes_show_through_fold_and_leave_old_copies_alone() {
        let mut base = Packed::default();
        for i in 0..1000 {
            base.insert(&format!("k{i}"), &format!("v{i}")).expect("fits");
        }
        let mut m = PackedLayered::new(base);
        let old = m.clone();
        let mut e = m.edit();
        assert_eq!(e.remove("k3").as_deref(), Some("v3"));
        assert_eq!(e.remove("nope"), None);
        e.insert("k4", "four");
        e.insert("new", "x");
        assert_eq!((e.get("k3"), e.get("k4")), (None, Some("four")));
        m = e.finish();
        assert_eq!(
            (m.get("k3"), m.get("k4"), m.get("new"), m.get("k5")),
            (None, Some("four"), Some("x"), Some("v5"))
        );
        assert_eq!(m.len(), 1000);
        assert_eq!(
            (old.get("k3"), old.get("k4"), old.get("new")),
            (Some("v3"), Some("v4"), None)
        );
        // Enough single changes fold the layer into the base, again and again (replacing the
        // same keys makes garbage, which a fold packs away once it outweighs the live entries).
        for round in 0..20 {
            for i in 0..500 {
                let mut e = m.edit();
                e.insert(&format!("k{i}"), &format!("r{round}"));
                m = e.finish();
            }
        }
        assert!(m.top.len() < fold_at(m.base.len()), "folded");
        assert!(!Arc::ptr_eq(&m.base, &old.base), "a new base");
        assert_eq!(m.base.dead, m.base.entries.len() - m.base.len());
        assert_eq!(
            (m.get("k0"), m.get("k499"), m.get("k500")),
            (Some("r19"), Some("r19"), Some("v500"))
        );
        assert_eq!((m.get("k3"), m.get("new")), (Some("r19"), Some("x")));
        assert_eq!(m.len(), 1001);
        assert_eq!(old.get("k0"), Some("v0"));
        // Removing everything leaves an empty map.
        let mut e = m.edit();
        for i in 0..1000 {
            e.remove(&format!("k{i}"));
        }
        e.remove("new");
        m = e.finish();
        assert!(m.is_empty());
        assert_eq!(m.get("k10"), None);
    }

    #[test]
    fn long_values_replaced_again_and_again_are_packed_away() {
        let mut base = Packed::default();
        for i in 0..10_000 {
            base.insert(&format!("k{i}"), "v").expect("fits");
        }
        let mut m = PackedLayered::new(base);
        let mut packs = 0;
        let mut last_dead = 0;
        for round in 0..40u8 {
            // One long value and enough small changes to fold the layer every round.
            let mut e = m.edit();
            e.insert("big", &char::from(b'a' + round % 26).to_string().repeat(50_000));
            for i in 0..fold_at(m.len()) {
                e.insert(&format!("k{i}"), "w");
            }
            m = e.finish();
            assert!(m.top.is_empty(), "folded");
            let b = &m.base;
            assert_eq!(b.dead, b.entries.len() - b.len());
            let live: usize = b.iter().map(|(k, v)| k.len() + v.len()).sum();
            assert_eq!(b.text.len(), live + b.dead_bytes);
            assert!(b.dead_bytes <= live, "round {round}: {b:?}");
            if b.dead < last_dead {
                packs += 1;
            }
            last_dead = b.dead;
        }
        // Counted by entries alone, the first pack would come after ~39 rounds, with ~2 MB of
        // dead text by then; counted by bytes too, every few rounds.
        assert!(packs > 5, "the long values' garbage was packed away");
        assert_eq!(m.get("big").map(str::len), Some(50_000));
        assert_eq!(m.get("k0"), Some("w"));
        assert_eq!(m.len(), 10_001);
    }
}
