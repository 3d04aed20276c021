//! The Kafka side: the consumer loop, which hands each partition number's messages to its
//! worker in runs; the rebalance hooks, which start a worker on assignment (checking the
//! topics are co-partitioned) and, on revocation, have it write its batch before the next
//! owner starts; what the hooks and the workers share ([`Shared`], and the readiness the
//! HTTP server reports); and the consumer's error log.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::partition::{run_worker, Run, Stop};
use super::PipelineError;
use crate::config::Config;
use crate::decode::admit::TimeBounds;
use crate::decode::{Decoders, Format};
use crate::metrics::metrics;
use crate::sources::kafka::{self, Context, PartitionHooks};

/// A configured topic as its workers see it.
pub(super) struct Input {
    /// The topic's place in the config: its input index in the engines' clock.
    pub(super) index: usize,
    pub(super) format: Format,
    /// `slaflow_events_ingested_total{format, source="kafka"}`, resolved once rather than
    /// looked up by label per message.
    pub(super) ingested: prometheus::IntCounter,
}

/// A started worker: its channels (closing them stops it) and its task.
struct Worker {
    messages: mpsc::Sender<Run>,
    control: mpsc::UnboundedSender<Stop>,
    task: JoinHandle<()>,
}

/// What the consumer's hooks and the workers share.
pub(super) struct Shared {
    pub(super) config: Arc<Config>,
    pub(super) decoders: Decoders,
    /// The event-time bounds each message's events are judged by, against its timestamp.
    pub(super) bounds: TimeBounds,
    /// The configured topics, in config order (a topic's place is its input index): a
    /// handful, so a scan beats hashing the name of every message.
    topics: Vec<(String, Input)>,
    /// Workers by partition number.
    workers: Mutex<HashMap<i32, Worker>>,
    runtime: tokio::runtime::Handle,
    pub(super) consumer: OnceLock<Weak<StreamConsumer<Context>>>,
    pub(super) store_ok: Arc<AtomicBool>,
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
    /// The shared state of a new consumer: its topics' inputs, no workers yet.
    fn new(config: Arc<Config>) -> Shared {
        Shared {
            decoders: Decoders::new(config.decoders.clone()),
            bounds: config.decoders.time_bounds(config.correlate.allowed_lateness),
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
            config,
            workers: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
            consumer: OnceLock::new(),
            store_ok: Arc::new(AtomicBool::new(false)),
            failure: Mutex::new(None),
            failed: Notify::new(),
        }
    }

    /// Stops every worker: closing its channels makes it write its batch and stop.
    async fn stop_workers(&self) {
        let workers: Vec<Worker> = self
            .workers
            .lock()
            .map(|mut w| w.drain().map(|(_, v)| v).collect())
            .unwrap_or_default();
        for w in workers {
            drop(w.messages);
            drop(w.control);
            let _ = w.task.await;
        }
    }

    /// The input a message of `topic` belongs to, if `topic` is configured.
    pub(super) fn input(&self, topic: &str) -> Option<&Input> {
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
    let shared = Arc::new(Shared::new(config.clone()));
    observe(Readiness(shared.clone()));

    let consumer = Arc::new(kafka::consumer(&config.kafka, Context::new(Arc::new(shared.clone())))?);
    let _ = shared.consumer.set(Arc::downgrade(&consumer));
    tokio::pin!(shutdown);
    let result = consume(&shared, &consumer, shutdown.as_mut()).await;
    shared.stop_workers().await;
    consumer.unsubscribe();
    result
}

/// The consumer loop: hands the messages to their workers, in runs, until `shutdown`
/// completes, a worker fails for good or the consumer does.
async fn consume(
    shared: &Arc<Shared>,
    consumer: &StreamConsumer<Context>,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Result<(), PipelineError> {
    let mut errors = ErrorLog::default();
    // An error met while draining, handled as if `recv` had returned it.
    let mut pending: Option<rdkafka::error::KafkaError> = None;
    loop {
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
                    let (runs, error) = drain(consumer, first);
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
    }
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
