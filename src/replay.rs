//! Replay: recorded files → decoders → engines, in the order given (or in event-time order).
//! The dry run operators use to try their rules on a recorded stream, and the test bed of
//! the whole data path: the same records as the service gives for the same arrivals.
//! In arrival order the files are streamed (`stream`); `--order event-time` sorts every
//! event and so holds the recording, as `read_events` reads it.

mod stream;

use std::path::PathBuf;

use crate::config::Config;
use crate::decode::admit::TimeBounds;
use crate::decode::{DeadPart, DecodeError, Decoders, Format};
use crate::engine::changelog::{Changes, Item};
use crate::engine::correlate::{CorrelateError, Correlator, Output, Stats};
use crate::engine::reorder::event_time;
use crate::engine::sla::{SlaEngine, SlaError, SlaOutput, SlaStats};
use crate::model::Event;
use crate::sinks::DeadLetter;
use crate::sources::file::{self, FileError};

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
    /// Events decoded but refused at admission (a value over a limit, a time out of
    /// bounds): kept as dead letters.
    pub refused: u64,
    /// What of the rejected records is kept, as the service keeps it (`decode::dead_part`):
    /// origin the file, offset its line.
    pub dead_letters: Vec<DeadLetter>,
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
    /// An input file could not be opened or read (file, and line and offset when read).
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Correlate(#[from] CorrelateError),
    #[error(transparent)]
    Sla(#[from] SlaError),
}

/// The clock each input file feeds: one per format, numbered in order of first appearance,
/// as the service has one per format on its HTTP path and one per topic on Kafka. Files of
/// one format are one source, its records arriving in the order the files are named.
pub fn clocks(inputs: &[Input]) -> Vec<usize> {
    let mut formats: Vec<Format> = Vec::new();
    inputs
        .iter()
        .map(|input| match formats.iter().position(|f| *f == input.format) {
            Some(i) => i,
            None => {
                formats.push(input.format);
                formats.len() - 1
            }
        })
        .collect()
}

/// Decodes `inputs` and reads every event of every input into memory, in order, each with
/// the index of its clock (`clocks`), stamping events that carry no time (`time_ns == 0`)
/// with the latest time seen before them in their file, the best stand-in for a receive
/// time that a recording has. The events are then judged by `bounds` against the
/// recording's own times (`admit_recorded`). Rejected records and items go to `summary`,
/// with the dead letters the service would keep of them.
pub fn read_events(
    decoders: &Decoders,
    bounds: &TimeBounds,
    inputs: &[Input],
    summary: &mut Summary,
) -> Result<Vec<(usize, Event)>, ReplayError> {
    let mut arrivals = Vec::new();
    for (i, (input, clock)) in inputs.iter().zip(clocks(inputs)).enumerate() {
        let content = std::fs::read(&input.path).map_err(|source| FileError::Open {
            path: input.path.clone(),
            source,
        })?;
        let mut latest = 0i64;
        for record in file::records(&content, input.format.framing()) {
            summary.records += 1;
            let decoded = decoders.decode(input.format, record.bytes);
            let dead = crate::decode::dead_parts(input.format, record.bytes, &decoded);
            // The record's parts of reading are 0, 1, ...; its part of judging, if any,
            // the next (`Arrival::dead_parts`).
            let dead_parts = i32::try_from(dead.len()).unwrap_or(i32::MAX);
            for (seq, part) in (0..).zip(dead) {
                summary.dead_letters.push(dead_letter(input, record.line, part, seq));
            }
            match decoded {
                Ok(decoded) => {
                    summary.refused += decoded.refused.len() as u64;
                    for item in decoded.rejected {
                        summary.rejected.push(Rejected {
                            path: input.path.clone(),
                            error: item.error.at_line(record.line),
                        });
                    }
                    let mut events = decoded.events;
                    for event in &mut events {
                        crate::decode::admit::stamp(event, latest);
                        latest = latest.max(event_time(event));
                    }
                    arrivals.push(Arrival {
                        clock,
                        input: i,
                        line: record.line,
                        dead_parts,
                        events,
                    });
                }
                Err(error) => summary.rejected.push(Rejected {
                    path: input.path.clone(),
                    error: error.at_line(record.line),
                }),
            }
        }
    }
    let events = admit_recorded(bounds, inputs, arrivals, summary);
    summary.events = events.len() as u64;
    Ok(events)
}

/// One record's events as read, before admission.
struct Arrival {
    clock: usize,
    input: usize,
    line: u64,
    /// The record's dead parts of reading (rejected items, events refused by the limits):
    /// its dead letter of judging is numbered after them.
    dead_parts: i32,
    events: Vec<Event>,
}

/// Judges each record's events against the recording's own times, as the service judges
/// them against their receive time. A recording has no receive times, so a record's
/// stand-in is its source's records around it: an event is too far ahead when it is more
/// than `max_future` past both the latest event its source had before it and the source's
/// next record. A source that went quiet for days comes back at the new time and stays
/// there; a host with a broken clock does not. Only a later record of the same source can
/// show that (other sources may run ahead or behind, as they may live), so a source's last
/// record stands. A firing alert is re-timed against the latest event its source had
/// before it, as it would be against its receive time.
fn admit_recorded(
    bounds: &TimeBounds,
    inputs: &[Input],
    arrivals: Vec<Arrival>,
    summary: &mut Summary,
) -> Vec<(usize, Event)> {
    // The latest event time of each arrival's next record of its source.
    let mut next = vec![None; arrivals.len()];
    let mut ahead: Vec<Option<i64>> = Vec::new();
    for (i, a) in arrivals.iter().enumerate().rev() {
        if ahead.len() <= a.clock {
            ahead.resize(a.clock + 1, None);
        }
        next[i] = ahead[a.clock];
        if let Some(t) = a.events.iter().map(event_time).max() {
            ahead[a.clock] = Some(t);
        }
    }
    let mut before: Vec<Option<i64>> = Vec::new();
    let mut events = Vec::new();
    for (a, next) in arrivals.into_iter().zip(next) {
        if before.len() <= a.clock {
            before.resize(a.clock + 1, None);
        }
        let prev = before[a.clock];
        let reference = next.map_or(i64::MAX, |n| prev.map_or(n, |p| p.max(n)));
        let (kept, refused) = bounds.admit_judged(a.events, reference, prev);
        if !refused.is_empty() {
            summary.refused += refused.len() as u64;
            let (payload, reason) = crate::decode::admit::dead_payload(&refused);
            let part = DeadPart {
                format: Format::Protobuf,
                payload,
                reason,
            };
            // After the record's own parts of reading, whatever other records' dead letters
            // were kept since: a record's letters never share a `seq` (the store's key).
            let letter = dead_letter(&inputs[a.input], a.line, part, a.dead_parts);
            summary.dead_letters.push(letter);
        }
        for event in kept {
            let t = event_time(&event);
            before[a.clock] = Some(before[a.clock].map_or(t, |b| b.max(t)));
            events.push((a.clock, event));
        }
    }
    events
}

/// The number of a new dead part of `input` at `line`: how many of the dead letters kept
/// last (`newest_first`) are of the same record.
fn seq_after<'a>(newest_first: impl Iterator<Item = &'a DeadLetter>, input: &Input, line: u64) -> i32 {
    let origin = input.path.display().to_string();
    let same = newest_first
        .take_while(|d| d.origin == origin && d.offset == line as i64)
        .count();
    i32::try_from(same).unwrap_or(i32::MAX)
}

