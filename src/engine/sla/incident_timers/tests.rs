//! The incident timers on the stories of the contract terms: a P1 met, a P2 whose response
//! breached, maintenance that does not count, business hours over a weekend, a priority
//! raised halfway, a reopen, and restores anywhere. Every expected figure is worked out by
//! hand from the story (minutes of the clock), not by the code under test.

use std::path::Path;

use super::*;
use crate::config::Config;
use crate::engine::changelog::{Changes, Item};
use crate::engine::sla::tests::{config, opened, resolved, sla, t};

const TERMS: &str = r#"
[[sla.contracts]]
service = "orders"
objectives = []
[[sla.contracts.incident_targets]]
priority = 1
respond = "15m"
resolve = "4h"
[[sla.contracts.incident_targets]]
priority = 2
respond = "1h"
resolve = "2h"
[[sla.contracts.incident_targets]]
priority = 3
resolve = "8h"
"#;

const BUSINESS: &str = r#"
[[sla.contracts]]
service = "office"
objectives = []
incident_hours = "business"
business_hours = { days = ["mon", "tue", "wed", "thu", "fri"], start = "08:00", end = "18:00" }
[[sla.contracts.incident_targets]]
priority = 3
resolve = "8h"
"#;

fn engine(toml: &str) -> SlaEngine {
    sla(&config(toml)).unwrap()
}

/// 2026-03-10 (a Tuesday) 10:00 UTC.
fn t0() -> i64 {
    t("2026-03-10T10:00:00Z")
}

fn acked(incident: &str, at: i64) -> Output {
    Output::Acknowledged {
        incident: incident.into(),
        alert: "x".into(),
        time_ns: at,
    }
}

fn reopened(incident: &str, at: i64) -> Output {
    Output::IncidentReopened {
        incident: incident.into(),
        alert: "x".into(),
        time_ns: at,
    }
}

fn retargeted(incident: &str, at: i64, from: u8, to: u8) -> Output {
    Output::PriorityChanged {
        incident: incident.into(),
        time_ns: at,
        from,
        to,
    }
}

/// The watermark that moves the clock past `at` (the engine's lateness is 2 minutes).
fn past(at: i64) -> i64 {
    at + 3 * MINUTE
}

/// Each record applied, the clock moved past it; then the clock to `until`. The timer records.
fn story(engine: &mut SlaEngine, records: &[Output], until: i64) -> Vec<IncidentSla> {
    let mut out = Vec::new();
    for r in records {
        engine.apply_correlation(r);
        engine.advance(past(r.time_ns()), &mut out);
    }
    engine.advance(until, &mut out);
    timer_records(out)
}

fn timer_records(out: Vec<SlaOutput>) -> Vec<IncidentSla> {
    out.into_iter()
        .filter_map(|o| match o {
            SlaOutput::IncidentSla(i) => Some(i),
            _ => None,
        })
        .collect()
}

/// (target, event, level, minutes after `opened` of the event, counted minutes) of each record.
fn summary(records: &[IncidentSla], opened: i64) -> Vec<(String, String, f64, f64, f64)> {
    records
        .iter()
        .map(|r| {
            (
                r.target.clone(),
                r.event.clone(),
                (r.level_percent * 100.0).round() / 100.0,
                (r.at_ns - opened) as f64 / MINUTE as f64,
                r.elapsed_ns as f64 / MINUTE as f64,
            )
        })
        .collect()
}

fn row(target: &str, event: &str, level: f64, at_min: f64, counted_min: f64) -> (String, String, f64, f64, f64) {
    (target.into(), event.into(), level, at_min, counted_min)
}

#[test]
fn a_p1_acknowledged_in_9_minutes_and_resolved_in_3h40_met_both_targets() {
    let mut e = engine(TERMS);
    let o = t0();
    let records = [
        opened("A", "orders", o, 1),
        acked("A", o + 9 * MINUTE),
        resolved("A", "orders", o, o + 220 * MINUTE),
    ];
    let got = story(&mut e, &records, past(o + 6 * HOUR));
    // respond 15 min: 50 % at 7.5 min; 75 % (11.25) never reached. resolve 4 h: 50 % at
    // 2 h, 75 % at 3 h, stopped at 3 h 40.
    assert_eq!(
        summary(&got, o),
        [
            row("respond", "warning", 50.0, 7.5, 7.5),
            row("respond", "met", 60.0, 9.0, 9.0),
            row("resolve", "warning", 50.0, 120.0, 120.0),
            row("resolve", "warning", 75.0, 180.0, 180.0),
            row("resolve", "met", 91.67, 220.0, 220.0),
        ]
    );
    assert!(got
        .iter()
        .all(|r| r.priority == 1 && r.service == "orders" && r.incident == "A"));
    assert_eq!(got[1].key, "incident_sla/A/respond/met");
    assert_eq!(got[4].key, "incident_sla/A/resolve/met/1");
}

