//! The oracle: the figures the script implies for the month (`Expected`), counted from the
//! script's intervals and its spans with arithmetic of its own. It deliberately uses no
//! `crate::engine` code to compute them (only the contracts' configuration types), so that
//! the check at the end of the demo compares the engines with an independent answer rather
//! than with themselves.

use chrono::{Datelike, Weekday};

use super::scenario::{Outcome, Scenario, Source};
use super::traffic::{Span, TRAFFIC};
use super::MINUTE;
use crate::config::Config;
use crate::engine::sla::config::{Contract, Objective, ObjectiveKind};
use crate::engine::sla::incident_terms::TargetKind;

/// What the script implies for the month.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub month: String,
    pub timezone: String,
    pub month_minutes: f64,
    /// Latency samples (spans) of the services with a contract.
    pub samples: u64,
    pub services: Vec<ExpectedService>,
    /// Incidents, oldest first.
    pub incidents: Vec<ExpectedIncident>,
    /// (service, opened, met) of each incident whose contract sets a resolve target for its
    /// priority: its time to resolve (the demo's contracts count around the clock, and no
    /// incident lies in maintenance) against the target.
    pub resolve_outcomes: Vec<(String, i64, bool)>,
    /// Alert events (notifications and recoveries).
    pub alerts: u64,
    /// Re-sent notifications of active alerts.
    pub duplicates: u64,
    /// Alerts suppressed by maintenance.
    pub suppressed: u64,
    /// Recoveries of alerts the engine never took (suppressed ones).
    pub unmatched: u64,
}

/// One incident the script implies.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedIncident {
    pub service: String,
    pub what: String,
    pub source: Source,
    pub opened_ns: i64,
    pub resolved_ns: i64,
    pub priority: u8,
    pub major: bool,
    pub alerts: u64,
    /// Firing notifications of its alerts, duplicates included.
    pub notifications: u64,
}

/// One service's month as the script implies it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedService {
    pub service: String,
    pub requests: u64,
    pub errors: u64,
    pub maintenance_minutes: f64,
    pub downtime_minutes: f64,
    pub longest_downtime_minutes: f64,
    pub availability_percent: f64,
    pub mean_ms: f64,
    /// Exact (nearest-rank); the engine's HdrHistogram is within its precision of it.
    pub p95_ms: f64,
    pub objectives: Vec<ExpectedObjective>,
    pub breaches: u32,
    pub streak_warnings: u32,
    pub credit_percent: f64,
    pub credit_amount: Option<f64>,
    pub currency: String,
}

/// One objective's expected result.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedObjective {
    pub name: String,
    pub kind: ObjectiveKind,
    pub measured: f64,
    pub met: bool,
}

/// What the correlator should make of the month's alerts.
#[derive(Default)]
struct AlertCounts {
    incidents: Vec<ExpectedIncident>,
    alerts: u64,
    duplicates: u64,
    suppressed: u64,
    unmatched: u64,
}

/// One service's month before any objective is judged: its spans and the time it was down.
struct ServiceMonth {
    /// Index into `TRAFFIC`.
    s: usize,
    spans: Vec<Span>,
    /// Maintenance windows in the month, sorted and merged.
    maintenance: Vec<(i64, i64)>,
    /// Outage time outside maintenance, sorted and merged.
    downtime: Vec<(i64, i64)>,
    /// The month less its maintenance, in ns.
    eligible: i64,
    /// Total downtime, in ns.
    down: i64,
    /// The longest single downtime, in ns.
    longest: i64,
    availability: f64,
}

/// One objective judged on the script's month, with the breach and streak events the
/// engine should emit for it.
struct Judged {
    measured: f64,
    met: bool,
    breaches: u32,
    streak_warnings: u32,
}

/// Total length of sorted, merged intervals.
fn total(set: &[(i64, i64)]) -> i64 {
    set.iter().map(|(a, b)| b - a).sum::<i64>()
}

