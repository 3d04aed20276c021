//! The correlation engine's memory is bounded by `[correlate.dedup] max_entries` under a
//! flood of distinct fingerprints (the case `examples/memory_harness.rs flood` measures in
//! bytes): counted, not timed. 100 000 distinct alerts through an engine holding at most
//! 1 000 leave 1 000 held and 99 000 evicted, each eviction counted; the incidents they
//! join hold the keys of their cached alerts only (never more than 1 000 together), and count
//! every alert that joined and every key let go.

use std::collections::BTreeSet;
use std::path::Path;

use slaflow::config::Config;
use slaflow::engine::correlate::{Correlator, Output};
use slaflow::model::{AlertEvent, AlertStatus, Event};

const T0: i64 = 1_772_323_200_000_000_000; // 2026-03-01T00:00:00Z

fn alert(i: u64) -> Event {
    Event::Alert(AlertEvent {
        source: "flood".into(),
        fingerprint: format!("fp-{i}"),
        service: format!("svc-{}", i % 100),
        ci: format!("host-{}", i % 1000),
        alert_name: "Disk full".into(),
        severity: 3,
        status: AlertStatus::Firing as i32,
        time_ns: T0 + i as i64 * 10_000_000,
        ..AlertEvent::default()
    })
}

#[test]
fn a_flood_of_distinct_fingerprints_holds_at_most_max_entries_and_counts_every_eviction() {
    let config = Config::parse(Path::new("flood.toml"), "[correlate.dedup]\nmax_entries = 1000\n").unwrap();
    let mut engine = Correlator::new(&config.correlate, config.catalog()).unwrap();
    let mut out = Vec::new();
    let mut most = 0;
    let mut most_keys = 0;
    let mut incidents = BTreeSet::new();
    for i in 0..100_000 {
        let event = alert(i);
        let t = event.time_ns();
        engine.apply(event, &mut out);
        engine.advance(t, &mut out);
        for o in out.drain(..) {
            if let Output::IncidentOpened { incident, .. } = o {
                incidents.insert(incident);
            }
        }
        most = most.max(engine.cached_alerts());
        most_keys = most_keys.max(engine.held_member_keys());
    }
    engine.flush(&mut out);
    assert!(most <= 1000, "held {most} alerts at once");
    assert!(most_keys <= 1000, "incidents held {most_keys} alert keys at once");
    assert_eq!(engine.cached_alerts(), 1000);
    assert_eq!(engine.stats().alerts, 100_000);
    assert_eq!(engine.stats().evictions, 99_000);
    // One incident per service, open throughout (its alerts keep coming): each holds the
    // keys of its ten cached alerts and counts its thousand.
    assert_eq!(incidents.len(), 100);
    for id in &incidents {
        let m = engine.incident_members(id).expect("kept");
        assert_eq!((m.held, m.joined, m.dropped), (10, 1000, 990), "{id}");
    }
    assert_eq!(engine.held_member_keys(), 1000);
}
