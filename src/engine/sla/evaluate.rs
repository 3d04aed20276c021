//! Evaluation of a service at a minute boundary: error budgets, burn rates, downtime limits,
//! streaks of bad days, and, at the end of a calendar month, the objectives, the breaches of
//! the month and the monthly report with its service credit.

use super::config::Unmeasured;
use super::intervals::{self, IntervalSet};
use super::*;

impl SlaEngine {
    /// Maintenance covering the service within [from, to): configured windows and the ones
    /// sources announced.
    pub(super) fn maintenance(&self, service: &str, st: &ServiceState, from: i64, to: i64) -> IntervalSet {
        let mut set = st.source_maintenance.clip(from, to);
        for (s, e) in crate::engine::correlate::maintenance::covering(&self.rules.windows, service, "", from, to) {
            set.insert(s, e);
        }
        set
    }

    /// Drops a service's coverage and days before `me`, the end of the month just closed.
    fn forget_month_figures(&mut self, service: &str, me: i64) {
        if let Some(days) = self.state.days.get(service) {
            let next: Vec<DayFigures> = days.iter().filter(|d| d.start_ns >= me).cloned().collect();
            if next.is_empty() {
                self.state.days.remove(service);
            } else {
                self.state.days.insert(service.to_string(), next);
            }
        }
        if let Some(next) = self.state.coverage.get(service).map(|c| c.clip(me, i64::MAX)) {
            if next.is_empty() {
                self.state.coverage.remove(service);
            } else {
                self.state.coverage.insert(service.to_string(), next);
            }
        }
    }

    /// The report's days: each local day of [from, to) with its downtime and availability,
    /// the budget consumed by its end, and the day's latency if it closed.
    fn day_lines(
        &self,
        service: &str,
        c: &Contract,
        (from, to): (i64, i64),
        eligible: &IntervalSet,
        down: &IntervalSet,
    ) -> Vec<DayLine> {
        let closed = self.state.days.get(service);
        let budget = c
            .objectives
            .iter()
            .find(|o| o.kind == ObjectiveKind::Availability)
            .map(|o| (1.0 - o.target_fraction()) * eligible.total() as f64);
        let mut lines = Vec::new();
        let mut day = from;
        while day < to {
            let Some((start, end)) = intervals::day_bounds(c.timezone, day) else {
                break;
            };
            let (s, e) = (start.max(from), end.min(to));
            let counted = eligible.clip(s, e).total();
            let downtime = down.clip(s, e).total();
            let so_far = down.clip(from, e).total() as f64;
            let latency = closed.and_then(|d| d.iter().find(|f| f.start_ns == start));
            lines.push(DayLine {
                date: intervals::local_date(c.timezone, start)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                downtime_minutes: downtime as f64 / 60e9,
                availability_percent: if counted > 0 {
                    (1.0 - downtime as f64 / counted as f64) * 100.0
                } else {
                    100.0
                },
                budget_consumed_percent: budget.filter(|b| *b > 0.0).map_or(0.0, |b| so_far / b * 100.0),
                requests: latency.map_or(0, |f| f.requests),
                errors: latency.map_or(0, |f| f.errors),
                mean_ms: latency.map_or(0.0, |f| f.mean_ns / 1e6),
                p95_ms: latency.map_or(0.0, |f| f.p95_ns as f64 / 1e6),
            });
            day = end;
        }
        lines
    }

    /// How much of the time that counts (`eligible`) was measured: minutes with samples,
    /// and downtime (monitoring said the service was down).
    fn coverage(&self, service: &str, eligible: &IntervalSet, down: &IntervalSet) -> Coverage {
        let mut measured = self.state.coverage.get(service).cloned().unwrap_or_default();
        for &(s, e) in down.intervals() {
            measured.insert(s, e);
        }
        let measured = measured.intersect(eligible).total();
        let total = eligible.total();
        Coverage {
            measured,
            percent: if total > 0 {
                measured as f64 * 100.0 / total as f64
            } else {
                0.0
            },
        }
    }

    /// The time that counts within [from, to): business hours when configured, minus maintenance.
    fn eligible(&self, service: &str, c: &Contract, st: &ServiceState, from: i64, to: i64) -> IntervalSet {
        let base = match &c.business_hours {
            Some(bh) => bh.intervals(c.timezone, from, to),
            None => IntervalSet::from_intervals([(from, to)]),
        };
        base.subtract(&self.maintenance(service, st, from, to))
    }

