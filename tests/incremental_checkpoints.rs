//! Incremental checkpoints (src/engine/changelog.rs): for random event streams and random
//! batch boundaries, a run that commits each batch's changed rows to a model store, crashes
//! anywhere (any number of times), restores from those rows alone and continues from the
//! last committed input gives the outputs and the final state (snapshot bytes) of an
//! uninterrupted run; at every commit the rows assemble into the live engine's exact state.
//! And per engine, dirty tracking: a batch that touches one alert or one service writes
//! that item's row, not the others.

mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use slaflow::config::Config;
use slaflow::engine::changelog::{Changes, Item};
use slaflow::engine::correlate::{Correlator, Output};
use slaflow::engine::sla::{SlaEngine, SlaOutput};
use slaflow::model::{AlertEvent, AlertStatus, Event, LatencySample, MaintenanceAction, MaintenanceEvent};
use support::engines::{
    apply_outage, cases, correlate_config, finish_sla, latency, prop_alert, prop_change, sla_contract, step_correlator,
    CIS, M0, MIN, SEC, T0,
};

/// What the store holds of one engine: its head and its items by (kind, key), kept the way
/// `write_checkpoint` keeps them (src/sinks/postgres.rs, src/sinks/sqlite.rs).
#[derive(Debug, Default, Clone)]
struct Rows {
    head: Vec<u8>,
    items: BTreeMap<(String, Vec<u8>), Vec<u8>>,
}

impl Rows {
    fn commit(&mut self, c: Changes) {
        if c.full {
            self.items.clear();
        }
        for key in c.removed {
            self.items.remove(&key);
        }
        for i in c.upserts {
            self.items.insert((i.kind, i.key), i.value);
        }
        self.head = c.head;
    }

