//! The correlation engine's incremental checkpoint: a head (clocks, the reorder buffer,
//! timers, the alert sequence, counters) and one item per alert, incident, CI's recent
//! changes and source-announced maintenance window. A batch writes the head and the items
//! it changed ([`Correlator::take_changes`]); a restore reads them back into exactly the
//! state a whole snapshot gives ([`Correlator::restore_items`]), rebuilding the indexes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;

/// Item kinds, as stored.
const ALERT: &str = "alert";
const INCIDENT: &str = "incident";
const CHANGE: &str = "change";
const WINDOW: &str = "window";

/// The head as written: borrowed, so the reorder buffer is not copied per batch.
type HeadRef<'a> = (
    u32,
    i64,
    i64,
    &'a ReorderBuffer,
    u64,
    &'a BTreeSet<(i64, Timer)>,
    &'a Stats,
);
/// The head as read.
type Head = (u32, i64, i64, ReorderBuffer, u64, BTreeSet<(i64, Timer)>, Stats);

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
        }
        let head: HeadRef<'_> = (
            HEAD_VERSION,
            s.frontier,
            s.watermark,
            &s.pending,
            s.next_seq,
            &s.timers,
            &s.stats,
        );
        let mut changes = Changes {
            full,
            // Serialising plain data structures into a Vec cannot fail.
            head: postcard::to_stdvec(&head).unwrap_or_default(),
            ..Changes::default()
        };
        changelog::collect(&mut changes, ALERT, &mut s.alerts);
        changelog::collect(&mut changes, INCIDENT, &mut s.incidents);
        changelog::collect(&mut changes, CHANGE, &mut s.changes);
        changelog::collect(&mut changes, WINDOW, &mut s.source_windows);
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
        let (version, frontier, watermark, pending, next_seq, timers, stats): Head =
            postcard::from_bytes(head).map_err(|e| bad(format!("head: {e}")))?;
        if version != HEAD_VERSION {
            return Err(bad(format!("head version {version}, this build reads {HEAD_VERSION}")));
        }
        let mut alerts = HashMap::new();
        let mut incidents = BTreeMap::new();
        let mut changes = BTreeMap::new();
        let mut windows = BTreeMap::new();
        for item in items {
            match item.kind.as_str() {
                ALERT => changelog::restore_into(&mut alerts, item),
                INCIDENT => changelog::restore_into(&mut incidents, item),
                CHANGE => changelog::restore_into(&mut changes, item),
                WINDOW => changelog::restore_into(&mut windows, item),
                other => Err(format!("unknown item kind {other:?}")),
            }
            .map_err(bad)?;
        }
        let mut state = State {
            frontier,
            watermark,
            pending,
            next_seq,
            timers,
            stats,
            ..State::default()
        };
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
            full: false,
        })
    }
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
            .entry(inc.service.clone())
            .or_default()
            .insert(id.clone());
        if inc.status != IncidentStatus::Resolved {
            for ci in &inc.cis {
                state.open_by_ci.entry(ci.clone()).or_default().insert(id.clone());
            }
        }
    }
}
