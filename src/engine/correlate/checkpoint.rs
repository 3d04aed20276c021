//! The correlation engine's incremental checkpoint: a head (clocks, the alert sequence,
//! counters) and one item per alert, incident (without its alerts and CIs), alert of an
//! incident (joined, firing), CI of an incident, CI's recent changes, source-announced
//! maintenance window, timer and event held for reordering. A batch writes the head and the
//! items it changed ([`Correlator::take_changes`]); a restore reads them back into exactly
//! the state a whole snapshot gives ([`Correlator::restore_items`]), rebuilding the indexes.
//!
//! Head version 1 (the first incremental layout) held the reorder buffer and the timers in
//! the head, rewritten by every batch: with a minute's lateness on a busy webhook that was
//! most of the bytes. It still reads; the next checkpoint after it writes every item.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;
use crate::engine::reorder::HELD;

/// Item kinds, as stored.
const ALERT: &str = "alert";
const INCIDENT: &str = "incident";
const CHANGE: &str = "change";
const WINDOW: &str = "window";
const TIMER: &str = "timer";
/// An alert that joined an incident; one that fires in it. Key: [`member_key`].
const MEMBER: &str = "member";
const FIRING: &str = "firing";
/// A CI an incident's alerts came from. Key: [`member_key`].
const CI: &str = "ci";

/// An incident as its item holds it: its head and counts; its alerts are items of their own.
type IncidentItemRef<'a> = (&'a IncidentHead, u64, u64);
type IncidentItem = (IncidentHead, u64, u64);

impl Incident {
    fn item(&self) -> IncidentItemRef<'_> {
        (&self.head, self.joined, self.dropped)
    }

    fn from_item((head, joined, dropped): IncidentItem) -> Incident {
        Incident {
            head,
            members: Tracked::default(),
            active: Tracked::default(),
            cis: Tracked::default(),
            joined,
            dropped,
        }
    }

    /// The item keys of all its alerts the store may hold (what a prune deletes): those it
    /// has, and those it lost since the last checkpoint (a resolved alert no longer firing).
    pub(super) fn alert_keys(mut self) -> Vec<(String, Vec<u8>)> {
        let mut keys = Vec::new();
        for (kind, set) in [
            (MEMBER, &mut self.members),
            (FIRING, &mut self.active),
            (CI, &mut self.cis),
        ] {
            let (_, removed) = set.take();
            for alert in set.keys().chain(&removed) {
                keys.push((kind.to_string(), member_key(&self.head.id, alert)));
            }
        }
        keys
    }
}

/// An incident's alert as stored: the incident id's length (4 bytes, big-endian), the id,
/// the alert key; unambiguous whatever bytes either holds.
fn member_key(incident: &str, alert: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + incident.len() + alert.len());
    key.extend_from_slice(&(incident.len() as u32).to_be_bytes());
    key.extend_from_slice(incident.as_bytes());
    key.extend_from_slice(alert.as_bytes());
    key
}

/// The (incident, alert) of [`member_key`].
fn member_of(key: &[u8]) -> Result<(String, String), String> {
    let bad = || format!("incident alert key of {} bytes does not read", key.len());
    let (len, rest) = key.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = u32::from_be_bytes(*len) as usize;
    let (incident, alert) = (rest.get(..len).ok_or_else(bad)?, rest.get(len..).ok_or_else(bad)?);
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|e| format!("incident alert key: {e}"));
    Ok((text(incident)?, text(alert)?))
}

/// Adds the incidents' items: each changed incident's head and its alerts that joined, left,
/// started or stopped firing; the removed incidents, with all their alerts' rows.
fn collect_incidents(
    changes: &mut Changes,
    incidents: &mut Tracked<BTreeMap<String, Incident>>,
    pruned: Vec<Vec<(String, Vec<u8>)>>,
    full: bool,
) {
    let (changed, removed) = incidents.take();
    for id in changed {
        let Some(inc) = incidents.get_mut_untracked(&id) else {
            continue;
        };
        // Serialising plain data into a Vec cannot fail.
        changes.upserts.push(Item {
            kind: INCIDENT.to_string(),
            key: id.as_bytes().to_vec(),
            value: postcard::to_stdvec(&inc.item()).unwrap_or_default(),
        });
        for (kind, set) in [
            (MEMBER, &mut inc.members),
            (FIRING, &mut inc.active),
            (CI, &mut inc.cis),
        ] {
            if full {
                set.mark_all();
            }
            changelog::collect_encoded(changes, kind, set, |k| member_key(&id, k), |()| Vec::new());
        }
    }
    changes
        .removed
        .extend(removed.into_iter().map(|id| (INCIDENT.to_string(), id.into_bytes())));
    changes.removed.extend(pruned.into_iter().flatten());
}

