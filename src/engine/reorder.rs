//! Event-time reordering: events may arrive out of order by up to the allowed lateness; the
//! buffer holds them until the watermark passes and releases them sorted by event time, with
//! a content-derived tie-break, so any arrival order within the lateness gives one order.

use std::collections::BTreeMap;

use prost::Message;
use serde::{Deserialize, Serialize};

use super::changelog::{self, Changes, Item, Tracked};
use crate::model::{Envelope, Event};

/// Sort key: event time, then a hash of the event's identity (ties between different events
/// at the same nanosecond are broken by content, not arrival), then arrival order.
type Key = (i64, u64, u64);

/// The item kind of a held event in an incremental checkpoint.
pub const HELD: &str = "held";

/// Buffer of events not yet released.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReorderBuffer {
    /// Boxed: B-tree nodes shift their entries on insert, and an inline `Event` is hundreds
    /// of bytes (profiling showed a quarter of the engine's time in that memmove). Tracked:
    /// a checkpoint writes the events pushed and deletes those popped since the last one,
    /// not every event held for the allowed lateness.
    #[serde(with = "as_protobuf")]
    pending: Tracked<BTreeMap<Key, Box<Event>>>,
    arrivals: u64,
}

/// Held events are snapshotted in their canonical protobuf encoding: compact, and readable
/// by any binary format (the JSON form of `Event` is internally tagged, which compact
/// formats such as postcard cannot read back).
mod as_protobuf {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{envelope_bytes, event_from, Key, Tracked};
    use crate::model::Event;

    pub fn serialize<S: Serializer>(pending: &Tracked<BTreeMap<Key, Box<Event>>>, s: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<(&Key, Vec<u8>)> = pending.iter().map(|(k, e)| (k, envelope_bytes(e))).collect();
        encoded.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tracked<BTreeMap<Key, Box<Event>>>, D::Error> {
        let encoded: Vec<(Key, Vec<u8>)> = Vec::deserialize(d)?;
        let pending = encoded
            .into_iter()
            .map(|(k, bytes)| Ok((k, Box::new(event_from(&bytes).map_err(serde::de::Error::custom)?))))
            .collect::<Result<BTreeMap<_, _>, D::Error>>()?;
        Ok(Tracked::from_map(pending))
    }
}

/// The `Envelope` holding `event`, encoded. The oneof encoded on its own is that envelope
/// (its only field), without cloning the event into one: the clone was a quarter of a busy
/// ingest's profile.
fn envelope_bytes(event: &Event) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(event.encoded_len());
    event.encode(&mut bytes);
    bytes
}

/// The event of an encoded `Envelope`.
fn event_from(bytes: &[u8]) -> Result<Event, String> {
    let envelope = Envelope::decode(bytes).map_err(|e| e.to_string())?;
    envelope.event.ok_or_else(|| "held event without content".to_string())
}

/// A key as stored: 24 big-endian bytes (the time with its sign bit flipped), so the
/// stored order is the buffer's.
fn key_bytes(&(t, hash, arrival): &Key) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&((t as u64) ^ (1 << 63)).to_be_bytes());
    bytes.extend_from_slice(&hash.to_be_bytes());
    bytes.extend_from_slice(&arrival.to_be_bytes());
    bytes
}

/// The key of [`key_bytes`].
fn key_from(bytes: &[u8]) -> Result<Key, String> {
    let words: [u8; 24] = bytes
        .try_into()
        .map_err(|_| format!("held event key of {} bytes, expected 24", bytes.len()))?;
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&words[i * 8..i * 8 + 8]);
        u64::from_be_bytes(w)
    };
    Ok(((word(0) ^ (1 << 63)) as i64, word(1), word(2)))
}

impl ReorderBuffer {
    /// Holds `event` until `release` passes its time.
    pub fn push(&mut self, event: Event) {
        let key = (event_time(&event), identity_hash(&event), self.arrivals);
        self.arrivals += 1;
        self.pending.insert(key, Box::new(event));
    }

