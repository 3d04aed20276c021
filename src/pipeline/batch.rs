//! The commit protocol, in one place: a worker's batch fills with the engines' records and
//! dead letters ([`Batcher`]); sealed, it carries the engines' checkpoint and the inputs'
//! next offsets ([`Batcher::seal`]), and the store writes all of it in one transaction over
//! the worker's [`StoreLink`]: a connection-level failure is retried (bounded, with
//! [`Backoff`], reconnecting); a batch whose *content* the store refuses is written again
//! record by record, the refused records becoming dead letters, so one poison record never
//! stops a worker; any other failure, or retries run out, ends the worker (and the process). Only once the store has answered are the webhook callers answered and the
//! metrics moved ([`Batcher::stored`]), and only then are the offsets committed to Kafka
//! ([`commit_to_kafka`]), for lag monitoring only: the store's offsets are the ones a worker
//! resumes from, with the engines [`restore`]d from the same checkpoint.
//!
//! Both workers commit in groups ([`GroupCommit`]): one batch in flight while the next fills,
//! sealed as soon as the one before is stored.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset as KafkaOffset, TopicPartitionList};
use tokio::sync::oneshot;

use super::PipelineError;
use crate::config::Config;
use crate::metrics::metrics;
use crate::replay::{Engines, Record};
use crate::sinks::{Batch, DeadLetter, Offset, SinkError, Store, StoredState};
use crate::sources::kafka::Context;

/// A worker's batch in the making: records, dead letters and the callers waiting for it;
/// committed with the engines' snapshot and the inputs' next offsets in one transaction.
pub(super) struct Batcher {
    scope: String,
    pub(super) batch: Batch,
    /// Inputs (messages, requests, releases) whose effect the batch holds.
    pub(super) pending: usize,
    /// The most inputs one batch holds (full behind a commit in flight: input waits).
    pub(super) max_messages: usize,
    /// This worker's open incidents by priority, as last added to the gauge.
    open: [u64; 5],
    /// This worker's incident timers near their deadline, as last added to the gauge.
    near_deadline: crate::metrics::NearDeadline,
    /// Webhook callers, answered once the batch is stored.
    pub(super) acks: Vec<oneshot::Sender<Result<(), String>>>,
    /// The offsets of the last stored batch (for Kafka's informational commit).
    pub(super) committed: Vec<Offset>,
}

impl Batcher {
    /// A batcher for `scope` holding at most `max_messages` inputs per batch.
    pub(super) fn new(scope: String, max_messages: usize) -> Batcher {
        Batcher {
            scope,
            batch: Batch::default(),
            pending: 0,
            max_messages: max_messages.max(1),
            open: [0; 5],
            near_deadline: Default::default(),
            acks: Vec::new(),
            committed: Vec::new(),
        }
    }

