//! The printed month: the overview of what was generated, decoded, correlated, measured and
//! stored, the incidents table, and the hints for using what the demo served. Text only:
//! what is printed is decided here, the figures come from the other rooms, so that wording
//! and layout change in one place.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::DateTime;

use super::oracle::Expected;
use super::scenario::Scenario;
use super::simulate::Simulation;
use super::traffic::TRAFFIC;
use super::MINUTE;
use crate::config::Config;
use crate::decode::Format;
use crate::engine::sla::config::Granularity;
use crate::engine::sla::SlaOutput;
use crate::replay::Record;
use crate::sinks::IncidentRow;

/// 12345 → "12,345".
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "1 incident", "7 incidents", "2 recoveries".
pub(super) fn plural(n: u64, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {noun}s"),
    }
}

/// 95 minutes → "1h35m".
fn duration_text(ns: i64) -> String {
    let minutes = ns / MINUTE;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h{m:02}m"),
    }
}

/// The SLA engine's records by kind, for the "measured" line.
#[derive(Default)]
struct SlaCounts {
    windows: BTreeMap<Granularity, u64>,
    warnings: u64,
    breaches: u64,
    burn: u64,
}

fn sla_counts(records: &[Record]) -> SlaCounts {
    let mut counts = SlaCounts::default();
    for record in records {
        match record {
            Record::Sla(SlaOutput::WindowClosed(w)) => *counts.windows.entry(w.granularity).or_default() += 1,
            Record::Sla(SlaOutput::Warning(_)) => counts.warnings += 1,
            Record::Sla(SlaOutput::Breach(_)) => counts.breaches += 1,
            Record::Sla(SlaOutput::BurnRateAlert(_)) => counts.burn += 1,
            _ => {}
        }
    }
    counts
}

/// What the demo is, for which month and services.
fn headline(out: &mut String, scenario: &Scenario) {
    let services: Vec<&str> = TRAFFIC.iter().map(|t| t.service).collect();
    let _ = writeln!(
        out,
        "slaflow demo: {} ({}) for {}\n\
         A generated month of monitoring traffic in the sources' own wire formats, decoded by the real\n\
         decoders, correlated and measured by the real engines, and written to the embedded store.\n",
        scenario
            .month
            .first_day()
            .map_or(scenario.month.to_string(), |d| d.format("%B %Y").to_string()),
        scenario.tz,
        match services.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => services.join(""),
        }
    );
}

/// The headline and one line per stage of the path, with its counts.
pub(super) fn overview(
    out: &mut String,
    scenario: &Scenario,
    sim: &Simulation,
    config: &Config,
    transactions: usize,
    took: Duration,
) {
    let count = |map: &BTreeMap<Format, u64>, f: Format| map.get(&f).copied().unwrap_or(0);
    let payloads: u64 = sim.payloads.values().sum();
    let events: u64 = sim.events.values().sum();
    let (c, s) = (&sim.correlate, &sim.sla);
    let sla = sla_counts(&sim.records);
    let window = |g: Granularity| thousands(sla.windows.get(&g).copied().unwrap_or(0));
    headline(out, scenario);
    let _ = writeln!(
        out,
        "  generated   {} payloads: {} Alertmanager, {} Zabbix and {} Datadog monitor webhooks, {} Datadog APM trace payloads",
        thousands(payloads),
        count(&sim.payloads, Format::Alertmanager),
        count(&sim.payloads, Format::ZabbixWebhook),
        count(&sim.payloads, Format::DatadogWebhook),
        thousands(count(&sim.payloads, Format::DatadogApm)),
    );
    let _ = writeln!(
        out,
        "  decoded     {} events: {} alerts, {} spans; none rejected",
        thousands(events),
        thousands(events - count(&sim.events, Format::DatadogApm)),
        thousands(count(&sim.events, Format::DatadogApm)),
    );
    let _ = writeln!(
        out,
        "  correlated  {} alert events → {}; {}, {} suppressed by maintenance, {} without its problem",
        c.alerts,
        plural(c.incidents_opened, "incident"),
        plural(c.duplicates, "duplicate"),
        c.suppressed,
        plural(c.unmatched, "recovery"),
    );
    let _ = writeln!(
        out,
        "  measured    {} latency samples → {} hour, {} day and {} month windows; {} warnings, {} breaches, {} burn-rate alert changes",
        thousands(s.samples),
        window(Granularity::Hour),
        window(Granularity::Day),
        window(Granularity::Month),
        sla.warnings,
        sla.breaches,
        sla.burn
    );
    let _ = writeln!(
        out,
        "  stored      {} records in {} transactions → {}",
        thousands(sim.records.len() as u64),
        transactions,
        config.sqlite.path.display()
    );
    let _ = writeln!(out, "  took        {:.1} s\n", took.as_secs_f64());
}

