//! Incident timers: how long an incident took to be responded to (first acknowledgement) and
//! resolved, against its contract's targets for its priority (`incident_terms.rs`).
//!
//! A timer counts the contract's incident hours (around the clock, or business hours with
//! holidays) minus maintenance, from the incident's opening: respond until the first
//! acknowledgement (or the resolution, if none came first), resolve until the resolution,
//! resumed by a reopen. A priority change retargets from its instant (the time counted so far
//! is kept): levels the new target had passed before are not warned about after the fact,
//! but a passed target is a breach at the change. Everything is event time, and everything
//! is emitted as the engine's clock passes it: a level at the instant it was crossed, an
//! outcome once the clock passes the stop, so a timer expires without any event, and replay,
//! HTTP and Kafka give the same records in the same order. Each record has a natural key and
//! is emitted once.

use serde::{Deserialize, Serialize};

use super::incident_terms::{IncidentHours, TargetKind};
use super::intervals::IntervalSet;
use super::*;

/// One incident's two timers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct IncidentClock {
    service: String,
    opened_ns: i64,
    /// (from, priority): the priority in effect from each instant, ascending.
    priorities: Vec<(i64, u8)>,
    /// The first acknowledgement (or resolution before one): respond stops.
    responded_ns: Option<i64>,
    /// The spans the resolve timer ran, [start, stop); the last one open while running.
    runs: Vec<(i64, Option<i64>)>,
    /// Keys (below the incident) of the records emitted.
    emitted: BTreeSet<String>,
    /// It met a major-incident rule.
    major: bool,
}

impl IncidentClock {
    fn priority_at(&self, t: i64) -> u8 {
        self.priorities
            .iter()
            .take_while(|(from, _)| *from <= t)
            .last()
            .map_or(5, |&(_, p)| p)
    }

    /// The last resolution, if resolved.
    fn resolved_ns(&self) -> Option<i64> {
        self.runs.last().and_then(|(_, stop)| *stop)
    }

    /// Whether both timers stopped and their outcomes were emitted.
    fn settled(&self) -> bool {
        let resolved = self.runs.last().is_some_and(|(_, stop)| stop.is_some());
        self.responded_ns.is_some() && resolved && self.pending_outcomes(i64::MAX).is_empty()
    }

    /// The spans a timer ran, and where it stopped (if it did).
    fn spans(&self, kind: TargetKind) -> (Vec<(i64, Option<i64>)>, Option<i64>) {
        match kind {
            TargetKind::Respond => (vec![(self.opened_ns, self.responded_ns)], self.responded_ns),
            TargetKind::Resolve => (self.runs.clone(), self.runs.last().and_then(|(_, s)| *s)),
        }
    }

    /// Outcomes not yet emitted of stops before `upto`: (kind, stop, run number).
    fn pending_outcomes(&self, upto: i64) -> Vec<(TargetKind, i64, usize)> {
        let mut due = Vec::new();
        if let Some(t) = self.responded_ns.filter(|t| *t < upto) {
            if !self
                .emitted
                .iter()
                .any(|k| k.starts_with("respond/met") || k.starts_with("respond/missed"))
            {
                due.push((TargetKind::Respond, t, 1));
            }
        }
        for (n, (_, stop)) in self.runs.iter().enumerate() {
            if let Some(t) = stop.filter(|t| *t < upto) {
                let n = n + 1;
                let done = [format!("resolve/met/{n}"), format!("resolve/missed/{n}")];
                if !done.iter().any(|k| self.emitted.contains(k)) {
                    due.push((TargetKind::Resolve, t, n));
                }
            }
        }
        due
    }
}

