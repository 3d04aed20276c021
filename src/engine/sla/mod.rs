//! The SLA engine: latency samples into HdrHistogram windows (minute bins merged into hours,
//! days and calendar months), outage intervals into availability, and both into objectives,
//! error budgets, burn-rate alerts, breaches and monthly reports with service credits. Pure
//! and synchronous like the correlation engine: event time only, a watermark for "now".

mod checkpoint;
pub mod config;
mod corrections;
mod due;
pub mod histogram;
pub mod incident_terms;
mod incident_timers;
pub mod intervals;
pub mod output;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use self::config::{Contract, Granularity, Objective, ObjectiveKind, SlaConfig};
use self::histogram::HistogramConfig;
use self::intervals::IntervalSet;
pub use self::output::{
    BurnAlert, DayLine, Finding, IncidentLine, IncidentSla, IncidentSummary, ObjectiveResult, PriorityLine, Report,
    ReportChange, SlaOutput, Window,
};
use super::changelog::Tracked;
use super::correlate::config::CorrelateConfig;
use super::correlate::maintenance::MaintenanceWindow;
use super::correlate::topology::Cmdb;
use super::correlate::Output;
use super::Catalog;
use crate::model::{AlertStatus, Event, LatencyBatch, LatencySample, Outcome};

const MINUTE: i64 = 60_000_000_000;
const HOUR: i64 = 60 * MINUTE;
/// Minute counters kept for burn rates over windows up to this long; longer windows use
/// hour counters, so a service's burn-rate state stays a few kilobytes.
const MINUTE_RING: i64 = 6 * HOUR;
/// 3: the state, the ignored-span counts, the incident timers, coverage, days and
/// corrections; 2 (still read): the first
/// two; 1 (still read): the state alone.
const SNAPSHOT_VERSION: u32 = 3;

/// The engine could not be set up or restored.
#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    #[error("config: {0}")]
    Config(String),
    #[error("snapshot: {0}")]
    Snapshot(String),
}

/// Checks the `[sla]` section: objectives, histogram settings, business hours, lateness.
pub fn check(config: &SlaConfig, correlation: &CorrelateConfig, catalog: Catalog) -> Result<(), SlaError> {
    Rules::new(config, correlation, catalog).map(drop)
}

/// Counters of what the engine did, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaStats {
    /// Samples recorded into windows.
    pub samples: u64,
    /// Samples for windows already closed.
    pub late_samples: u64,
    /// Samples of services without a contract.
    pub uncontracted_samples: u64,
    /// Samples outside business hours.
    pub outside_hours: u64,
    /// Durations above the histogram's highest trackable value (clamped).
    pub clamped: u64,
    /// Spans that are not samples of their contract (`samples`). Kept after the state in
    /// snapshots (`Ignored`), so that version-1 snapshots still read.
    #[serde(skip)]
    pub spans_ignored: u64,
}

/// What the SLA engine holds for its windows ([`SlaEngine::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlaMemory {
    /// Contracted services with state.
    pub services: usize,
    /// Series (the whole service, and each operation with its own objectives).
    pub series: usize,
    /// Open minutes (counters only, no histogram).
    pub open_minutes: usize,
    /// Open hours, each with a histogram.
    pub open_hours: usize,
    /// Heap bytes of the open hours' histogram counts.
    pub open_hour_bytes: usize,
    /// Days and months being accumulated from closed hours, held compressed.
    pub accumulators: usize,
    /// Heap bytes of their compressed (V2 deflate) histograms.
    pub accumulator_bytes: usize,
}

/// The counts a snapshot carries after the state (version 2): ignored spans, and the late
/// samples of each service's running month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Ignored {
    total: u64,
    /// Per service, since the last `SpansIgnored` records.
    pending: BTreeMap<String, u64>,
    /// Per service: late samples of its running month.
    late_in_month: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
struct Rules {
    cfg: SlaConfig,
    /// How long a resolved incident can still reopen (the correlation engine's reopen and
    /// group windows): its priority is kept that long.
    reopenable: i64,
    hist: HistogramConfig,
    cmdb: Cmdb,
    windows: Vec<MaintenanceWindow>,
    /// Shared, so that a lookup on the sample and evaluation paths copies a pointer.
    contracts: BTreeMap<String, std::sync::Arc<Contract>>,
    lateness: i64,
    /// How far back the burn-rate windows read each ring (`Rings`).
    rings: Rings,
}

/// How much of a service's traffic the burn-rate windows read: minute counters for the
/// windows up to six hours, hour counters for the longer ones. A ring no window reads is
/// never filled, and one whose newest slot every window has left is freed, so an idle
/// service holds no counters and a service without burn-rate alerts none at all.
#[derive(Debug, Clone, Copy, Default)]
struct Rings {
    /// The longest window (long or short) of at most six hours: 0, no minute ring.
    minutes: i64,
    /// The longest window past six hours: 0, no hour ring.
    hours: i64,
}

impl Rings {
    fn of(cfg: &SlaConfig) -> Rings {
        let ns = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let windows = cfg.burn_rate_alerts.iter().flat_map(|r| [ns(r.long), ns(r.short)]);
        let mut rings = Rings::default();
        for w in windows {
            if w <= MINUTE_RING {
                rings.minutes = rings.minutes.max(w);
            } else {
                rings.hours = rings.hours.max(w);
            }
        }
        rings
    }

