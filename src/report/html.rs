//! The monthly report as one self-contained HTML page (inline SVG charts, no script, no font
//! or image fetched from anywhere), readable on screen and printed to A4: a summary of the
//! services, then per service its objectives, daily availability and downtime, daily p95
//! and mean latency against their thresholds, the error budget's burn over the month, the
//! incident timeline and the month's breaches and warnings.

use std::fmt::Write as _;

use crate::engine::sla::config::ObjectiveKind;
use crate::engine::sla::{DayLine, Finding, Report};

const STYLE: &str = "@page { size: A4; margin: 14mm; }
body { font: 11pt/1.35 -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #1d2733; margin: 24px; }
h1 { font-size: 18pt; margin: 0 0 4px; } h2 { font-size: 14pt; margin: 28px 0 6px; border-bottom: 1px solid #ccd; }
h3 { font-size: 11pt; margin: 14px 0 4px; } table { border-collapse: collapse; margin: 6px 0; }
td, th { padding: 3px 8px; border-bottom: 1px solid #e3e6ea; text-align: left; font-size: 10pt; }
td.n, th.n { text-align: right; } .met { color: #1a7f37; } .missed { color: #c4271f; font-weight: 600; }
.note { color: #57606a; font-size: 9.5pt; } svg { display: block; margin: 4px 0 10px; }
section.service { break-before: page; } section.service:first-of-type { break-before: auto; }";

/// Chart area in SVG units.
const W: f64 = 640.0;
const H: f64 = 150.0;
const PAD: f64 = 36.0;

/// The page of `reports` (one month), with the month's `findings` (warnings and breaches).
pub fn page(reports: &[Report], findings: &[(String, Finding)]) -> String {
    let period = reports.first().map_or("", |r| r.period.as_str());
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>SLA report {}</title><style>{STYLE}</style></head><body>\n",
        esc(period)
    );
    let _ = writeln!(out, "<h1>SLA report {}</h1>", esc(period));
    summary(&mut out, reports);
    for r in reports {
        let mine: Vec<&(String, Finding)> = findings.iter().filter(|(_, f)| f.service == r.service).collect();
        service(&mut out, r, &mine);
    }
    out.push_str("</body></html>\n");
    out
}

fn summary(out: &mut String, reports: &[Report]) {
    out.push_str("<table class=\"summary\"><tr><th>service</th><th class=\"n\">objectives met</th><th class=\"n\">availability</th><th class=\"n\">coverage</th><th class=\"n\">credit</th><th>cause</th></tr>\n");
    for r in reports {
        let met = r.objectives.iter().filter(|o| o.met).count();
        let class = if met == r.objectives.len() { "met" } else { "missed" };
        let _ = writeln!(
            out,
            "<tr data-service=\"{s}\"><td><a href=\"#{s}\">{s}</a>{running}</td><td class=\"n {class}\">{met} / {}</td><td class=\"n\">{}</td><td class=\"n\">{:.1} %</td><td class=\"n credit\">{}</td><td>{}</td></tr>",
            r.objectives.len(),
            if r.no_data { "no data".to_string() } else { format!("{:.3} %", r.availability_percent) },
            r.coverage_percent,
            credit(r),
            esc(&r.credit_causes.join(", ")),
            s = esc(&r.service),
            running = if r.complete { "" } else { " (running)" },
        );
    }
    out.push_str("</table>\n");
}

fn credit(r: &Report) -> String {
    match r.credit_amount {
        Some(a) => format!("{:.2} % = {a:.2} {}", r.credit_percent, esc(&r.currency)),
        None => format!("{:.2} %", r.credit_percent),
    }
}

fn service(out: &mut String, r: &Report, findings: &[&(String, Finding)]) {
    let _ = writeln!(
        out,
        "<section class=\"service\" id=\"{0}\"><h2>{0} — {1}</h2>",
        esc(&r.service),
        esc(&r.period)
    );
    let _ = writeln!(
        out,
        "<p class=\"note\">Availability {:.4} %, downtime {:.1} min (longest {:.1}), maintenance {:.1} min; coverage {:.1} % ({:.0} of {:.0} minutes measured){}; {} requests, p95 {:.1} ms, mean {:.1} ms. Credit {}.</p>",
        r.availability_percent,
        r.downtime_minutes,
        r.longest_downtime_minutes,
        r.maintenance_minutes,
        r.coverage_percent,
        r.measured_minutes,
        r.period_minutes,
        if r.no_data { ", no data" } else { "" },
        r.requests,
        r.p95_ms,
        r.mean_ms,
        credit(r)
    );
    out.push_str("<table class=\"objectives\"><tr><th>objective</th><th class=\"n\">measured</th><th class=\"n\">threshold</th><th>unit</th><th></th></tr>\n");
    for o in &r.objectives {
        let (class, word) = if o.met { ("met", "met") } else { ("missed", "missed") };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{:.4}</td><td class=\"n\">{:.4}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
            esc(&o.name),
            o.measured,
            o.threshold,
            esc(&o.unit)
        );
    }
    out.push_str("</table>\n");
    let thresholds = |kind: ObjectiveKind| {
        r.objectives
            .iter()
            .filter(|o| o.kind == kind && o.unit == "ms")
            .map(|o| o.threshold)
            .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.min(t))))
    };
    out.push_str("<h3>Daily downtime (bars, minutes) and availability</h3>\n");
    bars(out, "downtime", &r.days, |d| d.downtime_minutes, "min");
    out.push_str("<h3>Daily p95 and mean latency (ms) against the thresholds</h3>\n");
    let p95 = thresholds(ObjectiveKind::LatencyPercentile);
    let mean = thresholds(ObjectiveKind::MeanLatency);
    lines(
        out,
        "latency",
        &r.days,
        &[("p95", |d| d.p95_ms, p95), ("mean", |d| d.mean_ms, mean)],
    );
    out.push_str("<h3>Error budget consumed (%, cumulative)</h3>\n");
    lines(
        out,
        "budget",
        &r.days,
        &[("budget", |d| d.budget_consumed_percent, Some(100.0))],
    );
    timeline(out, r);
    findings_table(out, findings);
    out.push_str("</section>\n");
}

