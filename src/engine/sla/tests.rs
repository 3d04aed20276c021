//! Unit tests of the SLA engine, built on the stories from the contracts: a trading platform
//! (monthly mean, a streak of slow working days, 99.95 % availability, a 5 % credit) and an
//! online shop (two overlapping outage alerts, a 61-minute outage over a 1-hour limit).

use std::path::Path;

use super::*;
use crate::config::Config;
use crate::engine::changelog::Changes;
use crate::engine::correlate::priority::Level;
use crate::model::{AlertEvent, LatencyBatch};
use crate::time::from_rfc3339;

const SEC: i64 = 1_000_000_000;
const DAY: i64 = 24 * HOUR;

/// The engine of a parsed config, composed as `replay::Engines` does.
pub(super) fn sla(config: &Config) -> Result<SlaEngine, SlaError> {
    SlaEngine::new(&config.sla, &config.correlate, config.catalog())
}

/// `sla` with a snapshot's state.
fn sla_restored(config: &Config, snapshot: &[u8]) -> Result<SlaEngine, SlaError> {
    SlaEngine::restore(&config.sla, &config.correlate, config.catalog(), snapshot)
}

pub(super) fn config(toml: &str) -> Config {
    Config::parse(Path::new("sla.toml"), toml).unwrap()
}

pub(super) fn t(rfc3339: &str) -> i64 {
    from_rfc3339(rfc3339).unwrap()
}

/// One batch per hour of `per_minute` samples each minute of `duration_ns`, from `from` to `to`.
fn traffic(service: &str, from: i64, to: i64, duration_ns: impl Fn(i64) -> i64, per_minute: i64) -> Vec<Event> {
    let mut events = Vec::new();
    let mut hour = from;
    while hour < to {
        let end = (hour + HOUR).min(to);
        let mut times = Vec::new();
        let mut m = hour;
        while m < end {
            for k in 0..per_minute {
                times.push(m + k * (MINUTE / per_minute));
            }
            m += MINUTE;
        }
        let durations = times.iter().map(|&x| duration_ns(x)).collect();
        events.push(Event::Batch(LatencyBatch {
            service: service.into(),
            operation: "trade".into(),
            errors: vec![],
            status_codes: vec![],
            times_ns: times,
            durations_ns: durations,
        }));
        hour = end;
    }
    events
}

/// Feeds events, advancing the watermark to each event's last time; then to `until`.
fn run(engine: &mut SlaEngine, events: &[Event], until: i64) -> Vec<SlaOutput> {
    let mut out = Vec::new();
    for e in events {
        engine.apply(e, &mut out);
        let last = match e {
            Event::Batch(b) => b.times_ns.last().copied().unwrap_or(0),
            other => crate::engine::reorder::event_time(other),
        };
        engine.advance(last, &mut out);
    }
    engine.advance(until, &mut out);
    out
}

/// The one monthly report among the records.
fn monthly_report(out: &[SlaOutput]) -> &Report {
    let mut reports = out.iter().filter_map(|o| match o {
        SlaOutput::MonthlyReport(r) => Some(r),
        _ => None,
    });
    let report = reports.next().expect("a monthly report");
    assert!(reports.next().is_none(), "exactly one monthly report");
    report
}

pub(super) fn opened(incident: &str, service: &str, at: i64, priority: u8) -> Output {
    Output::IncidentOpened {
        incident: incident.into(),
        service: service.into(),
        alert: "x".into(),
        ci: "x".into(),
        time_ns: at,
        priority,
        impact: Level::High,
        urgency: Level::High,
        suspected_changes: vec![],
    }
}

pub(super) fn resolved(incident: &str, service: &str, opened_ns: i64, at: i64) -> Output {
    Output::IncidentResolved {
        incident: incident.into(),
        service: service.into(),
        opened_ns,
        time_ns: at,
        reason: "alerts_resolved".into(),
    }
}

const TRADING: &str = r#"
[[sla.contracts]]
service = "trading"
timezone = "Europe/London"
monthly_fee = 20000.0
currency = "EUR"
outage_priority = 1

[[sla.contracts.objectives]]
name = "monthly-mean"
kind = "mean_latency"
threshold = "3s"
credit_percent = 5.0

[[sla.contracts.objectives]]
name = "slow-days"
kind = "streak"
threshold = "4s"
days = 3
working_days_only = true

[[sla.contracts.objectives]]
name = "availability"
kind = "availability"
target = 99.9
credit_tiers = [{ below = 99.9, percent = 5.0 }, { below = 99.0, percent = 10.0 }, { below = 95.0, percent = 25.0 }]
"#;

/// June 2026 in London: slow (5 s) on Tue 9, Wed 10, Thu 11 and on Fri 19 and Mon 22; 4.5 s
/// on the weekends (which do not count); 2.9 s on every other day.
fn trading_latency(x: i64) -> i64 {
    let date = intervals::local_date(chrono_tz::Europe::London, x).unwrap();
    use chrono::Datelike;
    match date.day() {
        9 | 10 | 11 | 19 | 22 => 5 * SEC,
        _ if date.weekday().number_from_monday() >= 6 => 4_500_000_000,
        _ => 2_900_000_000,
    }
}

