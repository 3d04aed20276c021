//! What `slaflow run` is: the HTTP server and either the ingest worker (no Kafka) or the
//! Kafka pipeline, whose topics the server produces webhook bodies to, started together and
//! drained together on shutdown, within `[server] drain_timeout`. When a worker fails for
//! good (the store gone past its retries) the server stops too and `run` returns the error,
//! so the process exits non-zero for its supervisor to restart it, instead of staying up
//! answering 503.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::engine::correlate::topology::Cmdb;
use crate::pipeline::{self, PipelineError, Readiness};
use crate::server::forward::Forwarder;
use crate::server::{self, AppState, Intake};

/// Runs the service until `shutdown` completes, then drains: the server stops taking
/// requests and finishes those in flight, every worker writes its batch.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<(), PipelineError> {
    let config = Arc::new(config);
    log_start(&config);
    let result = serve_and_work(config, shutdown).await;
    if let Err(error) = &result {
        tracing::error!(%error, "slaflow stops");
    }
    result
}

/// What an operator needs to know at start: the version, the store, the inputs, and what
/// the configuration probably has wrong.
fn log_start(config: &Config) {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "slaflow starting");
    tracing::info!("store: {}", config.store_description());
    if config.kafka.topics.is_empty() {
        tracing::info!("no [[kafka.topics]]: webhook bodies go to the ingest worker");
    } else {
        let topics: Vec<String> = config
            .kafka
            .topics
            .iter()
            .map(|t| format!("{} ({})", t.name, t.format.name()))
            .collect();
        tracing::info!(topics = %topics.join(", "), group = %config.kafka.group_id, "consuming Kafka topics");
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
}

/// The server and the workers, until `shutdown` and the drain (or a failure).
async fn serve_and_work(
    config: Arc<Config>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PipelineError> {
    let listener = listen(&config).await?;
    let (stop_tx, stop_rx) = watch::channel(false);

    // Readiness: the store answers and, with Kafka, partitions are assigned.
    let store_ok = Arc::new(AtomicBool::new(false));
    let kafka = !config.kafka.topics.is_empty();
    let readiness: Arc<OnceLock<Readiness>> = Arc::new(OnceLock::new());
    let ready: Box<dyn Fn() -> bool + Send + Sync> = {
        let (store_ok, readiness) = (store_ok.clone(), readiness.clone());
        Box::new(move || {
            if kafka {
                readiness.get().is_some_and(Readiness::is_ready)
            } else {
                store_ok.load(Ordering::Relaxed)
            }
        })
    };
    // With Kafka, webhook bodies go to their topics; without, to the local ingest worker.
    let (intake, ingest_rx) = if kafka {
        let cmdb = Cmdb::build(&config.services, &config.cis).map_err(PipelineError::Config)?;
        (Intake::Kafka(Forwarder::new(&config.kafka, cmdb)?), None)
    } else {
        // As many bodies as one batch holds may wait while it is written.
        let (tx, rx) = mpsc::channel(config.server.batch_max_bodies.max(1));
        (Intake::Worker(tx), Some(rx))
    };
    let state = Arc::new(AppState::new(config.clone(), ready, intake));
    let server = tokio::spawn(server::serve(listener, state, wait(stop_rx.clone())));

    let work = async {
        // The schema first: the ingest worker restores its checkpoint from it.
        pipeline::migrate(&config).await?;
        let mut ingest = ingest_rx.map(|rx| tokio::spawn(ingest_worker(config.clone(), rx, store_ok.clone())));
        let result = if kafka {
            pipeline::run_observed((*config).clone(), wait(stop_rx.clone()), |r| {
                let _ = readiness.set(r);
            })
            .await
        } else {
            stopped_or_failed(&mut ingest, wait(stop_rx.clone())).await
        };
        if let Err(error) = &result {
            tracing::error!(%error, "a worker failed; stopping");
            let _ = stop_tx.send(true);
        }
        // The server's routes hold the ingest queue: once it has finished, the queue closes
        // and the ingest worker writes its last batch.
        let _ = server.await;
        let ingested = match ingest {
            Some(task) => joined(task.await),
            None => Ok(()),
        };
        result.and(ingested)
    };
    let drain_timeout = config.server.drain_timeout;
    let deadline = async {
        wait(stop_rx.clone()).await;
        tokio::time::sleep(drain_timeout).await;
    };
    let stopping = async {
        shutdown.await;
        tracing::info!("shutting down: draining");
        let _ = stop_tx.send(true);
        std::future::pending::<()>().await;
    };
    tokio::select! {
        result = work => result,
        () = deadline => Err(PipelineError::Worker(format!(
            "the drain took longer than [server] drain_timeout = {drain_timeout:?}; the next start resumes from the store"
        ))),
        () = stopping => Ok(()),
    }
}

/// Without Kafka: waits for `stop`, or for the ingest worker to end before it, which it does
/// only when it failed for good; then its result is taken (`ingest` left empty).
async fn stopped_or_failed(
    ingest: &mut Option<JoinHandle<Result<(), PipelineError>>>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), PipelineError> {
    let Some(task) = ingest.as_mut() else {
        stop.await;
        return Ok(());
    };
    tokio::select! {
        () = stop => Ok(()),
        result = task => {
            *ingest = None;
            joined(result)
        }
    }
}

/// The ingest worker's result once its task has ended.
fn joined(result: Result<Result<(), PipelineError>, tokio::task::JoinError>) -> Result<(), PipelineError> {
    result.map_err(|e| PipelineError::Worker(format!("ingest worker: {e}")))?
}

/// Binds `[server] listen` and logs the address it got (a port 0 resolved).
async fn listen(config: &Config) -> Result<tokio::net::TcpListener, PipelineError> {
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|e| PipelineError::Config(format!("[server] listen = {:?}: {e}", config.server.listen)))?;
    let listening = listener
        .local_addr()
        .map_or_else(|_| config.server.listen.clone(), |a| a.to_string());
    tracing::info!(
        listen = %listening,
        auth = ?config.server.auth,
        "listening on {listening}: /metrics, /healthz, /readyz, /v1/ingest, /v1/reports"
    );
    Ok(listener)
}

/// The ingest worker (no Kafka); when it gives up, why is logged at error at once, not only
/// when the service stops.
async fn ingest_worker(
    config: Arc<Config>,
    rx: mpsc::Receiver<pipeline::Ingest>,
    store_ok: Arc<AtomicBool>,
) -> Result<(), PipelineError> {
    let result = pipeline::run_ingest(config, rx, store_ok).await;
    if let Err(error) = &result {
        tracing::error!(%error, "the ingest worker gave up");
    }
    result
}

/// Completes once `stop` says so.
async fn wait(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