impl Scenario {
    /// The figures the script implies for the month under `config`'s contracts, counted from
    /// the script itself (its intervals and its spans), not by running the engines.
    ///
    /// Assumes contracts without business hours; maintenance comes from `config`.
    pub fn expected(&self, config: &Config) -> Expected {
        let mut services = Vec::new();
        for (s, traffic) in TRAFFIC.iter().enumerate() {
            if let Some(contract) = config.sla.contracts.iter().find(|c| c.service == traffic.service) {
                services.push(self.expected_service(config, s, contract));
            }
        }
        let counts = self.alert_counts();
        let resolve_outcomes = counts
            .incidents
            .iter()
            .filter_map(|i| {
                let c = config.sla.contracts.iter().find(|c| c.service == i.service)?;
                let target = c.incident_target(i.priority, TargetKind::Resolve)?;
                let took = u128::try_from(i.resolved_ns - i.opened_ns).unwrap_or(0);
                Some((i.service.clone(), i.opened_ns, took <= target.as_nanos()))
            })
            .collect();
        Expected {
            resolve_outcomes,
            month: self.month.to_string(),
            timezone: self.tz.name().to_string(),
            month_minutes: self.minutes(),
            // The engine counts the samples of contracted services only.
            samples: services.iter().map(|s| s.requests).sum(),
            services,
            incidents: counts.incidents,
            alerts: counts.alerts,
            duplicates: counts.duplicates,
            suppressed: counts.suppressed,
            unmatched: counts.unmatched,
        }
    }

    /// The incidents the episodes open (symptoms joined to their root) and the alert counts.
    fn alert_counts(&self) -> AlertCounts {
        let mut counts = AlertCounts::default();
        for e in &self.episodes {
            counts.alerts += u64::from(e.notifications) + 1;
            match e.outcome {
                Outcome::Incident { priority, major, .. } => {
                    counts.duplicates += u64::from(e.notifications.saturating_sub(1));
                    counts.incidents.push(ExpectedIncident {
                        service: e.service.to_string(),
                        what: e.what.to_string(),
                        source: e.source,
                        opened_ns: e.start_ns,
                        resolved_ns: e.end_ns,
                        priority,
                        major,
                        alerts: 1,
                        notifications: u64::from(e.notifications),
                    });
                }
                Outcome::Symptom => {
                    counts.duplicates += u64::from(e.notifications.saturating_sub(1));
                    // Its root: the incident open when it fires (the latest, if several).
                    let root = counts
                        .incidents
                        .iter_mut()
                        .rev()
                        .find(|i| i.opened_ns <= e.start_ns && e.start_ns < i.resolved_ns);
                    if let Some(root) = root {
                        root.alerts += 1;
                        root.notifications += u64::from(e.notifications);
                        root.resolved_ns = root.resolved_ns.max(e.end_ns);
                    }
                }
                Outcome::Suppressed => {
                    counts.suppressed += 1;
                    counts.unmatched += 1;
                }
            }
        }
        counts.incidents.sort_by_key(|i| i.opened_ns);
        counts
    }

    fn expected_service(&self, config: &Config, s: usize, contract: &Contract) -> ExpectedService {
        let month = self.service_month(config, s);
        let mut objectives = Vec::new();
        let (mut credit, mut breaches, mut streak_warnings) = (0.0f64, 0u32, 0u32);
        for obj in &contract.objectives {
            let judged = self.judge(config, &month, obj);
            breaches += judged.breaches;
            streak_warnings += judged.streak_warnings;
            credit = credit.max(credit_for(obj, &judged));
            objectives.push(ExpectedObjective {
                name: obj.name.clone(),
                kind: obj.kind,
                measured: judged.measured,
                met: judged.met,
            });
        }
        let all: Vec<&Span> = month.spans.iter().collect();
        ExpectedService {
            service: TRAFFIC[s].service.to_string(),
            requests: month.spans.len() as u64,
            errors: month.spans.iter().filter(|x| x.error).count() as u64,
            maintenance_minutes: total(&month.maintenance) as f64 / MINUTE as f64,
            downtime_minutes: month.down as f64 / MINUTE as f64,
            longest_downtime_minutes: month.longest as f64 / MINUTE as f64,
            availability_percent: month.availability,
            mean_ms: mean_ns(&all) / 1e6,
            p95_ms: percentile(&all, 95.0) as f64 / 1e6,
            objectives,
            breaches,
            streak_warnings,
            credit_percent: credit,
            credit_amount: contract.monthly_fee.map(|fee| fee * credit / 100.0),
            currency: contract.currency.clone(),
        }
    }

