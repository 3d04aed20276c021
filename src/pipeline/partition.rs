//! The partition worker: one per assigned partition number, reading that partition of every
//! configured topic. It owns the engine state of the services keyed there, restored from the
//! store on start with the offsets to resume from; it runs each message its decode stage
//! (`decoding.rs`) decoded through the engines, skipping what the store already has, and drives the commit protocol of `batch.rs` with one commit in
//! flight while the next batch fills. It also moves the clock when nothing arrives: idle
//! inputs released, held events released, the wall clock followed, close requests applied.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::OwnedMessage;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::batch::{commit_to_kafka, restore, Batcher, GroupCommit, StoreLink};
use super::clock::{apply_close, close_requests, WallClock};
use super::consumer::Shared;
use super::decoding::{self, Decoded};
use super::{declare_idle, sleep_until, PipelineError};
use crate::replay::Engines;
use crate::sinks::Offset;

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
    messages: mpsc::Receiver<Run>,
    mut control: mpsc::UnboundedReceiver<Stop>,
) -> Result<(), PipelineError> {
    let mut worker = PartitionWorker::start(shared.clone(), partition).await?;
    let (mut messages, stage) = decoding::start(shared.clone(), worker.next_offsets.clone(), messages);
    // The stage ends with the worker, whichever way the worker returns.
    let _stage = AbortOnDrop(stage);
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
                    worker.consume(run);
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

    /// Runs a decoded run through the engines, skipping what the store already has; a
    /// message's dead letters go with its batch, and the partition goes on.
    fn consume(&mut self, run: Vec<Decoded>) {
        self.idle_since = Instant::now();
        self.wall.heard();
        for m in run {
            self.last_seen[m.input] = Some(self.idle_since);
            if m.offset >= self.next_offsets[m.input] {
                {
                    let mut emit = self.batcher.emit();
                    for event in m.events {
                        self.engines.process_from(m.input, event, &mut emit);
                    }
                }
                self.batcher.batch.dead_letters.extend(m.dead_letters);
                self.next_offsets[m.input] = m.offset + 1;
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

/// Aborts a task when dropped: a helper task that must not outlive its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
