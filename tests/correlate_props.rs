//! Properties of the correlation engine over random alert streams: the same input gives the
//! same output; a snapshot and restore at any point, then continuing, gives the same output
//! as an uninterrupted run; and events shuffled within the allowed lateness give the same
//! output as events in order.

use std::path::Path;

use proptest::prelude::*;
use slaflow::config::Config;
use slaflow::engine::correlate::{Correlator, Output};
use slaflow::engine::reorder::event_time;
use slaflow::model::{AlertEvent, AlertStatus, ChangeEvent, Event};

const T0: i64 = 1_767_225_600_000_000_000;
const SEC: i64 = 1_000_000_000;
const LATENESS_SECS: i64 = 120;

fn config() -> Config {
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

        [[maintenance]]
        name = "nightly"
        cis = ["db"]
        start = "2026-01-01T00:20:00"
        duration = "5m"
        recurrence = "daily"
        "#
    );
    Config::parse(Path::new("props.toml"), &text).unwrap()
}

/// A random stream: alerts over a few fingerprints and CIs, with occasional changes, at
/// strictly increasing times (so "in order" is unambiguous).
fn stream() -> impl Strategy<Value = Vec<Event>> {
    let step = (0u8..8, 0u8..4, 0u8..3, 0u32..6, 0u8..10, 1i64..90);
    prop::collection::vec(step, 1..120).prop_map(|steps| {
        let mut t = T0;
        steps
            .into_iter()
            .map(|(fp, ci, status, severity, kind, gap)| {
                t += gap * SEC;
                if kind == 0 {
                    return Event::Change(ChangeEvent {
                        source: "cab".into(),
                        ci: ["web", "db", "fw"][usize::from(ci % 3)].into(),
                        change_id: format!("CHG{}", t / SEC % 1000),
                        implemented_at_ns: t,
                        summary: String::new(),
                    });
                }
                Event::Alert(AlertEvent {
                    source: "prop".into(),
                    fingerprint: format!("fp{fp}"),
                    ci: ["web", "db", "fw", "elsewhere"][usize::from(ci)].into(),
                    alert_name: format!("check{fp}"),
                    severity,
                    status: [AlertStatus::Firing, AlertStatus::Acknowledged, AlertStatus::Resolved][usize::from(status)]
                        as i32,
                    affected_users: (severity == 5).then_some(600),
                    time_ns: t,
                    ..Default::default()
                })
            })
            .collect()
    })
}

/// Runs `events` in the given arrival order, the watermark being the latest time seen.
fn run(engine: &mut Correlator, events: impl IntoIterator<Item = Event>) -> Vec<Output> {
    let mut out = Vec::new();
    let mut watermark = i64::MIN;
    for e in events {
        watermark = watermark.max(event_time(&e));
        engine.apply(e, &mut out);
        engine.advance(watermark, &mut out);
    }
    engine.flush(&mut out);
    out
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn same_input_same_output(events in stream()) {
        let cfg = config();
        let a = run(&mut Correlator::new(&cfg.correlate, cfg.catalog()).unwrap(), events.clone());
        let b = run(&mut Correlator::new(&cfg.correlate, cfg.catalog()).unwrap(), events);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn snapshot_restore_anywhere_equals_uninterrupted(events in stream(), cut in any::<prop::sample::Index>()) {
        let cfg = config();
        let expected = run(&mut Correlator::new(&cfg.correlate, cfg.catalog()).unwrap(), events.clone());
        let cut = cut.index(events.len() + 1);
        let mut first = Correlator::new(&cfg.correlate, cfg.catalog()).unwrap();
        let mut out = Vec::new();
        let mut watermark = i64::MIN;
        for e in events[..cut].iter().cloned() {
            watermark = watermark.max(event_time(&e));
            first.apply(e, &mut out);
            first.advance(watermark, &mut out);
        }
        let mut second = Correlator::restore(&cfg.correlate, cfg.catalog(), &first.snapshot()).unwrap();
        // The restored engine has seen the same watermark through its state.
        let mut rest = Vec::new();
        for e in events[cut..].iter().cloned() {
            watermark = watermark.max(event_time(&e));
            second.apply(e, &mut rest);
            second.advance(watermark, &mut rest);
        }
        second.flush(&mut rest);
        out.extend(rest);
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn shuffled_within_lateness_equals_in_order(events in stream(), delays in prop::collection::vec(0..LATENESS_SECS * SEC, 120)) {
        let cfg = config();
        let expected = run(&mut Correlator::new(&cfg.correlate, cfg.catalog()).unwrap(), events.clone());
        // Each event is delayed by less than the allowed lateness; arrival follows the delays.
        let mut arrivals: Vec<(i64, usize)> =
            events.iter().enumerate().map(|(i, e)| (event_time(e) + delays[i % delays.len()], i)).collect();
        arrivals.sort();
        let shuffled: Vec<Event> = arrivals.into_iter().map(|(_, i)| events[i].clone()).collect();
        let actual = run(&mut Correlator::new(&cfg.correlate, cfg.catalog()).unwrap(), shuffled);
        let late = actual.iter().filter(|o| matches!(o, Output::LateEvent { .. })).count();
        prop_assert_eq!(late, 0);
        prop_assert_eq!(actual, expected);
    }
}
