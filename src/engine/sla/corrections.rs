//! Corrections of a final month. For `[sla] correction_window` after a month's end, the
//! engine keeps what its final report was made of (the month's latency accumulators, the
//! report, the credits other than the objectives'); a sample of that month arriving then (a
//! late one, a replayed dead letter, a backfill) is merged into them and the report is
//! issued again as version n+1, listing each figure that changed, before and after. Every
//! version is a record of its own; nothing changes a final month silently. Past the window
//! (or with none, the default) such a sample is a late sample of a final month, kept as a
//! dead letter that says so. Samples change latency and request figures: downtime learnt of
//! after the close is not a correction (an outage's start is clipped to the running month).

use super::evaluate::{credit_of, measure, MonthSummary};
use super::*;

/// A final month still open to corrections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Correctable {
    /// The latest version issued.
    report: Report,
    /// Corrections are taken while the clock is before this.
    until_ns: i64,
    /// The month's accumulators by operation ("" the whole service).
    accs: BTreeMap<String, Acc>,
    /// Credits other than the objectives' (incident terms): (cause, percent).
    other_credits: Vec<(String, f64)>,
    /// Samples were merged since the latest version.
    dirty: bool,
}

impl SlaEngine {
    /// Keeps a month just closed open to corrections, when the contract's window allows.
    pub(super) fn keep_correctable(&mut self, service: &str, report: &Report, accs: BTreeMap<String, Acc>) {
        let window = i64::try_from(self.rules.cfg.correction_window.as_nanos()).unwrap_or(i64::MAX);
        if window == 0 {
            return;
        }
        let other_credits = self
            .rules
            .contracts
            .get(service)
            .and_then(|c| self.incident_summary(service, c, report.start_ns, report.end_ns))
            .map(|(_, credits)| credits)
            .unwrap_or_default();
        let kept = Correctable {
            report: report.clone(),
            until_ns: report.end_ns.saturating_add(window),
            accs,
            other_credits,
            dirty: false,
        };
        self.state.corrections.insert(service.to_string(), kept);
    }

    /// Takes a sample of a final month as a correction, if its month is still open to
    /// them; false if not (it is then a late sample of a final month).
    pub(super) fn correct(&mut self, service: &str, operation: &str, t: i64, duration_ns: i64, error: bool) -> bool {
        let frontier = self.state.frontier;
        let open = self
            .state
            .corrections
            .get(service)
            .is_some_and(|c| frontier < c.until_ns && (c.report.start_ns..c.report.end_ns).contains(&t));
        if !open {
            return false;
        }
        let hist = self.rules.hist.clone();
        let Some(c) = self.state.corrections.get_mut(service) else {
            return false;
        };
        for op in ["", operation] {
            if let Some(acc) = c.accs.get_mut(op) {
                let Ok(mut one) = hist.new_open() else { continue };
                one.record(&hist, duration_ns, 1);
                // Our own accumulator failing to merge would mean corruption; the counts count.
                let _ = histogram::merge_open_into(&hist, &mut acc.bytes, &one);
                acc.count += 1;
                acc.errors += u64::from(error);
                acc.sum_ns += u128::try_from(duration_ns.max(0)).unwrap_or(0);
            }
            if operation.is_empty() {
                break;
            }
        }
        c.dirty = true;
        true
    }

    /// Issues the corrected reports (version n+1 with what changed), and forgets the months
    /// whose window has passed.
    pub(super) fn issue_corrections(&mut self, out: &mut Vec<SlaOutput>) {
        let frontier = self.state.frontier;
        let dirty: Vec<String> = self
            .state
            .corrections
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(s, _)| s.clone())
            .collect();
        for service in dirty {
            let Some(contract) = self.rules.contracts.get(&service).cloned() else {
                continue;
            };
            let Some(c) = self.state.corrections.get_mut(&service) else {
                continue;
            };
            let next = corrected(&contract, c, frontier);
            c.report = next.clone();
            c.dirty = false;
            out.push(SlaOutput::MonthlyReport(Box::new(next)));
        }
        self.state.corrections.retain(|_, c| frontier < c.until_ns);
    }
}