    /// Service `s`'s spans, maintenance and downtime: its outage incidents less maintenance.
    fn service_month(&self, config: &Config, s: usize) -> ServiceMonth {
        let service = TRAFFIC[s].service;
        let maintenance = union(
            config
                .maintenance
                .iter()
                .filter(|w| w.covers(service, ""))
                .flat_map(|w| w.occurrences(self.start_ns, self.end_ns))
                .map(|(a, b)| (a.max(self.start_ns), b.min(self.end_ns)))
                .filter(|(a, b)| a < b)
                .collect(),
        );
        let outages = self
            .episodes
            .iter()
            .filter(|e| e.service == service && matches!(e.outcome, Outcome::Incident { outage: true, .. }))
            .map(|e| (e.start_ns, e.end_ns))
            .collect();
        let downtime = subtract(&union(outages), &maintenance);
        let eligible = (self.end_ns - self.start_ns) - total(&maintenance);
        let down = total(&downtime);
        let longest = downtime.iter().map(|(a, b)| b - a).max().unwrap_or(0);
        let availability = if eligible > 0 {
            (1.0 - down as f64 / eligible as f64) * 100.0
        } else {
            100.0
        };
        ServiceMonth {
            s,
            spans: self.spans(s, self.start_ns, self.end_ns).collect(),
            maintenance,
            downtime,
            eligible,
            down,
            longest,
            availability,
        }
    }

    /// What `obj` measures on the month, whether it is met, and the breaches (and streak
    /// warnings) the engine should record for it.
    fn judge(&self, config: &Config, month: &ServiceMonth, obj: &Objective) -> Judged {
        let resource_of = |op: &str| TRAFFIC[month.s].resources.iter().position(|(r, _)| *r == op);
        let selected: Vec<&Span> = match obj.operation.as_deref() {
            Some(op) => month
                .spans
                .iter()
                .filter(|x| Some(x.resource) == resource_of(op))
                .collect(),
            None => month.spans.iter().collect(),
        };
        let threshold_ns = obj.threshold_ns();
        let budget_breach = config.sla.budget_breach;
        let (mut breaches, mut streak_warnings) = (0u32, 0u32);
        let (measured, met) = match obj.kind {
            ObjectiveKind::Availability => {
                let target = obj.target.unwrap_or(100.0);
                let allowed = (1.0 - obj.target_fraction()) * month.eligible as f64;
                if allowed > 0.0 && month.down as f64 / allowed * 100.0 >= budget_breach {
                    breaches += 1;
                }
                (month.availability, month.availability >= target)
            }
            ObjectiveKind::RequestAvailability => {
                let n = selected.len() as f64;
                let bad = selected.iter().filter(|x| x.error).count() as f64;
                let level = if n > 0.0 { (1.0 - bad / n) * 100.0 } else { 100.0 };
                let allowed = 1.0 - obj.target_fraction();
                breaches += u32::from(request_budget_breached(&month.spans, allowed, budget_breach));
                (level, level >= obj.target.unwrap_or(100.0))
            }
            ObjectiveKind::MaxDowntime => {
                breaches += month.downtime.iter().filter(|(a, b)| b - a > threshold_ns).count() as u32;
                (month.longest as f64 / MINUTE as f64, month.longest <= threshold_ns)
            }
            ObjectiveKind::LatencyPercentile => {
                let p = percentile(&selected, obj.percentile.unwrap_or(95.0));
                (p as f64 / 1e6, p <= threshold_ns)
            }
            ObjectiveKind::MeanLatency => {
                let mean = mean_ns(&selected);
                (mean / 1e6, mean <= threshold_ns as f64)
            }
            ObjectiveKind::Streak => {
                let days = obj.days.unwrap_or(1);
                let (longest_run, runs) = self.streaks(&month.spans, threshold_ns, days, obj.working_days_only);
                streak_warnings += runs;
                (f64::from(longest_run), longest_run < days)
            }
        };
        let latency = matches!(obj.kind, ObjectiveKind::LatencyPercentile | ObjectiveKind::MeanLatency);
        if latency && !met {
            breaches += 1;
        }
        Judged {
            measured,
            met,
            breaches,
            streak_warnings,
        }
    }

    /// The longest run of consecutive (working) days whose mean latency is over the
    /// threshold, and how many runs reached `days` (each is one warning).
    fn streaks(&self, spans: &[Span], threshold_ns: i64, days: u32, working_only: bool) -> (u32, u32) {
        let (mut run, mut longest, mut warnings) = (0u32, 0u32, 0u32);
        for &(date, from, to) in &self.days {
            if working_only && matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
                continue;
            }
            let day: Vec<&Span> = spans.iter().filter(|x| (from..to).contains(&x.start_ns)).collect();
            if mean_ns(&day) > threshold_ns as f64 {
                run += 1;
                longest = longest.max(run);
                if run == days {
                    warnings += 1;
                }
            } else {
                run = 0;
            }
        }
        (longest, warnings)
    }
}