    fn items(&self) -> Vec<Item> {
        self.items
            .iter()
            .map(|((kind, key), value)| Item {
                kind: kind.clone(),
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }
}

// ---- correlation ------------------------------------------------------------------------

/// Alerts over a few fingerprints and CIs, changes and source maintenance windows, at
/// increasing times, each with whether a batch ends after it.
fn alert_stream() -> impl Strategy<Value = Vec<(Event, bool)>> {
    let step = (
        0u8..8,
        0u8..4,
        0u8..3,
        0u32..6,
        0u8..14,
        1i64..90,
        prop::bool::weighted(0.3),
    );
    prop::collection::vec(step, 1..120).prop_map(|steps| {
        let mut t = T0;
        steps
            .into_iter()
            .map(|(fp, ci, status, severity, kind, gap, commit)| {
                t += gap * SEC;
                let ci = CIS[usize::from(ci)];
                let event = match kind {
                    0 => prop_change(ci, t),
                    1 => Event::Maintenance(MaintenanceEvent {
                        source: "icinga".into(),
                        window_id: format!("w{}", fp % 3),
                        ci: ci.into(),
                        start_ns: t,
                        end_ns: t + 5 * MIN,
                        action: if status == 0 {
                            MaintenanceAction::Removed
                        } else {
                            MaintenanceAction::Scheduled
                        } as i32,
                        time_ns: t,
                        ..Default::default()
                    }),
                    _ => prop_alert(fp, ci, status, severity, t),
                };
                (event, commit)
            })
            .collect()
    })
}

fn restore_correlator(cfg: &Config, rows: &Rows) -> Correlator {
    Correlator::restore_items(&cfg.correlate, cfg.catalog(), &rows.head, &rows.items()).unwrap()
}

/// Runs `events`, committing after each marked one, crashing after each event index in
/// `crashes` the first time it is reached: (committed outputs, final engine, final rows).
fn correlate_with_crashes(cfg: &Config, events: &[(Event, bool)], crashes: &[bool]) -> (Vec<Output>, Correlator) {
    let mut engine = Correlator::new(&cfg.correlate, cfg.catalog()).unwrap();
    let mut rows = Rows::default();
    let (mut committed, mut pending) = (Vec::new(), Vec::new());
    let (mut next, mut resume_at, mut crashed_up_to) = (0usize, 0usize, 0usize);
    while next < events.len() {
        let (event, commit) = &events[next];
        step_correlator(&mut engine, event.clone(), &mut pending);
        next += 1;
        if *commit {
            rows.commit(engine.take_changes());
            committed.append(&mut pending);
            resume_at = next;
            assert_eq!(
                restore_correlator(cfg, &rows).snapshot(),
                engine.snapshot(),
                "rows after event {next}"
            );
        }
        if crashes[next - 1] && next > crashed_up_to {
            // Killed: what was not committed is lost; the input is read again from there.
            crashed_up_to = next;
            pending.clear();
            engine = if rows.head.is_empty() {
                Correlator::new(&cfg.correlate, cfg.catalog()).unwrap()
            } else {
                restore_correlator(cfg, &rows)
            };
            next = resume_at;
        }
    }
    engine.flush(&mut pending);
    committed.append(&mut pending);
    rows.commit(engine.take_changes());
    assert_eq!(
        restore_correlator(cfg, &rows).snapshot(),
        engine.snapshot(),
        "final rows"
    );
    (committed, engine)
}

// ---- SLA ----------------------------------------------------------------------------------

/// Three contracts, of `a`, `b` and `c`, with the shared objectives and outage alerts.
fn sla_config() -> Config {
    let mut text = String::from("[sla]\nallowed_lateness = \"1m\"\nemit_windows = [\"hour\", \"day\", \"month\"]\n");
    for service in SERVICES {
        text.push_str(&sla_contract(service, "outage_alerts = [\"down\"]", ""));
    }
    Config::parse(std::path::Path::new("props.toml"), &text).unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    Sample {
        service: u8,
        op: bool,
        duration_ms: i64,
        error: bool,
    },
    Outage {
        service: u8,
        minutes: i64,
    },
    /// An outage alert firing (true) or resolving, of one of two fingerprints.
    Alert {
        service: u8,
        fp: u8,
        firing: bool,
    },
    /// A sample of a service without a contract.
    Stranger,
}

/// Steps over about five weeks (months and days close), each with whether a batch ends after.
fn sla_stream() -> impl Strategy<Value = Vec<(i64, Step, bool)>> {
    let step = prop_oneof![
        8 => (0u8..3, any::<bool>(), 1i64..2000, prop::bool::weighted(0.1))
            .prop_map(|(service, op, duration_ms, error)| Step::Sample { service, op, duration_ms, error }),
        1 => (0u8..3, 1i64..90).prop_map(|(service, minutes)| Step::Outage { service, minutes }),
        1 => (0u8..3, 0u8..2, any::<bool>()).prop_map(|(service, fp, firing)| Step::Alert { service, fp, firing }),
        1 => Just(Step::Stranger),
    ];
    prop::collection::vec((1i64..600, step, prop::bool::weighted(0.3)), 1..120).prop_map(|steps| {
        let mut t = M0;
        steps
            .into_iter()
            .map(|(gap, s, commit)| {
                t += gap * MIN / 3;
                (t, s, commit)
            })
            .collect()
    })
}

const SERVICES: [&str; 3] = ["a", "b", "c"];

fn apply_step(engine: &mut SlaEngine, index: usize, (t, step): (i64, &Step), out: &mut Vec<SlaOutput>) {
    match step {
        Step::Sample {
            service,
            op,
            duration_ms,
            error,
        } => engine.apply(
            &latency(SERVICES[usize::from(*service)], *op, t, *duration_ms, *error),
            out,
        ),
        Step::Stranger => {
            let sample = LatencySample {
                service: "nobody".into(),
                time_ns: t,
                duration_ns: 1,
                ..Default::default()
            };
            engine.apply(&Event::Sample(sample), out);
        }
        Step::Outage { service, minutes } => apply_outage(
            engine,
            format!("INC-{index}"),
            SERVICES[usize::from(*service)],
            t,
            *minutes,
        ),
        Step::Alert { service, fp, firing } => {
            let alert = AlertEvent {
                source: "am".into(),
                fingerprint: format!("f{fp}"),
                service: SERVICES[usize::from(*service)].into(),
                alert_name: "down".into(),
                status: if *firing {
                    AlertStatus::Firing
                } else {
                    AlertStatus::Resolved
                } as i32,
                time_ns: t,
                ..Default::default()
            };
            engine.apply(&Event::Alert(alert), out);
        }
    }
    engine.advance(t, out);
}

fn restore_sla(cfg: &Config, rows: &Rows) -> SlaEngine {
    SlaEngine::restore_items(&cfg.sla, &cfg.correlate, cfg.catalog(), &rows.head, &rows.items()).unwrap()
}

fn new_sla(cfg: &Config) -> SlaEngine {
    SlaEngine::new(&cfg.sla, &cfg.correlate, cfg.catalog()).unwrap()
}

/// As `correlate_with_crashes`, for the SLA engine.
fn sla_with_crashes(cfg: &Config, steps: &[(i64, Step, bool)], crashes: &[bool]) -> (Vec<SlaOutput>, SlaEngine) {
    let mut engine = new_sla(cfg);
    let mut rows = Rows::default();
    let (mut committed, mut pending) = (Vec::new(), Vec::new());
    let (mut next, mut resume_at, mut crashed_up_to) = (0usize, 0usize, 0usize);
    while next < steps.len() {
        let (t, step, commit) = &steps[next];
        apply_step(&mut engine, next, (*t, step), &mut pending);
        next += 1;
        if *commit {
            rows.commit(engine.take_changes());
            committed.append(&mut pending);
            resume_at = next;
            assert_eq!(
                restore_sla(cfg, &rows).snapshot(),
                engine.snapshot(),
                "rows after step {next}"
            );
        }
        if crashes[next - 1] && next > crashed_up_to {
            crashed_up_to = next;
            pending.clear();
            engine = if rows.head.is_empty() {
                new_sla(cfg)
            } else {
                restore_sla(cfg, &rows)
            };
            next = resume_at;
        }
    }
    finish_sla(&mut engine, steps.last().map(|s| s.0), &mut pending);
    committed.append(&mut pending);
    rows.commit(engine.take_changes());
    assert_eq!(restore_sla(cfg, &rows).snapshot(), engine.snapshot(), "final rows");
    (committed, engine)
}

/// SLA cases replay weeks of minutes, and every commit is checked by a restore: 12 by
/// default (about 2 min in a debug build on a shared machine); PROPTEST_CASES=N runs more.
const SLA_CASES: u32 = 12;

proptest! {
    #[test]
    fn correlation_crash_anywhere_restore_from_rows_equals_uninterrupted(
        events in alert_stream(),
        crashes in prop::collection::vec(prop::bool::weighted(0.1), 120),
    ) {
        let cfg = correlate_config("");
        let mut calm = Correlator::new(&cfg.correlate, cfg.catalog()).unwrap();
        let mut expected = Vec::new();
        for (e, _) in &events {
            step_correlator(&mut calm, e.clone(), &mut expected);
        }
        calm.flush(&mut expected);
        let (out, engine) = correlate_with_crashes(&cfg, &events, &crashes);
        prop_assert_eq!(out, expected);
        prop_assert_eq!(engine.snapshot(), calm.snapshot());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(SLA_CASES)))]

