//! Correlation engine throughput on one core, on a duplicate-heavy stream (an alert storm:
//! 200 distinct alerts over 20 services, each re-notified 50 times, 99 % duplicates), plus
//! the size of the engine state per open incident (printed, from a snapshot of 10 000 open
//! incidents). Run: `cargo bench --bench correlate`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use slaflow::config::Config;
use slaflow::engine::correlate::Correlator;
use slaflow::model::{AlertEvent, AlertStatus, Event};

const T0: i64 = 1_767_225_600_000_000_000;

fn config() -> Config {
    let mut text = String::new();
    for s in 0..20 {
        text.push_str(&format!(
            "[[services]]\nid = \"svc-{s}\"\ncriticality = \"high\"\ncis = [\"host-{s}\"]\n"
        ));
    }
    Config::parse(Path::new("bench.toml"), &text).expect("bench config")
}

fn alert(i: u64, t: i64) -> Event {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("alertname".to_string(), format!("HighLatency{}", i % 10));
    labels.insert("instance".to_string(), format!("host-{}:9100", i % 20));
    Event::Alert(AlertEvent {
        source: "alertmanager".into(),
        fingerprint: format!("{:016x}", i.wrapping_mul(0x9E3779B97F4A7C15)),
        ci: format!("host-{}", i % 20),
        host: format!("host-{}", i % 20),
        alert_name: format!("HighLatency{}", i % 10),
        severity: 4,
        severity_text: "major".into(),
        status: AlertStatus::Firing as i32,
        time_ns: t,
        labels,
        ..Default::default()
    })
}

/// 200 alerts × 50 repeats, 1 ms apart.
fn storm() -> Vec<Event> {
    (0..10_000u64)
        .map(|n| alert(n % 200, T0 + n as i64 * 1_000_000))
        .collect()
}

fn run(engine: &mut Correlator, events: Vec<Event>) -> usize {
    let mut out = Vec::with_capacity(64);
    let mut emitted = 0;
    for e in events {
        let t = slaflow::engine::reorder::event_time(&e);
        engine.apply(e, &mut out);
        engine.advance(t, &mut out);
        emitted += out.len();
        out.clear();
    }
    engine.flush(&mut out);
    emitted + out.len()
}

fn bench(c: &mut Criterion) {
    let config = config();
    let events = storm();
    let mut group = c.benchmark_group("correlate");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("duplicate-heavy storm (10k alerts, 99% duplicates)", |b| {
        b.iter_batched(
            || {
                (
                    Correlator::new(&config.correlate, config.catalog()).expect("engine"),
                    events.clone(),
                )
            },
            |(mut engine, events)| black_box(run(&mut engine, events)),
            BatchSize::LargeInput,
        )
    });
    group.finish();

    // State per open incident: 10 000 incidents, one alert each, on distinct services.
    let mut engine = Correlator::new(&Default::default(), Default::default()).expect("engine");
    let mut out = Vec::new();
    for i in 0..10_000u64 {
        let Event::Alert(mut a) = alert(i, T0 + i as i64) else {
            unreachable!()
        };
        a.service = format!("service-{i}");
        engine.apply(Event::Alert(a), &mut out);
        engine.advance(T0 + i as i64, &mut out);
    }
    engine.flush(&mut out);
    assert_eq!(engine.open_incidents(), 10_000);
    let bytes = engine.snapshot().len();
    println!(
        "correlate state: {bytes} snapshot bytes for 10000 open incidents = {} bytes per open incident",
        bytes / 10_000
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
