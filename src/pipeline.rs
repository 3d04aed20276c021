//! The service's data path: Kafka → decoders → engines → Postgres, one worker per assigned
//! partition *number*: it reads that partition of every configured topic (producers key by
//! service id, so a service's alerts and its latency meet in one worker) and owns the engine
//! state of the services keyed there. A worker writes, per batch and in one transaction, its
//! records, its dead letters, both engines' snapshots and its partitions' next offsets; on
//! assignment it restores that state and skips what the store already has. Kafka's own
//! committed offsets trail the store's and are only informational (lag), so a crash, a
//! restart or a rebalance neither loses nor doubles.
//!
//! Webhook bodies (`POST /v1/ingest/{format}`) take the same path through an ingest worker
//! of their own, answered once their batch is stored.

mod clock;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::decode::{Decoders, Format};
use crate::metrics::metrics;
use crate::model::Event;
use crate::replay::{Engines, Record, ReplayError};
use crate::sinks::{Batch, DeadLetter, Offset, SinkError, Store};
use crate::sources::kafka::{self, Context, PartitionHooks};
pub use clock::request_close;
use clock::{apply_close, close_requests, WallClock};

/// The service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("store: {0}")]
    Sink(#[from] SinkError),
    #[error("engine state: {0}")]
    Engines(#[from] ReplayError),
    #[error("config: {0}")]
    Config(String),
    #[error("a partition worker failed: {0}")]
    Worker(String),
}

/// A configured topic as its workers see it.
struct Input {
    /// The topic's place in the config: its input index in the engines' clock.
    index: usize,
    format: Format,
    /// `slaflow_events_ingested_total{format, source="kafka"}`, resolved once rather than
    /// looked up by label per message.
    ingested: prometheus::IntCounter,
}

/// Messages of one partition number for its worker, in arrival order.
struct Run {
    messages: Vec<OwnedMessage>,
}

/// Asks a worker to write its batch and stop; it answers when done.
struct Stop(std::sync::mpsc::Sender<()>);

struct Worker {
    messages: mpsc::Sender<Run>,
    control: mpsc::UnboundedSender<Stop>,
    task: JoinHandle<()>,
}

/// What the consumer's hooks and the workers share.
struct Shared {
    config: Arc<Config>,
    decoders: Decoders,
    /// The configured topics, in config order (a topic's place is its input index): a
    /// handful, so a scan beats hashing the name of every message.
    topics: Vec<(String, Input)>,
    /// Workers by partition number.
    workers: Mutex<HashMap<i32, Worker>>,
    runtime: tokio::runtime::Handle,
    consumer: OnceLock<Weak<StreamConsumer<Context>>>,
    store_ok: Arc<AtomicBool>,
    failure: Mutex<Option<String>>,
    failed: Notify,
}

/// Readiness as the HTTP server will report it: partitions assigned and the store reachable.
#[derive(Clone)]
pub struct Readiness(Arc<Shared>);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        let assigned = self.0.workers.lock().map(|w| !w.is_empty()).unwrap_or(false);
        assigned && self.0.store_ok.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn input(&self, topic: &str) -> Option<&Input> {
        self.topics
            .iter()
            .find(|(name, _)| name == topic)
            .map(|(_, input)| input)
    }

    fn fail(&self, message: String) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(message);
        }
        self.failed.notify_one();
    }

    /// The worker of a partition number, started if there is none.
    fn worker(self: &Arc<Self>, partition: i32) -> Option<mpsc::Sender<Run>> {
        let mut workers = self.workers.lock().ok()?;
        if let Some(w) = workers.get(&partition) {
            return Some(w.messages.clone());
        }
        // In runs of up to DRAIN_MAX messages: `channel_capacity` messages in all.
        let (messages, rx) = mpsc::channel(self.config.kafka.channel_capacity.div_ceil(DRAIN_MAX).max(1));
        let (control, ctl_rx) = mpsc::unbounded_channel();
        let shared = self.clone();
        let task = self.runtime.spawn(async move {
            if let Err(e) = run_worker(&shared, partition, rx, ctl_rx).await {
                tracing::error!(partition, error = %e, "partition worker failed");
                shared.fail(format!("partition {partition}: {e}"));
            }
        });
        workers.insert(
            partition,
            Worker {
                messages: messages.clone(),
                control,
                task,
            },
        );
        Some(messages)
    }
}