#[test]
fn a_p2_acknowledged_after_70_minutes_breached_on_the_clock_before_the_ack_came() {
    let mut e = engine(TERMS);
    let o = t0();
    e.apply_correlation(&opened("B", "orders", o, 2));
    // No event for 65 minutes: the clock alone expires the 1-hour response target.
    let mut out = Vec::new();
    e.advance(past(o + 65 * MINUTE), &mut out);
    let before_ack = timer_records(out);
    assert_eq!(
        summary(&before_ack, o),
        [
            row("respond", "warning", 50.0, 30.0, 30.0),
            row("respond", "warning", 75.0, 45.0, 45.0),
            row("respond", "breach", 100.0, 60.0, 60.0),
            row("resolve", "warning", 50.0, 60.0, 60.0),
        ]
    );
    assert_eq!(e.timers_near_deadline().get(&("orders".to_string(), "respond")), None);
    let after = story(&mut e, &[acked("B", o + 70 * MINUTE)], past(o + 80 * MINUTE));
    assert_eq!(summary(&after, o), [row("respond", "missed", 116.67, 70.0, 70.0)]);
    // resolve (2 h): 75 % at 90 min, near its deadline, running.
    let mut out = Vec::new();
    e.advance(past(o + 95 * MINUTE), &mut out);
    assert_eq!(
        summary(&timer_records(out), o),
        [row("resolve", "warning", 75.0, 90.0, 90.0)]
    );
    assert_eq!(
        e.timers_near_deadline().get(&("orders".to_string(), "resolve")),
        Some(&1)
    );
}

#[test]
fn maintenance_does_not_count() {
    let toml = format!(
        "{TERMS}\n[[maintenance]]\nname = \"patch\"\nservices = [\"orders\"]\nstart = \"2026-03-10T11:00:00\"\nduration = \"30m\"\n"
    );
    let mut e = engine(&toml);
    let o = t0();
    // P3, resolve 8 h; open 10:00, maintenance 11:00–11:30, resolved 13:00: 2 h 30 counted.
    let got = story(
        &mut e,
        &[opened("M", "orders", o, 3), resolved("M", "orders", o, o + 3 * HOUR)],
        past(o + 4 * HOUR),
    );
    assert_eq!(summary(&got, o), [row("resolve", "met", 31.25, 180.0, 150.0)]);
}

#[test]
fn business_hours_count_friday_evening_and_monday_morning_only() {
    let mut e = engine(BUSINESS);
    // Friday 17:30 to Monday 09:00 with business hours 08:00–18:00: 30 min + 60 min.
    let (o, r) = (t("2026-03-06T17:30:00Z"), t("2026-03-09T09:00:00Z"));
    let got = story(
        &mut e,
        &[opened("W", "office", o, 3), resolved("W", "office", o, r)],
        past(r + HOUR),
    );
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].event.as_str(), got[0].elapsed_ns), ("met", 90 * MINUTE));
    assert_eq!(got[0].at_ns, r);
}

#[test]
fn a_p3_raised_to_p1_halfway_is_judged_by_the_p1_target_from_then_on() {
    let mut e = engine(TERMS);
    let o = t0();
    let mut out = Vec::new();
    e.apply_correlation(&opened("C", "orders", o, 3));
    e.advance(past(o + 5 * HOUR), &mut out);
    // P3 (8 h): 50 % at 4 h. Raised to P1 (4 h) at 5 h: 5 h counted is past the target, a
    // breach at the change; P1's 50 and 75 % (2 h, 3 h) lie before it and are not warned.
    e.apply_correlation(&retargeted("C", o + 5 * HOUR, 3, 1));
    e.apply_correlation(&resolved("C", "orders", o, o + 6 * HOUR));
    e.advance(past(o + 7 * HOUR), &mut out);
    let got = timer_records(out);
    assert_eq!(
        summary(&got, o),
        [
            row("resolve", "warning", 50.0, 240.0, 240.0),
            // Respond (P1: 15 min, P3 has none) is judged from the change: already past,
            // breached at the change; it stops at the resolution.
            row("respond", "breach", 100.0, 300.0, 300.0),
            row("resolve", "breach", 100.0, 300.0, 300.0),
            row("respond", "missed", 2400.0, 360.0, 360.0),
            row("resolve", "missed", 150.0, 360.0, 360.0),
        ]
    );
    assert_eq!(got[0].priority, 3);
    assert!(got[1..].iter().all(|r| r.priority == 1));
    assert_eq!(got[1].target_ns, 15 * MINUTE);
}

