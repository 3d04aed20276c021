//! Replay: recorded files → decoders → engines, in event-time order. The dry run operators
//! use to try their rules on a recorded stream, and the test bed of the whole data path.

use std::path::PathBuf;

use crate::config::Config;
use crate::decode::{DecodeError, Decoders, Format};
use crate::engine::correlate::{CorrelateError, Correlator, Output, Stats};
use crate::engine::reorder::event_time;
use crate::engine::sla::{SlaEngine, SlaError, SlaOutput, SlaStats};
use crate::model::Event;
use crate::sources::file;

/// One input file and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub format: Format,
    pub path: PathBuf,
}

/// A record that was rejected, with where it came from.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub path: PathBuf,
    pub error: DecodeError,
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub records: u64,
    pub events: u64,
    pub rejected: Vec<Rejected>,
    pub correlate: Stats,
    pub sla: SlaStats,
    /// Time of the last event, if there was one.
    pub last_event_ns: Option<i64>,
}

/// One output record of either engine; both carry their own `type`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Record {
    Correlate(Output),
    Sla(SlaOutput),
}

/// A replay that could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Correlate(#[from] CorrelateError),
    #[error(transparent)]
    Sla(#[from] SlaError),
}

/// Decodes `inputs` and reads every event of every input into memory, stamping events that
/// carry no time (`time_ns == 0`) with the latest time seen before them in their file, the
/// best stand-in for a receive time that a recording has.
pub fn read_events(decoders: &Decoders, inputs: &[Input], summary: &mut Summary) -> Result<Vec<Event>, ReplayError> {
    let mut events = Vec::new();
    for input in inputs {
        let content = std::fs::read(&input.path).map_err(|source| ReplayError::Read {
            path: input.path.clone(),
            source,
        })?;
        let mut latest = 0i64;
        for record in file::records(&content, input.format.framing()) {
            summary.records += 1;
            match decoders.decode(input.format, record.bytes) {
                Ok(decoded) => {
                    for mut event in decoded {
                        stamp(&mut event, latest);
                        latest = latest.max(event_time(&event));
                        events.push(event);
                    }
                }
                Err(error) => summary.rejected.push(Rejected {
                    path: input.path.clone(),
                    error: error.at_line(record.line),
                }),
            }
        }
    }
    summary.events = events.len() as u64;
    Ok(events)
}

fn stamp(event: &mut Event, now: i64) {
    match event {
        Event::Alert(a) if a.time_ns == 0 => a.time_ns = now,
        Event::Sample(s) if s.time_ns == 0 => s.time_ns = now,
        _ => {}
    }
}

/// Replays `inputs` through both engines in event-time order, handing every output record to
/// `emit`. Correlation records feed the SLA engine (incidents at a contract's outage priority
/// are downtime), whose clock runs behind by the correlation lateness so that an incident
/// reaches it before the minutes it covers are judged. At the end, the clock is `until` when
/// given (to close a month, say), else the last event's time.
pub fn replay(
    config: &Config,
    inputs: &[Input],
    until: Option<i64>,
    mut emit: impl FnMut(&Record),
) -> Result<(Summary, SlaEngine), ReplayError> {
    let decoders = Decoders::new(config.decoders.clone());
    let mut summary = Summary::default();
    let mut events = read_events(&decoders, inputs, &mut summary)?;
    // Files are recorded per source; the engines want one stream in event-time order.
    events.sort_by_key(event_time);
    let mut correlator = Correlator::new(config)?;
    let mut sla = SlaEngine::new(config)?;
    let behind = i64::try_from(config.correlate.allowed_lateness.as_nanos()).unwrap_or(i64::MAX);
    let mut incidents = Vec::new();
    let mut sla_out = Vec::new();
    let mut last = i64::MIN;
    let mut forward = |incidents: &mut Vec<Output>, sla: &mut SlaEngine, sla_out: &mut Vec<SlaOutput>| {
        for record in incidents.drain(..) {
            sla.apply_correlation(&record);
            emit(&Record::Correlate(record));
        }
        for record in sla_out.drain(..) {
            emit(&Record::Sla(record));
        }
    };
    for event in events {
        let t = event_time(&event);
        last = last.max(t);
        sla.apply(&event, &mut sla_out);
        correlator.apply(event, &mut incidents);
        correlator.advance(t, &mut incidents);
        forward(&mut incidents, &mut sla, &mut sla_out);
        sla.advance(t.saturating_sub(behind), &mut sla_out);
        forward(&mut incidents, &mut sla, &mut sla_out);
    }
    correlator.flush(&mut incidents);
    forward(&mut incidents, &mut sla, &mut sla_out);
    let end = until.unwrap_or(last).max(last);
    if end > i64::MIN {
        let lateness = i64::try_from(config.sla.allowed_lateness.as_nanos()).unwrap_or(i64::MAX);
        sla.advance(end.saturating_add(lateness), &mut sla_out);
    }
    forward(&mut incidents, &mut sla, &mut sla_out);
    summary.correlate = correlator.stats().clone();
    summary.sla = sla.stats().clone();
    summary.last_event_ns = (last > i64::MIN).then_some(last);
    Ok((summary, sla))
}
