//! The ingest worker: webhook bodies (`POST /v1/ingest/{format}`), decoded by the HTTP
//! server, through engines of their own (scope `{group_id}/http`, one input per format) and
//! into the store with the partition workers' group commit and transaction (`batch.rs`);
//! each caller is answered once the batch holding its body is stored.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::batch::{restore, Batcher, GroupCommit, StoreLink};
use super::clock::{apply_close, close_requests, WallClock};
use super::{declare_idle, sleep_until, PipelineError};
use crate::config::Config;
use crate::decode::{DeadPart, Format};
use crate::model::Event;
use crate::replay::Engines;
use crate::sinks::DeadLetter;

/// Where an HTTP body came from, kept with its dead letters (and carried in Kafka headers
/// when the body goes on through a topic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpOrigin {
    /// The path it was posted to (`/v1/ingest/alertmanager`, `/v1/traces`).
    pub endpoint: String,
    /// The client's address (ip:port), when the server knows it.
    pub remote_addr: Option<String>,
}

/// A webhook body for the ingest worker, answered once its effect is stored.
pub struct Ingest {
    /// The format it was posted as.
    pub format: Format,
    /// Where it came from.
    pub origin: HttpOrigin,
    /// When it was received, ns since the epoch.
    pub received_ns: i64,
    /// Its decoded events, judged by the time bounds and stamped with `received_ns` when
    /// they carried no time (none when it did not decode).
    pub events: Vec<Event>,
    /// What of it is kept as dead letters (`decode::dead_parts`).
    pub dead: Vec<DeadPart>,
    /// Answered with the outcome of the batch's transaction.
    pub done: oneshot::Sender<Result<(), String>>,
}

/// The ingest worker: webhook bodies through the engines into the store, with the same
/// group commit and transaction as a partition worker (scope `{group_id}/http`): a body is
/// written with the first commit that starts after it arrived, so a lone request is answered
/// in about one commit's time and concurrent ones share commits. Each format is an input
/// with its own clock, as each topic is for a partition worker: a source that runs behind
/// holds the clock (until it has been quiet for `idle_release`) instead of being judged by
/// another source's time. It stops, after writing its batch, when every sender is gone.
pub async fn run_ingest(
    config: Arc<Config>,
    mut requests: mpsc::Receiver<Ingest>,
    store_ok: Arc<AtomicBool>,
) -> Result<(), PipelineError> {
    let link = StoreLink::connect(config.clone(), store_ok).await?;
    let mut worker = IngestWorker::start(link, &config).await?;
    let idle_release = config.kafka.idle_release;
    let mut closes = close_requests();
    if apply_close(&mut closes, &mut worker.engines, &mut worker.batcher.emit()) {
        worker.batcher.changed();
    }
    loop {
        // A full batch behind a commit in flight takes no more bodies: callers wait on the
        // bounded channel (backpressure) until the commit is done.
        let full = worker.commits.full(&worker.batcher);
        let input_idle_at = worker.last_seen.iter().flatten().min().map(|t| *t + idle_release);
        let held_idle_at = worker
            .engines
            .correlator
            .has_pending()
            .then(|| worker.idle_since + idle_release);
        let wall_at = worker.wall.due(worker.idle_since);
        let stop = tokio::select! {
            biased;
            done = worker.commits.done() => {
                worker.commits.written(done, &mut worker.batcher, &worker.engines)?;
                false
            }
            request = requests.recv(), if !full => match request {
                None => true,
                Some(r) => {
                    worker.take(r);
                    false
                }
            },
            () = sleep_until(input_idle_at) => {
                worker.inputs_idle(idle_release);
                false
            }
            () = sleep_until(held_idle_at) => {
                if worker.engines.release_held(&mut worker.batcher.emit()) {
                    worker.batcher.changed();
                }
                false
            }
            () = sleep_until(wall_at) => {
                if worker.wall.follow(&mut worker.engines, &mut worker.batcher.emit()) {
                    worker.batcher.changed();
                }
                false
            }
            Ok(()) = closes.changed() => {
                if apply_close(&mut closes, &mut worker.engines, &mut worker.batcher.emit()) {
                    worker.batcher.changed();
                }
                false
            }
        };
        if stop {
            worker
                .commits
                .finish(&mut worker.batcher, &mut worker.engines, Vec::new)
                .await?;
            return Ok(());
        }
        worker.commits.start(&mut worker.batcher, &mut worker.engines, Vec::new);
    }
}

/// The ingest worker's state: the engines with one input per format, the batch.
struct IngestWorker {
    engines: Engines,
    batcher: Batcher,
    commits: GroupCommit,
    /// When each format last delivered a body; `None` once declared idle.
    last_seen: Vec<Option<Instant>>,
    idle_since: Instant,
    wall: WallClock,
}

impl IngestWorker {
    async fn start(link: StoreLink, config: &Config) -> Result<IngestWorker, PipelineError> {
        let scope = format!("{}/http", config.kafka.group_id);
        let engines = restore(&link, config, &scope).await?.with_inputs(Format::ALL.len());
        Ok(IngestWorker {
            engines,
            batcher: Batcher::new(scope, config.server.batch_max_bodies),
            commits: GroupCommit::new(link),
            last_seen: vec![Some(Instant::now()); Format::ALL.len()],
            idle_since: Instant::now(),
            wall: WallClock::new(config.kafka.wall_clock_after),
        })
    }

    /// One body: its events through the engines as its format's input, its dead part kept.
    fn take(&mut self, r: Ingest) {
        self.idle_since = Instant::now();
        self.wall.heard();
        let input = Format::ALL.iter().position(|f| *f == r.format).unwrap_or(0);
        self.last_seen[input] = Some(self.idle_since);
        let mut emit = self.batcher.emit();
        for event in r.events {
            self.engines.process_from(input, event, &mut emit);
        }
        drop(emit);
        for (seq, part) in r.dead.into_iter().enumerate() {
            self.batcher.batch.dead_letters.push(DeadLetter {
                origin: "http".into(),
                partition: -1,
                // Unique per body and stable across retries of the batch.
                offset: r.received_ns,
                seq: seq as i32,
                endpoint: Some(r.origin.endpoint.clone()),
                remote_addr: r.origin.remote_addr.clone(),
                format: part.format.name().to_string(),
                reason: part.reason,
                payload: part.payload,
                received_ns: r.received_ns,
            });
        }
        self.batcher.acks.push(r.done);
        self.batcher.added();
    }

    /// Declares the formats quiet for `idle_release` idle: they stop holding the clock.
    fn inputs_idle(&mut self, idle_release: Duration) {
        declare_idle(&mut self.last_seen, idle_release, &mut self.engines, &mut self.batcher);
    }
}