    /// Whether a window reads a slot of either ring at a boundary after `at` (a window of
    /// length w at boundary b sums the slots from b − w: `sum_ring`). While it does, the
    /// service is walked every minute, its burn rates moving.
    fn read_after(self, st: &ServiceState, at: i64) -> bool {
        let next = at.saturating_add(MINUTE);
        st.minute_ring
            .back()
            .is_some_and(|(m, _, _)| m.saturating_add(self.minutes) >= next)
            || st
                .hour_ring
                .back()
                .is_some_and(|(h, _, _)| h.saturating_add(self.hours) >= next)
    }
}

impl Rules {
    /// The rules of `config`. `correlation` gives how long an incident may still change (its
    /// reopen and group windows, its lateness): the engine keeps that much of its history.
    fn new(config: &SlaConfig, correlation: &CorrelateConfig, catalog: Catalog) -> Result<Rules, SlaError> {
        let cfg = config.clone();
        cfg.histogram
            .validate()
            .map_err(|e| SlaError::Config(format!("sla.histogram: {e}")))?;
        cfg.check().map_err(SlaError::Config)?;
        let mut contracts = BTreeMap::new();
        for (i, c) in cfg.contracts.iter().enumerate() {
            if let Some(bh) = &c.business_hours {
                bh.validate()
                    .map_err(|e| SlaError::Config(format!("sla.contracts[{i}].business_hours: {e}")))?;
            }
            if contracts
                .insert(c.service.clone(), std::sync::Arc::new(c.clone()))
                .is_some()
            {
                return Err(SlaError::Config(format!(
                    "sla.contracts[{i}]: a second contract for {:?}",
                    c.service
                )));
            }
        }
        let cmdb = Cmdb::build(catalog.services, catalog.cis).map_err(SlaError::Config)?;
        let ns = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let reopenable = ns(correlation.reopen_window)
            .max(ns(correlation.group_window))
            .saturating_add(ns(correlation.allowed_lateness));
        Ok(Rules {
            reopenable,
            hist: cfg.histogram.clone(),
            lateness: i64::try_from(cfg.allowed_lateness.as_nanos()).unwrap_or(i64::MAX),
            cfg,
            cmdb,
            windows: catalog.maintenance.to_vec(),
            contracts,
            rings: Rings::of(config),
        })
    }
}

/// Samples of one minute bin of one service, to be recorded into a series.
struct Run<'a> {
    bin: i64,
    times: &'a [i64],
    durations: &'a [i64],
    /// Whether the sample at an index of the whole batch failed.
    is_error: &'a dyn Fn(usize) -> bool,
    /// The batch index of `times[0]`.
    first: usize,
    hours: Option<&'a intervals::BusinessHours>,
    tz: chrono_tz::Tz,
}

impl Run<'_> {
    /// Records the run into `series`: its hour histogram and its minute counts. Returns
    /// (recorded, outside business hours, clamped); `None` when no histogram could be made.
    fn record_into(&self, series: &mut Series, hist_cfg: &HistogramConfig) -> Option<(u64, u64, u64)> {
        let slot = match series.hours.entry(floor_to(self.bin, HOUR)) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => e.insert(HourBin {
                hist: LiveHist(hist_cfg.new_open().ok()?),
                count: 0,
                errors: 0,
                sum_ns: 0,
            }),
        };
        let (mut outside, mut clamped) = (0u64, 0u64);
        let mut minute = Minute::default();
        for (idx, &t) in self.times.iter().enumerate() {
            if self.hours.is_some_and(|h| !h.contains(self.tz, t)) {
                outside += 1;
                continue;
            }
            let d = self.durations[idx].max(0);
            if slot.hist.0.record(hist_cfg, d, 1) {
                clamped += 1;
            }
            slot.count += 1;
            slot.sum_ns += d as u128;
            minute.count += 1;
            if (self.is_error)(self.first + idx) {
                slot.errors += 1;
                minute.errors += 1;
            }
        }
        let m = series.minutes.entry(self.bin).or_default();
        m.count += minute.count;
        m.errors += minute.errors;
        Some((minute.count, outside, clamped))
    }
}

/// An open hour's histogram, snapshotted in its V2 compressed encoding (the bytes of the
/// dense live histogram it stands for, so snapshots read both ways across the change).
#[derive(Debug, Clone)]
struct LiveHist(histogram::Open);

impl Serialize for LiveHist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.encode().map_err(serde::ser::Error::custom)?.serialize(s)
    }
}

impl<'de> Deserialize<'de> for LiveHist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = Vec::<u8>::deserialize(d)?;
        histogram::Open::decode(&bytes)
            .map(LiveHist)
            .map_err(serde::de::Error::custom)
    }
}

/// Counters of one open minute: lateness is decided per minute and burn rates need only
/// counts, so a minute holds no histogram.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Minute {
    count: u64,
    errors: u64,
}

/// One open hour: the live histogram samples are recorded into.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HourBin {
    hist: LiveHist,
    count: u64,
    errors: u64,
    sum_ns: u128,
}

/// A window being accumulated from closed bins, held compressed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Acc {
    start: i64,
    end: i64,
    bytes: Vec<u8>,
    count: u64,
    errors: u64,
    sum_ns: u128,
}