type Series<'a> = (&'a str, fn(&DayLine) -> f64, Option<f64>);

/// A bar per day.
fn bars(out: &mut String, class: &str, days: &[DayLine], value: fn(&DayLine) -> f64, unit: &str) {
    let top = days.iter().map(value).fold(1.0, f64::max);
    let step = (W - 2.0 * PAD) / days.len().max(1) as f64;
    let _ = write!(out, "<svg class=\"chart {class}\" data-days=\"{}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\">", days.len());
    axes(out, top, unit);
    for (i, d) in days.iter().enumerate() {
        let v = value(d);
        let h = v / top * (H - 2.0 * PAD);
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}: {v:.1} {unit}, availability {:.3} %</title></rect>",
            PAD + i as f64 * step + 1.0,
            H - PAD - h,
            (step - 2.0).max(1.0),
            if v > 0.0 { "#c4271f" } else { "#1a7f37" },
            esc(&d.date),
            d.availability_percent
        );
    }
    day_labels(out, days, step);
    out.push_str("</svg>\n");
}

/// A line per series, and each series' threshold dashed.
fn lines(out: &mut String, class: &str, days: &[DayLine], series: &[Series]) {
    let top = series
        .iter()
        .flat_map(|(_, f, t)| days.iter().map(f).chain(*t))
        .fold(1.0, f64::max)
        * 1.1;
    let step = (W - 2.0 * PAD) / days.len().max(1) as f64;
    let y = |v: f64| H - PAD - v / top * (H - 2.0 * PAD);
    let _ = write!(out, "<svg class=\"chart {class}\" data-days=\"{}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\">", days.len());
    axes(out, top, "");
    let colours = ["#0969da", "#8250df"];
    for (k, (name, f, threshold)) in series.iter().enumerate() {
        let points: Vec<String> = days
            .iter()
            .enumerate()
            .map(|(i, d)| format!("{:.1},{:.1}", PAD + (i as f64 + 0.5) * step, y(f(d))))
            .collect();
        let colour = colours[k % colours.len()];
        let _ = write!(out, "<polyline class=\"series {name}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"><title>{name}</title></polyline>", points.join(" "));
        if let Some(t) = threshold {
            let _ = write!(
                out,
                "<line class=\"threshold {name}\" x1=\"{PAD}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-dasharray=\"5 4\"><title>{name} threshold {t}</title></line>",
                W - PAD,
                y(*t),
                y(*t)
            );
        }
    }
    day_labels(out, days, step);
    out.push_str("</svg>\n");
}

fn axes(out: &mut String, top: f64, unit: &str) {
    let _ = write!(
        out,
        "<line x1=\"{PAD}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#8c959f\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{0}\" stroke=\"#8c959f\"/><text x=\"2\" y=\"{2}\" font-size=\"9\">{top:.0} {unit}</text><text x=\"2\" y=\"{0}\" font-size=\"9\">0</text>",
        H - PAD,
        W - PAD,
        PAD + 4.0
    );
}

fn day_labels(out: &mut String, days: &[DayLine], step: f64) {
    for (i, d) in days.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\">{}</text>",
            PAD + i as f64 * step,
            H - PAD + 14.0,
            esc(d.date.get(8..).unwrap_or_default())
        );
    }
}

