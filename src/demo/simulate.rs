//! The month through the real path: the generated payloads decoded by the real decoders and
//! the events run through both engines in event-time order (`Simulation`: the records and
//! the counts). It needs no store and no server, so that the same month can be simulated
//! (and its records inspected) apart from the async run.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::payloads::Payload;
use super::scenario::Scenario;
use super::DemoError;
use crate::config::Config;
use crate::decode::{Decoders, Format};
use crate::engine::correlate::Stats;
use crate::engine::reorder::event_time;
use crate::engine::sla::SlaStats;
use crate::model::Event;
use crate::replay::{Engines, Record};

/// What the engines made of the month.
#[derive(Debug, Clone, Default)]
pub struct Simulation {
    pub records: Vec<Record>,
    /// Payloads per format.
    pub payloads: BTreeMap<Format, u64>,
    /// Events per format.
    pub events: BTreeMap<Format, u64>,
    pub correlate: Stats,
    pub sla: SlaStats,
}

/// Generates the month's payloads, decodes each with the real decoders, and runs the events
/// through both engines in event-time order, up to the month's end so that it closes.
/// Events are sorted a day at a time: a day's payloads hold only that day's spans, and alerts
/// join the day their event time falls in, so the order is `replay`'s global sort without a
/// month of events in memory. `progress` is told each day done.
pub fn simulate(config: &Config, scenario: &Scenario, progress: &dyn Fn(u64)) -> Result<Simulation, DemoError> {
    let decoders = Decoders::new(config.decoders.clone());
    let mut sim = Simulation::default();
    let mut alerts = Vec::new();
    for payload in scenario.alert_payloads() {
        alerts.extend(decode(&decoders, payload, &mut sim)?);
    }
    alerts.sort_by_key(event_time);
    let mut alerts = alerts.into_iter().peekable();
    let mut engines = Engines::new(config)?;
    let mut records = Vec::new();
    let mut emit = |r: Record| records.push(r);
    for (done, (from, to)) in scenario.days().into_iter().enumerate() {
        let mut events = Vec::new();
        for payload in scenario.apm_payloads(from, to) {
            events.extend(decode(&decoders, payload, &mut sim)?);
        }
        while let Some(alert) = alerts.next_if(|e| event_time(e) < to) {
            events.push(alert);
        }
        events.sort_by_key(event_time);
        for event in events {
            engines.process(event, &mut emit);
        }
        progress(done as u64 + 1);
    }
    for event in alerts {
        engines.process(event, &mut emit);
    }
    engines.finish(Some(scenario.end_ns), &mut emit);
    sim.records = records;
    sim.correlate = engines.correlator.stats().clone();
    sim.sla = engines.sla.stats().clone();
    Ok(sim)
}

/// Decodes one generated payload and counts it. The generated payloads are all good, so a
/// rejected item or an event without a time is an error here (a bug in the generator).
fn decode(decoders: &Decoders, payload: Payload, sim: &mut Simulation) -> Result<Vec<Event>, DemoError> {
    let events = decoders
        .decode(payload.format, &payload.bytes)
        .map_err(|error| DemoError::Decode {
            format: payload.format,
            error,
        })?;
    if let Some(item) = events.rejected.first() {
        return Err(DemoError::Decode {
            format: payload.format,
            error: item.error.clone(),
        });
    }
    let events = events.events;
    *sim.payloads.entry(payload.format).or_default() += 1;
    *sim.events.entry(payload.format).or_default() += events.len() as u64;
    if let Some(e) = events.iter().find(|e| event_time(e) == 0) {
        // A zero would sort first.
        return Err(DemoError::Script(format!(
            "a {} payload decoded to an event without a time: {}",
            payload.format,
            serde_json::to_string(e).unwrap_or_default()
        )));
    }
    Ok(events)
}

/// `simulate` on the blocking pool, so that the server keeps answering meanwhile, with a
/// progress bar of the days done.
pub(super) async fn in_background(config: &Arc<Config>, scenario: &Scenario) -> Result<Simulation, DemoError> {
    let bar = crate::term::progress_bar(
        scenario.days.len() as u64,
        "{spinner} day {pos}/{len} [{bar:31}] {elapsed}",
    );
    let sim = {
        let (config, scenario, bar) = (config.clone(), scenario.clone(), bar.clone());
        tokio::task::spawn_blocking(move || simulate(&config, &scenario, &|done| bar.set_position(done)))
            .await
            .map_err(|e| DemoError::Task(format!("the generator stopped: {e}")))??
    };
    bar.finish_and_clear();
    Ok(sim)
}