    /// Downtime within [from, to): ended and ongoing outages (union), only eligible time.
    fn downtime(&self, service: &str, c: &Contract, st: &ServiceState, from: i64, to: i64) -> IntervalSet {
        let mut set = st.downtime.clip(from, to);
        for &start in st.active.values() {
            if start < to {
                set.insert(start.max(from), to);
            }
        }
        set.intersect(&self.eligible(service, c, st, from, to))
    }

    /// Judges `service` at minute boundary `b`: its days, then each objective's budget
    /// thresholds, burn-rate alerts and downtime limit; each finding is emitted once.
    pub(super) fn evaluate_at(&mut self, service: &str, b: i64, out: &mut Vec<SlaOutput>) {
        let Some(c) = self.rules.contracts.get(service).cloned() else {
            return;
        };
        self.judge_days(service, &c, out);
        let Some(st) = self.state.services.get(service) else {
            return;
        };
        let month = Month {
            start: st.month_start,
            end: st.month_end,
            period: intervals::month_label(c.timezone, st.month_start).unwrap_or_default(),
        };
        let down = self.downtime(service, &c, st, month.start, b);
        let mut findings: Vec<(bool, Finding)> = Vec::new();
        let mut burn: Vec<(String, BurnAlert)> = Vec::new();
        for obj in &c.objectives {
            if let Some((used, allowed)) = self.budget_used(service, &c, st, obj, &month, &down) {
                findings.extend(self.budget_findings(service, obj, &month, (used, allowed), &down, b));
                burn.extend(self.burn_changes(service, &c, st, obj, b));
            }
            if obj.kind == ObjectiveKind::MaxDowntime {
                findings.extend(long_downtimes(service, obj, &month.period, &down).map(|f| (true, f)));
            }
        }
        self.emit(service, findings, burn, out);
    }

    /// The share of its error budget an objective has used this month (percent), with the
    /// budget itself; `None` for objectives without a budget, or with none to use.
    fn budget_used(
        &self,
        service: &str,
        c: &Contract,
        st: &ServiceState,
        obj: &Objective,
        month: &Month,
        down: &IntervalSet,
    ) -> Option<(f64, f64)> {
        match obj.kind {
            ObjectiveKind::Availability => {
                let eligible = self.eligible(service, c, st, month.start, month.end).total() as f64;
                let allowed = (1.0 - obj.target_fraction()) * eligible;
                (allowed > 0.0).then(|| (down.total() as f64 / allowed * 100.0, allowed))
            }
            ObjectiveKind::RequestAvailability => {
                let allowed = (1.0 - obj.target_fraction()) * st.requests as f64;
                (st.requests > 0 && allowed > 0.0).then(|| (st.errors as f64 / allowed * 100.0, allowed))
            }
            _ => None,
        }
    }

    /// The warning and breach thresholds `used` has reached (true for the breach).
    fn budget_findings(
        &self,
        service: &str,
        obj: &Objective,
        month: &Month,
        (used, allowed): (f64, f64),
        down: &IntervalSet,
        b: i64,
    ) -> Vec<(bool, Finding)> {
        let warnings = self.rules.cfg.budget_warnings.iter().map(|&t| (t, false));
        let thresholds = warnings.chain([(self.rules.cfg.budget_breach, true)]);
        thresholds
            .filter(|&(threshold, _)| used >= threshold)
            .map(|(threshold, is_breach)| {
                let kind = if is_breach {
                    "budget_exhausted".to_string()
                } else {
                    format!("budget_{threshold}")
                };
                // Time-based: the exact instant the downtime used that share of the budget.
                let detected = if obj.kind == ObjectiveKind::Availability {
                    crossing(down, threshold / 100.0 * allowed).unwrap_or(b)
                } else {
                    b
                };
                let window = (month.start, b);
                let f = finding(
                    service,
                    obj,
                    &kind,
                    &month.period,
                    used,
                    threshold,
                    "percent",
                    window,
                    detected,
                );
                (is_breach, f)
            })
            .collect()
    }