    /// The earliest held event with time ≤ `frontier`, if any (boxed, as held).
    pub fn pop_until(&mut self, frontier: i64) -> Option<Box<Event>> {
        let (&(t, _, _), _) = self.pending.first_key_value()?;
        if t > frontier {
            return None;
        }
        self.pending.pop_first().map(|(_, event)| event)
    }

    /// Number of held events.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Events pushed so far (the arrival counter of the next key): part of a checkpoint's head.
    pub fn arrivals(&self) -> u64 {
        self.arrivals
    }

    /// Marks every held event changed: the next [`ReorderBuffer::collect`] lists them all.
    pub fn mark_all(&mut self) {
        self.pending.mark_all();
    }

    /// Adds to `changes` the events pushed (items of kind [`HELD`]) and popped since the
    /// last call.
    pub fn collect(&mut self, changes: &mut Changes) {
        changelog::collect_encoded(changes, HELD, &mut self.pending, key_bytes, |e| envelope_bytes(e));
    }

    /// A buffer holding the `held` items, whose next arrival is numbered `arrivals`.
    pub fn restore<'a>(arrivals: u64, held: impl IntoIterator<Item = &'a Item>) -> Result<ReorderBuffer, String> {
        let pending = held
            .into_iter()
            .map(|item| {
                let key = key_from(&item.key)?;
                let event = event_from(&item.value).map_err(|e| format!("held event {key:?}: {e}"))?;
                Ok((key, Box::new(event)))
            })
            .collect::<Result<BTreeMap<_, _>, String>>()?;
        Ok(ReorderBuffer {
            pending: Tracked::from_map(pending),
            arrivals,
        })
    }
}

/// The event time the engines order by.
pub fn event_time(event: &Event) -> i64 {
    event.time_ns()
}

/// FNV-1a over the fields that identify an event, so equal-time events sort by content.
fn identity_hash(event: &Event) -> u64 {
    let mut h = Fnv::default();
    match event {
        Event::Alert(a) => {
            h.str(&a.source)
                .str(&a.fingerprint)
                .str(&a.source_event_id)
                .u64(a.status as u64)
                .u64(u64::from(a.severity));
            h.str(&a.service).str(&a.ci).str(&a.alert_name);
        }
        Event::Sample(s) => {
            h.str(&s.service)
                .str(&s.operation)
                .u64(s.duration_ns as u64)
                .u64(s.outcome as u64);
        }
        Event::Batch(b) => {
            h.str(&b.service).str(&b.operation).u64(b.times_ns.len() as u64);
        }
        Event::Change(c) => {
            h.str(&c.source).str(&c.ci).str(&c.change_id);
        }
        Event::Maintenance(m) => {
            h.str(&m.source).str(&m.window_id).u64(m.action as u64);
        }
    }
    h.0
}

/// 64-bit FNV-1a, used wherever slaflow needs a stable (cross-run, cross-version) hash.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf29ce484222325)
    }
}

