//! Event-time reordering: events may arrive out of order by up to the allowed lateness; the
//! buffer holds them until the watermark passes and releases them sorted by event time, with
//! a content-derived tie-break, so any arrival order within the lateness gives one order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Event;

/// Sort key: event time, then a hash of the event's identity (ties between different events
/// at the same nanosecond are broken by content, not arrival), then arrival order.
type Key = (i64, u64, u64);

/// Buffer of events not yet released.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReorderBuffer {
    /// Boxed: B-tree nodes shift their entries on insert, and an inline `Event` is hundreds
    /// of bytes (profiling showed a quarter of the engine's time in that memmove).
    #[serde(with = "as_protobuf")]
    pending: BTreeMap<Key, Box<Event>>,
    arrivals: u64,
}

/// Held events are snapshotted in their canonical protobuf encoding: compact, and readable
/// by any binary format (the JSON form of `Event` is internally tagged, which compact
/// formats such as postcard cannot read back).
mod as_protobuf {
    use std::collections::BTreeMap;

    use prost::Message;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Key;
    use crate::model::{Envelope, Event};

    pub fn serialize<S: Serializer>(pending: &BTreeMap<Key, Box<Event>>, s: S) -> Result<S::Ok, S::Error> {
        // The oneof encoded on its own is the `Envelope` holding it (its only field), without
        // cloning the event into one: the clone was a quarter of a busy ingest's profile.
        let encoded: Vec<(&Key, Vec<u8>)> = pending
            .iter()
            .map(|(k, e)| {
                let mut bytes = Vec::with_capacity(e.encoded_len());
                e.encode(&mut bytes);
                (k, bytes)
            })
            .collect();
        encoded.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Key, Box<Event>>, D::Error> {
        let encoded: Vec<(Key, Vec<u8>)> = Vec::deserialize(d)?;
        encoded
            .into_iter()
            .map(|(k, bytes)| {
                let envelope = Envelope::decode(bytes.as_slice()).map_err(serde::de::Error::custom)?;
                let event = envelope
                    .event
                    .ok_or_else(|| serde::de::Error::custom("held event without content"))?;
                Ok((k, Box::new(event)))
            })
            .collect()
    }
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
        let entry = self.pending.first_entry()?;
        (entry.key().0 <= frontier).then(|| entry.remove())
    }

    /// Number of held events.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
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
    use crate::model::{AlertEvent, Envelope};
    use prost::Message;

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
