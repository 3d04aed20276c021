//! The correlation engine's memory is bounded by `[correlate.dedup] max_entries` under a
//! flood of distinct fingerprints (the case `examples/memory_harness.rs flood` measures in
//! bytes): counted, not timed. 100 000 distinct alerts through an engine holding at most
//! 1 000 leave 1 000 held and 99 000 evicted, each eviction counted.

use std::path::Path;

use slaflow::config::Config;
use slaflow::engine::correlate::Correlator;
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
    for i in 0..100_000 {
        let event = alert(i);
        let t = event.time_ns();
        engine.apply(event, &mut out);
        engine.advance(t, &mut out);
        out.clear();
        most = most.max(engine.cached_alerts());
    }
    engine.flush(&mut out);
    assert!(most <= 1000, "held {most} alerts at once");
    assert_eq!(engine.cached_alerts(), 1000);
    assert_eq!(engine.stats().alerts, 100_000);
    assert_eq!(engine.stats().evictions, 99_000);
}
