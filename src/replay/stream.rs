//! Replay in arrival order without holding the recording: each source (one per format,
//! `clocks`) reads its files incrementally, judges its records against its own times as
//! `admit_recorded` does for a whole recording, and hands them to the engines in the order
//! the files are named. The output is the whole-recording replay's, record for record.
//!
//! Why a look-ahead: a record is judged against the source's *next* record ("per-source
//! neighbours rule; last record stands"), and a source's last kept event ends its clock
//! (`Engines::input_idle`), so a record can be processed only once the source's next
//! records are known. The bound: a source holds its record being processed plus the next
//! two records that gave events (the next one judges it; the one after judges the next, to
//! know whether that keeps anything). Only across a run of records refused whole does it
//! hold more: that run. Records that gave no events are kept only as counts and rejections.
//! At a file's end the look-ahead continues into the source's next file; other sources'
//! files in between are read later, by their own streams.

use std::collections::VecDeque;
use std::fs::File;

use crate::decode::admit::TimeBounds;
use crate::decode::{DeadPart, Decoders, Format};
use crate::engine::reorder::event_time;
use crate::model::Event;
use crate::sinks::DeadLetter;
use crate::sources::file::FileRecords;

use super::{clocks, dead_letter, Engines, Input, Record, Rejected, ReplayError, Summary};

/// What a replay reads with: the decoders, the time bounds, the inputs, the read size.
pub(super) struct Reading<'a> {
    pub decoders: &'a Decoders,
    pub bounds: &'a TimeBounds,
    pub inputs: &'a [Input],
    pub chunk: usize,
}

/// What records leave in the summary when they are read: counts, rejections, dead parts
/// (with their lines). Applied when the records' turn comes, so the summary lists them in
/// the order of the files as named, as the whole-recording replay does.
#[derive(Default)]
struct Effects {
    records: u64,
    refused: u64,
    rejected: Vec<Rejected>,
    dead: Vec<(u64, DeadPart)>,
}

/// A record that gave events, judged once its neighbours are known.
struct Arrival {
    line: u64,
    effects: Effects,
    /// The events as decoded and stamped, before judging; empty once judged.
    events: Vec<Event>,
    /// Its latest event time: what it tells the record before it.
    latest: i64,
    judged: Option<Judged>,
}

/// An arrival's events judged: what is kept, what was refused (as one dead part).
struct Judged {
    kept: Vec<Event>,
    refused: u64,
    dead: Option<DeadPart>,
    /// Whether its last kept event is its source's last (decided after judging).
    last: Option<bool>,
}

/// A source's queue, in file order.
enum Entry {
    /// Records that gave no events, consecutive ones merged.
    Quiet(Effects),
    Arrival(Box<Arrival>),
    /// The end of the file `input`.
    End(usize),
}

/// One source: its files (input indices, in order), the one being read, and the look-ahead.
struct SourceStream {
    files: VecDeque<usize>,
    /// The file being read, and the latest event time in it (the stamp of untimed events).
    reader: Option<(usize, FileRecords<File>, i64)>,
    /// Bytes of the files finished.
    finished_bytes: u64,
    queue: VecDeque<Entry>,
    /// The latest event kept so far (judged in order): `admit_recorded`'s `before`.
    before: Option<i64>,
}

impl SourceStream {
    fn new(files: VecDeque<usize>) -> SourceStream {
        SourceStream {
            files,
            reader: None,
            finished_bytes: 0,
            queue: VecDeque::new(),
            before: None,
        }
    }

    fn bytes_read(&self) -> u64 {
        self.finished_bytes + self.reader.as_ref().map_or(0, |(_, r, _)| r.bytes_read())
    }

    /// Reads one record (or a file's end) into the queue; false when every file is read.
    fn read_one(&mut self, r: &Reading) -> Result<bool, ReplayError> {
        if self.reader.is_none() {
            let Some(input) = self.files.pop_front() else {
                return Ok(false);
            };
            let spec = &r.inputs[input];
            let file = FileRecords::open(&spec.path, spec.format.framing(), r.chunk)?;
            self.reader = Some((input, file, 0));
        }
        let Some((input, file, latest)) = self.reader.as_mut() else {
            return Ok(false);
        };
        let spec = &r.inputs[*input];
        let Some(record) = file.next_record()? else {
            self.finished_bytes += file.bytes_read();
            self.queue.push_back(Entry::End(*input));
            self.reader = None;
            return Ok(true);
        };
        let entry = read_record(r, spec, record.bytes, record.line, latest);
        match (self.queue.back_mut(), entry) {
            (Some(Entry::Quiet(prev)), Entry::Quiet(more)) => prev.merge(more),
            (_, entry) => self.queue.push_back(entry),
        }
        Ok(true)
    }