    /// Where the engines' records go.
    pub(super) fn emit(&mut self) -> impl FnMut(Record) + '_ {
        |record| match record {
            Record::Correlate(o) => self.batch.correlate.push(o),
            Record::Sla(o) => {
                if let Some(dead) = crate::sinks::late_dead_letter(&self.scope, &o) {
                    self.batch.dead_letters.push(dead);
                }
                self.batch.sla.push(o);
            }
        }
    }

    /// One more input in the batch.
    pub(super) fn added(&mut self) {
        self.pending += 1;
    }

    /// A state change without input (an idle release): written with the next commit.
    pub(super) fn changed(&mut self) {
        self.pending += 1;
    }

    /// Closes the batch, if it holds anything, with the engines' snapshot and `offsets`;
    /// `last` (the worker stops) also adds the running reports, even to an empty batch (when
    /// there is SLA state to report): they
    /// are otherwise refreshed only when the SLA clock enters a new hour, so without this the
    /// stored running report would be as of the hour's first batch, and which one that is
    /// depends on batch boundaries and restarts (a restarted worker reports at once). The
    /// next batch starts empty.
    pub(super) fn seal(&mut self, engines: &mut Engines, offsets: Vec<Offset>, last: bool) -> Option<Sealed> {
        // A stopping worker with SLA state writes the running reports even with nothing new:
        // they may have changed since the last ones written (running reports go hourly), and
        // the stored report must not depend on where batches or restarts fell.
        if self.pending == 0 && !(last && engines.sla.services() > 0) {
            return None;
        }
        engines.running_reports(last, &mut self.emit());
        // The state this batch changed, not all of it: the store writes these rows in the
        // batch's transaction. A batch that is not stored ends the worker, so the next one
        // never goes without the changes of this one.
        let (correlate, sla) = engines.take_changes();
        let mut batch = std::mem::take(&mut self.batch);
        batch.checkpoint = Some(crate::sinks::Checkpoint {
            scope: self.scope.clone(),
            correlate,
            sla,
            latest_event_ns: engines.last_event_ns(),
        });
        batch.offsets = offsets;
        self.pending = 0;
        Some(Sealed {
            batch,
            acks: std::mem::take(&mut self.acks),
        })
    }

    /// After the store answered for `sealed`: answers its callers and, when it was stored,
    /// updates the metrics (the records the store refused among the dead letters) and the
    /// offsets for Kafka's informational commit.
    pub(super) fn stored(&mut self, sealed: Sealed, written: &Written, engines: &Engines) {
        for ack in sealed.acks {
            let _ = ack.send(written.as_ref().map(|_| ()).map_err(ToString::to_string));
        }
        let Ok(refused) = written else {
            return;
        };
        let m = metrics();
        for output in &sealed.batch.sla {
            m.observe(output);
        }
        for d in sealed.batch.dead_letters.iter().chain(refused) {
            m.dead_letters.with_label_values(&[d.format.as_str()]).inc();
        }
        for d in refused {
            tracing::warn!(scope = %d.origin, reason = %d.reason, "the store refused a record; kept as a dead letter");
        }
        let open = engines.correlator.open_by_priority();
        m.open_incidents_changed(&self.open, &open);
        self.open = open;
        let near = engines.sla.timers_near_deadline();
        m.near_deadline_changed(&self.near_deadline, &near);
        self.near_deadline = near;
        self.committed = sealed.batch.offsets;
    }

    /// Seals the batch and writes it, waiting for the store.
    pub(super) async fn commit(
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
        written.map(|_| ())
    }
}

impl Drop for Batcher {
    /// A stopped worker's incidents are no longer its to count (the next owner counts them).
    fn drop(&mut self) {
        metrics().open_incidents_changed(&self.open, &[0; 5]);
        metrics().near_deadline_changed(&self.near_deadline, &Default::default());
    }
}

/// Group commit, shared by both workers: at most one batch is being written at a time; the
/// next one fills meanwhile and is sealed as soon as that commit has finished, so a lone
/// input is stored in about one commit's time and batches grow with the load. There is no
/// timer: a batch waits only for the commit before it.
pub(super) struct GroupCommit {
    /// The store link while no commit is in flight (it travels with the write).
    link: Option<StoreLink>,
    writing: Option<Writing>,
}

impl GroupCommit {
    pub(super) fn new(link: StoreLink) -> GroupCommit {
        GroupCommit {
            link: Some(link),
            writing: None,
        }
    }

    /// Whether a commit is in flight.
    pub(super) fn busy(&self) -> bool {
        self.writing.is_some()
    }

    /// Whether the batch is full behind a commit in flight: the worker stops taking input.
    pub(super) fn full(&self, batcher: &Batcher) -> bool {
        self.busy() && batcher.pending >= batcher.max_messages
    }

