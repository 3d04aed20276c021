//! Shared by the engines' property tests (`correlate_props`, `sla_props`,
//! `incremental_checkpoints`): their configurations, the events their random streams are
//! made of, and how a stream is fed.

use std::path::Path;

use slaflow::config::Config;
use slaflow::engine::correlate::priority::Level;
use slaflow::engine::correlate::{Correlator, Output};
use slaflow::engine::reorder::event_time;
use slaflow::engine::sla::{SlaEngine, SlaOutput};
use slaflow::model::{AlertEvent, AlertStatus, ChangeEvent, Event, LatencySample, Outcome};

pub const SEC: i64 = 1_000_000_000;
pub const MIN: i64 = 60 * SEC;

// ---- correlation ----------------------------------------------------------------------------

/// Where the correlation streams start: 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600_000_000_000;
/// The correlation config's allowed lateness, in seconds.
pub const LATENESS_SECS: i64 = 120;
/// The CIs of the streams' alerts: the three of the CMDB and one it does not know.
pub const CIS: [&str; 4] = ["web", "db", "fw", "elsewhere"];

/// The correlation config of the properties: windows of minutes, a cache of six alerts, a
/// critical service `shop` on `web` and `db`, `web` depending on `db` and `fw` (of `net`);
/// then `extra` (TOML).
pub fn correlate_config(extra: &str) -> Config {
    let text = format!(
        r#"
        [correlate]
        allowed_lateness = "{LATENESS_SECS}s"
        group_window = "2m"
        reopen_window = "5m"
        max_incident_lifetime = "30m"
        [correlate.flapping]
        min_toggles = 3
        window = "10m"
        quiet_period = "3m"
        [correlate.dedup]
        max_entries = 6
        ttl = "20m"

        [[services]]
        id = "shop"
        criticality = "critical"
        cis = ["web", "db"]
        [[services]]
        id = "net"
        cis = ["fw"]
        [[cis]]
        id = "web"
        depends_on = ["db", "fw"]
        [[cis]]
        id = "db"
        [[cis]]
        id = "fw"
        {extra}
        "#
    );
    Config::parse(Path::new("props.toml"), &text).unwrap()
}

/// A stream's alert: fingerprint `fp{fp}` on `ci`, firing, acknowledged or resolved
/// (`status` 0, 1, 2), 600 users affected at severity 5.
pub fn prop_alert(fp: u8, ci: &str, status: u8, severity: u32, t: i64) -> Event {
    Event::Alert(AlertEvent {
        source: "prop".into(),
        fingerprint: format!("fp{fp}"),
        ci: ci.into(),
        alert_name: format!("check{fp}"),
        severity,
        status: [AlertStatus::Firing, AlertStatus::Acknowledged, AlertStatus::Resolved][usize::from(status % 3)] as i32,
        affected_users: (severity == 5).then_some(600),
        time_ns: t,
        ..Default::default()
    })
}

/// A stream's change to `ci` at `t`.
pub fn prop_change(ci: &str, t: i64) -> Event {
    Event::Change(ChangeEvent {
        source: "cab".into(),
        ci: ci.into(),
        change_id: format!("CHG{}", t / SEC % 1000),
        implemented_at_ns: t,
        summary: String::new(),
    })
}

/// One event into the engine, the watermark moved to the latest time it has seen.
pub fn step_correlator(engine: &mut Correlator, event: Event, out: &mut Vec<Output>) {
    let watermark = engine.watermark().max(event_time(&event));
    engine.apply(event, out);
    engine.advance(watermark, out);
}

// ---- SLA ------------------------------------------------------------------------------------

/// Where the SLA streams start: 2026-03-01T00:00:00Z.
pub const M0: i64 = 1_772_323_200_000_000_000;

/// A `[[sla.contracts]]` of `service` (Europe/Paris, operation `op1`) with the objectives
/// the properties share: p90 of `op1` under 500 ms, no 2-day streak over 300 ms, 99 %
/// availability, 95 % of requests; `contract` (TOML) goes in the contract's table, `more`
/// after the objectives.
pub fn sla_contract(service: &str, contract: &str, more: &str) -> String {
    format!(
        r#"
        [[sla.contracts]]
        service = "{service}"
        timezone = "Europe/Paris"
        operations = ["op1"]
        {contract}
        [[sla.contracts.objectives]]
        name = "p90"
        kind = "latency_percentile"
        percentile = 90.0
        threshold = "500ms"
        operation = "op1"
        [[sla.contracts.objectives]]
        name = "streak"
        kind = "streak"
        threshold = "300ms"
        days = 2
        [[sla.contracts.objectives]]
        name = "avail"
        kind = "availability"
        target = 99.0
        [[sla.contracts.objectives]]
        name = "requests"
        kind = "request_availability"
        target = 95.0
        {more}
        "#
    )
}

/// A latency sample of `service`, operation `op1` or `op2`.
pub fn latency(service: &str, op1: bool, t: i64, duration_ms: i64, error: bool) -> Event {
    Event::Sample(LatencySample {
        service: service.into(),
        operation: if op1 { "op1" } else { "op2" }.into(),
        time_ns: t,
        duration_ns: duration_ms * 1_000_000,
        outcome: if error { Outcome::Error } else { Outcome::Ok } as i32,
        ..Default::default()
    })
}

/// An outage of `service`: incident `id` opened at `t` (P1) and resolved `minutes` later.
pub fn apply_outage(engine: &mut SlaEngine, id: String, service: &str, t: i64, minutes: i64) {
    engine.apply_correlation(&Output::IncidentOpened {
        incident: id.clone(),
        service: service.into(),
        alert: "x".into(),
        ci: "c".into(),
        time_ns: t,
        priority: 1,
        impact: Level::High,
        urgency: Level::High,
        suspected_changes: vec![],
    });
    engine.apply_correlation(&Output::IncidentResolved {
        incident: id,
        service: service.into(),
        opened_ns: t,
        time_ns: t + minutes * MIN,
        reason: "alerts_resolved".into(),
    });
}

/// Advances past the month after the last step's time (`last`, or `M0`): every window closes.
pub fn finish_sla(engine: &mut SlaEngine, last: Option<i64>, out: &mut Vec<SlaOutput>) {
    engine.advance(last.unwrap_or(M0) + 40 * 24 * 60 * MIN, out);
}

/// The number of cases: PROPTEST_CASES, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
