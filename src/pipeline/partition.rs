//! The partition worker: one per assigned partition number, reading that partition of every
//! configured topic. It owns the engine state of the services keyed there, restored from the
//! store on start with the offsets to resume from; it decodes each message, skipping what
//! the store already has, and drives the commit protocol of `batch.rs` with one commit in
//! flight while the next batch fills. It also moves the clock when nothing arrives: idle
//! inputs released, held events released, the wall clock followed, close requests applied.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::batch::{commit_to_kafka, restore, Batcher, GroupCommit, StoreLink};
use super::clock::{apply_close, close_requests, WallClock};
use super::consumer::{Input, Shared};
use super::{declare_idle, sleep_until, PipelineError};
use crate::decode::Format;
use crate::metrics::metrics;
use crate::replay::Engines;
use crate::sinks::{DeadLetter, Offset};
use crate::sources::kafka;

/// Messages of one partition number for its worker, in arrival order.
pub(super) struct Run {
    pub(super) messages: Vec<OwnedMessage>,
}

/// Asks a worker to write its batch and stop; it answers when done.
pub(super) struct Stop(pub(super) std::sync::mpsc::Sender<()>);

/// One partition number's worker: that partition of every configured topic, committed in
/// groups ([`GroupCommit`]) of up to `batch_max_messages`, where reading pauses until the
/// commit in flight is done.
struct PartitionWorker {
    shared: Arc<Shared>,
    partition: i32,
    engines: Engines,
    batcher: Batcher,
    /// Next offset to read, per input (topic in config order).
    next_offsets: Vec<i64>,
    /// When each input last delivered a message; `None` once declared idle.
    last_seen: Vec<Option<Instant>>,
    idle_since: Instant,
    /// Follows the wall clock while every input is quiet.
    wall: WallClock,
    /// Since when reading has been paused for a full batch behind a commit in flight.
    stalled_since: Option<Instant>,
    commits: GroupCommit,
}

/// Runs the worker of `partition` until it is told to stop (its partitions revoked, or its
/// channels closed at shutdown); it writes its batch before it returns.
pub(super) async fn run_worker(
    shared: &Arc<Shared>,
    partition: i32,
    mut messages: mpsc::Receiver<Run>,
    mut control: mpsc::UnboundedReceiver<Stop>,
) -> Result<(), PipelineError> {
    let mut worker = PartitionWorker::start(shared.clone(), partition).await?;
    let idle_release = shared.config.kafka.idle_release;
    let mut closes = close_requests();
    if apply_close(&mut closes, &mut worker.engines, &mut worker.batcher.emit()) {
        worker.batcher.changed();
    }
    loop {
        let full = worker.commits.full(&worker.batcher);
        worker.stalled(full);
        // While full (a commit retried through a store outage) the worker reads nothing: its
        // inputs are not quiet, so no idle timer runs (see `stalled`).
        let input_idle_at = (!full)
            .then(|| worker.last_seen.iter().flatten().min().map(|t| *t + idle_release))
            .flatten();
        let held_idle_at = (!full && worker.engines.correlator.has_pending()).then(|| worker.idle_since + idle_release);
        let wall_at = worker.wall.due(worker.idle_since).filter(|_| !full);
        let stop = tokio::select! {
            biased;
            stop = control.recv() => Some(stop),
            done = worker.commits.done() => {
                worker.commits.written(done, &mut worker.batcher, &worker.engines)?;
                commit_to_kafka(&worker.shared.consumer, &worker.batcher.committed);
                None
            }
            run = messages.recv(), if !full => match run {
                None => Some(None),
                Some(run) => {
                    worker.consume(&run);
                    // While a backlog keeps this branch ready, the biased select never
                    // reaches the idle timer: an input with nothing on this partition is
                    // released here instead, after the same quiet period.
                    worker.inputs_idle(idle_release);
                    None
                }
            },
            () = sleep_until(input_idle_at) => {
                worker.inputs_idle(idle_release);
                None
            }
            () = sleep_until(held_idle_at) => {
                worker.release_held();
                None
            }
            () = sleep_until(wall_at) => {
                if worker.wall.follow(&mut worker.engines, &mut worker.batcher.emit()) {
                    worker.batcher.changed();
                }
                None
            }
            Ok(()) = closes.changed() => {
                if apply_close(&mut closes, &mut worker.engines, &mut worker.batcher.emit()) {
                    worker.batcher.changed();
                }
                None
            }
        };
        match stop {
            None => worker.start_commit(),
            Some(stop) => {
                worker.finish().await?;
                tracing::info!(partition, next_offsets = ?worker.next_offsets, "partition worker stopped");
                if let Some(Stop(ack)) = stop {
                    let _ = ack.send(());
                }
                return Ok(());
            }
        }
    }
}

