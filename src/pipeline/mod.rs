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
//!
//! The rooms: `consumer.rs`, the consumer loop and the rebalance hooks that start and stop
//! the workers; `partition.rs`, the partition worker; `ingest.rs`, the webhook ingest
//! worker; `batch.rs`, the commit protocol both workers share (batch → one transaction with
//! the checkpoint and offsets → Kafka's informational commit); `clock.rs`, the clocks that
//! move without events. This file holds the public entry points and the small helpers both
//! workers' loops use.

mod batch;
mod clock;
mod consumer;
mod ingest;
mod partition;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::replay::{Engines, ReplayError};
use crate::sinks::SinkError;
pub use batch::restore_stored;
use batch::{Batcher, StoreLink};
pub use clock::request_close;
pub use consumer::{run_observed, Readiness};
pub use ingest::{run_ingest, HttpOrigin, Ingest};

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

/// Declares idle the inputs last seen `idle_release` ago or earlier (`None` from then on):
/// they stop holding the clock, which may move and close what they held. When the last one
/// goes idle (the worker has caught up), the running reports are written as of everything
/// processed: they otherwise go hourly in event time, and the store would answer with a
/// report that lags what it holds for as long as the worker stays quiet.
fn declare_idle(
    last_seen: &mut [Option<Instant>],
    idle_release: Duration,
    engines: &mut Engines,
    batcher: &mut Batcher,
) {
    let now = Instant::now();
    let mut declared = false;
    for (input, seen) in last_seen.iter_mut().enumerate() {
        if seen.is_some_and(|t| t + idle_release <= now) {
            *seen = None;
            declared = true;
            tracing::debug!(input, "input idle: the clock follows the others");
            if engines.input_idle(input, &mut batcher.emit()) {
                batcher.changed();
            }
        }
    }
    if declared && last_seen.iter().all(Option::is_none) && engines.sla.services() > 0 {
        engines.running_reports(true, &mut batcher.emit());
        batcher.changed();
    }
}

/// Sleeps until `deadline`; without one, never completes (a `select!` branch that stays
/// quiet).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine::sla::SlaOutput;
    use crate::model::{Event, LatencySample};

    fn reports(batcher: &Batcher) -> usize {
        let reports = batcher.batch.sla.iter();
        reports.filter(|o| matches!(o, SlaOutput::MonthlyReport(_))).count()
    }

    /// When the last input goes idle the running reports are written as of everything
    /// processed, without waiting for the clock to enter a new hour; while another input
    /// still speaks they are not.
    #[test]
    fn the_running_reports_are_written_when_the_last_input_goes_idle() {
        let text = r#"
            [[sla.contracts]]
            service = "orders"
            [[sla.contracts.objectives]]
            name = "availability"
            kind = "availability"
            target = 99.9
        "#;
        let config = Config::parse(Path::new("idle.toml"), text).unwrap();
        let mut engines = Engines::new(&config).unwrap().with_inputs(2);
        let mut batcher = Batcher::new("test".into(), 100);
        let sample = |t: i64| {
            Event::Sample(LatencySample {
                service: "orders".into(),
                time_ns: t,
                duration_ns: 2_000_000,
                ..LatencySample::default()
            })
        };
        let t0 = crate::time::from_rfc3339("2026-03-10T10:00:00Z").unwrap();
        for (input, t) in [(0, t0), (1, t0), (0, t0 + 3_600_000_000_000)] {
            engines.process_from(input, sample(t), &mut batcher.emit());
        }
        let before = reports(&batcher);
        let long_ago = Instant::now() - Duration::from_secs(10);
        let mut last_seen = vec![Some(long_ago), Some(Instant::now() + Duration::from_secs(60))];
        declare_idle(&mut last_seen, Duration::from_secs(1), &mut engines, &mut batcher);
        assert_eq!(reports(&batcher), before, "input 1 still speaks: no refresh");
        last_seen[1] = Some(long_ago);
        declare_idle(&mut last_seen, Duration::from_secs(1), &mut engines, &mut batcher);
        assert_eq!(
            reports(&batcher),
            before + 1,
            "the last input idle: one report, orders'"
        );
        declare_idle(&mut last_seen, Duration::from_secs(1), &mut engines, &mut batcher);
        assert_eq!(reports(&batcher), before + 1, "no input went idle again: nothing more");
    }
}