    /// Seals the batch and starts writing it, unless a commit is in flight or the batch is
    /// empty; `offsets` are the inputs' next offsets to store with it.
    pub(super) fn start(
        &mut self,
        batcher: &mut Batcher,
        engines: &mut Engines,
        offsets: impl FnOnce() -> Vec<Offset>,
    ) {
        if self.busy() || batcher.pending == 0 {
            return;
        }
        let Some(link) = self.link.take() else {
            return;
        };
        match batcher.seal(engines, offsets(), false) {
            Some(sealed) => self.writing = Some(write_sealed(link, sealed)),
            None => self.link = Some(link),
        }
    }

    /// Completes when the commit in flight does (never when there is none).
    pub(super) async fn done(&mut self) -> (StoreLink, Sealed, Written) {
        in_flight(&mut self.writing).await
    }

    /// The store answered for the commit in flight: its callers are answered, the link is
    /// back; the store's failure is the worker's.
    pub(super) fn written(
        &mut self,
        (link, sealed, written): (StoreLink, Sealed, Written),
        batcher: &mut Batcher,
        engines: &Engines,
    ) -> Result<(), SinkError> {
        self.writing = None;
        self.link = Some(link);
        batcher.stored(sealed, &written, engines);
        written.map(|_| ())
    }

    /// Stopping: waits for the commit in flight, then writes the rest with the running
    /// reports (`Batcher::seal` with `last`).
    pub(super) async fn finish(
        &mut self,
        batcher: &mut Batcher,
        engines: &mut Engines,
        offsets: impl FnOnce() -> Vec<Offset>,
    ) -> Result<(), SinkError> {
        if self.busy() {
            let done = self.done().await;
            self.written(done, batcher, engines)?;
        }
        match self.link.as_mut() {
            Some(link) => batcher.commit(link, engines, offsets(), true).await,
            None => Ok(()),
        }
    }
}

/// A closed batch and the webhook callers waiting for it.
pub(super) struct Sealed {
    batch: Batch,
    acks: Vec<oneshot::Sender<Result<(), String>>>,
}

/// The store's answer for a batch: stored, with the dead letters of the records it refused.
pub(super) type Written = Result<Vec<DeadLetter>, SinkError>;

/// A commit in flight: the store link comes back with the store's answer.
type Writing = std::pin::Pin<Box<dyn Future<Output = (StoreLink, Sealed, Written)> + Send>>;

/// Starts writing `sealed`: the link travels with the write and comes back with the answer.
fn write_sealed(mut link: StoreLink, sealed: Sealed) -> Writing {
    Box::pin(async move {
        let started = std::time::Instant::now();
        let written = link.write(&sealed.batch).await;
        let b = &sealed.batch;
        tracing::debug!(
            callers = sealed.acks.len(),
            records = b.correlate.len() + b.sla.len(),
            checkpoint_bytes = b.checkpoint.as_ref().map_or(0, |c| c.correlate.bytes() + c.sla.bytes()),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "batch written"
        );
        (link, sealed, written)
    })
}