impl Fnv {
    /// Adds bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
        self
    }

    /// Adds a string and a separator, so ("ab","c") and ("a","bc") differ.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes()).bytes(&[0xff])
    }

    /// Adds a number.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AlertEvent;

    fn alert(t: i64, fp: &str) -> Event {
        Event::Alert(AlertEvent {
            time_ns: t,
            fingerprint: fp.into(),
            ..Default::default()
        })
    }

    /// Held events are written as the `Envelope` that holds them (the format snapshots have
    /// always had), though encoded without building one.
    #[test]
    fn a_held_event_is_snapshotted_as_its_envelope_and_restored() {
        let mut buf = ReorderBuffer::default();
        buf.push(alert(7, "fp"));
        let bytes = postcard::to_stdvec(&buf).unwrap();
        let envelope = Envelope {
            event: Some(alert(7, "fp")),
        }
        .encode_to_vec();
        let held: (Vec<(Key, Vec<u8>)>, u64) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(held.0[0].1, envelope);
        let mut back: ReorderBuffer = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.pop_until(7).map(|e| *e), Some(alert(7, "fp")));
    }

    /// A checkpoint lists the events pushed and popped since the last one, not all held;
    /// the items restore the buffer, which then releases as the original.
    #[test]
    fn a_checkpoint_lists_the_events_pushed_and_popped_since_the_last_and_restores() {
        let mut buf = ReorderBuffer::default();
        for (t, fp) in [(-5, "neg"), (3, "a"), (7, "b")] {
            buf.push(alert(t, fp));
        }
        let mut first = Changes::default();
        buf.collect(&mut first);
        assert_eq!((first.upserts.len(), first.removed.len()), (3, 0));
        assert_eq!(buf.pop_until(0).map(|e| *e), Some(alert(-5, "neg")));
        buf.push(alert(9, "c"));
        buf.push(alert(1, "gone"));
        assert_eq!(buf.pop_until(1).map(|e| *e), Some(alert(1, "gone")));
        let mut second = Changes::default();
        buf.collect(&mut second);
        assert_eq!(second.upserts.len(), 1, "only the event pushed and still held");
        assert_eq!(
            second.upserts[0].value,
            Envelope {
                event: Some(alert(9, "c"))
            }
            .encode_to_vec()
        );
        assert_eq!(second.removed, [(HELD.to_string(), first.upserts[0].key.clone())]);
        // The store's rows after both checkpoints: the first's upserts, minus the deletes, plus the second's.
        let mut rows: BTreeMap<Vec<u8>, Item> = first.upserts.into_iter().map(|i| (i.key.clone(), i)).collect();
        for (_, key) in &second.removed {
            rows.remove(key);
        }
        rows.extend(second.upserts.into_iter().map(|i| (i.key.clone(), i)));
        let mut back = ReorderBuffer::restore(buf.arrivals(), rows.values()).unwrap();
        assert_eq!(postcard::to_stdvec(&back).unwrap(), postcard::to_stdvec(&buf).unwrap());
        back.push(alert(8, "d"));
        buf.push(alert(8, "d"));
        let drain =
            |b: &mut ReorderBuffer| std::iter::from_fn(|| b.pop_until(i64::MAX).map(|e| *e)).collect::<Vec<_>>();
        assert_eq!(drain(&mut back), drain(&mut buf));
    }

    #[test]
    fn stored_keys_sort_as_the_buffer() {
        let keys = [(i64::MIN, 9, 0), (-1, 0, 5), (0, 0, 0), (0, 1, 0), (i64::MAX, 0, 0)];
        let bytes: Vec<Vec<u8>> = keys.iter().map(key_bytes).collect();
        assert!(bytes.windows(2).all(|w| w[0] < w[1]));
        for (k, b) in keys.iter().zip(&bytes) {
            assert_eq!(key_from(b).as_ref(), Ok(k));
        }
        assert!(key_from(&[0; 23]).unwrap_err().contains("23 bytes"));
    }

    #[test]
    fn releases_in_time_then_content_order_whatever_the_arrival() {
        let events = [alert(5, "b"), alert(3, "x"), alert(5, "a"), alert(9, "z")];
        let mut orders = Vec::new();
        for perm in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let mut buf = ReorderBuffer::default();
            for i in perm {
                buf.push(events[i].clone());
            }
            let mut released = Vec::new();
            while let Some(e) = buf.pop_until(5) {
                released.push(*e);
            }
            assert_eq!(buf.len(), 1, "the event at 9 is held");
            orders.push(released);
        }
        assert_eq!(orders[0], orders[1]);
        assert_eq!(orders[0], orders[2]);
        assert_eq!(event_time(&orders[0][0]), 3);
    }
}