/// The next version of `c`'s report: its latency and request figures, objectives and
/// credit from the corrected accumulators, and the list of what changed.
fn corrected(contract: &Contract, c: &Correctable, issued_ns: i64) -> Report {
    let old = &c.report;
    let mut next = old.clone();
    let whole = summary(c.accs.get(""));
    next.requests = whole.count;
    next.errors = whole.errors;
    next.mean_ms = whole.mean_ns / 1e6;
    next.p50_ms = whole.p50_ns as f64 / 1e6;
    next.p95_ms = whole.p95_ns as f64 / 1e6;
    next.p99_ms = whole.p99_ns as f64 / 1e6;
    let mut credits = c.other_credits.clone();
    let empty = ServiceState::default_for(old.start_ns, old.end_ns);
    for (obj, result) in contract.objectives.iter().zip(next.objectives.iter_mut()) {
        let by_samples = matches!(
            obj.kind,
            ObjectiveKind::LatencyPercentile | ObjectiveKind::MeanLatency | ObjectiveKind::RequestAvailability
        );
        if by_samples {
            let s = summary(c.accs.get(obj.operation.as_deref().unwrap_or("")));
            let (measured, _, _, met) = measure(obj, &empty, &s, old.availability_percent, &IntervalSet::new());
            result.measured = measured;
            result.met = met;
        }
        credits.push((obj.name.clone(), credit_of(obj, result.measured, result.met)));
    }
    let credit = credits.iter().map(|(_, p)| *p).fold(0.0, f64::max);
    next.credit_percent = credit;
    next.credit_amount = contract.monthly_fee.map(|fee| fee * credit / 100.0);
    next.credit_causes = credits
        .into_iter()
        .filter(|(_, p)| credit > 0.0 && *p == credit)
        .map(|(cause, _)| cause)
        .collect();
    next.version = old.version + 1;
    next.issued_ns = issued_ns;
    next.changes = changes(old, &next);
    next
}

/// The summary of a month accumulator, as the report's figures take it.
fn summary(acc: Option<&Acc>) -> MonthSummary {
    let Some(acc) = acc else {
        return MonthSummary::default();
    };
    let hist = histogram::decode(&acc.bytes).ok();
    let s = hist.as_ref().map(histogram::summarize).unwrap_or_default();
    MonthSummary {
        count: acc.count,
        errors: acc.errors,
        mean_ns: acc.mean_ns(),
        p50_ns: s.p50_ns,
        p95_ns: s.p95_ns,
        p99_ns: s.p99_ns,
        hist,
    }
}

/// Each figure that differs between two versions: (figure, before, after).
fn changes(old: &Report, new: &Report) -> Vec<ReportChange> {
    let mut out = Vec::new();
    let mut figure = |name: String, before: String, after: String| {
        if before != after {
            out.push(ReportChange {
                figure: name,
                before,
                after,
            });
        }
    };
    let n = |v: f64| format!("{v:.4}");
    figure("requests".into(), old.requests.to_string(), new.requests.to_string());
    figure("errors".into(), old.errors.to_string(), new.errors.to_string());
    figure("mean_ms".into(), n(old.mean_ms), n(new.mean_ms));
    figure("p50_ms".into(), n(old.p50_ms), n(new.p50_ms));
    figure("p95_ms".into(), n(old.p95_ms), n(new.p95_ms));
    figure("p99_ms".into(), n(old.p99_ms), n(new.p99_ms));
    for (a, b) in old.objectives.iter().zip(&new.objectives) {
        figure(format!("{}.measured", a.name), n(a.measured), n(b.measured));
        figure(format!("{}.met", a.name), a.met.to_string(), b.met.to_string());
    }
    figure("credit_percent".into(), n(old.credit_percent), n(new.credit_percent));
    let amount = |a: Option<f64>| a.map_or(String::new(), |a| format!("{a:.2}"));
    figure(
        "credit_amount".into(),
        amount(old.credit_amount),
        amount(new.credit_amount),
    );
    out
}