/// The stored incidents, in the script's zone, each with the episode that opened it.
pub(super) fn incidents_table(out: &mut String, rows: &[IncidentRow], scenario: &Scenario, expected: &Expected) {
    let local = |ns: i64| DateTime::from_timestamp_nanos(ns).with_timezone(&scenario.tz);
    let _ = writeln!(
        out,
        "Incidents ({} in the store; times in {})\n",
        rows.len(),
        scenario.tz
    );
    let _ = writeln!(
        out,
        "  {:<20}  {:<8}  {:<8}  {:<16}  {:<8}  {:>8}  {:>6}  {:>13}  what",
        "id", "service", "priority", "opened", "resolved", "duration", "alerts", "notifications"
    );
    for row in rows {
        let resolved = row.resolved_ns.map_or("open".to_string(), |r| {
            if local(r).date_naive() == local(row.opened_ns).date_naive() {
                local(r).format("%H:%M").to_string()
            } else {
                local(r).format("%d %H:%M").to_string()
            }
        });
        let duration = row
            .resolved_ns
            .map_or(String::new(), |r| duration_text(r - row.opened_ns));
        let what = expected
            .incidents
            .iter()
            .find(|e| e.service == row.service && e.opened_ns == row.opened_ns)
            .map_or(String::new(), |e| format!("{} ({})", e.what, e.source.name()));
        let priority = format!("P{}{}", row.priority, if row.major { " major" } else { "" });
        let _ = writeln!(
            out,
            "  {:<20}  {:<8}  {:<8}  {:<16}  {:<8}  {:>8}  {:>6}  {:>13}  {what}",
            row.id,
            row.service,
            priority,
            local(row.opened_ns).format("%a %d %b %H:%M"),
            resolved,
            duration,
            row.alerts,
            row.occurrences,
        );
    }
    out.push('\n');
}

/// Where the demo served and how to try it: curl lines, with the first API token if any,
/// and the `slaflow report` line for the store it leaves.
pub(super) fn serving(
    out: &mut String,
    addr: std::net::SocketAddr,
    config: &Config,
    scenario: &Scenario,
    config_file: Option<&Path>,
    serve: bool,
) {
    let base = format!("http://{addr}");
    // The curl option that authenticates, or none with `auth = "none"`.
    let auth = match config.server.auth {
        crate::config::Auth::None => Some(String::new()),
        crate::config::Auth::Tokens => config
            .server
            .effective_tokens()
            .into_iter()
            .next()
            .map(|token| format!("-H 'Authorization: Bearer {token}' ")),
    };
    if serve {
        let _ = writeln!(out, "Serving on {base} until Ctrl-C; try:");
    } else {
        let _ = writeln!(
            out,
            "While it ran, this served /metrics and the report API on {base}.\n\
             `slaflow demo --serve` keeps serving after the report; then try:"
        );
    }
    let _ = writeln!(out, "  curl {base}/metrics");
    match &auth {
        Some(auth) => {
            let _ = writeln!(out, "  curl {auth}'{base}/v1/reports/{}?format=csv'", scenario.month);
            let _ = writeln!(
                out,
                "  curl {auth}--data-binary @tests/fixtures/alertmanager/firing_v4_no_fingerprint_alertmonitor_2019.json {base}/v1/ingest/alertmanager"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  (no API token configured: /v1/reports and /v1/ingest answer 401; set [server] tokens)"
            );
        }
    }
    if let Some(file) = config_file {
        let _ = writeln!(
            out,
            "The store stays until the next demo:\n  slaflow report --config {} --month {} --format csv",
            file.display(),
            scenario.month
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_durations_read_as_words() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(duration_text(95 * MINUTE), "1h35m");
        assert_eq!(
            [plural(1, "recovery"), plural(2, "recovery"), plural(0, "alert")],
            ["1 recovery", "2 recoveries", "0 alerts"]
        );
    }
}