/// Completes when the commit in flight does (never when there is none).
async fn in_flight(writing: &mut Option<Writing>) -> (StoreLink, Sealed, Written) {
    match writing {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}

/// Commits the offsets to Kafka too, after the store has them: for lag monitoring only.
pub(super) fn commit_to_kafka(consumer: &OnceLock<Weak<StreamConsumer<Context>>>, offsets: &[Offset]) {
    let Some(consumer) = consumer.get().and_then(Weak::upgrade) else {
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

/// The engines of a scope: restored from its checkpoint, or new.
pub(super) async fn restore(link: &StoreLink, config: &Config, scope: &str) -> Result<Engines, PipelineError> {
    Ok(match link.store.load_checkpoint(scope).await? {
        Some(c) => restore_stored(config, &c.state)?.with_latest_event(c.latest_event_ns),
        None => Engines::new(config)?,
    })
}

/// The engines of a stored checkpoint of either layout: a whole snapshot (written before
/// incremental checkpoints; the next batch then writes every item), or heads and items.
pub fn restore_stored(config: &Config, state: &StoredState) -> Result<Engines, crate::replay::ReplayError> {
    match state {
        StoredState::Whole { correlate, sla } => Engines::restore(config, correlate, sla),
        StoredState::Items { correlate, sla } => {
            Engines::restore_items(config, (&correlate.0, &correlate.1), (&sla.0, &sla.1))
        }
    }
}

/// A worker's connection to the store: connects and writes with bounded retries and
/// backoff, reconnecting after a failure, and keeps the readiness flag current.
pub(super) struct StoreLink {
    config: Arc<Config>,
    ok: Arc<AtomicBool>,
    pub(super) store: Store,
}

impl StoreLink {
    pub(super) async fn connect(config: Arc<Config>, ok: Arc<AtomicBool>) -> Result<StoreLink, SinkError> {
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

    /// Writes a batch: retried while the failure is the connection's (reconnecting first,
    /// and giving back the reconnection's error when that is what fails: it says more, such
    /// as a database that no longer exists); a refused batch is written record by record.
    async fn write(&mut self, batch: &Batch) -> Written {
        let (config, ok) = (self.config.clone(), self.ok.clone());
        let mut backoff = Backoff::new(&config, &ok);
        let mut broken = false;
        loop {
            if broken {
                match Store::open(&config).await {
                    Ok(fresh) => self.store = fresh,
                    Err(e) => {
                        backoff.wait(e, "store unreachable").await?;
                        continue;
                    }
                }
            }
            let started = std::time::Instant::now();
            match self.attempt(batch).await {
                Ok(refused) => {
                    metrics()
                        .sink_seconds
                        .with_label_values(&[self.store.kind_name()])
                        .observe(started.elapsed().as_secs_f64());
                    ok.store(true, Ordering::Relaxed);
                    return Ok(refused);
                }
                Err(e) if e.is_retryable() => {
                    backoff.wait(e, "batch not written").await?;
                    // The failed transaction may have broken the connection.
                    broken = true;
                }
                Err(e) => {
                    ok.store(false, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    }

    /// One attempt: the batch in one transaction, or, when the store refuses its content,
    /// record by record (`Store::write_isolating`).
    async fn attempt(&mut self, batch: &Batch) -> Written {
        match self.store.write(batch).await {
            Ok(()) => Ok(Vec::new()),
            Err(SinkError::Refused(reason)) => {
                tracing::warn!(%reason, "the store refused the batch's data; writing its records one by one");
                self.store.write_isolating(batch).await
            }
            Err(e) => Err(e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreKind;
    use crate::engine::correlate::priority::Level;
    use crate::engine::correlate::Output;

    fn opened(incident: &str, service: &str) -> Output {
        Output::IncidentOpened {
            incident: incident.into(),
            service: service.into(),
            alert: format!("zabbix/{incident}"),
            ci: "db-1".into(),
            time_ns: 1_000,
            priority: 3,
            impact: Level::Medium,
            urgency: Level::Medium,
            suspected_changes: vec![],
        }
    }

    /// Group commit: what arrives while a batch is being written waits in the next batch,
    /// which is sealed whole once that commit is done; a full batch says so (the worker stops
    /// taking input). Nothing is lost between the two commits.
    #[tokio::test]
    async fn inputs_arriving_during_a_commit_share_the_next_commit() {
        let dir = std::env::temp_dir().join(format!("slaflow-group-commit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::default();
        config.store.kind = StoreKind::Sqlite;
        config.sqlite.path = dir.join("store.sqlite");
        let config = Arc::new(config);
        let mut link = StoreLink::connect(config.clone(), Arc::new(AtomicBool::new(false)))
            .await
            .unwrap();
        link.store.migrate().await.unwrap();
        let mut engines = Engines::new(&config).unwrap();
        let mut batcher = Batcher::new("g/1".into(), 5);
        let mut commits = GroupCommit::new(link);
        let add = |batcher: &mut Batcher, i: usize| {
            batcher.batch.correlate.push(opened(&format!("i{i}"), "webshop"));
            batcher.added();
        };
        add(&mut batcher, 0);
        commits.start(&mut batcher, &mut engines, Vec::new);
        assert!(commits.busy(), "a lone input is written at once, no timer");
        for i in 1..=5 {
            add(&mut batcher, i);
            commits.start(&mut batcher, &mut engines, Vec::new);
            assert_eq!(batcher.pending, i, "one commit in flight: input {i} waits");
        }
        assert!(commits.full(&batcher), "5 waiting behind a commit fill the batch");
        let done = commits.done().await;
        commits.written(done, &mut batcher, &engines).unwrap();
        commits.start(&mut batcher, &mut engines, Vec::new);
        assert!(commits.busy() && batcher.pending == 0, "the five go in one commit");
        let done = commits.done().await;
        commits.written(done, &mut batcher, &engines).unwrap();
        let raw = rusqlite::Connection::open(&config.sqlite.path).unwrap();
        let stored: i64 = raw
            .query_row("SELECT count(*) FROM incidents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 6);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// On the embedded store: a batch with a record the store refuses is stored with the
    /// refused record as a counted dead letter; a statement error is given back at once.
    #[tokio::test]
    async fn a_refused_record_is_dead_lettered_and_counted_and_a_statement_error_is_not_retried() {
        let dir = std::env::temp_dir().join(format!("slaflow-batch-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::default();
        config.store.kind = StoreKind::Sqlite;
        config.sqlite.path = dir.join("store.sqlite");
        config.kafka.write_attempts = 8;
        let config = Arc::new(config);
        let ok = Arc::new(AtomicBool::new(false));
        let mut link = StoreLink::connect(config.clone(), ok.clone()).await.unwrap();
        link.store.migrate().await.unwrap();
        let raw = rusqlite::Connection::open(&config.sqlite.path).unwrap();
        raw.execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON incidents WHEN NEW.service = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned service'); END;",
        )
        .unwrap();

        let mut engines = Engines::new(&config).unwrap();
        let mut batcher = Batcher::new("g/7".into(), config.kafka.batch_max_messages);
        batcher.batch.correlate = vec![opened("i1", "webshop"), opened("i2", "poison")];
        batcher.added();
        let counted = || metrics().dead_letters.with_label_values(&["slaflow-record"]).get();
        let before = counted();
        let sealed = batcher.seal(&mut engines, Vec::new(), false).unwrap();
        let written = link.write(&sealed.batch).await;
        let refused = written.as_ref().unwrap();
        assert_eq!(refused.len(), 1);
        assert_eq!(
            (refused[0].origin.as_str(), refused[0].format.as_str()),
            ("g/7", "slaflow-record")
        );
        assert!(
            refused[0].reason.starts_with("poisoned service"),
            "{}",
            refused[0].reason
        );
        batcher.stored(sealed, &written, &engines);
        assert_eq!(counted(), before + 1, "the refused record is a counted dead letter");
        assert!(ok.load(Ordering::Relaxed));
        let stored: i64 = raw
            .query_row("SELECT count(*) FROM incidents WHERE id = 'i1'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 1, "the accepted record is stored");

        // A missing table is the statement's failure: not retried. With tokio's clock paused,
        // a retry's backoff (200 ms first) would show as virtual time passed; none does.
        raw.execute_batch("DROP TABLE incident_events").unwrap();
        tokio::time::pause();
        let started = tokio::time::Instant::now();
        let batch = Batch {
            correlate: vec![opened("i3", "webshop")],
            ..Batch::default()
        };
        let error = link.write(&batch).await.unwrap_err();
        assert!(matches!(error, SinkError::Failed(_)), "{error}");
        assert!(error.to_string().contains("no such table: incident_events"), "{error}");
        assert_eq!(started.elapsed(), Duration::ZERO, "not retried: no backoff slept");
        let _ = std::fs::remove_dir_all(dir);
    }
}
