//! Checkpoint cost per batch, before (the whole state of both engines, one snapshot row) and
//! after incremental checkpoints (the head and the items the batch changed), with 10, 10 000
//! and 100 000 contracted services with state and 10 000 open incidents, for a batch that
//! touches three services and one alert. Prints bytes written and time (building the
//! checkpoint, then writing it to the embedded store in the batch's transaction).
//!
//! `cargo run --release --example checkpoint_bytes [SERVICES…]` (default 10 10000 100000).

use std::time::{Duration, Instant};

use slaflow::config::Config;
use slaflow::model::{AlertEvent, AlertStatus, Event, LatencyBatch};
use slaflow::replay::Engines;
use slaflow::sinks::sqlite::SqliteSink;
use slaflow::sinks::{Batch, Changes, Checkpoint};

const T0: i64 = 1_773_129_600_000_000_000; // 2026-03-10T08:00:00Z
const MIN: i64 = 60_000_000_000;
const INCIDENTS: usize = 10_000;
/// Batches measured per setting; the median is printed.
const ROUNDS: usize = 3;

/// A config with `services` contracts (a p95 and an availability objective each).
fn config(services: usize) -> Config {
    let mut text = String::from("[sla]\nallowed_lateness = \"1m\"\n");
    for i in 0..services {
        text.push_str(&format!(
            "[[sla.contracts]]\nservice = \"svc-{i}\"\n\
             [[sla.contracts.objectives]]\nname = \"p95\"\nkind = \"latency_percentile\"\npercentile = 95.0\nthreshold = \"300ms\"\n\
             [[sla.contracts.objectives]]\nname = \"avail\"\nkind = \"availability\"\ntarget = 99.9\n"
        ));
    }
    Config::parse(std::path::Path::new("bench.toml"), &text).expect("bench config")
}

/// 60 samples of one service in the minute starting at `t`.
fn samples(service: usize, t: i64) -> Event {
    let n = 60i64;
    Event::Batch(LatencyBatch {
        service: format!("svc-{service}"),
        operation: "GET /".into(),
        times_ns: (0..n).map(|k| t + k * 1_000_000_000).collect(),
        durations_ns: (0..n)
            .map(|k| 1_000_000 + (k * 7_919 + service as i64 * 104_729) % 900_000_000)
            .collect(),
        errors: Vec::new(),
        ..Default::default()
    })
}

fn alert(i: usize, t: i64) -> Event {
    Event::Alert(AlertEvent {
        source: "am".into(),
        fingerprint: format!("fp-{i}"),
        service: format!("app-{i}"),
        ci: format!("host-{i}"),
        alert_name: "HighLatency".into(),
        severity: 3,
        status: AlertStatus::Firing as i32,
        time_ns: t,
        ..Default::default()
    })
}

/// Engines holding state for every contracted service (an hour of samples each: a live hour
/// histogram and closed minutes) and `INCIDENTS` open incidents.
fn loaded(config: &Config, services: usize) -> Engines {
    let mut engines = Engines::new(config).expect("engines");
    let mut sink = |_| {};
    for i in 0..INCIDENTS {
        engines.process(alert(i, T0), &mut sink);
    }
    for i in 0..services {
        engines.process(samples(i, T0 + MIN), &mut sink);
    }
    engines.advance_to(T0 + 5 * MIN, &mut sink);
    engines
}

/// A batch's worth of input: three services' samples and a duplicate of one alert, the
/// clock one minute on.
fn one_batch(engines: &mut Engines, services: usize, round: usize) {
    let t = T0 + (6 + round as i64) * MIN;
    let mut sink = |_| {};
    for k in 0..3 {
        engines.process(samples((round * 3 + k) % services, t), &mut sink);
    }
    engines.process(alert(round, t), &mut sink);
    engines.advance_to(t + MIN, &mut sink);
}

fn checkpoint(correlate: Changes, sla: Changes) -> Batch {
    Batch {
        checkpoint: Some(Checkpoint {
            scope: "bench/0".into(),
            correlate,
            sla,
            latest_event_ns: None,
        }),
        ..Batch::default()
    }
}

/// The old checkpoint: both whole snapshots in one row (the heads of a batch without items).
fn whole(engines: &Engines) -> (Batch, usize) {
    let (c, s) = engines.snapshot();
    let bytes = c.len() + s.len();
    let head = |head| Changes {
        head,
        ..Changes::default()
    };
    (checkpoint(head(c), head(s)), bytes)
}

fn incremental(engines: &mut Engines) -> (Batch, usize) {
    let (c, s) = engines.take_changes();
    let bytes = c.bytes() + s.bytes();
    (checkpoint(c, s), bytes)
}

/// (bytes, build time, write time), median of `ROUNDS` batches.
async fn measure(
    sink: &mut SqliteSink,
    engines: &mut Engines,
    (services, first_round): (usize, usize),
    build: fn(&mut Engines) -> (Batch, usize),
) -> (usize, Duration, Duration) {
    let mut runs = Vec::new();
    for round in first_round..first_round + ROUNDS {
        one_batch(engines, services, round);
        let started = Instant::now();
        let (batch, bytes) = build(engines);
        let built = started.elapsed();
        let started = Instant::now();
        sink.write(&batch).await.expect("write");
        runs.push((bytes, built, started.elapsed()));
    }
    assert_eq!(engines.sla.stats().late_samples, 0, "every batch's samples count");
    runs.sort_by_key(|r| r.1 + r.2);
    runs[ROUNDS / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let settings: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let settings = if settings.is_empty() {
        vec![10, 10_000, 100_000]
    } else {
        settings
    };
    let dir = std::env::temp_dir().join(format!("slaflow-checkpoint-bytes-{}", std::process::id()));
    println!("| contracted services | open incidents | whole snapshot: bytes/batch | build | write | incremental: bytes/batch | build | write |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for services in settings {
        let _ = std::fs::remove_dir_all(&dir);
        let mut sink = SqliteSink::open(&dir.join("store.sqlite")).await.expect("store");
        sink.migrate().await.expect("migrate");
        let config = config(services);
        let mut engines = loaded(&config, services);
        assert_eq!(engines.correlator.open_incidents(), INCIDENTS);
        assert_eq!(engines.sla.services(), services);
        let before = measure(&mut sink, &mut engines, (services, 0), |e| whole(e)).await;
        // The first incremental checkpoint lists every item (a new engine); then batches.
        let (first, _) = incremental(&mut engines);
        sink.write(&first).await.expect("write");
        let after = measure(&mut sink, &mut engines, (services, ROUNDS), incremental).await;
        println!(
            "| {services} | {INCIDENTS} | {} | {:.1} ms | {:.1} ms | {} | {:.2} ms | {:.2} ms |",
            before.0,
            before.1.as_secs_f64() * 1e3,
            before.2.as_secs_f64() * 1e3,
            after.0,
            after.1.as_secs_f64() * 1e3,
            after.2.as_secs_f64() * 1e3,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
