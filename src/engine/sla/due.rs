//! Which services a clock move must walk: an index of each service's next due time, the
//! first instant at which walking it can change anything (a bin, hour, day or month that
//! closes, or every minute while it is busy). `advance` walks only the services due by its
//! target, so a batch costs what changed rather than every service held (README, "cost per
//! batch must not grow with state that did not change").
//!
//! A service that is not due would have been walked to the target and judged there with no
//! output and no change but its `evaluated_to` (nothing it is judged on moves while it is
//! idle: no outage in progress, no burn-rate window with traffic or downtime, no open bin).
//! That field is left behind instead, and read as `max(own, frontier)`: the value the full
//! walk gives, the one a checkpoint restore derives (`checkpoint.rs`) and a snapshot writes.
//!
//! The index is derived state: rebuilt on every restore, never written.

use serde::ser::SerializeMap;

use super::*;

/// A service's due time before it is in the index: never (it is put in when touched).
pub(super) fn unscheduled() -> i64 {
    i64::MAX
}

/// Marks a touched service (a sample, outage or maintenance window changed it) due at the
/// next clock move. One already due by then is left as it is: the common case of a busy
/// service, with no allocation.
pub(super) fn mark_due(queue: &mut BTreeSet<(i64, String)>, frontier: i64, service: &str, st: &mut ServiceState) {
    // Its row is written: with the `evaluated_to` the full walk would have left, so that the
    // rows are the same bytes as before the index (a restore would derive it anyway).
    st.evaluated_to = st.evaluated_to.max(frontier);
    // Every later target is at least a minute past the frontier.
    if st.due > frontier.saturating_add(MINUTE) {
        st.due = i64::MIN;
        queue.insert((i64::MIN, service.to_string()));
    }
}

impl SlaEngine {
    /// The services due by `target`, taken out of the index, in name order (the order the
    /// full walk visited them in, so the records come out in the same order). Entries left
    /// behind by a touch (the service's due time moved since) are dropped on the way.
    pub(super) fn take_due(&mut self, target: i64) -> Vec<String> {
        if self.walks_all() {
            return self.state.services.keys().cloned().collect();
        }
        let mut due = Vec::new();
        while self.due.first().is_some_and(|(t, _)| *t <= target) {
            let Some((t, service)) = self.due.pop_first() else {
                break;
            };
            if self.state.services.get(&service).is_some_and(|st| st.due == t) {
                due.push(service);
            }
        }
        due.sort_unstable();
        due
    }

    /// Walks one service due by `target` (from where the full walk would have left it)
    /// and puts it back in the index at its next due time.
    pub(super) fn walk(&mut self, service: String, target: i64, out: &mut Vec<SlaOutput>) {
        self.walks += 1;
        let frontier = self.state.frontier;
        // Not a change to write: a restore derives it (`checkpoint.rs`).
        if let Some(st) = self.state.services.get_mut_untracked(&service) {
            st.evaluated_to = st.evaluated_to.max(frontier);
        }
        self.evaluate_until(&service, target, out);
        self.schedule(service);
    }

    /// Puts `service` in the index at its next due time (the name taken out of the index
    /// goes back in: a busy service walked every minute costs no allocation).
    fn schedule(&mut self, service: String) {
        let Some(next) = self.state.services.get(&service).map(|st| self.next_step(st)) else {
            return;
        };
        if let Some(st) = self.state.services.get_mut_untracked(&service) {
            st.due = next;
            self.due.insert((next, service));
        }
    }

    /// Whether every clock move walks every service, as before the index: a test-only mode
    /// the tests compare the index with.
    fn walks_all(&self) -> bool {
        #[cfg(test)]
        return self.walk_all;
        #[cfg(not(test))]
        false
    }

    /// The next minute boundary at which walking a service (at its `evaluated_to`) can change
    /// anything: the next minute while it is busy (an outage in progress, an alert firing,
    /// traffic or downtime within the burn-rate windows), else the first of its open bins'
    /// closes, its day's end and its month's end.
    pub(super) fn next_step(&self, st: &ServiceState) -> i64 {
        let from = st.evaluated_to;
        let longest = self.longest_window();
        // Traffic makes a service busy only while some burn-rate window can still see it
        // (its rings are freed then: `free_rings`): past that every burn rate is zero, and
        // nothing else it is judged on moves between its bins' closes.
        let busy = !st.active.is_empty()
            || !st.firing.is_empty()
            || self.rules.rings.read_after(st, from)
            || st
                .downtime
                .intervals()
                .last()
                .is_some_and(|(_, end)| *end + longest > from);
        if busy {
            return from + MINUTE;
        }
        let mut next = st.month_end;
        for series in st.series.values() {
            if let Some((&bin, _)) = series.minutes.first_key_value() {
                next = next.min(bin + MINUTE);
            }
            if let Some((&hour, _)) = series.hours.first_key_value() {
                next = next.min(hour + HOUR);
            }
            if let Some(day) = &series.day {
                next = next.min(day.end);
            }
        }
        next.max(from + MINUTE)
    }

    /// Rebuilds the index after a restore: every service from where the full walk would
    /// have left it.
    pub(super) fn rebuild_due(&mut self) {
        let frontier = self.state.frontier;
        self.due.clear();
        for service in self.state.services.keys().cloned().collect::<Vec<_>>() {
            if let Some(st) = self.state.services.get_mut_untracked(&service) {
                st.evaluated_to = st.evaluated_to.max(frontier);
            }
            self.schedule(service);
        }
    }

    /// How many service walks the clock moves made (a service due by a move is walked once
    /// in it): what the index saves shows here, and tests check that idle services cost none.
    pub fn services_walked(&self) -> u64 {
        self.walks
    }
}

/// The state as `State`'s derived encoding writes it (the same fields in the same order),
/// with each service's `evaluated_to` read as `max(own, frontier)`: a snapshot holds what
/// the full walk would have left, so it is the same however many services were skipped.
pub(super) struct SnapshotState<'a>(pub(super) &'a State);

impl Serialize for SnapshotState<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let st = self.0;
        let services = Services(&st.services, st.frontier);
        (st.frontier, services, &st.incidents, &st.alert_outages, &st.stats).serialize(s)
    }
}

/// The services map, each state with its `evaluated_to` raised to the frontier (`.1`).
struct Services<'a>(&'a BTreeMap<String, ServiceState>, i64);

impl Serialize for Services<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (service, st) in self.0 {
            if st.evaluated_to >= self.1 {
                map.serialize_entry(service, st)?;
            } else {
                // A copy of one service at a time: a snapshot is a pass over the whole state.
                let mut raised = st.clone();
                raised.evaluated_to = self.1;
                map.serialize_entry(service, &raised)?;
            }
        }
        map.end()
    }
}
