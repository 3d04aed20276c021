//! Properties of the SLA engine over random streams of latency and outages: replaying the
//! same input twice yields the same records (and so the same breach keys), and a snapshot
//! and restore at any point, then continuing, yields what an uninterrupted run yields.
//! (Percentile accuracy and per-minute merging are properties of the histogram module,
//! tested next to it.)

mod support;

use std::path::Path;

use proptest::prelude::*;
use slaflow::config::Config;
use slaflow::engine::sla::{SlaEngine, SlaOutput};
use support::engines::{apply_outage, cases, finish_sla, latency, sla_contract, M0 as T0, MIN};

/// One contract, of `svc`: the shared objectives and at most 20 minutes of downtime.
fn config() -> Config {
    let more = "[[sla.contracts.objectives]]\nname = \"downtime\"\nkind = \"max_downtime\"\nthreshold = \"20m\"\n";
    let text = format!("[sla]\nallowed_lateness = \"1m\"\n{}", sla_contract("svc", "", more));
    Config::parse(Path::new("props.toml"), &text).unwrap()
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
                engine.apply(&latency("svc", *op, *t, *duration_ms, *error), out)
            }
            Step::Outage { minutes } => apply_outage(engine, format!("INC-{}", first_index + i), "svc", *t, *minutes),
        }
        engine.advance(*t, out);
    }
}

fn finish(engine: &mut SlaEngine, steps: &[(i64, Step)], out: &mut Vec<SlaOutput>) {
    finish_sla(engine, steps.last().map(|s| s.0), out);
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
const CASES: u32 = 24;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(CASES)))]

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
