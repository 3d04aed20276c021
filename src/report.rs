//! Monthly reports as people and spreadsheets read them: an aligned table for the terminal,
//! CSV for finance (one row per objective, report columns repeated), and JSON.

use std::fmt::Write as _;

use crate::engine::sla::Report;

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

/// Renders reports in the format.
pub fn render(reports: &[Report], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => serde_json::to_string_pretty(reports).unwrap_or_default() + "\n",
        ReportFormat::Csv => csv(reports),
        ReportFormat::Table => table(reports),
    }
}

const CSV_HEADER: &str = "service,period,complete,objective,kind,measured,threshold,unit,met,availability_percent,downtime_minutes,longest_downtime_minutes,maintenance_minutes,requests,errors,p50_ms,p95_ms,p99_ms,mean_ms,breaches,credit_percent,credit_amount,currency,late_samples";

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn csv(reports: &[Report]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in reports {
        for o in &r.objectives {
            let _ =
                writeln!(
                out,
                "{},{},{},{},{},{:.4},{:.4},{},{},{:.4},{:.2},{:.2},{:.2},{},{},{:.3},{:.3},{:.3},{:.3},{},{:.2},{},{},{}",
                csv_field(&r.service),
                r.period,
                r.complete,
                csv_field(&o.name),
                serde_json::to_value(o.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
                o.measured,
                o.threshold,
                o.unit,
                o.met,
                r.availability_percent,
                r.downtime_minutes,
                r.longest_downtime_minutes,
                r.maintenance_minutes,
                r.requests,
                r.errors,
                r.p50_ms,
                r.p95_ms,
                r.p99_ms,
                r.mean_ms,
                r.breaches,
                r.credit_percent,
                r.credit_amount.map(|a| format!("{a:.2}")).unwrap_or_default(),
                r.currency,
                r.late_samples,
            );
        }
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
            let kind = serde_json::to_value(o.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
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
        let amount = r
            .credit_amount
            .map(|a| format!(" = {a:.2} {}", r.currency))
            .unwrap_or_default();
        let _ = writeln!(out, "  service credit {:.2} %{amount}\n", r.credit_percent);
    }
    out
}