/// The head after its version: frontier, watermark, the reorder buffer's arrival counter,
/// the next alert seq, counters.
type HeadRef<'a> = (i64, i64, u64, u64, &'a Stats);
type Head = (i64, i64, u64, u64, Stats);
/// Head version 1 after its version: frontier, watermark, the reorder buffer, the next
/// alert seq, the timers, counters.
type HeadV1 = (i64, i64, ReorderBuffer, u64, BTreeSet<(i64, Timer)>, Stats);

/// A timer as stored: its postcard bytes are its key; it has no value.
fn timer_key(timer: &(i64, Timer)) -> Vec<u8> {
    // Serialising plain data into a Vec cannot fail.
    postcard::to_stdvec(timer).unwrap_or_default()
}

impl Correlator {
    /// What changed since the last call: the head, the items touched (with their current
    /// bytes) and those removed. After a new engine or a whole-snapshot restore, every item
    /// (`full`). Timers stay in the head: stale ones (an evicted alert's flap timer, an
    /// earlier prune of a reopened incident) are part of the state and cannot be derived.
    pub fn take_changes(&mut self) -> Changes {
        let s = &mut self.state;
        let full = std::mem::take(&mut self.full);
        if full {
            s.alerts.mark_all();
            s.incidents.mark_all();
            s.changes.mark_all();
            s.source_windows.mark_all();
            s.timers.mark_all();
            s.pending.mark_all();
        }
        let head: HeadRef<'_> = (s.frontier, s.watermark, s.pending.arrivals(), s.next_seq, &s.stats);
        let mut changes = Changes {
            full,
            // Serialising plain data structures into a Vec cannot fail.
            head: postcard::to_stdvec(&(HEAD_VERSION, head)).unwrap_or_default(),
            ..Changes::default()
        };
        changelog::collect(&mut changes, ALERT, &mut s.alerts);
        collect_incidents(&mut changes, &mut s.incidents, std::mem::take(&mut s.pruned), full);
        changelog::collect(&mut changes, CHANGE, &mut s.changes);
        changelog::collect(&mut changes, WINDOW, &mut s.source_windows);
        changelog::collect_encoded(&mut changes, TIMER, &mut s.timers, timer_key, |()| Vec::new());
        s.pending.collect(&mut changes);
        changes
    }

