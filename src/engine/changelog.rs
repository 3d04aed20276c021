//! Incremental checkpoints: the engines' state as a small head plus keyed items (an alert,
//! an incident, a service's SLA state…), and the maps that remember which of their keys
//! changed since the last checkpoint ([`Tracked`]), so a batch writes the items it changed
//! and deletes the ones it removed — a changelog, as Kafka Streams' changelog topics and
//! Flink's incremental checkpoints — instead of the whole state.
//!
//! The tracking lives in the engines (pure, no I/O); the store only writes the rows a
//! [`Changes`] lists, in the batch's transaction.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One keyed item of an engine's state: its kind (`alert`, `incident`, `service`…), its key
/// (the map key's UTF-8 bytes) and its value (postcard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: String,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// What an engine's state changed since its last checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Every item is listed (a new engine, or one restored from a whole snapshot): the
    /// store first deletes what it held of this engine, so nothing stale survives.
    pub full: bool,
    /// The engine-global state (clocks, counters, buffers), rewritten every batch.
    pub head: Vec<u8>,
    /// Items added or changed, with their current value.
    pub upserts: Vec<Item>,
    /// Items removed: (kind, key).
    pub removed: Vec<(String, Vec<u8>)>,
}

impl Changes {
    /// Bytes the store writes for these changes (head, keys and values): the cost that
    /// must follow what changed, not the size of the state.
    pub fn bytes(&self) -> usize {
        let upserts: usize = self.upserts.iter().map(|i| i.key.len() + i.value.len()).sum();
        let removed: usize = self.removed.iter().map(|(_, k)| k.len()).sum();
        self.head.len() + upserts + removed
    }
}

/// A map that records the keys changed (inserted or mutably borrowed) and removed since
/// the last [`Tracked::take`]. Only shared access derefs to the map, so every mutation goes
/// through a method here and cannot escape the tracking. It serialises as the bare map: a
/// whole snapshot's bytes are as before.
#[derive(Debug, Clone)]
pub struct Tracked<M: Map> {
    map: M,
    changed: BTreeSet<M::Key>,
    removed: BTreeSet<M::Key>,
    /// Keys inserted since the last take that the store does not hold (absent then): one
    /// removed again before the next take needs no delete. Events held for reordering are
    /// mostly pushed and popped between two checkpoints on a busy partition.
    fresh: BTreeSet<M::Key>,
}

/// The map types [`Tracked`] wraps.
pub trait Map: Default {
    type Key: Ord + Clone + Hash + Eq;
    type Value;
    fn get_mut_<Q>(&mut self, key: &Q) -> Option<&mut Self::Value>
    where
        Self::Key: Borrow<Q>,
        Q: Ord + Hash + Eq + ?Sized;
    fn insert_(&mut self, key: Self::Key, value: Self::Value) -> Option<Self::Value>;
    fn remove_<Q>(&mut self, key: &Q) -> Option<Self::Value>
    where
        Self::Key: Borrow<Q>,
        Q: Ord + Hash + Eq + ?Sized;
    fn entry_<F: FnOnce() -> Self::Value>(&mut self, key: Self::Key, make: F) -> &mut Self::Value;
    fn keys_(&self) -> Vec<Self::Key>;
    fn get_(&self, key: &Self::Key) -> Option<&Self::Value>;
}

macro_rules! map_impl {
    ($map:ident) => {
        impl<K: Ord + Clone + Hash + Eq, V> Map for $map<K, V> {
            type Key = K;
            type Value = V;
            fn get_mut_<Q>(&mut self, key: &Q) -> Option<&mut V>
            where
                K: Borrow<Q>,
                Q: Ord + Hash + Eq + ?Sized,
            {
                self.get_mut(key)
            }
            fn insert_(&mut self, key: K, value: V) -> Option<V> {
                self.insert(key, value)
            }
            fn remove_<Q>(&mut self, key: &Q) -> Option<V>
            where
                K: Borrow<Q>,
                Q: Ord + Hash + Eq + ?Sized,
            {
                self.remove(key)
            }
            fn entry_<F: FnOnce() -> V>(&mut self, key: K, make: F) -> &mut V {
                self.entry(key).or_insert_with(make)
            }
            fn keys_(&self) -> Vec<K> {
                self.keys().cloned().collect()
            }
            fn get_(&self, key: &K) -> Option<&V> {
                self.get(key)
            }
        }
    };
}
map_impl!(BTreeMap);
map_impl!(HashMap);

