//! The check: the store's reports and incidents compared with the oracle's figures, one line
//! per service and one overall, with every difference spelled out. It decides the demo's exit
//! status, so it reads only what the store (and the engines' counters) hold, never the
//! oracle's intermediate sets.

use std::fmt::Write as _;

use super::oracle::{Expected, ExpectedService};
use super::present::{plural, thousands};
use super::simulate::Simulation;
use crate::engine::sla::{Report, SlaOutput};
use crate::replay::Record;
use crate::sinks::IncidentRow;

/// Compares the store with the script's figures; prints one line per service and the
/// differences, if any. True when everything matches.
pub(super) fn check(
    out: &mut String,
    expected: &Expected,
    reports: &[Report],
    rows: &[IncidentRow],
    sim: &Simulation,
) -> bool {
    let _ = writeln!(
        out,
        "Check: the figures the script implies (counted from the script, not by the engines) against the store\n"
    );
    let mut all_ok = true;
    for e in &expected.services {
        let Some(r) = reports.iter().find(|r| r.service == e.service) else {
            let _ = writeln!(out, "  {:<8}  ✗ no report in the store", e.service);
            all_ok = false;
            continue;
        };
        let diffs = service_diffs(e, r, sim);
        service_line(out, expected, e, &diffs);
        all_ok &= diffs.is_empty();
    }
    all_ok &= overall(out, expected, rows, sim);
    out.push('\n');
    all_ok
}

/// Where service `e`'s stored report `r` differs from the script's figures.
fn service_diffs(e: &ExpectedService, r: &Report, sim: &Simulation) -> Vec<String> {
    let mut diffs: Vec<String> = Vec::new();
    let close = |a: f64, b: f64, tolerance: f64| (a - b).abs() <= tolerance;
    let mut number = |what: &str, want: f64, got: f64, tolerance: f64| {
        if !close(want, got, tolerance) {
            diffs.push(format!("{what}: script {want:.4}, store {got:.4}"));
        }
    };
    number("availability %", e.availability_percent, r.availability_percent, 1e-6);
    number("downtime min", e.downtime_minutes, r.downtime_minutes, 1e-6);
    number(
        "longest downtime min",
        e.longest_downtime_minutes,
        r.longest_downtime_minutes,
        1e-6,
    );
    number("maintenance min", e.maintenance_minutes, r.maintenance_minutes, 1e-6);
    number("requests", e.requests as f64, r.requests as f64, 0.0);
    number("errors", e.errors as f64, r.errors as f64, 0.0);
    number("mean ms", e.mean_ms, r.mean_ms, 1e-6);
    // HdrHistogram keeps 3 significant digits: within 0.1 % of the exact percentile.
    number("p95 ms", e.p95_ms, r.p95_ms, e.p95_ms * 0.002);
    number("breaches", f64::from(e.breaches), f64::from(r.breaches), 0.0);
    number("credit %", e.credit_percent, r.credit_percent, 1e-9);
    number(
        "credit amount",
        e.credit_amount.unwrap_or(0.0),
        r.credit_amount.unwrap_or(0.0),
        0.005,
    );
    let streaks = sim
        .records
        .iter()
        .filter(|x| matches!(x, Record::Sla(SlaOutput::Warning(f)) if f.service == e.service && f.kind == "streak"))
        .count();
    number("streak warnings", f64::from(e.streak_warnings), streaks as f64, 0.0);
    if !r.complete {
        diffs.push("the stored report is not the final one".into());
    }
    for o in &e.objectives {
        match r.objectives.iter().find(|x| x.name == o.name) {
            None => diffs.push(format!("objective {}: not in the report", o.name)),
            Some(x) if x.met != o.met => diffs.push(format!(
                "objective {}: script {}, store {}",
                o.name,
                if o.met { "met" } else { "missed" },
                if x.met { "met" } else { "missed" }
            )),
            Some(_) => {}
        }
    }
    diffs
}