    /// The burn-rate alerts of `obj` whose state changes at `b`, by rule id.
    fn burn_changes(
        &self,
        service: &str,
        c: &Contract,
        st: &ServiceState,
        obj: &Objective,
        b: i64,
    ) -> Vec<(String, BurnAlert)> {
        let mut changes = Vec::new();
        for rule in &self.rules.cfg.burn_rate_alerts {
            let long = i64::try_from(rule.long.as_nanos()).unwrap_or(i64::MAX);
            let short = i64::try_from(rule.short.as_nanos()).unwrap_or(i64::MAX);
            let rate = |w: i64| self.burn_rate(service, c, st, obj, b, w);
            let (long_rate, short_rate) = (rate(long), rate(short));
            let firing = long_rate >= rule.factor && short_rate >= rule.factor;
            let id = format!("{}/{}", obj.name, rule.name);
            let was = st.firing.get(&id);
            if firing == was.is_some() {
                continue;
            }
            let key = match was {
                Some(key) => key.clone(),
                None => format!("{service}/{}/burn/{}/{b}", obj.name, rule.name),
            };
            let alert = BurnAlert {
                key,
                service: service.to_string(),
                objective: obj.name.clone(),
                rule: rule.name.clone(),
                severity: rule.severity.clone(),
                state: if firing { "firing" } else { "resolved" }.into(),
                factor: rule.factor,
                long_burn_rate: long_rate,
                short_burn_rate: short_rate,
                long_window_s: rule.long.as_secs(),
                short_window_s: rule.short.as_secs(),
                detected_ns: b,
            };
            changes.push((id, alert));
        }
        changes
    }

    /// Emits the findings not emitted before (breaches counted per period) and the burn-rate
    /// changes, remembering which alerts fire.
    fn emit(
        &mut self,
        service: &str,
        findings: Vec<(bool, Finding)>,
        burn: Vec<(String, BurnAlert)>,
        out: &mut Vec<SlaOutput>,
    ) {
        // Marked changed only when a finding is new or an alert changes: judged every
        // minute, a service usually has nothing new, and is then no checkpoint row.
        let Some(st) = self.state.services.get_mut_untracked(service) else {
            return;
        };
        if burn.is_empty() && findings.iter().all(|(_, f)| st.emitted.contains(&f.key)) {
            return;
        }
        self.state.services.touch(service);
        let Some(st) = self.state.services.get_mut_untracked(service) else {
            return;
        };
        for (is_breach, f) in findings {
            if st.emitted.insert(f.key.clone()) {
                if is_breach {
                    *st.breaches.entry(f.period.clone()).or_default() += 1;
                    out.push(SlaOutput::Breach(f));
                } else {
                    out.push(SlaOutput::Warning(f));
                }
            }
        }
        for (id, alert) in burn {
            if alert.state == "firing" {
                st.firing.insert(id, alert.key.clone());
            } else {
                st.firing.remove(&id);
            }
            out.push(SlaOutput::BurnRateAlert(alert));
        }
    }

    /// Burn rate over [b − w, b): the bad fraction divided by the allowed bad fraction.
    fn burn_rate(&self, service: &str, c: &Contract, st: &ServiceState, obj: &Objective, b: i64, w: i64) -> f64 {
        let allowed = 1.0 - obj.target_fraction();
        if w <= 0 || allowed <= 0.0 {
            return 0.0;
        }
        let bad_fraction = match obj.kind {
            ObjectiveKind::Availability => {
                let from = b.saturating_sub(w);
                let eligible = self.eligible(service, c, st, from, b).total();
                if eligible == 0 {
                    return 0.0;
                }
                self.downtime(service, c, st, from, b).total() as f64 / eligible as f64
            }
            _ => {
                let (requests, errors) = if w <= MINUTE_RING {
                    sum_ring(&st.minute_ring, b - w, b)
                } else {
                    sum_ring(&st.hour_ring, b - w, b)
                };
                if requests == 0 {
                    return 0.0;
                }
                errors as f64 / requests as f64
            }
        };
        bad_fraction / allowed
    }