    /// Makes sure the queue's `i`-th entry exists, reading as needed; false when the
    /// source ends first.
    fn fill_to(&mut self, i: usize, r: &Reading) -> Result<bool, ReplayError> {
        while self.queue.len() <= i {
            if !self.read_one(r)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The index of the first arrival after entry `i`, reading as needed.
    fn next_arrival(&mut self, i: usize, r: &Reading) -> Result<Option<usize>, ReplayError> {
        let mut j = i + 1;
        while self.fill_to(j, r)? {
            if matches!(self.queue[j], Entry::Arrival(_)) {
                return Ok(Some(j));
            }
            j += 1;
        }
        Ok(None)
    }

    /// Judges the arrival at entry `i` (every arrival before it judged), as
    /// `admit_recorded`: against the latest event kept before it and its next record.
    fn judge(&mut self, i: usize, r: &Reading) -> Result<(), ReplayError> {
        if matches!(&self.queue[i], Entry::Arrival(a) if a.judged.is_some()) {
            return Ok(());
        }
        let next = match self.next_arrival(i, r)? {
            Some(j) => match &self.queue[j] {
                Entry::Arrival(a) => Some(a.latest),
                _ => None,
            },
            None => None,
        };
        let Entry::Arrival(a) = &mut self.queue[i] else {
            return Ok(());
        };
        let prev = self.before;
        let reference = next.map_or(i64::MAX, |n| prev.map_or(n, |p| p.max(n)));
        let (kept, refused) = r.bounds.admit_judged(std::mem::take(&mut a.events), reference, prev);
        for event in &kept {
            let t = event_time(event);
            self.before = Some(self.before.map_or(t, |b| b.max(t)));
        }
        let dead = (!refused.is_empty()).then(|| {
            let (payload, reason) = crate::decode::admit::dead_payload(&refused);
            DeadPart {
                format: Format::Protobuf,
                payload,
                reason,
            }
        });
        a.judged = Some(Judged {
            kept,
            refused: refused.len() as u64,
            dead,
            last: None,
        });
        Ok(())
    }

    /// Whether the arrival at entry `i` keeps anything (judged).
    fn keeps(&self, i: usize) -> bool {
        matches!(&self.queue[i], Entry::Arrival(a) if a.judged.as_ref().is_some_and(|j| !j.kept.is_empty()))
    }

    /// The front entry, ready: an arrival judged, and told whether its last kept event is
    /// the source's last (no later arrival keeps anything). `None` when the source is done.
    fn pop(&mut self, r: &Reading) -> Result<Option<Entry>, ReplayError> {
        if !self.fill_to(0, r)? {
            return Ok(None);
        }
        if matches!(self.queue[0], Entry::Arrival(_)) {
            self.judge(0, r)?;
            if self.keeps(0) {
                let mut last = true;
                let mut i = 0;
                while let Some(j) = self.next_arrival(i, r)? {
                    self.judge(j, r)?;
                    if self.keeps(j) {
                        last = false;
                        break;
                    }
                    i = j;
                }
                if let Some(Entry::Arrival(a)) = self.queue.get_mut(0) {
                    if let Some(judged) = a.judged.as_mut() {
                        judged.last = Some(last);
                    }
                }
            }
        }
        Ok(self.queue.pop_front())
    }
}

impl Effects {
    fn merge(&mut self, more: Effects) {
        self.records += more.records;
        self.refused += more.refused;
        self.rejected.extend(more.rejected);
        self.dead.extend(more.dead);
    }
}

/// One record decoded: what it leaves in the summary, and its events stamped with the
/// latest time before them in their file (as `read_events` stamps them).
fn read_record(r: &Reading, input: &Input, bytes: &[u8], line: u64, latest: &mut i64) -> Entry {
    let decoded = r.decoders.decode(input.format, bytes);
    let mut effects = Effects {
        records: 1,
        ..Effects::default()
    };
    for part in crate::decode::dead_parts(input.format, bytes, &decoded) {
        effects.dead.push((line, part));
    }
    match decoded {
        Ok(decoded) => {
            effects.refused += decoded.refused.len() as u64;
            for item in decoded.rejected {
                effects.rejected.push(Rejected {
                    path: input.path.clone(),
                    error: item.error.at_line(line),
                });
            }
            let mut events = decoded.events;
            for event in &mut events {
                crate::decode::admit::stamp(event, *latest);
                *latest = (*latest).max(event_time(event));
            }
            match events.iter().map(event_time).max() {
                Some(max) => Entry::Arrival(Box::new(Arrival {
                    line,
                    effects,
                    events,
                    latest: max,
                    judged: None,
                })),
                None => Entry::Quiet(effects),
            }
        }
        Err(error) => {
            effects.rejected.push(Rejected {
                path: input.path.clone(),
                error: error.at_line(line),
            });
            Entry::Quiet(effects)
        }
    }
}

/// The dead letters in the order the whole-recording replay lists them: those of reading
/// (decode) first, then those of judging (admission), each numbered as it numbers them.
#[derive(Default)]
struct Ledger {
    read: Vec<DeadLetter>,
    judged: Vec<DeadLetter>,
}

impl Ledger {
    fn read(&mut self, input: &Input, line: u64, part: DeadPart) {
        let seq = super::seq_after(self.read.iter().rev(), input, line);
        self.read.push(dead_letter(input, line, part, seq));
    }

    /// After the record's parts of reading, which are the last read (its effects are
    /// applied just before it is processed): not after the judged letters of other
    /// records, which would stop the count at 0 and give two letters of a record one `seq`.
    fn judged(&mut self, input: &Input, line: u64, part: DeadPart) {
        let seq = super::seq_after(self.read.iter().rev(), input, line);
        self.judged.push(dead_letter(input, line, part, seq));
    }
}

/// Replays `r.inputs` in arrival order, streaming, through `engines` (one input per
/// source); `progress` is told the bytes read and the bytes of all files.
pub(super) fn replay_streaming(
    r: &Reading,
    engines: &mut Engines,
    summary: &mut Summary,
    emit: &mut impl FnMut(Record),
    progress: &mut impl FnMut(u64, u64),
) -> Result<(), ReplayError> {
    let clocks = clocks(r.inputs);
    let sources = clocks.iter().max().map_or(0, |n| n + 1);
    let mut streams: Vec<SourceStream> = (0..sources)
        .map(|c| SourceStream::new((0..clocks.len()).filter(|&i| clocks[i] == c).collect()))
        .collect();
    let total: u64 = r.inputs.iter().map(|i| crate::sources::file::size(&i.path)).sum();
    let mut ledger = Ledger::default();
    let mut reported = 0u64;
    for (i, &clock) in clocks.iter().enumerate() {
        let input = &r.inputs[i];
        while let Some(entry) = streams[clock].pop(r)? {
            let arrival = match entry {
                Entry::End(end) => {
                    debug_assert_eq!(end, i, "a stream ends the file it was asked for");
                    break;
                }
                Entry::Quiet(effects) => {
                    apply(summary, &mut ledger, input, effects);
                    continue;
                }
                Entry::Arrival(a) => a,
            };
            let Arrival {
                line, effects, judged, ..
            } = *arrival;
            apply(summary, &mut ledger, input, effects);
            if let Some(judged) = judged {
                process(engines, summary, &mut ledger, (clock, input, line), judged, emit);
            }
            let done: u64 = streams.iter().map(SourceStream::bytes_read).sum();
            if done - reported >= 1 << 20 {
                reported = done;
                progress(done, total);
            }
        }
    }
    progress(streams.iter().map(SourceStream::bytes_read).sum(), total);
    summary.dead_letters = ledger.read;
    summary.dead_letters.append(&mut ledger.judged);
    Ok(())
}

/// Read effects into the summary.
fn apply(summary: &mut Summary, ledger: &mut Ledger, input: &Input, effects: Effects) {
    summary.records += effects.records;
    summary.refused += effects.refused;
    summary.rejected.extend(effects.rejected);
    for (line, part) in effects.dead {
        ledger.read(input, line, part);
    }
}

/// A judged arrival of `clock` into the engines; its source ends after it when its last
/// kept event is the source's last.
fn process(
    engines: &mut Engines,
    summary: &mut Summary,
    ledger: &mut Ledger,
    (clock, input, line): (usize, &Input, u64),
    judged: Judged,
    emit: &mut impl FnMut(Record),
) {
    summary.refused += judged.refused;
    if let Some(part) = judged.dead {
        ledger.judged(input, line, part);
    }
    summary.events += judged.kept.len() as u64;
    for event in judged.kept {
        engines.process_from(clock, event, emit);
    }
    if judged.last == Some(true) {
        engines.input_idle(clock, emit);
    }
}