/// Service `e`'s line: ✓ or ✗, its availability, downtime, objectives and credit; then the
/// differences.
fn service_line(out: &mut String, expected: &Expected, e: &ExpectedService, diffs: &[String]) {
    let missed: Vec<&str> = e
        .objectives
        .iter()
        .filter(|o| !o.met)
        .map(|o| o.name.as_str())
        .collect();
    let credit = match e.credit_amount {
        Some(amount) if e.credit_percent > 0.0 => {
            format!("credit {:.0} % = {:.2} {}", e.credit_percent, amount, e.currency)
        }
        _ => "no credit".to_string(),
    };
    let down = format!(
        "{:.0} min down of {}{}",
        e.downtime_minutes,
        thousands((expected.month_minutes - e.maintenance_minutes) as u64),
        if e.maintenance_minutes > 0.0 {
            format!(" ({:.0} min maintenance excluded)", e.maintenance_minutes)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "  {:<8}  {}  availability {:.4} %: {down}; {}/{} objectives met{}; {credit}",
        e.service,
        if diffs.is_empty() { "✓" } else { "✗" },
        e.availability_percent,
        e.objectives.len() - missed.len(),
        e.objectives.len(),
        if missed.is_empty() {
            String::new()
        } else {
            format!(" (missed: {})", missed.join(", "))
        },
    );
    for d in diffs {
        let _ = writeln!(out, "              ✗ {d}");
    }
}

/// The incidents and the month's counts against the store and the engines' counters;
/// prints the "overall" line. True when they match.
fn overall(out: &mut String, expected: &Expected, rows: &[IncidentRow], sim: &Simulation) -> bool {
    let mut diffs = incident_diffs(expected, rows);
    diffs.extend(resolve_diffs(expected, sim));
    let duplicates: u64 = rows.iter().map(|r| r.occurrences.saturating_sub(r.alerts)).sum();
    let counts = [
        ("incidents", expected.incidents.len() as u64, rows.len() as u64),
        ("duplicates", expected.duplicates, duplicates),
        ("suppressed", expected.suppressed, sim.correlate.suppressed),
        ("latency samples", expected.samples, sim.sla.samples),
    ];
    for (what, want, got) in counts {
        if want != got {
            diffs.push(format!("{what}: script {want}, store {got}"));
        }
    }
    let _ = writeln!(
        out,
        "  {:<8}  {}  {}, {}, {} suppressed in maintenance, {} latency samples",
        "overall",
        if diffs.is_empty() { "✓" } else { "✗" },
        plural(expected.incidents.len() as u64, "incident"),
        plural(expected.duplicates, "duplicate notification"),
        plural(expected.suppressed, "alert"),
        thousands(expected.samples),
    );
    for d in &diffs {
        let _ = writeln!(out, "              ✗ {d}");
    }
    diffs.is_empty()
}

/// Each scripted incident with a resolve target whose met or missed the engine did not
/// record as the script implies.
fn resolve_diffs(expected: &Expected, sim: &Simulation) -> Vec<String> {
    let word = |met: bool| if met { "met" } else { "missed" };
    let mut diffs = Vec::new();
    for (service, opened, met) in &expected.resolve_outcomes {
        let got: Vec<&str> = sim
            .records
            .iter()
            .filter_map(|x| match x {
                Record::Sla(SlaOutput::IncidentSla(i))
                    if &i.service == service && i.opened_ns == *opened && i.target == "resolve" =>
                {
                    ["met", "missed"].into_iter().find(|w| *w == i.event)
                }
                _ => None,
            })
            .collect();
        if got != [word(*met)] {
            let engine = if got.is_empty() {
                "nothing".to_string()
            } else {
                got.join(" and ")
            };
            diffs.push(format!(
                "resolve target of the {service} incident opened at {}: script {}, engine {engine}",
                crate::time::to_rfc3339(*opened),
                word(*met)
            ));
        }
    }
    diffs
}

/// Each scripted incident that the store lacks or holds with other figures.
fn incident_diffs(expected: &Expected, rows: &[IncidentRow]) -> Vec<String> {
    let mut diffs = Vec::new();
    for e in &expected.incidents {
        match rows
            .iter()
            .find(|r| r.service == e.service && r.opened_ns == e.opened_ns)
        {
            None => diffs.push(format!(
                "no incident of {} opened at {}",
                e.service,
                crate::time::to_rfc3339(e.opened_ns)
            )),
            Some(r) => {
                let got = (r.priority, r.major, r.alerts, r.occurrences, r.resolved_ns);
                let want = (e.priority, e.major, e.alerts, e.notifications, Some(e.resolved_ns));
                if got != want {
                    let words = |(p, major, alerts, n, resolved): (u8, bool, u64, u64, Option<i64>)| {
                        format!(
                            "P{p}{}, {alerts} alerts, {n} notifications, resolved {}",
                            if major { " major" } else { "" },
                            resolved.map_or("never".to_string(), crate::time::to_rfc3339)
                        )
                    };
                    diffs.push(format!(
                        "{} ({}): script {}, store {}",
                        r.id,
                        e.what,
                        words(want),
                        words(got)
                    ));
                }
            }
        }
    }
    diffs
}
