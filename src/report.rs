//! Monthly reports as people and spreadsheets read them: an aligned table for the terminal,
//! two CSVs (objectives, one row each and no money; credits, one row per service and month
//! with the cause, so that a spreadsheet's sum is the credit owed), and JSON.

use std::fmt::Write as _;

use crate::engine::sla::{Finding, IncidentSummary, Report};

mod html;

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    /// One row per objective (no money).
    Csv,
    /// One row per service and month: the credit, once, and its cause.
    CreditsCsv,
    Json,
    /// One self-contained page with charts (`html.rs`).
    Html,
}

/// Renders reports in the format.
pub fn render(reports: &[Report], format: ReportFormat) -> String {
    render_with(reports, &[], format)
}

/// Renders reports in the format, with the month's warnings and breaches as (`warning` or
/// `breach`, finding) for the formats that list them (HTML).
pub fn render_with(reports: &[Report], findings: &[(String, Finding)], format: ReportFormat) -> String {
    match format {
        ReportFormat::Html => html::page(reports, findings),
        ReportFormat::Json => serde_json::to_string_pretty(reports).unwrap_or_default() + "\n",
        ReportFormat::Csv => objectives_csv(reports),
        ReportFormat::CreditsCsv => credits_csv(reports),
        ReportFormat::Table => table(reports),
    }
}

/// The objectives CSV: one row per objective, what was measured and whether it was met; no
/// money (the credits CSV has it once per service and month).
const OBJECTIVES_HEADER: &str = "service,period,complete,objective,kind,measured,threshold,unit,met,caused_credit";
/// The credits CSV: one row per service and month, so that a sum over `credit_amount` is the
/// credit owed.
const CREDITS_HEADER: &str =
    "service,period,complete,monthly_fee,currency,credit_percent,credit_amount,cause,version,issued_at";

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', ';']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn objectives_csv(reports: &[Report]) -> String {
    let mut out = String::from(OBJECTIVES_HEADER);
    out.push('\n');
    for r in reports {
        for o in &r.objectives {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{:.4},{:.4},{},{},{}",
                csv_field(&r.service),
                r.period,
                r.complete,
                csv_field(&o.name),
                o.kind.name(),
                o.measured,
                o.threshold,
                o.unit,
                o.met,
                r.credit_causes.contains(&o.name),
            );
        }
    }
    out
}

fn credits_csv(reports: &[Report]) -> String {
    let mut out = String::from(CREDITS_HEADER);
    out.push('\n');
    for r in reports {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{:.2},{},{},{},{}",
            csv_field(&r.service),
            r.period,
            r.complete,
            r.monthly_fee.map(|f| format!("{f:.2}")).unwrap_or_default(),
            csv_field(&r.currency),
            r.credit_percent,
            r.credit_amount.map(|a| format!("{a:.2}")).unwrap_or_default(),
            csv_field(&r.credit_causes.join("; ")),
            r.version,
            if r.issued_ns > 0 {
                crate::time::to_rfc3339(r.issued_ns)
            } else {
                String::new()
            },
        );
    }
    out
}

fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "{} {}{}  availability {:.4} %  downtime {:.1} min (longest {:.1})  maintenance {:.1} min",
            r.service,
            r.period,
            if r.complete { "" } else { " (running)" },
            r.availability_percent,
            r.downtime_minutes,
            r.longest_downtime_minutes,
            r.maintenance_minutes
        );
        if r.no_data {
            let _ = writeln!(
                out,
                "  no data: nothing measured in the {:.0} minutes that count (coverage 0 %); the figures are not measurements",
                r.period_minutes
            );
        } else {
            let _ = writeln!(
                out,
                "  coverage {:.2} %: {:.0} of {:.0} minutes measured",
                r.coverage_percent, r.measured_minutes, r.period_minutes
            );
        }
        let _ = writeln!(
            out,
            "  requests {}  errors {}  p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  mean {:.1} ms  breaches {}  late samples {}",
            r.requests, r.errors, r.p50_ms, r.p95_ms, r.p99_ms, r.mean_ms, r.breaches, r.late_samples
        );
        let _ = writeln!(
            out,
            "  {:<24} {:<22} {:>14} {:>14} {:<8} met",
            "objective", "kind", "measured", "threshold", "unit"
        );
        for o in &r.objectives {
            let kind = o.kind.name();
            let _ = writeln!(
                out,
                "  {:<24} {:<22} {:>14.4} {:>14.4} {:<8} {}",
                o.name,
                kind,
                o.measured,
                o.threshold,
                o.unit,
                if o.met { "yes" } else { "NO" }
            );
        }
        if let Some(inc) = &r.incidents {
            incident_table(&mut out, inc);
        }
        let amount = r
            .credit_amount
            .map(|a| format!(" = {a:.2} {}", r.currency))
            .unwrap_or_default();
        let cause = if r.credit_causes.is_empty() {
            String::new()
        } else {
            format!(" (cause: {})", r.credit_causes.join(", "))
        };
        let _ = writeln!(out, "  service credit {:.2} %{amount}{cause}\n", r.credit_percent);
    }
    out
}