impl Acc {
    fn mean_ns(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.count as f64
        }
    }
}

/// Windows of one service or one operation of it. Hours are open histograms
/// ([`histogram::Open`]: the buckets recorded, sparse, usually one hour open at a time);
/// days and months are held compressed and merged into once per hour and once per day, so a
/// service holds no dense histogram between its windows' closes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Series {
    minutes: BTreeMap<i64, Minute>,
    hours: BTreeMap<i64, HourBin>,
    day: Option<Acc>,
    month: Option<Acc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Streak {
    run: u32,
    first_day_ns: i64,
    longest_in_month: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ServiceState {
    /// Series by operation; "" is the whole service.
    series: BTreeMap<String, Series>,
    month_start: i64,
    month_end: i64,
    requests: u64,
    errors: u64,
    /// (minute start, requests, errors), the last six hours.
    minute_ring: VecDeque<(i64, u64, u64)>,
    /// (hour start, requests, errors), the longest burn-rate window.
    hour_ring: VecDeque<(i64, u64, u64)>,
    streaks: BTreeMap<String, Streak>,
    /// Outages in progress: id → start.
    active: BTreeMap<String, i64>,
    /// Outages that ended (this month and the longest burn-rate window before it).
    downtime: IntervalSet,
    /// Maintenance windows announced by sources.
    source_maintenance: IntervalSet,
    /// Burn-rate alerts firing: "objective/rule" → key.
    firing: BTreeMap<String, String>,
    /// Keys of findings already emitted (no finding is recorded twice).
    emitted: BTreeSet<String>,
    /// Breaches per period.
    breaches: BTreeMap<String, u32>,
    /// Minute boundary up to which this service was evaluated.
    evaluated_to: i64,
    /// Whole-service days closed but not yet judged for streaks: (start, end, count, sum ns).
    days_to_judge: Vec<(i64, i64, u64, u128)>,
    /// Local date of the last day judged for streaks.
    last_judged_day: Option<chrono::NaiveDate>,
    /// When the clock must next walk this service: its entry in `SlaEngine::due` (derived,
    /// not written; `due.rs`).
    #[serde(skip, default = "due::unscheduled")]
    due: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IncidentRef {
    service: String,
    priority: u8,
    /// When it resolved; it is forgotten once it can no longer reopen.
    resolved_ns: Option<i64>,
}

/// Written through `due::SnapshotState`, which keeps these fields' order.
#[derive(Debug, Clone, Default, Deserialize)]
struct State {
    /// Bins ending at or before this are closed.
    frontier: i64,
    services: Tracked<BTreeMap<String, ServiceState>>,
    incidents: Tracked<BTreeMap<String, IncidentRef>>,
    /// Outage alerts firing: alert key → service.
    alert_outages: Tracked<BTreeMap<String, String>>,
    stats: SlaStats,
    /// Ignored spans per service not yet reported as `SpansIgnored`.
    #[serde(skip)]
    ignored_pending: BTreeMap<String, u64>,
    /// Late samples per service of its running month (its report's `late_samples`).
    #[serde(skip)]
    late_in_month: Tracked<BTreeMap<String, u64>>,
    /// Incident timers by incident (`incident_timers.rs`), after the rest in snapshots
    /// (version 3), so that older snapshots still read.
    #[serde(skip)]
    incident_clocks: Tracked<BTreeMap<String, incident_timers::IncidentClock>>,
    /// Per service: the minutes of its running month with samples (the report's coverage),
    /// after the timers in snapshots.
    #[serde(skip)]
    coverage: Tracked<BTreeMap<String, IntervalSet>>,
    /// Per service: the closed days of its running month (the report's daily figures),
    /// after the coverage in snapshots.
    #[serde(skip)]
    days: Tracked<BTreeMap<String, Vec<DayFigures>>>,
    /// Per service: its last final month while open to corrections (`corrections.rs`),
    /// after the days in snapshots.
    #[serde(skip)]
    corrections: Tracked<BTreeMap<String, corrections::Correctable>>,
}

/// One closed local day of a service (whole service, every request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayFigures {
    pub start_ns: i64,
    pub end_ns: i64,
    pub requests: u64,
    pub errors: u64,
    pub mean_ns: f64,
    pub p95_ns: i64,
}

/// The SLA engine.
#[derive(Debug, Clone)]
pub struct SlaEngine {
    rules: Rules,
    state: State,
    /// The next checkpoint lists every item (`checkpoint.rs`): true for a new engine and
    /// one restored from a whole snapshot, whose rows the store may not hold.
    full: bool,
    /// (due time, service) of every service: the next instant at which walking it can
    /// change anything (`due.rs`). Derived, rebuilt on restore. An entry whose time is no
    /// longer its service's `due` is stale and dropped when reached.
    due: BTreeSet<(i64, String)>,
    /// Service walks made by clock moves ([`SlaEngine::services_walked`]).
    walks: u64,
    /// Walk every service at every clock move, as before the index: tests compare the two.
    #[cfg(test)]
    walk_all: bool,
}

fn floor_to(t: i64, step: i64) -> i64 {
    t - t.rem_euclid(step)
}

impl SlaEngine {
    /// An engine with no state (`Rules::new` for the arguments).
    pub fn new(config: &SlaConfig, correlation: &CorrelateConfig, catalog: Catalog) -> Result<SlaEngine, SlaError> {
        Ok(SlaEngine {
            rules: Rules::new(config, correlation, catalog)?,
            state: State {
                frontier: i64::MIN,
                ..State::default()
            },
            full: true,
            due: BTreeSet::new(),
            walks: 0,
            #[cfg(test)]
            walk_all: false,
        })
    }

    /// The state as bytes, for checkpoints.
    pub fn snapshot(&self) -> Vec<u8> {
        let ignored = Ignored {
            total: self.state.stats.spans_ignored,
            pending: self.state.ignored_pending.clone(),
            late_in_month: (*self.state.late_in_month).clone(),
        };
        let state = due::SnapshotState(&self.state);
        let s = &self.state;
        let tail = (&s.incident_clocks, &s.coverage, &s.days, &s.corrections);
        postcard::to_stdvec(&(SNAPSHOT_VERSION, &state, &ignored, tail)).unwrap_or_default()
    }

    /// An engine with the given config and a snapshot's state.
    pub fn restore(
        config: &SlaConfig,
        correlation: &CorrelateConfig,
        catalog: Catalog,
        snapshot: &[u8],
    ) -> Result<SlaEngine, SlaError> {
        let ((version, mut state), rest): ((u32, State), &[u8]) =
            postcard::take_from_bytes(snapshot).map_err(|e| SlaError::Snapshot(e.to_string()))?;
        let bad = |e: postcard::Error| SlaError::Snapshot(e.to_string());
        match version {
            1 => {}
            2 | SNAPSHOT_VERSION => {
                let (ignored, rest): (Ignored, &[u8]) = postcard::take_from_bytes(rest).map_err(bad)?;
                state.stats.spans_ignored = ignored.total;
                state.ignored_pending = ignored.pending;
                state.late_in_month = Tracked::from_map(ignored.late_in_month);
                if version == SNAPSHOT_VERSION {
                    (state.incident_clocks, state.coverage, state.days, state.corrections) =
                        postcard::from_bytes(rest).map_err(bad)?;
                }
            }
            other => {
                return Err(SlaError::Snapshot(format!(
                    "version {other}, this build reads 1 to {SNAPSHOT_VERSION}"
                )))
            }
        }
        let mut engine = SlaEngine {
            rules: Rules::new(config, correlation, catalog)?,
            state,
            full: true,
            due: BTreeSet::new(),
            walks: 0,
            #[cfg(test)]
            walk_all: false,
        };
        engine.rebuild_due();
        Ok(engine)
    }

    /// Counters so far.
    pub fn stats(&self) -> &SlaStats {
        &self.state.stats
    }

    /// The minute up to which every window has been judged (`i64::MIN` before the first).
    pub fn frontier(&self) -> i64 {
        self.state.frontier
    }

    /// How many contracted services have state (a running report each).
    pub fn services(&self) -> usize {
        self.state.services.len()
    }

    /// The running month's report of every contracted service that has state, as of the
    /// frontier: what the service stores so that finance sees the month before it closes.
    pub fn running_reports(&self) -> Vec<Report> {
        let upto = self.state.frontier;
        if upto == i64::MIN {
            return Vec::new();
        }
        self.rules
            .contracts
            .keys()
            .filter_map(|service| self.report(service, upto))
            .collect()
    }

    /// Bytes held by the counts of open-hour histograms (sparse or dense, [`histogram::Open`]).
    pub fn live_histogram_bytes(&self) -> usize {
        self.memory().open_hour_bytes
    }

    /// What the engine holds for its windows, by its own accounting: counts and heap bytes
    /// of the open hours' histograms and of the closed windows' compressed accumulators.
    pub fn memory(&self) -> SlaMemory {
        let mut m = SlaMemory {
            services: self.state.services.len(),
            ..SlaMemory::default()
        };
        for series in self.state.services.values().flat_map(|s| s.series.values()) {
            m.series += 1;
            m.open_minutes += series.minutes.len();
            m.open_hours += series.hours.len();
            m.open_hour_bytes += series.hours.values().map(|h| h.hist.0.heap_bytes()).sum::<usize>();
            for acc in [&series.day, &series.month].into_iter().flatten() {
                m.accumulators += 1;
                m.accumulator_bytes += acc.bytes.capacity();
            }
        }
        m
    }

    /// The configured time zone of a service's contract.
    pub fn timezone(&self, service: &str) -> Option<chrono_tz::Tz> {
        self.rules.contracts.get(service).map(|c| c.timezone)
    }

    // ---- input --------------------------------------------------------------------------

    /// Takes a canonical event: latency into windows, outage alerts into downtime.
    pub fn apply(&mut self, event: &Event, out: &mut Vec<SlaOutput>) {
        match event {
            Event::Sample(s) => self.sample(s, out),
            Event::Batch(b) => self.batch(b, out),
            Event::Alert(a) => {
                let key = format!("{}/{}", a.source, a.fingerprint);
                if a.status == AlertStatus::Resolved as i32 {
                    if let Some(service) = self.state.alert_outages.remove(&key) {
                        self.outage_end(&service, &format!("alert:{key}"), a.time_ns);
                    }
                } else if a.status == AlertStatus::Firing as i32 && !self.state.alert_outages.contains_key(&key) {
                    let ci = if a.ci.is_empty() { &a.host } else { &a.ci };
                    let service = if a.service.is_empty() {
                        self.rules.cmdb.service_of(ci).unwrap_or(ci).to_string()
                    } else {
                        a.service.clone()
                    };
                    let outage = self
                        .rules
                        .contracts
                        .get(&service)
                        .is_some_and(|c| c.outage_alerts.contains(&a.alert_name));
                    if outage && !a.fingerprint.is_empty() {
                        // Down from the problem's start (a long-firing alert's is older than
                        // its notification), judged from the notification's month on.
                        let id = format!("alert:{key}");
                        self.outage_start(&service, &id, a.started_ns(), a.time_ns);
                        self.state.alert_outages.insert(key, service);
                    }
                }
            }
            Event::Change(_) | Event::Maintenance(_) => {}
        }
    }

    /// Takes a record of the correlation engine: incidents at the contract's outage priority
    /// are outages; maintenance windows announced by sources are excluded.
    pub fn apply_correlation(&mut self, record: &Output) {
        self.clock_record(record);
        match record {
            Output::IncidentOpened {
                incident,
                service,
                time_ns,
                priority,
                ..
            } => {
                self.state.incidents.insert(
                    incident.clone(),
                    IncidentRef {
                        service: service.clone(),
                        priority: *priority,
                        resolved_ns: None,
                    },
                );
                self.maybe_outage(incident, *time_ns);
            }
            Output::PriorityChanged {
                incident, time_ns, to, ..
            } => {
                if let Some(inc) = self.state.incidents.get_mut(incident) {
                    inc.priority = *to;
                }
                self.maybe_outage(incident, *time_ns);
            }
            Output::IncidentReopened { incident, time_ns, .. } => {
                if let Some(inc) = self.state.incidents.get_mut(incident) {
                    inc.resolved_ns = None;
                }
                self.maybe_outage(incident, *time_ns);
            }
            Output::IncidentResolved { incident, time_ns, .. } => {
                if let Some(inc) = self.state.incidents.get_mut(incident) {
                    inc.resolved_ns = Some(*time_ns);
                    let service = inc.service.clone();
                    self.outage_end(&service, &format!("incident:{incident}"), *time_ns);
                }
            }
            Output::MaintenanceWindow {
                service,
                ci,
                start_ns,
                end_ns,
                removed,
                ..
            } => {
                let service = if service.is_empty() {
                    self.rules.cmdb.service_of(ci).unwrap_or(ci).to_string()
                } else {
                    service.clone()
                };
                if let Some(st) = self.service_state(&service, *start_ns) {
                    // A removed window ends early: its recorded end is the removal.
                    if !*removed || end_ns > start_ns {
                        st.source_maintenance.insert(*start_ns, *end_ns);
                    }
                }
            }
            _ => {}
        }
    }

    fn maybe_outage(&mut self, incident: &str, t: i64) {
        let Some(inc) = self.state.incidents.get(incident) else {
            return;
        };
        let service = inc.service.clone();
        let is_outage = self
            .rules
            .contracts
            .get(&service)
            .is_some_and(|c| inc.priority <= c.outage_priority);
        if is_outage {
            self.outage_start(&service, &format!("incident:{incident}"), t, t);
        }
    }

    /// An outage of `service` since `start`, learnt of at `at`: a service with no state yet
    /// starts in `at`'s month (or the clock's), so an old start does not reopen a month that
    /// is over; the downtime is clipped to the months it can still change.
    fn outage_start(&mut self, service: &str, id: &str, start: i64, at: i64) {
        if let Some(st) = self.service_state(service, at) {
            st.active.entry(id.to_string()).or_insert(start);
        }
    }

    fn outage_end(&mut self, service: &str, id: &str, t: i64) {
        // The end of an outage the service does not have (an incident below its outage
        // priority) changes nothing: no row to write, nothing due.
        let ongoing = self
            .state
            .services
            .get(service)
            .is_some_and(|st| st.active.contains_key(id));
        if !ongoing {
            return;
        }
        if let Some(st) = self.state.services.get_mut(service) {
            if let Some(start) = st.active.remove(id) {
                st.downtime.insert(start, t.max(start));
            }
            due::mark_due(&mut self.due, self.state.frontier, service, st);
        }
    }

    /// The state of a contracted service, created on first use with its current month: the
    /// month of `t`, or of the clock when `t` is behind it (an outage reported with an old
    /// start): months the clock has passed are final, slaflow does not open them again.
    fn service_state(&mut self, service: &str, t: i64) -> Option<&mut ServiceState> {
        let contract = self.rules.contracts.get(service)?;
        let tz = contract.timezone;
        let frontier = self.state.frontier;
        let t = t.max(frontier);
        let st = self.state.services.entry_or_insert_with(service.to_string(), || {
            let (month_start, month_end) = intervals::month_bounds(tz, t).unwrap_or((t, t));
            let mut st = ServiceState::default_for(month_start, month_end);
            st.evaluated_to = floor_to(t, MINUTE);
            st
        });
        // Whatever the caller changes, the next clock move walks the service.
        due::mark_due(&mut self.due, frontier, service, st);
        Some(st)
    }

    fn sample(&mut self, s: &LatencySample, out: &mut Vec<SlaOutput>) {
        let request = self
            .rules
            .contracts
            .get(&s.service)
            .is_none_or(|c| c.samples.counts(s.role));
        if !request {
            self.state.stats.spans_ignored += 1;
            match self.state.ignored_pending.get_mut(&s.service) {
                Some(n) => *n += 1,
                None => {
                    self.state.ignored_pending.insert(s.service.clone(), 1);
                }
            }
            return;
        }
        let error = s.outcome == Outcome::Error as i32;
        self.record_run(
            &s.service,
            &s.operation,
            &[s.time_ns],
            &[s.duration_ns],
            &|_| error,
            out,
        );
    }

    fn batch(&mut self, b: &LatencyBatch, out: &mut Vec<SlaOutput>) {
        let n = b.times_ns.len().min(b.durations_ns.len());
        let errors = &b.errors;
        self.record_run(
            &b.service,
            &b.operation,
            &b.times_ns[..n],
            &b.durations_ns[..n],
            &|i| errors.get(i).copied().unwrap_or(false),
            out,
        );
    }

    /// Records samples of one service/operation, fetching each minute bin once per run of
    /// samples that fall into it (batches are mostly in time order).
    fn record_run(
        &mut self,
        service: &str,
        operation: &str,
        times: &[i64],
        durations: &[i64],
        is_error: &dyn Fn(usize) -> bool,
        out: &mut Vec<SlaOutput>,
    ) {
        let Some(contract) = self.rules.contracts.get(service).cloned() else {
            self.state.stats.uncontracted_samples += times.len() as u64;
            return;
        };
        let own_series = contract.operations.iter().any(|o| o == operation);
        let frontier = self.state.frontier;
        let hist_cfg = self.rules.hist.clone();
        let mut i = 0;
        while i < times.len() {
            let bin = floor_to(times[i], MINUTE);
            let mut j = i + 1;
            while j < times.len() && floor_to(times[j], MINUTE) == bin {
                j += 1;
            }
            let run = Run {
                bin,
                times: &times[i..j],
                durations: &durations[i..j],
                is_error,
                first: i,
                hours: contract.business_hours.as_ref(),
                tz: contract.timezone,
            };
            if bin + MINUTE <= frontier {
                self.record_late(service, operation, &run, out);
                i = j;
                continue;
            }
            let Some(st) = self.service_state(service, times[i]) else {
                return;
            };
            let ops: &[&str] = if own_series { &["", operation] } else { &[""] };
            // (recorded, outside business hours, clamped), counted on the service series.
            let mut counted = (0u64, 0u64, 0u64);
            for (k, op) in ops.iter().enumerate() {
                let series = st.series.entry((*op).to_string()).or_default();
                let Some(c) = run.record_into(series, &hist_cfg) else {
                    return;
                };
                if k == 0 {
                    counted = c;
                }
            }
            self.state.stats.samples += counted.0;
            self.state.stats.outside_hours += counted.1;
            self.state.stats.clamped += counted.2;
            i = j;
        }
    }

    /// Samples of a minute already closed: counted (in the month's report too, when of the
    /// service's current month) and reported, not merged; one of a month before the
    /// service's current one (final) is marked so, for its dead letter.
    fn record_late(&mut self, service: &str, operation: &str, run: &Run<'_>, out: &mut Vec<SlaOutput>) {
        let frontier = self.state.frontier;
        let month = self.state.services.get(service).map(|st| st.month_start..st.month_end);
        for (k, (&t, &duration)) in run.times.iter().zip(run.durations).enumerate() {
            let error = (run.is_error)(run.first + k);
            let final_month = month.as_ref().is_some_and(|m| t < m.start);
            if final_month && self.correct(service, operation, t, duration, error) {
                continue; // a correction of the final month (`corrections.rs`)
            }
            self.state.stats.late_samples += 1;
            if month.as_ref().is_some_and(|m| m.contains(&t)) {
                *self.state.late_in_month.entry_or_insert_with(service.to_string(), || 0) += 1;
            }
            out.push(SlaOutput::LateSample {
                service: service.to_string(),
                operation: operation.to_string(),
                time_ns: t,
                frontier_ns: frontier,
                duration_ns: duration,
                error,
                final_month,
            });
        }
    }

    // ---- time ---------------------------------------------------------------------------

    /// Moves the watermark: closes every minute bin that ends at or before `watermark −
    /// allowed lateness`, merging it into its hour, day and month, and evaluates objectives,
    /// budgets and burn rates at each minute boundary up to there.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<SlaOutput>) {
        let target = floor_to(watermark.saturating_sub(self.rules.lateness), MINUTE);
        if target <= self.state.frontier {
            return;
        }
        // Ignored spans are reported as the clock moves: at most once a minute per service.
        for (service, count) in std::mem::take(&mut self.state.ignored_pending) {
            out.push(SlaOutput::SpansIgnored { service, count });
        }
        // Only the services due by the target: the others would be judged at it with no
        // output and no change (`due.rs`).
        for service in self.take_due(target) {
            self.walk(service, target, out);
        }
        self.advance_clocks(target, out);
        self.state.frontier = target;
        self.issue_corrections(out);
        let reopenable = self.rules.reopenable;
        self.state
            .incidents
            .retain(|_, inc| inc.resolved_ns.is_none_or(|r| r.saturating_add(reopenable) > target));
    }

    /// Walks a service's minute boundaries up to `target`, skipping stretches where nothing
    /// can change (no open bins, no outage, no recent traffic, no alert firing).
    fn evaluate_until(&mut self, service: &str, target: i64, out: &mut Vec<SlaOutput>) {
        loop {
            let Some(st) = self.state.services.get(service) else {
                return;
            };
            if st.evaluated_to >= target {
                return;
            }
            let boundary = self.next_step(st).min(target);
            self.close_through(service, boundary, out);
            self.evaluate_at(service, boundary, out);
            // Not a change to write: a restore derives it (`checkpoint.rs`).
            if let Some(st) = self.state.services.get_mut_untracked(service) {
                st.evaluated_to = boundary;
            }
            self.close_month_if_due(service, boundary, out);
            self.free_rings(service, boundary);
        }
    }

    /// Frees a service's rings once no burn-rate window reads them after `at` (a change to
    /// write: a restore must not hold them either).
    fn free_rings(&mut self, service: &str, at: i64) {
        let rings = self.rules.rings;
        let stale =
            self.state.services.get(service).is_some_and(|st| {
                (!st.minute_ring.is_empty() || !st.hour_ring.is_empty()) && !rings.read_after(st, at)
            });
        if stale {
            self.state.services.touch(service);
            if let Some(st) = self.state.services.get_mut_untracked(service) {
                st.minute_ring = VecDeque::new();
                st.hour_ring = VecDeque::new();
            }
        }
    }

    fn longest_window(&self) -> i64 {
        self.rules
            .cfg
            .burn_rate_alerts
            .iter()
            .map(|r| i64::try_from(r.long.as_nanos()).unwrap_or(i64::MAX))
            .max()
            .unwrap_or(0)
    }

    /// Closes the minutes and hours ending at or before `boundary`, and the day that ends by then.
    fn close_through(&mut self, service: &str, boundary: i64, out: &mut Vec<SlaOutput>) {
        let Some(tz) = self.timezone(service) else { return };
        let hist_cfg = self.rules.hist.clone();
        let emit = self.rules.cfg.emit_windows.clone();
        // A service with nothing due by the boundary does not change: left unmarked, so an
        // idle service costs no checkpoint row as the clock moves.
        let due = self.state.services.get(service).is_some_and(|st| {
            st.series.values().any(|s| {
                s.minutes.first_key_value().is_some_and(|(m, _)| m + MINUTE <= boundary)
                    || s.hours.first_key_value().is_some_and(|(h, _)| h + HOUR <= boundary)
                    || s.day.as_ref().is_some_and(|d| d.end <= boundary)
            })
        });
        if !due {
            return;
        }
        let Some(st) = self.state.services.get_mut(service) else {
            return;
        };
        let closing = Closing {
            service,
            tz,
            hist_cfg: &hist_cfg,
            emit: &emit,
            boundary,
        };
        let mut ring_add = Vec::new();
        let emitted_before = out.len();
        for (op, series) in st.series.iter_mut() {
            let minutes = closing.minutes(series);
            if op.is_empty() {
                ring_add = minutes;
            }
            closing.hours(op, series, &mut st.days_to_judge, out);
            if series.day.as_ref().is_some_and(|d| d.end <= boundary) {
                closing.day(op, series, &mut st.days_to_judge, out);
            }
        }
        self.keep_days(service, &out[emitted_before..]);
        let rings = self.rules.rings;
        if !ring_add.is_empty() {
            let covered = self
                .state
                .coverage
                .entry_or_insert_with(service.to_string(), IntervalSet::new);
            for &(minute, requests, _) in &ring_add {
                if requests > 0 {
                    covered.insert(minute, minute + MINUTE);
                }
            }
        }
        let Some(st) = self.state.services.get_mut(service) else {
            return;
        };
        for (minute, requests, errors) in ring_add {
            st.requests += requests;
            st.errors += errors;
            if rings.minutes > 0 {
                push_ring(&mut st.minute_ring, minute, requests, errors, rings.minutes, MINUTE);
            }
            if rings.hours > 0 {
                push_ring(
                    &mut st.hour_ring,
                    floor_to(minute, HOUR),
                    requests,
                    errors,
                    rings.hours,
                    HOUR,
                );
            }
        }
    }
}