    /// Judges closed days for the streak objectives.
    fn judge_days(&mut self, service: &str, c: &Contract, out: &mut Vec<SlaOutput>) {
        if self
            .state
            .services
            .get(service)
            .is_none_or(|st| st.days_to_judge.is_empty())
        {
            return; // nothing to judge, nothing changes (and no checkpoint row)
        }
        let Some(st) = self.state.services.get_mut(service) else {
            return;
        };
        let days = std::mem::take(&mut st.days_to_judge);
        for (start, end, count, sum) in days {
            let Some(date) = intervals::local_date(c.timezone, start) else {
                continue;
            };
            let mean = if count == 0 { 0.0 } else { sum as f64 / count as f64 };
            let working = |d: chrono::NaiveDate| match &c.business_hours {
                Some(bh) => bh.is_working_day(d),
                None => {
                    use chrono::Datelike;
                    d.weekday().number_from_monday() <= 5
                }
            };
            for obj in c.objectives.iter().filter(|o| o.kind == ObjectiveKind::Streak) {
                if obj.working_days_only && !working(date) {
                    continue;
                }
                // The day before that counts: consecutive means no counting day was skipped.
                let mut previous = date.pred_opt();
                while let Some(p) = previous {
                    if !obj.working_days_only || working(p) {
                        break;
                    }
                    previous = p.pred_opt();
                }
                let streak = st.streaks.entry(obj.name.clone()).or_default();
                if st.last_judged_day.is_some() && st.last_judged_day != previous {
                    streak.run = 0;
                }
                if mean > obj.threshold_ns() as f64 {
                    if streak.run == 0 {
                        streak.first_day_ns = start;
                    }
                    streak.run += 1;
                    streak.longest_in_month = streak.longest_in_month.max(streak.run);
                    let days = obj.days.unwrap_or(1);
                    if streak.run == days {
                        let period = intervals::month_label(c.timezone, start).unwrap_or_default();
                        let key = format!("{service}/{}/streak/{}", obj.name, streak.first_day_ns);
                        if st.emitted.insert(key.clone()) {
                            out.push(SlaOutput::Warning(Finding {
                                key,
                                service: service.to_string(),
                                objective: obj.name.clone(),
                                kind: "streak".into(),
                                period,
                                measured: mean,
                                threshold: obj.threshold_ns() as f64,
                                unit: "ns".into(),
                                window_start_ns: streak.first_day_ns,
                                window_end_ns: end,
                                detected_ns: end,
                            }));
                        }
                    }
                } else {
                    streak.run = 0;
                }
            }
            st.last_judged_day = Some(date);
        }
    }

    /// At the end of the calendar month: month windows, objectives missed, the final report.
    pub(super) fn close_month_if_due(&mut self, service: &str, b: i64, out: &mut Vec<SlaOutput>) {
        let Some(c) = self.rules.contracts.get(service).cloned() else {
            return;
        };
        let Some(st) = self.state.services.get(service) else {
            return;
        };
        if b < st.month_end {
            return;
        }
        let (ms, me) = (st.month_start, st.month_end);
        let period = intervals::month_label(c.timezone, ms).unwrap_or_default();
        let mut report = self.report_for(service, &c, ms, me, me, true);
        let mut missed = Vec::new();
        for (obj, result) in c.objectives.iter().zip(&report.objectives) {
            let latency = matches!(obj.kind, ObjectiveKind::LatencyPercentile | ObjectiveKind::MeanLatency);
            if latency && !result.met {
                missed.push(finding(
                    service,
                    obj,
                    "objective_missed",
                    &period,
                    result.measured,
                    result.threshold,
                    &result.unit,
                    (ms, me),
                    me,
                ));
            }
        }
        let emit_month = self.rules.cfg.emit_windows.contains(&Granularity::Month);
        let keep_from = me.saturating_sub(self.longest_window());
        let Some(st) = self.state.services.get_mut(service) else {
            return;
        };
        for f in missed {
            if st.emitted.insert(f.key.clone()) {
                *st.breaches.entry(period.clone()).or_default() += 1;
                out.push(SlaOutput::Breach(f));
            }
        }
        report.breaches = st.breaches.remove(&period).unwrap_or(0);
        self.state.late_in_month.remove(service);
        self.forget_month_figures(service, me);
        report.issued_ns = b;
        let Some(st) = self.state.services.get_mut(service) else {
            return;
        };
        let mut accs = BTreeMap::new();
        for (op, series) in st.series.iter_mut() {
            if let Some(acc) = series.month.take() {
                if emit_month {
                    out.push(SlaOutput::WindowClosed(window(service, op, Granularity::Month, &acc)));
                }
                accs.insert(op.clone(), acc);
            }
        }
        self.keep_correctable(service, &report, accs);
        out.push(SlaOutput::MonthlyReport(Box::new(report)));
        let Some(st) = self.state.services.get_mut(service) else {
            return;
        };
        // The next month starts clean; history the burn-rate windows still need is kept.
        let (next_start, next_end) = intervals::month_bounds(c.timezone, me).unwrap_or((me, me));
        st.month_start = next_start;
        st.month_end = next_end;
        st.requests = 0;
        st.errors = 0;
        st.downtime = st.downtime.clip(keep_from, i64::MAX);
        st.source_maintenance = st.source_maintenance.clip(keep_from, i64::MAX);
        st.emitted.retain(|k| !k.contains(&format!("/{period}")));
        for streak in st.streaks.values_mut() {
            streak.longest_in_month = streak.run;
        }
    }