impl SlaEngine {
    /// Follows an incident record of the correlation engine: opens, retargets, stops and
    /// resumes the timers of incidents whose service has incident targets.
    pub(super) fn clock_record(&mut self, record: &Output) {
        match record {
            Output::IncidentOpened {
                incident,
                service,
                time_ns,
                priority,
                ..
            } => {
                let has_terms = self
                    .rules
                    .contracts
                    .get(service)
                    .is_some_and(|c| !c.incident_targets.is_empty());
                if has_terms && !self.state.incident_clocks.contains_key(incident) {
                    // Maintenance announced for the service is kept in its state.
                    self.service_state(service, *time_ns);
                    let clock = IncidentClock {
                        service: service.clone(),
                        opened_ns: *time_ns,
                        priorities: vec![(*time_ns, *priority)],
                        responded_ns: None,
                        runs: vec![(*time_ns, None)],
                        emitted: BTreeSet::new(),
                        major: false,
                    };
                    self.state.incident_clocks.insert(incident.clone(), clock);
                }
            }
            Output::PriorityChanged {
                incident, time_ns, to, ..
            } => self.with_clock(incident, |c| {
                let from = c.priorities.last().map_or(*time_ns, |&(f, _)| f).max(*time_ns);
                c.priorities.push((from, *to));
            }),
            Output::MajorIncident { incident, .. } => self.with_clock(incident, |c| c.major = true),
            Output::Acknowledged { incident, time_ns, .. } => self.with_clock(incident, |c| {
                c.responded_ns.get_or_insert(*time_ns);
            }),
            Output::IncidentResolved { incident, time_ns, .. } => self.with_clock(incident, |c| {
                c.responded_ns.get_or_insert(*time_ns);
                if let Some(run) = c.runs.last_mut().filter(|r| r.1.is_none()) {
                    run.1 = Some((*time_ns).max(run.0));
                }
            }),
            Output::IncidentReopened { incident, time_ns, .. } => self.with_clock(incident, |c| {
                let last = c.runs.last().and_then(|r| r.1).unwrap_or(*time_ns);
                if c.runs.last().is_some_and(|r| r.1.is_some()) {
                    c.runs.push(((*time_ns).max(last), None));
                }
            }),
            _ => {}
        }
    }

    /// Running timers past their last warning level and not yet breached, by (service,
    /// target): the near-deadline gauge.
    pub fn timers_near_deadline(&self) -> BTreeMap<(String, &'static str), u64> {
        let mut near = BTreeMap::new();
        for c in self.state.incident_clocks.values() {
            let Some(contract) = self.rules.contracts.get(&c.service) else {
                continue;
            };
            let Some(last) = contract
                .incident_warning_levels(&self.rules.cfg)
                .iter()
                .copied()
                .reduce(f64::max)
            else {
                continue;
            };
            for kind in [TargetKind::Respond, TargetKind::Resolve] {
                let (_, stop) = c.spans(kind);
                let k = kind.as_str();
                let warned = c.emitted.contains(&format!("{k}/warning_{last}"));
                if stop.is_none() && warned && !c.emitted.contains(&format!("{k}/breach")) {
                    *near.entry((c.service.clone(), k)).or_insert(0) += 1;
                }
            }
        }
        near
    }

    /// The month's incidents of `service` against their targets ([`IncidentSummary`]), and
    /// the credits their shares within target give (cause, percent): `None` without
    /// incident targets.
    pub(super) fn incident_summary(
        &self,
        service: &str,
        c: &Contract,
        ms: i64,
        me: i64,
    ) -> Option<(IncidentSummary, Vec<(String, f64)>)> {
        if c.incident_targets.is_empty() {
            return None;
        }
        let mut lines: BTreeMap<u8, Vec<(f64, f64, bool)>> = BTreeMap::new();
        let mut breached = Vec::new();
        let (mut open_at_end, mut majors) = (0, 0);
        let mut timeline = Vec::new();
        let mut clocks: Vec<(&String, &IncidentClock)> = self
            .state
            .incident_clocks
            .iter()
            .filter(|(_, k)| k.service == service)
            .collect();
        clocks.sort_by_key(|(id, k)| (k.opened_ns, id.as_str()));
        for (id, clock) in clocks {
            let Some(resolved) = clock.resolved_ns().filter(|r| *r < me) else {
                open_at_end += u32::from(clock.opened_ns < me);
                continue;
            };
            if resolved < ms {
                continue;
            }
            let within = [TargetKind::Respond, TargetKind::Resolve].into_iter().all(|kind| {
                let stop = clock.spans(kind).1.unwrap_or(resolved);
                let counted = self.spans_counted(c, clock, kind, stop).0.total();
                target_ns(c, clock.priority_at(stop), kind).is_none_or(|t| counted <= t)
            });
            if !within {
                breached.push(id.clone());
            }
            majors += u32::from(clock.major);
            timeline.push(IncidentLine {
                incident: id.clone(),
                priority: clock.priority_at(resolved),
                opened_ns: clock.opened_ns,
                resolved_ns: resolved,
                within_target: within,
            });
            let minutes = |t: i64| (t - clock.opened_ns) as f64 / MINUTE as f64;
            let acked = clock.responded_ns.unwrap_or(resolved);
            lines
                .entry(clock.priority_at(resolved))
                .or_default()
                .push((minutes(acked), minutes(resolved), within));
        }
        let mut credits = Vec::new();
        let priorities: Vec<PriorityLine> = lines.into_iter().map(|(p, times)| priority_line(p, &times)).collect();
        for term in &c.incident_credits {
            let short = priorities
                .iter()
                .find(|l| l.priority == term.priority)
                .is_some_and(|l| l.within_target_percent < term.min_within_target);
            if short {
                credits.push((
                    format!("incidents P{} within target", term.priority),
                    term.credit_percent,
                ));
            }
        }
        let summary = IncidentSummary {
            priorities,
            breached,
            open_at_end,
            majors,
            timeline,
        };
        Some((summary, credits))
    }

