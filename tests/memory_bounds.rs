//! The correlation engine's memory is bounded by `[correlate.dedup] max_entries` under a
//! flood of distinct fingerprints (the case `examples/memory_harness.rs flood` measures in
//! bytes): counted, not timed. 100 000 distinct alerts through an engine holding at most
//! 1 000 leave 1 000 held and 99 000 evicted, each eviction counted; the incidents they
//! join hold the keys of their cached alerts only (never more than 1 000 together), and count
//! every alert that joined and every key let go. The SLA engine's memory per service (what
//! `memory_harness sla` measures as RSS) is bounded by its windows: closed hours are not
//! held, the open hour's histogram is sparse, days and months are held compressed; checked
//! against bounds computed from the histogram's parameters.

use std::collections::BTreeSet;
use std::path::Path;

use slaflow::config::Config;
use slaflow::engine::correlate::{Correlator, Output};
use slaflow::engine::sla::SlaEngine;
use slaflow::model::{AlertEvent, AlertStatus, Event, LatencyBatch};

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

// ---- the SLA engine: what a service holds after a month of closed hours -----------------------

const MINUTE: i64 = 60_000_000_000;
const HOUR: i64 = 60 * MINUTE;
/// Distinct latencies the services see (2 ms + k · 4.5 ms, k < 200: up to 0.9 s), each in a
/// bucket of its own at 3 significant digits (neighbours differ by far more than 0.1 %).
const DISTINCT: i64 = 200;
/// Samples in each hour.
const PER_HOUR: i64 = 60;

fn latency(k: i64) -> i64 {
    2_000_000 + (k % DISTINCT) * 4_500_000
}

/// `services` services with the memory harness's contract (four objectives, no burn-rate
/// alerts), an hour of 60 samples each from `T0` for `hours` hours, then the clock moved to
/// the middle of the last hour: every hour but the last closed.
fn sla_engine(services: usize, hours: i64) -> SlaEngine {
    let mut config = Config::parse(
        Path::new("bounds.toml"),
        r#"
        [[sla.contracts]]
        service = "svc-0"
        [[sla.contracts.objectives]]
        name = "p95"
        kind = "latency_percentile"
        percentile = 95.0
        threshold = "3s"
        [[sla.contracts.objectives]]
        name = "mean"
        kind = "mean_latency"
        threshold = "3s"
        [[sla.contracts.objectives]]
        name = "availability"
        kind = "availability"
        target = 99.9
        "#,
    )
    .unwrap();
    config.sla.burn_rate_alerts.clear();
    let contract = config.sla.contracts[0].clone();
    config.sla.contracts = (0..services)
        .map(|i| {
            let mut c = contract.clone();
            c.service = format!("svc-{i}");
            c
        })
        .collect();
    let mut engine = SlaEngine::new(&config.sla, &config.correlate, config.catalog()).unwrap();
    let mut out = Vec::new();
    let mut k = 0;
    for hour in 0..hours {
        let start = T0 + hour * HOUR;
        for s in 0..services {
            let batch = LatencyBatch {
                service: format!("svc-{s}"),
                operation: "POST /orders".into(),
                times_ns: (0..PER_HOUR).map(|i| start + i * MINUTE).collect(),
                durations_ns: (0..PER_HOUR).map(|i| latency(k + i)).collect(),
                errors: vec![false; PER_HOUR as usize],
                status_codes: vec![],
            };
            engine.apply(&Event::Batch(batch), &mut out);
        }
        k += PER_HOUR;
        engine.advance(start + HOUR / 2, &mut out);
        out.clear();
    }
    engine
}

/// Most bytes of a V2 compressed encoding of `buckets` non-zero buckets: the 40-byte header,
/// then each non-zero count and each run of zeros before one as a zig-zag LEB128 word of at
/// most 9 bytes, deflated; deflate's worst case stores the input (5 bytes a 16 KiB block, 6
/// of zlib), and the compressed V2 wrapper adds its cookie and length (8).
fn v2_compressed_bound(buckets: usize) -> usize {
    let payload = 40 + 9 * (2 * buckets + 1);
    8 + 6 + payload + 5 * payload.div_ceil(16_383)
}

#[test]
fn a_services_closed_hours_are_not_held_and_its_windows_stay_within_the_histograms_bounds() {
    const SERVICES: usize = 4;
    // Three days and a bit: 72 closed hours, three closed days merged into the month, an
    // open day and the open hour.
    let engine = sla_engine(SERVICES, 3 * 24 + 6);
    let held = engine.memory();
    assert_eq!(held.services, SERVICES);
    assert_eq!(held.series, SERVICES, "one series a service (no operation objectives)");
    assert_eq!(held.open_hours, SERVICES, "only the open hour has a histogram");
    assert_eq!(held.accumulators, 2 * SERVICES, "the open day and the month");

    // The open hour: 60 samples in 60 distinct buckets, 8 bytes each held sparse, capacity
    // grown by a quarter at a time (at most a quarter and 8 entries spare).
    let open_bound = (PER_HOUR as usize * 5 / 4 + 8) * 8;
    let per_service_open = held.open_hour_bytes / SERVICES;
    assert!(
        per_service_open >= PER_HOUR as usize * 8,
        "{per_service_open} bytes cannot hold 60 buckets"
    );
    assert!(
        per_service_open <= open_bound,
        "open hour {per_service_open} > {open_bound} bytes"
    );
    // What dense 32-bit counters up to 0.9 s would be: 11 · 1 024 counters, 45 056 bytes.
    assert!(per_service_open * 40 < 11 * 1024 * 4);

    // The day and the month: compressed, each at most the V2 bound of the 200 buckets seen.
    let acc_bound = 2 * v2_compressed_bound(DISTINCT as usize);
    let per_service_acc = held.accumulator_bytes / SERVICES;
    assert!(
        per_service_acc <= acc_bound,
        "accumulators {per_service_acc} > {acc_bound} bytes"
    );

    // More history does not make a service hold more: a day later, the same bounds.
    let later = sla_engine(SERVICES, 4 * 24 + 6).memory();
    assert_eq!(later.open_hours, SERVICES);
    assert!(later.open_hour_bytes / SERVICES <= open_bound);
    assert!(later.accumulator_bytes / SERVICES <= acc_bound);
}