impl PartitionWorker {
    /// Restores the partition number's engines and offsets from the store.
    async fn start(shared: Arc<Shared>, partition: i32) -> Result<PartitionWorker, PipelineError> {
        let cfg = shared.config.clone();
        let group = &cfg.kafka.group_id;
        let link = StoreLink::connect(cfg.clone(), shared.store_ok.clone()).await?;
        let scope = format!("{group}/{partition}");
        let inputs = cfg.kafka.topics.len();
        let engines = restore(&link, &cfg, &scope).await?.with_inputs(inputs);
        let mut next_offsets = Vec::with_capacity(inputs);
        for topic in &cfg.kafka.topics {
            let stored = link.store.load_offsets(group, &topic.name).await?;
            next_offsets.push(stored.get(&partition).copied().unwrap_or(0));
        }
        tracing::info!(partition, ?next_offsets, "partition worker started");
        Ok(PartitionWorker {
            batcher: Batcher::new(scope, cfg.kafka.batch_max_messages),
            shared,
            partition,
            engines,
            next_offsets,
            last_seen: vec![Some(Instant::now()); inputs],
            idle_since: Instant::now(),
            wall: WallClock::new(cfg.kafka.wall_clock_after),
            commits: GroupCommit::new(link),
            stalled_since: None,
        })
    }

    /// Runs a run of messages through the engines, skipping what the store already has.
    fn consume(&mut self, run: &Run) {
        self.idle_since = Instant::now();
        self.wall.heard();
        for m in &run.messages {
            let Some(input) = self.shared.input(m.topic()) else {
                continue;
            };
            self.last_seen[input.index] = Some(self.idle_since);
            if m.offset() >= self.next_offsets[input.index] {
                handle(&self.shared, &mut self.engines, input, m, &mut self.batcher);
                self.next_offsets[input.index] = m.offset() + 1;
                self.batcher.added();
            }
        }
    }

    /// Backpressure: while reading is paused (`full`), the inputs' quiet time does not run.
    /// When reading resumes, the pause is added to when each input was last heard from, so
    /// a long store outage does not declare a topic with a backlog idle (which would move
    /// the clock past its unread events and make them late) nor follow the wall clock.
    fn stalled(&mut self, full: bool) {
        match (full, self.stalled_since) {
            (true, None) => self.stalled_since = Some(Instant::now()),
            (false, Some(since)) => {
                let paused = since.elapsed();
                for seen in self.last_seen.iter_mut().flatten() {
                    *seen += paused;
                }
                self.idle_since += paused;
                self.stalled_since = None;
            }
            _ => {}
        }
    }

    /// Declares the inputs quiet for `idle_release` idle: they stop holding the clock.
    fn inputs_idle(&mut self, idle_release: Duration) {
        declare_idle(&mut self.last_seen, idle_release, &mut self.engines, &mut self.batcher);
    }

    /// Releases the events held for reordering after a quiet spell.
    fn release_held(&mut self) {
        if self.engines.release_held(&mut self.batcher.emit()) {
            // The release changed the state: it is written like a message's effect.
            self.batcher.changed();
        }
    }