impl SlaEngine {
    /// Keeps the whole service's days among the windows just closed (`out`), for the
    /// running month's report.
    fn keep_days(&mut self, service: &str, out: &[SlaOutput]) {
        for o in out {
            if let SlaOutput::WindowClosed(w) = o {
                if w.granularity == Granularity::Day && w.operation.is_empty() {
                    let days = self.state.days.entry_or_insert_with(service.to_string(), Vec::new);
                    days.push(DayFigures {
                        start_ns: w.start_ns,
                        end_ns: w.end_ns,
                        requests: w.count,
                        errors: w.errors,
                        mean_ns: w.mean_ns,
                        p95_ns: w.p95_ns,
                    });
                }
            }
        }
    }
}

/// Closing a service's windows up to a boundary.
struct Closing<'a> {
    service: &'a str,
    tz: chrono_tz::Tz,
    hist_cfg: &'a HistogramConfig,
    emit: &'a [Granularity],
    boundary: i64,
}

impl Closing<'_> {
    /// Removes the series' minutes ending by the boundary: (start, requests, errors) of each.
    fn minutes(&self, series: &mut Series) -> Vec<(i64, u64, u64)> {
        let mut closed = Vec::new();
        while let Some(entry) = series.minutes.first_entry() {
            if *entry.key() + MINUTE > self.boundary {
                break;
            }
            let start = *entry.key();
            let minute = entry.remove();
            closed.push((start, minute.count, minute.errors));
        }
        closed
    }

    /// Closes the series' hours ending by the boundary: each emitted, and merged into its
    /// (local) day, which closes when an hour of the next day comes.
    fn hours(
        &self,
        op: &str,
        series: &mut Series,
        days_to_judge: &mut Vec<(i64, i64, u64, u128)>,
        out: &mut Vec<SlaOutput>,
    ) {
        while let Some(entry) = series.hours.first_entry() {
            let start = *entry.key();
            if start + HOUR > self.boundary {
                break;
            }
            let bin = entry.remove();
            if self.emit.contains(&Granularity::Hour) {
                // Encoded only to be emitted: the day merges the open counts themselves.
                let acc = Acc {
                    start,
                    end: start + HOUR,
                    bytes: bin.hist.0.encode().unwrap_or_default(),
                    count: bin.count,
                    errors: bin.errors,
                    sum_ns: bin.sum_ns,
                };
                out.push(SlaOutput::WindowClosed(window(
                    self.service,
                    op,
                    Granularity::Hour,
                    &acc,
                )));
            }
            // Days are local; an hour belongs to the day it starts in.
            let (day_start, day_end) = intervals::day_bounds(self.tz, start).unwrap_or((start, start + HOUR));
            if series.day.as_ref().is_some_and(|d| d.start != day_start) {
                self.day(op, series, days_to_judge, out);
            }
            let day = series.day.get_or_insert_with(|| Acc {
                start: day_start,
                end: day_end,
                ..Acc::default()
            });
            // Our own bytes failing to merge would mean corruption; the counts still count.
            let _ = histogram::merge_open_into(self.hist_cfg, &mut day.bytes, &bin.hist.0);
            day.count += bin.count;
            day.errors += bin.errors;
            day.sum_ns += bin.sum_ns;
        }
    }

    /// Closes the series' open day.
    fn day(
        &self,
        op: &str,
        series: &mut Series,
        days_to_judge: &mut Vec<(i64, i64, u64, u128)>,
        out: &mut Vec<SlaOutput>,
    ) {
        if let Some(done) = series.day.take() {
            close_day(
                self.service,
                op,
                done,
                self.emit,
                self.hist_cfg,
                &mut series.month,
                self.tz,
                days_to_judge,
                out,
            );
        }
    }
}