/// The dead letter of `part`, the `seq`-th of the record of `input` at `line`.
fn dead_letter(input: &Input, line: u64, part: DeadPart, seq: i32) -> DeadLetter {
    DeadLetter {
        origin: input.path.display().to_string(),
        partition: -1,
        offset: line as i64,
        seq,
        format: part.format.name().to_string(),
        reason: part.reason,
        payload: part.payload,
        ..DeadLetter::default()
    }
}

/// Both engines wired together, as every path runs them (replay, Kafka workers, HTTP
/// ingest): correlation records feed the SLA engine (incidents at a contract's outage
/// priority are downtime), whose clock runs behind by the correlation lateness so that an
/// incident reaches it before the minutes it covers are judged.
///
/// The clock is the event time of the slowest input (the Kafka worker of a partition
/// number reads that partition of every topic: a service's alerts and its latency). An
/// input that has not spoken yet holds the clock until it does or is declared idle, so
/// that a restarted worker does not judge minutes whose samples sit in a lagging topic.
pub struct Engines {
    pub correlator: Correlator,
    pub sla: SlaEngine,
    behind: i64,
    sla_lateness: i64,
    /// Latest event time seen on any input.
    last: i64,
    /// Where each input is; the clock is the minimum over the inputs that are `At` (the
    /// latest event seen when all are idle).
    inputs: Vec<InputClock>,
    /// The engines' clock: never goes back.
    clock: i64,
    /// The SLA clock's hour, and how many services had state, when running reports were last
    /// emitted.
    reported_hour: Option<(i64, usize)>,
    incidents: Vec<Output>,
    sla_out: Vec<SlaOutput>,
}

/// One input's part in the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputClock {
    /// Nothing seen since start: holds the clock.
    Waiting,
    /// Its latest event time.
    At(i64),
    /// Declared idle: does not hold the clock until it speaks again.
    Idle,
}

impl Engines {
    /// Engines with no state.
    pub fn new(config: &Config) -> Result<Engines, ReplayError> {
        Ok(Engines::from_parts(
            config,
            Correlator::new(&config.correlate, config.catalog())?,
            SlaEngine::new(&config.sla, &config.correlate, config.catalog())?,
        ))
    }

    /// Engines restored from their snapshots, with the watermark they had.
    pub fn restore(config: &Config, correlate: &[u8], sla: &[u8]) -> Result<Engines, ReplayError> {
        let mut engines = Engines::from_parts(
            config,
            Correlator::restore(&config.correlate, config.catalog(), correlate)?,
            SlaEngine::restore(&config.sla, &config.correlate, config.catalog(), sla)?,
        );
        engines.last = engines.correlator.watermark();
        engines.clock = engines.last;
        Ok(engines)
    }

    /// Engines restored from the rows of an incremental checkpoint: each engine's head and
    /// items (`Correlator::restore_items`, `SlaEngine::restore_items`), with the watermark
    /// they had; the same engines as a whole-snapshot restore of the same state.
    pub fn restore_items(
        config: &Config,
        correlate: (&[u8], &[Item]),
        sla: (&[u8], &[Item]),
    ) -> Result<Engines, ReplayError> {
        let catalog = config.catalog();
        let mut engines = Engines::from_parts(
            config,
            Correlator::restore_items(&config.correlate, catalog, correlate.0, correlate.1)?,
            SlaEngine::restore_items(&config.sla, &config.correlate, catalog, sla.0, sla.1)?,
        );
        engines.last = engines.correlator.watermark();
        engines.clock = engines.last;
        Ok(engines)
    }

