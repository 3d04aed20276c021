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

/// Both engines wired together, as every path runs them (replay, Kafka workers, HTTP
/// ingest): correlation records feed the SLA engine (incidents at a contract's outage
/// priority are downtime), whose clock runs behind by the correlation lateness so that an
/// incident reaches it before the minutes it covers are judged.
pub struct Engines {
    pub correlator: Correlator,
    pub sla: SlaEngine,
    behind: i64,
    sla_lateness: i64,
    last: i64,
    incidents: Vec<Output>,
    sla_out: Vec<SlaOutput>,
}

impl Engines {
    /// Engines with no state.
    pub fn new(config: &Config) -> Result<Engines, ReplayError> {
        Ok(Engines::from_parts(
            config,
            Correlator::new(config)?,
            SlaEngine::new(config)?,
        ))
    }

    /// Engines restored from their snapshots, with the watermark they had.
    pub fn restore(config: &Config, correlate: &[u8], sla: &[u8]) -> Result<Engines, ReplayError> {
        let mut engines = Engines::from_parts(
            config,
            Correlator::restore(config, correlate)?,
            SlaEngine::restore(config, sla)?,
        );
        engines.last = engines.correlator.watermark();
        Ok(engines)
    }

    fn from_parts(config: &Config, correlator: Correlator, sla: SlaEngine) -> Engines {
        let ns = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Engines {
            correlator,
            sla,
            behind: ns(config.correlate.allowed_lateness),
            sla_lateness: ns(config.sla.allowed_lateness),
            last: i64::MIN,
            incidents: Vec::new(),
            sla_out: Vec::new(),
        }
    }

    /// Both snapshots (correlation, SLA).
    pub fn snapshot(&self) -> (Vec<u8>, Vec<u8>) {
        (self.correlator.snapshot(), self.sla.snapshot())
    }

    /// Processes one event, the watermark being the latest event time seen.
    pub fn process(&mut self, event: Event, emit: &mut impl FnMut(Record)) {
        let t = event_time(&event);
        self.last = self.last.max(t);
        self.sla.apply(&event, &mut self.sla_out);
        self.correlator.apply(event, &mut self.incidents);
        self.correlator.advance(self.last, &mut self.incidents);
        self.forward(emit);
        self.sla
            .advance(self.last.saturating_sub(self.behind), &mut self.sla_out);
        self.forward(emit);
    }

    /// End of input: processes what the correlation engine still holds, and moves the SLA
    /// clock to `until` (or the last event) so every window up to there closes.
    pub fn finish(&mut self, until: Option<i64>, emit: &mut impl FnMut(Record)) {
        self.correlator.flush(&mut self.incidents);
        self.forward(emit);
        let end = until.unwrap_or(self.last).max(self.last);
        if end > i64::MIN {
            self.sla
                .advance(end.saturating_add(self.sla_lateness), &mut self.sla_out);
        }
        self.forward(emit);
    }

    /// Releases the events the correlation engine holds for reordering, without moving the
    /// SLA clock: for a stream that went idle (its last events would otherwise wait for newer
    /// ones). An event that then arrives older than those is processed as late.
    pub fn release_held(&mut self, emit: &mut impl FnMut(Record)) -> bool {
        if !self.correlator.has_pending() {
            return false;
        }
        self.correlator.flush(&mut self.incidents);
        self.forward(emit);
        true
    }

    /// Time of the last event processed.
    pub fn last_event_ns(&self) -> Option<i64> {
        (self.last > i64::MIN).then_some(self.last)
    }

    fn forward(&mut self, emit: &mut impl FnMut(Record)) {
        for record in self.incidents.drain(..) {
            self.sla.apply_correlation(&record);
            emit(Record::Correlate(record));
        }
        for record in self.sla_out.drain(..) {
            emit(Record::Sla(record));
        }
    }
}

/// Replays `inputs` through both engines in event-time order, handing every output record to
/// `emit`. At the end, the clock is `until` when given (to close a month, say), else the
/// last event's time.
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
    let mut engines = Engines::new(config)?;
    let mut sink = |record: Record| emit(&record);
    for event in events {
        engines.process(event, &mut sink);
    }
    engines.finish(until, &mut sink);
    summary.correlate = engines.correlator.stats().clone();
    summary.sla = engines.sla.stats().clone();
    summary.last_event_ns = engines.last_event_ns();
    Ok((summary, engines.sla))
}