    /// An engine with the given config and the state of a head and its items (the rows an
    /// incremental checkpoint left). The indexes are derived from the items, exactly:
    /// `lru` and `seq_keys` hold one entry per cached alert, (last seen, seq) and seq → key
    /// (`touch`, `insert_alert` and `evict` change both together); `by_service` holds every
    /// incident not pruned, which is every incident kept (only a prune removes one, from
    /// both); `open_by_ci` holds, per CI, the unresolved incidents with an alert on it, which
    /// are the unresolved incidents listing it in `cis` (`activate` adds to both, only to an
    /// unresolved incident; `reopen` re-adds all of `cis`; `resolve_incident` removes all).
    pub fn restore_items(
        config: &CorrelateConfig,
        catalog: Catalog,
        head: &[u8],
        items: &[Item],
    ) -> Result<Correlator, CorrelateError> {
        let bad = |e: String| CorrelateError::Snapshot(e);
        let (version, rest): (u32, &[u8]) = postcard::take_from_bytes(head).map_err(|e| bad(format!("head: {e}")))?;
        let mut alerts = HashMap::new();
        let mut incidents = BTreeMap::new();
        let mut alerts_of = Vec::new();
        let mut incidents_v1: BTreeMap<String, IncidentV1> = BTreeMap::new();
        let mut changes = BTreeMap::new();
        let mut windows = BTreeMap::new();
        let mut timers = BTreeMap::new();
        let mut held = Vec::new();
        for item in items {
            match item.kind.as_str() {
                ALERT => changelog::restore_into(&mut alerts, item),
                // Version 1 wrote an incident whole, its alerts inside, without counts.
                INCIDENT if version == 1 => changelog::restore_into(&mut incidents_v1, item),
                INCIDENT => postcard::from_bytes::<IncidentItem>(&item.value)
                    .map(|item| {
                        incidents.insert(item.0.id.clone(), Incident::from_item(item));
                    })
                    .map_err(|e| format!("incident {:?}: {e}", String::from_utf8_lossy(&item.key))),
                MEMBER | FIRING | CI => {
                    alerts_of.push(item);
                    Ok(())
                }
                CHANGE => changelog::restore_into(&mut changes, item),
                WINDOW => changelog::restore_into(&mut windows, item),
                TIMER => postcard::from_bytes(&item.key)
                    .map(|timer| {
                        timers.insert(timer, ());
                    })
                    .map_err(|e| format!("timer: {e}")),
                HELD => {
                    held.push(item);
                    Ok(())
                }
                other => Err(format!("unknown item kind {other:?}")),
            }
            .map_err(bad)?;
        }
        let mut state = state_of_head(version, rest, held, timers).map_err(bad)?;
        incidents.extend(incidents_v1.into_iter().map(|(id, old)| (id, old.upgrade(&alerts))));
        restore_alerts_of(&mut incidents, alerts_of).map_err(bad)?;
        index_alerts(&mut state, &alerts);
        index_incidents(&mut state, &incidents);
        state.alerts = Tracked::from_map(alerts);
        state.incidents = Tracked::from_map(incidents);
        state.changes = Tracked::from_map(changes);
        state.source_windows = Tracked::from_map(windows);
        Ok(Correlator {
            rules: Rules::new(config, catalog)?,
            state,
            key_buf: String::new(),
            // After a version-1 head the store holds no timer or held-event rows.
            full: version != HEAD_VERSION,
        })
    }
}

/// The state a head (after its `version`) holds, with the held events and timers of a
/// version-2 checkpoint's items (version 1 held them in the head).
fn state_of_head(
    version: u32,
    head: &[u8],
    held: Vec<&Item>,
    timers: BTreeMap<(i64, Timer), ()>,
) -> Result<State, String> {
    let bad = |e: postcard::Error| format!("head: {e}");
    match version {
        HEAD_VERSION => {
            let (frontier, watermark, arrivals, next_seq, stats): Head = postcard::from_bytes(head).map_err(bad)?;
            Ok(State {
                frontier,
                watermark,
                pending: ReorderBuffer::restore(arrivals, held)?,
                next_seq,
                timers: Tracked::from_map(timers),
                stats,
                ..State::default()
            })
        }
        1 => {
            let (frontier, watermark, pending, next_seq, timers, stats): HeadV1 =
                postcard::from_bytes(head).map_err(bad)?;
            Ok(State {
                frontier,
                watermark,
                pending,
                next_seq,
                timers: Tracked::from_map(timers.into_iter().map(|t| (t, ())).collect()),
                stats,
                ..State::default()
            })
        }
        other => Err(format!("head version {other}, this build reads 1 and {HEAD_VERSION}")),
    }
}

/// The incidents' alerts (joined, firing) and CIs from their items.
fn restore_alerts_of(incidents: &mut BTreeMap<String, Incident>, items: Vec<&Item>) -> Result<(), String> {
    type Sets = [BTreeMap<String, ()>; 3];
    let mut sets: BTreeMap<String, Sets> = BTreeMap::new();
    for item in items {
        let (incident, alert) = member_of(&item.key)?;
        if !incidents.contains_key(&incident) {
            return Err(format!(
                "{} {alert:?} of incident {incident:?}, which is not stored",
                item.kind
            ));
        }
        let [members, firing, cis] = sets.entry(incident).or_default();
        match item.kind.as_str() {
            MEMBER => members,
            FIRING => firing,
            _ => cis,
        }
        .insert(alert, ());
    }
    for (id, [members, firing, cis]) in sets {
        if let Some(inc) = incidents.get_mut(&id) {
            inc.members = Tracked::from_map(members);
            inc.active = Tracked::from_map(firing);
            inc.cis = Tracked::from_map(cis);
        }
    }
    Ok(())
}