#[test]
fn a_reopen_resumes_the_resolve_timer() {
    let mut e = engine(TERMS);
    let o = t0();
    // P2, resolve 2 h: resolved at 1 h (met), reopened at 3 h, resolved at 4 h 30: 2 h 30
    // counted, the target passed at 4 h.
    let records = [
        opened("R", "orders", o, 2),
        acked("R", o + 10 * MINUTE),
        resolved("R", "orders", o, o + HOUR),
        reopened("R", o + 3 * HOUR),
        resolved("R", "orders", o, o + 270 * MINUTE),
    ];
    let got = story(&mut e, &records, past(o + 6 * HOUR));
    assert_eq!(
        summary(&got, o),
        [
            // 50 % of 2 h is reached at the resolution itself: met, and passed only once
            // the reopen resumes the timer.
            row("respond", "met", 16.67, 10.0, 10.0),
            row("resolve", "met", 50.0, 60.0, 60.0),
            row("resolve", "warning", 50.0, 180.0, 60.0),
            row("resolve", "warning", 75.0, 210.0, 90.0),
            row("resolve", "breach", 100.0, 240.0, 120.0),
            row("resolve", "missed", 125.0, 270.0, 150.0),
        ]
    );
    assert_eq!(got[5].key, "incident_sla/R/resolve/missed/2");
}

#[test]
fn services_without_incident_terms_have_no_timers_and_settled_ones_are_forgotten_after_their_month() {
    let mut e = engine(TERMS);
    let o = t0();
    let got = story(
        &mut e,
        &[opened("X", "elsewhere", o, 1), resolved("X", "elsewhere", o, o + HOUR)],
        past(o + 2 * HOUR),
    );
    assert!(got.is_empty());
    story(
        &mut e,
        &[opened("A", "orders", o, 1), resolved("A", "orders", o, o + HOUR)],
        past(o + 2 * HOUR),
    );
    assert!(e.state.incident_clocks.contains_key("A"), "it can still reopen");
    let mut out = Vec::new();
    e.advance(past(o + 72 * HOUR), &mut out);
    assert!(
        e.state.incident_clocks.contains_key("A"),
        "the month's report still counts it"
    );
    e.advance(t("2026-04-01T00:10:00Z"), &mut out);
    e.advance(t("2026-04-01T00:20:00Z"), &mut out);
    assert!(e.state.incident_clocks.is_empty());
}

/// Everything the stories above do, on one engine, as one stream.
fn all_stories() -> Vec<(Output, i64)> {
    let o = t0();
    let records = [
        opened("A", "orders", o, 1),
        opened("B", "orders", o + MINUTE, 2),
        acked("A", o + 9 * MINUTE),
        opened("R", "orders", o + 2 * MINUTE, 2),
        acked("R", o + 12 * MINUTE),
        resolved("R", "orders", o, o + HOUR + 2 * MINUTE),
        acked("B", o + 71 * MINUTE),
        opened("C", "orders", o + 3 * MINUTE, 3),
        reopened("R", o + 3 * HOUR),
        resolved("A", "orders", o, o + 220 * MINUTE),
        resolved("R", "orders", o, o + 270 * MINUTE),
        retargeted("C", o + 5 * HOUR, 3, 1),
        resolved("C", "orders", o, o + 6 * HOUR),
    ];
    records.into_iter().map(|r| (r.clone(), past(r.time_ns()))).collect()
}

fn fold(store: &mut BTreeMap<(String, Vec<u8>), Vec<u8>>, head: &mut Vec<u8>, changes: Changes) {
    if changes.full {
        store.clear();
    }
    *head = changes.head;
    for i in changes.upserts {
        store.insert((i.kind, i.key), i.value);
    }
    for k in changes.removed {
        store.remove(&k);
    }
}