/// By hand: a derived `Default` would require the key type to have one.
impl<M: Map> Default for Tracked<M> {
    fn default() -> Self {
        Tracked::from_map(M::default())
    }
}

impl<M: Map> std::ops::Deref for Tracked<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.map
    }
}

impl<M: Map> Tracked<M> {
    /// Marks `key` changed (no allocation when it already is: the storm path touches the
    /// same alert thousands of times a batch).
    fn mark<Q>(&mut self, key: &Q)
    where
        M::Key: Borrow<Q>,
        Q: Ord + ToOwned<Owned = M::Key> + ?Sized,
    {
        if !self.changed.contains(key) {
            self.changed.insert(key.to_owned());
        }
    }

    /// The value of `key`, for changing it: the key is marked changed when present.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut M::Value>
    where
        M::Key: Borrow<Q>,
        Q: Ord + Hash + Eq + ToOwned<Owned = M::Key> + ?Sized,
    {
        if self.map.get_mut_(key).is_some() {
            self.mark(key);
        }
        self.map.get_mut_(key)
    }

    /// The value of `key` for changing it *without* marking it: only for a change that a
    /// restore derives exactly (the caller says why).
    pub fn get_mut_untracked<Q>(&mut self, key: &Q) -> Option<&mut M::Value>
    where
        M::Key: Borrow<Q>,
        Q: Ord + Hash + Eq + ?Sized,
    {
        self.map.get_mut_(key)
    }

    /// Marks `key` changed, for a change made through [`Tracked::get_mut_untracked`] that
    /// turned out to be more than the derivable part.
    pub fn touch<Q>(&mut self, key: &Q)
    where
        M::Key: Borrow<Q>,
        Q: Ord + Hash + Eq + ToOwned<Owned = M::Key> + ?Sized,
    {
        if self.map.get_mut_(key).is_some() {
            self.mark(key);
        }
    }

    /// Marks `key`, about to be inserted, changed; and fresh when the store cannot hold it
    /// (absent from the map, and not removed since the last take).
    fn mark_inserted(&mut self, key: &M::Key) {
        if self.map.get_(key).is_none() && !self.removed.remove(key) {
            self.fresh.insert(key.clone());
        }
        if !self.changed.contains(key) {
            self.changed.insert(key.clone());
        }
    }

    /// Records `key` removed: a delete for the store unless it never held it.
    fn mark_removed(&mut self, key: M::Key) {
        self.changed.remove(&key);
        if !self.fresh.remove(&key) {
            self.removed.insert(key);
        }
    }

    /// Inserts (or replaces) `key`.
    pub fn insert(&mut self, key: M::Key, value: M::Value) -> Option<M::Value> {
        self.mark_inserted(&key);
        self.map.insert_(key, value)
    }

    /// Removes `key`.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<M::Value>
    where
        M::Key: Borrow<Q>,
        Q: Ord + Hash + Eq + ToOwned<Owned = M::Key> + ?Sized,
    {
        let value = self.map.remove_(key)?;
        self.mark_removed(key.to_owned());
        Some(value)
    }

    /// The value of `key`, created with `make` when absent; marked changed.
    pub fn entry_or_insert_with(&mut self, key: M::Key, make: impl FnOnce() -> M::Value) -> &mut M::Value {
        self.mark_inserted(&key);
        self.map.entry_(key, make)
    }

    /// Removes every entry `keep` refuses.
    pub fn retain(&mut self, mut keep: impl FnMut(&M::Key, &M::Value) -> bool) {
        let gone: Vec<M::Key> = self
            .map
            .keys_()
            .into_iter()
            .filter(|k| self.map.get_(k).is_some_and(|v| !keep(k, v)))
            .collect();
        for k in gone {
            self.map.remove_(&k);
            self.mark_removed(k);
        }
    }

    /// Takes every entry (as `std::mem::take` of the map), recording them removed.
    pub fn take_all(&mut self) -> M {
        for k in self.map.keys_() {
            self.mark_removed(k);
        }
        std::mem::take(&mut self.map)
    }

    /// Marks every present key changed (the next checkpoint lists them all).
    pub fn mark_all(&mut self) {
        self.changed = self.map.keys_().into_iter().collect();
        self.removed.clear();
        self.fresh.clear();
    }

    /// The keys changed and removed since the last take; tracking starts afresh.
    pub fn take(&mut self) -> (BTreeSet<M::Key>, BTreeSet<M::Key>) {
        self.fresh.clear();
        (std::mem::take(&mut self.changed), std::mem::take(&mut self.removed))
    }