impl PartitionHooks for Arc<Shared> {
    fn assigned(&self, partitions: &[(String, i32)]) {
        for (_, partition) in partitions {
            self.worker(*partition);
        }
        if let Err(message) = co_partitioned(self.topics.len(), partitions) {
            tracing::error!(%message, "assignment is not co-partitioned");
            self.fail(message);
        }
    }

    fn owns(&self, partition: i32) -> bool {
        self.workers.lock().is_ok_and(|w| w.contains_key(&partition))
    }

    fn revoking(&self, partitions: &[(String, i32)]) {
        let mut acks = Vec::new();
        if let Ok(mut workers) = self.workers.lock() {
            for (topic, p) in partitions {
                let _ = metrics()
                    .consumer_lag
                    .remove_label_values(&[topic.as_str(), p.to_string().as_str()]);
                if let Some(w) = workers.remove(p) {
                    let (tx, rx) = std::sync::mpsc::channel();
                    if w.control.send(Stop(tx)).is_ok() {
                        acks.push(rx);
                    }
                }
            }
        }
        // Called on the thread polling the consumer: let the runtime move its other tasks
        // away while the workers write, so the wait cannot starve them.
        let timeout = self.config.kafka.revoke_timeout;
        let wait = || {
            let deadline = std::time::Instant::now() + timeout;
            for ack in acks {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if ack.recv_timeout(left).is_err() {
                    tracing::warn!(
                        "a revoked partition's worker did not finish in time; the next owner resumes from the store"
                    );
                }
            }
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }
}

/// A worker's connection to the store: connects and writes with bounded retries and
/// backoff, reconnecting after a failure, and keeps the readiness flag current.
struct StoreLink {
    config: Arc<Config>,
    ok: Arc<AtomicBool>,
    store: Store,
}

impl StoreLink {
    async fn connect(config: Arc<Config>, ok: Arc<AtomicBool>) -> Result<StoreLink, SinkError> {
        let mut backoff = Backoff::new(&config, &ok);
        loop {
            match Store::open(&config).await {
                Ok(store) => {
                    ok.store(true, Ordering::Relaxed);
                    return Ok(StoreLink { config, ok, store });
                }
                Err(e) => backoff.wait(e, "store unreachable").await?,
            }
        }
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let (config, ok) = (self.config.clone(), self.ok.clone());
        let mut backoff = Backoff::new(&config, &ok);
        loop {
            let started = std::time::Instant::now();
            match self.store.write(batch).await {
                Ok(()) => {
                    metrics()
                        .sink_seconds
                        .with_label_values(&[self.store.kind_name()])
                        .observe(started.elapsed().as_secs_f64());
                    ok.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    backoff.wait(e, "batch not written").await?;
                    // The failed transaction may have broken the connection.
                    if let Ok(fresh) = Store::open(&config).await {
                        self.store = fresh;
                    }
                }
            }
        }
    }
}

/// Bounded retries with doubling backoff (200 ms up to 10 s, `write_attempts` in all),
/// keeping the readiness flag false while they last.
struct Backoff<'a> {
    ok: &'a AtomicBool,
    delay: Duration,
    left: u32,
}

impl<'a> Backoff<'a> {
    fn new(config: &Config, ok: &'a AtomicBool) -> Backoff<'a> {
        Backoff {
            ok,
            delay: Duration::from_millis(200),
            left: config.kafka.write_attempts.saturating_sub(1),
        }
    }

    /// After a failed attempt: waits before the next, or gives `error` back when none is left.
    async fn wait(&mut self, error: SinkError, what: &str) -> Result<(), SinkError> {
        self.ok.store(false, Ordering::Relaxed);
        if self.left == 0 {
            return Err(error);
        }
        tracing::warn!(%error, attempts_left = self.left, "{what}; retrying");
        self.left -= 1;
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(10));
        Ok(())
    }
}

