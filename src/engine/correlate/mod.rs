//! The correlation engine: turns canonical alert, change and maintenance events into
//! incidents — deduplication, lifecycle, grouping, CI topology, suspected changes, ITIL
//! priority, major incidents, flapping and maintenance suppression. Pure and synchronous:
//! `apply` buffers an event, `advance` moves the watermark and emits what happened.

mod checkpoint;
pub mod config;
pub mod maintenance;
pub mod output;
pub mod priority;
pub mod topology;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use self::config::{CorrelateConfig, Criticality};
use self::maintenance::MaintenanceWindow;
pub use self::output::Output;
use self::topology::Cmdb;
use super::changelog::{self, Changes, Item, Tracked};
use super::reorder::{event_time, Fnv, ReorderBuffer};
use super::Catalog;
use crate::model::{AlertEvent, AlertStatus, ChangeEvent, Event, MaintenanceAction, MaintenanceEvent};

/// Version of the snapshot layout; a snapshot of another version is refused, not misread.
/// 2: an incident holds the keys of its cached alerts only, and counts its members
/// (`Incident::joined`, `Incident::dropped`). Version 1 snapshots (layout 1 checkpoints
/// written by earlier builds) still restore, upgraded (`upgrade_v1`).
const SNAPSHOT_VERSION: u32 = 2;
/// The snapshot version before incidents counted their members.
const SNAPSHOT_V1: u32 = 1;
/// Version of an incremental checkpoint's head and items (`take_changes`). 2: events held
/// for reordering, timers, and an incident's alerts and CIs are items of their own, and
/// incident items carry the member counts. Version 1 still reads (`checkpoint.rs`).
const HEAD_VERSION: u32 = 2;

/// The engine could not be set up or restored.
#[derive(Debug, thiserror::Error)]
pub enum CorrelateError {
    /// The CMDB or a maintenance window in the config is inconsistent.
    #[error("config: {0}")]
    Config(String),
    /// A snapshot could not be read.
    #[error("snapshot: {0}")]
    Snapshot(String),
}

/// Checks what the engine compiles of its inputs (CMDB references, maintenance windows).
pub fn check(config: &CorrelateConfig, catalog: Catalog) -> Result<(), CorrelateError> {
    Rules::new(config, catalog).map(drop)
}

/// Counters of what the engine did, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Alert events processed.
    pub alerts: u64,
    /// Repeats of active alerts.
    pub duplicates: u64,
    /// Incidents opened.
    pub incidents_opened: u64,
    /// Alerts suppressed by maintenance windows.
    pub suppressed: u64,
    /// Resolves and acknowledgements of unknown alerts.
    pub unmatched: u64,
    /// Events later than the allowed lateness.
    pub late: u64,
    /// Alerts evicted from the dedup cache (TTL or size).
    pub evictions: u64,
}

/// The rules, compiled from the config once; not part of the state.
#[derive(Debug, Clone)]
struct Rules {
    cfg: CorrelateConfig,
    cmdb: Cmdb,
    windows: Vec<MaintenanceWindow>,
    lateness: i64,
    group: i64,
    lifetime: i64,
    reopen: i64,
    lookback: i64,
    ttl: i64,
    flap_window: i64,
    quiet: i64,
}

fn ns(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl Rules {
    fn new(c: &CorrelateConfig, catalog: Catalog) -> Result<Rules, CorrelateError> {
        c.check().map_err(CorrelateError::Config)?;
        let cmdb = Cmdb::build(catalog.services, catalog.cis).map_err(CorrelateError::Config)?;
        for (i, w) in catalog.maintenance.iter().enumerate() {
            w.validate()
                .map_err(|e| CorrelateError::Config(format!("maintenance[{i}]: {e}")))?;
        }
        Ok(Rules {
            cmdb,
            windows: catalog.maintenance.to_vec(),
            lateness: ns(c.allowed_lateness),
            group: ns(c.group_window),
            lifetime: ns(c.max_incident_lifetime),
            reopen: ns(c.reopen_window),
            lookback: ns(c.change_lookback),
            ttl: ns(c.dedup.ttl),
            flap_window: ns(c.flapping.window),
            quiet: ns(c.flapping.quiet_period),
            cfg: c.clone(),
        })
    }
}

/// What the engine remembers of one alert (by source and fingerprint).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AlertState {
    seq: u64,
    incident: String,
    active: bool,
    acked: bool,
    last_seen: i64,
    occurrences: u64,
    severity: u32,
    priority: u8,
    ci: String,
    resolved_at: i64,
    toggles: VecDeque<i64>,
    flapping: bool,
    last_toggle: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
}

/// An incident but its alerts and counts: what its checkpoint item holds (with the counts)
/// and what every version of the snapshot holds first. Postcard writes a struct as its
/// fields in order, so an `Incident` holding this reads and writes the bytes it did when
/// these were its own fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IncidentHead {
    id: String,
    service: String,
    opened_ns: i64,
    status: IncidentStatus,
    resolved_ns: i64,
    priority: u8,
    affected_users: u64,
    major: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Incident {
    head: IncidentHead,
    /// The keys of this incident's alerts that are still in the dedup cache: an alert's key
    /// leaves when the alert is evicted, or when it fires again into another incident. So
    /// the keys held by all incidents together never exceed `[correlate.dedup] max_entries`
    /// however many alerts ever joined. The store keeps the whole membership (one row per
    /// `incident_opened`/`alert_joined`/`incident_reopened` record). With the keys of those
    /// firing and the CIs they came from: sets, as maps to `()` so that they are tracked: a
    /// checkpoint writes them as items of their own (`checkpoint.rs`), those added or removed
    /// since the last one, not all of them with every change (postcard writes a map to `()`
    /// as the set it is, so snapshots read as before).
    members: Tracked<BTreeMap<String, ()>>,
    active: Tracked<BTreeMap<String, ()>>,
    cis: Tracked<BTreeMap<String, ()>>,
    /// Alerts that became members, each counted once per membership (an alert evicted and
    /// seen again, or that left and came back, is counted again): `members.len() ==
    /// joined - dropped`.
    joined: u64,
    /// Member keys let go: evicted from the dedup cache, or moved to another incident.
    dropped: u64,
}