    /// A map restored from items: nothing changed yet.
    pub fn from_map(map: M) -> Tracked<M> {
        Tracked {
            map,
            changed: BTreeSet::new(),
            removed: BTreeSet::new(),
            fresh: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone + Hash + Eq> Tracked<BTreeMap<K, ()>> {
    /// Adds `key` to this set (a map to `()`); a key already there is no change.
    pub fn add<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Ord + ToOwned<Owned = K> + ?Sized,
    {
        if !self.map.contains_key(key) {
            self.insert(key.to_owned(), ());
        }
    }
}

impl<K: Ord + Clone + Hash + Eq, V> Tracked<BTreeMap<K, V>> {
    /// Removes and returns the first entry (the least key).
    pub fn pop_first(&mut self) -> Option<(K, V)> {
        let (key, value) = self.map.pop_first()?;
        self.mark_removed(key.clone());
        Some((key, value))
    }
}

impl<M: Map + Serialize> Serialize for Tracked<M> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, M: Map + Deserialize<'de>> Deserialize<'de> for Tracked<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        M::deserialize(d).map(Tracked::from_map)
    }
}

/// Adds to `changes` the items of one map keyed by strings: the changed keys with their
/// current value (postcard), and the removed ones.
pub fn collect<V: Serialize>(changes: &mut Changes, kind: &str, map: &mut Tracked<impl Map<Key = String, Value = V>>) {
    // Serialising plain data into a Vec cannot fail.
    collect_encoded(
        changes,
        kind,
        map,
        |k| k.as_bytes().to_vec(),
        |v| postcard::to_stdvec(v).unwrap_or_default(),
    );
}

/// Adds to `changes` the items of one map, its keys and values written by `key` and `value`.
pub fn collect_encoded<M: Map>(
    changes: &mut Changes,
    kind: &str,
    map: &mut Tracked<M>,
    key: impl Fn(&M::Key) -> Vec<u8>,
    value: impl Fn(&M::Value) -> Vec<u8>,
) {
    let (changed, removed) = map.take();
    for k in changed {
        if let Some(v) = map.get_(&k) {
            changes.upserts.push(Item {
                kind: kind.to_string(),
                key: key(&k),
                value: value(v),
            });
        }
    }
    changes
        .removed
        .extend(removed.iter().map(|k| (kind.to_string(), key(k))));
}

/// Reads one item back into its map; `Err` names what did not read.
pub fn restore_into<V: serde::de::DeserializeOwned, M: Map<Key = String, Value = V>>(
    map: &mut M,
    item: &Item,
) -> Result<(), String> {
    let key = String::from_utf8(item.key.clone()).map_err(|e| format!("{} key: {e}", item.kind))?;
    let value = postcard::from_bytes(&item.value).map_err(|e| format!("{} {key:?}: {e}", item.kind))?;
    map.insert_(key, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_the_keys_touched_and_removed_since_the_last_take() {
        let mut m: Tracked<BTreeMap<String, u32>> = Tracked::default();
        m.insert("a".into(), 1);
        m.insert("b".into(), 2);
        let (changed, removed) = m.take();
        assert_eq!((changed.len(), removed.len()), (2, 0));
        assert!(m.get_mut("zz").is_none());
        if let Some(v) = m.get_mut("a") {
            *v += 1;
        }
        m.remove("b");
        let (changed, removed) = m.take();
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), ["a"]);
        assert_eq!(removed.into_iter().collect::<Vec<_>>(), ["b"]);
        m.insert("b".into(), 3);
        m.remove("b");
        m.insert("b".into(), 4);
        let (changed, removed) = m.take();
        assert_eq!((changed.len(), removed.len()), (1, 0), "re-added: an upsert only");
        m.retain(|k, _| k != "a");
        assert_eq!(m.take().1.into_iter().collect::<Vec<_>>(), ["a"]);
        m.insert("new".into(), 5);
        m.remove("new");
        assert_eq!(
            m.take(),
            (BTreeSet::new(), BTreeSet::new()),
            "never stored: nothing to write"
        );
        m.remove("b");
        m.insert("b".into(), 6);
        m.remove("b");
        let (changed, removed) = m.take();
        assert_eq!(
            (changed.len(), removed.len()),
            (0, 1),
            "stored, then re-added and removed: a delete"
        );
        assert_eq!(postcard::to_stdvec(&m).unwrap(), postcard::to_stdvec(&*m).unwrap());
    }
}
