//! Properties of the correlation engine over random alert streams: the same input gives the
//! same output; a snapshot and restore at any point, then continuing, gives the same output
//! as an uninterrupted run; and events shuffled within the allowed lateness give the same
//! output as events in order.

mod support;

use proptest::prelude::*;
use slaflow::engine::correlate::{Correlator, Output};
use slaflow::engine::reorder::event_time;
use slaflow::model::Event;
use support::engines::{correlate_config, prop_alert, prop_change, step_correlator, CIS, LATENESS_SECS, SEC, T0};

/// The shared correlation config, with a daily maintenance window on `db`.
fn config() -> slaflow::config::Config {
    correlate_config(
        r#"
        [[maintenance]]
        name = "nightly"
        cis = ["db"]
        start = "2026-01-01T00:20:00"
        duration = "5m"
        recurrence = "daily"
        "#,
    )
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
                    return prop_change(CIS[usize::from(ci % 3)], t);
                }
                prop_alert(fp, CIS[usize::from(ci)], status, severity, t)
            })
            .collect()
    })
}

/// Runs `events` in the given arrival order, the watermark being the latest time seen.
fn run(engine: &mut Correlator, events: impl IntoIterator<Item = Event>) -> Vec<Output> {
    let mut out = Vec::new();
    for e in events {
        step_correlator(engine, e, &mut out);
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
        for e in events[..cut].iter().cloned() {
            step_correlator(&mut first, e, &mut out);
        }
        // The restored engine has seen the same watermark through its state.
        let mut second = Correlator::restore(&cfg.correlate, cfg.catalog(), &first.snapshot()).unwrap();
        out.extend(run(&mut second, events[cut..].iter().cloned()));
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