/// A report's incidents against their targets, a line per priority.
fn incident_table(out: &mut String, inc: &IncidentSummary) {
    let _ = writeln!(
        out,
        "  {:<8} {:>9} {:>14} {:>10} {:>9} {:>10} {:>9}",
        "incident", "resolved", "within target", "MTTA min", "p90", "MTTR min", "p90"
    );
    for l in &inc.priorities {
        let _ = writeln!(
            out,
            "  P{:<7} {:>9} {:>12.1} % {:>10.1} {:>9.1} {:>10.1} {:>9.1}",
            l.priority,
            l.incidents,
            l.within_target_percent,
            l.mtta_mean_minutes,
            l.mtta_p90_minutes,
            l.mttr_mean_minutes,
            l.mttr_p90_minutes
        );
    }
    let breached = if inc.breached.is_empty() {
        "none".to_string()
    } else {
        inc.breached.join(", ")
    };
    let _ = writeln!(
        out,
        "  missed a target: {breached}  major: {}  open at the month's end: {}",
        inc.majors, inc.open_at_end
    );
}

/// Incident KPIs of one month across services: what operations managers report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Kpi {
    /// `YYYY-MM`.
    pub period: String,
    /// Services with incident targets reported.
    pub services: usize,
    /// Incidents resolved in the month.
    pub incidents: u32,
    pub majors: u32,
    /// Mean time to acknowledge and to resolve, minutes, over every incident.
    pub mtta_mean_minutes: f64,
    pub mttr_mean_minutes: f64,
    /// Share of the incidents that met every target they had.
    pub within_target_percent: f64,
}

/// One line per month of the reports' incident summaries, oldest first.
pub fn kpis(reports: &[Report]) -> Vec<Kpi> {
    let mut months: std::collections::BTreeMap<&str, Vec<&IncidentSummary>> = Default::default();
    for r in reports {
        if let Some(inc) = &r.incidents {
            months.entry(r.period.as_str()).or_default().push(inc);
        }
    }
    months
        .into_iter()
        .map(|(period, summaries)| {
            let lines = summaries.iter().flat_map(|s| &s.priorities);
            let (mut n, mut within, mut tta, mut ttr) = (0u32, 0u32, 0f64, 0f64);
            for l in lines {
                n += l.incidents;
                within += l.within_target;
                tta += l.mtta_mean_minutes * f64::from(l.incidents);
                ttr += l.mttr_mean_minutes * f64::from(l.incidents);
            }
            let per = |total: f64| if n == 0 { 0.0 } else { total / f64::from(n) };
            Kpi {
                period: period.to_string(),
                services: summaries.len(),
                incidents: n,
                majors: summaries.iter().map(|s| s.majors).sum(),
                mtta_mean_minutes: per(tta),
                mttr_mean_minutes: per(ttr),
                within_target_percent: if n == 0 { 100.0 } else { per(f64::from(within) * 100.0) },
            }
        })
        .collect()
}

/// Renders KPI lines in the format.
pub fn render_kpis(lines: &[Kpi], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => serde_json::to_string_pretty(lines).unwrap_or_default() + "\n",
        ReportFormat::Csv | ReportFormat::CreditsCsv => {
            let mut out = String::from(
                "period,services,incidents,majors,mtta_mean_minutes,mttr_mean_minutes,within_target_percent\n",
            );
            for k in lines {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{}",
                    k.period,
                    k.services,
                    k.incidents,
                    k.majors,
                    k.mtta_mean_minutes,
                    k.mttr_mean_minutes,
                    k.within_target_percent
                );
            }
            out
        }
        // A page of its own is for the reports; KPIs print as the table there too.
        ReportFormat::Table | ReportFormat::Html => {
            let mut out = format!(
                "{:<8} {:>8} {:>9} {:>6} {:>9} {:>9} {:>14}\n",
                "month", "services", "incidents", "major", "MTTA min", "MTTR min", "within target"
            );
            for k in lines {
                let _ = writeln!(
                    out,
                    "{:<8} {:>8} {:>9} {:>6} {:>9.1} {:>9.1} {:>12.1} %",
                    k.period,
                    k.services,
                    k.incidents,
                    k.majors,
                    k.mtta_mean_minutes,
                    k.mttr_mean_minutes,
                    k.within_target_percent
                );
            }
            out
        }
    }
}