/// Whether the failed requests ever use up `budget_breach` percent of the error budget
/// (`allowed`, a fraction of the requests so far). The budget is the month's requests so
/// far, judged minute by minute: an outage early in the month can exhaust it although the
/// month ends met.
fn request_budget_breached(spans: &[Span], allowed: f64, budget_breach: f64) -> bool {
    let (mut so_far, mut failed) = (0u64, 0u64);
    for minute in spans.chunk_by(|a, b| a.start_ns / MINUTE == b.start_ns / MINUTE) {
        so_far += minute.len() as u64;
        failed += minute.iter().filter(|x| x.error).count() as u64;
        let budget = allowed * so_far as f64;
        if budget > 0.0 && failed as f64 / budget * 100.0 >= budget_breach {
            return true;
        }
    }
    false
}

/// The credit, in percent of the fee, that `obj`'s result earns: its own when missed, and
/// any tier the measured level is below.
fn credit_for(obj: &Objective, judged: &Judged) -> f64 {
    let mut credit = 0.0f64;
    if !judged.met {
        credit = credit.max(obj.credit_percent.unwrap_or(0.0));
    }
    for tier in &obj.credit_tiers {
        if judged.measured < tier.below {
            credit = credit.max(tier.percent);
        }
    }
    credit
}

/// Exact mean of the spans' durations (the engine's mean is exact too: a sum over a count).
fn mean_ns(spans: &[&Span]) -> f64 {
    if spans.is_empty() {
        return 0.0;
    }
    let sum: u128 = spans.iter().map(|x| x.duration_ns.max(0) as u128).sum();
    sum as f64 / spans.len() as f64
}

/// The nearest-rank percentile of the spans' durations.
fn percentile(spans: &[&Span], p: f64) -> i64 {
    let mut d: Vec<i64> = spans.iter().map(|x| x.duration_ns).collect();
    if d.is_empty() {
        return 0;
    }
    d.sort_unstable();
    let rank = ((p / 100.0) * d.len() as f64).ceil() as usize;
    d[rank.clamp(1, d.len()) - 1]
}

/// Sorted, merged intervals. The engine's `IntervalSet` does this too; the oracle keeps its
/// own so that a bug there cannot agree with itself in the check.
fn union(mut set: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    set.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (a, b) in set {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `set` without the time in `minus` (both sorted and merged).
fn subtract(set: &[(i64, i64)], minus: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for &(mut a, b) in set {
        for &(c, d) in minus {
            if d <= a || c >= b {
                continue;
            }
            if c > a {
                out.push((a, c));
            }
            a = a.max(d);
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::october;
    use super::*;

    #[test]
    fn the_script_implies_the_documented_october() {
        let (config, s) = october();
        let e = s.expected(&config);
        // October 2026 in Berlin: 31 days and the hour DST gives back on the 25th.
        assert_eq!(e.month_minutes, 44_700.0);
        let webshop = &e.services[0];
        assert_eq!(webshop.downtime_minutes, 95.0);
        assert!((webshop.availability_percent - (1.0 - 95.0 / 44_700.0) * 100.0).abs() < 1e-9);
        assert_eq!((webshop.credit_percent, webshop.credit_amount), (10.0, Some(2000.0)));
        assert_eq!(webshop.errors, 95 * 3 + 21);
        let payments = &e.services[1];
        assert_eq!((payments.maintenance_minutes, payments.downtime_minutes), (180.0, 25.0));
        assert!(payments.objectives.iter().all(|o| o.met), "{payments:?}");
        let search = &e.services[2];
        let missed: Vec<&str> = search
            .objectives
            .iter()
            .filter(|o| !o.met)
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(missed, ["p95-latency", "slow-days"]);
        assert_eq!((search.streak_warnings, search.credit_amount), (1, Some(200.0)));
        assert_eq!((e.incidents.len(), e.duplicates, e.suppressed), (7, 511, 1));
        assert_eq!(s.slow_days_start().unwrap().to_string(), "2026-10-20");
    }

    #[test]
    fn intervals_merge_and_subtract() {
        assert_eq!(union(vec![(5, 8), (1, 3), (2, 4)]), [(1, 4), (5, 8)]);
        assert_eq!(subtract(&[(0, 10)], &[(2, 3), (5, 12)]), [(0, 2), (3, 5)]);
    }
}
