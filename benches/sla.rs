//! SLA engine throughput on one core: samples per second recorded from `LatencyBatch`es and
//! from single `LatencySample`s (with the watermark moving and minute bins closing as they
//! would in a stream), and the state per active service after a month of history (printed:
//! snapshot bytes, and live histogram memory). Run: `cargo bench --bench sla`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use slaflow::config::Config;
use slaflow::engine::sla::SlaEngine;
use slaflow::model::{Event, LatencyBatch, LatencySample, Outcome};

const T0: i64 = 1_772_323_200_000_000_000; // 2026-03-01T00:00:00Z
const MIN: i64 = 60_000_000_000;

fn config() -> Config {
    Config::parse(
        Path::new("bench.toml"),
        include_str!("../tests/fixtures/sla/four_objectives.toml"),
    )
    .expect("bench config")
}

/// Batches of `per_batch` samples, `batches` of them, one batch per `step` ns.
fn batches(per_batch: usize, batches: usize, step: i64) -> Vec<Event> {
    (0..batches)
        .map(|b| {
            let start = T0 + b as i64 * step;
            let spacing = step / per_batch as i64;
            Event::Batch(LatencyBatch {
                service: "orders".into(),
                operation: "POST /orders".into(),
                times_ns: (0..per_batch as i64).map(|i| start + i * spacing).collect(),
                durations_ns: (0..per_batch as i64)
                    .map(|i| 2_000_000 + ((b as i64 * per_batch as i64 + i) * 7_919_000) % 900_000_000)
                    .collect(),
                errors: (0..per_batch).map(|i| i % 1000 == 0).collect(),
                status_codes: vec![],
            })
        })
        .collect()
}

fn feed(engine: &mut SlaEngine, events: &[Event]) -> usize {
    let mut out = Vec::new();
    for e in events {
        engine.apply(e, &mut out);
        let t = match e {
            Event::Batch(b) => b.times_ns.last().copied().unwrap_or(T0),
            Event::Sample(s) => s.time_ns,
            _ => T0,
        };
        engine.advance(t, &mut out);
    }
    out.len()
}

fn bench(c: &mut Criterion) {
    let config = config();
    let mut group = c.benchmark_group("sla");

    // 100 batches of 10 000 samples, one batch per 6 s: 1 M samples over 10 minutes.
    let batch_input = batches(10_000, 100, MIN / 10);
    let mut check = SlaEngine::new(&config.sla, &config.correlate, config.catalog()).expect("engine");
    feed(&mut check, &batch_input);
    assert_eq!(check.stats().samples, 1_000_000, "the bench records what it claims");
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("LatencyBatch (100 × 10k samples)", |b| {
        b.iter_batched(
            || SlaEngine::new(&config.sla, &config.correlate, config.catalog()).expect("engine"),
            |mut engine| black_box(feed(&mut engine, &batch_input)),
            BatchSize::LargeInput,
        )
    });

    // 200 000 single samples, 1 ms apart.
    let singles: Vec<Event> = (0..200_000i64)
        .map(|i| {
            Event::Sample(LatencySample {
                service: "orders".into(),
                operation: "POST /orders".into(),
                time_ns: T0 + i * 1_000_000,
                duration_ns: 2_000_000 + (i * 7919) % 900_000_000,
                outcome: if i % 1000 == 0 { Outcome::Error } else { Outcome::Ok } as i32,
                status_code: Some(200),
                role: 0,
            })
        })
        .collect();
    group.throughput(Throughput::Elements(singles.len() as u64));
    group.bench_function("single samples (200k)", |b| {
        b.iter_batched(
            || SlaEngine::new(&config.sla, &config.correlate, config.catalog()).expect("engine"),
            |mut engine| black_box(feed(&mut engine, &singles)),
            BatchSize::LargeInput,
        )
    });
    group.finish();

    // A month of history for one service: one batch per minute of 60 samples, all of March,
    // stopped on the 31st at 12:00 (the month still open, all its days accumulated).
    let mut engine = SlaEngine::new(&config.sla, &config.correlate, config.catalog()).expect("engine");
    let month = batches(60, 30 * 1440 + 720, MIN);
    feed(&mut engine, &month);
    assert_eq!(engine.stats().samples, month.len() as u64 * 60, "every sample recorded");
    let snapshot = engine.snapshot().len();
    // Resident: the open hour's live histogram (its counters), plus the compressed day and
    // month and the small structures, which the snapshot holds.
    let live = engine.live_histogram_bytes();
    println!(
        "sla state per active service after a month (latencies up to 0.9 s): {snapshot} snapshot bytes; {} KiB live histogram counters; about {} KiB resident",
        live / 1024,
        (live + snapshot) / 1024
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