    #[test]
    fn sla_crash_anywhere_restore_from_rows_equals_uninterrupted(
        steps in sla_stream(),
        crashes in prop::collection::vec(prop::bool::weighted(0.1), 120),
    ) {
        let cfg = sla_config();
        let mut calm = new_sla(&cfg);
        let mut expected = Vec::new();
        for (i, (t, s, _)) in steps.iter().enumerate() {
            apply_step(&mut calm, i, (*t, s), &mut expected);
        }
        finish_sla(&mut calm, steps.last().map(|s| s.0), &mut expected);
        let (out, engine) = sla_with_crashes(&cfg, &steps, &crashes);
        prop_assert_eq!(out, expected);
        prop_assert_eq!(engine.snapshot(), calm.snapshot());
    }
}

// ---- dirty tracking -------------------------------------------------------------------------

fn rows_of<'a>(c: &'a Changes, kind: &str) -> Vec<&'a str> {
    c.upserts
        .iter()
        .filter(|i| i.kind == kind)
        .map(|i| std::str::from_utf8(&i.key).unwrap_or("?"))
        .collect()
}

fn firing(fp: &str, ci: &str, t: i64) -> Event {
    Event::Alert(AlertEvent {
        source: "prop".into(),
        fingerprint: fp.into(),
        ci: ci.into(),
        alert_name: fp.into(),
        severity: 3,
        status: AlertStatus::Firing as i32,
        time_ns: t,
        ..Default::default()
    })
}

#[test]
fn a_duplicate_of_one_alert_writes_that_alert_row_alone() {
    let cfg = correlate_config("");
    let mut engine = Correlator::new(&cfg.correlate, cfg.catalog()).unwrap();
    let mut out = Vec::new();
    step_correlator(&mut engine, firing("fp1", "web", T0), &mut out);
    step_correlator(&mut engine, firing("fp2", "fw", T0 + SEC), &mut out);
    step_correlator(&mut engine, Event::Alert(AlertEvent::default()), &mut out);
    engine.advance(T0 + 10 * MIN, &mut out);
    let first = engine.take_changes();
    assert!(first.full, "a new engine's first checkpoint lists everything");
    assert_eq!(rows_of(&first, "alert"), ["prop/fp1", "prop/fp2"]);
    assert_eq!(rows_of(&first, "incident").len(), 2);

    engine.apply(firing("fp1", "web", T0 + 11 * MIN), &mut out);
    engine.advance(T0 + 20 * MIN, &mut out);
    let second = engine.take_changes();
    assert!(!second.full);
    assert_eq!(
        rows_of(&second, "alert"),
        ["prop/fp1"],
        "one alert touched, one alert row"
    );
    assert!(
        rows_of(&second, "incident").is_empty(),
        "a duplicate leaves its incident alone"
    );
    assert!(second.removed.is_empty());

    let nothing = engine.take_changes();
    assert!(
        nothing.upserts.is_empty() && nothing.removed.is_empty(),
        "no change, no rows"
    );
}