    fn with_clock(&mut self, incident: &str, change: impl FnOnce(&mut IncidentClock)) {
        if let Some(c) = self.state.incident_clocks.get_mut(incident) {
            change(c);
        }
    }

    /// Emits what the timers did before `upto` (the clock's new frontier), and forgets the
    /// timers that are settled and whose incident can no longer reopen.
    pub(super) fn advance_clocks(&mut self, upto: i64, out: &mut Vec<SlaOutput>) {
        let ids: Vec<String> = self.state.incident_clocks.keys().cloned().collect();
        for id in ids {
            let Some(clock) = self.state.incident_clocks.get(&id) else {
                continue;
            };
            let records = self.clock_records(&id, clock, upto);
            if records.is_empty() {
                continue;
            }
            if let Some(c) = self.state.incident_clocks.get_mut(&id) {
                for r in &records {
                    c.emitted
                        .insert(r.key[format!("incident_sla/{id}/").len()..].to_string());
                }
            }
            out.extend(records.into_iter().map(SlaOutput::IncidentSla));
        }
        // Kept for the month's report until the month of its resolution closed.
        let (incidents, services) = (&self.state.incidents, &self.state.services);
        self.state.incident_clocks.retain(|id, c| {
            let month_start = services.get(&c.service).map_or(i64::MAX, |st| st.month_start);
            !c.settled() || incidents.contains_key(id) || c.resolved_ns().is_some_and(|r| r >= month_start)
        });
    }

    /// The records of one clock before `upto`, in time order.
    fn clock_records(&self, id: &str, clock: &IncidentClock, upto: i64) -> Vec<IncidentSla> {
        let Some(contract) = self.rules.contracts.get(&clock.service) else {
            return Vec::new();
        };
        let levels = contract.incident_warning_levels(&self.rules.cfg);
        let mut records = Vec::new();
        for kind in [TargetKind::Respond, TargetKind::Resolve] {
            let (spans, stop) = self.spans_counted(contract, clock, kind, upto);
            let limit = stop.map_or(upto, |s| s.min(upto));
            for (level, at, priority, target) in crossings(clock, contract, kind, &spans, levels, limit) {
                let event = if level >= 100.0 { "breach" } else { "warning" };
                let below = if event == "breach" {
                    format!("{}/breach", kind.as_str())
                } else {
                    format!("{}/warning_{level}", kind.as_str())
                };
                if !clock.emitted.contains(&below) {
                    let elapsed = spans.clip(i64::MIN, at).total();
                    records.push(record(
                        id, clock, kind, event, &below, priority, target, elapsed, at, level,
                    ));
                }
            }
        }
        for (kind, stop, n) in clock.pending_outcomes(upto) {
            let (spans, _) = self.spans_counted(contract, clock, kind, stop);
            let elapsed = spans.clip(i64::MIN, stop).total();
            let priority = clock.priority_at(stop);
            let Some(target) = target_ns(contract, priority, kind) else {
                continue;
            };
            let event = if elapsed <= target { "met" } else { "missed" };
            let below = match kind {
                TargetKind::Respond => format!("respond/{event}"),
                TargetKind::Resolve => format!("resolve/{event}/{n}"),
            };
            let share = elapsed as f64 * 100.0 / target as f64;
            records.push(record(
                id, clock, kind, event, &below, priority, target, elapsed, stop, share,
            ));
        }
        records.sort_by_key(|r| r.at_ns);
        records
    }