/// Closes a day: emits it, merges it into its month, and queues it for the streak rules.
#[allow(clippy::too_many_arguments)]
fn close_day(
    service: &str,
    op: &str,
    day: Acc,
    emit: &[Granularity],
    hist_cfg: &HistogramConfig,
    month: &mut Option<Acc>,
    tz: chrono_tz::Tz,
    days_to_judge: &mut Vec<(i64, i64, u64, u128)>,
    out: &mut Vec<SlaOutput>,
) {
    if op.is_empty() {
        days_to_judge.push((day.start, day.end, day.count, day.sum_ns));
    }
    let (start, end) = intervals::month_bounds(tz, day.start).unwrap_or((day.start, day.end));
    let m = month.get_or_insert_with(|| Acc {
        start,
        end,
        ..Acc::default()
    });
    // Our own bytes failing to merge would mean corruption; the counts still count.
    let _ = histogram::merge_encoded_into(hist_cfg, &mut m.bytes, &day.bytes);
    m.count += day.count;
    m.errors += day.errors;
    m.sum_ns += day.sum_ns;
    if emit.contains(&Granularity::Day) {
        out.push(SlaOutput::WindowClosed(window(service, op, Granularity::Day, &day)));
    }
}

fn push_ring(ring: &mut VecDeque<(i64, u64, u64)>, slot: i64, requests: u64, errors: u64, keep: i64, step: i64) {
    match ring.back_mut() {
        Some(last) if last.0 == slot => {
            last.1 += requests;
            last.2 += errors;
        }
        _ => ring.push_back((slot, requests, errors)),
    }
    while ring.front().is_some_and(|f| f.0 + step + keep <= slot + step) {
        ring.pop_front();
    }
}

fn window(service: &str, op: &str, granularity: Granularity, acc: &Acc) -> Window {
    let summary = histogram::decode(&acc.bytes)
        .map(|h| histogram::summarize(&h))
        .unwrap_or_default();
    Window {
        service: service.to_string(),
        operation: op.to_string(),
        granularity,
        start_ns: acc.start,
        end_ns: acc.end,
        count: acc.count,
        errors: acc.errors,
        mean_ns: acc.mean_ns(),
        p50_ns: summary.p50_ns,
        p95_ns: summary.p95_ns,
        p99_ns: summary.p99_ns,
        max_ns: summary.max_ns,
        histogram: histogram::to_text(&acc.bytes),
    }
}

mod evaluate;

#[cfg(test)]
mod tests;