#[test]
fn a_restore_anywhere_continues_as_the_uninterrupted_run() {
    let cfg = Config::parse(Path::new("sla.toml"), TERMS).unwrap();
    let stream = all_stories();
    let end = past(t0() + 7 * HOUR);
    let run = |e: &mut SlaEngine, from: usize, to: usize, out: &mut Vec<SlaOutput>| {
        for (r, w) in &stream[from..to] {
            e.apply_correlation(r);
            e.advance(*w, out);
        }
    };
    let mut whole = engine(TERMS);
    let mut expected = Vec::new();
    run(&mut whole, 0, stream.len(), &mut expected);
    whole.advance(end, &mut expected);
    assert!(timer_records(expected.clone()).len() >= 15);
    for cut in 0..=stream.len() {
        // A whole snapshot, and the incremental checkpoint's rows.
        let mut first = engine(TERMS);
        let mut out = Vec::new();
        let (mut store, mut head) = (BTreeMap::new(), Vec::new());
        for k in 0..cut {
            run(&mut first, k, k + 1, &mut out);
            fold(&mut store, &mut head, first.take_changes());
        }
        let snapshot = first.snapshot();
        let items: Vec<Item> = store
            .iter()
            .map(|((kind, key), value)| Item {
                kind: kind.clone(),
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        let mut restored = vec![SlaEngine::restore(&cfg.sla, &cfg.correlate, cfg.catalog(), &snapshot).unwrap()];
        if cut > 0 {
            restored.push(SlaEngine::restore_items(&cfg.sla, &cfg.correlate, cfg.catalog(), &head, &items).unwrap());
        }
        for mut back in restored {
            let mut rest = out.clone();
            run(&mut back, cut, stream.len(), &mut rest);
            back.advance(end, &mut rest);
            assert_eq!(
                timer_records(rest),
                timer_records(expected.clone()),
                "restored after {cut} records"
            );
            assert_eq!(back.snapshot(), whole.snapshot(), "state after {cut} records");
        }
    }
}

#[test]
fn the_month_report_counts_incidents_per_priority_and_credits_a_short_share() {
    let toml = TERMS.replace(
        "objectives = []",
        "objectives = []\nmonthly_fee = 1000.0\nincident_credits = [{ priority = 2, min_within_target = 90, credit_percent = 10 }]",
    );
    let mut e = engine(&toml);
    let o = t0();
    // P1 A: 9 min to ack, 220 to resolve, within. P2 B: ack after 70 min (respond 1 h
    // missed), resolved at 100. P2 R: 10 and 60, within. Q opened, never resolved.
    let records = [
        opened("A", "orders", o, 1),
        opened("B", "orders", o, 2),
        opened("R", "orders", o, 2),
        acked("A", o + 9 * MINUTE),
        acked("R", o + 10 * MINUTE),
        resolved("R", "orders", o, o + 60 * MINUTE),
        acked("B", o + 70 * MINUTE),
        resolved("B", "orders", o, o + 100 * MINUTE),
        resolved("A", "orders", o, o + 220 * MINUTE),
        opened("Q", "orders", o + 5 * HOUR, 3),
    ];
    let mut out = Vec::new();
    for r in &records {
        e.apply_correlation(r);
        e.advance(past(r.time_ns()), &mut out);
    }
    e.advance(t("2026-04-01T00:10:00Z"), &mut out);
    let report = out
        .iter()
        .find_map(|o| match o {
            SlaOutput::MonthlyReport(r) if r.complete => Some(r),
            _ => None,
        })
        .unwrap();
    let inc = report.incidents.as_ref().unwrap();
    let lines: Vec<_> = inc
        .priorities
        .iter()
        .map(|l| {
            (
                l.priority,
                l.incidents,
                l.within_target,
                l.within_target_percent,
                l.mtta_mean_minutes,
                l.mtta_p90_minutes,
                l.mttr_mean_minutes,
                l.mttr_p90_minutes,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (1, 1, 1, 100.0, 9.0, 9.0, 220.0, 220.0),
            (2, 2, 1, 50.0, 40.0, 70.0, 80.0, 100.0)
        ]
    );
    assert_eq!(inc.breached, ["B"]);
    assert_eq!(inc.open_at_end, 1);
    // 50 % of P2 within target is short of 90 %: 10 % of the fee.
    assert_eq!((report.credit_percent, report.credit_amount), (10.0, Some(100.0)));
}