/// An incident as version 1 snapshots hold it: every alert key that ever joined, no counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IncidentV1 {
    head: IncidentHead,
    members: BTreeSet<String>,
    active: BTreeSet<String>,
    cis: BTreeSet<String>,
}

/// How many alert keys an incident holds, and how many alerts it ever had (see
/// [`Correlator::incident_members`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberCounts {
    /// Keys held: the incident's alerts still in the dedup cache.
    pub held: usize,
    /// Alerts that joined (each membership once): `held + dropped`.
    pub joined: u64,
    /// Keys let go when their alert was evicted or moved to another incident.
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Timer {
    /// A flapping alert may have settled.
    FlapQuiet(String),
    /// A resolved incident can no longer be reopened or grouped into.
    Prune(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SourceWindow {
    service: String,
    ci: String,
    start_ns: i64,
    end_ns: i64,
}

/// Serialises the alert map in key order, so that a snapshot's bytes are a function of the
/// state alone (postcard writes a map as its length and entries: the format is unchanged,
/// and snapshots written in hash order still read).
fn sorted<S: serde::Serializer>(alerts: &Tracked<HashMap<String, AlertState>>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(alerts.iter().collect::<BTreeMap<_, _>>())
}

/// Everything the engine remembers; what a snapshot holds. Generic in the incident only to
/// read version 1 snapshots (`State<IncidentV1>`); the engine's state is `State<Incident>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State<I = Incident> {
    /// Events up to this event time have been processed.
    frontier: i64,
    /// The latest watermark passed to `advance` (restored with the state, so a restored
    /// engine continues from the same "now").
    watermark: i64,
    pending: ReorderBuffer,
    /// Written sorted by key (`sorted`): a `HashMap`'s order depends on the process's random
    /// hash seed, so equal states would give other bytes in another process (a restarted
    /// worker's checkpoint would differ from an uninterrupted one's by swapped entries).
    #[serde(serialize_with = "sorted")]
    alerts: Tracked<HashMap<String, AlertState>>,
    /// (last seen, seq) of every alert, oldest first, for TTL and size eviction.
    lru: BTreeSet<(i64, u64)>,
    seq_keys: BTreeMap<u64, String>,
    next_seq: u64,
    incidents: Tracked<BTreeMap<String, I>>,
    /// Service → incidents not yet pruned (open, or resolved but still reopenable).
    by_service: BTreeMap<String, BTreeSet<String>>,
    /// CI → open incidents with an alert on it.
    open_by_ci: BTreeMap<String, BTreeSet<String>>,
    /// CI → (time, "source/change_id"), sorted by time.
    changes: Tracked<BTreeMap<String, Vec<(i64, String)>>>,
    /// A set, as a map to `()` so that it is tracked: postcard writes a map to `()` as the
    /// set it is (a length, then the keys), so whole snapshots read as before.
    timers: Tracked<BTreeMap<(i64, Timer), ()>>,
    source_windows: Tracked<BTreeMap<String, SourceWindow>>,
    stats: Stats,
    /// The alert item keys of incidents pruned since the last checkpoint, to delete.
    #[serde(skip)]
    pruned: Vec<Vec<(String, Vec<u8>)>>,
}

impl<I> Default for State<I> {
    fn default() -> Self {
        State {
            frontier: i64::MIN,
            watermark: i64::MIN,
            pending: ReorderBuffer::default(),
            alerts: Tracked::default(),
            lru: BTreeSet::new(),
            seq_keys: BTreeMap::new(),
            next_seq: 0,
            incidents: Tracked::default(),
            by_service: BTreeMap::new(),
            open_by_ci: BTreeMap::new(),
            changes: Tracked::default(),
            timers: Tracked::default(),
            source_windows: Tracked::default(),
            stats: Stats::default(),
            pruned: Vec::new(),
        }
    }
}

/// The correlation engine.
#[derive(Debug, Clone)]
pub struct Correlator {
    rules: Rules,
    state: State,
    /// Scratch space for alert keys on the duplicate path (not state).
    key_buf: String,
    /// The next checkpoint lists every item (`checkpoint.rs`): true for a new engine and
    /// one restored from a whole snapshot, whose rows the store may not hold.
    full: bool,
}

impl Correlator {
    /// An engine with no state.
    pub fn new(config: &CorrelateConfig, catalog: Catalog) -> Result<Correlator, CorrelateError> {
        Ok(Correlator {
            rules: Rules::new(config, catalog)?,
            state: State::default(),
            key_buf: String::new(),
            full: true,
        })
    }

    /// Buffers an event until the watermark passes it. An event older than what was already
    /// processed cannot be reordered: it is processed at once and reported as late.
    pub fn apply(&mut self, event: Event, out: &mut Vec<Output>) {
        let t = event_time(&event);
        if t < self.state.frontier {
            self.state.stats.late += 1;
            out.push(Output::LateEvent {
                time_ns: t,
                frontier_ns: self.state.frontier,
            });
            self.process(&event, out);
        } else {
            self.state.pending.push(event);
        }
    }

    /// Moves the watermark: processes, in event-time order, every buffered event older than
    /// `watermark − allowed lateness`, and the timers due by then.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<Output>) {
        self.state.watermark = self.state.watermark.max(watermark);
        let target = watermark.saturating_sub(self.rules.lateness);
        while let Some(event) = self.state.pending.pop_until(target) {
            let t = event_time(&event);
            self.fire_timers(t, out);
            self.state.frontier = self.state.frontier.max(t);
            self.process(&event, out);
        }
        self.fire_timers(target, out);
        self.state.frontier = self.state.frontier.max(target);
    }

    /// Processes every buffered event (end of input), firing timers only up to the last event.
    pub fn flush(&mut self, out: &mut Vec<Output>) {
        while let Some(event) = self.state.pending.pop_until(i64::MAX) {
            let t = event_time(&event);
            self.fire_timers(t, out);
            self.state.frontier = self.state.frontier.max(t);
            self.process(&event, out);
        }
    }

    /// The latest watermark passed to `advance` (`i64::MIN` before the first).
    pub fn watermark(&self) -> i64 {
        self.state.watermark
    }

    /// True when events are held for reordering.
    pub fn has_pending(&self) -> bool {
        !self.state.pending.is_empty()
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// Number of open (or acknowledged) incidents.
    pub fn open_incidents(&self) -> usize {
        self.state
            .incidents
            .values()
            .filter(|i| i.head.status != IncidentStatus::Resolved)
            .count()
    }

    /// Open (or acknowledged) incidents per ITIL priority: index 0 is P1, 4 is P5.
    pub fn open_by_priority(&self) -> [u64; 5] {
        let mut counts = [0u64; 5];
        for i in self.state.incidents.values() {
            if i.head.status != IncidentStatus::Resolved {
                counts[usize::from(i.head.priority.clamp(1, 5)) - 1] += 1;
            }
        }
        counts
    }

    /// Number of alerts in the dedup cache.
    pub fn cached_alerts(&self) -> usize {
        self.state.alerts.len()
    }

    /// The member counts of an incident the engine still keeps (open, or resolved and not
    /// yet pruned).
    pub fn incident_members(&self, incident: &str) -> Option<MemberCounts> {
        self.state.incidents.get(incident).map(|inc| MemberCounts {
            held: inc.members.len(),
            joined: inc.joined,
            dropped: inc.dropped,
        })
    }

    /// Alert keys held by all the incidents kept: never more than the alerts cached.
    pub fn held_member_keys(&self) -> usize {
        self.state.incidents.values().map(|inc| inc.members.len()).sum()
    }

    /// Maintenance intervals (configured and announced by sources) that cover a service or
    /// CI within [from, to), for the SLA engine to exclude.
    pub fn maintenance_intervals(&self, service: &str, ci: &str, from_ns: i64, to_ns: i64) -> Vec<(i64, i64)> {
        let mut all: Vec<(i64, i64)> =
            maintenance::covering(&self.rules.windows, service, ci, from_ns, to_ns).collect();
        all.extend(
            self.state
                .source_windows
                .values()
                .filter(|w| (!service.is_empty() && w.service == service) || (!ci.is_empty() && w.ci == ci))
                .filter(|w| w.start_ns < to_ns && w.end_ns > from_ns)
                .map(|w| (w.start_ns, w.end_ns)),
        );
        all.sort_unstable();
        all
    }

    /// The state as bytes (postcard), for checkpoints.
    pub fn snapshot(&self) -> Vec<u8> {
        // Serialising plain data structures into a Vec cannot fail.
        postcard::to_stdvec(&(SNAPSHOT_VERSION, &self.state)).unwrap_or_default()
    }

    /// An engine with the given config and the state of a snapshot (this version's, or a
    /// version 1 snapshot, upgraded).
    pub fn restore(config: &CorrelateConfig, catalog: Catalog, snapshot: &[u8]) -> Result<Correlator, CorrelateError> {
        let bad = |e: postcard::Error| CorrelateError::Snapshot(e.to_string());
        let (version, _): (u32, &[u8]) = postcard::take_from_bytes(snapshot).map_err(bad)?;
        let state = match version {
            SNAPSHOT_VERSION => postcard::from_bytes::<(u32, State)>(snapshot).map_err(bad)?.1,
            SNAPSHOT_V1 => upgrade_v1(
                postcard::from_bytes::<(u32, State<IncidentV1>)>(snapshot)
                    .map_err(bad)?
                    .1,
            ),
            _ => {
                return Err(CorrelateError::Snapshot(format!(
                    "version {version}, this build reads {SNAPSHOT_V1} and {SNAPSHOT_VERSION}"
                )))
            }
        };
        Ok(Correlator {
            rules: Rules::new(config, catalog)?,
            state,
            key_buf: String::new(),
            full: true,
        })
    }

    fn process(&mut self, event: &Event, out: &mut Vec<Output>) {
        match event {
            Event::Alert(a) => self.on_alert(a, out),
            Event::Change(c) => self.on_change(c),
            Event::Maintenance(m) => self.on_maintenance(m, out),
            // Latency is the SLA engine's.
            Event::Sample(_) | Event::Batch(_) => {}
        }
    }

    // ---- alerts -------------------------------------------------------------------------

    /// `source/fingerprint`: the source's identity, a configured field hash, or the default hash.
    fn alert_key(&self, a: &AlertEvent, service: &str, ci: &str) -> String {
        let dedup = &self.rules.cfg.dedup;
        if let Some(fields) = dedup.fingerprint_fields.get(&a.source) {
            let mut h = Fnv::default();
            for field in fields {
                h.str(field_value(a, service, ci, field));
            }
            return format!("{}/{:016x}", a.source, h.0);
        }
        if !a.fingerprint.is_empty() {
            return format!("{}/{}", a.source, a.fingerprint);
        }
        let mut h = Fnv::default();
        h.str(&a.source).str(service).str(ci).str(&a.alert_name);
        for label in &dedup.default_labels {
            h.str(label).str(a.labels.get(label).map_or("", String::as_str));
        }
        format!("{}/{:016x}", a.source, h.0)
    }

    fn service_of(&self, a: &AlertEvent) -> String {
        self.rules
            .cmdb
            .alert_service(&a.service, &a.ci, &a.host)
            .unwrap_or_else(|| "unknown".to_string())
    }

    fn alert_priority(
        &self,
        service: &str,
        severity: u32,
        affected_users: u64,
    ) -> (u8, priority::Level, priority::Level) {
        let impact = priority::impact(
            self.rules.cmdb.criticality(service),
            affected_users,
            &self.rules.cfg.impact,
        );
        let urgency = priority::urgency(severity);
        (priority::priority(impact, urgency), impact, urgency)
    }

    fn affected_users(&self, a: &AlertEvent, service: &str) -> u64 {
        a.affected_users
            .or_else(|| self.rules.cmdb.service(service).and_then(|s| s.affected_users))
            .unwrap_or(0)
    }

    fn on_alert(&mut self, a: &AlertEvent, out: &mut Vec<Output>) {
        self.state.stats.alerts += 1;
        if self.repeat(a, out) {
            return;
        }
        let ci = if a.ci.is_empty() { a.host.clone() } else { a.ci.clone() };
        let service = self.service_of(a);
        let key = self.alert_key(a, &service, &ci);
        match AlertStatus::try_from(a.status) {
            Ok(AlertStatus::Firing) => self.on_trigger(key, a, service, ci, false, out),
            Ok(AlertStatus::Acknowledged) => self.on_trigger(key, a, service, ci, true, out),
            Ok(AlertStatus::Resolved) => self.on_resolve(key, a.time_ns, out),
            _ => self.unmatched(key, "unspecified", a.time_ns, out),
        }
    }

    /// The storm path: a repeat of an active alert whose key is the source's own fingerprint,
    /// at no higher severity, is counted without resolving its service or allocating a key.
    /// Returns false when the alert needs the full path.
    fn repeat(&mut self, a: &AlertEvent, out: &mut Vec<Output>) -> bool {
        if a.status != AlertStatus::Firing as i32
            || a.fingerprint.is_empty()
            || self.rules.cfg.dedup.fingerprint_fields.contains_key(&a.source)
        {
            return false;
        }
        let mut key = std::mem::take(&mut self.key_buf);
        key.clear();
        key.push_str(&a.source);
        key.push('/');
        key.push_str(&a.fingerprint);
        let handled = match self.state.alerts.get(key.as_str()) {
            Some(st) if st.active && a.severity <= st.severity => {
                self.touch(&key, a.time_ns);
                self.state.stats.duplicates += 1;
                if let Some(st) = self.state.alerts.get_mut(key.as_str()) {
                    st.occurrences += 1;
                    out.push(Output::Duplicate {
                        incident: st.incident.clone(),
                        alert: key.clone(),
                        time_ns: a.time_ns,
                        occurrences: st.occurrences,
                    });
                }
                true
            }
            _ => false,
        };
        self.key_buf = key;
        handled
    }

    fn unmatched(&mut self, alert: String, status: &str, time_ns: i64, out: &mut Vec<Output>) {
        self.state.stats.unmatched += 1;
        out.push(Output::Unmatched {
            alert,
            status: status.into(),
            time_ns,
        });
    }

    fn touch(&mut self, key: &str, t: i64) {
        if let Some(st) = self.state.alerts.get_mut(key) {
            if t > st.last_seen {
                self.state.lru.remove(&(st.last_seen, st.seq));
                st.last_seen = t;
                self.state.lru.insert((t, st.seq));
            }
        }
    }

    /// A firing (or acknowledging) alert: a repeat of an active one, an acknowledgement of an
    /// unknown one, suppressed by maintenance, or firing (again): then it joins or reopens an
    /// incident, or opens one.
    fn on_trigger(
        &mut self,
        key: String,
        a: &AlertEvent,
        service: String,
        ci: String,
        ack: bool,
        out: &mut Vec<Output>,
    ) {
        let t = a.time_ns;
        self.touch(&key, t);
        let users = self.affected_users(a, &service);
        match self.state.alerts.get(&key).map(|st| st.active) {
            Some(true) => return self.on_repeat(key, a, &service, ack, users, out),
            // An acknowledgement of an alert slaflow never saw firing.
            None if ack => return self.unmatched(key, "acknowledged", t, out),
            _ => {}
        }
        if let Some(window) = self.maintenance_window(&service, &ci, &a.alert_name, t) {
            self.state.stats.suppressed += 1;
            out.push(Output::AlertSuppressed {
                alert: key,
                service,
                ci,
                time_ns: t,
                window,
            });
            return;
        }
        let priority = self.alert_priority(&service, a.severity, users);
        if self.state.alerts.contains_key(&key) {
            if self.on_refire(&key, a, &ci, ack, priority.0, users, out) {
                return;
            }
        } else {
            self.insert_alert(&key, &ci, t, a.severity, priority.0, ack, out);
        }
        // Seen now (`t`, what the dedup TTL counts from), the problem began at its start: a
        // long-firing alert's incident, and its downtime, start there.
        self.place(&key, &service, &ci, a.started_ns(), priority, users, out);
    }

    /// An active alert fires again: its first acknowledgement, or a duplicate (which may
    /// raise its severity, and its incident's priority).
    fn on_repeat(&mut self, key: String, a: &AlertEvent, service: &str, ack: bool, users: u64, out: &mut Vec<Output>) {
        let t = a.time_ns;
        let Some(st) = self.state.alerts.get_mut(&key) else {
            return;
        };
        let incident = st.incident.clone();
        if ack && !st.acked {
            st.acked = true;
            if let Some(inc) = self.state.incidents.get_mut(&incident) {
                if inc.head.status == IncidentStatus::Open {
                    inc.head.status = IncidentStatus::Acknowledged;
                }
            }
            out.push(Output::Acknowledged {
                incident,
                alert: key,
                time_ns: t,
            });
            return;
        }
        st.occurrences += 1;
        self.state.stats.duplicates += 1;
        out.push(Output::Duplicate {
            incident: incident.clone(),
            alert: key.clone(),
            time_ns: t,
            occurrences: st.occurrences,
        });
        if a.severity > st.severity {
            st.severity = a.severity;
            let (p, _, _) = self.alert_priority(service, a.severity, users);
            if let Some(st) = self.state.alerts.get_mut(&key) {
                st.priority = st.priority.min(p);
            }
            self.raise_priority(&incident, p, users, t, out);
        }
    }

    /// A resolved alert fires again: back into its incident while that is open, reopening it
    /// within the reopen window (true: done), else counted afresh (false: to be placed).
    #[allow(clippy::too_many_arguments)]
    fn on_refire(
        &mut self,
        key: &str,
        a: &AlertEvent,
        ci: &str,
        ack: bool,
        alert_p: u8,
        users: u64,
        out: &mut Vec<Output>,
    ) -> bool {
        let t = a.time_ns;
        let Some(st) = self.state.alerts.get_mut(key) else {
            return false;
        };
        st.active = true;
        st.acked = ack;
        st.severity = a.severity;
        st.priority = alert_p;
        st.ci = ci.to_string();
        let incident = st.incident.clone();
        self.toggle(key, t, out);
        match self
            .state
            .incidents
            .get(&incident)
            .map(|i| (i.head.status, i.head.resolved_ns))
        {
            Some((IncidentStatus::Open | IncidentStatus::Acknowledged, _)) => {
                self.activate(&incident, key, ci);
                out.push(Output::AlertRefired {
                    incident: incident.clone(),
                    alert: key.to_string(),
                    time_ns: t,
                });
                self.raise_priority(&incident, alert_p, users, t, out);
                true
            }
            Some((IncidentStatus::Resolved, resolved)) if t - resolved <= self.rules.reopen => {
                self.reopen(&incident, key, ci, t, out);
                self.raise_priority(&incident, alert_p, users, t, out);
                true
            }
            _ => {
                if let Some(st) = self.state.alerts.get_mut(key) {
                    st.occurrences = 1;
                }
                false
            }
        }
    }

    /// A firing alert without an open incident of its own: a symptom of an upstream CI's
    /// incident, a member of its service's recent incident (reopened if resolved), or the
    /// first alert of a new one.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        key: &str,
        service: &str,
        ci: &str,
        t: i64,
        priority: (u8, priority::Level, priority::Level),
        users: u64,
        out: &mut Vec<Output>,
    ) {
        let alert_p = priority.0;
        if let Some((incident, root)) = self.upstream_incident(ci) {
            self.join(&incident, key, ci, t, true, Some(root), out);
            self.raise_priority(&incident, alert_p, users, t, out);
        } else if let Some(incident) = self.service_incident(service, t) {
            if self
                .state
                .incidents
                .get(&incident)
                .is_some_and(|i| i.head.status == IncidentStatus::Resolved)
            {
                self.reopen(&incident, key, ci, t, out);
            } else {
                self.join(&incident, key, ci, t, false, None, out);
            }
            self.raise_priority(&incident, alert_p, users, t, out);
        } else {
            self.open_incident(key, service, ci, t, priority, users, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_alert(
        &mut self,
        key: &str,
        ci: &str,
        t: i64,
        severity: u32,
        priority: u8,
        acked: bool,
        out: &mut Vec<Output>,
    ) {
        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        self.state.alerts.insert(
            key.to_string(),
            AlertState {
                seq,
                incident: String::new(),
                active: true,
                acked,
                last_seen: t,
                occurrences: 1,
                severity,
                priority,
                ci: ci.to_string(),
                resolved_at: 0,
                toggles: VecDeque::new(),
                flapping: false,
                last_toggle: t,
            },
        );
        self.state.lru.insert((t, seq));
        self.state.seq_keys.insert(seq, key.to_string());
        while self.state.alerts.len() > self.rules.cfg.dedup.max_entries.max(1) {
            let Some(&(_, oldest)) = self.state.lru.first() else {
                break;
            };
            self.evict(oldest, t, out);
        }
    }

    fn on_resolve(&mut self, key: String, t: i64, out: &mut Vec<Output>) {
        self.touch(&key, t);
        let Some(st) = self.state.alerts.get_mut(&key) else {
            return self.unmatched(key, "resolved", t, out);
        };
        if !st.active {
            // A repeated recovery (Zabbix multi-generation, re-sent webhooks): nothing changes.
            self.state.stats.duplicates += 1;
            return;
        }
        st.active = false;
        st.acked = false;
        st.resolved_at = t;
        let incident = st.incident.clone();
        self.toggle(&key, t, out);
        let Some(inc) = self.state.incidents.get_mut(&incident) else {
            return;
        };
        inc.active.remove(key.as_str());
        if !inc.active.is_empty() || self.any_flapping(&incident) {
            // Other alerts still fire, or a flapping alert holds the incident open.
            out.push(Output::AlertResolved {
                incident,
                alert: key,
                time_ns: t,
            });
        } else {
            self.resolve_incident(&incident, t, "alerts_resolved", out);
        }
    }

    /// Records a firing↔resolved toggle and starts flapping when there were enough.
    fn toggle(&mut self, key: &str, t: i64, out: &mut Vec<Output>) {
        let flap = &self.rules.cfg.flapping;
        let Some(st) = self.state.alerts.get_mut(key) else {
            return;
        };
        st.toggles.push_back(t);
        while st.toggles.front().is_some_and(|&old| old < t - self.rules.flap_window) {
            st.toggles.pop_front();
        }
        st.last_toggle = t;
        if !st.flapping && st.toggles.len() >= flap.min_toggles as usize {
            st.flapping = true;
            out.push(Output::FlappingStarted {
                incident: st.incident.clone(),
                alert: key.to_string(),
                time_ns: t,
                toggles: st.toggles.len() as u32,
            });
        }
        if st.flapping {
            self.state.timers.insert(
                (t.saturating_add(self.rules.quiet), Timer::FlapQuiet(key.to_string())),
                (),
            );
        }
    }

    fn any_flapping(&self, incident: &str) -> bool {
        self.state.incidents.get(incident).is_some_and(|inc| {
            inc.members
                .keys()
                .any(|m| self.state.alerts.get(m).is_some_and(|a| a.flapping))
        })
    }

    /// The open incident of the nearest upstream CI, if any.
    fn upstream_incident(&self, ci: &str) -> Option<(String, String)> {
        self.rules.cmdb.upstream(ci).iter().find_map(|u| {
            let incident = self.state.open_by_ci.get(u)?.iter().next()?;
            Some((incident.clone(), u.clone()))
        })
    }

    /// An incident of the service this alert joins: an open one younger than the maximum
    /// lifetime, else one that started within the group window.
    fn service_incident(&self, service: &str, t: i64) -> Option<String> {
        let ids = self.state.by_service.get(service)?;
        let incidents = ids.iter().filter_map(|id| self.state.incidents.get(id));
        let mut grouped = None;
        for inc in incidents {
            let age = t - inc.head.opened_ns;
            if inc.head.status != IncidentStatus::Resolved && age <= self.rules.lifetime {
                return Some(inc.head.id.clone());
            }
            if inc.head.status == IncidentStatus::Resolved && (0..=self.rules.group).contains(&age) && grouped.is_none()
            {
                grouped = Some(inc.head.id.clone());
            }
        }
        grouped
    }

    fn activate(&mut self, incident: &str, key: &str, ci: &str) {
        if let Some(st) = self.state.alerts.get_mut(key) {
            let before = std::mem::replace(&mut st.incident, incident.to_string());
            if !before.is_empty() && before != incident {
                // Fired again into another incident (its own was resolved for good): the
                // key leaves the old one, whose alerts it no longer is.
                self.drop_member(&before, key);
            }
        }
        if let Some(inc) = self.state.incidents.get_mut(incident) {
            if !inc.members.contains_key(key) {
                inc.members.add(key);
                inc.joined += 1;
            }
            inc.active.add(key);
            inc.cis.add(ci);
        }
        self.state
            .open_by_ci
            .entry(ci.to_string())
            .or_default()
            .insert(incident.to_string());
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        incident: &str,
        key: &str,
        ci: &str,
        t: i64,
        symptom: bool,
        root: Option<String>,
        out: &mut Vec<Output>,
    ) {
        self.activate(incident, key, ci);
        out.push(Output::AlertJoined {
            incident: incident.to_string(),
            alert: key.to_string(),
            ci: ci.to_string(),
            time_ns: t,
            symptom,
            root_cause_ci: root,
        });
    }

    fn reopen(&mut self, incident: &str, key: &str, ci: &str, t: i64, out: &mut Vec<Output>) {
        if let Some(inc) = self.state.incidents.get_mut(incident) {
            inc.head.status = IncidentStatus::Open;
            for c in inc.cis.keys() {
                self.state
                    .open_by_ci
                    .entry(c.clone())
                    .or_default()
                    .insert(incident.to_string());
            }
        }
        self.activate(incident, key, ci);
        out.push(Output::IncidentReopened {
            incident: incident.to_string(),
            alert: key.to_string(),
            time_ns: t,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn open_incident(
        &mut self,
        key: &str,
        service: &str,
        ci: &str,
        t: i64,
        (priority, impact, urgency): (u8, priority::Level, priority::Level),
        users: u64,
        out: &mut Vec<Output>,
    ) {
        let mut h = Fnv::default();
        h.str(service).str(key).u64(t as u64);
        let id = format!("INC-{:016x}", h.0);
        let mut suspected = Vec::new();
        for c in std::iter::once(ci).chain(self.rules.cmdb.upstream(ci).iter().map(String::as_str)) {
            for (when, change) in self.state.changes.get(c).into_iter().flatten() {
                if (t.saturating_sub(self.rules.lookback)..=t).contains(when) {
                    suspected.push(format!("{change} on {c}"));
                }
            }
        }
        self.state.incidents.insert(
            id.clone(),
            Incident {
                head: IncidentHead {
                    id: id.clone(),
                    service: service.to_string(),
                    opened_ns: t,
                    status: IncidentStatus::Open,
                    resolved_ns: 0,
                    priority,
                    affected_users: users,
                    major: false,
                },
                members: Tracked::default(),
                active: Tracked::default(),
                cis: Tracked::default(),
                joined: 0,
                dropped: 0,
            },
        );
        self.state
            .by_service
            .entry(service.to_string())
            .or_default()
            .insert(id.clone());
        self.activate(&id, key, ci);
        self.state.stats.incidents_opened += 1;
        out.push(Output::IncidentOpened {
            incident: id.clone(),
            service: service.to_string(),
            alert: key.to_string(),
            ci: ci.to_string(),
            time_ns: t,
            priority,
            impact,
            urgency,
            suspected_changes: suspected,
        });
        self.check_major(&id, t, out);
    }

    /// Takes an alert's priority and affected users into the incident; reports a change and
    /// re-checks the major-incident rules.
    fn raise_priority(&mut self, incident: &str, alert_priority: u8, users: u64, t: i64, out: &mut Vec<Output>) {
        let Some(inc) = self.state.incidents.get_mut(incident) else {
            return;
        };
        inc.head.affected_users = inc.head.affected_users.max(users);
        if alert_priority < inc.head.priority {
            out.push(Output::PriorityChanged {
                incident: incident.to_string(),
                time_ns: t,
                from: inc.head.priority,
                to: alert_priority,
            });
            inc.head.priority = alert_priority;
        }
        self.check_major(incident, t, out);
    }

    fn check_major(&mut self, incident: &str, t: i64, out: &mut Vec<Output>) {
        let Some(inc) = self.state.incidents.get_mut(incident) else {
            return;
        };
        if inc.head.major {
            return;
        }
        let critical = self.rules.cmdb.criticality(&inc.head.service) == Criticality::Critical;
        let rule = self.rules.cfg.major_incident_rules.iter().find(|r| {
            inc.head.priority <= r.max_priority
                && (!r.critical_service || critical)
                && r.min_affected_users.is_none_or(|min| inc.head.affected_users >= min)
        });
        if let Some(rule) = rule {
            inc.head.major = true;
            out.push(Output::MajorIncident {
                incident: incident.to_string(),
                service: inc.head.service.clone(),
                time_ns: t,
                rule: rule.name.clone(),
                priority: inc.head.priority,
                affected_users: inc.head.affected_users,
            });
        }
    }

    fn resolve_incident(&mut self, incident: &str, t: i64, reason: &str, out: &mut Vec<Output>) {
        let Some(inc) = self.state.incidents.get_mut(incident) else {
            return;
        };
        inc.head.status = IncidentStatus::Resolved;
        inc.head.resolved_ns = t;
        for ci in inc.cis.keys() {
            if let Some(set) = self.state.open_by_ci.get_mut(ci) {
                set.remove(incident);
                if set.is_empty() {
                    self.state.open_by_ci.remove(ci);
                }
            }
        }
        let keep_until = t
            .saturating_add(self.rules.reopen)
            .max(inc.head.opened_ns.saturating_add(self.rules.group));
        self.state
            .timers
            .insert((keep_until, Timer::Prune(incident.to_string())), ());
        out.push(Output::IncidentResolved {
            incident: incident.to_string(),
            service: inc.head.service.clone(),
            opened_ns: inc.head.opened_ns,
            time_ns: t,
            reason: reason.to_string(),
        });
    }

    // ---- timers and eviction ------------------------------------------------------------

    /// Fires, in due-time order, every TTL eviction and timer due by `now`. Each is stamped
    /// with its due time, never with `now`, which depends on how the watermark moved.
    fn fire_timers(&mut self, now: i64, out: &mut Vec<Output>) {
        loop {
            let eviction = self
                .state
                .lru
                .first()
                .map(|&(seen, seq)| (seen.saturating_add(self.rules.ttl), seq));
            let timer = self.state.timers.first_key_value().map(|((due, _), ())| *due);
            match (eviction, timer) {
                (Some((due, seq)), t) if due <= now && t.is_none_or(|t| due <= t) => self.evict(seq, due, out),
                (_, Some(due)) if due <= now => {
                    let Some(((due, timer), ())) = self.state.timers.pop_first() else {
                        break;
                    };
                    self.fire(due, timer, out);
                }
                _ => break,
            }
        }
    }

    fn fire(&mut self, due: i64, timer: Timer, out: &mut Vec<Output>) {
        match timer {
            Timer::FlapQuiet(key) => self.flap_quiet(&key, due, out),
            Timer::Prune(id) => {
                let prunable = self.state.incidents.get(&id).is_some_and(|inc| {
                    inc.head.status == IncidentStatus::Resolved
                        && inc
                            .head
                            .resolved_ns
                            .saturating_add(self.rules.reopen)
                            .max(inc.head.opened_ns.saturating_add(self.rules.group))
                            <= due
                });
                if prunable {
                    if let Some(inc) = self.state.incidents.remove(&id) {
                        if let Some(set) = self.state.by_service.get_mut(&inc.head.service) {
                            set.remove(&id);
                            if set.is_empty() {
                                self.state.by_service.remove(&inc.head.service);
                            }
                        }
                        // Its alerts' rows go with it (the store deletes items by key).
                        self.state.pruned.push(inc.alert_keys());
                    }
                }
            }
        }
    }

    fn flap_quiet(&mut self, key: &str, due: i64, out: &mut Vec<Output>) {
        let Some(st) = self.state.alerts.get_mut(key) else {
            return;
        };
        if !st.flapping || st.last_toggle.saturating_add(self.rules.quiet) > due {
            return; // toggled again since: a later timer decides
        }
        st.flapping = false;
        st.toggles.clear();
        let incident = st.incident.clone();
        out.push(Output::FlappingEnded {
            incident: incident.clone(),
            alert: key.to_string(),
            time_ns: due,
        });
        let settled = self
            .state
            .incidents
            .get(&incident)
            .is_some_and(|inc| inc.head.status != IncidentStatus::Resolved && inc.active.is_empty());
        if settled && !self.any_flapping(&incident) {
            // The incident was over when its last alert resolved; the hold only kept it from
            // resolving and reopening on every toggle.
            let last_resolved = self.state.incidents.get(&incident).map_or(due, |inc| {
                inc.members
                    .keys()
                    .filter_map(|m| self.state.alerts.get(m))
                    .map(|a| a.resolved_at)
                    .max()
                    .unwrap_or(due)
            });
            self.resolve_incident(&incident, last_resolved, "flapping_settled", out);
        }
    }

    fn evict(&mut self, seq: u64, now: i64, out: &mut Vec<Output>) {
        let Some(key) = self.state.seq_keys.remove(&seq) else {
            return;
        };
        let Some(st) = self.state.alerts.remove(&key) else {
            return;
        };
        self.state.lru.remove(&(st.last_seen, seq));
        self.state.stats.evictions += 1;
        // The key goes with the alert: what an incident holds is bounded by the cache.
        self.drop_member(&st.incident, &key);
        let Some(inc) = self.state.incidents.get_mut(&st.incident) else {
            return;
        };
        let was_active = inc.active.remove(&key);
        if inc.head.status == IncidentStatus::Resolved || !inc.active.is_empty() {
            return;
        }
        // An incident with no active alert left resolves: when its last active alert goes
        // (as before), or when no cached alert of it flaps any more, as when the flapping
        // alert that held it open goes, whose quiet-period timer then finds no alert to
        // settle (the incident would stay open for ever).
        if was_active.is_some() || !self.any_flapping(&st.incident) {
            self.resolve_incident(&st.incident, now, "alerts_expired", out);
        }
    }

    /// Lets go of an alert's key in an incident, counting it.
    fn drop_member(&mut self, incident: &str, key: &str) {
        if let Some(inc) = self.state.incidents.get_mut(incident) {
            if inc.members.remove(key).is_some() {
                inc.dropped += 1;
            }
        }
    }

    // ---- changes and maintenance --------------------------------------------------------

    fn on_change(&mut self, c: &ChangeEvent) {
        let t = c.implemented_at_ns;
        let horizon = self.state.frontier.saturating_sub(self.rules.lookback);
        let list = self.state.changes.entry_or_insert_with(c.ci.clone(), Vec::new);
        list.retain(|(when, _)| *when >= horizon);
        let at = list.partition_point(|(when, _)| *when <= t);
        list.insert(at, (t, format!("{}/{}", c.source, c.change_id)));
    }

    fn on_maintenance(&mut self, m: &MaintenanceEvent, out: &mut Vec<Output>) {
        let removed = m.action == MaintenanceAction::Removed as i32;
        let (start_ns, end_ns) = if removed {
            let known = self.state.source_windows.remove(&m.window_id);
            // Removed early: the window ended when it was removed.
            (
                known.map_or(m.start_ns, |w| w.start_ns),
                m.end_ns.min(m.time_ns).max(m.start_ns),
            )
        } else {
            self.state.source_windows.insert(
                m.window_id.clone(),
                SourceWindow {
                    service: m.service.clone(),
                    ci: m.ci.clone(),
                    start_ns: m.start_ns,
                    end_ns: m.end_ns,
                },
            );
            (m.start_ns, m.end_ns)
        };
        out.push(Output::MaintenanceWindow {
            window: format!("{}/{}", m.source, m.window_id),
            service: m.service.clone(),
            ci: m.ci.clone(),
            start_ns,
            end_ns,
            removed,
            time_ns: m.time_ns,
        });
    }

    /// The maintenance window covering this alert at `t`, if any. A window a source
    /// announced for one check (Icinga `host!service`) covers only that check's alerts.
    fn maintenance_window(&self, service: &str, ci: &str, alert_name: &str, t: i64) -> Option<String> {
        if let Some(w) = self
            .rules
            .windows
            .iter()
            .find(|w| w.covers(service, ci) && w.contains(t))
        {
            return Some(w.name.clone());
        }
        self.state
            .source_windows
            .iter()
            .find(|(_, w)| {
                w.ci == ci && (w.service.is_empty() || w.service == alert_name) && (w.start_ns..w.end_ns).contains(&t)
            })
            .map(|(id, _)| id.clone())
    }
}

/// A version 1 state in this version's terms: each incident keeps the keys of its alerts
/// still cached (those whose alert names it), and counts every key it listed as joined and
/// the others as dropped. Nothing else differs between the versions.
fn upgrade_v1(v1: State<IncidentV1>) -> State {
    let State {
        frontier,
        watermark,
        pending,
        alerts,
        lru,
        seq_keys,
        next_seq,
        mut incidents,
        by_service,
        open_by_ci,
        changes,
        timers,
        source_windows,
        stats,
        pruned,
    } = v1;
    let incidents = incidents
        .take_all()
        .into_iter()
        .map(|(id, old)| (id, old.upgrade(&alerts)))
        .collect();
    State {
        frontier,
        watermark,
        pending,
        alerts,
        lru,
        seq_keys,
        next_seq,
        incidents: Tracked::from_map(incidents),
        by_service,
        open_by_ci,
        changes,
        timers,
        source_windows,
        stats,
        pruned,
    }
}

impl Incident {
    /// This incident as a version 1 snapshot held it (for the upgrade tests).
    #[cfg(test)]
    fn as_v1(&self) -> IncidentV1 {
        let set = |t: &Tracked<BTreeMap<String, ()>>| t.keys().cloned().collect::<BTreeSet<_>>();
        IncidentV1 {
            head: self.head.clone(),
            members: set(&self.members),
            active: set(&self.active),
            cis: set(&self.cis),
        }
    }
}

impl IncidentV1 {
    /// This incident in this version's terms, given the alerts cached (`upgrade_v1`).
    fn upgrade(self, alerts: &HashMap<String, AlertState>) -> Incident {
        let joined = self.members.len() as u64;
        let members: BTreeMap<String, ()> = self
            .members
            .into_iter()
            .filter(|m| alerts.get(m).is_some_and(|a| a.incident == self.head.id))
            .map(|m| (m, ()))
            .collect();
        let dropped = joined - members.len() as u64;
        let set = |keys: BTreeSet<String>| Tracked::from_map(keys.into_iter().map(|k| (k, ())).collect());
        Incident {
            head: self.head,
            members: Tracked::from_map(members),
            active: set(self.active),
            cis: set(self.cis),
            joined,
            dropped,
        }
    }
}

/// The value of a fingerprint field of an alert.
fn field_value<'a>(a: &'a AlertEvent, service: &'a str, ci: &'a str, field: &str) -> &'a str {
    match field {
        "source" => &a.source,
        "service" => service,
        "ci" => ci,
        "host" => &a.host,
        "alert_name" => &a.alert_name,
        other => other
            .strip_prefix("label:")
            .and_then(|l| a.labels.get(l))
            .map_or("", String::as_str),
    }
}

#[cfg(test)]
mod tests;