    /// The time a timer counted up to `upto`: its spans within the contract's incident
    /// hours, maintenance excepted; and where it stopped.
    fn spans_counted(
        &self,
        c: &Contract,
        clock: &IncidentClock,
        kind: TargetKind,
        upto: i64,
    ) -> (IntervalSet, Option<i64>) {
        let (runs, stop) = clock.spans(kind);
        let mut ran = IntervalSet::new();
        for (start, end) in runs {
            let end = end.unwrap_or(upto).min(upto);
            if start < end {
                ran.insert(start, end);
            }
        }
        let Some(first) = ran.intervals().first().map(|s| s.0) else {
            return (ran, stop);
        };
        let last = ran.intervals().last().map_or(first, |s| s.1);
        if c.incident_hours == IncidentHours::Business {
            if let Some(bh) = &c.business_hours {
                ran = ran.intersect(&bh.intervals(c.timezone, first, last));
            }
        }
        if let Some(st) = self.state.services.get(&clock.service) {
            ran = ran.subtract(&self.maintenance(&clock.service, st, first, last));
        }
        (ran, stop)
    }
}

/// One priority's line from its incidents' (minutes to acknowledge, minutes to resolve,
/// within target).
fn priority_line(priority: u8, times: &[(f64, f64, bool)]) -> PriorityLine {
    let n = times.len();
    let within = times.iter().filter(|t| t.2).count();
    let mean = |f: fn(&(f64, f64, bool)) -> f64| times.iter().map(f).sum::<f64>() / n.max(1) as f64;
    let p90 = |f: fn(&(f64, f64, bool)) -> f64| {
        let mut v: Vec<f64> = times.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value with at least 90 % of the values at or below it.
        let rank = (0.9 * n as f64).ceil() as usize;
        v.get(rank.max(1) - 1).copied().unwrap_or(0.0)
    };
    PriorityLine {
        priority,
        incidents: u32::try_from(n).unwrap_or(u32::MAX),
        within_target: u32::try_from(within).unwrap_or(u32::MAX),
        within_target_percent: if n == 0 {
            100.0
        } else {
            within as f64 * 100.0 / n as f64
        },
        mtta_mean_minutes: mean(|t| t.0),
        mtta_p90_minutes: p90(|t| t.0),
        mttr_mean_minutes: mean(|t| t.1),
        mttr_p90_minutes: p90(|t| t.1),
    }
}

/// A target in ns of counted time.
fn target_ns(c: &Contract, priority: u8, kind: TargetKind) -> Option<i64> {
    let d = c.incident_target(priority, kind)?;
    Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The levels (warnings, then 100 for the target) a timer crossed before `limit`:
/// (level, instant, priority, target). Under each priority from the instant it took
/// effect: a level crossed before it is not warned about, a target passed before it is a
/// breach at that instant.
fn crossings(
    clock: &IncidentClock,
    c: &Contract,
    kind: TargetKind,
    counted: &IntervalSet,
    levels: &[f64],
    limit: i64,
) -> Vec<(f64, i64, u8, i64)> {
    let mut found: Vec<(f64, i64, u8, i64)> = Vec::new();
    for (i, &(from, priority)) in clock.priorities.iter().enumerate() {
        let until = clock.priorities.get(i + 1).map_or(limit, |n| n.0.min(limit));
        let Some(target) = target_ns(c, priority, kind) else {
            continue;
        };
        for &level in levels.iter().chain([&100.0]) {
            let amount = target as f64 * level / 100.0;
            let Some(at) = crossing(counted, amount) else {
                continue;
            };
            // Strictly before: a timer stopped exactly at its target met it.
            let at = if at < from && level >= 100.0 { from } else { at };
            let is_new = !found.iter().any(|f| f.0 == level);
            if at >= from && at < until && is_new {
                found.push((level, at, priority, target));
            }
        }
    }
    found
}

/// The instant at which the time counted passes `amount` ns while counting: an amount
/// reached exactly where a span ends is passed where counting resumes (a timer stopped at
/// 50 % is not past 50 % until it runs again).
fn crossing(counted: &IntervalSet, amount: f64) -> Option<i64> {
    let mut before = 0f64;
    for &(s, e) in counted.intervals() {
        let len = (e - s) as f64;
        if before + len > amount {
            return Some(s + (amount - before).ceil().max(0.0) as i64);
        }
        before += len;
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn record(
    id: &str,
    clock: &IncidentClock,
    kind: TargetKind,
    event: &str,
    below: &str,
    priority: u8,
    target: i64,
    elapsed: i64,
    at: i64,
    level: f64,
) -> IncidentSla {
    IncidentSla {
        key: format!("incident_sla/{id}/{below}"),
        service: clock.service.clone(),
        incident: id.to_string(),
        priority,
        target: kind.as_str().to_string(),
        event: event.to_string(),
        level_percent: level,
        target_ns: target,
        elapsed_ns: elapsed,
        opened_ns: clock.opened_ns,
        at_ns: at,
    }
}

#[cfg(test)]
mod tests;