    /// The report of the running month up to `upto` (on demand), or None for a service
    /// without a contract or without any state yet.
    pub fn report(&self, service: &str, upto: i64) -> Option<Report> {
        let c = self.rules.contracts.get(service)?;
        let st = self.state.services.get(service)?;
        Some(self.report_for(service, c, st.month_start, st.month_end, upto.min(st.month_end), false))
    }

    fn report_for(&self, service: &str, c: &Contract, ms: i64, me: i64, upto: i64, complete: bool) -> Report {
        let empty = ServiceState::default_for(ms, me);
        let st = self.state.services.get(service).unwrap_or(&empty);
        let end = if complete { me } else { upto };
        let down = self.downtime(service, c, st, ms, end);
        let eligible_set = self.eligible(service, c, st, ms, end);
        let coverage = self.coverage(service, &eligible_set, &down);
        let availability = availability_of(c.unmeasured, &eligible_set, &coverage, &down);
        let whole = self.month_summary(st, "", end);
        let mut objectives = Vec::new();
        let mut credits: Vec<(String, f64)> = Vec::new();
        for obj in &c.objectives {
            let summary = match &obj.operation {
                Some(op) => self.month_summary(st, op, end),
                None => whole.clone(),
            };
            let (measured, threshold, unit, met) = measure(obj, st, &summary, availability, &down);
            credits.push((obj.name.clone(), credit_of(obj, measured, met)));
            objectives.push(ObjectiveResult {
                name: obj.name.clone(),
                kind: obj.kind,
                measured,
                threshold,
                unit: unit.into(),
                met,
            });
        }
        let incidents = self.incident_summary(service, c, ms, end);
        if let Some((_, incident_credits)) = &incidents {
            credits.extend(incident_credits.iter().cloned());
        }
        // The largest credit is given; what gave it is named.
        let credit = credits.iter().map(|(_, p)| *p).fold(0.0, f64::max);
        let credit_causes = credits
            .into_iter()
            .filter(|(_, p)| credit > 0.0 && *p == credit)
            .map(|(cause, _)| cause)
            .collect();
        Report {
            service: service.to_string(),
            period: intervals::month_label(c.timezone, ms).unwrap_or_default(),
            timezone: c.timezone.name().to_string(),
            start_ns: ms,
            end_ns: me,
            complete,
            objectives,
            availability_percent: availability,
            downtime_minutes: down.total() as f64 / 60e9,
            longest_downtime_minutes: down.longest() as f64 / 60e9,
            maintenance_minutes: self.maintenance(service, st, ms, end).total() as f64 / 60e9,
            requests: whole.count,
            errors: whole.errors,
            late_samples: self.state.late_in_month.get(service).copied().unwrap_or(0),
            p50_ms: whole.p50_ns as f64 / 1e6,
            p95_ms: whole.p95_ns as f64 / 1e6,
            p99_ms: whole.p99_ns as f64 / 1e6,
            mean_ms: whole.mean_ns / 1e6,
            breaches: st
                .breaches
                .get(&intervals::month_label(c.timezone, ms).unwrap_or_default())
                .copied()
                .unwrap_or(0),
            credit_percent: credit,
            credit_amount: c.monthly_fee.map(|fee| fee * credit / 100.0),
            currency: c.currency.clone(),
            credit_causes,
            monthly_fee: c.monthly_fee,
            version: 1,
            issued_ns: 0,
            changes: Vec::new(),
            measured_minutes: coverage.measured as f64 / 60e9,
            period_minutes: eligible_set.total() as f64 / 60e9,
            coverage_percent: coverage.percent,
            no_data: coverage.measured == 0,
            days: self.day_lines(service, c, (ms, end), &eligible_set, &down),
            incidents: incidents.map(|(summary, _)| summary),
        }
    }

