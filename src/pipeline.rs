//! The service's data path: Kafka → decoders → engines → Postgres, one worker per assigned
//! partition, each owning the engine state of the services keyed to its partition. A worker
//! writes, per batch and in one transaction, its records, its dead letters, both engines'
//! snapshots and the partition's next offset; on assignment it restores that state and
//! skips what the store already has. Kafka's own committed offsets trail the store's and are
//! only informational (lag), so a crash, a restart or a rebalance neither loses nor doubles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::decode::{Decoders, Format};
use crate::model::Event;
use crate::replay::{Engines, Record, ReplayError};
use crate::sinks::postgres::PostgresSink;
use crate::sinks::{Batch, DeadLetter, Offset, SinkError};
use crate::sources::kafka::{self, Context, PartitionHooks};

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

/// Asks a worker to write its batch and stop; it answers when done.
struct Stop(std::sync::mpsc::Sender<()>);

struct Worker {
    messages: mpsc::Sender<OwnedMessage>,
    control: mpsc::UnboundedSender<Stop>,
    task: JoinHandle<()>,
}

/// What the consumer's hooks and the workers share.
struct Shared {
    config: Arc<Config>,
    decoders: Decoders,
    formats: HashMap<String, Format>,
    workers: Mutex<HashMap<(String, i32), Worker>>,
    runtime: tokio::runtime::Handle,
    consumer: OnceLock<Weak<StreamConsumer<Context>>>,
    store_ok: AtomicBool,
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
    fn fail(&self, message: String) {
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(message);
        }
        self.failed.notify_one();
    }

    /// The worker of a partition, started if there is none.
    fn worker(self: &Arc<Self>, topic: &str, partition: i32) -> Option<mpsc::Sender<OwnedMessage>> {
        let mut workers = self.workers.lock().ok()?;
        if let Some(w) = workers.get(&(topic.to_string(), partition)) {
            return Some(w.messages.clone());
        }
        let format = *self.formats.get(topic)?;
        let (messages, rx) = mpsc::channel(self.config.kafka.channel_capacity.max(1));
        let (control, ctl_rx) = mpsc::unbounded_channel();
        let shared = self.clone();
        let (t, p) = (topic.to_string(), partition);
        let task = self.runtime.spawn(async move {
            if let Err(e) = run_worker(&shared, &t, p, format, rx, ctl_rx).await {
                tracing::error!(topic = %t, partition = p, error = %e, "partition worker failed");
                shared.fail(format!("{t}/{p}: {e}"));
            }
        });
        workers.insert(
            (topic.to_string(), partition),
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
        for (topic, partition) in partitions {
            self.worker(topic, *partition);
        }
    }

    fn revoking(&self, partitions: &[(String, i32)]) {
        let mut acks = Vec::new();
        if let Ok(mut workers) = self.workers.lock() {
            for p in partitions {
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

/// Connects to the store, retrying with backoff; readiness is false meanwhile.
async fn connect(shared: &Shared) -> Result<PostgresSink, SinkError> {
    let url = shared.config.postgres.effective_url();
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match PostgresSink::connect(&url).await {
            Ok(sink) => {
                shared.store_ok.store(true, Ordering::Relaxed);
                return Ok(sink);
            }
            Err(e) if attempt < shared.config.kafka.write_attempts => {
                shared.store_ok.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, attempt, "store unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes a batch, reconnecting and retrying with backoff on failure.
async fn write(shared: &Shared, sink: &mut PostgresSink, batch: &Batch) -> Result<(), SinkError> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match sink.write(batch).await {
            Ok(()) => {
                shared.store_ok.store(true, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) if attempt < shared.config.kafka.write_attempts => {
                shared.store_ok.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, attempt, "batch not written; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                attempt += 1;
                if let Ok(fresh) = PostgresSink::connect(&shared.config.postgres.effective_url()).await {
                    *sink = fresh;
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// One partition's worker.
async fn run_worker(
    shared: &Arc<Shared>,
    topic: &str,
    partition: i32,
    format: Format,
    mut messages: mpsc::Receiver<OwnedMessage>,
    mut control: mpsc::UnboundedReceiver<Stop>,
) -> Result<(), PipelineError> {
    let cfg = shared.config.clone();
    let group = cfg.kafka.group_id.clone();
    let mut sink = connect(shared).await?;
    let scope = format!("{group}/{topic}/{partition}");
    let mut engines = match sink.load_checkpoint(&scope).await? {
        Some(c) => Engines::restore(&cfg, &c.correlate, &c.sla)?,
        None => Engines::new(&cfg)?,
    };
    let mut next_offset = sink
        .load_offsets(&group, topic)
        .await?
        .get(&partition)
        .copied()
        .unwrap_or(0);
    tracing::info!(topic, partition, next_offset, "partition worker started");
    let mut batch = Batch::default();
    let mut pending = 0usize;
    let mut deadline: Option<Instant> = None;
    let mut idle_since = Instant::now();
    loop {
        let idle_at = engines
            .correlator
            .has_pending()
            .then(|| idle_since + cfg.kafka.idle_release);
        let stop = tokio::select! {
            biased;
            stop = control.recv() => Some(stop),
            message = messages.recv() => match message {
                None => Some(None),
                Some(m) => {
                    idle_since = Instant::now();
                    if m.offset() >= next_offset {
                        handle(shared, &mut engines, topic, partition, format, &m, &mut batch);
                        next_offset = m.offset() + 1;
                        pending += 1;
                        deadline.get_or_insert_with(|| Instant::now() + cfg.kafka.batch_max_wait);
                    }
                    None
                }
            },
            () = sleep_until(deadline) => None,
            () = sleep_until(idle_at) => {
                let mut emit = |record: Record| match record {
                    Record::Correlate(o) => batch.correlate.push(o),
                    Record::Sla(o) => batch.sla.push(o),
                };
                if engines.release_held(&mut emit) {
                    // The release changed the state: it is written like a message's effect.
                    pending += 1;
                    deadline = Some(Instant::now());
                }
                None
            }
        };
        let due = deadline.is_some_and(|d| d <= Instant::now()) || pending >= cfg.kafka.batch_max_messages;
        if pending > 0 && (due || stop.is_some()) {
            let (correlate, sla) = engines.snapshot();
            batch.checkpoint = Some(crate::sinks::Checkpoint {
                scope: scope.clone(),
                correlate,
                sla,
            });
            batch.offsets = vec![Offset {
                group: group.clone(),
                topic: topic.to_string(),
                partition,
                next_offset,
            }];
            write(shared, &mut sink, &batch).await?;
            commit_to_kafka(shared, topic, partition, next_offset);
            batch = Batch::default();
            pending = 0;
            deadline = None;
        }
        if let Some(stop) = stop {
            tracing::info!(topic, partition, next_offset, "partition worker stopped");
            if let Some(Stop(ack)) = stop {
                let _ = ack.send(());
            }
            return Ok(());
        }
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
fn handle(
    shared: &Shared,
    engines: &mut Engines,
    topic: &str,
    partition: i32,
    format: Format,
    m: &OwnedMessage,
    batch: &mut Batch,
) {
    let received_ns = m
        .timestamp()
        .to_millis()
        .and_then(crate::time::from_millis)
        .unwrap_or(0);
    let payload = m.payload().unwrap_or_default();
    match shared.decoders.decode(format, payload) {
        Ok(events) => {
            let mut emit = |record: Record| match record {
                Record::Correlate(o) => batch.correlate.push(o),
                Record::Sla(o) => batch.sla.push(o),
            };
            for mut event in events {
                stamp(&mut event, received_ns);
                engines.process(event, &mut emit);
            }
        }
        Err(error) => {
            tracing::warn!(topic, partition, offset = m.offset(), %error, "dead letter");
            batch.dead_letters.push(DeadLetter {
                origin: topic.to_string(),
                partition,
                offset: m.offset(),
                format: format.name().to_string(),
                reason: error.to_string(),
                payload: payload.to_vec(),
                received_ns,
            });
        }
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

/// Commits the offset to Kafka too, after the store has it: for lag monitoring only.
fn commit_to_kafka(shared: &Shared, topic: &str, partition: i32, next_offset: i64) {
    let Some(consumer) = shared.consumer.get().and_then(Weak::upgrade) else {
        return;
    };
    let mut list = TopicPartitionList::new();
    if list
        .add_partition_offset(topic, partition, KafkaOffset::Offset(next_offset))
        .is_ok()
    {
        if let Err(error) = consumer.commit(&list, CommitMode::Async) {
            tracing::debug!(%error, "informational Kafka commit failed");
        }
    }
}

/// Runs the service until `shutdown` completes (SIGTERM) or a worker fails for good. On
/// shutdown every worker writes what it processed before the process exits.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<(), PipelineError> {
    run_observed(config, shutdown, |_| {}).await
}

/// `run`, handing the pipeline's readiness to `observe` once it exists (the HTTP server
/// reports it on /readyz).
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
        formats: config.kafka.topics.iter().map(|t| (t.name.clone(), t.format)).collect(),
        config: config.clone(),
        workers: Mutex::new(HashMap::new()),
        runtime: tokio::runtime::Handle::current(),
        consumer: OnceLock::new(),
        store_ok: AtomicBool::new(false),
        failure: Mutex::new(None),
        failed: Notify::new(),
    });
    observe(Readiness(shared.clone()));
    let mut store = connect(&shared).await?;
    let applied = store.migrate().await?;
    tracing::info!(applied, "store migrated");
    drop(store);

    let consumer = Arc::new(kafka::consumer(&config.kafka, Context::new(Arc::new(shared.clone())))?);
    let _ = shared.consumer.set(Arc::downgrade(&consumer));
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            () = shared.failed.notified() => {
                let failure = shared.failure.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
                break Err(PipelineError::Worker(failure));
            }
            message = consumer.recv() => match message {
                Ok(m) => {
                    let owned = m.detach();
                    if let Some(worker) = shared.worker(owned.topic(), owned.partition()) {
                        // Bounded: when the worker is behind, this waits, and consumption slows.
                        let _ = worker.send(owned).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "kafka");
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