fn timeline(out: &mut String, r: &Report) {
    let Some(inc) = &r.incidents else { return };
    out.push_str("<h3>Incidents</h3>\n<table class=\"incidents\"><tr><th>incident</th><th>priority</th><th>opened</th><th>resolved</th><th class=\"n\">minutes</th><th>targets</th></tr>\n");
    for i in &inc.timeline {
        let (class, word) = if i.within_target {
            ("met", "met")
        } else {
            ("missed", "missed")
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>P{}</td><td>{}</td><td>{}</td><td class=\"n\">{:.0}</td><td class=\"{class}\">{word}</td></tr>",
            esc(&i.incident),
            i.priority,
            crate::time::to_rfc3339(i.opened_ns),
            crate::time::to_rfc3339(i.resolved_ns),
            (i.resolved_ns - i.opened_ns) as f64 / 60e9
        );
    }
    out.push_str("</table>\n");
}

fn findings_table(out: &mut String, findings: &[&(String, Finding)]) {
    out.push_str("<h3>Breaches and warnings</h3>\n");
    if findings.is_empty() {
        out.push_str("<p class=\"note\">None this month.</p>\n");
        return;
    }
    out.push_str("<table class=\"findings\"><tr><th>type</th><th>objective</th><th>kind</th><th>detected</th><th class=\"n\">measured</th><th class=\"n\">threshold</th></tr>\n");
    for (kind, f) in findings {
        let _ = writeln!(
            out,
            "<tr><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{:.3}</td><td class=\"n\">{:.3} {}</td></tr>",
            if kind == "breach" { "missed" } else { "" },
            esc(kind),
            esc(&f.objective),
            esc(&f.kind),
            crate::time::to_rfc3339(f.detected_ns),
            f.measured,
            f.threshold,
            esc(&f.unit)
        );
    }
    out.push_str("</table>\n");
}

/// Text for HTML: `&`, `<`, `>` and quotes escaped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names come from the inputs: a service named like markup is shown, never run.
    #[test]
    fn names_from_the_inputs_are_escaped() {
        assert_eq!(
            esc("<script>a&b</script>\"'"),
            "&lt;script&gt;a&amp;b&lt;/script&gt;&quot;&#39;"
        );
        let report: Report = serde_json::from_value(serde_json::json!({
            "service": "<script>alert(1)</script>", "period": "2026-03", "timezone": "UTC",
            "start_ns": 0, "end_ns": 1, "complete": true, "objectives": [],
            "availability_percent": 100.0, "downtime_minutes": 0.0, "longest_downtime_minutes": 0.0,
            "maintenance_minutes": 0.0, "requests": 0, "errors": 0, "p50_ms": 0.0, "p95_ms": 0.0,
            "p99_ms": 0.0, "mean_ms": 0.0, "breaches": 0, "credit_percent": 0.0, "credit_amount": null,
            "currency": "EUR"
        }))
        .unwrap();
        let page = page(&[report], &[]);
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}