    /// What both engines changed since the last call (correlation, SLA): the rows a batch
    /// writes for an incremental checkpoint.
    pub fn take_changes(&mut self) -> (Changes, Changes) {
        (self.correlator.take_changes(), self.sla.take_changes())
    }

    /// Restores the latest event time seen (kept with the checkpoint): when every input is
    /// quiet the clock goes there, as it would have without the restart.
    pub fn with_latest_event(mut self, latest: Option<i64>) -> Engines {
        if let Some(t) = latest {
            self.last = self.last.max(t);
        }
        self
    }

    /// Sets the number of inputs (default one), all waiting: the clock moves once each has
    /// spoken or been declared idle.
    pub fn with_inputs(mut self, inputs: usize) -> Engines {
        self.inputs = vec![InputClock::Waiting; inputs.max(1)];
        self
    }

    fn from_parts(config: &Config, correlator: Correlator, sla: SlaEngine) -> Engines {
        let ns = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Engines {
            correlator,
            sla,
            behind: ns(config.correlate.allowed_lateness),
            sla_lateness: ns(config.sla.allowed_lateness),
            last: i64::MIN,
            inputs: vec![InputClock::Waiting],
            clock: i64::MIN,
            reported_hour: None,
            incidents: Vec::new(),
            sla_out: Vec::new(),
        }
    }

    /// Both snapshots (correlation, SLA).
    pub fn snapshot(&self) -> (Vec<u8>, Vec<u8>) {
        (self.correlator.snapshot(), self.sla.snapshot())
    }

    /// Processes one event of the only input, the clock being the latest event time seen.
    pub fn process(&mut self, event: Event, emit: &mut impl FnMut(Record)) {
        self.process_from(0, event, emit);
    }

    /// Processes one event of input `input` (an index below `with_inputs`' count; larger
    /// ones count as the last input).
    pub fn process_from(&mut self, input: usize, event: Event, emit: &mut impl FnMut(Record)) {
        let t = event_time(&event);
        self.last = self.last.max(t);
        let i = input.min(self.inputs.len() - 1);
        self.inputs[i] = match self.inputs[i] {
            InputClock::At(seen) => InputClock::At(seen.max(t)),
            InputClock::Waiting | InputClock::Idle => InputClock::At(t),
        };
        self.sla.apply(&event, &mut self.sla_out);
        // Latency is the SLA engine's alone: held in the correlation engine's reorder buffer
        // it would do nothing there but fill every checkpoint with a lateness' worth of spans.
        if !matches!(event, Event::Sample(_) | Event::Batch(_)) {
            self.correlator.apply(event, &mut self.incidents);
        }
        self.tick(emit);
    }

    /// Declares input `input` idle (caught up, nothing new for a while): it no longer holds
    /// the clock, which may move and close what it held. True when the state changed (the clock
    /// moved or records were emitted).
    pub fn input_idle(&mut self, input: usize, emit: &mut impl FnMut(Record)) -> bool {
        if let Some(clock) = self.inputs.get_mut(input) {
            *clock = InputClock::Idle;
        }
        self.tick_changed(emit)
    }

    /// `tick`, and whether it changed the state: records emitted, or the clock moved. A
    /// moved clock is state even when it emits nothing (it decides what is late next), so
    /// the caller writes it: a checkpoint left at the old clock would restore an engine that
    /// accepts events the uninterrupted one judged late.
    fn tick_changed(&mut self, emit: &mut impl FnMut(Record)) -> bool {
        let before = self.clock;
        let mut emitted = false;
        self.tick(&mut |record| {
            emitted = true;
            emit(record);
        });
        emitted || self.clock != before
    }

    /// Moves both engines to the slowest active input's time.
    fn tick(&mut self, emit: &mut impl FnMut(Record)) {
        if self.inputs.contains(&InputClock::Waiting) {
            return;
        }
        let slowest = self
            .inputs
            .iter()
            .filter_map(|c| match c {
                InputClock::At(t) => Some(*t),
                _ => None,
            })
            .min();
        // Every input idle (caught up): nothing older can come from them but late, so the
        // clock may go to the latest event seen.
        let slowest = slowest.unwrap_or(self.last);
        if slowest == i64::MIN {
            return;
        }
        self.clock = self.clock.max(slowest);
        self.correlator.advance(self.clock, &mut self.incidents);
        self.forward(emit);
        self.sla
            .advance(self.clock.saturating_sub(self.behind), &mut self.sla_out);
        self.forward(emit);
    }

    /// Moves the clock to `t` whatever the inputs say (never back): the wall clock for a
    /// worker whose inputs are all quiet, or an operator closing a month. Every input then
    /// counts as idle until it speaks again. True when the state changed (see `tick_changed`).
    pub fn advance_to(&mut self, t: i64, emit: &mut impl FnMut(Record)) -> bool {
        if t <= self.clock {
            return false;
        }
        for input in &mut self.inputs {
            *input = InputClock::Idle;
        }
        self.last = self.last.max(t);
        self.tick_changed(emit)
    }

