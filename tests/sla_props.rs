//! Properties of the SLA engine over random streams of latency and outages: replaying the
//! same input twice yields the same records (and so the same breach keys), and a snapshot
//! and restore at any point, then continuing, yields what an uninterrupted run yields.
//! (Percentile accuracy and per-minute merging are properties of the histogram module,
//! tested next to it.)

use std::path::Path;

use proptest::prelude::*;
use slaflow::config::Config;
use slaflow::engine::correlate::priority::Level;
use slaflow::engine::correlate::Output;
use slaflow::engine::sla::{SlaEngine, SlaOutput};
use slaflow::model::{Event, LatencySample, Outcome};

const T0: i64 = 1_772_323_200_000_000_000; // 2026-03-01T00:00:00Z
const MIN: i64 = 60_000_000_000;

fn config() -> Config {
    Config::parse(
        Path::new("props.toml"),
        r#"
        [sla]
        allowed_lateness = "1m"
        [[sla.contracts]]
        service = "svc"
        timezone = "Europe/Paris"
        operations = ["op1"]
        [[sla.contracts.objectives]]
        name = "p90"
        kind = "latency_percentile"
        percentile = 90.0
        threshold = "500ms"
        operation = "op1"
        [[sla.contracts.objectives]]
        name = "streak"
        kind = "streak"
        threshold = "300ms"
        days = 2
        [[sla.contracts.objectives]]
        name = "avail"
        kind = "availability"
        target = 99.0
        [[sla.contracts.objectives]]
        name = "requests"
        kind = "request_availability"
        target = 95.0
        [[sla.contracts.objectives]]
        name = "downtime"
        kind = "max_downtime"
        threshold = "20m"
        "#,
    )
    .unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    Sample { op: bool, duration_ms: i64, error: bool },
    Outage { minutes: i64 },
}

/// Steps spaced by random gaps over about five weeks, so months and days close.
fn stream() -> impl Strategy<Value = Vec<(i64, Step)>> {
    let step = prop_oneof![
        8 => (any::<bool>(), 1i64..2000, prop::bool::weighted(0.1)).prop_map(|(op, duration_ms, error)| Step::Sample { op, duration_ms, error }),
        1 => (1i64..90).prop_map(|minutes| Step::Outage { minutes }),
    ];
    prop::collection::vec((1i64..600, step), 1..150).prop_map(|steps| {
        let mut t = T0;
        steps
            .into_iter()
            .map(|(gap, s)| {
                t += gap * MIN / 3;
                (t, s)
            })
            .collect()
    })
}

/// Runs steps [from..to) of the stream, watermark at each step's time.
fn run(engine: &mut SlaEngine, steps: &[(i64, Step)], first_index: usize, out: &mut Vec<SlaOutput>) {
    for (i, (t, step)) in steps.iter().enumerate() {
        match step {
            Step::Sample { op, duration_ms, error } => {
                let sample = Event::Sample(LatencySample {
                    service: "svc".into(),
                    operation: if *op { "op1" } else { "op2" }.into(),
                    time_ns: *t,
                    duration_ns: duration_ms * 1_000_000,
                    outcome: if *error { Outcome::Error } else { Outcome::Ok } as i32,
                    status_code: None,
                    role: 0,
                });
                engine.apply(&sample, out);
            }
            Step::Outage { minutes } => {
                let id = format!("INC-{}", first_index + i);
                engine.apply_correlation(&Output::IncidentOpened {
                    incident: id.clone(),
                    service: "svc".into(),
                    alert: "a".into(),
                    ci: "c".into(),
                    time_ns: *t,
                    priority: 1,
                    impact: Level::High,
                    urgency: Level::High,
                    suspected_changes: vec![],
                });
                engine.apply_correlation(&Output::IncidentResolved {
                    incident: id,
                    service: "svc".into(),
                    opened_ns: *t,
                    time_ns: t + minutes * MIN,
                    reason: "alerts_resolved".into(),
                });
            }
        }
        engine.advance(*t, out);
    }
}

fn finish(engine: &mut SlaEngine, steps: &[(i64, Step)], out: &mut Vec<SlaOutput>) {
    let last = steps.last().map_or(T0, |(t, _)| *t);
    engine.advance(last + 40 * 24 * 60 * MIN, out);
}

fn keys(out: &[SlaOutput]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            SlaOutput::Breach(f) | SlaOutput::Warning(f) => Some(f.key.clone()),
            SlaOutput::BurnRateAlert(b) => Some(format!("{}:{}", b.key, b.state)),
            _ => None,
        })
        .collect()
}

/// Each case replays weeks of minutes, so the default is 24 cases (about 20 s in a debug
/// build); PROPTEST_CASES=N runs more.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn replaying_twice_gives_the_same_records_and_breach_keys(steps in stream()) {
        let cfg = config();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut e1 = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
        run(&mut e1, &steps, 0, &mut a);
        finish(&mut e1, &steps, &mut a);
        let mut e2 = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
        run(&mut e2, &steps, 0, &mut b);
        finish(&mut e2, &steps, &mut b);
        prop_assert_eq!(keys(&a), keys(&b));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn snapshot_restore_anywhere_equals_uninterrupted(steps in stream(), cut in any::<prop::sample::Index>()) {
        let cfg = config();
        let mut expected = Vec::new();
        let mut whole = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
        run(&mut whole, &steps, 0, &mut expected);
        finish(&mut whole, &steps, &mut expected);

        let cut = cut.index(steps.len() + 1);
        let mut out = Vec::new();
        let mut first = SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap();
        run(&mut first, &steps[..cut], 0, &mut out);
        let mut second = SlaEngine::restore(&cfg.sla, &cfg.correlate, cfg.catalog(), &first.snapshot()).unwrap();
        run(&mut second, &steps[cut..], cut, &mut out);
        finish(&mut second, &steps, &mut out);
        prop_assert_eq!(out, expected);
    }
}