/// `lru` and `seq_keys` from the alerts.
fn index_alerts(state: &mut State, alerts: &HashMap<String, AlertState>) {
    for (key, a) in alerts {
        state.lru.insert((a.last_seen, a.seq));
        state.seq_keys.insert(a.seq, key.clone());
    }
}

/// `by_service` and `open_by_ci` from the incidents.
fn index_incidents(state: &mut State, incidents: &BTreeMap<String, Incident>) {
    for (id, inc) in incidents {
        state
            .by_service
            .entry(inc.head.service.clone())
            .or_default()
            .insert(id.clone());
        if inc.head.status != IncidentStatus::Resolved {
            for ci in inc.cis.keys() {
                state.open_by_ci.entry(ci.clone()).or_default().insert(id.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::model::AlertEvent;

    fn alert(fp: &str, status: AlertStatus, t: i64) -> Event {
        Event::Alert(AlertEvent {
            source: "t".into(),
            fingerprint: fp.into(),
            service: if fp == "other" { "billing" } else { "shop" }.into(),
            ci: "db".into(),
            alert_name: fp.into(),
            severity: 3,
            status: status as i32,
            time_ns: t,
            ..Default::default()
        })
    }

    /// A version-1 head (reorder buffer and timers inside) with its items restores the same
    /// state, and the checkpoint after it lists every item, timers and held events included.
    #[test]
    fn a_version_1_head_restores_and_the_next_checkpoint_writes_everything() {
        let config = Config::parse(
            Path::new("t.toml"),
            "[correlate]\nallowed_lateness = \"60s\"\nreopen_window = \"10m\"\n",
        )
        .unwrap();
        let mut engine = Correlator::new(&config.correlate, config.catalog()).unwrap();
        let mut out = Vec::new();
        let s = crate::time::NS_PER_SEC;
        // A resolved incident leaves a prune timer; "other" fires in an incident of its own;
        // "b", within the lateness, stays held.
        engine.apply(alert("a", AlertStatus::Firing, 0), &mut out);
        engine.apply(alert("a", AlertStatus::Resolved, 10 * s), &mut out);
        engine.apply(alert("other", AlertStatus::Firing, 20 * s), &mut out);
        engine.advance(100 * s, &mut out);
        engine.apply(alert("b", AlertStatus::Firing, 95 * s), &mut out);
        let changes = engine.take_changes();
        assert!(!engine.state.timers.is_empty() && !engine.state.pending.is_empty());
        let st = &engine.state;
        let timers: BTreeSet<(i64, Timer)> = st.timers.keys().cloned().collect();
        let v1 = postcard::to_stdvec(&(
            1u32,
            (st.frontier, st.watermark, &st.pending, st.next_seq, &timers, &st.stats),
        ))
        .unwrap();
        // Version 1's items: alerts as today, incidents whole (their alerts inside).
        let mut items: Vec<Item> = changes
            .upserts
            .into_iter()
            .filter(|i| ![TIMER, HELD, MEMBER, FIRING, CI, INCIDENT].contains(&i.kind.as_str()))
            .collect();
        items.extend(st.incidents.iter().map(|(id, inc)| Item {
            kind: INCIDENT.to_string(),
            key: id.as_bytes().to_vec(),
            value: postcard::to_stdvec(&inc.as_v1()).unwrap(),
        }));
        let mut back = Correlator::restore_items(&config.correlate, config.catalog(), &v1, &items).unwrap();
        assert_eq!(back.snapshot(), engine.snapshot());
        let next = back.take_changes();
        assert!(next.full);
        let kinds: BTreeSet<&str> = next.upserts.iter().map(|i| i.kind.as_str()).collect();
        for kind in [TIMER, HELD, MEMBER, FIRING, CI, INCIDENT] {
            assert!(kinds.contains(kind), "{kind} missing from {kinds:?}");
        }
        let bad = postcard::to_stdvec(&(7u32, 0u8)).unwrap();
        let err = Correlator::restore_items(&config.correlate, config.catalog(), &bad, &[]).unwrap_err();
        assert!(err.to_string().contains("head version 7"), "{err}");
    }
}