    /// The clock that closes everything up to `end` (a month's end): past both engines'
    /// lateness.
    pub fn closing(&self, end: i64) -> i64 {
        end.saturating_add(self.behind).saturating_add(self.sla_lateness)
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

    /// The running month's reports (not yet complete) when the SLA clock entered a new hour
    /// since the last call, or always with `force`: the service stores them with each batch,
    /// so the store answers for the current month, hour by hour, before it closes.
    pub fn running_reports(&mut self, force: bool, emit: &mut impl FnMut(Record)) {
        const HOUR: i64 = 3_600_000_000_000;
        let hour = self.sla.frontier().div_euclid(HOUR);
        // A service that got its first state within the hour is reported too.
        let seen = (hour, self.sla.services());
        if self.sla.frontier() == i64::MIN || (!force && self.reported_hour == Some(seen)) {
            return;
        }
        self.reported_hour = Some(seen);
        for report in self.sla.running_reports() {
            emit(Record::Sla(SlaOutput::MonthlyReport(Box::new(report))));
        }
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

/// The order in which `replay` processes records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// As given, as the service would have received them: files in the order named,
    /// records in file order. Each format is a source with its own clock, as each format is
    /// on the HTTP path and each topic for a partition worker; a source whose last file has
    /// ended no longer holds the clock. Late samples count exactly as in the service.
    #[default]
    Arrival,
    /// All events sorted by event time first: what the records would give had every one
    /// arrived in time.
    EventTime,
}

/// Replays `inputs` through both engines in arrival order, handing every output record to
/// `emit`. At the end, the clock is `until` when given (to close a month, say), else the
/// last event's time.
pub fn replay(
    config: &Config,
    inputs: &[Input],
    until: Option<i64>,
    emit: impl FnMut(&Record),
) -> Result<(Summary, SlaEngine), ReplayError> {
    replay_observed(config, inputs, Order::Arrival, until, emit, |_, _| {})
}

/// `replay` in `order`, telling `progress` (bytes of the input files read, bytes of all of
/// them) every MiB and at the end: what a progress bar shows, and its ETA. In arrival order
/// the files are streamed (`replay_streamed`); in event-time order they are read whole.
pub fn replay_observed(
    config: &Config,
    inputs: &[Input],
    order: Order,
    until: Option<i64>,
    emit: impl FnMut(&Record),
    progress: impl FnMut(u64, u64),
) -> Result<(Summary, SlaEngine), ReplayError> {
    replay_streamed(config, inputs, order, until, file::READ_BUFFER, emit, progress)
}

/// `replay_observed` reading files `chunk` bytes at a time: the records and summary are the
/// same whatever `chunk` is (tests pick tiny ones, so that records straddle reads).
pub fn replay_streamed(
    config: &Config,
    inputs: &[Input],
    order: Order,
    until: Option<i64>,
    chunk: usize,
    mut emit: impl FnMut(&Record),
    mut progress: impl FnMut(u64, u64),
) -> Result<(Summary, SlaEngine), ReplayError> {
    let decoders = Decoders::new(config.decoders.clone());
    let bounds = config.decoders.time_bounds(config.correlate.allowed_lateness);
    let mut summary = Summary::default();
    let mut sink = |record: Record| emit(&record);
    let engines = match order {
        Order::Arrival => {
            let sources = clocks(inputs).into_iter().max().map_or(1, |n| n + 1);
            let mut engines = Engines::new(config)?.with_inputs(sources);
            let reading = stream::Reading {
                decoders: &decoders,
                bounds: &bounds,
                inputs,
                chunk,
            };
            stream::replay_streaming(&reading, &mut engines, &mut summary, &mut sink, &mut progress)?;
            engines
        }
        Order::EventTime => {
            let events = read_events(&decoders, &bounds, inputs, &mut summary)?;
            let engines = process_in_memory(config, inputs, events, order, &mut sink)?;
            let total = inputs.iter().map(|i| file::size(&i.path)).sum();
            progress(total, total);
            engines
        }
    };
    Ok(finish(engines, until, summary, &mut sink))
}

/// The whole-recording replay: every event read into memory first (`read_events`), then
/// processed. What `replay` did before it streamed, kept as the reference the streaming
/// replay is checked against (`tests/streaming.rs`); it holds the whole recording.
pub fn replay_in_memory(
    config: &Config,
    inputs: &[Input],
    order: Order,
    until: Option<i64>,
    mut emit: impl FnMut(&Record),
) -> Result<(Summary, SlaEngine), ReplayError> {
    let decoders = Decoders::new(config.decoders.clone());
    let bounds = config.decoders.time_bounds(config.correlate.allowed_lateness);
    let mut summary = Summary::default();
    let mut sink = |record: Record| emit(&record);
    let events = read_events(&decoders, &bounds, inputs, &mut summary)?;
    let engines = process_in_memory(config, inputs, events, order, &mut sink)?;
    Ok(finish(engines, until, summary, &mut sink))
}

/// Events of `inputs` read whole (each with its source) through fresh engines in `order`:
/// a source ends (no longer holds the clock) after its last event.
fn process_in_memory(
    config: &Config,
    inputs: &[Input],
    mut events: Vec<(usize, Event)>,
    order: Order,
    sink: &mut impl FnMut(Record),
) -> Result<Engines, ReplayError> {
    let mut engines = match order {
        Order::Arrival => {
            let sources = clocks(inputs).into_iter().max().map_or(1, |n| n + 1);
            Engines::new(config)?.with_inputs(sources)
        }
        Order::EventTime => {
            events.sort_by_key(|(_, e)| event_time(e));
            for (input, _) in &mut events {
                *input = 0;
            }
            Engines::new(config)?
        }
    };
    // Where each source's last event is: past it the source has ended, and no longer holds
    // the clock (as a quiet topic is declared idle).
    let mut last_of = Vec::new();
    for (i, (input, _)) in events.iter().enumerate() {
        if last_of.len() <= *input {
            last_of.resize(*input + 1, 0);
        }
        last_of[*input] = i;
    }
    for (i, (input, event)) in events.into_iter().enumerate() {
        engines.process_from(input, event, sink);
        if last_of[input] == i {
            engines.input_idle(input, sink);
        }
    }
    Ok(engines)
}

/// End of input: the engines finish (`Engines::finish`) and the summary takes their stats.
fn finish(
    mut engines: Engines,
    until: Option<i64>,
    mut summary: Summary,
    sink: &mut impl FnMut(Record),
) -> (Summary, SlaEngine) {
    engines.finish(until, sink);
    summary.correlate = engines.correlator.stats().clone();
    summary.sla = engines.sla.stats().clone();
    summary.last_event_ns = engines.last_event_ns();
    (summary, engines.sla)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::model::{LatencySample, Outcome};
    use crate::time::from_rfc3339;

    const MINUTE: i64 = 60_000_000_000;

    fn config() -> Config {
        let text = r#"
[[sla.contracts]]
service = "webshop"

[[sla.contracts.objectives]]
name = "fast"
kind = "latency_percentile"
percentile = 95.0
threshold = "5s"
"#;
        Config::parse(Path::new("t.toml"), text).unwrap()
    }

    fn sample(at: i64) -> Event {
        Event::Sample(LatencySample {
            service: "webshop".into(),
            operation: "checkout".into(),
            time_ns: at,
            duration_ns: 1_000_000,
            outcome: Outcome::Ok as i32,
            status_code: None,
            role: 0,
        })
    }

    fn late(records: &[Record]) -> usize {
        records
            .iter()
            .filter(|r| matches!(r, Record::Sla(SlaOutput::LateSample { .. })))
            .count()
    }

    #[test]
    fn the_clock_waits_for_the_slowest_input() {
        let t0 = from_rfc3339("2026-03-10T10:00:00Z").unwrap();
        let mut engines = Engines::new(&config()).unwrap().with_inputs(2);
        let out = std::cell::RefCell::new(Vec::new());
        let mut emit = |r: Record| out.borrow_mut().push(r);
        // Input 0 runs an hour ahead; input 1 has not spoken: nothing may be judged yet.
        engines.process_from(0, sample(t0 + 60 * MINUTE), &mut emit);
        // Input 1's samples from the start of that hour are on time, not late.
        engines.process_from(1, sample(t0), &mut emit);
        engines.process_from(1, sample(t0 + 30 * MINUTE), &mut emit);
        assert_eq!(late(&out.borrow()), 0, "{out:?}");
        // Once input 1 is idle, input 0 alone drives the clock: the hour closes.
        engines.input_idle(1, &mut emit);
        engines.process_from(0, sample(t0 + 70 * MINUTE), &mut emit);
        let closed = out
            .borrow()
            .iter()
            .filter(|r| matches!(r, Record::Sla(SlaOutput::WindowClosed(w)) if w.start_ns == t0))
            .count();
        assert!(closed >= 1, "the 10:00 hour closed: {out:?}");
        // Now a sample of the closed hour is late.
        engines.process_from(1, sample(t0 + MINUTE), &mut emit);
        assert_eq!(late(&out.borrow()), 1);
    }

    /// How many windows starting at `start_ns` closed in `records`.
    fn closed_at(records: &[Record], start_ns: i64) -> usize {
        records
            .iter()
            .filter(|r| matches!(r, Record::Sla(SlaOutput::WindowClosed(w)) if w.start_ns == start_ns))
            .count()
    }

    #[test]
    fn a_restored_worker_whose_inputs_are_idle_moves_to_the_latest_event_it_had_seen() {
        let t0 = from_rfc3339("2026-03-10T10:00:00Z").unwrap();
        let mut engines = Engines::new(&config()).unwrap().with_inputs(2);
        let mut before = Vec::new();
        // Input 0 is at 10:00 and input 1 at 11:30: the clock is held at 10:00, nothing closes.
        engines.process_from(0, sample(t0), &mut |r| before.push(r));
        engines.process_from(1, sample(t0 + 90 * MINUTE), &mut |r| before.push(r));
        assert_eq!(closed_at(&before, t0), 0);
        let (correlate, sla) = engines.snapshot();
        let latest = engines.last_event_ns();
        // Restarted from that checkpoint, with nothing new to read: both inputs go idle.
        let restore = |latest| {
            let mut engines = Engines::restore(&config(), &correlate, &sla)
                .unwrap()
                .with_latest_event(latest)
                .with_inputs(2);
            let mut after = Vec::new();
            engines.input_idle(0, &mut |r| after.push(r));
            engines.input_idle(1, &mut |r| after.push(r));
            after
        };
        // With the latest event kept, the clock goes to 11:30 as it would have without the
        // restart, and the 10:00 hour closes; without it, the clock stays where it was.
        assert!(closed_at(&restore(latest), t0) >= 1);
        assert_eq!(closed_at(&restore(None), t0), 0);
    }

    #[test]
    fn an_idle_release_that_only_moves_the_clock_is_a_state_change_to_write() {
        let t0 = from_rfc3339("2026-03-10T10:00:00Z").unwrap();
        let mut engines = Engines::new(&config()).unwrap().with_inputs(2);
        let mut out = Vec::new();
        // Input 0 at 10:00, input 1 a minute later: the clock is held at 10:00.
        engines.process_from(0, sample(t0), &mut |r| out.push(r));
        engines.process_from(1, sample(t0 + MINUTE), &mut |r| out.push(r));
        let held = engines.snapshot();
        out.clear();
        // Input 0 goes quiet: the clock moves a minute, closing no window (nothing emitted),
        // yet the state differs and must be written, or a restart would resume behind.
        assert!(engines.input_idle(0, &mut |r| out.push(r)));
        assert!(out.is_empty(), "{out:?}");
        assert_ne!(engines.snapshot(), held);
        // Declaring it idle again moves nothing: no change to write.
        assert!(!engines.input_idle(0, &mut |r| out.push(r)));
    }

    #[test]
    fn when_every_input_is_idle_the_clock_is_the_latest_event() {
        let t0 = from_rfc3339("2026-03-10T10:00:00Z").unwrap();
        let mut engines = Engines::new(&config()).unwrap().with_inputs(2);
        let out = std::cell::RefCell::new(Vec::new());
        let mut emit = |r: Record| out.borrow_mut().push(r);
        engines.process_from(0, sample(t0), &mut emit);
        engines.process_from(1, sample(t0 + 90 * MINUTE), &mut emit);
        // The ahead input goes quiet first, then the behind one: both caught up.
        engines.input_idle(1, &mut emit);
        engines.input_idle(0, &mut emit);
        let closed = out
            .borrow()
            .iter()
            .filter(|r| matches!(r, Record::Sla(SlaOutput::WindowClosed(w)) if w.start_ns == t0))
            .count();
        assert!(closed >= 1, "the 10:00 hour closed once both inputs are idle: {out:?}");
    }

    #[test]
    fn a_single_input_clock_is_the_latest_event() {
        let t0 = from_rfc3339("2026-03-10T10:00:00Z").unwrap();
        let mut engines = Engines::new(&config()).unwrap();
        let out = std::cell::RefCell::new(Vec::new());
        let mut emit = |r: Record| out.borrow_mut().push(r);
        engines.process(sample(t0 + 60 * MINUTE), &mut emit);
        engines.process(sample(t0), &mut emit);
        assert_eq!(late(&out.borrow()), 1, "an hour behind the only input is late");
    }

    /// Live admission: 10 minutes of future, a minute of correlation lateness.
    pub(super) fn live_bounds() -> TimeBounds {
        TimeBounds::new(
            std::time::Duration::from_secs(600),
            std::time::Duration::from_secs(60),
            false,
        )
    }

    #[test]
    fn a_recording_is_judged_by_its_own_times() {
        let t0 = from_rfc3339("2026-03-10T10:00:00Z").unwrap();
        const DAY: i64 = 24 * 60 * MINUTE;
        let bounds = live_bounds();
        let arrival = |clock: usize, line: u64, at: i64| Arrival {
            clock,
            input: 0,
            line,
            dead_parts: 0,
            events: vec![sample(at)],
        };
        let arrivals = vec![
            // Source 0: a host with a broken clock once, between records of the true time.
            arrival(0, 1, t0),
            arrival(0, 2, t0 + 365 * DAY),
            arrival(0, 3, t0 + MINUTE),
            // Source 1: quiet for three days, then back for good; its last record stands.
            arrival(1, 1, t0),
            arrival(1, 2, t0 + 3 * DAY),
            arrival(1, 3, t0 + 3 * DAY + MINUTE),
            arrival(1, 4, t0 + 30 * DAY),
        ];
        let inputs = [Input {
            format: Format::DatadogApm,
            path: "rec.json".into(),
        }];
        let mut summary = Summary::default();
        let kept = admit_recorded(&bounds, &inputs, arrivals, &mut summary);
        let times: Vec<i64> = kept.iter().map(|(_, e)| event_time(e)).collect();
        assert_eq!(
            times,
            [t0, t0 + MINUTE, t0, t0 + 3 * DAY, t0 + 3 * DAY + MINUTE, t0 + 30 * DAY]
        );
        assert_eq!(summary.refused, 1);
        let dead = &summary.dead_letters[0];
        assert_eq!((dead.format.as_str(), dead.offset), ("protobuf", 2));
        assert!(dead.reason.contains("more than max_future = 10m"), "{}", dead.reason);
    }
}

#[cfg(test)]
mod dead_letter_tests {
    use std::path::Path;

    use super::*;

    /// Three Alertmanager files of one source: an alert two years ahead; one a year ahead
    /// and a bad one; one of now and a bad one. Both replays (whole recording and
    /// streamed) number the second record's dead letters 0 (its rejected alert) and 1 (its
    /// refused one), though other records' letters are kept before and between them.
    #[test]
    fn a_record_s_rejected_and_refused_parts_have_distinct_seqs_on_both_paths() {
        let dir = std::env::temp_dir().join(format!("slaflow-replay-seq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let alert = |name: &str, starts: &str| {
            format!(r#"{{"status":"firing","labels":{{"alertname":"{name}"}},"startsAt":"{starts}"}}"#)
        };
        let docs = [
            vec![alert("A", "2028-03-10T10:00:00Z")],
            vec![alert("B", "2027-03-10T10:00:00Z"), alert("C", "soon")],
            vec![alert("D", "2026-03-10T10:00:00Z"), alert("E", "later")],
        ];
        let inputs: Vec<Input> = docs
            .iter()
            .enumerate()
            .map(|(i, alerts)| {
                let path = dir.join(format!("{i}.json"));
                std::fs::write(&path, format!(r#"{{"version":"4","alerts":[{}]}}"#, alerts.join(","))).unwrap();
                Input {
                    format: Format::Alertmanager,
                    path,
                }
            })
            .collect();
        let config = Config::default();
        let keys = |summary: Summary| -> Vec<(String, i64, i32, String)> {
            let file = |d: &DeadLetter| Path::new(&d.origin).file_name().unwrap().to_string_lossy().into_owned();
            let mut keys: Vec<_> = summary
                .dead_letters
                .iter()
                .map(|d| (file(d), d.offset, d.seq, d.format.clone()))
                .collect();
            keys.sort();
            keys
        };
        let whole = replay_in_memory(&config, &inputs, Order::Arrival, None, |_| {})
            .unwrap()
            .0;
        let streamed = replay_streamed(&config, &inputs, Order::Arrival, None, 7, |_| {}, |_, _| {})
            .unwrap()
            .0;
        let expected = [
            ("0.json", 1, 0, "protobuf"),
            ("1.json", 1, 0, "alertmanager"),
            ("1.json", 1, 1, "protobuf"),
            ("2.json", 1, 0, "alertmanager"),
        ]
        .map(|(f, o, s, k)| (f.to_string(), o, s, k.to_string()));
        assert_eq!(keys(whole), expected, "whole recording");
        assert_eq!(keys(streamed), expected, "streamed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod clock_tests {
    use std::path::Path;

    use super::*;
    use crate::engine::sla::Report;
    use crate::model::{LatencySample, Outcome};
    use crate::time::from_rfc3339;

    fn final_reports(records: &[Record]) -> Vec<&Report> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Sla(SlaOutput::MonthlyReport(report)) if report.complete => Some(&**report),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn advancing_the_clock_closes_a_quiet_month_and_never_goes_back() {
        let config = Config::parse(
            Path::new("t.toml"),
            "[[sla.contracts]]\nservice = \"web\"\n[[sla.contracts.objectives]]\nname = \"p95\"\nkind = \"latency_percentile\"\npercentile = 95.0\nthreshold = \"5s\"\n",
        )
        .unwrap();
        let mut engines = Engines::new(&config).unwrap().with_inputs(2);
        let mut records = Vec::new();
        let at = from_rfc3339("2026-10-20T10:00:00Z").unwrap();
        for k in 0..10 {
            let sample = Event::Sample(LatencySample {
                service: "web".into(),
                operation: "GET /".into(),
                time_ns: at + k * 1_000_000_000,
                duration_ns: 200_000_000,
                outcome: Outcome::Ok as i32,
                status_code: None,
                role: 0,
            });
            engines.process_from(0, sample, &mut |r| records.push(r));
        }
        // The second input never spoke: it holds the clock, nothing closes.
        assert!(final_reports(&records).is_empty());
        let end = from_rfc3339("2026-11-01T00:00:00Z").unwrap();
        // Short of the month end plus lateness: still open.
        engines.advance_to(end, &mut |r| records.push(r));
        assert!(final_reports(&records).is_empty(), "the lateness has not passed");
        engines.advance_to(engines.closing(end), &mut |r| records.push(r));
        let reports = final_reports(&records);
        assert_eq!(reports.len(), 1);
        assert_eq!((reports[0].period.as_str(), reports[0].requests), ("2026-10", 10));
        // Back in time: nothing happens.
        assert!(!engines.advance_to(at, &mut |_| panic!("no record when the clock would go back")));
    }
}

#[cfg(test)]
mod order_tests {
    use std::path::Path;

    use super::*;

    /// One Datadog file: a span a minute from 10:00 to 11:00, then one of 10:05.
    fn recording(dir: &Path) -> Input {
        let start = crate::time::from_rfc3339("2026-03-10T10:00:00Z").unwrap();
        let span = |t: i64| format!(r#"[{{"service":"web","resource":"GET /","start":{t},"duration":1000000}}]"#);
        let mut chunks: Vec<String> = (0..=60).map(|m| span(start + m * 60_000_000_000)).collect();
        chunks.push(span(start + 5 * 60_000_000_000));
        let path = dir.join("web.json");
        std::fs::write(&path, format!("[{}]", chunks.join(","))).unwrap();
        Input {
            format: crate::decode::Format::DatadogApm,
            path,
        }
    }

    #[test]
    fn arrival_order_counts_a_late_span_late_and_event_time_order_does_not() {
        let config = Config::parse(
            Path::new("t.toml"),
            "[[sla.contracts]]\nservice = \"web\"\n[[sla.contracts.objectives]]\nname = \"p95\"\nkind = \"latency_percentile\"\npercentile = 95.0\nthreshold = \"5s\"\n",
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("slaflow-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let inputs = [recording(&dir)];
        let late = |order| {
            let (summary, _) = replay_observed(&config, &inputs, order, None, |_| {}, |_, _| {}).unwrap();
            (summary.sla.late_samples, summary.sla.samples)
        };
        assert_eq!(
            late(Order::Arrival),
            (1, 61),
            "as the service would: the 10:05 span came after 11:00"
        );
        assert_eq!(late(Order::EventTime), (0, 62));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_of_one_format_are_one_source_with_one_clock() {
        use crate::decode::Format::{Alertmanager, DatadogApm, Icinga2};
        let input = |format, path: &str| Input {
            format,
            path: path.into(),
        };
        let inputs = [
            input(DatadogApm, "spans-1.json"),
            input(Alertmanager, "alerts-1.json"),
            input(DatadogApm, "spans-2.json"),
            input(Icinga2, "icinga.ndjson"),
            input(Alertmanager, "alerts-2.json"),
        ];
        assert_eq!(clocks(&inputs), [0, 1, 0, 2, 1]);
    }
}

/// A long-firing alert through admission and both engines, as every path runs them.
#[cfg(test)]
mod long_firing_tests {
    use std::path::Path;

    use super::tests::live_bounds;
    use super::*;
    use crate::model::{LatencySample, Outcome};
    use crate::time::from_rfc3339;

    const MINUTE: i64 = 60_000_000_000;

    fn sample(at: i64) -> Event {
        Event::Sample(LatencySample {
            service: "webshop".into(),
            operation: "GET /products".into(),
            time_ns: at,
            duration_ns: 1_000_000,
            outcome: Outcome::Ok as i32,
            ..Default::default()
        })
    }

    /// The example configuration (contracts, services, the "Site down" outage alert).
    fn example() -> Config {
        Config::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/slaflow.toml"))).unwrap()
    }

    fn site_down(time_ns: i64, starts_at_ns: i64) -> Event {
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("alertname".to_string(), "Site down".to_string());
        Event::Alert(crate::model::AlertEvent {
            source: "alertmanager".into(),
            fingerprint: "ten-days".into(),
            service: "webshop".into(),
            alert_name: "Site down".into(),
            severity: 5,
            status: crate::model::AlertStatus::Firing as i32,
            time_ns,
            starts_at_ns,
            labels,
            ..Default::default()
        })
    }

    #[test]
    fn an_alert_firing_for_ten_days_renotified_hourly_is_one_live_incident_down_from_its_start() {
        const HOUR: i64 = 60 * MINUTE;
        let start = from_rfc3339("2026-02-24T08:00:00Z").unwrap();
        let first_seen = start + 240 * HOUR; // slaflow hears of it ten days in
        let bounds = live_bounds();
        let mut engines = Engines::new(&example()).unwrap().with_inputs(2);
        let mut out = Vec::new();
        let mut emit = |r: Record| out.push(r);
        for hour in 0..24 {
            let received = first_seen + hour * HOUR;
            // As the decoder gives it: the alert's time is its start.
            let (kept, refused) = bounds.admit(vec![site_down(start, 0)], received);
            assert!(refused.is_empty());
            for event in kept {
                engines.process_from(0, event, &mut emit);
            }
            engines.process_from(1, sample(received), &mut emit);
        }
        let end = first_seen + 24 * HOUR;
        engines.advance_to(end, &mut emit);
        let opened: Vec<&Output> = out
            .iter()
            .filter_map(|r| match r {
                Record::Correlate(o @ Output::IncidentOpened { .. }) => Some(o),
                _ => None,
            })
            .collect();
        assert_eq!(opened.len(), 1, "one incident: {opened:?}");
        assert!(matches!(opened[0], Output::IncidentOpened { time_ns, .. } if *time_ns == start));
        let resolved = out
            .iter()
            .any(|r| matches!(r, Record::Correlate(Output::IncidentResolved { .. })));
        assert!(!resolved, "still live, not expired");
        assert_eq!(
            engines.correlator.stats().duplicates,
            23,
            "every re-notification counted"
        );
        // Down from its start, 24 February 08:00 UTC, as far as the contract can still
        // change: slaflow judged webshop from March on (its first sample), so February is not
        // reopened; March is down from its start to the clock, but for the example's Sunday
        // patching (1 March 02:00-04:00 Berlin).
        let february = out
            .iter()
            .any(|r| matches!(r, Record::Sla(SlaOutput::MonthlyReport(m)) if m.period == "2026-02"));
        assert!(!february, "no report of a month slaflow never judged");
        let reports = engines.sla.running_reports();
        let march = reports.iter().find(|r| r.service == "webshop").unwrap();
        assert_eq!(march.period, "2026-03");
        let month_start = from_rfc3339("2026-02-28T23:00:00Z").unwrap();
        let expected = (engines.sla.frontier() - month_start) as f64 / MINUTE as f64 - 120.0;
        assert_eq!(march.downtime_minutes, expected);
    }

    #[test]
    fn an_old_outage_reaching_a_service_first_opens_the_running_month_not_a_passed_one() {
        const HOUR: i64 = 60 * MINUTE;
        let start = from_rfc3339("2026-02-20T08:00:00Z").unwrap();
        let received = start + 240 * HOUR; // 2 March 08:00 UTC
        let bounds = live_bounds();
        let mut engines = Engines::new(&example()).unwrap().with_inputs(2);
        let mut out = Vec::new();
        let mut emit = |r: Record| out.push(r);
        engines.input_idle(1, &mut emit);
        let (kept, _) = bounds.admit(vec![site_down(start, 0)], received);
        for event in kept {
            engines.process_from(0, event, &mut emit);
        }
        // The incident reaches the SLA engine before any sample of the service.
        engines.release_held(&mut emit);
        engines.process_from(1, sample(received + MINUTE), &mut emit);
        engines.running_reports(true, &mut emit);
        let periods: Vec<&str> = out
            .iter()
            .filter_map(|r| match r {
                Record::Sla(SlaOutput::MonthlyReport(m)) => Some(m.period.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            periods,
            ["2026-03"],
            "February had passed the clock: final, not reopened"
        );
        let march = engines.sla.running_reports().remove(0);
        let month_start = from_rfc3339("2026-02-28T23:00:00Z").unwrap();
        // Down since the month began, but for the Sunday patching (1 March 02:00-04:00 Berlin).
        let expected = (engines.sla.frontier() - month_start) as f64 / MINUTE as f64 - 120.0;
        assert_eq!(march.downtime_minutes, expected);
    }
}