    /// Count, errors, exact mean and percentiles of a series over the month so far (month
    /// and day accumulators plus open bins before `end`).
    fn month_summary(&self, st: &ServiceState, op: &str, end: i64) -> MonthSummary {
        let Some(series) = st.series.get(op) else {
            return MonthSummary::default();
        };
        let accs: Vec<&Acc> = [&series.month, &series.day].into_iter().flatten().collect();
        let bins: Vec<&HourBin> = series.hours.range(..end).map(|(_, b)| b).collect();
        let hist = histogram::merge_all_open(
            &self.rules.hist,
            accs.iter().map(|a| a.bytes.as_slice()),
            bins.iter().map(|b| &b.hist.0),
        );
        let count = accs.iter().map(|a| a.count).sum::<u64>() + bins.iter().map(|b| b.count).sum::<u64>();
        let errors = accs.iter().map(|a| a.errors).sum::<u64>() + bins.iter().map(|b| b.errors).sum::<u64>();
        let sum = accs.iter().map(|a| a.sum_ns).sum::<u128>() + bins.iter().map(|b| b.sum_ns).sum::<u128>();
        let summary = hist.as_ref().map(histogram::summarize).unwrap_or_default();
        MonthSummary {
            count,
            errors,
            mean_ns: if count == 0 { 0.0 } else { sum as f64 / count as f64 },
            p50_ns: summary.p50_ns,
            p95_ns: summary.p95_ns,
            p99_ns: summary.p99_ns,
            hist: hist.ok(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct MonthSummary {
    pub(super) count: u64,
    pub(super) errors: u64,
    pub(super) mean_ns: f64,
    pub(super) p50_ns: i64,
    pub(super) p95_ns: i64,
    pub(super) p99_ns: i64,
    pub(super) hist: Option<Histogram<u64>>,
}

fn percentile(s: &MonthSummary, p: f64) -> f64 {
    s.hist.as_ref().map_or(0.0, |h| histogram::percentile_ns(h, p) as f64)
}

impl ServiceState {
    /// A service's state before its first event, in the given month.
    pub(super) fn default_for(month_start: i64, month_end: i64) -> ServiceState {
        ServiceState {
            series: BTreeMap::new(),
            month_start,
            month_end,
            requests: 0,
            errors: 0,
            minute_ring: VecDeque::new(),
            hour_ring: VecDeque::new(),
            streaks: BTreeMap::new(),
            active: BTreeMap::new(),
            downtime: IntervalSet::new(),
            source_maintenance: IntervalSet::new(),
            firing: BTreeMap::new(),
            emitted: BTreeSet::new(),
            breaches: BTreeMap::new(),
            evaluated_to: month_start,
            days_to_judge: Vec::new(),
            last_judged_day: None,
            due: super::due::unscheduled(),
        }
    }
}

fn sum_ring(ring: &VecDeque<(i64, u64, u64)>, from: i64, to: i64) -> (u64, u64) {
    ring.iter()
        .filter(|(t, _, _)| *t >= from && *t < to)
        .fold((0, 0), |(r, e), (_, rr, ee)| (r + rr, e + ee))
}

/// The instant at which the cumulative length of `set` reaches `amount` ns.
fn crossing(set: &IntervalSet, amount: f64) -> Option<i64> {
    let mut before = 0f64;
    for &(s, e) in set.intervals() {
        let len = (e - s) as f64;
        if before + len >= amount {
            return Some(s + (amount - before).ceil().max(0.0) as i64);
        }
        before += len;
    }
    None
}

/// An objective's measured value, threshold, unit and whether it was met, from the month's
/// summary of its series, the availability and the downtime.
pub(super) fn measure(
    obj: &Objective,
    st: &ServiceState,
    summary: &MonthSummary,
    availability: f64,
    down: &IntervalSet,
) -> (f64, f64, &'static str, bool) {
    let threshold_ms = obj.threshold_ns() as f64 / 1e6;
    match obj.kind {
        ObjectiveKind::LatencyPercentile => {
            let p = percentile(summary, obj.percentile.unwrap_or(95.0));
            (p / 1e6, threshold_ms, "ms", p <= obj.threshold_ns() as f64)
        }
        ObjectiveKind::MeanLatency => (
            summary.mean_ns / 1e6,
            threshold_ms,
            "ms",
            summary.mean_ns <= obj.threshold_ns() as f64,
        ),
        ObjectiveKind::Streak => {
            let longest = st.streaks.get(&obj.name).map_or(0, |s| s.longest_in_month);
            let days = obj.days.unwrap_or(1);
            (f64::from(longest), f64::from(days), "days", longest < days)
        }
        ObjectiveKind::Availability => {
            let target = obj.target.unwrap_or(100.0);
            (availability, target, "percent", availability >= target)
        }
        ObjectiveKind::RequestAvailability => {
            let target = obj.target.unwrap_or(100.0);
            let level = if summary.count == 0 {
                100.0
            } else {
                (1.0 - summary.errors as f64 / summary.count as f64) * 100.0
            };
            (level, target, "percent", level >= target)
        }
        ObjectiveKind::MaxDowntime => {
            let longest = down.longest() as f64 / 60e9;
            (
                longest,
                obj.threshold_ns() as f64 / 60e9,
                "minutes",
                down.longest() <= obj.threshold_ns(),
            )
        }
    }
}

/// The credit an objective earns: its own percent when missed, and that of every tier its
/// measured value is below.
pub(super) fn credit_of(obj: &Objective, measured: f64, met: bool) -> f64 {
    let missed = if met { 0.0 } else { obj.credit_percent.unwrap_or(0.0) };
    obj.credit_tiers
        .iter()
        .filter(|tier| measured < tier.below)
        .map(|tier| tier.percent)
        .fold(missed, f64::max)
}

/// Availability in percent: 1 − downtime / the time that counts, where unmeasured time
/// counts as good (up) or, when the contract says so, not at all.
fn availability_of(unmeasured: Unmeasured, eligible: &IntervalSet, coverage: &Coverage, down: &IntervalSet) -> f64 {
    let counted = match unmeasured {
        Unmeasured::Good => eligible.total(),
        Unmeasured::Unknown => coverage.measured,
    };
    if counted > 0 {
        (1.0 - down.total() as f64 / counted as f64) * 100.0
    } else if unmeasured == Unmeasured::Unknown {
        0.0 // nothing measured and nothing taken on trust: not shown available
    } else {
        100.0
    }
}

/// The measured share of a report's period.
struct Coverage {
    /// Measured time, ns.
    measured: i64,
    percent: f64,
}

/// The contract month being judged: its bounds and its `YYYY-MM` label.
struct Month {
    start: i64,
    end: i64,
    period: String,
}

/// Each outage of `down` longer than the objective's limit, as a breach detected when the
/// limit was reached.
fn long_downtimes<'a>(
    service: &'a str,
    obj: &'a Objective,
    period: &'a str,
    down: &'a IntervalSet,
) -> impl Iterator<Item = Finding> + 'a {
    let limit = obj.threshold_ns();
    down.intervals()
        .iter()
        .filter(move |&&(s, e)| e - s > limit)
        .map(move |&(s, e)| {
            let kind = format!("max_downtime@{s}");
            let mut f = finding(
                service,
                obj,
                &kind,
                period,
                (e - s) as f64,
                limit as f64,
                "ns",
                (s, e),
                s + limit,
            );
            f.kind = "max_downtime".into();
            f
        })
}

#[allow(clippy::too_many_arguments)]
fn finding(
    service: &str,
    obj: &Objective,
    kind: &str,
    period: &str,
    measured: f64,
    threshold: f64,
    unit: &str,
    (window_start_ns, window_end_ns): (i64, i64),
    detected_ns: i64,
) -> Finding {
    Finding {
        key: format!("{service}/{}/{kind}/{period}", obj.name),
        service: service.to_string(),
        objective: obj.name.clone(),
        kind: kind.to_string(),
        period: period.to_string(),
        measured,
        threshold,
        unit: unit.to_string(),
        window_start_ns,
        window_end_ns,
        detected_ns,
    }
}