#[test]
fn trading_platform_month() {
    let cfg = config(TRADING);
    let mut engine = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
    let (ms, me) = (t("2026-05-31T23:00:00Z"), t("2026-06-30T23:00:00Z")); // June in BST
    let outage_start = t("2026-06-15T09:00:00Z");
    let outage_end = outage_start + 1296 * SEC; // 21.6 min: 0.05 % of June
    let mut out = Vec::new();
    engine.apply_correlation(&opened("INC-1", "trading", outage_start, 1));
    let events = traffic("trading", ms, me, trading_latency, 2);
    for e in &events {
        engine.apply(e, &mut out);
        let Event::Batch(b) = e else { unreachable!() };
        let last = *b.times_ns.last().unwrap();
        if last >= outage_end && last - HOUR < outage_end {
            engine.apply_correlation(&resolved("INC-1", "trading", outage_start, outage_end));
        }
        engine.advance(last, &mut out);
    }
    engine.advance(me + 10 * MINUTE, &mut out);

    // The streak warning fires on the third slow working day, at the end of Thu 11 June (local).
    let streaks: Vec<&Finding> = out
        .iter()
        .filter_map(|o| match o {
            SlaOutput::Warning(f) if f.kind == "streak" => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(streaks.len(), 1, "Fri 19 + Mon 22 is a run of two: no second warning");
    assert_eq!(streaks[0].detected_ns, t("2026-06-11T23:00:00Z"));
    assert_eq!(streaks[0].window_start_ns, t("2026-06-08T23:00:00Z"));

    // Half the availability budget went in the outage: a 50 % warning, exactly at its end.
    let budget: Vec<&Finding> = out
        .iter()
        .filter_map(|o| match o {
            SlaOutput::Warning(f) | SlaOutput::Breach(f) if f.kind.starts_with("budget") => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(budget.len(), 1, "{budget:?}");
    assert_eq!(budget[0].kind, "budget_50");
    assert_eq!(budget[0].detected_ns, outage_end);

    // A 21.6-minute outage burns the 99.9 % budget over 360× too fast in the last hour.
    let burns: Vec<&BurnAlert> = out
        .iter()
        .filter_map(|o| match o {
            SlaOutput::BurnRateAlert(b) => Some(b),
            _ => None,
        })
        .collect();
    assert!(burns.iter().any(|b| b.rule == "fast-page" && b.state == "firing"));
    assert!(burns.iter().any(|b| b.rule == "fast-page" && b.state == "resolved"));

    let reports: Vec<&Report> = out
        .iter()
        .filter_map(|o| match o {
            SlaOutput::MonthlyReport(r) => Some(&**r),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 1);
    let r = reports[0];
    assert_eq!((r.period.as_str(), r.complete), ("2026-06", true));
    assert!(
        (r.availability_percent - 99.95).abs() < 1e-9,
        "{}",
        r.availability_percent
    );
    assert!((r.downtime_minutes - 21.6).abs() < 1e-9);
    assert_eq!(r.requests, 30 * 1440 * 2);
    // Exact mean of what was sent: 5 slow working days at 5 s, 8 weekend days at 4.5 s, 17 at 2.9 s.
    let expected_mean_ms = (5.0 * 5000.0 + 8.0 * 4500.0 + 17.0 * 2900.0) / 30.0;
    assert!(
        (r.mean_ms - expected_mean_ms).abs() < 1e-6,
        "{} vs {expected_mean_ms}",
        r.mean_ms
    );
    let by_name = |n: &str| r.objectives.iter().find(|o| o.name == n).unwrap();
    assert!(!by_name("monthly-mean").met);
    assert!(by_name("availability").met);
    assert!(!by_name("slow-days").met);
    assert_eq!(by_name("slow-days").measured, 3.0);
    assert_eq!(r.credit_percent, 5.0);
    assert_eq!(r.credit_amount, Some(1000.0));
    // The missed mean is the month's one breach.
    assert_eq!(r.breaches, 1);
    assert!(out
        .iter()
        .any(|o| matches!(o, SlaOutput::Breach(f) if f.kind == "objective_missed" && f.objective == "monthly-mean")));
}

const WEBSHOP: &str = r#"
[[sla.contracts]]
service = "webshop"
outage_alerts = ["Site down", "Checkout down"]

[[sla.contracts.objectives]]
name = "no-long-outage"
kind = "max_downtime"
threshold = "1h"

[[sla.contracts.objectives]]
name = "availability"
kind = "availability"
target = 99.5
"#;

fn outage_alert(name: &str, status: AlertStatus, at: i64) -> Event {
    Event::Alert(AlertEvent {
        source: "zabbix".into(),
        fingerprint: name.into(),
        service: "webshop".into(),
        alert_name: name.into(),
        status: status as i32,
        time_ns: at,
        severity: 5,
        ..Default::default()
    })
}

#[test]
fn online_shop_61_minute_outage_breaches_the_one_hour_limit_as_a_union() {
    let mut engine = sla(&config(WEBSHOP)).unwrap();
    let ten = t("2026-03-10T10:00:00Z");
    let events = [
        outage_alert("Site down", AlertStatus::Firing, ten),
        outage_alert("Checkout down", AlertStatus::Firing, ten + 20 * MINUTE),
        outage_alert("Site down", AlertStatus::Resolved, ten + 40 * MINUTE),
        outage_alert("Checkout down", AlertStatus::Resolved, ten + 61 * MINUTE),
    ];
    let out = run(&mut engine, &events, t("2026-04-01T00:10:00Z"));
    let breaches: Vec<&Finding> = out
        .iter()
        .filter_map(|o| match o {
            SlaOutput::Breach(f) if f.kind == "max_downtime" => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(breaches.len(), 1);
    assert_eq!(breaches[0].detected_ns, ten + HOUR, "the limit was reached an hour in");
    assert_eq!(
        (breaches[0].window_start_ns, breaches[0].period.as_str()),
        (ten, "2026-03")
    );
    let report = monthly_report(&out);
    assert!(
        (report.downtime_minutes - 61.0).abs() < 1e-9,
        "union, not the 81-minute sum"
    );
    assert!((report.longest_downtime_minutes - 61.0).abs() < 1e-9);
    let no_long = report.objectives.iter().find(|o| o.name == "no-long-outage").unwrap();
    assert!(!no_long.met);
    assert!(report.objectives.iter().find(|o| o.name == "availability").unwrap().met);
}

#[test]
fn late_samples_are_counted_and_reported_not_merged() {
    let mut engine = sla(&config(WEBSHOP)).unwrap();
    let start = t("2026-03-10T10:00:00Z");
    let mut out = run(
        &mut engine,
        &traffic("webshop", start, start + 10 * MINUTE, |_| SEC, 1),
        start + 10 * MINUTE,
    );
    let late = Event::Sample(LatencySample {
        service: "webshop".into(),
        operation: "trade".into(),
        time_ns: start + MINUTE,
        duration_ns: 9 * SEC,
        outcome: Outcome::Ok as i32,
        status_code: None,
        role: 0,
    });
    engine.apply(&late, &mut out);
    assert_eq!(engine.stats().late_samples, 1);
    assert!(matches!(out.last(), Some(SlaOutput::LateSample { time_ns, .. }) if *time_ns == start + MINUTE));
    let report = engine.report("webshop", start + 10 * MINUTE).unwrap();
    assert_eq!(report.requests, 10, "the late sample is not in the windows");
    assert_eq!(report.late_samples, 1, "the running report says what it left out");
    // Through a restart and to the month's final report; the next month starts at 0.
    let mut engine = sla_restored(&config(WEBSHOP), &engine.snapshot()).unwrap();
    let month_end = t("2026-04-01T00:00:00Z");
    engine.advance(month_end + HOUR, &mut out);
    assert_eq!(monthly_report(&out).late_samples, 1);
    let april = engine.report("webshop", month_end + HOUR).unwrap();
    assert_eq!((april.period.as_str(), april.late_samples), ("2026-04", 0));
}

#[test]
fn a_sample_of_a_month_already_final_is_marked_for_its_dead_letter() {
    let mut engine = sla(&config(WEBSHOP)).unwrap();
    let end_of_february = t("2026-02-28T22:50:00Z"); // 23:50 in Berlin
    let march = t("2026-03-01T01:00:00Z");
    let mut out = run(
        &mut engine,
        &traffic("webshop", end_of_february, march, |_| SEC, 1),
        march,
    );
    let sample = |time_ns: i64| {
        Event::Sample(LatencySample {
            service: "webshop".into(),
            operation: "trade".into(),
            time_ns,
            duration_ns: 7 * SEC,
            outcome: Outcome::Error as i32,
            status_code: None,
            role: 0,
        })
    };
    out.clear();
    engine.apply(&sample(end_of_february + MINUTE), &mut out); // February: final
    engine.apply(&sample(march - 30 * MINUTE), &mut out); // March, a closed minute
    let marks: Vec<(bool, i64, bool)> = out
        .iter()
        .filter_map(|o| match o {
            SlaOutput::LateSample {
                final_month,
                duration_ns,
                error,
                ..
            } => Some((*final_month, *duration_ns, *error)),
            _ => None,
        })
        .collect();
    assert_eq!(marks, [(true, 7 * SEC, true), (false, 7 * SEC, true)]);
    // Its dead letter holds the sample, ready to be sent again, and the reason.
    let dead = crate::sinks::late_dead_letter("g/0", &out[0]).unwrap();
    assert_eq!(dead.format, "protobuf");
    assert!(
        dead.reason.contains("falls in a month already final"),
        "{}",
        dead.reason
    );
    assert_eq!(
        crate::decode::protobuf::decode(&dead.payload).unwrap(),
        vec![sample(end_of_february + MINUTE)]
    );
    assert_eq!(
        crate::sinks::late_dead_letter("g/0", &out[0]).map(|d| d.offset),
        Some(dead.offset)
    );
    assert!(crate::sinks::late_dead_letter("g/0", &out[1]).is_none());
}

#[test]
fn closed_windows_carry_a_readable_v2_histogram() {
    let mut engine = sla(&config(WEBSHOP)).unwrap();
    let start = t("2026-03-10T10:00:00Z");
    let out = run(
        &mut engine,
        &traffic(
            "webshop",
            start,
            start + HOUR,
            |x| (x / MINUTE % 7 + 1) * 100_000_000,
            3,
        ),
        start + 2 * HOUR,
    );
    let hour = out
        .iter()
        .find_map(|o| match o {
            SlaOutput::WindowClosed(w) if w.granularity == Granularity::Hour && w.operation.is_empty() => Some(w),
            _ => None,
        })
        .unwrap();
    assert_eq!((hour.start_ns, hour.end_ns, hour.count), (start, start + HOUR, 180));
    let bytes = histogram::from_text(&hour.histogram).unwrap();
    let h = histogram::decode(&bytes).unwrap();
    assert_eq!(h.len(), 180);
    assert_eq!(histogram::percentile_ns(&h, 100.0) / 1_000_000, 700);
}

#[test]
fn request_based_budget_and_burn_rate() {
    let cfg = config(
        r#"
        [[sla.contracts]]
        service = "api"
        [[sla.contracts.objectives]]
        name = "success"
        kind = "request_availability"
        target = 99.0
        "#,
    );
    let mut engine = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
    let start = t("2026-03-10T10:00:00Z");
    // Two hours at 0.2 % errors, then thirty minutes at 50 %.
    let mut events = Vec::new();
    for m in 0..150i64 {
        let n = 1000usize;
        let bad = if m < 120 { 2 } else { 500 };
        events.push(Event::Batch(LatencyBatch {
            service: "api".into(),
            operation: "get".into(),
            times_ns: (0..n as i64).map(|k| start + m * MINUTE + k * 1000).collect(),
            durations_ns: vec![1_000_000; n],
            errors: (0..n).map(|k| k < bad).collect(),
            status_codes: vec![],
        }));
    }
    let out = run(&mut engine, &events, start + 152 * MINUTE);
    let kinds: Vec<String> = out
        .iter()
        .filter_map(|o| match o {
            SlaOutput::Warning(f) | SlaOutput::Breach(f) => Some(f.kind.clone()),
            SlaOutput::BurnRateAlert(b) => Some(format!("{}:{}", b.rule, b.state)),
            _ => None,
        })
        .collect();
    // Against a 1 % allowance: the last 5 and 30 minutes burn at 50×; the last hour at
    // (30·2 + 30·500) / 60 000 = 25× (fast page: 14.4× in both); the last 6 hours at
    // (120·2 + 30·500) / 150 000 = 10.2× (slow page: 6×); the ticket needs 1×.
    for alert in ["fast-page:firing", "slow-page:firing", "ticket:firing"] {
        assert!(kinds.contains(&alert.to_string()), "{alert}: {kinds:?}");
    }
    // Budget: 15 240 errors of 150 000 requests = 10 % against 1 %: past 100 %.
    for k in ["budget_50", "budget_75", "budget_exhausted"] {
        assert!(kinds.contains(&k.to_string()), "{k}: {kinds:?}");
    }
}

#[test]
fn business_hours_limit_what_counts() {
    let cfg = config(
        r#"
        [[sla.contracts]]
        service = "office"
        timezone = "Europe/Berlin"
        business_hours = { days = ["mon", "tue", "wed", "thu", "fri"], start = "08:00", end = "18:00" }
        [[sla.contracts.objectives]]
        name = "availability"
        kind = "availability"
        target = 99.0
        "#,
    );
    let mut engine = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
    // An outage at night (02:00–04:00 CET) and one in business hours (09:00–09:30 CET).
    let night = t("2026-03-10T01:00:00Z");
    let day = t("2026-03-10T08:00:00Z");
    engine.apply_correlation(&opened("N", "office", night, 1));
    engine.apply_correlation(&resolved("N", "office", night, night + 2 * HOUR));
    engine.apply_correlation(&opened("D", "office", day, 1));
    engine.apply_correlation(&resolved("D", "office", day, day + 30 * MINUTE));
    let mut out = Vec::new();
    engine.advance(t("2026-04-01T00:00:00Z"), &mut out);
    let report = monthly_report(&out);
    assert!(
        (report.downtime_minutes - 30.0).abs() < 1e-9,
        "the night outage does not count"
    );
    // March 2026 has 22 working days of 10 h.
    let expected = (1.0 - 30.0 / (22.0 * 600.0)) * 100.0;
    assert!(
        (report.availability_percent - expected).abs() < 1e-9,
        "{}",
        report.availability_percent
    );
}

#[test]
fn maintenance_is_excluded_from_availability() {
    let cfg = config(
        r#"
        [[maintenance]]
        name = "upgrade"
        services = ["webshop"]
        start = "2026-03-10T10:00:00"
        duration = "30m"

        [[sla.contracts]]
        service = "webshop"
        [[sla.contracts.objectives]]
        name = "availability"
        kind = "availability"
        target = 99.9
        "#,
    );
    let mut engine = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
    let ten = t("2026-03-10T10:00:00Z");
    engine.apply_correlation(&opened("M", "webshop", ten, 1));
    engine.apply_correlation(&resolved("M", "webshop", ten, ten + 40 * MINUTE));
    let mut out = Vec::new();
    engine.advance(t("2026-04-01T00:10:00Z"), &mut out);
    let report = monthly_report(&out);
    assert!(
        (report.downtime_minutes - 10.0).abs() < 1e-9,
        "30 of the 40 minutes were maintenance"
    );
    assert!((report.maintenance_minutes - 30.0).abs() < 1e-9);
    // March in UTC (no DST), minus the 30 minutes of maintenance.
    let expected = (1.0 - 10.0 / (31.0 * 1440.0 - 30.0)) * 100.0;
    assert!((report.availability_percent - expected).abs() < 1e-9);
}

#[test]
fn snapshot_restore_and_replay_give_the_same_findings() {
    let cfg = config(TRADING);
    let (ms, me) = (t("2026-05-31T23:00:00Z"), t("2026-06-30T23:00:00Z"));
    let events = traffic("trading", ms, me, trading_latency, 1);
    let mut whole = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
    let expected = run(&mut whole, &events, me + HOUR);
    let again = run(
        &mut SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap(),
        &events,
        me + HOUR,
    );
    assert_eq!(
        expected, again,
        "replaying the same input gives the same records and keys"
    );
    for cut in [1, 200, 500] {
        let mut first = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
        let mut out = run(&mut first, &events[..cut], ms);
        let mut second = SlaEngine::restore(&cfg.sla, &cfg.correlate, cfg.catalog(), &first.snapshot()).unwrap();
        out.extend(run(&mut second, &events[cut..], me + HOUR));
        assert_eq!(out, expected, "cut at {cut}");
    }
}

#[test]
fn config_errors_name_the_objective() {
    let err = Config::parse(
        Path::new("c.toml"),
        "[[sla.contracts]]\nservice = \"x\"\n[[sla.contracts.objectives]]\nname = \"p\"\nkind = \"latency_percentile\"\nthreshold = \"3s\"\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("sla.contracts[0].objectives[0]") && err.to_string().contains("percentile"),
        "{err}"
    );
}

#[test]
fn resolved_incidents_are_forgotten_after_they_can_no_longer_reopen_but_a_reopen_counts() {
    let mut engine = sla(&config(WEBSHOP)).unwrap();
    let ten = t("2026-03-10T10:00:00Z");
    let mut out = Vec::new();
    engine.apply_correlation(&opened("A", "webshop", ten, 1));
    engine.apply_correlation(&resolved("A", "webshop", ten, ten + 10 * MINUTE));
    // Reopened within the reopen window: downtime again.
    engine.apply_correlation(&Output::IncidentReopened {
        incident: "A".into(),
        alert: "x".into(),
        time_ns: ten + 15 * MINUTE,
    });
    engine.apply_correlation(&resolved("A", "webshop", ten, ten + 20 * MINUTE));
    engine.advance(ten + 3 * HOUR, &mut out);
    assert!(engine.state.incidents.is_empty(), "forgotten after the reopen window");
    let report = engine.report("webshop", ten + 3 * HOUR).unwrap();
    assert!(
        (report.downtime_minutes - 15.0).abs() < 1e-9,
        "10 + 5 minutes: {}",
        report.downtime_minutes
    );
}

/// A span of `service` at `at` with `role`, 100 ms long.
fn span(service: &str, at: i64, role: crate::model::SpanRole) -> Event {
    Event::Sample(LatencySample {
        service: service.into(),
        operation: "GET /".into(),
        time_ns: at,
        duration_ns: 100_000_000,
        outcome: Outcome::Ok as i32,
        status_code: None,
        role: role as i32,
    })
}

#[test]
fn a_contract_counts_requests_and_reports_the_spans_it_ignores() {
    use crate::model::SpanRole;
    let roles = [
        SpanRole::Root,
        SpanRole::Internal,
        SpanRole::Entry,
        SpanRole::Internal,
        SpanRole::Unspecified,
        SpanRole::Internal,
    ];
    let (ms, me) = (t("2026-03-01T00:00:00Z"), t("2026-04-01T00:00:00Z"));
    // (samples setting, the roles it counts)
    let cases: [(&str, &[SpanRole]); 4] = [
        ("", &[SpanRole::Root, SpanRole::Entry, SpanRole::Unspecified]),
        (
            "samples = \"entry\"\n",
            &[SpanRole::Root, SpanRole::Entry, SpanRole::Unspecified],
        ),
        ("samples = \"root\"\n", &[SpanRole::Root, SpanRole::Unspecified]),
        ("samples = \"all\"\n", &roles),
    ];
    for (setting, counted) in cases {
        let cfg = config(&format!(
            "[[sla.contracts]]\nservice = \"api\"\n{setting}[[sla.contracts.objectives]]\nname = \"p95\"\nkind = \"latency_percentile\"\npercentile = 95.0\nthreshold = \"1s\"\n"
        ));
        let mut engine = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
        // 10 requests' worth of spans an hour apart, each with every role.
        let events: Vec<Event> = (0..10)
            .flat_map(|k| roles.iter().map(move |&r| span("api", ms + DAY + k * HOUR, r)))
            .collect();
        let out = run(&mut engine, &events, me + DAY);
        let expected_requests = 10 * roles.iter().filter(|r| counted.contains(r)).count() as u64;
        assert_eq!(monthly_report(&out).requests, expected_requests, "{setting:?}");
        let ignored: u64 = out
            .iter()
            .filter_map(|o| match o {
                SlaOutput::SpansIgnored { service, count } if service == "api" => Some(*count),
                _ => None,
            })
            .sum();
        assert_eq!(ignored, 10 * roles.len() as u64 - expected_requests, "{setting:?}");
        assert_eq!(engine.stats().spans_ignored, ignored);
    }
}

#[test]
fn ignored_counts_survive_a_snapshot_and_version_1_snapshots_still_restore() {
    use crate::model::SpanRole;
    let cfg = config(WEBSHOP);
    let at = t("2026-03-10T10:00:00Z");
    let mut engine = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
    let mut out = Vec::new();
    for _ in 0..3 {
        engine.apply(&span("webshop", at, SpanRole::Internal), &mut out);
    }
    // Not reported yet (the clock has not moved): the pending count is in the snapshot.
    let mut restored = SlaEngine::restore(&cfg.sla, &cfg.correlate, cfg.catalog(), &engine.snapshot()).unwrap();
    assert_eq!(restored.stats().spans_ignored, 3);
    restored.advance(at + DAY, &mut out);
    assert!(out.contains(&SlaOutput::SpansIgnored {
        service: "webshop".into(),
        count: 3
    }));
    // A snapshot written before ignored counts existed: the state alone, version 1.
    let v1 = postcard::to_stdvec(&(1u32, due::SnapshotState(&engine.state))).unwrap();
    let old = SlaEngine::restore(&cfg.sla, &cfg.correlate, cfg.catalog(), &v1).unwrap();
    assert_eq!(old.state.frontier, engine.state.frontier);
    assert_eq!(old.stats().spans_ignored, 0);
    let future = postcard::to_stdvec(&(3u32, due::SnapshotState(&engine.state))).unwrap();
    assert!(SlaEngine::restore(&cfg.sla, &cfg.correlate, cfg.catalog(), &future).is_err());
}

/// `n` contracted services `svc-0`… with request and time availability, a downtime limit
/// and a latency objective; burn-rate alerts the defaults', or none.
fn many(n: usize, burn_rates: bool) -> Config {
    let mut text = String::from("[sla]\nallowed_lateness = \"1m\"\n");
    if !burn_rates {
        text.push_str("burn_rate_alerts = []\n");
    }
    for i in 0..n {
        text.push_str(&format!(
            r#"
            [[sla.contracts]]
            service = "svc-{i}"
            timezone = "Europe/Berlin"
            [[sla.contracts.objectives]]
            name = "success"
            kind = "request_availability"
            target = 99.0
            [[sla.contracts.objectives]]
            name = "availability"
            kind = "availability"
            target = 99.9
            [[sla.contracts.objectives]]
            name = "downtime"
            kind = "max_downtime"
            threshold = "20m"
            [[sla.contracts.objectives]]
            name = "p95"
            kind = "latency_percentile"
            percentile = 95.0
            threshold = "500ms"
            "#
        ));
    }
    config(&text)
}

fn batch_of(service: &str, start: i64, n: i64, seed: i64) -> Event {
    Event::Batch(LatencyBatch {
        service: service.into(),
        operation: "get".into(),
        times_ns: (0..n).map(|k| start + k * SEC).collect(),
        durations_ns: (0..n)
            .map(|k| 1_000_000 + (seed * 7 + k * 131) % 900 * 1_000_000)
            .collect(),
        errors: (0..n).map(|k| (seed + k) % 7 == 0).collect(),
        status_codes: vec![],
    })
}

#[test]
fn an_advance_over_idle_services_walks_none_of_them() {
    let cfg = many(300, false);
    let mut engine = sla(&cfg).unwrap();
    let start = t("2026-03-10T01:00:00Z");
    let mut out = Vec::new();
    for i in 0..300 {
        engine.apply(&batch_of(&format!("svc-{i}"), start, 5, i), &mut out);
    }
    // Their minutes and hour close: every service is walked.
    engine.advance(start + 2 * HOUR, &mut out);
    let walked = engine.services_walked();
    assert!(walked >= 300, "{walked}");
    engine.take_changes();
    // Then hours of clock with nothing due (the day closes at local midnight): no walk, no
    // record, no changed row.
    out.clear();
    for m in 1..=600 {
        engine.advance(start + 2 * HOUR + m * MINUTE, &mut out);
    }
    assert_eq!(engine.services_walked(), walked);
    assert!(out.is_empty(), "{out:?}");
    assert!(engine.take_changes().upserts.is_empty());
    // A touched service is walked at the next move, and only it.
    engine.apply(&batch_of("svc-7", start + 12 * HOUR + 5 * MINUTE, 1, 1), &mut out);
    engine.advance(start + 14 * HOUR, &mut out);
    assert_eq!(engine.services_walked(), walked + 1);
    // A restore rebuilds the index: still nothing due.
    let mut back = sla_restored(&cfg, &engine.snapshot()).unwrap();
    back.advance(start + 15 * HOUR, &mut out);
    assert_eq!(back.services_walked(), 0);
}

/// A random stream over `services` services from late March into April (so days and a
/// month close): batches (some late), incidents that are outages, maintenance windows.
fn random_stream(seed: u64, services: usize) -> Vec<(i64, Result<Event, Output>)> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    let mut t = t("2026-03-27T00:00:00Z");
    let mut steps = Vec::new();
    for k in 0..400 {
        t += next(90) as i64 * MINUTE / 2 + next(60) as i64 * SEC;
        let service = format!("svc-{}", next(services as u64));
        let step = match next(10) {
            0 => Err(opened(&format!("I{k}"), &service, t, 1)),
            1 => Err(resolved(&format!("I{}", k - 1 - next(3) as i64), &service, t - HOUR, t)),
            2 => Err(Output::MaintenanceWindow {
                window: format!("w{k}"),
                service: service.clone(),
                ci: String::new(),
                start_ns: t + next(120) as i64 * MINUTE,
                end_ns: t + (120 + next(240) as i64) * MINUTE,
                removed: false,
                time_ns: t,
            }),
            3 => Ok(batch_of(&service, t - 3 * MINUTE, 3, k)),
            _ => Ok(batch_of(&service, t, 1 + next(40) as i64, k)),
        };
        steps.push((t, step));
    }
    steps
}

/// Runs a stream with the due index or walking every service: the records, and after each
/// step the checkpoint changes and (every 50 steps) the snapshot.
fn run_stream(
    cfg: &Config,
    steps: &[(i64, Result<Event, Output>)],
    walk_all: bool,
) -> (Vec<SlaOutput>, Vec<Changes>, Vec<Vec<u8>>) {
    let mut engine = sla(cfg).unwrap();
    engine.walk_all = walk_all;
    let (mut out, mut changes, mut snapshots) = (Vec::new(), Vec::new(), Vec::new());
    for (k, (t, step)) in steps.iter().enumerate() {
        match step {
            Ok(event) => engine.apply(event, &mut out),
            Err(record) => engine.apply_correlation(record),
        }
        engine.advance(*t, &mut out);
        changes.push(engine.take_changes());
        if k % 50 == 0 {
            snapshots.push(engine.snapshot());
        }
    }
    engine.advance(t("2026-04-08T00:00:00Z"), &mut out);
    changes.push(engine.take_changes());
    snapshots.push(engine.snapshot());
    (out, changes, snapshots)
}

#[test]
fn the_due_index_gives_what_walking_every_service_gives() {
    for burn_rates in [true, false] {
        let cfg = many(5, burn_rates);
        for seed in 0..3 {
            let steps = random_stream(seed, 5);
            let (out, changes, snapshots) = run_stream(&cfg, &steps, false);
            let (all_out, all_changes, all_snapshots) = run_stream(&cfg, &steps, true);
            assert!(out.iter().any(|o| matches!(o, SlaOutput::MonthlyReport(_))));
            assert_eq!(out, all_out, "records, seed {seed}, burn rates {burn_rates}");
            let first = changes.iter().zip(&all_changes).position(|(a, b)| a != b);
            assert_eq!(first, None, "changes, seed {seed}, burn rates {burn_rates}");
            assert_eq!(
                snapshots, all_snapshots,
                "snapshots, seed {seed}, burn rates {burn_rates}"
            );
        }
    }
}

/// Coverage: the first ten days of March 2026 (UTC) have a sample every minute, with a
/// 60-minute outage on the 5th; nothing after. April has no data at all.
#[test]
fn coverage_is_the_measured_share_and_a_month_without_data_says_so() {
    let contract = |unmeasured: &str| {
        config(&format!(
            r#"
            [[sla.contracts]]
            service = "api"
            unmeasured = "{unmeasured}"
            [[sla.contracts.objectives]]
            name = "availability"
            kind = "availability"
            target = 99.0
            "#
        ))
    };
    let (march, tenth) = (t("2026-03-01T00:00:00Z"), t("2026-03-11T00:00:00Z"));
    let outage = t("2026-03-05T12:00:00Z");
    let month_min = 31.0 * 1440.0;
    let measured_min = 10.0 * 1440.0;
    for unmeasured in ["good", "unknown"] {
        let cfg = contract(unmeasured);
        let mut engine = sla(&cfg).unwrap();
        engine.apply_correlation(&opened("O", "api", outage, 1));
        engine.apply_correlation(&resolved("O", "api", outage, outage + HOUR));
        let out = run(
            &mut engine,
            &traffic("api", march, tenth, |_| 50_000_000, 1),
            t("2026-05-01T00:10:00Z"),
        );
        let reports: Vec<&Report> = out
            .iter()
            .filter_map(|o| match o {
                SlaOutput::MonthlyReport(r) => Some(&**r),
                _ => None,
            })
            .collect();
        let (m, a) = (reports[0], reports[1]);
        assert_eq!((m.period.as_str(), a.period.as_str()), ("2026-03", "2026-04"));
        assert!(
            (m.measured_minutes - measured_min).abs() < 1e-9,
            "{}",
            m.measured_minutes
        );
        assert!((m.coverage_percent - measured_min * 100.0 / month_min).abs() < 1e-9);
        assert!(!m.no_data);
        let expected = match unmeasured {
            "good" => (1.0 - 60.0 / month_min) * 100.0,
            _ => (1.0 - 60.0 / measured_min) * 100.0,
        };
        assert!(
            (m.availability_percent - expected).abs() < 1e-9,
            "{unmeasured}: {}",
            m.availability_percent
        );
        // April: nothing measured. Zero coverage, said so; not shown available when
        // unmeasured time is unknown.
        assert!(a.no_data && a.coverage_percent == 0.0 && a.measured_minutes == 0.0);
        assert!((a.period_minutes - 30.0 * 1440.0).abs() < 1e-9);
        let shown = if unmeasured == "good" { 100.0 } else { 0.0 };
        assert_eq!(a.availability_percent, shown, "{unmeasured}");
    }
}

/// A final March (a 50 ms request every minute, p95 ≤ 100 ms), then 5 000 requests of
/// 500 ms on its last day: within the 72-hour correction window they issue version 2 with
/// what changed; after it, such a sample is a late sample of a final month (a dead letter).
#[test]
fn late_samples_within_the_correction_window_issue_a_new_version() {
    let cfg = config(
        r#"
        [sla]
        correction_window = "72h"
        [[sla.contracts]]
        service = "api"
        monthly_fee = 1000.0
        [[sla.contracts.objectives]]
        name = "p95"
        kind = "latency_percentile"
        percentile = 95.0
        threshold = "100ms"
        credit_percent = 5.0
        "#,
    );
    let mut engine = sla(&cfg).unwrap();
    let (march, april) = (t("2026-03-01T00:00:00Z"), t("2026-04-01T00:00:00Z"));
    let mut out = run(
        &mut engine,
        &traffic("api", march, april, |_| 50_000_000, 1),
        april + 10 * MINUTE,
    );
    let first = monthly_report(&out).clone();
    assert_eq!(
        (first.version, first.requests, first.credit_percent),
        (1, 31 * 1440, 0.0)
    );
    let late = |n: i64, at: i64| {
        Event::Batch(LatencyBatch {
            service: "api".into(),
            operation: "trade".into(),
            errors: vec![],
            status_codes: vec![],
            times_ns: (0..n).map(|k| at + k * SEC).collect(),
            durations_ns: vec![500_000_000; n as usize],
        })
    };
    out.clear();
    engine.apply(&late(5000, t("2026-03-31T10:00:00Z")), &mut out);
    engine.advance(april + 20 * MINUTE, &mut out);
    let second = monthly_report(&out).clone();
    // 44 640 + 5 000 requests: the 95th percentile's rank (47 158) lies in the 500 ms ones.
    assert_eq!((second.version, second.requests), (2, 31 * 1440 + 5000));
    assert!((second.p95_ms - 500.0).abs() <= 0.5, "{}", second.p95_ms);
    assert!(!second.objectives[0].met);
    assert_eq!((second.credit_percent, second.credit_amount), (5.0, Some(50.0)));
    assert_eq!(second.credit_causes, ["p95"]);
    let changed: Vec<&str> = second.changes.iter().map(|c| c.figure.as_str()).collect();
    for figure in [
        "requests",
        "p95_ms",
        "p95.measured",
        "p95.met",
        "credit_percent",
        "credit_amount",
    ] {
        assert!(changed.contains(&figure), "{figure} not in {changed:?}");
    }
    let requests = second.changes.iter().find(|c| c.figure == "requests").unwrap();
    assert_eq!((requests.before.as_str(), requests.after.as_str()), ("44640", "49640"));
    // Past the window: a late sample of a final month, no new version.
    out.clear();
    engine.advance(t("2026-04-04T00:10:00Z"), &mut out);
    engine.apply(&late(1, t("2026-03-31T12:00:00Z")), &mut out);
    engine.advance(t("2026-04-04T00:20:00Z"), &mut out);
    assert!(!out
        .iter()
        .any(|o| matches!(o, SlaOutput::MonthlyReport(r) if r.period == "2026-03")));
    assert!(out
        .iter()
        .any(|o| matches!(o, SlaOutput::LateSample { final_month: true, .. })));
}