/// Events held for the allowed lateness are written once, when they arrive, and deleted
/// once, when released: a batch's bytes follow what it brought, not what is held.
#[test]
fn held_events_are_written_when_pushed_and_deleted_when_released_not_per_batch() {
    let cfg = correlate_config("");
    let mut engine = Correlator::new(&cfg.correlate, cfg.catalog()).unwrap();
    let mut out = Vec::new();
    for i in 0..1000 {
        engine.apply(firing(&format!("fp{i}"), "web", T0 + i * SEC / 10), &mut out);
    }
    engine.advance(T0 + 100 * SEC, &mut out);
    let first = engine.take_changes();
    assert_eq!(
        rows_of(&first, "held").len(),
        1000,
        "all within the lateness (120 s): held"
    );
    engine.apply(firing("late-comer", "web", T0 + 100 * SEC), &mut out);
    engine.advance(T0 + 100 * SEC, &mut out);
    let second = engine.take_changes();
    assert_eq!(rows_of(&second, "held").len(), 1, "the one event this batch brought");
    assert!(second.removed.is_empty());
    assert!(second.bytes() < 1000, "{} bytes for one held event", second.bytes());
    assert_eq!(second.head.len(), first.head.len(), "the head does not hold the buffer");
    // Releasing the first half: their rows are deleted, the incidents they open written.
    engine.advance(T0 + 120 * SEC + 50 * SEC, &mut out);
    let third = engine.take_changes();
    let released = third.removed.iter().filter(|(kind, _)| kind == "held").count();
    assert_eq!(released, 501, "events up to T0 + 50 s released");
    assert!(rows_of(&third, "held").is_empty());
}

/// An alert joining an incident of a thousand writes its own rows and the incident's head,
/// not the thousand alerts already in it: the cost follows what changed.
#[test]
fn an_alert_joining_a_large_incident_writes_its_rows_not_the_incidents_other_alerts() {
    let text = "[correlate]\nallowed_lateness = \"0s\"\n[[services]]\nid = \"shop\"\ncis = [\"web\"]\n";
    let cfg = Config::parse(std::path::Path::new("big.toml"), text).unwrap();
    let mut engine = Correlator::new(&cfg.correlate, cfg.catalog()).unwrap();
    let mut out = Vec::new();
    for i in 0..1000 {
        step_correlator(
            &mut engine,
            firing(&format!("fp{i}"), "web", T0 + i * SEC / 100),
            &mut out,
        );
    }
    let first = engine.take_changes();
    assert_eq!(
        rows_of(&first, "incident").len(),
        1,
        "one incident: {:?}",
        rows_of(&first, "incident")
    );
    assert_eq!(
        (rows_of(&first, "member").len(), rows_of(&first, "firing").len()),
        (1000, 1000)
    );
    step_correlator(&mut engine, firing("newcomer", "web", T0 + 20 * SEC), &mut out);
    let second = engine.take_changes();
    let kinds: Vec<&str> = second.upserts.iter().map(|i| i.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["alert", "incident", "member", "firing"],
        "the newcomer's rows and the head"
    );
    assert!(second.bytes() < 1000, "{} bytes", second.bytes());
    let mut rows = Rows::default();
    rows.commit(first);
    rows.commit(second);
    let back = restore_correlator(&cfg, &rows);
    assert_eq!(
        back.snapshot(),
        engine.snapshot(),
        "the rows restore the incident with all its alerts"
    );
}

fn sample(service: &str, t: i64) -> Event {
    latency(service, true, t, 100, false)
}

#[test]
fn a_sample_of_one_service_writes_that_service_row_alone_and_an_idle_clock_none() {
    let cfg = sla_config();
    let mut engine = new_sla(&cfg);
    let mut out = Vec::new();
    for s in SERVICES {
        engine.apply(&sample(s, M0), &mut out);
    }
    engine.advance(M0 + 3 * MIN, &mut out);
    let first = engine.take_changes();
    assert_eq!(rows_of(&first, "service"), SERVICES);

    // Minutes pass with nothing due in any service: walked, not changed.
    engine.advance(M0 + 20 * MIN, &mut out);
    let idle = engine.take_changes();
    assert!(rows_of(&idle, "service").is_empty(), "{:?}", rows_of(&idle, "service"));

    engine.apply(&sample("b", M0 + 21 * MIN), &mut out);
    let second = engine.take_changes();
    assert_eq!(
        rows_of(&second, "service"),
        ["b"],
        "one service touched, one service row"
    );

    // The rows restore the engine exactly, the walked services' clocks included.
    let mut rows = Rows::default();
    for c in [first, idle, second] {
        rows.commit(c);
    }
    assert_eq!(restore_sla(&cfg, &rows).snapshot(), engine.snapshot());
}