/// A worker's batch in the making: records, dead letters and the callers waiting for it;
/// committed with the engines' snapshot and the inputs' next offsets in one transaction.
struct Batcher {
    scope: String,
    batch: Batch,
    /// Inputs (messages, requests, releases) whose effect the batch holds.
    pending: usize,
    deadline: Option<Instant>,
    max_wait: Duration,
    max_messages: usize,
    /// This worker's open incidents by priority, as last added to the gauge.
    open: [u64; 5],
    /// Webhook callers, answered once the batch is stored.
    acks: Vec<oneshot::Sender<Result<(), String>>>,
    /// The offsets of the last stored batch (for Kafka's informational commit).
    committed: Vec<Offset>,
}

impl Batcher {
    fn new(scope: String, config: &Config) -> Batcher {
        Batcher {
            scope,
            batch: Batch::default(),
            pending: 0,
            deadline: None,
            max_wait: config.kafka.batch_max_wait,
            max_messages: config.kafka.batch_max_messages.max(1),
            open: [0; 5],
            acks: Vec::new(),
            committed: Vec::new(),
        }
    }

    /// Where the engines' records go.
    fn emit(&mut self) -> impl FnMut(Record) + '_ {
        |record| match record {
            Record::Correlate(o) => self.batch.correlate.push(o),
            Record::Sla(o) => self.batch.sla.push(o),
        }
    }

    /// One more input in the batch: written at the latest `max_wait` after the first.
    fn added(&mut self) {
        self.pending += 1;
        self.deadline.get_or_insert_with(|| Instant::now() + self.max_wait);
    }

    /// A state change without input (an idle release): written now.
    fn changed(&mut self) {
        self.pending += 1;
        self.deadline = Some(Instant::now());
    }

    fn due(&self) -> bool {
        self.pending > 0 && (self.pending >= self.max_messages || self.deadline.is_some_and(|d| d <= Instant::now()))
    }

    /// Closes the batch, if it holds anything, with the engines' snapshot and `offsets`;
    /// `last` (the worker stops) also adds the running reports. The next batch starts empty.
    fn seal(&mut self, engines: &mut Engines, offsets: Vec<Offset>, last: bool) -> Option<Sealed> {
        if self.pending == 0 {
            return None;
        }
        engines.running_reports(last, &mut self.emit());
        let (correlate, sla) = engines.snapshot();
        let mut batch = std::mem::take(&mut self.batch);
        batch.checkpoint = Some(crate::sinks::Checkpoint {
            scope: self.scope.clone(),
            correlate,
            sla,
            latest_event_ns: engines.last_event_ns(),
        });
        batch.offsets = offsets;
        self.pending = 0;
        self.deadline = None;
        Some(Sealed {
            batch,
            acks: std::mem::take(&mut self.acks),
        })
    }

    /// After the store answered for `sealed`: answers its callers and, when it was stored,
    /// updates the metrics and the offsets for Kafka's informational commit.
    fn stored(&mut self, sealed: Sealed, written: &Result<(), SinkError>, engines: &Engines) {
        for ack in sealed.acks {
            let _ = ack.send(written.as_ref().map(|_| ()).map_err(ToString::to_string));
        }
        if written.is_err() {
            return;
        }
        let m = metrics();
        for output in &sealed.batch.sla {
            m.observe(output);
        }
        for d in &sealed.batch.dead_letters {
            m.dead_letters.with_label_values(&[d.format.as_str()]).inc();
        }
        let open = engines.correlator.open_by_priority();
        m.open_incidents_changed(&self.open, &open);
        self.open = open;
        self.committed = sealed.batch.offsets;
    }

    /// Seals the batch and writes it, waiting for the store.
    async fn commit(
        &mut self,
        link: &mut StoreLink,
        engines: &mut Engines,
        offsets: Vec<Offset>,
        last: bool,
    ) -> Result<(), SinkError> {
        let Some(sealed) = self.seal(engines, offsets, last) else {
            return Ok(());
        };
        let written = link.write(&sealed.batch).await;
        self.stored(sealed, &written, engines);
        written
    }
}

