//! Replay: recorded files → decoders → engines, in event-time order. The dry run operators
//! use to try their rules on a recorded stream, and the test bed of the whole data path.

use std::path::PathBuf;

use crate::config::Config;
use crate::decode::{DecodeError, Decoders, Format};
use crate::engine::correlate::{CorrelateError, Correlator, Output, Stats};
use crate::engine::reorder::event_time;
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
}

/// A replay that could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Engine(#[from] CorrelateError),
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

/// Replays `inputs` through the correlation engine in event-time order, handing every
/// output record to `emit`.
pub fn replay(config: &Config, inputs: &[Input], mut emit: impl FnMut(&Output)) -> Result<Summary, ReplayError> {
    let decoders = Decoders::new(config.decoders.clone());
    let mut summary = Summary::default();
    let mut events = read_events(&decoders, inputs, &mut summary)?;
    // Files are recorded per source; the engines want one stream in event-time order.
    events.sort_by_key(event_time);
    let mut correlator = Correlator::new(config)?;
    let mut out = Vec::new();
    for event in events {
        let t = event_time(&event);
        correlator.apply(event, &mut out);
        correlator.advance(t, &mut out);
        out.drain(..).for_each(|o| emit(&o));
    }
    correlator.flush(&mut out);
    out.drain(..).for_each(|o| emit(&o));
    summary.correlate = correlator.stats().clone();
    Ok(summary)
}