    /// Seals the batch and starts writing it, unless a commit is in flight or it is empty.
    fn start_commit(&mut self) {
        let PartitionWorker {
            shared,
            partition,
            next_offsets,
            engines,
            batcher,
            commits,
            ..
        } = self;
        commits.start(batcher, engines, || offsets(shared, *partition, next_offsets));
    }

    /// Stopping: the commit in flight, then the rest with the running reports.
    async fn finish(&mut self) -> Result<(), PipelineError> {
        let offsets = offsets(&self.shared, self.partition, &self.next_offsets);
        self.commits
            .finish(&mut self.batcher, &mut self.engines, || offsets)
            .await?;
        commit_to_kafka(&self.shared.consumer, &self.batcher.committed);
        Ok(())
    }
}

/// The next offsets of `partition`'s inputs (topics in config order), as the store keeps them.
fn offsets(shared: &Shared, partition: i32, next_offsets: &[i64]) -> Vec<Offset> {
    let kafka = &shared.config.kafka;
    kafka
        .topics
        .iter()
        .zip(next_offsets)
        .map(|(topic, &next_offset)| Offset {
            group: kafka.group_id.clone(),
            topic: topic.name.clone(),
            partition,
            next_offset,
        })
        .collect()
}

/// Decodes one message and runs its events through the engines; a message that does not
/// decode becomes a dead letter, and the partition goes on.
fn handle(shared: &Shared, engines: &mut Engines, input: &Input, m: &OwnedMessage, batcher: &mut Batcher) {
    let (topic, partition) = (m.topic(), m.partition());
    let received_ns = m
        .timestamp()
        .to_millis()
        .and_then(crate::time::from_millis)
        // A message without a timestamp was received now.
        .unwrap_or_else(crate::time::now_ns);
    let payload = m.payload().unwrap_or_default();
    let (endpoint, remote_addr) = kafka::http_origin(m);
    let dead_letter = |format: Format, seq: i32, reason: String, payload: Vec<u8>| DeadLetter {
        origin: topic.to_string(),
        partition,
        offset: m.offset(),
        seq,
        endpoint: endpoint.clone(),
        remote_addr: remote_addr.clone(),
        format: format.name().to_string(),
        reason,
        payload,
        received_ns,
    };
    if let Some(reason) = kafka::dead_letter_reason(m) {
        // A dead part of a body forwarded over HTTP: its format (a refused event's is
        // canonical protobuf) travels in a header.
        let format = match kafka::header_format(m) {
            Some(Ok(format)) => format,
            _ => input.format,
        };
        batcher
            .batch
            .dead_letters
            .push(dead_letter(format, 0, reason, payload.to_vec()));
        return;
    }
    let (format, mut decoded) = match kafka::header_format(m) {
        None => (input.format, shared.decoders.decode(input.format, payload)),
        Some(Ok(format)) => (format, shared.decoders.decode(format, payload)),
        Some(Err(error)) => (input.format, Err(error)),
    };
    if let Ok(d) = &mut decoded {
        shared.bounds.judge(d, received_ns);
    }
    metrics().count_decode(format.name(), &decoded);
    let dead = crate::decode::dead_parts(format, payload, &decoded);
    if let Ok(decoded) = decoded {
        input.ingested.inc_by(decoded.events.len() as u64);
        let mut emit = batcher.emit();
        for event in decoded.events {
            engines.process_from(input.index, event, &mut emit);
        }
    }
    for (seq, part) in dead.into_iter().enumerate() {
        // At warn where it was counted (metrics' `count_decode`, rate-limited); here each one.
        tracing::debug!(topic, partition, offset = m.offset(), reason = %part.reason, "dead letter");
        batcher
            .batch
            .dead_letters
            .push(dead_letter(part.format, seq as i32, part.reason, part.payload));
    }
}