/// A closed batch and the webhook callers waiting for it.
struct Sealed {
    batch: Batch,
    acks: Vec<oneshot::Sender<Result<(), String>>>,
}

impl Drop for Batcher {
    /// A stopped worker's incidents are no longer its to count (the next owner counts them).
    fn drop(&mut self) {
        metrics().open_incidents_changed(&self.open, &[0; 5]);
    }
}

/// A commit in flight: the store link comes back with the store's answer.
type Writing = std::pin::Pin<Box<dyn Future<Output = (StoreLink, Sealed, Result<(), SinkError>)> + Send>>;

/// One partition number's worker: that partition of every configured topic. Group commit:
/// at most one batch is being written at a time, and the next one fills while it is; a
/// batch closes as soon as the previous commit has finished, so a lone message is stored in
/// about one commit's time and batches grow with the load (up to `batch_max_messages`,
/// where reading pauses until the commit in flight is done).
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
    /// The store link while no commit is in flight.
    link: Option<StoreLink>,
    writing: Option<Writing>,
}

async fn run_worker(
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
        let input_idle_at = worker.last_seen.iter().flatten().min().map(|t| *t + idle_release);
        let held_idle_at = (worker.engines.correlator.has_pending()).then(|| worker.idle_since + idle_release);
        let wall_at = worker.wall.due(worker.idle_since);
        let full = worker.writing.is_some() && worker.batcher.pending >= worker.batcher.max_messages;
        let stop = tokio::select! {
            biased;
            stop = control.recv() => Some(stop),
            done = in_flight(&mut worker.writing) => {
                worker.written(done)?;
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

/// Completes when the commit in flight does (never when there is none).
async fn in_flight(writing: &mut Option<Writing>) -> (StoreLink, Sealed, Result<(), SinkError>) {
    match writing {
        Some(w) => w.await,
        None => std::future::pending().await,
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
            batcher: Batcher::new(scope, &cfg),
            shared,
            partition,
            engines,
            next_offsets,
            last_seen: vec![Some(Instant::now()); inputs],
            idle_since: Instant::now(),
            wall: WallClock::new(cfg.kafka.wall_clock_after),
            link: Some(link),
            writing: None,
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

    /// The inputs' next offsets, as the store keeps them.
    fn offsets(&self) -> Vec<Offset> {
        let kafka = &self.shared.config.kafka;
        kafka
            .topics
            .iter()
            .zip(&self.next_offsets)
            .map(|(topic, &next_offset)| Offset {
                group: kafka.group_id.clone(),
                topic: topic.name.clone(),
                partition: self.partition,
                next_offset,
            })
            .collect()
    }

    /// Seals the batch and starts writing it, unless a commit is in flight or it is empty.
    fn start_commit(&mut self) {
        if self.writing.is_some() || self.batcher.pending == 0 {
            return;
        }
        let Some(mut link) = self.link.take() else {
            return;
        };
        let offsets = self.offsets();
        let Some(sealed) = self.batcher.seal(&mut self.engines, offsets, false) else {
            self.link = Some(link);
            return;
        };
        self.writing = Some(Box::pin(async move {
            let written = link.write(&sealed.batch).await;
            (link, sealed, written)
        }));
    }

    /// The store answered for the commit in flight: the batch is done (or the worker fails).
    fn written(
        &mut self,
        (link, sealed, written): (StoreLink, Sealed, Result<(), SinkError>),
    ) -> Result<(), SinkError> {
        self.writing = None;
        self.link = Some(link);
        self.batcher.stored(sealed, &written, &self.engines);
        written?;
        commit_to_kafka(&self.shared, &self.batcher.committed);
        Ok(())
    }

    /// Stopping: waits for the commit in flight, then writes the rest with the running reports.
    async fn finish(&mut self) -> Result<(), PipelineError> {
        if self.writing.is_some() {
            let done = in_flight(&mut self.writing).await;
            self.written(done)?;
        }
        let offsets = self.offsets();
        if let Some(link) = self.link.as_mut() {
            self.batcher.commit(link, &mut self.engines, offsets, true).await?;
            commit_to_kafka(&self.shared, &self.batcher.committed);
        }
        Ok(())
    }
}

/// The engines of a scope: restored from its checkpoint, or new.
async fn restore(link: &StoreLink, config: &Config, scope: &str) -> Result<Engines, PipelineError> {
    Ok(match link.store.load_checkpoint(scope).await? {
        Some(c) => Engines::restore(config, &c.correlate, &c.sla)?.with_latest_event(c.latest_event_ns),
        None => Engines::new(config)?,
    })
}

/// A webhook body for the ingest worker, answered once its effect is stored.
pub struct Ingest {
    /// The format it was posted as.
    pub format: Format,
    /// When it was received, ns since the epoch (the time of events that carry none).
    pub received_ns: i64,
    /// Its decoded events (none when it did not decode).
    pub events: Vec<Event>,
    /// What of it is kept as a dead letter (`decode::dead_part`): payload and reason.
    pub dead: Option<(Vec<u8>, String)>,
    /// Answered with the outcome of the batch's transaction.
    pub done: oneshot::Sender<Result<(), String>>,
}

/// The ingest worker: webhook bodies through the engines into the store, with the same
/// batching and transaction as a partition worker (scope `{group_id}/http`). Each format is
/// an input with its own clock, as each topic is for a partition worker: a source that runs
/// behind holds the clock (until it has been quiet for `idle_release`) instead of being
/// judged by another source's time. It stops, after writing its batch, when every sender is
/// gone.
pub async fn run_ingest(
    config: Arc<Config>,
    mut requests: mpsc::Receiver<Ingest>,
    store_ok: Arc<AtomicBool>,
) -> Result<(), PipelineError> {
    let mut link = StoreLink::connect(config.clone(), store_ok).await?;
    let mut worker = IngestWorker::start(&link, &config).await?;
    let idle_release = config.kafka.idle_release;
    let mut closes = close_requests();
    if apply_close(&mut closes, &mut worker.engines, &mut worker.batcher.emit()) {
        worker.batcher.changed();
    }
    loop {
        let input_idle_at = worker.last_seen.iter().flatten().min().map(|t| *t + idle_release);
        let held_idle_at = worker
            .engines
            .correlator
            .has_pending()
            .then(|| worker.idle_since + idle_release);
        let wall_at = worker.wall.due(worker.idle_since);
        let stop = tokio::select! {
            request = requests.recv() => match request {
                None => true,
                Some(r) => {
                    worker.take(r);
                    false
                }
            },
            () = sleep_until(worker.batcher.deadline) => false,
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
        if worker.batcher.due() || stop {
            worker
                .batcher
                .commit(&mut link, &mut worker.engines, Vec::new(), stop)
                .await?;
        }
        if stop {
            return Ok(());
        }
    }
}

/// The ingest worker's state: the engines with one input per format, the batch.
struct IngestWorker {
    engines: Engines,
    batcher: Batcher,
    /// When each format last delivered a body; `None` once declared idle.
    last_seen: Vec<Option<Instant>>,
    idle_since: Instant,
    wall: WallClock,
}

impl IngestWorker {
    async fn start(link: &StoreLink, config: &Config) -> Result<IngestWorker, PipelineError> {
        let scope = format!("{}/http", config.kafka.group_id);
        let engines = restore(link, config, &scope).await?.with_inputs(Format::ALL.len());
        Ok(IngestWorker {
            engines,
            batcher: Batcher::new(scope, config),
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
        for mut event in r.events {
            stamp(&mut event, r.received_ns);
            self.engines.process_from(input, event, &mut self.batcher.emit());
        }
        if let Some((payload, reason)) = r.dead {
            self.batcher.batch.dead_letters.push(DeadLetter {
                origin: "http".into(),
                partition: -1,
                // Unique per body and stable across retries of the batch.
                offset: r.received_ns,
                format: r.format.name().to_string(),
                reason,
                payload,
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

/// Declares idle the inputs last seen `idle_release` ago or earlier (`None` from then on):
/// they stop holding the clock, which may move and close what they held.
fn declare_idle(
    last_seen: &mut [Option<Instant>],
    idle_release: Duration,
    engines: &mut Engines,
    batcher: &mut Batcher,
) {
    let now = Instant::now();
    for (input, seen) in last_seen.iter_mut().enumerate() {
        if seen.is_some_and(|t| t + idle_release <= now) {
            *seen = None;
            tracing::debug!(input, "input idle: the clock follows the others");
            if engines.input_idle(input, &mut batcher.emit()) {
                batcher.changed();
            }
        }
    }
}

/// Checks that every assigned partition number comes with all `topics` topics: the worker
/// of a number joins a service's inputs only if it has them all.
fn co_partitioned(topics: usize, assigned: &[(String, i32)]) -> Result<(), String> {
    let mut per_number: std::collections::BTreeMap<i32, usize> = std::collections::BTreeMap::new();
    for (_, p) in assigned {
        *per_number.entry(*p).or_default() += 1;
    }
    match per_number.iter().find(|(_, n)| **n != topics) {
        None => Ok(()),
        Some((p, n)) => Err(format!(
            "partition {p} was assigned for {n} of the {topics} topics; slaflow needs every topic \
             to have the same partition count (co-partitioned, keyed by service id)"
        )),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Decodes one message and runs its events through the engines; a message that does not
/// decode becomes a dead letter, and the partition goes on.
fn handle(shared: &Shared, engines: &mut Engines, input: &Input, m: &OwnedMessage, batcher: &mut Batcher) {
    let (topic, partition) = (m.topic(), m.partition());
    let received_ns = m
        .timestamp()
        .to_millis()
        .and_then(crate::time::from_millis)
        .unwrap_or(0);
    let payload = m.payload().unwrap_or_default();
    if let Some(reason) = kafka::dead_letter_reason(m) {
        batcher.batch.dead_letters.push(DeadLetter {
            origin: topic.to_string(),
            partition,
            offset: m.offset(),
            format: input.format.name().to_string(),
            reason,
            payload: payload.to_vec(),
            received_ns,
        });
        return;
    }
    let (format, decoded) = match kafka::header_format(m) {
        None => (input.format, shared.decoders.decode(input.format, payload)),
        Some(Ok(format)) => (format, shared.decoders.decode(format, payload)),
        Some(Err(error)) => (input.format, Err(error)),
    };
    metrics().count_decode(format.name(), &decoded);
    let dead = crate::decode::dead_part(payload, &decoded);
    if let Ok(decoded) = decoded {
        input.ingested.inc_by(decoded.events.len() as u64);
        let mut emit = batcher.emit();
        for mut event in decoded.events {
            stamp(&mut event, received_ns);
            engines.process_from(input.index, event, &mut emit);
        }
    }
    if let Some((payload, reason)) = dead {
        tracing::warn!(topic, partition, offset = m.offset(), %reason, "dead letter");
        batcher.batch.dead_letters.push(DeadLetter {
            origin: topic.to_string(),
            partition,
            offset: m.offset(),
            format: format.name().to_string(),
            reason,
            payload,
            received_ns,
        });
    }
}

/// A payload without a time takes the message's (producer or log-append) timestamp.
fn stamp(event: &mut Event, received_ns: i64) {
    match event {
        Event::Alert(a) if a.time_ns == 0 => a.time_ns = received_ns,
        Event::Sample(s) if s.time_ns == 0 => s.time_ns = received_ns,
        _ => {}
    }
}

/// Commits the offsets to Kafka too, after the store has them: for lag monitoring only.
fn commit_to_kafka(shared: &Shared, offsets: &[Offset]) {
    let Some(consumer) = shared.consumer.get().and_then(Weak::upgrade) else {
        return;
    };
    let mut list = TopicPartitionList::new();
    for o in offsets.iter().filter(|o| o.next_offset > 0) {
        if list
            .add_partition_offset(&o.topic, o.partition, KafkaOffset::Offset(o.next_offset))
            .is_err()
        {
            return;
        }
    }
    if list.count() > 0 {
        if let Err(error) = consumer.commit(&list, CommitMode::Async) {
            tracing::debug!(%error, "informational Kafka commit failed");
        }
    }
}

/// Messages handed to a worker at once, at most: the consumer loop takes what librdkafka
/// already has queued after the message it waited for, so a worker is woken once per run
/// rather than once per message.
const DRAIN_MAX: usize = 256;

/// `first` and the messages already queued behind it (up to `DRAIN_MAX`), in runs per
/// partition number in arrival order; an error met on the way is returned for the caller.
fn drain(
    consumer: &StreamConsumer<Context>,
    first: OwnedMessage,
) -> (Vec<(i32, Vec<OwnedMessage>)>, Option<rdkafka::error::KafkaError>) {
    let mut runs: Vec<(i32, Vec<OwnedMessage>)> = Vec::new();
    let mut push = |m: OwnedMessage| match runs.iter_mut().find(|(p, _)| *p == m.partition()) {
        Some((_, run)) => run.push(m),
        None => runs.push((m.partition(), vec![m])),
    };
    push(first);
    let mut error = None;
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 1..DRAIN_MAX {
        let mut next = std::pin::pin!(consumer.recv());
        match next.as_mut().poll(&mut context) {
            std::task::Poll::Ready(Ok(m)) => push(m.detach()),
            std::task::Poll::Ready(Err(e)) => {
                error = Some(e);
                break;
            }
            std::task::Poll::Pending => break,
        }
    }
    (runs, error)
}

/// The consumer's errors in the log: the first of a run of errors, a changed one, and then
/// one every 30 s with the count, instead of one per poll while a broker is away.
#[derive(Default)]
struct ErrorLog {
    /// Errors since the last message, the last one's text, and when a line was last logged.
    failing: Option<(u64, String, std::time::Instant)>,
}

impl ErrorLog {
    /// Counts one more error; returns the count to log it with, or `None` to stay quiet.
    fn count(&mut self, text: String, now: std::time::Instant) -> Option<u64> {
        let Some((n, last, at)) = &mut self.failing else {
            self.failing = Some((1, text, now));
            return Some(1);
        };
        *n += 1;
        if *last == text && now.duration_since(*at) < Duration::from_secs(30) {
            return None;
        }
        (*last, *at) = (text, now);
        Some(*n)
    }

    fn failed(&mut self, error: &rdkafka::error::KafkaError) {
        let text = error.to_string();
        if let Some(errors) = self.count(text.clone(), std::time::Instant::now()) {
            tracing::warn!(error = %text, errors, "kafka: consuming failed; retrying");
        }
    }

    fn recovered(&mut self) {
        if let Some((errors, ..)) = self.failing.take() {
            tracing::info!(errors, "kafka: consuming again");
        }
    }
}

/// Runs the service until `shutdown` completes (SIGTERM) or a worker fails for good. On
/// shutdown every worker writes what it processed before the process exits.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<(), PipelineError> {
    migrate(&config).await?;
    run_observed(config, shutdown, |_| {}).await
}

/// Applies the store's migrations, waiting for the store with the workers' bounded retries;
/// returns how many ran.
pub async fn migrate(config: &Config) -> Result<usize, PipelineError> {
    let ok = Arc::new(AtomicBool::new(false));
    let mut link = StoreLink::connect(Arc::new(config.clone()), ok).await?;
    let applied = link.store.migrate().await?;
    tracing::info!(applied, store = link.store.kind_name(), "store migrated");
    Ok(applied)
}

/// `run` on a migrated store, handing the pipeline's readiness to `observe` once it exists
/// (the HTTP server reports it on /readyz).
pub async fn run_observed(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    observe: impl FnOnce(Readiness),
) -> Result<(), PipelineError> {
    if config.kafka.topics.is_empty() {
        return Err(PipelineError::Config(
            "[[kafka.topics]] names no topic to consume".into(),
        ));
    }
    let config = Arc::new(config);
    let shared = Arc::new(Shared {
        decoders: Decoders::new(config.decoders.clone()),
        topics: config
            .kafka
            .topics
            .iter()
            .enumerate()
            .map(|(index, t)| {
                let input = Input {
                    index,
                    format: t.format,
                    ingested: metrics().ingested.with_label_values(&[t.format.name(), "kafka"]),
                };
                (t.name.clone(), input)
            })
            .collect::<Vec<_>>(),
        config: config.clone(),
        workers: Mutex::new(HashMap::new()),
        runtime: tokio::runtime::Handle::current(),
        consumer: OnceLock::new(),
        store_ok: Arc::new(AtomicBool::new(false)),
        failure: Mutex::new(None),
        failed: Notify::new(),
    });
    observe(Readiness(shared.clone()));

    let consumer = Arc::new(kafka::consumer(&config.kafka, Context::new(Arc::new(shared.clone())))?);
    let _ = shared.consumer.set(Arc::downgrade(&consumer));
    tokio::pin!(shutdown);
    let mut errors = ErrorLog::default();
    // An error met while draining, handled as if `recv` had returned it.
    let mut pending: Option<rdkafka::error::KafkaError> = None;
    let result = loop {
        let next = async {
            match pending.take() {
                Some(error) => Err(error),
                None => consumer.recv().await.map(|m| m.detach()),
            }
        };
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            () = shared.failed.notified() => {
                let failure = shared.failure.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
                break Err(PipelineError::Worker(failure));
            }
            message = next => match message {
                Ok(first) => {
                    errors.recovered();
                    let (runs, error) = drain(&consumer, first);
                    for (partition, messages) in runs {
                        if let Some(worker) = shared.worker(partition) {
                            // Bounded: when the worker is behind, this waits, and consumption slows.
                            let _ = worker.send(Run { messages }).await;
                        }
                    }
                    if let Some(error) = error {
                        pending = Some(error);
                    }
                }
                // A fatal error (FENCED_INSTANCE_ID: another member runs with this
                // `group.instance.id`) ends the consumer for good: stop, so the supervisor
                // sees it, instead of staying up consuming nothing.
                Err(error @ rdkafka::error::KafkaError::MessageConsumptionFatal(_)) => {
                    tracing::error!(%error, "kafka: fatal consumer error; stopping");
                    break Err(PipelineError::Kafka(error));
                }
                Err(error) => {
                    errors.failed(&error);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    };
    // Drain: closing the channels makes every worker write its batch and stop.
    let workers: Vec<Worker> = shared
        .workers
        .lock()
        .map(|mut w| w.drain().map(|(_, v)| v).collect())
        .unwrap_or_default();
    for w in workers {
        drop(w.messages);
        drop(w.control);
        let _ = w.task.await;
    }
    consumer.unsubscribe();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(list: &[(&str, i32)]) -> Vec<(String, i32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn consumer_errors_are_logged_once_per_change_or_half_minute_and_counted() {
        let mut log = ErrorLog::default();
        let t0 = std::time::Instant::now();
        let down = || "AllBrokersDown".to_string();
        assert_eq!(log.count(down(), t0), Some(1), "the first error is logged");
        assert_eq!(
            log.count(down(), t0 + Duration::from_secs(1)),
            None,
            "its repeats are not"
        );
        assert_eq!(
            log.count("Transport".into(), t0 + Duration::from_secs(2)),
            Some(3),
            "a new error is"
        );
        assert_eq!(
            log.count("Transport".into(), t0 + Duration::from_secs(33)),
            Some(4),
            "30 s later again"
        );
        log.recovered();
        assert_eq!(
            log.count(down(), t0 + Duration::from_secs(34)),
            Some(1),
            "a new run of errors"
        );
    }

    #[test]
    fn an_assignment_is_co_partitioned_when_every_number_has_every_topic() {
        let both = assigned(&[("alerts", 0), ("apm", 0), ("alerts", 2), ("apm", 2)]);
        assert_eq!(co_partitioned(2, &both), Ok(()));
        assert_eq!(co_partitioned(1, &assigned(&[("apm", 0), ("apm", 3)])), Ok(()));
        // The APM topic has a third partition the alert topic lacks.
        let uneven = assigned(&[("alerts", 0), ("apm", 0), ("apm", 2)]);
        let error = co_partitioned(2, &uneven).unwrap_err();
        assert!(
            error.starts_with("partition 2 was assigned for 1 of the 2 topics"),
            "{error}"
        );
    }
}
